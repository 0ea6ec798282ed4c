"""Shared fixtures: a tiny random-init Qwen2 with an offline-trained tokenizer, and recipe files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Qwen2 (hidden 64, 2 layers, head_dim 32) and its byte-level BPE tokenizer."""
    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny-qwen2")
    tokenizer = build_tokenizer()
    model = build_random_model(tokenizer, hidden_size=64, num_layers=2, num_heads=2, seed=0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def torch_extensions_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DeepSpeed JIT-builds its CPU ops under a file lock: one fresh build dir per test session means no stale lock
    from an interrupted earlier run can block a test, and the DeepSpeed tests of one session share the build."""
    return tmp_path_factory.mktemp("torch_extensions")


@pytest.fixture
def make_recipe(tmp_path: Path, tiny_model_dir: Path):
    """Factory: write a recipe for a few CPU steps on the tiny model; keyword overrides replace/add keys."""

    def write(name: str = "recipe.yaml", **overrides) -> Path:
        return _write_recipe(tmp_path, tiny_model_dir, name, overrides)

    return write


def _write_recipe(tmp_path: Path, model_dir: Path, name: str, overrides: dict) -> Path:
    recipe = {
        "model_name_or_path": str(model_dir),
        "train_examples": "pi1",
        "dataset_repeat_to": 8,
        "num_generations": 4,
        "per_device_train_batch_size": 4,  # 4 completions = one group per micro-batch
        "gradient_accumulation_steps": 2,
        "max_completion_length": 12,  # shrink: random model, only the plumbing is under test
        "max_prompt_length": 512,
        "temperature": 1.0,
        "learning_rate": 1.0e-3,  # big enough that a few steps visibly move the weights
        "lr_scheduler_type": "constant",
        "entropy_coeff": 0.001,
        "max_steps": 2,
        "save_steps": 2,
        "logging_steps": 1,
        "seed": 0,
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "report_to": "none",
        "output_dir": str(tmp_path / "run"),
        "completions_per_step": 4,
        "disable_tqdm": True,
    }
    recipe.update(overrides)
    recipe = {k: v for k, v in recipe.items() if v is not None}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def ci_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's base model for CI (the lab and PPO tests share it): the demo's own, shipped in the package
    (tests/test_lab.py checks that pretraining its recorded settings still gives a base of its quality)."""
    from oneshot_trl.lab import base, pretrain

    cache = tmp_path_factory.mktemp("lab-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(pretrain.CACHE_ENV, str(cache))
        return base.shipped_base()


@pytest.fixture(scope="session")
def checkpoint_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training run dir with checkpoint-1..3: the tiny Qwen2 (2048 positions) with weights that differ per
    checkpoint and give distinct generations (random init plus noise of sd 0.5), as a checkpoint sweep sees."""
    import torch

    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer

    run = tmp_path_factory.mktemp("checkpoint-run")
    tokenizer = build_tokenizer()
    for step in (1, 2, 3):
        model = build_random_model(
            tokenizer, hidden_size=64, num_layers=2, num_heads=2, max_position_embeddings=2048
        )
        torch.manual_seed(step)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.5)
        model.save_pretrained(run / f"checkpoint-{step}")
        tokenizer.save_pretrained(run / f"checkpoint-{step}")
    return run
