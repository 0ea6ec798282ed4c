"""ZeRO-2 for real on CPU: the shipped accelerate config, two processes, the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_train import ENV, REPO

deepspeed = pytest.importorskip("deepspeed")


@pytest.mark.slow
@pytest.mark.deepspeed
def test_zero2_accelerate_launch_trains(make_recipe, tmp_path):
    recipe = make_recipe(bf16=True, gradient_accumulation_steps=1, max_steps=1, save_steps=1)
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "accelerate_configs/zero2.yaml"),
        "--num_processes", "2",
        "-m", "oneshot_trl.train", str(recipe),
    ]  # fmt: skip
    env = {**ENV, "TORCH_EXTENSIONS_DIR": str(tmp_path / "torch_extensions")}  # see test_deepspeed.py
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "run"
    # ZeRO-2 partitions the optimizer states: one shard per process in the DeepSpeed checkpoint.
    shards = sorted(p.name for p in (out / "checkpoint-1" / "global_step1").glob("*optim_states.pt"))
    assert len(shards) == 2 and all("zero_pp_rank_" in name for name in shards), shards
    state = json.loads((out / "trainer_state.json").read_text())
    assert [row["step"] for row in state["log_history"] if "loss" in row] == [1]
    history = [json.loads(line) for line in (out / "accuracy_history.jsonl").read_text().splitlines()]
    assert [(r["step"], r["num_samples"]) for r in history] == [
        (1, 8)
    ]  # 2 processes x 4 completions gathered
