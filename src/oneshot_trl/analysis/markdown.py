"""report.md of `oneshot-trl analyze`: the numbers `analysis.report.analyze` computed, as Markdown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from oneshot_trl.analysis.controls import render_controls
from oneshot_trl.analysis.paper import pct
from oneshot_trl.analysis.paper import render as render_paper
from oneshot_trl.analysis.stats import AnalysisData
from oneshot_trl.run import is_finite


def _step(step: int | None) -> int | str:
    return step if step is not None else "–"


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
    lines = [
        *_render_run(result, data),
        *_render_summary(result),
        *render_paper(result.get("paper_comparison")),
        *_render_plots(result["plots"]),
        *_render_reflection(result["reflection"], result["reflection_words"]),
        *_render_checkpoints(result["evals"], result.get("best_checkpoint") or {}),
    ]
    if result.get("controls"):
        lines += render_controls(result["controls"])
    if result["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    lines += ["All numbers are in `analysis.json`.", ""]
    return "\n".join(lines)


def _render_run(result: dict[str, Any], data: AnalysisData) -> list[str]:
    lines = [f"# oneshot-trl analysis: `{result['source']}`", ""]
    if data.run_info:
        lines.append(f"Base model: `{data.run_info.get('base_model')}`")
        for ex in data.run_info.get("examples") or []:
            lines.append(f"- training example `{ex.get('example_id')}`: answer `{ex.get('answer')}`")
        lines.append("")
    if data.global_step is not None:
        lines += [f"Training steps: {data.global_step}.", ""]
    return lines


def _render_summary(result: dict[str, Any]) -> list[str]:
    sat = result.get("post_saturation")
    best = result.get("best_checkpoint") or {}
    summary = []
    if sat:
        summary.append(
            f"Mean training accuracy first reached {pct(sat['threshold'])}% at step {sat['saturation_step']}."
        )
        if "gain_after_saturation" in sat:
            summary.append(
                f"Benchmark average: {pct(sat['average_at_saturation']['accuracy'])} at step "
                f"{sat['average_at_saturation']['step']}, best after saturation {pct(sat['best_after_saturation']['accuracy'])} "
                f"at step {sat['best_after_saturation']['step']} ({100 * sat['gain_after_saturation']:+.1f} points)."
            )
    if best.get("average"):
        avg = best["average"]
        summary.append(f"Best checkpoint on average: `{avg['checkpoint']}` ({pct(avg['accuracy'])}).")
    return ["## Summary", "", *[f"- {s}" for s in summary], ""] if summary else []


def _render_plots(plots: dict[str, str]) -> list[str]:
    lines = ["## Plots", ""]
    if not plots:
        lines += ["No plots: nothing to plot was found (see Notes).", ""]
    for name, file in plots.items():
        title, text = PLOT_TEXT.get(name, (name, ""))
        lines += [f"### {title}", "", text, "", f"![{title}]({file})", ""]
    return lines


def _render_reflection(refl: dict[str, Any], words: Sequence[str]) -> list[str]:
    if not (refl["training"] or refl["eval"]):
        return []
    lines = [
        "## Self-reflection words",
        "",
        "Counts are case-insensitive whole-word matches. `any` = responses containing at least one word; `paper` = "
        "responses containing rethink/recheck/recalculate (the paper's Fig. 4 count).",
        "",
    ]
    if refl.get("training_bin_steps", 1) > 1:
        lines += [f"Training completions are counted in windows of {refl['training_bin_steps']} steps.", ""]
    header = ["where", "step", "responses", *[f"{w} /1k" for w in words], "any", "paper"]
    rows = []
    for where, recs in (("training", _thin(refl["training"], 12)), ("eval", refl["eval"])):
        for r in recs:
            rows.append(
                [
                    r.get("checkpoint", where) if where == "eval" else where,
                    _step(r["step"]),
                    r["num_responses"],
                ]
                + [f"{r['per_1k_responses'][w]:.0f}" for w in words]
                + [
                    f"{r['responses_with_any']} ({pct(r['frac_responses_with_any'])}%)",
                    r["responses_with_paper_words"],
                ]
            )
    return [*lines, *_md_table(header, rows), ""]


def _render_checkpoints(evals: Sequence[dict], best: dict[str, Any]) -> list[str]:
    """Format vs reasoning per checkpoint, then the best checkpoint per benchmark and on average."""
    if not evals:
        return []
    lines = [
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
            _step(r["step"]),
            r["benchmark"],
            pct(r["accuracy"]),
            pct(r["boxed_only_accuracy"]),
            pct(r["answer_anywhere_accuracy"]),
            pct(r["boxed_rate"]),
            f"{100 * r['format_gap']:+.1f}" if is_finite(r["format_gap"]) else "–",
        ]
        for r in evals
    ]
    lines += [*_md_table(header, rows), "", "## Best checkpoint", ""]
    rows = [
        [b, v["checkpoint"], _step(v["step"]), pct(v["accuracy"])] for b, v in best["per_benchmark"].items()
    ]
    if best.get("average"):
        avg = best["average"]
        rows.append(
            [
                f"**average** ({len(avg['benchmarks'])} benchmarks)",
                avg["checkpoint"],
                _step(avg["step"]),
                pct(avg["accuracy"]),
            ]
        )
    return [*lines, *_md_table(["benchmark", "best checkpoint", "step", "accuracy"], rows), ""]


def _thin(rows: list[dict], n: int) -> list[dict]:
    """At most `n` rows, evenly spaced, always with the first and the last."""
    if len(rows) <= n:
        return rows
    picks = sorted({round(i * (len(rows) - 1) / (n - 1)) for i in range(n)})
    return [rows[i] for i in picks]
