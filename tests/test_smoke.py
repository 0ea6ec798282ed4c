"""The CPU-checkable parts of scripts/gpu_smoke.sh: the real architecture's config, its tokenizer, its recipe."""

from __future__ import annotations

import pytest
import torch
import yaml

from oneshot_trl.doctor import main as doctor
from oneshot_trl.setups import KNOWN_ARCHITECTURES
from oneshot_trl.smoke import smoke_config, smoke_recipe

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
    recipe.write_text(
        yaml.safe_dump(smoke_recipe(tmp_path / "model", tmp_path / "run", 4, 1024, use_vllm=True))
    )
    assert doctor([str(recipe), "--num-processes", "1", "--gpu-memory-gib", "141"]) == 0
    out = capsys.readouterr().out
    assert "model: 1.54 B parameters" in out
    assert "64 completions = 8 prompts x 8 generations" in out and "(on-policy)" in out
