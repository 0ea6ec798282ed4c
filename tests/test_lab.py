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
TINY_BASE = BaseModelConfig(hidden_size=64, num_layers=2, num_heads=2, steps=3, batch_size=8, warmup_steps=1)


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
    assert info["config_hash"] == TINY_BASE.hash() and info["config"]["steps"] == 3

    def fail(*args, **kwargs):
        raise AssertionError("a cached base model must not be pretrained again")

    monkeypatch.setattr(pretrain, "pretrain", fail)
    assert get_base_model(TINY_BASE, progress=False) == path
    other = BaseModelConfig(**{**TINY_BASE.__dict__, "seed": 1})
    assert other.hash() != TINY_BASE.hash()
    with pytest.raises(AssertionError, match="must not be pretrained"):
        get_base_model(other, progress=False)
    assert not list((tmp_path / "cache" / "lab").glob(".base-*")), "no half-written cache entry is left behind"


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
