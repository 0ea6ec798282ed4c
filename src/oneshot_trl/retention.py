"""Checkpoint retention that keeps the evidence: the newest N checkpoints plus the best K by in-training evals.
This module is the policy (which checkpoints to keep, by which metric) and its rules, which the recipe's one
validation pass runs (`OneShotArguments.__post_init__`, `recipe.build_configs`); its warnings are `checks`', and the
Trainer callback that applies it is in `callbacks`.

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

from oneshot_trl.paper_results import SIX_BENCHMARKS

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


def max_checkpoints_on_disk(script_args: Any, training_args: Any) -> int | None:
    """Most checkpoints a run keeps at once (+1 while a new one is saved and evaluated); None: unbounded.
    For doctor's disk line: this times one checkpoint's size."""
    if script_args.keep_last_checkpoints is not None:
        ranked = script_args.keep_best_checkpoints * len(script_args.ranking_metrics)
        return script_args.keep_last_checkpoints + ranked
    return training_args.save_total_limit or None


def evaluated_benchmarks(args: Any) -> list[str]:
    """Every benchmark a recipe's in-training evals run: `eval_benchmarks`, then `eval_full_benchmarks`."""
    return [*(args.eval_benchmarks or []), *(args.eval_full_benchmarks or [])]


def check_retention_keys(args: Any) -> None:
    """The in-training evals' and retention's rules among a recipe's own keys (`OneShotArguments.__post_init__`
    runs them): a ValueError names the key."""
    if args.eval_full_benchmarks and not args.eval_full_steps:
        raise ValueError("eval_full_benchmarks needs eval_full_steps (steps between those evals).")
    if args.keep_last_checkpoints is None or not args.keep_best_checkpoints:
        return
    benchmarks = evaluated_benchmarks(args)
    if not (benchmarks or args.eval_dataset):
        raise ValueError(
            "keep_best_checkpoints needs in-training evals (eval_benchmarks) to rank checkpoints."
        )
    for metric in args.ranking_metrics:
        # a dataset's metric is named once the dataset is read
        named = metric.removeprefix("eval/") in benchmarks or bool(args.eval_dataset)
        if not metric.startswith("eval/") or (metric != AVERAGE_METRIC and not named):
            raise ValueError(
                f"keep_best_metrics: {metric!r} is not an in-training eval of this recipe (eval/<benchmark> of "
                f"eval_benchmarks or eval_full_benchmarks, or eval/average): {benchmarks or 'none'}."
            )
        if metric == AVERAGE_METRIC and not set(SIX_BENCHMARKS) <= set(benchmarks):
            raise ValueError(
                "keep_best_metrics: eval/average needs all six benchmarks in the in-training evals."
            )


def check_retention_with_trainer(script_args: Any, training_args: Any) -> None:
    """Retention's rules between the recipe's configs (`recipe.build_configs` runs them once both are built):
    in-training evals run at saved checkpoints, and one policy deletes checkpoints."""
    s, a = script_args, training_args
    if s.eval_full_steps and a.save_steps and s.eval_full_steps % a.save_steps:
        raise ValueError(
            f"eval_full_steps ({s.eval_full_steps}) must be a multiple of save_steps ({a.save_steps}): evals run at "
            "saved checkpoints."
        )
    if s.keep_last_checkpoints is not None and a.save_total_limit:
        raise ValueError(
            f"save_total_limit ({a.save_total_limit}) and keep_last_checkpoints are both set: transformers would "
            "delete the oldest checkpoints whatever their eval. Set save_total_limit: null."
        )
