"""The numbers of `oneshot-trl analyze`: what a run recorded (read through `Run`), and the statistics on it.

Self-reflection word counts, each example's training accuracy against step, benchmark accuracy per checkpoint
with boxed-only and answer-anywhere variants (format vs reasoning), the best checkpoint, and how benchmark
accuracy moves after training accuracy saturates (post-saturation generalization).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oneshot_trl.layout import COMPLETIONS_FILE, HISTORY_FILE
from oneshot_trl.run import CheckpointEval, Run, is_finite, metric_series

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
# What a run recorded
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class AnalysisData:
    """What `analyze` reads of a run (or an eval output dir); `notes` say which pieces are missing."""

    source: str
    log_history: list[dict] = field(default_factory=list)
    global_step: int | None = None
    accuracy_history: list[dict] = field(default_factory=list)
    completions: list[dict] = field(default_factory=list)
    evals: list[CheckpointEval] = field(default_factory=list)
    run_info: dict | None = None
    notes: list[str] = field(default_factory=list)


def load_run_data(root: str | Path | Run) -> AnalysisData:
    """Everything `analyze` reads from a run dir or eval output dir; missing pieces become notes."""
    run = root if isinstance(root, Run) else Run(root)
    data = AnalysisData(source=run.source)
    if run.trainer_state_file() is None:
        data.notes.append("No trainer_state.json (run dir or checkpoint-*/): no training-metric plots.")
    else:
        state = run.trainer_state()
        data.log_history = list(state.get("log_history") or [])
        data.global_step = state.get("global_step")
    for name, attr, what in (
        (HISTORY_FILE, "accuracy_history", "per-example training accuracy"),
        (COMPLETIONS_FILE, "completions", "reflection words in training completions"),
    ):
        if run.has(name):
            setattr(data, attr, run.read_jsonl(name))
        else:
            data.notes.append(f"No {name}: no {what}.")
    data.run_info = run.run_info() or None
    data.evals = run.evals()
    if not data.evals:
        data.notes.append(
            "No per-step evals (eval/step-*/results.json or <revision>/results.json): no benchmark curves."
        )
    return data


# ---------------------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------------------


def example_curves(data: AnalysisData) -> dict[str, tuple[list[int], list[float]]]:
    """Training accuracy of each example against step: accuracy_history.jsonl, else `train_accuracy/<id>` logs."""
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for rec in data.accuracy_history:
        if "example_id" in rec and "step" in rec and is_finite(rec.get("accuracy")):
            curves[str(rec["example_id"])][int(rec["step"])] = float(rec["accuracy"])
    if not curves:
        prefix = "train_accuracy/"
        keys = dict.fromkeys(k for e in data.log_history for k in e if k.startswith(prefix))
        for key in keys:
            steps, values = metric_series(data.log_history, key)
            curves[key[len(prefix) :]] = dict(zip(steps, values, strict=True))
    return {eid: (sorted(c), [c[s] for s in sorted(c)]) for eid, c in curves.items()}


def mean_training_accuracy(
    data: AnalysisData, curves: dict[str, tuple[list[int], list[float]]]
) -> tuple[list[int], list[float]]:
    """Mean training accuracy per step over examples, weighted by samples when accuracy_history has them."""
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if data.accuracy_history:
        for rec in data.accuracy_history:
            if "step" in rec and is_finite(rec.get("accuracy")):
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


def sample_texts(row: dict) -> list[str]:
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
        texts = sample_texts(row)
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
                    "format_gap": anywhere - acc if is_finite(anywhere) and is_finite(acc) else None,
                    "mean_response_chars": s.get("mean_response_chars"),
                    "n_samples": res.get("n_samples"),
                }
            )
    return rows


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if is_finite(v)]
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
        scored = [(e, a) for e, a in scored if is_finite(a)]
        if scored:
            best, acc = max(scored, key=lambda ea: ea[1])  # max keeps the first of equal values
            per_benchmark[bench] = {"checkpoint": best.label, "step": best.step, "accuracy": acc}
    common, averages = checkpoint_averages(evals)
    scored_avg = [(e, averages[e.label]) for e in evals if is_finite(averages.get(e.label))]
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
        (e.step, averages[e.label]) for e in evals if e.step is not None and is_finite(averages.get(e.label))
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
