"""The plots and analysis.json of `oneshot-trl analyze`, and its report.md (numbers from `analysis.stats`,
Markdown from `analysis.markdown`).

Plots use matplotlib's object API with the Agg canvas: no pyplot global state, no display needed.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oneshot_trl.analysis.controls import controls_section
from oneshot_trl.analysis.markdown import render_report
from oneshot_trl.analysis.paper import comparison, reference_lines
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


@dataclass
class Section:
    """One part of the analysis: its numbers (keys of analysis.json), the plots it wrote (name -> file name in
    output_dir) and its notes for the report."""

    numbers: dict[str, Any]
    plots: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


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
    table = eval_table(data.evals)
    setup = paper_setup or (data.run_info or {}).get("paper_setup")
    sections = [
        generalization_section(data, out, table, saturation_threshold, max_examples, setup),
        training_metrics_section(data, out, table),
        reflection_section(data, out, words),
        format_section(data, out, table),
    ]
    result: dict[str, Any] = {"source": data.source, "reflection_words": list(words)}
    plots: dict[str, str] = {}
    notes = list(data.notes)
    for section in sections:
        result.update(section.numbers)
        plots.update(section.plots)
        notes += section.notes
    # controls: code reasoning, clip fraction, accuracy vs the reward given (spurious-reward signatures)
    result["controls"], controls_plot = controls_section(data, out, save_plot)
    if controls_plot:
        plots["controls"] = controls_plot
    result["plots"] = plots
    result["notes"] = notes
    atomic_write_text(out / "report.md", render_report(result, data))
    atomic_write_text(out / "analysis.json", json.dumps(result, indent=2, default=str))
    logger.info("Wrote %d plot(s), report.md and analysis.json to %s.", len(plots), out)
    return result


def generalization_section(
    data: AnalysisData,
    out: Path,
    table: Sequence[dict],
    saturation_threshold: float,
    max_examples: int,
    paper_setup: str | None,
) -> Section:
    """Training accuracy next to benchmark accuracy (post-saturation generalization), beside the paper's row."""
    curves = example_curves(data)
    mean_steps, mean_acc = mean_training_accuracy(data, curves)
    sat = post_saturation(mean_steps, mean_acc, data.evals, saturation_threshold)
    paper = comparison(data.evals, paper_setup)
    section = Section(
        {
            "training_accuracy": {
                eid: {
                    "steps": s,
                    "accuracy": a,
                    "first_step_at_threshold": first_step_at(s, a, saturation_threshold),
                }
                for eid, (s, a) in curves.items()
            },
            "mean_training_accuracy": {"steps": mean_steps, "accuracy": mean_acc},
            "post_saturation": sat,
            "paper_comparison": paper,
        }
    )
    bench_acc = _eval_curves(table, "accuracy")
    if not (curves or bench_acc):
        return section
    train_series: Series = dict(list(curves.items())[:max_examples])
    if len(curves) > max_examples:
        section.notes.append(
            f"{len(curves)} training examples: the accuracy plot shows the first {max_examples} and the mean."
        )
    if len(curves) > 1:
        train_series["mean over examples"] = (mean_steps, mean_acc)
    panels = [
        (train_series, "Training accuracy of the example(s)", "step", "accuracy", (-0.02, 1.02)),
        (bench_acc, "Benchmark accuracy", "step", "accuracy", None),
    ]
    vline = (sat["saturation_step"], "training accuracy saturates") if sat else None
    references = [None, {k: v for k, v in reference_lines(paper).items() if k in bench_acc}]
    section.plots["post_saturation"] = save_plot(out / "post_saturation.png", panels, vline, references).name
    return section


def training_metrics_section(data: AnalysisData, out: Path, table: Sequence[dict]) -> Section:
    """Each of TRAIN_METRICS from log_history, with the benchmarks' counterpart where there is one."""
    section = Section({"training_metrics": {}})
    benchmark_panels = {  # training metric -> its benchmark counterpart's panel
        "boxed_rate": (
            _eval_curves(table, "boxed_rate"),
            "Boxed rate (benchmarks)",
            "step",
            "fraction of responses",
            (-0.02, 1.02),
        ),
        "completions/mean_length": (
            _eval_curves(table, "mean_response_chars", average_label=None),
            "Response length (benchmarks)",
            "step",
            "mean characters",
            None,
        ),
    }
    for key, (stem, title, ylabel) in TRAIN_METRICS.items():
        steps, values = metric_series(data.log_history, key)
        section.numbers["training_metrics"][key] = {"steps": steps, "values": values}
        panels = []
        if steps:
            panels.append(
                ({f"training ({key})": (steps, values)}, f"{title} (training)", "step", ylabel, None)
            )
        if key in benchmark_panels and benchmark_panels[key][0]:
            panels.append(benchmark_panels[key])
        if panels:
            section.plots[stem] = save_plot(out / f"{stem}.png", panels).name
        elif data.log_history:
            section.notes.append(f"`{key}` is not in the training logs: no {stem} plot.")
    return section


def reflection_section(data: AnalysisData, out: Path, words: Sequence[str]) -> Section:
    """Self-reflection words per 1k responses, in training completions and in benchmark responses."""
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
    section = Section(
        {
            "reflection": {
                "training": train_reflection,
                "training_bin_steps": bin_size,
                "eval": eval_reflection,
            }
        }
    )
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
        section.plots["reflection_words"] = save_plot(out / "reflection_words.png", panels).name
    else:
        section.notes.append(
            "No completions.jsonl and no eval samples with responses: no reflection-word counts."
        )
    return section


def format_section(data: AnalysisData, out: Path, table: Sequence[dict]) -> Section:
    """Format vs reasoning per checkpoint (protocol, boxed-only and answer-anywhere accuracy) and the best
    checkpoints."""
    section = Section(
        {"evals": list(table), "best_checkpoint": best_checkpoints(data.evals) if data.evals else None}
    )
    protocols = {
        str((e.results.get("protocol") or {}).get("hash")) for e in data.evals if e.results.get("protocol")
    }
    if len(protocols) > 1:
        section.notes.append(
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
        section.plots["format_vs_reasoning"] = save_plot(
            out / "format_vs_reasoning.png",
            [(fmt_series, "Format vs reasoning (mean over benchmarks)", "step", "accuracy", None)],
        ).name
    return section
