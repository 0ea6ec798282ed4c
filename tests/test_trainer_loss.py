"""The loss of OneShotGRPOTrainer, computed by hand on a tiny model: sign and scale of the entropy term."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from oneshot_trl.config import OneShotGRPOConfig
from oneshot_trl.rewards import get_reward_funcs
from oneshot_trl.trainer import OneShotGRPOTrainer

TEMPERATURE = 0.7


def make_trainer(model_dir, tmp_path, entropy_coeff: float) -> OneShotGRPOTrainer:
    args = OneShotGRPOConfig(
        output_dir=str(tmp_path),
        entropy_coeff=entropy_coeff,
        beta=0.0,
        loss_type="bnpo",
        temperature=TEMPERATURE,
        num_generations=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        use_cpu=True,
        bf16=False,
        report_to="none",
    )
    rewards = get_reward_funcs(["accuracy"])
    args.reward_weights = rewards.weights
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = Dataset.from_list(
        [{"prompt": "What is 1+1?", "answer": "2", "example_id": "x", "index": None}] * 2
    )
    trainer = OneShotGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        reward_funcs=rewards.funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; one micro-batch here
    trainer.model.train()
    return trainer


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "prompt_ids": torch.randint(3, 200, (2, 3), generator=g),
        "prompt_mask": torch.ones(2, 3, dtype=torch.long),
        "completion_ids": torch.randint(3, 200, (2, 4), generator=g),
        "completion_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),  # second completion: 2 tokens
        "advantages": torch.tensor([1.0, -0.5]),
    }


def by_hand(model, inputs, entropy_coeff: float) -> torch.Tensor:
    """verl: pg_loss - coeff * masked_mean(entropy); on-policy ratio 1 => pg_loss = masked_mean(-A)."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    logits = model(input_ids=ids).logits[:, 2:-1] / TEMPERATURE  # positions predicting completion tokens
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    mask = inputs["completion_mask"].float()
    mean_entropy = (entropy * mask).sum() / mask.sum()
    pg = (-inputs["advantages"][:, None] * mask).sum() / mask.sum()
    return pg - entropy_coeff * mean_entropy, mean_entropy


@pytest.mark.parametrize("coeff", [0.0, 0.001, 0.5])
def test_loss_is_policy_loss_minus_coeff_times_mean_entropy(tiny_model_dir, tmp_path, coeff):
    trainer = make_trainer(tiny_model_dir, tmp_path, coeff)
    inputs = batch()
    loss = trainer.compute_loss(trainer.model, inputs)
    expected, entropy = by_hand(trainer.model, inputs, coeff)
    assert entropy > 1.0  # a random model: the entropy term is not negligible
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_entropy_bonus_gradient_raises_entropy(tiny_model_dir, tmp_path):
    """Zero advantages leave only -coeff * H: one SGD step on that loss must increase the entropy (a bonus)."""
    trainer = make_trainer(tiny_model_dir, tmp_path, 0.5)
    inputs = {**batch(), "advantages": torch.zeros(2)}
    loss = trainer.compute_loss(trainer.model, inputs)
    _, entropy_before = by_hand(trainer.model, inputs, 0.5)
    torch.testing.assert_close(loss, -0.5 * entropy_before)
    loss.backward()
    with torch.no_grad():
        for p in trainer.model.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    _, entropy_after = by_hand(trainer.model, inputs, 0.5)
    assert entropy_after > entropy_before


def test_weight_decay_on_every_parameter_as_the_official_fork(tiny_model_dir, tmp_path):
    """verl's FSDP workers build AdamW over all parameters with weight_decay 0.01; HF's Trainer would leave the
    biases (q/k/v) and the RMSNorm weights out. One group, every trainable parameter, the recipe's decay."""
    trainer = make_trainer(tiny_model_dir, tmp_path, 0.0)
    trainer.args.weight_decay = 0.01
    optimizer = trainer.create_optimizer()
    names = {p: n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert any("bias" in n for n in names.values()) and any("norm" in n for n in names.values())
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.01]
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in names}
