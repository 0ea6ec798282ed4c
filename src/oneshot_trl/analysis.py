"""`oneshot-trl analyze`: the paper's diagnostics as plots and a report, from a training run or eval outputs.

    oneshot-trl analyze runs/pi1                      # a training run dir -> runs/pi1/analysis/report.md
    oneshot-trl analyze evals/pi1 --output-dir out    # an `oneshot-trl eval --all-revisions` output dir
    oneshot-trl analyze user/pi1-run --words wait,verify

What it reads (each piece is optional; a missing one is skipped with a note in the report):
- `trainer_state.json` (the run dir's, else its latest `checkpoint-N/`'s): `log_history` metrics per step.
- `accuracy_history.jsonl`: each training example's accuracy at every step (the post-saturation curve).
- `completions.jsonl`: sampled training completions (self-reflection words against step).
- per-step evals: `eval/step-*/results.json` + `samples.jsonl` in a run dir, `<revision>/results.json` in an
  `--all-revisions` output dir, or a single `results.json`.

What it answers: does benchmark accuracy keep rising after the training example is solved (post-saturation
generalization)? How do entropy, response length, zero-variance groups and the boxed rate move? Do reflection
words become more frequent? How much of a gain is format (answer present but not boxed) rather than reasoning?
Which checkpoint is best, per benchmark and on average?
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_REFLECTION_WORDS = (
    "rethink",
    "recheck",
    "recalculate",
    "re-evaluate",
    "check again",
    "wait",
    "double-check",
    "verify",
)
# The paper counts responses containing exactly these (v3 §3.2.4, Fig. 4 right).
PAPER_REFLECTION_WORDS = ("rethink", "recheck", "recalculate")

TRAIN_METRICS = {  # log_history key -> (plot file stem, title, y label)
    "entropy": ("entropy", "Policy entropy", "mean token entropy"),
    "completions/mean_length": ("response_length", "Response length", "mean completion length (tokens)"),
    "frac_reward_zero_std": ("zero_std_groups", "Groups with zero reward variance", "fraction of groups"),
    "boxed_rate": ("boxed_rate", "Boxed rate", "fraction of responses with \\boxed{}"),
}
RUN_FILES = (
    "trainer_state.json",
    "accuracy_history.jsonl",
    "completions.jsonl",
    "oneshot_run.json",
    "recipe.yaml",
)
_STEP_RE = re.compile(r"(?:^|[-_/])(?:step|checkpoint|global_step)?[-_]?0*(\d+)$")


# ---------------------------------------------------------------------------------------------------------------
# Self-reflection words
# ---------------------------------------------------------------------------------------------------------------


def word_pattern(word: str) -> re.Pattern[str]:
    """Case-insensitive, whole words only ('wait' not in 'awaited'); a phrase matches any whitespace between."""
    body = r"\s+".join(re.escape(part) for part in word.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


@dataclass
class ReflectionCounts:
    num_responses: int = 0
    occurrences: dict[str, int] = field(default_factory=dict)  # matches of each word, all responses together
    responses_with: dict[str, int] = field(default_factory=dict)  # responses containing each word
    responses_with_any: int = 0  # responses containing at least one of the words
    responses_with_paper_words: int = 0  # the paper's unit: responses with rethink/recheck/recalculate

    @property
    def per_1k(self) -> dict[str, float]:
        """Occurrences of each word per 1,000 responses."""
        n = max(self.num_responses, 1)
        return {w: 1000.0 * c / n for w, c in self.occurrences.items()}

    @property
    def frac_with_any(self) -> float:
        return self.responses_with_any / self.num_responses if self.num_responses else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_responses": self.num_responses,
            "occurrences": self.occurrences,
            "per_1k_responses": self.per_1k,
            "responses_with": self.responses_with,
            "responses_with_any": self.responses_with_any,
            "frac_responses_with_any": self.frac_with_any,
            "responses_with_paper_words": self.responses_with_paper_words,
        }


def count_reflection_words(
    texts: Iterable[str], words: Sequence[str] = DEFAULT_REFLECTION_WORDS
) -> ReflectionCounts:
    """Count reflection words in responses (see `word_pattern` for the matching rules)."""
    patterns = {w: word_pattern(w) for w in words}
    paper = [word_pattern(w) for w in PAPER_REFLECTION_WORDS]
    counts = ReflectionCounts(occurrences=dict.fromkeys(words, 0), responses_with=dict.fromkeys(words, 0))
    for text in texts:
        counts.num_responses += 1
        found_any = False
        for word, pattern in patterns.items():
            n = len(pattern.findall(text))
            counts.occurrences[word] += n
            if n:
                counts.responses_with[word] += 1
                found_any = True
        counts.responses_with_any += found_any
        counts.responses_with_paper_words += any(p.search(text) for p in paper)
    return counts


# ---------------------------------------------------------------------------------------------------------------
# Loading a run / eval outputs
# ---------------------------------------------------------------------------------------------------------------


def step_from_label(label: str) -> int | None:
    """`step-000020` -> 20, `checkpoint-20` -> 20, `main` -> None."""
    match = _STEP_RE.search(label)
    return int(match.group(1)) if match else None


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # A run killed mid-write leaves a torn last line: keep what is readable.
                logger.warning("%s:%d is not valid JSON; skipped.", path, lineno)
    return rows


@dataclass
class CheckpointEval:
    label: str  # revision or step dir name, e.g. "step-000020"
    step: int | None
    results: dict
    samples: list[dict]
    path: str

    @property
    def benchmarks(self) -> dict[str, dict]:
        return self.results.get("benchmarks") or {}


@dataclass
class RunData:
    source: str
    log_history: list[dict] = field(default_factory=list)
    trainer_state_path: str | None = None
    global_step: int | None = None
    accuracy_history: list[dict] = field(default_factory=list)
    completions: list[dict] = field(default_factory=list)
    evals: list[CheckpointEval] = field(default_factory=list)
    run_info: dict | None = None
    notes: list[str] = field(default_factory=list)


def _find_trainer_state(root: Path) -> Path | None:
    if (root / "trainer_state.json").is_file():
        return root / "trainer_state.json"
    checkpoints = [
        (step, p)
        for p in root.glob("checkpoint-*")
        if (step := step_from_label(p.name)) is not None and p.is_dir()
    ]
    for _, ckpt in sorted(checkpoints, reverse=True):  # latest first
        if (ckpt / "trainer_state.json").is_file():
            return ckpt / "trainer_state.json"
    return None


def _find_eval_dirs(root: Path) -> list[Path]:
    """Dirs with a results.json: `eval/step-*/` (in-training evals), `<revision>/` (--all-revisions), root."""
    found = sorted(p.parent for p in root.glob("eval/*/results.json"))
    found += sorted(p.parent for p in root.glob("*/results.json") if p.parent.name != "eval")
    if (root / "results.json").is_file():
        found.append(root)
    return list(dict.fromkeys(found))


def load_run_data(root: str | Path) -> RunData:
    """Everything `analyze` reads from a local run dir or eval output dir; missing pieces become notes."""
    root = Path(root)
    data = RunData(source=str(root))
    state_path = _find_trainer_state(root)
    if state_path is None:
        data.notes.append("No trainer_state.json (run dir or checkpoint-*/): no training-metric plots.")
    else:
        state = _read_json(state_path)
        data.trainer_state_path = str(state_path)
        data.log_history = list(state.get("log_history") or [])
        data.global_step = state.get("global_step")
    for name, attr, what in (
        ("accuracy_history.jsonl", "accuracy_history", "per-example training accuracy"),
        ("completions.jsonl", "completions", "reflection words in training completions"),
    ):
        if (root / name).is_file():
            setattr(data, attr, _read_jsonl(root / name))
        else:
            data.notes.append(f"No {name}: no {what}.")
    if (root / "oneshot_run.json").is_file():
        data.run_info = _read_json(root / "oneshot_run.json")

    for eval_dir in _find_eval_dirs(root):
        results = _read_json(eval_dir / "results.json")
        label = eval_dir.name if eval_dir != root else str(results.get("revision") or "main")
        step = step_from_label(label)
        if step is None and label == "main" and data.global_step:
            step = int(data.global_step)  # `main` holds the final model of the run
        samples = _read_jsonl(eval_dir / "samples.jsonl") if (eval_dir / "samples.jsonl").is_file() else []
        data.evals.append(CheckpointEval(label, step, results, samples, str(eval_dir)))
    data.evals.sort(key=lambda e: (e.step is None, e.step or 0, e.label))
    if not data.evals:
        data.notes.append(
            "No per-step evals (eval/step-*/results.json or <revision>/results.json): no benchmark curves."
        )
    return data


HUB_PATTERNS = [
    *RUN_FILES,
    "checkpoint-*/trainer_state.json",
    "results.json",
    "samples.jsonl",
    "*/results.json",
    "*/samples.jsonl",
]


def resolve_target(target: str, revision: str | None = None, token: str | None = None) -> Path:
    """A local dir as is; a Hub repo id -> a local snapshot of only the small log/eval files (no weights)."""
    path = Path(target).expanduser()
    if path.is_dir():
        return path
    from oneshot_trl.hub import resolve_model

    return Path(resolve_model(target, revision=revision, token=token, allow_patterns=HUB_PATTERNS).path)


# ---------------------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_series(log_history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of a logged training metric; eval-phase entries (`eval_*` keys) never match."""
    by_step: dict[int, float] = {}
    for entry in log_history:
        if key in entry and "step" in entry and _finite(entry[key]):
            by_step[int(entry["step"])] = float(entry[key])  # a resumed run re-logs steps: the last one wins
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def example_curves(data: RunData) -> dict[str, tuple[list[int], list[float]]]:
    """Training accuracy of each example against step: accuracy_history.jsonl, else `train_accuracy/<id>` logs."""
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for rec in data.accuracy_history:
        if "example_id" in rec and "step" in rec and _finite(rec.get("accuracy")):
            curves[str(rec["example_id"])][int(rec["step"])] = float(rec["accuracy"])
    if not curves:
        prefix = "train_accuracy/"
        keys = dict.fromkeys(k for e in data.log_history for k in e if k.startswith(prefix))
        for key in keys:
            steps, values = metric_series(data.log_history, key)
            curves[key[len(prefix) :]] = dict(zip(steps, values, strict=True))
    return {eid: (sorted(c), [c[s] for s in sorted(c)]) for eid, c in curves.items()}


def mean_training_accuracy(
    data: RunData, curves: dict[str, tuple[list[int], list[float]]]
) -> tuple[list[int], list[float]]:
    """Mean training accuracy per step over examples, weighted by samples when accuracy_history has them."""
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if data.accuracy_history:
        for rec in data.accuracy_history:
            if "step" in rec and _finite(rec.get("accuracy")):
                weight = float(rec.get("num_samples") or 1)
                sums[int(rec["step"])][0] += weight * float(rec["accuracy"])
                sums[int(rec["step"])][1] += weight
    else:
        for steps, values in curves.values():
            for s, v in zip(steps, values, strict=True):
                sums[s][0] += v
                sums[s][1] += 1.0
    steps = sorted(sums)
    return steps, [sums[s][0] / sums[s][1] for s in steps]


def first_step_at(steps: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    return next((s for s, v in zip(steps, values, strict=True) if v >= threshold - 1e-9), None)


def _sample_texts(row: dict) -> list[str]:
    for key in ("responses", "completions", "outputs", "response", "completion", "output"):
        value = row.get(key)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        return [_as_text(v) for v in values]
    return []


def _as_text(value: Any) -> str:
    # Conversational completions are lists of messages; keep only their text.
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("content", ""))
    if isinstance(value, list):
        return "\n".join(_as_text(v) for v in value)
    return str(value)


def _sample_flags(row: dict, key: str, n: int) -> list[bool] | None:
    value = row.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value] * max(n, 1)
    return [bool(v) for v in values]


def sample_stats(samples: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """Per benchmark: response count, mean length (chars), and boxed-only accuracy when samples carry the flags.

    Boxed-only accuracy = a response is graded correct AND it has a \\boxed{} answer: the last \\boxed{} is what
    every grader reads first, so these are the answers that count when only \\boxed{} answers count.
    """
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"texts": [], "correct": [], "boxed": [], "anywhere": []}
    )
    for row in samples:
        texts = _sample_texts(row)
        bench = per[str(row.get("benchmark") or "all")]
        bench["texts"] += texts
        for key, name in (("correct", "correct"), ("boxed", "boxed"), ("answer_anywhere", "anywhere")):
            flags = _sample_flags(row, key, len(texts))
            bench[name].append(flags if flags is not None and len(flags) == len(texts) else None)
    out = {}
    for name, b in per.items():
        stats: dict[str, Any] = {
            "n_responses": len(b["texts"]),
            "mean_response_chars": sum(map(len, b["texts"])) / len(b["texts"]) if b["texts"] else None,
        }
        correct = _flatten(b["correct"])
        boxed = _flatten(b["boxed"])
        anywhere = _flatten(b["anywhere"])
        if correct is not None and boxed is not None and correct:
            stats["boxed_only_accuracy"] = sum(c and x for c, x in zip(correct, boxed, strict=True)) / len(
                correct
            )
        if boxed:
            stats["boxed_rate"] = sum(boxed) / len(boxed)
        if anywhere:
            stats["answer_anywhere_accuracy"] = sum(anywhere) / len(anywhere)
        out[name] = stats
    return out


def _flatten(groups: list[list[bool] | None]) -> list[bool] | None:
    if not groups or any(g is None for g in groups):
        return None  # a flag missing on any row: not computable for this benchmark
    return [x for g in groups for x in g]  # type: ignore[union-attr]


def eval_table(evals: Sequence[CheckpointEval]) -> list[dict[str, Any]]:
    """One row per (checkpoint, benchmark): accuracy, boxed-only accuracy, answer-anywhere accuracy, boxed rate."""
    rows = []
    for ev in evals:
        stats = sample_stats(ev.samples)
        for bench, res in ev.benchmarks.items():
            s = stats.get(bench, {})
            acc = res.get("accuracy")
            anywhere = res.get("answer_anywhere_accuracy", s.get("answer_anywhere_accuracy"))
            rows.append(
                {
                    "checkpoint": ev.label,
                    "step": ev.step,
                    "benchmark": bench,
                    "accuracy": acc,
                    "boxed_only_accuracy": res.get("boxed_only_accuracy", s.get("boxed_only_accuracy")),
                    "answer_anywhere_accuracy": anywhere,
                    "boxed_rate": res.get("boxed_rate", s.get("boxed_rate")),
                    # answer in the text but not credited: what better formatting alone could still add
                    "format_gap": anywhere - acc if _finite(anywhere) and _finite(acc) else None,
                    "mean_response_chars": s.get("mean_response_chars"),
                    "n_samples": res.get("n_samples"),
                }
            )
    return rows


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if _finite(v)]
    return sum(vals) / len(vals) if vals else None


def checkpoint_averages(evals: Sequence[CheckpointEval]) -> tuple[list[str], dict[str, float | None]]:
    """Average accuracy of each checkpoint over the benchmarks that every checkpoint has (the comparable set)."""
    if not evals:
        return [], {}
    common = [b for b in evals[0].benchmarks if all(b in e.benchmarks for e in evals)]
    averages = {e.label: _mean(e.benchmarks[b].get("accuracy") for b in common) for e in evals}
    return common, averages


def best_checkpoints(evals: Sequence[CheckpointEval]) -> dict[str, Any]:
    """Best checkpoint per benchmark and on average (ties: the earliest step)."""
    per_benchmark = {}
    for bench in dict.fromkeys(b for e in evals for b in e.benchmarks):
        scored = [(e, e.benchmarks[bench].get("accuracy")) for e in evals if bench in e.benchmarks]
        scored = [(e, a) for e, a in scored if _finite(a)]
        if scored:
            best, acc = max(scored, key=lambda ea: ea[1])  # max keeps the first of equal values
            per_benchmark[bench] = {"checkpoint": best.label, "step": best.step, "accuracy": acc}
    common, averages = checkpoint_averages(evals)
    scored_avg = [(e, averages[e.label]) for e in evals if _finite(averages.get(e.label))]
    average = None
    if scored_avg:
        best, acc = max(scored_avg, key=lambda ea: ea[1])
        average = {"checkpoint": best.label, "step": best.step, "accuracy": acc, "benchmarks": common}
    return {"per_benchmark": per_benchmark, "average": average}


def post_saturation(
    train_steps: Sequence[int],
    train_acc: Sequence[float],
    evals: Sequence[CheckpointEval],
    threshold: float = 0.99,
) -> dict[str, Any] | None:
    """When training accuracy first hits `threshold`, and how benchmark accuracy moves after that step."""
    saturation = first_step_at(train_steps, train_acc, threshold) if train_steps else None
    if saturation is None:
        return None
    _, averages = checkpoint_averages(evals)
    points = [
        (e.step, averages[e.label]) for e in evals if e.step is not None and _finite(averages.get(e.label))
    ]
    before = [(s, a) for s, a in points if s <= saturation]
    after = [(s, a) for s, a in points if s > saturation]
    out: dict[str, Any] = {"saturation_step": saturation, "threshold": threshold}
    if before:
        out["average_at_saturation"] = {"step": before[-1][0], "accuracy": before[-1][1]}
    if after:
        best_step, best_acc = max(after, key=lambda sa: sa[1])
        out["best_after_saturation"] = {"step": best_step, "accuracy": best_acc}
        if before:
            out["gain_after_saturation"] = best_acc - before[-1][1]
    return out


def reflection_by_step(
    completions: Sequence[dict], words: Sequence[str], bin_size: int = 1
) -> list[dict[str, Any]]:
    """Reflection counts of training completions per window of `bin_size` steps, labelled by its last step.

    A run logs only a few completions per step, so long runs are counted in windows to keep the curve readable.
    """
    by_step: dict[int, list[str]] = defaultdict(list)
    for rec in completions:
        if "step" in rec:
            step = int(rec["step"])
            window_end = -(-step // bin_size) * bin_size  # ceil to a multiple of bin_size
            by_step[window_end].append(_as_text(rec.get("completion", "")))
    return [{"step": s, **count_reflection_words(by_step[s], words).to_dict()} for s in sorted(by_step)]


# ---------------------------------------------------------------------------------------------------------------
# Plots (matplotlib's object API with the Agg canvas: no pyplot global state, no display needed)
# ---------------------------------------------------------------------------------------------------------------

Series = dict[str, tuple[Sequence[float], Sequence[float]]]


def _figure(ncols: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * ncols, 4.2), dpi=100)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _draw(
    ax, series: Series, title: str, xlabel: str, ylabel: str, ylim: tuple[float, float] | None = None
) -> None:
    for label, (x, y) in series.items():
        style = {"marker": "o", "markersize": 3} if len(x) < 30 else {}
        ax.plot(list(x), list(y), label=label, linewidth=1.4, **style)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)


def save_plot(
    path: Path, panels: Sequence[tuple[Series, str, str, str, tuple[float, float] | None]], vline=None
) -> Path:
    """Side-by-side panels, each (series, title, xlabel, ylabel, ylim); `vline` = (x, label) drawn on every panel."""
    fig, axes = _figure(len(panels))
    for ax, (series, title, xlabel, ylabel, ylim) in zip(axes, panels, strict=True):
        _draw(ax, series, title, xlabel, ylabel, ylim)
        if vline is not None:
            ax.axvline(vline[0], color="gray", linestyle="--", linewidth=1, label=vline[1])
        if 0 < len(ax.get_lines()) <= 13:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


# ---------------------------------------------------------------------------------------------------------------
# The analysis
# ---------------------------------------------------------------------------------------------------------------


def _eval_curves(table: Sequence[dict], key: str, average_label: str | None = "average") -> Series:
    """Per benchmark `key` of `eval_table` rows against step (checkpoints with a step only), plus their average."""
    rows = [r for r in table if r["step"] is not None]
    series: Series = {}
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        pts = [(r["step"], r[key]) for r in rows if r["benchmark"] == bench and _finite(r[key])]
        if pts:
            series[bench] = ([s for s, _ in pts], [v for _, v in pts])
    if average_label and len(series) > 1:
        by_ckpt: dict[tuple[int, str], dict[str, Any]] = defaultdict(dict)
        for r in rows:
            by_ckpt[(r["step"], r["checkpoint"])][r["benchmark"]] = r[key]
        common = [
            b for b in dict.fromkeys(r["benchmark"] for r in rows) if all(b in v for v in by_ckpt.values())
        ]
        avg = []
        for (step, _), values in sorted(by_ckpt.items()):
            picked = [values[b] for b in common]
            if picked and all(_finite(v) for v in picked):  # an average over fewer benchmarks would mislead
                avg.append((step, sum(picked) / len(picked)))
        if avg:
            series[average_label] = ([s for s, _ in avg], [v for _, v in avg])
    return series


def analyze(
    data: RunData,
    output_dir: str | Path,
    words: Sequence[str] = DEFAULT_REFLECTION_WORDS,
    max_examples: int = 8,
    saturation_threshold: float = 0.99,
) -> dict[str, Any]:
    """Compute every number, write the PNG plots, `report.md` and `analysis.json` to `output_dir`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    notes = list(data.notes)
    plots: dict[str, str] = {}  # plot name -> file name (relative to output_dir)
    result: dict[str, Any] = {"source": data.source, "reflection_words": list(words)}

    # --- training accuracy next to benchmark accuracy (post-saturation generalization) ---
    curves = example_curves(data)
    mean_steps, mean_acc = mean_training_accuracy(data, curves)
    result["training_accuracy"] = {
        eid: {"steps": s, "accuracy": a, "first_step_at_threshold": first_step_at(s, a, saturation_threshold)}
        for eid, (s, a) in curves.items()
    }
    result["mean_training_accuracy"] = {"steps": mean_steps, "accuracy": mean_acc}
    sat = post_saturation(mean_steps, mean_acc, data.evals, saturation_threshold)
    result["post_saturation"] = sat
    table = eval_table(data.evals)
    bench_acc = _eval_curves(table, "accuracy")
    if curves or bench_acc:
        train_series: Series = dict(list(curves.items())[:max_examples])
        if len(curves) > max_examples:
            notes.append(
                f"{len(curves)} training examples: the accuracy plot shows the first {max_examples} and the mean."
            )
        if len(curves) > 1:
            train_series["mean over examples"] = (mean_steps, mean_acc)
        panels = [
            (train_series, "Training accuracy of the example(s)", "step", "accuracy", (-0.02, 1.02)),
            (bench_acc, "Benchmark accuracy", "step", "accuracy", None),
        ]
        vline = (sat["saturation_step"], "training accuracy saturates") if sat else None
        plots["post_saturation"] = save_plot(out / "post_saturation.png", panels, vline).name

    # --- training metrics from log_history ---
    result["training_metrics"] = {}
    for key, (stem, title, ylabel) in TRAIN_METRICS.items():
        steps, values = metric_series(data.log_history, key)
        result["training_metrics"][key] = {"steps": steps, "values": values}
        panels = []
        if steps:
            panels.append(
                ({f"training ({key})": (steps, values)}, f"{title} (training)", "step", ylabel, None)
            )
        if key == "boxed_rate":
            eval_boxed = _eval_curves(table, "boxed_rate")
            if eval_boxed:
                panels.append(
                    (eval_boxed, "Boxed rate (benchmarks)", "step", "fraction of responses", (-0.02, 1.02))
                )
        if key == "completions/mean_length":
            chars = _eval_curves(table, "mean_response_chars", average_label=None)
            if chars:
                panels.append((chars, "Response length (benchmarks)", "step", "mean characters", None))
        if panels:
            plots[stem] = save_plot(out / f"{stem}.png", panels).name
        elif data.log_history:
            notes.append(f"`{key}` is not in the training logs: no {stem} plot.")

    # --- self-reflection words ---
    completion_steps = {rec["step"] for rec in data.completions if "step" in rec}
    bin_size = max(1, math.ceil(len(completion_steps) / 50))  # at most ~50 points on the curve
    train_reflection = reflection_by_step(data.completions, words, bin_size)
    eval_reflection = []
    for ev in data.evals:
        texts = [t for row in ev.samples for t in _sample_texts(row)]
        if texts:
            eval_reflection.append(
                {"checkpoint": ev.label, "step": ev.step, **count_reflection_words(texts, words).to_dict()}
            )
    result["reflection"] = {
        "training": train_reflection,
        "training_bin_steps": bin_size,
        "eval": eval_reflection,
    }
    panels = []
    for rows, where in (
        (train_reflection, "training completions"),
        ([r for r in eval_reflection if r["step"] is not None], "benchmark responses"),
    ):
        if rows:
            series: Series = {
                w: ([r["step"] for r in rows], [r["per_1k_responses"][w] for r in rows]) for w in words
            }
            panels.append(
                (series, f"Reflection words in {where}", "step", "occurrences per 1k responses", None)
            )
    if panels:
        plots["reflection_words"] = save_plot(out / "reflection_words.png", panels).name
    else:
        notes.append("No completions.jsonl and no eval samples with responses: no reflection-word counts.")

    # --- format vs reasoning, best checkpoint ---
    result["evals"] = table
    result["best_checkpoint"] = best_checkpoints(data.evals) if data.evals else None
    protocols = {
        str((e.results.get("protocol") or {}).get("hash")) for e in data.evals if e.results.get("protocol")
    }
    if len(protocols) > 1:
        notes.append(
            f"The evals use different protocols (hashes {sorted(protocols)}): their numbers are not comparable."
        )
    fmt_series: Series = {}
    for key, label in (
        ("accuracy", "accuracy"),
        ("boxed_only_accuracy", "boxed-only"),
        ("answer_anywhere_accuracy", "answer anywhere"),
    ):
        avg = _eval_curves(table, key, average_label="avg")
        curve = avg.get("avg") or (next(iter(avg.values())) if len(avg) == 1 else None)
        if curve:
            fmt_series[label] = curve
    if len(fmt_series) > 1:
        plots["format_vs_reasoning"] = save_plot(
            out / "format_vs_reasoning.png",
            [(fmt_series, "Format vs reasoning (mean over benchmarks)", "step", "accuracy", None)],
        ).name

    result["plots"] = plots
    result["notes"] = notes
    (out / "report.md").write_text(render_report(result, data), encoding="utf-8")
    with open(out / "analysis.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=str)
    logger.info("Wrote %d plot(s), report.md and analysis.json to %s.", len(plots), out)
    return result


# ---------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}" if _finite(value) else "–"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


PLOT_TEXT = {
    "post_saturation": (
        "Training accuracy vs benchmark accuracy",
        "Left: each training example's accuracy at every step; right: benchmark accuracy of the evaluated checkpoints. "
        "In 1-shot RLVR the benchmarks keep improving long after the example is solved (post-saturation generalization).",
    ),
    "entropy": ("Policy entropy", "Mean token entropy of the sampled completions."),
    "response_length": (
        "Response length",
        "Mean completion length in training (tokens), and of benchmark responses (characters).",
    ),
    "zero_std_groups": (
        "Zero-variance groups",
        "Fraction of prompts whose completions all got the same reward: GRPO advantages are zero there, so they give no "
        "policy gradient (only the entropy term acts).",
    ),
    "boxed_rate": ("Boxed rate", "Fraction of responses with a \\boxed{} answer."),
    "reflection_words": (
        "Self-reflection words",
        "Occurrences of each word per 1,000 responses, against step.",
    ),
    "format_vs_reasoning": (
        "Format vs reasoning",
        "Protocol accuracy, accuracy when only \\boxed{} answers count, and when the correct answer anywhere in the text counts.",
    ),
}


def render_report(result: dict[str, Any], data: RunData) -> str:
    lines = [f"# oneshot-trl analysis: `{result['source']}`", ""]
    if data.run_info:
        lines.append(f"Base model: `{data.run_info.get('base_model')}`")
        for ex in data.run_info.get("examples") or []:
            lines.append(f"- training example `{ex.get('example_id')}`: answer `{ex.get('answer')}`")
        lines.append("")
    if data.global_step is not None:
        lines += [f"Training steps: {data.global_step}.", ""]

    # summary
    sat = result.get("post_saturation")
    best = result.get("best_checkpoint") or {}
    summary = []
    if sat:
        summary.append(
            f"Mean training accuracy first reached {_pct(sat['threshold'])}% at step {sat['saturation_step']}."
        )
        if "gain_after_saturation" in sat:
            summary.append(
                f"Benchmark average: {_pct(sat['average_at_saturation']['accuracy'])} at step "
                f"{sat['average_at_saturation']['step']}, best after saturation {_pct(sat['best_after_saturation']['accuracy'])} "
                f"at step {sat['best_after_saturation']['step']} ({100 * sat['gain_after_saturation']:+.1f} points)."
            )
    if best.get("average"):
        avg = best["average"]
        summary.append(f"Best checkpoint on average: `{avg['checkpoint']}` ({_pct(avg['accuracy'])}).")
    if summary:
        lines += ["## Summary", "", *[f"- {s}" for s in summary], ""]

    lines += ["## Plots", ""]
    if not result["plots"]:
        lines += ["No plots: nothing to plot was found (see Notes).", ""]
    for name, file in result["plots"].items():
        title, text = PLOT_TEXT.get(name, (name, ""))
        lines += [f"### {title}", "", text, "", f"![{title}]({file})", ""]

    # reflection table
    refl = result["reflection"]
    if refl["training"] or refl["eval"]:
        words = result["reflection_words"]
        lines += [
            "## Self-reflection words",
            "",
            "Counts are case-insensitive whole-word matches. `any` = responses containing at least one word; `paper` = "
            "responses containing rethink/recheck/recalculate (the paper's Fig. 4 count).",
            "",
        ]
        if refl.get("training_bin_steps", 1) > 1:
            lines += [
                f"Training completions are counted in windows of {refl['training_bin_steps']} steps.",
                "",
            ]
        header = ["where", "step", "responses", *[f"{w} /1k" for w in words], "any", "paper"]
        rows = []
        for where, recs in (("training", _thin(refl["training"], 12)), ("eval", refl["eval"])):
            for r in recs:
                label = r.get("checkpoint", where)
                rows.append(
                    [
                        label if where == "eval" else where,
                        r["step"] if r["step"] is not None else "–",
                        r["num_responses"],
                    ]
                    + [f"{r['per_1k_responses'][w]:.0f}" for w in words]
                    + [
                        f"{r['responses_with_any']} ({_pct(r['frac_responses_with_any'])}%)",
                        r["responses_with_paper_words"],
                    ]
                )
        lines += [*_md_table(header, rows), ""]

    # format vs reasoning + best checkpoint
    if result["evals"]:
        lines += [
            "## Format vs reasoning, per checkpoint",
            "",
            "`accuracy`: the eval protocol's grader. `boxed-only`: correct and \\boxed{} (only boxed answers count). "
            "`anywhere`: the correct answer appears anywhere in the response. `anywhere − accuracy`: answers the model "
            "found but that were not credited — a gain that format alone could give.",
            "",
        ]
        header = [
            "checkpoint",
            "step",
            "benchmark",
            "accuracy",
            "boxed-only",
            "anywhere",
            "boxed rate",
            "anywhere − accuracy",
        ]
        rows = [
            [
                r["checkpoint"],
                r["step"] if r["step"] is not None else "–",
                r["benchmark"],
                _pct(r["accuracy"]),
                _pct(r["boxed_only_accuracy"]),
                _pct(r["answer_anywhere_accuracy"]),
                _pct(r["boxed_rate"]),
                f"{100 * r['format_gap']:+.1f}" if _finite(r["format_gap"]) else "–",
            ]
            for r in result["evals"]
        ]
        lines += [*_md_table(header, rows), ""]
        lines += ["## Best checkpoint", ""]
        rows = [
            [b, v["checkpoint"], v["step"] if v["step"] is not None else "–", _pct(v["accuracy"])]
            for b, v in best["per_benchmark"].items()
        ]
        if best.get("average"):
            avg = best["average"]
            rows.append(
                [
                    f"**average** ({len(avg['benchmarks'])} benchmarks)",
                    avg["checkpoint"],
                    avg["step"] if avg["step"] is not None else "–",
                    _pct(avg["accuracy"]),
                ]
            )
        lines += [*_md_table(["benchmark", "best checkpoint", "step", "accuracy"], rows), ""]

    if result["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    lines += ["All numbers are in `analysis.json`.", ""]
    return "\n".join(lines)


def _thin(rows: list[dict], n: int) -> list[dict]:
    """At most `n` rows, evenly spaced, always with the first and the last."""
    if len(rows) <= n:
        return rows
    picks = sorted({round(i * (len(rows) - 1) / (n - 1)) for i in range(n)})
    return [rows[i] for i in picks]


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oneshot-trl analyze",
        description="Plots and a markdown report of the paper's diagnostics from a training run or eval outputs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("target", help="A training run dir, an eval output dir, or a Hub repo id of a run.")
    parser.add_argument(
        "--revision", default=None, help="Hub revision when target is a repo id (default: main)."
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="Where report.md, analysis.json and the PNGs go (default: <target>/analysis, or ./analysis-<repo> for a Hub repo).",
    )
    parser.add_argument(
        "--words",
        default=",".join(DEFAULT_REFLECTION_WORDS),
        help=f"Comma-separated self-reflection words/phrases to count (default: {','.join(DEFAULT_REFLECTION_WORDS)}).",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=8,
        help="Training examples drawn in the accuracy plot (default 8).",
    )
    parser.add_argument(
        "--saturation-threshold",
        type=float,
        default=0.99,
        help="Mean training accuracy at which training counts as saturated (default 0.99: the paper's ~100%%).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    if not words:
        print("oneshot-trl analyze: error: --words is empty.", file=sys.stderr)
        return 2
    try:
        root = resolve_target(args.target, revision=args.revision)
    except ValueError as err:  # includes hub.ModelResolutionError
        print(f"oneshot-trl analyze: error: {err}", file=sys.stderr)
        return 2
    local = Path(args.target).expanduser().is_dir()
    output_dir = (
        Path(args.output_dir)
        if args.output_dir
        else (root / "analysis" if local else Path(f"analysis-{args.target.rsplit('/', 1)[-1]}"))
    )
    data = load_run_data(root)
    data.source = args.target if args.revision is None else f"{args.target}@{args.revision}"
    result = analyze(
        data,
        output_dir,
        words=words,
        max_examples=args.max_examples,
        saturation_threshold=args.saturation_threshold,
    )
    print(f"Report: {output_dir / 'report.md'}")
    for name in result["plots"].values():
        print(f"  plot: {output_dir / name}")
    for note in result["notes"]:
        print(f"  note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
