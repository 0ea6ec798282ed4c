"""The lab: synthetic task, cached base model, recipe, and a short end-to-end run through the real trainer."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from oneshot_trl.lab import pretrain
from oneshot_trl.lab.pretrain import BaseModelConfig, get_base_model
from oneshot_trl.lab.runs import RLRunConfig, recipe_for
from oneshot_trl.lab.task import DEFAULT_EXAMPLE, iter_pretraining_problems, parse_example, splits

REPO = Path(__file__).resolve().parents[1]

# Shrunk base model for tests: 2 layers, 1 head of 64 (head_dim >= 32), a few steps.
TINY_BASE = BaseModelConfig(
    hidden_size=64, num_layers=2, num_heads=2, max_steps=3, batch_size=8, warmup_steps=1
)


def test_splits_are_disjoint_and_pretraining_never_sees_the_test_split():
    s = splits()
    test = {(p.a, p.b) for p in s["test"]}
    train = {(p.a, p.b) for p in s["train"]}
    assert len(test) == 200 and len(train) == 256 and not test & train
    assert DEFAULT_EXAMPLE in train and DEFAULT_EXAMPLE not in test
    assert not test & {(p.a, p.b) for p in itertools.islice(iter_pretraining_problems(0), 5000)}
    assert parse_example(" 37 + 48 ").answer == "85"
    with pytest.raises(ValueError, match="like '37\\+48'"):
        parse_example("37*48")


def test_base_model_is_cached_by_config(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrain.CACHE_ENV, str(tmp_path / "cache"))
    path = get_base_model(TINY_BASE, progress=False)
    assert path.parent == tmp_path / "cache" / "lab" and (path / "config.json").is_file()
    info = json.loads((path / "lab_base.json").read_text())
    assert info["config_hash"] == TINY_BASE.hash() and info["config"]["max_steps"] == 3 and info["steps"] == 3

    def fail(*args, **kwargs):
        raise AssertionError("a cached base model must not be pretrained again")

    monkeypatch.setattr(pretrain, "pretrain", fail)
    assert get_base_model(TINY_BASE, progress=False) == path
    other = BaseModelConfig(**{**TINY_BASE.__dict__, "seed": 1})
    assert other.hash() != TINY_BASE.hash()
    with pytest.raises(AssertionError, match="must not be pretrained"):
        get_base_model(other, progress=False)
    assert not list((tmp_path / "cache" / "lab").glob(".base-*")), (
        "no half-written cache entry is left behind"
    )


def test_pretraining_is_deterministic(tmp_path):
    import torch
    from safetensors.torch import load_file

    pretrain.pretrain(TINY_BASE, tmp_path / "a", progress=False)
    pretrain.pretrain(TINY_BASE, tmp_path / "b", progress=False)
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_matches_the_demo_run():
    """recipes/lab.yaml is the demo's run: same keys and values as the lab builds them (model and output aside)."""
    from oneshot_trl.config import load_recipe

    recipe = load_recipe(REPO / "recipes" / "lab.yaml")
    expected = recipe_for(RLRunConfig(), recipe["model_name_or_path"], recipe["output_dir"])
    assert {k: v for k, v in recipe.items() if k != "save_strategy"} == {
        k: v for k, v in expected.items() if k != "save_strategy"
    }


def test_cli_writes_test_set_and_rejects_a_missing_base_model(tmp_path, capsys):
    from oneshot_trl.lab import cli

    assert cli.main(["--save-test-set", str(tmp_path / "test.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 200 and rows[0] == {"id": "71+25", "problem": "What is 71+25?", "answer": "96"}
    assert cli.main(["--base-model", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


# `ci_base` (tests/conftest.py): the lab base model shrunk for CI, pretrained once per session.


@pytest.mark.slow
def test_lab_demo_end_to_end(ci_base, tmp_path):
    """`oneshot-trl lab`: base eval, 1-shot GRPO through the real trainer, eval, report files, reloadable checkpoint."""
    from transformers import AutoModelForCausalLM

    from oneshot_trl.lab import cli

    out = tmp_path / "demo"
    argv = [
        "--base-model",
        str(ci_base),
        "--output-dir",
        str(out),
        "--steps",
        "20",
        "--eval-limit",
        "40",
        "--quiet",
    ]
    assert cli.main(argv) == 0

    results = json.loads((out / "results.json").read_text())
    for phase in ("before", "after"):
        assert set(results[phase]) >= {"accuracy", "boxed_rate", "answer_anywhere_accuracy", "boxed_accuracy"}
        assert results[phase]["n_problems"] == 40
        assert all(
            0 <= results[phase][k] <= 1 for k in ("accuracy", "boxed_rate", "answer_anywhere_accuracy")
        )
    assert results["before"]["boxed_rate"] == 0  # the base answers "The answer is N." when greedy
    rewards = results["train_reward"]
    assert len(rewards) == 20 and results["seconds"] > 0
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.1, f"training on the one example did not raise its reward: {rewards}"

    for path in ("lab.png", "eval_before/samples.jsonl", "eval_after/results.json", "run/trainer_state.json"):
        assert (out / path).is_file(), path
    run_info = json.loads((out / "run" / "oneshot_run.json").read_text())
    assert (
        run_info["examples"][0]["problem"] == "What is 37+48?" and run_info["examples"][0]["answer"] == "85"
    )
    AutoModelForCausalLM.from_pretrained(out / "run")  # the checkpoint is an ordinary model folder


@pytest.mark.slow
def test_experiment_writes_mean_std_report(ci_base, tmp_path, monkeypatch):
    """An experiment runs every arm for every seed and reports mean ± std (tiny: 2 arms, 2 seeds, 2 steps)."""
    from oneshot_trl.lab import experiments
    from oneshot_trl.lab.experiments import Arm, Experiment, run_experiment

    tiny = Experiment(
        "format-only",
        "test",
        (
            Arm("accuracy reward", RLRunConfig(steps=2)),
            Arm("format reward", RLRunConfig(steps=2, reward="format")),
        ),
    )
    monkeypatch.setitem(experiments.EXPERIMENTS, "format-only", tiny)
    results = run_experiment(
        "format-only", str(ci_base), tmp_path, seeds=(0, 1), eval_limit=10, progress=False
    )
    assert set(results["arms"]) == {"accuracy reward", "format reward"}
    for arm in results["arms"].values():
        assert len(arm["values"]["accuracy"]) == 2 and arm["std"]["accuracy"] >= 0
    assert results["runs"]["format reward"][0]["config"]["reward"] == "format"
    table = (tmp_path / "results.md").read_text()
    assert "format reward" in table and "±" in table
    assert (tmp_path / "lab-format-only.png").is_file()
