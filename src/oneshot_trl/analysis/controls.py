"""What the controls show: the signatures of a gain that is not the example's, and several runs side by side.

*Spurious Rewards* (arXiv 2506.10947) traces the random-reward gain of Qwen2.5-Math to GRPO's clipping, which
amplifies a behaviour the model already has: code-style reasoning (Python in the answer, never executed), 65% ->
90% of responses. So per training step this module reports:
- the code-reasoning rate of the sampled completions (a ```python block, `print(` or `def `);
- the clip fraction TRL logs (`clip_ratio/region_mean`: tokens whose probability ratio was clipped) and entropy;
- accuracy against the reward GRPO was given, when the reward is not accuracy (random, incorrect, majority,
  format): the gap is what the control did to real accuracy.
`compare` overlays the held-out accuracy curves of several runs (pi1 vs random vs format, ...).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oneshot_trl.analysis.stats import AnalysisData, checkpoint_averages
from oneshot_trl.files import atomic_write_text
from oneshot_trl.run import metric_series

CODE_PATTERN = re.compile(r"```\s*python|\bprint\(|\bdef \w+\(")
CLIP_KEY = "clip_ratio/region_mean"
ACCURACY_KEY = "rewards/accuracy/mean"


def has_code(text: str) -> bool:
    """A response that reasons in code: a Python block, a `print(` call or a function definition."""
    return bool(CODE_PATTERN.search(text))


def code_reasoning_by_step(completions: Sequence[dict]) -> list[dict[str, Any]]:
    """Per step of completions.jsonl: the share of sampled completions with code, and how many were sampled."""
    by_step: dict[int, list[bool]] = defaultdict(list)
    for rec in completions:
        if "step" in rec and isinstance(rec.get("completion"), str):
            by_step[int(rec["step"])].append(has_code(rec["completion"]))
    return [{"step": s, "rate": sum(v) / len(v), "n": len(v)} for s, v in sorted(by_step.items())]


def reward_key(log_history: Sequence[dict]) -> str | None:
    """The logged mean of the reward function that is not accuracy (`rewards/<name>/mean`), if any."""
    keys = {k for entry in log_history for k in entry if k.startswith("rewards/") and k.endswith("/mean")}
    others = sorted(keys - {ACCURACY_KEY})
    return others[0] if others else None


def trained_rewards(run_info: dict | None) -> list[str]:
    """The rewards a run was trained on (`reward_funcs` in oneshot_run.json; `reward` in runs before the registry)."""
    info = run_info or {}
    if info.get("reward_funcs"):
        return [str(name) for name in info["reward_funcs"]]
    return [str(info["reward"])] if info.get("reward") else []


def control_metrics(data: AnalysisData) -> dict[str, Any]:
    """Every per-step series of the controls section (empty lists when the run did not log them)."""
    out: dict[str, Any] = {"code_reasoning": code_reasoning_by_step(data.completions)}
    for name, key in (("clip_fraction", CLIP_KEY), ("entropy", "entropy")):
        steps, values = metric_series(data.log_history, key)
        out[name] = {"steps": steps, "values": values}
    key = reward_key(data.log_history)
    if key is not None and trained_rewards(data.run_info) != ["accuracy"]:
        (ra, acc), (rr, rew) = (
            metric_series(data.log_history, ACCURACY_KEY),
            metric_series(data.log_history, key),
        )
        out["accuracy_vs_reward"] = {"reward": key, "accuracy": {"steps": ra, "values": acc},
                                     "given": {"steps": rr, "values": rew}}  # fmt: skip
    return out


def controls_section(data: AnalysisData, out: Path, save_plot: Any) -> tuple[dict[str, Any], str | None]:
    """(numbers, plot file name or None) for `analyze`; `save_plot` is report.save_plot (no import cycle)."""
    m = control_metrics(data)
    panels = []
    if m["code_reasoning"]:
        rows = m["code_reasoning"]
        series = {"code in response": ([r["step"] for r in rows], [r["rate"] for r in rows])}
        panels.append((series, "Code reasoning (training completions)", "step", "fraction", (-0.02, 1.02)))
    if m["clip_fraction"]["steps"]:
        clip = m["clip_fraction"]
        panels.append(
            ({"clipped tokens": (clip["steps"], clip["values"])}, "Clip fraction", "step", "fraction", None)
        )
    if "accuracy_vs_reward" in m:
        avr = m["accuracy_vs_reward"]
        series = {"accuracy": (avr["accuracy"]["steps"], avr["accuracy"]["values"]),
                  f"reward given ({avr['reward'].split('/')[1]})": (avr["given"]["steps"], avr["given"]["values"])}  # fmt: skip
        panels.append((series, "Accuracy vs the reward given", "step", "mean per completion", (-0.02, 1.02)))
    if not panels:
        return m, None
    return m, save_plot(out / "controls.png", panels).name


def render_controls(m: dict[str, Any]) -> list[str]:
    """Report lines: first and last value of each control series."""

    def ends(steps: Sequence[int], values: Sequence[float]) -> str:
        return (
            f"{values[0]:.3f} (step {steps[0]}) -> {values[-1]:.3f} (step {steps[-1]})"
            if steps
            else "not logged"
        )

    code = m["code_reasoning"]
    lines = [
        "## Controls",
        "",
        "Signatures of a gain that is not the example's (Spurious Rewards, arXiv 2506.10947).",
        "",
    ]
    lines.append(
        "- code-reasoning rate: " + ends([r["step"] for r in code], [r["rate"] for r in code])
        if code
        else "- code-reasoning rate: no completions.jsonl"
    )
    lines.append("- clip fraction: " + ends(m["clip_fraction"]["steps"], m["clip_fraction"]["values"]))
    lines.append("- entropy: " + ends(m["entropy"]["steps"], m["entropy"]["values"]))
    if "accuracy_vs_reward" in m:
        avr = m["accuracy_vs_reward"]
        lines.append(
            f"- reward given (`{avr['reward']}`): " + ends(avr["given"]["steps"], avr["given"]["values"])
        )
        lines.append("- accuracy meanwhile: " + ends(avr["accuracy"]["steps"], avr["accuracy"]["values"]))
    return [*lines, ""]


def held_out_curve(data: AnalysisData) -> tuple[list[int], list[float]]:
    """(steps, mean benchmark accuracy) of a run's evaluated checkpoints that have a step (benchmarks they share)."""
    _, averages = checkpoint_averages(data.evals)
    points = sorted(
        (int(ev.step), averages[ev.label])
        for ev in data.evals
        if ev.step is not None and averages.get(ev.label) is not None
    )
    return [p[0] for p in points], [p[1] for p in points]


def compare(runs: dict[str, AnalysisData], output_dir: str | Path, save_plot: Any) -> dict[str, Any]:
    """Overlay the held-out accuracy curves (and the training accuracy) of several runs; compare.md/.json/.png."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves, train, summary = {}, {}, []
    for label, data in runs.items():
        steps, values = held_out_curve(data)
        if steps:
            curves[label] = (steps, values)
        t_steps, t_values = metric_series(data.log_history, ACCURACY_KEY)
        if t_steps:
            train[label] = (t_steps, t_values)
        reward = ", ".join(trained_rewards(data.run_info)) or "?"
        best = max(range(len(values)), key=values.__getitem__) if values else None
        summary.append({
            "run": label, "reward": reward, "checkpoints": len(steps),
            "first": None if not values else {"step": steps[0], "accuracy": values[0]},
            "last": None if not values else {"step": steps[-1], "accuracy": values[-1]},
            "best": None if best is None else {"step": steps[best], "accuracy": values[best]},
        })  # fmt: skip
    panels = []
    if curves:
        panels.append((curves, "Held-out accuracy (mean over benchmarks)", "step", "accuracy", None))
    if train:
        panels.append((train, "Training accuracy", "step", "accuracy", (-0.02, 1.02)))
    plot = save_plot(out / "compare.png", panels).name if panels else None

    def pct(point: dict | None) -> str:
        return "–" if point is None else f"{100 * point['accuracy']:.1f} (step {point['step']})"

    lines = ["| run | reward | checkpoints | first | last | best |", "|---|---|---:|---|---|---|"]
    lines += [f"| {s['run']} | {s['reward']} | {s['checkpoints']} | {pct(s['first'])} | {pct(s['last'])} "
              f"| {pct(s['best'])} |" for s in summary]  # fmt: skip
    if plot:
        lines += ["", f"![held-out accuracy]({plot})"]
    atomic_write_text(out / "compare.md", "# Runs compared\n\n" + "\n".join(lines) + "\n")
    result = {"runs": summary, "plot": plot}
    atomic_write_text(out / "compare.json", json.dumps(result, indent=2) + "\n")
    return result
