"""Benchmark metrics over per-sample 0/1 scores: accuracy (avg@n), unbiased pass@k, bootstrap CI, averages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from oneshot_trl.paper_results import SIX_BENCHMARKS


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `c` correct out of `n` samples (Chen et al. 2021, Codex):
    1 - C(n-c, k) / C(n, k), computed as a stable product.

    >>> pass_at_k(n=8, c=2, k=1)
    0.25
    """
    if not 1 <= k <= n:
        raise ValueError(f"k ({k}) must be in [1, n={n}].")
    if not 0 <= c <= n:
        raise ValueError(f"c ({c}) must be in [0, n={n}].")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_table(correct: Sequence[Sequence[bool]]) -> dict[str, float]:
    """Mean unbiased pass@k over problems for every k <= the smallest number of samples per problem."""
    if not correct:
        return {}
    k_max = min(len(c) for c in correct)
    counts = [(len(c), int(sum(c))) for c in correct]
    return {str(k): float(np.mean([pass_at_k(n, c, k) for n, c in counts])) for k in range(1, k_max + 1)}


def bootstrap_ci(
    per_problem: Sequence[float], *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over problems (resampling problems, fixed seed, so reproducible).

    On AIME (30 problems) one problem is 3.3 points: the CI says how much a difference can be noise.
    """
    values = np.asarray(per_problem, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def summarize(
    correct: Sequence[Sequence[bool]],
    *,
    boxed: Sequence[Sequence[bool]] | None = None,
    anywhere: Sequence[Sequence[bool]] | None = None,
    seed: int = 0,
) -> dict:
    """Metrics of one benchmark from per-problem lists of per-sample outcomes.

    accuracy = mean over problems of the per-problem mean (= avg@n; plain accuracy when n = 1).
    boxed_rate / answer_anywhere_accuracy are means over all samples.
    """
    per_problem = [float(np.mean(c)) if len(c) else 0.0 for c in correct]
    n_per = sorted({len(c) for c in correct})
    n = n_per[0] if len(n_per) == 1 else None
    out = {
        "accuracy": float(np.mean(per_problem)) if per_problem else float("nan"),
        "metric": ("acc" if n == 1 else f"avg@{n}") if n is not None else "avg@mixed",
        "n_problems": len(correct),
        "n_samples": int(sum(len(c) for c in correct)),
        "samples_per_problem": n if n is not None else n_per,
        "pass@k": pass_at_k_table(correct),
        "ci95": list(bootstrap_ci(per_problem, seed=seed)),
    }
    if boxed is not None:
        out["boxed_rate"] = _sample_mean(boxed)
    if anywhere is not None:
        out["answer_anywhere_accuracy"] = _sample_mean(anywhere)
    return out


def _sample_mean(values: Sequence[Sequence[bool]]) -> float:
    flat = [bool(v) for row in values for v in row]
    return float(np.mean(flat)) if flat else float("nan")


def benchmark_average(accuracies: Mapping[str, float]) -> tuple[float | None, str]:
    """The paper's six-benchmark average (unweighted mean of the six accuracies) when all six ran; otherwise
    the unweighted mean of what ran, labelled so it is never mistaken for the paper's number."""
    if not accuracies:
        return None, "none"
    if all(b in accuracies for b in SIX_BENCHMARKS):
        return float(np.mean([accuracies[b] for b in SIX_BENCHMARKS])), "six-benchmark average"
    label = f"mean of {len(accuracies)} benchmarks ({', '.join(accuracies)}), not the six-benchmark average"
    return float(np.mean(list(accuracies.values()))), label
