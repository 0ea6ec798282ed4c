"""Checkpoint retention that keeps the evidence: the newest N checkpoints plus the best K by in-training evals.
The rules (light: doctor and checks use them); the Trainer callback that applies them is in `callbacks`.

transformers' `save_total_limit` deletes the oldest checkpoints whatever their eval (`load_best_model_at_end`
protects one, and only by the Trainer's own `evaluate`), so a day-long run keeps its last ten checkpoints and loses
the best one the paper would report. `callbacks.CheckpointRetentionCallback` runs after each save and its eval
(`callbacks.BenchmarkEvalCallback`) and push (`hub.push.HubPushCallback`), reads every kept checkpoint's eval
from `eval/step-NNNNNN/results.json` (so a resumed run ranks the checkpoints evaluated before it), and deletes
only what is neither among the newest `keep_last_checkpoints` nor among the best `keep_best_checkpoints` by any
of `keep_best_metrics`; a checkpoint not evaluated yet never counts as worse. With push_to_hub, a checkpoint is
deleted only once its upload succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from oneshot_trl.eval.benchmarks import SIX_BENCHMARKS

logger = logging.getLogger(__name__)

AVERAGE_METRIC = "eval/average"


def metric_value(results: Mapping[str, Any], metric: str) -> float | None:
    """`metric` (eval/<benchmark> or eval/average) of one eval's results.json; None where it was not evaluated.
    eval/average is the six-benchmark average only: a mean over fewer benchmarks would rank unlike steps."""
    benchmarks = results.get("benchmarks") or {}
    if metric == AVERAGE_METRIC:
        if not set(SIX_BENCHMARKS) <= set(benchmarks):
            return None
        value = results.get("average")
    else:
        value = (benchmarks.get(metric.removeprefix("eval/")) or {}).get("accuracy")
    return float(value) if isinstance(value, int | float) else None


def default_metrics(eval_benchmarks: Sequence[str]) -> list[str]:
    """The paper's ranking (best six-benchmark average) when all six are evaluated, else the first benchmark."""
    if set(SIX_BENCHMARKS) <= set(eval_benchmarks):
        return [AVERAGE_METRIC]
    return [f"eval/{eval_benchmarks[0]}"] if eval_benchmarks else []


def checkpoints_to_keep(
    steps: Iterable[int], scores: Mapping[str, Mapping[int, float]], keep_last: int, keep_best: int
) -> set[int]:
    """The newest `keep_last` steps plus, per metric, the `keep_best` best-scoring steps (ties: the earlier step,
    as the first to reach a score is the one a curve reports)."""
    steps = sorted(steps)
    keep = set(steps[-keep_last:]) if keep_last > 0 else set()
    for by_step in scores.values():
        ranked = sorted((s for s in steps if s in by_step), key=lambda s: (-by_step[s], s))
        keep.update(ranked[:keep_best])
    return keep


def evaluated_benchmarks(script_args: Any) -> list[str]:
    return [*(script_args.eval_benchmarks or []), *(script_args.eval_full_benchmarks or [])]


def retention_metrics(script_args: Any) -> list[str]:
    return list(script_args.keep_best_metrics or default_metrics(evaluated_benchmarks(script_args)))


def max_checkpoints_on_disk(script_args: Any, training_args: Any) -> int | None:
    """Most checkpoints a run keeps at once (+1 while a new one is saved and evaluated); None: unbounded.
    For doctor's disk line: this times one checkpoint's size."""
    if script_args.keep_last_checkpoints is not None:
        ranked = script_args.keep_best_checkpoints * len(retention_metrics(script_args))
        return script_args.keep_last_checkpoints + ranked
    return training_args.save_total_limit or None


def retention_problems(script_args: Any, training_args: Any) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a recipe's checkpoint retention, for `train` and `doctor`."""
    errors: list[str] = []
    warnings: list[str] = []
    a, s = training_args, script_args
    benchmarks = evaluated_benchmarks(s)
    evaluates = bool(benchmarks or s.eval_dataset)
    saves = a.save_strategy not in ("no", None) and str(a.save_strategy) != "SaveStrategy.NO"
    if s.eval_full_benchmarks and not s.eval_full_steps:
        errors.append("eval_full_benchmarks needs eval_full_steps (steps between those evals).")
    if s.eval_full_steps and (s.eval_full_steps <= 0 or (a.save_steps and s.eval_full_steps % a.save_steps)):
        errors.append(
            f"eval_full_steps ({s.eval_full_steps}) must be a positive multiple of save_steps ({a.save_steps}): "
            "evals run at saved checkpoints."
        )
    if s.keep_last_checkpoints is not None:
        if s.keep_last_checkpoints < 1 or s.keep_best_checkpoints < 0:
            errors.append("keep_last_checkpoints must be >= 1 and keep_best_checkpoints >= 0.")
        if a.save_total_limit:
            errors.append(
                f"save_total_limit ({a.save_total_limit}) and keep_last_checkpoints are both set: transformers "
                "would delete the oldest checkpoints whatever their eval. Set save_total_limit: null."
            )
        for metric in retention_metrics(s) if s.keep_best_checkpoints else []:
            name = metric.removeprefix("eval/")
            named = name in benchmarks or bool(s.eval_dataset)  # a dataset's name is known once it is read
            if not metric.startswith("eval/") or (name != "average" and not named):
                errors.append(
                    f"keep_best_metrics: {metric!r} is not an in-training eval of this recipe (eval/<benchmark> of "
                    f"eval_benchmarks or eval_full_benchmarks, or eval/average): {benchmarks or 'none'}."
                )
            elif name == "average" and not set(SIX_BENCHMARKS) <= set(benchmarks):
                errors.append(
                    "keep_best_metrics: eval/average needs all six benchmarks in the in-training evals."
                )
        if s.keep_best_checkpoints and not evaluates:
            errors.append(
                "keep_best_checkpoints needs in-training evals (eval_benchmarks) to rank checkpoints."
            )
    deletes = saves and (s.keep_last_checkpoints is not None or bool(a.save_total_limit))
    if evaluates and deletes and not a.push_to_hub:
        if a.save_total_limit and s.keep_last_checkpoints is None:
            warnings.append(
                f"save_total_limit: {a.save_total_limit} deletes the oldest checkpoints whatever their eval, and "
                "push_to_hub is off: the best evaluated checkpoint is lost. Use keep_last_checkpoints + "
                "keep_best_checkpoints (save_total_limit: null), or push_to_hub: true."
            )
        else:
            warnings.append(
                "checkpoint retention deletes evaluated checkpoints that are not among the newest or the best, and "
                "push_to_hub is off: their weights are lost (their evals stay in eval/). Set push_to_hub: true "
                "(every checkpoint on its branch) to keep them all."
            )
    return errors, warnings
