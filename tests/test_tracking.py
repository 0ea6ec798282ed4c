"""Live tracking and checkpoint retention: the compact console line and retention that keeps the newest and the
best checkpoints. A real run's series in trackio's local store, and its retention: tests/test_journey.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from oneshot_trl.callbacks import CheckpointRetentionCallback
from oneshot_trl.layout import RESULTS_FILE, checkpoint_name, eval_dir
from oneshot_trl.retention import checkpoints_to_keep, max_checkpoints_on_disk, metric_value
from oneshot_trl.tracking import CompactLog, compact_line

SIX = ("math500", "aime24", "amc23", "minerva_math", "olympiadbench", "aime25")


def _results(**accuracies: float) -> dict:
    benchmarks = {name: {"accuracy": acc} for name, acc in accuracies.items()}
    average = sum(accuracies.values()) / len(accuracies)
    return {"benchmarks": benchmarks, "average": average}


def test_compact_line_keeps_what_a_one_shot_user_watches():
    logs = {
        "loss": 0.01, "grad_norm": 0.3, "reward": 0.625, "reward_std": 0.4, "train_accuracy/dsr_sub-124": 0.625,
        "entropy": 0.41, "completions/mean_length": 812.4, "kl": 0.0012, "clip_ratio/region_mean": 0.003,
        "frac_reward_zero_std": 0.375, "learning_rate": 1e-6, "num_tokens": 12345.0, "epoch": 0.1,
    }  # fmt: skip
    line = compact_line(logs, 20, 2000, 41.25)
    assert line == (
        "step 20/2000 | reward 0.625 | acc 0.625 | entropy 0.410 | len 812 | kl 1.20e-03 | clip 0.003 | "
        "zero-var 0.38 | 41.2 s/step"
    )
    assert "\n" not in line and "learning_rate" not in line and "num_tokens" not in line
    two = compact_line({"reward": 0.5, "train_accuracy/a": 0.25, "train_accuracy/b": 0.75}, 3, 10, None)
    assert two == "step 3/10 | reward 0.500 | acc(mean of 2) 0.500"
    assert compact_line({"eval_math500": 0.412, "eval_average": 0.3}, 40, 100, None) == (
        "eval step 40: math500 0.412  average 0.300"
    )
    assert compact_line({"train_runtime": 12.0, "total_flos": 0.0}, 2, 2, None) is None


def test_compact_log_times_steps_between_training_logs_only():
    log, state = CompactLog(), SimpleNamespace(global_step=1, max_steps=10)
    assert "s/step" not in log.line({"reward": 1.0}, state)  # first log: no interval yet
    state.global_step = 3
    assert log.line({"eval_math500": 0.5}, state).startswith(
        "eval step 3"
    )  # an eval does not reset the clock
    assert log.line({"reward": 1.0}, state).endswith(" s/step")


def test_metric_value_ranks_by_the_six_benchmark_average_only_where_all_six_ran():
    six = _results(**dict.fromkeys(SIX, 0.5))
    assert metric_value(six, "eval/average") == 0.5
    assert metric_value(six, "eval/aime24") == 0.5
    assert metric_value(_results(math500=0.7), "eval/average") is None  # a mean of one is not the average
    assert metric_value(_results(math500=0.7), "eval/aime24") is None


def test_checkpoints_to_keep_is_the_newest_plus_the_best_per_metric():
    steps = [20, 40, 60, 80, 100]
    scores = {
        "eval/math500": {20: 0.5, 40: 0.9, 60: 0.6, 80: 0.9, 100: 0.1},
        "eval/average": {20: 0.4, 100: 0.3},
    }
    # newest 1 (100); best 1 by math500: 40 (ties -> the earlier step); best by average: 20
    assert checkpoints_to_keep(steps, scores, keep_last=1, keep_best=1) == {100, 40, 20}
    assert checkpoints_to_keep(steps, scores, keep_last=2, keep_best=2) == {80, 100, 40, 20}
    assert checkpoints_to_keep(steps, {}, keep_last=2, keep_best=3) == {80, 100}


def _fake_run(root: Path, accuracies: dict[int, float | None]) -> None:
    for step, acc in accuracies.items():
        (root / checkpoint_name(step)).mkdir(parents=True)
        (root / checkpoint_name(step) / "model.safetensors").write_bytes(b"w")
        if acc is not None:
            eval_dir(root, step).mkdir(parents=True)
            (eval_dir(root, step) / RESULTS_FILE).write_text(json.dumps(_results(math500=acc)))


def test_retention_never_deletes_the_best_evaluated_checkpoint(tmp_path):
    _fake_run(tmp_path, {10: 0.30, 20: 0.80, 30: 0.50, 40: 0.40, 50: None})  # 50: saved, not evaluated yet
    callback = CheckpointRetentionCallback(keep_last=1, keep_best=1, metrics=["eval/math500"])
    assert callback.rotate(tmp_path) == [10, 30, 40]
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-50"]
    assert (eval_dir(tmp_path, 10) / RESULTS_FILE).is_file()  # evals stay


def test_retention_deletes_only_what_deletable_allows(tmp_path):
    _fake_run(tmp_path, {10: 0.3, 20: 0.2, 30: 0.1})
    callback = CheckpointRetentionCallback(1, 1, ["eval/math500"], deletable=lambda step: step != 20)
    assert callback.rotate(tmp_path) == []  # 10 is the best, 30 the newest, 20 not uploaded yet
    _fake_run(tmp_path, {40: 0.5})
    assert callback.rotate(tmp_path) == [10, 30]  # 40 is the newest and the best; 20 still waits


def _configs(tmp_path: Path, **overrides):
    """Real configs of a recipe that ranks checkpoints by in-training evals (what retention's rules are about)."""
    from oneshot_trl.config import OneShotArguments, OneShotGRPOConfig

    script = dict(problem="1+1", answer="2", eval_benchmarks=["math500"], keep_last_checkpoints=2,
                  keep_best_checkpoints=1)  # fmt: skip
    training = dict(output_dir=str(tmp_path), save_strategy="steps", save_steps=20, save_total_limit=None,
                    push_to_hub=False, use_cpu=True, report_to=[])  # fmt: skip
    names = {f.name for f in dataclasses.fields(OneShotArguments)}
    for key, value in overrides.items():
        (script if key in names else training)[key] = value
    return OneShotArguments(**script), OneShotGRPOConfig(**training)


def test_retention_rules_live_with_the_configs(tmp_path):
    """A rule among the recipe's keys is refused as its config is built, a rule between the configs when
    `recipe.build_configs` runs `check_retention_with_trainer`; a checkpoint a run would lose is a warning of `checks`."""
    from oneshot_trl.checks import retention_warnings
    from oneshot_trl.retention import check_retention_with_trainer

    s, t = _configs(tmp_path, eval_full_benchmarks=list(SIX), eval_full_steps=100,
                    keep_best_metrics=["eval/math500", "eval/average"])  # fmt: skip
    check_retention_with_trainer(s, t)
    assert s.ranking_metrics == ["eval/math500", "eval/average"]
    assert any("push_to_hub is off" in w for w in retention_warnings(s, t))
    assert max_checkpoints_on_disk(s, t) == 2 + 1 * 2
    s, t = _configs(tmp_path, push_to_hub=True)
    assert s.ranking_metrics == ["eval/math500"]  # the default: the first benchmark (all six: eval/average)
    assert retention_warnings(s, t) == []
    for overrides, says in (
        ({"keep_best_metrics": ["eval/aime24"]}, "'eval/aime24' is not an in-training eval"),
        ({"keep_best_metrics": ["eval/average"]}, "eval/average needs all six"),
        ({"eval_benchmarks": None}, "keep_best_checkpoints needs in-training evals"),
        ({"eval_full_benchmarks": list(SIX)}, "eval_full_benchmarks needs eval_full_steps"),
        ({"keep_last_checkpoints": 0}, "keep_last_checkpoints is 0; it must be >= 1"),
    ):
        with pytest.raises(ValueError, match=says):
            _configs(tmp_path, **overrides)
    for overrides, says in (
        ({"save_total_limit": 10}, r"save_total_limit \(10\) and keep_last_checkpoints are both set"),
        ({"eval_full_benchmarks": list(SIX), "eval_full_steps": 30}, "multiple of save_steps"),
    ):
        with pytest.raises(ValueError, match=says):
            check_retention_with_trainer(*_configs(tmp_path, **overrides))
    # the old default: save_total_limit deletes the best evaluated checkpoint
    s, t = _configs(tmp_path, keep_last_checkpoints=None, keep_best_checkpoints=0, save_total_limit=10)
    assert any("the best evaluated checkpoint is lost" in w for w in retention_warnings(s, t))
    assert max_checkpoints_on_disk(s, t) == 10


def test_a_recipe_breaking_a_retention_rule_is_one_line_naming_the_file(tmp_path):
    from oneshot_trl.recipe import parse_recipe
    from oneshot_trl.recipe_source import RecipeError

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"problem: 1+1\nanswer: '2'\noutput_dir: {tmp_path}/out\nuse_cpu: true\n"
                      "eval_benchmarks: [math500]\nkeep_last_checkpoints: 2\nsave_total_limit: 3\n")  # fmt: skip
    with pytest.raises(RecipeError, match=rf"^{recipe}: save_total_limit \(3\) and keep_last_checkpoints"):
        parse_recipe([str(recipe)])
