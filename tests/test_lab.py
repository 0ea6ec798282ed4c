"""The lab: synthetic task, cached base model, recipe, and a short end-to-end run through the real trainer."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from oneshot_trl.lab import pretrain
from oneshot_trl.lab.pretrain import BaseModelConfig, get_base_model
from oneshot_trl.lab.runs import RLRunConfig, recipe_for
from oneshot_trl.lab.task import (
    DEFAULT_EXAMPLE,
    DEMO_EXAMPLE,
    answer_text,
    careful_share,
    iter_pretraining_problems,
    parse_example,
    splits,
    strategy_of,
)

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
    demo = parse_example(DEMO_EXAMPLE)
    assert (demo.a, demo.b) in train and demo.carries  # from the RL pool; the shortcut gets it wrong
    assert not test & {(p.a, p.b) for p in itertools.islice(iter_pretraining_problems(0), 5000)}
    assert parse_example(" 37 + 48 ").answer == "85"
    with pytest.raises(ValueError, match="like '37\\+48'"):
        parse_example("37*48")


def test_strategies_careful_is_right_and_shortcut_drops_the_carry():
    from oneshot_trl.grading import grade

    for a, b in itertools.product(range(10, 100, 7), range(10, 100, 11)):
        p = parse_example(f"{a}+{b}")
        careful, shortcut = answer_text(p, "careful", boxed=True), answer_text(p, "shortcut", boxed=False)
        assert strategy_of(careful) == "careful" and strategy_of(shortcut) == "shortcut"
        assert "Recheck" in careful and "Recheck" not in shortcut
        assert grade(careful, p.answer, grader="official").correct
        assert grade(shortcut, p.answer, grader="official").correct == (not p.carries)
    p = parse_example("37+48")
    assert answer_text(p, "shortcut", boxed=True) == "Quick: 37+48=75. The answer is \\boxed{75}."
    assert answer_text(p, "careful", boxed=False) == (
        "Step by step: 7+8=15, carry 1, 3+4+1=8. Recheck: 85-48=37. The answer is 85."
    )
    # the shortcut solves about half of the held-out problems, and not the demo's example
    solved = sum(not q.carries for q in splits()["test"]) / len(splits()["test"])
    assert 0.4 < solved < 0.7 and p.carries
    assert strategy_of("The answer is 85.") is None


def test_careful_share_falls_with_the_size_of_the_numbers():
    """The base model works carefully less often the bigger the numbers: held-out problems with bigger numbers
    than the example switch strategy later (the post-saturation rise is built into the task, not the metric)."""
    config = BaseModelConfig()
    share = [
        careful_share(parse_example(f"{t}0+10"), config.careful_most, config.careful_least)
        for t in range(1, 10)
    ]
    assert share == sorted(share, reverse=True) and share[0] == config.careful_most
    assert careful_share(parse_example("90+90"), config.careful_most, config.careful_least) == pytest.approx(
        config.careful_least
    )
    example = careful_share(parse_example("37+48"), config.careful_most, config.careful_least)
    test = [careful_share(p, config.careful_most, config.careful_least) for p in splits()["test"]]
    assert max(test) < 0.5, "greedy decoding takes the shortcut on every problem"
    assert sum(s < example for s in test) > len(test) / 2, (
        "most held-out problems are less careful than 37+48"
    )


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


def test_shipped_base_is_verified_and_a_modified_copy_is_refused(tmp_path, monkeypatch):
    """`oneshot-trl lab` starts from the shipped base (no pretraining), byte-identical to the package's files;
    a copy whose bytes changed is refused with a message that says so."""
    from oneshot_trl.lab import base
    from oneshot_trl.lab.experiments import resolve_base

    monkeypatch.setenv(pretrain.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(
        pretrain, "pretrain", lambda *a, **k: pytest.fail("the shipped base needs no pretraining")
    )
    info = base.shipped_info()
    assert info["config"] == BaseModelConfig(seed=info["config"]["seed"]).__dict__, (
        "defaults are the shipped settings"
    )
    assert info["steps"] > 0 and set(info["forced_strategy_val_accuracy"]) == {
        "careful",
        "shortcut",
        "shortcut_rule",
    }
    path = Path(resolve_base(None))
    assert path == base.shipped_base() and base.content_hash(path) == info["content_sha256"]
    assert Path(resolve_base(None, base_seed=info["config"]["seed"])) == path
    assert base.describe(path)["source"] == "shipped"

    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(base.ShippedBaseError, match="was modified"):
        base.shipped_base()
    from oneshot_trl import cli  # the dispatcher: a refused base is one line and exit 2 there

    assert cli.main(["lab", "--quiet", "--save-base", str(tmp_path / "copy")]) == 2


@pytest.mark.slow
def test_pretraining_the_recorded_settings_gives_a_base_of_the_recorded_quality(tmp_path):
    """The shipped base cannot drift away from the code that makes it: pretraining with its recorded settings
    here gives a base whose forced-strategy val accuracies are within tolerance of the recorded ones (the bytes
    may differ between machines; `describe` reports the comparison in the lab's results)."""
    from oneshot_trl.lab import base

    info = pretrain.pretrain(base.shipped_config(), tmp_path / "local", progress=False)
    comparison = base.compare_with_shipped(tmp_path / "local")
    assert comparison["same_config"] and info["steps"] <= base.shipped_config().max_steps
    assert comparison["agrees"], comparison
    assert base.describe(tmp_path / "local")["vs_shipped"] == comparison


def test_pretraining_is_deterministic(tmp_path):
    import torch
    from safetensors.torch import load_file

    pretrain.pretrain(TINY_BASE, tmp_path / "a", progress=False)
    pretrain.pretrain(TINY_BASE, tmp_path / "b", progress=False)
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_matches_the_demo_run():
    """recipes/lab.yaml is the demo's run: same keys and values as the lab builds them (model and output aside)."""
    from oneshot_trl.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / "lab.yaml")
    expected = recipe_for(
        RLRunConfig(), recipe["model_name_or_path"], recipe["output_dir"], heldout_file=recipe["eval_dataset"]
    )
    assert recipe == {k: v for k, v in expected.items() if v is not None}


def test_controls_experiment_recipes_parse(tmp_path):
    """Every arm of `lab --experiment controls` is a recipe the trainer accepts (incorrect: its wrong label)."""
    import yaml

    from oneshot_trl.lab.experiments import EXPERIMENTS
    from oneshot_trl.recipe import parse_recipe

    arms = EXPERIMENTS["controls"].arms
    assert [a.config.reward for a in arms] == ["accuracy", "random", "incorrect", "majority", "format"]
    for arm in arms:
        recipe = recipe_for(arm.config, "base", tmp_path / "out")
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump({k: v for k, v in recipe.items() if v is not None}))
        script_args, *_ = parse_recipe([str(path)])
        assert script_args.reward_funcs == [arm.config.reward]
        assert script_args.incorrect_answer == (
            "51" if arm.config.reward == "incorrect" else None
        )  # 27+34's shortcut


def test_cli_writes_test_set_and_rejects_a_missing_base_model(tmp_path, capsys):
    from oneshot_trl import cli as oneshot_cli
    from oneshot_trl.lab import cli

    assert cli.main(["--save-test-set", str(tmp_path / "test.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 200 and rows[0] == {"id": "71+25", "problem": "What is 71+25?", "answer": "96"}
    assert oneshot_cli.main(["lab", "--base-model", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


# `ci_base` (tests/conftest.py): the lab base model shrunk for CI, pretrained once per session.


@pytest.mark.slow
def test_one_example_shifts_the_shared_strategy_on_held_out_problems(ci_base, tmp_path):
    """The mechanism, through the lab demo's code: GRPO on one problem that only the careful strategy solves moves
    the strategy choice that every problem shares, so held-out problems never trained on get the careful
    strategy, and their greedy accuracy rises. With the RL update off (learning rate 0) after == before and
    this test fails."""
    from transformers import AutoModelForCausalLM

    from oneshot_trl.analysis import cli as analyze_cli
    from oneshot_trl.lab.experiments import run_demo

    out = tmp_path / "demo"
    # the demo's run, shortened: 20 steps at twice the demo's learning rate, 40 held-out problems
    run_demo(str(ci_base), out, RLRunConfig(steps=20, learning_rate=1e-4, eval_limit=40), progress=False)

    results = json.loads((out / "results.json").read_text())
    before, after = results["before"], results["after"]
    assert before["n_problems"] == after["n_problems"] == 40
    assert before["careful_rate"] < 0.5, "the base model's greedy default is the shortcut"
    assert after["careful_rate"] >= before["careful_rate"] + 0.3, (before, after)
    assert after["accuracy"] >= before["accuracy"] + 0.1, (before, after)
    assert after["reflection_rate"] > before["reflection_rate"]  # "Recheck" rises with the careful strategy
    assert results["base_profile"]["pass@k"]["8"] > before["accuracy"]  # the base can, but greedy does not
    rewards = results["train_reward"]
    assert len(rewards) == 20 and sum(rewards[-5:]) > sum(rewards[:5])

    # held-out evals along the way: step 0 (the base), then every 5 steps, as `oneshot-trl analyze` reads them
    assert [p["step"] for p in results["heldout_curve"]] == [0, 5, 10, 15, 20]
    assert (
        analyze_cli.main([str(out / "run"), "--output-dir", str(out / "analysis"), "--words", "Recheck"]) == 0
    )
    analysis = json.loads((out / "analysis" / "analysis.json").read_text())
    assert (out / "analysis" / "post_saturation.png").is_file()
    assert [(e["benchmark"], e["step"]) for e in analysis["evals"]] == [
        ("heldout", s) for s in (0, 5, 10, 15, 20)
    ]
    run_info = json.loads((out / "run" / "oneshot_run.json").read_text())
    assert (
        run_info["examples"][0]["problem"] == "What is 27+34?" and run_info["examples"][0]["answer"] == "61"
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
