"""The plots, report.md and analysis.json of `oneshot-trl analyze` (numbers from `analysis.stats`).

Plots use matplotlib's object API with the Agg canvas: no pyplot global state, no display needed.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from oneshot_trl.analysis.controls import controls_section, render_controls
from oneshot_trl.analysis.paper import comparison, reference_lines
from oneshot_trl.analysis.paper import render as render_paper
from oneshot_trl.analysis.stats import (
    DEFAULT_REFLECTION_WORDS,
    AnalysisData,
    best_checkpoints,
    count_reflection_words,
    eval_table,
    example_curves,
    first_step_at,
    mean_training_accuracy,
    post_saturation,
    reflection_by_step,
    sample_texts,
)
from oneshot_trl.files import atomic_write_text, atomic_writer
from oneshot_trl.run import is_finite, metric_series

logger = logging.getLogger(__name__)

TRAIN_METRICS = {  # log_history key -> (plot file stem, title, y label)
    "reward": ("reward", "Reward", "mean reward per completion"),
    "kl": ("kl", "KL to the reference model", "mean token KL (k3)"),
    "loss": ("loss", "Loss", "training loss"),
    "grad_norm": ("grad_norm", "Gradient norm", "global norm before clipping"),
    "entropy": ("entropy", "Policy entropy", "mean token entropy"),
    "completions/mean_length": ("response_length", "Response length", "mean completion length (tokens)"),
    "frac_reward_zero_std": ("zero_std_groups", "Groups with zero reward variance", "fraction of groups"),
    "boxed_rate": ("boxed_rate", "Boxed rate", "fraction of responses with \\boxed{}"),
}


# ---------------------------------------------------------------------------------------------------------------
# Plots
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
    path: Path,
    panels: Sequence[tuple[Series, str, str, str, tuple[float, float] | None]],
    vline=None,
    references: Sequence[dict[str, float] | None] | None = None,
) -> Path:
    """Side-by-side panels, each (series, title, xlabel, ylabel, ylim); `vline` = (x, label) drawn on every panel;
    `references[i]` = {series label: y}: dotted horizontal lines on panel i in that series' colour, labelled as
    the paper's."""
    fig, axes = _figure(len(panels))
    for i, (ax, (series, title, xlabel, ylabel, ylim)) in enumerate(zip(axes, panels, strict=True)):
        _draw(ax, series, title, xlabel, ylabel, ylim)
        if vline is not None:
            ax.axvline(vline[0], color="gray", linestyle="--", linewidth=1, label=vline[1])
        colors = {line.get_label(): line.get_color() for line in ax.get_lines()}
        for label, y in ((references[i] if references and i < len(references) else None) or {}).items():
            color = colors.get(label, "black")
            ax.axhline(y, color=color, linestyle=":", linewidth=1.2, label=f"paper: {label} ({100 * y:.1f})")
        if 0 < len(ax.get_lines()) <= 13:
            ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_writer(path, "wb") as f:
        fig.savefig(f, format="png")
    return path


# ---------------------------------------------------------------------------------------------------------------
# The analysis
# ---------------------------------------------------------------------------------------------------------------


def _eval_curves(table: Sequence[dict], key: str, average_label: str | None = "average") -> Series:
    """Per benchmark `key` of `eval_table` rows against step (checkpoints with a step only), plus their average."""
    rows = [r for r in table if r["step"] is not None]
    series: Series = {}
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        pts = [(r["step"], r[key]) for r in rows if r["benchmark"] == bench and is_finite(r[key])]
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
            if picked and all(is_finite(v) for v in picked):  # an average over fewer benchmarks would mislead
                avg.append((step, sum(picked) / len(picked)))
        if avg:
            series[average_label] = ([s for s, _ in avg], [v for _, v in avg])
    return series


def analyze(
    data: AnalysisData,
    output_dir: str | Path,
    words: Sequence[str] = DEFAULT_REFLECTION_WORDS,
    max_examples: int = 8,
    saturation_threshold: float = 0.99,
    paper_setup: str | None = None,
) -> dict[str, Any]:
    """Compute every number, write the PNG plots, `report.md` and `analysis.json` to `output_dir`.
    `paper_setup` (default: the run's recipe's) names the paper's row shown beside the run."""
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
    setup = paper_setup or (data.run_info or {}).get("paper_setup")
    result["paper_comparison"] = comparison(data.evals, setup)
    paper_lines = reference_lines(result["paper_comparison"])
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
        references = [None, {k: v for k, v in paper_lines.items() if k in bench_acc}]
        plots["post_saturation"] = save_plot(out / "post_saturation.png", panels, vline, references).name

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
        texts = [t for row in ev.samples for t in sample_texts(row)]
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

    # --- controls: code reasoning, clip fraction, accuracy vs the reward given (spurious-reward signatures) ---
    result["controls"], controls_plot = controls_section(data, out, save_plot)
    if controls_plot:
        plots["controls"] = controls_plot

    result["plots"] = plots
    result["notes"] = notes
    atomic_write_text(out / "report.md", render_report(result, data))
    atomic_write_text(out / "analysis.json", json.dumps(result, indent=2, default=str))
    logger.info("Wrote %d plot(s), report.md and analysis.json to %s.", len(plots), out)
    return result


# ---------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}" if is_finite(value) else "–"


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
    "reward": (
        "Reward",
        "Mean reward GRPO was given per completion (the accuracy reward: the example's accuracy).",
    ),
    "kl": ("KL", "Mean per-token KL estimate to the frozen reference model (logged when beta > 0)."),
    "loss": ("Loss", "The training loss (policy loss + KL and entropy terms)."),
    "grad_norm": ("Gradient norm", "Global gradient norm before clipping (max_grad_norm)."),
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
    "controls": (
        "Controls",
        "Code-reasoning rate of the training completions, clip fraction, and accuracy against the reward GRPO was "
        "given when that reward is not accuracy (Spurious Rewards, arXiv 2506.10947).",
    ),
    "format_vs_reasoning": (
        "Format vs reasoning",
        "Protocol accuracy, accuracy when only \\boxed{} answers count, and when the correct answer anywhere in the text counts.",
    ),
}


def render_report(result: dict[str, Any], data: AnalysisData) -> str:
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
    lines += render_paper(result.get("paper_comparison"))

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
                f"{100 * r['format_gap']:+.1f}" if is_finite(r["format_gap"]) else "–",
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

    if result.get("controls"):
        lines += render_controls(result["controls"])
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
