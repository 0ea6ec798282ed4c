"""The tiny tokenizer and model that the lab and the other tests build on."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from oneshot_trl.lab.tiny import EOS_TOKEN, IM_END, build_random_model, build_tokenizer


def test_tokenizer_round_trips_any_text_and_has_specials(tmp_path):
    tok = build_tokenizer()
    text = "What is 37+48? \\boxed{\\frac{1}{2}} ~ é ∑ 漢"  # LaTeX, unicode: byte-level must cover all
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == tok.pad_token == EOS_TOKEN
    assert tok.convert_tokens_to_ids(IM_END) != tok.unk_token_id
    assert len(tok) <= 300
    # digits are single tokens, so the model does arithmetic digit by digit
    assert tok.tokenize("1234") == ["1", "2", "3", "4"]


def test_chat_template_renders_chatml():
    tok = build_tokenizer()
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "What is 1+2?"}], add_generation_prompt=True, tokenize=False
    )
    assert rendered == "<|im_start|>user\nWhat is 1+2?<|im_end|>\n<|im_start|>assistant\n"
    with_system = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tokenize=False
    )
    assert with_system == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
    # Qwen2.5-Math's default system line, on request: then the template equals the official eval prompt
    qwen_math = build_tokenizer(
        system_prompt="Please reason step by step, and put your final answer within \\boxed{}."
    )
    assert qwen_math.apply_chat_template(
        [{"role": "user", "content": "Q"}], add_generation_prompt=True, tokenize=False
    ) == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    )


def test_random_model_is_deterministic_and_round_trips(tmp_path):
    tok = build_tokenizer()
    a, b, c = (build_random_model(tok, seed=s) for s in (0, 0, 1))
    sd_a, sd_b, sd_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert not torch.equal(
        sd_a["model.layers.0.mlp.up_proj.weight"], sd_c["model.layers.0.mlp.up_proj.weight"]
    )
    assert a.config.head_dim >= 32 and a.config.tie_word_embeddings
    assert a.config.eos_token_id == tok.eos_token_id == a.config.pad_token_id

    a.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    chat = [{"role": "user", "content": "What is 3+4?"}]
    ids = tok2.apply_chat_template(chat, add_generation_prompt=True)["input_ids"]
    assert ids == tok(tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))["input_ids"]
    x = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(a(x).logits, model2(x).logits)
    out = model2.generate(x, max_new_tokens=5, do_sample=False)
    assert out.shape[1] <= x.shape[1] + 5
