"""Tables and plots of lab results (markdown for the terminal and README, PNG via matplotlib)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

METRIC_LABELS = {
    "accuracy": "accuracy (official grader)",
    "boxed_accuracy": "boxed & correct (= reward)",
    "boxed_rate": "boxed rate",
    "careful_rate": "careful strategy",
    "answer_anywhere_accuracy": "answer anywhere",
}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def pct_pm(values: Sequence[float]) -> str:
    mean, std = mean_std(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if len(values) > 1 else pct(mean)


def before_after_table(before: Mapping[str, float], after: Mapping[str, float], base_profile=None) -> str:
    """Held-out metrics before and after; with the base model's profile, its pass@8 and forced strategies."""
    lines = ["| held-out metric (%) | before | after |", "|---|---|---|"]
    for key, label in METRIC_LABELS.items():
        lines.append(f"| {label} | {pct(before[key])} | {pct(after[key])} |")
    if base_profile:
        forced = base_profile["forced_strategy_accuracy"]
        k = max(base_profile["pass@k"], key=int)
        lines += [
            f"| pass@{k} (T=0.6) | {pct(base_profile['pass@k'][k])} | |",
            f"| accuracy, careful strategy forced | {pct(forced['careful'])} | |",
            f"| accuracy, shortcut forced | {pct(forced['shortcut'])} | |",
        ]
    return "\n".join(lines)


def saturation_table(rows: Sequence[Mapping], key: str = "seed") -> list[str]:
    """Markdown rows of `runs.saturation` records (one per seed, or per grid cell with `key`)."""
    lines = [
        "The example counts as saturated at the first step where its train accuracy, mean of the last 5 steps, "
        "reaches 90%; held-out accuracy (%) at the first eval at or after that step, at the end, and at its best.",
        "",
        f"| {key} | saturation step | held-out base | at saturation | end | best | lift | end - saturation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        at, gain = r["at_saturation"], r["post_saturation_gain"]
        lines.append(
            f"| {r[key]} | {r['saturation_step'] or 'never'} | {pct(r['base'])} | "
            f"{pct(at['accuracy']) + ' (step ' + str(at['step']) + ')' if at else '–'} | "
            f"{pct(r['end']['accuracy'])} (step {r['end']['step']}) | {pct(r['best']['accuracy'])} "
            f"(step {r['best']['step']}) | {pct(r['lift'])} | {'–' if gain is None else f'{100 * gain:+.1f}'} |"
        )
    return lines


def base_line(base: Mapping) -> str:
    """One line on the base model: shipped or pretrained here, and whether a local pretraining of the shipped
    base's settings agrees with the shipped base."""
    if base["source"] == "other":
        return f"base model: {base['path']}"
    line = (
        f"base model: {base['source']} (seed {base['seed']}, {base['steps']} pretraining steps, "
        f"content {base['content_sha256'][:12]})"
    )
    vs = base.get("vs_shipped")
    if vs is not None:
        gaps = ", ".join(f"{k} {100 * v:+.1f}" for k, v in vs["forced_accuracy_gap"].items())
        verdict = (
            "identical to" if vs["identical_weights"] else "agrees with" if vs["agrees"] else "DISAGREES with"
        )
        line += f"; {verdict} the shipped base (forced-strategy accuracy gaps, points: {gaps})"
    return line


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_demo(results: Mapping, path: str | Path) -> Path:
    """Train reward per step on the one example (left); held-out metrics against step (right)."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = range(1, len(results["train_reward"]) + 1)
    ax1.plot(steps, results["train_reward"], label="reward (the one example)")
    if results.get("train_boxed_rate"):
        ax1.plot(steps, results["train_boxed_rate"], label="boxed rate (rollouts)", alpha=0.7)
    ax1.set(xlabel="step", ylabel="mean over rollouts", ylim=(-0.02, 1.02), title="1-shot RLVR training")
    ax1.legend(loc="lower right", fontsize=8)
    curve = results["heldout_curve"]
    for key in ("accuracy", "careful_rate", "boxed_rate"):
        ax2.plot(
            [p["step"] for p in curve], [100 * p[key] for p in curve], marker="o", label=METRIC_LABELS[key]
        )
    ax2.set(xlabel="step", ylabel="% of held-out problems", ylim=(-2, 102), title="held-out (greedy)")
    ax2.legend(fontsize=8, loc="lower right")
    fig.suptitle("oneshot-trl lab: micro-scale synthetic task (CPU)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_arms(
    summary: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | Path,
    title: str,
    baseline: Mapping[str, float] | None = None,
    keys: Sequence[str] = ("accuracy", "boxed_accuracy", "boxed_rate", "careful_rate"),
) -> Path:
    """Grouped bars: one group per metric, one bar per arm (mean, error bar = std over seeds)."""
    plt = _plt()
    arms = list(summary)
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(keys), 3.6))
    groups = (["base"] if baseline else []) + arms
    width = 0.8 / len(groups)
    for g, arm in enumerate(groups):
        means, stds = [], []
        for key in keys:
            values = [baseline[key]] if arm == "base" else summary[arm][key]
            m, s = mean_std(values)
            means.append(100 * m)
            stds.append(100 * s)
        xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(keys))]
        ax.bar(
            xs, means, width=width, yerr=stds, capsize=2, label=arm, color="0.7" if arm == "base" else None
        )
    ax.set_xticks(range(len(keys)), [METRIC_LABELS.get(k, k).split(" (")[0] for k in keys], fontsize=8)
    ax.set(ylabel="% of held-out problems (mean ± std over seeds)", ylim=(0, 105), title=title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_curves(
    curves: Mapping[str, Sequence[Sequence[float]]],
    steps: Mapping[str, Sequence[int]],
    path: str | Path,
    title: str,
    ylabel: str = "%",
) -> Path:
    """Mean ± std bands over seeds of several curves against step (post-saturation)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, runs in curves.items():
        xs = list(steps[name])
        cols = list(zip(*runs, strict=True))
        stats = [mean_std(c) for c in cols]
        means = [100 * m for m, _ in stats]
        ax.plot(xs, means, label=name, marker="o" if len(xs) < 30 else None, markersize=3)
        ax.fill_between(xs, [100 * (m - s) for m, s in stats], [100 * (m + s) for m, s in stats], alpha=0.2)
    ax.set(xlabel="step", ylabel=ylabel, ylim=(-2, 102), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
