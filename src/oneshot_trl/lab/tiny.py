"""A tiny tokenizer and Qwen2 model, built offline and deterministically.

Used by the lab (as the base model that gets pretrained on the synthetic task) and by the tests (as a
random-init model that the trainer, eval and hub code can load like any Hub checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from oneshot_trl.lab.task import tokenizer_corpus

EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [EOS_TOKEN, IM_START, IM_END]

# Qwen2's pre-tokenizer split: digits are single tokens (so arithmetic is digit by digit), then bytes.
_QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def chat_template(system_prompt: str | None = None) -> str:
    """ChatML as in Qwen2; with `system_prompt`, a missing system turn gets it (as Qwen2.5-Math does)."""
    default_system = ""
    if system_prompt:
        escaped = system_prompt.replace("\\", "\\\\").replace("'", "\\'")
        default_system = (
            "{%- if messages[0]['role'] != 'system' %}"
            "{{- '<|im_start|>system\\n" + escaped + "<|im_end|>\\n' }}"
            "{%- endif %}"
        )
    return (
        default_system + "{%- for message in messages %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )


def build_tokenizer(
    corpus: Iterable[str] | None = None, vocab_size: int = 300, system_prompt: str | None = None
) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `corpus` (default: the lab's arithmetic text), with ChatML specials.

    Byte-level, so any text (LaTeX, unicode) round-trips; `<|endoftext|>` is eos and pad, as in Qwen2.
    No default system prompt unless asked: the lab keeps prompts short because every prompt token costs
    CPU time in pretraining and generation.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(tokenizer_corpus() if corpus is None else corpus), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        chat_template=chat_template(system_prompt),
        padding_side="left",  # generation batches are left-padded
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )


def build_random_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    seed: int = 0,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2ForCausalLM sized for `tokenizer`; same seed -> same weights."""
    if hidden_size % num_heads or hidden_size // num_heads < 32:
        raise ValueError(
            f"hidden_size ({hidden_size}) / num_heads ({num_heads}) must be an integer >= 32: vLLM's CPU "
            "attention kernels need head_dim >= 32. Raise hidden_size or lower num_heads."
        )
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    im_end_id = tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,  # None, as the tokenizer adds no bos (a Qwen2 tokenizer adds none)
        eos_token_id=eos_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Seed a private RNG scope: building a model must not disturb the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    # Both ends stop generation, as the official eval stops on <|im_end|> and <|endoftext|>.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[im_end_id, eos_id],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=64,
    )
    return model
