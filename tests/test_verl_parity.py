"""The update of OneShotGRPOTrainer / OneShotPPOTrainer equals verl's, loss and parameter gradient, fp32 on CPU.

One fixed batch on the tiny model: 2 prompts of unequal length (left padding) x 4 completions of unequal length
(right padding), one completion truncated (no EOS, fills the length), rewards with a zero-variance group, a frozen
reference model that differs from the policy enough that verl's KL clamp binds on some tokens. Our side is the
trainer's real loss path (`compute_loss` on prepared inputs, one call per micro-batch as the training loop does,
the update-rule settings read from `recipes/qwen15b.yaml`); verl's side is built from verl 0.9.1's functions
(`compute_grpo_outcome_advantage`, `compute_policy_loss_vanilla`, `kl_penalty(low_var_kl)`, `entropy_from_logits`,
`agg_loss(token-mean)`, `compute_gae_advantage_return`, `masked_whiten`, `compute_value_loss`) composed as the
official fork's `dp_actor.update_policy` / `dp_critic.update_critic` compose them. Equality: relative 1e-5.

Where verl 0.9.1 differs from the official fork (github ypwang61/One-Shot-RLVR @21ed529, verl ~0.2), and which
one these tests follow:
- Loss aggregation across micro-batches. Fork: each term is a `masked_mean` over one micro-batch's tokens, the
  micro-batch loss scaled by len(micro_batch) / ppo_mini_batch_size (= 1 / gradient accumulation for equal
  micro-batches), so micro-batches weigh by sequences. 0.9.1 (`workers/utils/losses.py::ppo_loss`): token-mean
  over the global mini-batch (`batch_num_tokens`, all micro-batches and ranks: TRL's `dapo`). Followed: the fork
  (`agg_loss` gets no global batch info, hence the micro-batch's own token count = TRL's `bnpo`, the recipes'
  `loss_type`). `test_verl_parity_grpo_dapo_is_verl_091_token_mean` shows the 0.9.1 rule is TRL's `dapo`.
- Micro-batch composition. The official run uses `use_dynamic_bsz` (micro-batches packed up to 24,000 tokens, so
  their sizes vary); TRL's micro-batches have a fixed number of sequences. Same rule, different partition: not
  reproducible without token packing, and the tests use equal micro-batches.
- Policy loss. 0.9.1 adds dual-clip (for A < 0 the loss is capped at -3·A) and clamps the log-ratio to [-20, 20];
  the fork has neither, nor has TRL. Followed: the fork (the tests assert their ratios stay below 3, where all agree;
  the official run is on-policy, ratio 1).
- `low_var_kl`. 0.9.1 clamps the log-ratio to [-20, 20] before the exponential; the fork does not. Both clamp the
  estimate to [-10, 10], which already makes the value 10 and the gradient 0 wherever the inner clamp would act:
  no difference in exact arithmetic; in fp32 the fork's exp overflows from a log-ratio of ~89 (NaN), 0.9.1's does
  not. TRL has neither clamp: OneShotGRPOTrainer computes 0.9.1's (`update_rule.verl_low_var_kl`, tested
  elementwise against `kl_penalty` from -90 to 90 and through the trainer at log-ratios up to 90).
- `masked_mean`. 0.9.1 divides by mask.sum() + 1e-8, the fork by mask.sum(): relative 1e-9 here.
- GRPO advantage. 0.9.1 adds `norm_adv_by_std_in_grpo` (default true = the fork's rule); same (r - mean) /
  (unbiased std + 1e-6). TRL: + 1e-4, hard-coded; OneShotGRPOTrainer uses `advantage_epsilon` (1e-6).
- GAE. The fork bootstraps V(t+1) from the position after the last response token (its critic values are masked
  with the attention mask shifted by one, so that value is the critic's output there, untrained); 0.9.1 skips masked
  positions (the value after the last token is 0). Followed: 0.9.1 (the fork's is an off-by-one; there is no
  official PPO script to reproduce).
- Value loss mask. The fork's `dp_critic` masks the value loss with `attention_mask[:, -L-1:-1]` (shifted by one:
  it drops no token of a truncated response but adds the first padding position of a finished one); 0.9.1 uses the
  response mask. Followed: 0.9.1. The value loss's aggregation follows the fork, as the policy's (per micro-batch).
- Defaults. 0.9.1's actor has `entropy_coeff: 0` (and computes no entropy unless asked); the fork's is 0.001, which
  the official script keeps. The recipes follow the fork (0.001); these tests set their own coefficients.
- Position ids. verl passes ids counted from the first unpadded token; TRL leaves them to the model. With RoPE the
  attention scores depend only on relative positions: with a left-padded prompt in the batch, all agrees to ~2e-7.
- Precision. The fork computes logits under bf16 autocast; these tests run fp32 throughout (the rule, not the
  precision, is under test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from oneshot_trl.config import OneShotGRPOConfig, OneShotPPOConfig
from oneshot_trl.ppo import (
    OneShotPPOTrainer,
    clipped_value_loss,
    compute_gae,
    masked_whiten,
    token_level_rewards,
)
from oneshot_trl.trainer import OneShotGRPOTrainer
from oneshot_trl.update_rule import grpo_advantages, k3, verl_low_var_kl

# verl 0.9.1, installed by every `make install*` target (--no-deps); without it this module is skipped, not failed.
core_algos = pytest.importorskip(
    "verl.trainer.ppo.core_algos", reason="verl 0.9.1 is not installed (make install-verl)"
)
verl_F = pytest.importorskip("verl.utils.torch_functional")
ActorConfig = pytest.importorskip("verl.workers.config").ActorConfig

RECIPE = Path(__file__).parents[1] / "recipes" / "qwen15b.yaml"
# Recipe keys that define the update rule (everything else is batch shape, optimizer, generation, I/O).
UPDATE_RULE = (
    "loss_type",
    "epsilon",
    "scale_rewards",
    "temperature",
    "num_iterations",
    "mask_truncated_completions",
    "use_bias_correction_kl",
    "kl_clamp",
    "advantage_epsilon",
    "importance_sampling_level",
)
TOLERANCE = 1e-5
GROUPS, GENERATIONS, PROMPT_LEN, COMPLETION_LEN = 2, 4, 5, 7
REWARDS = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # the second group has zero variance
LENGTHS = [7, 4, 2, 6, 3, 1, 5, 6]  # the first completion is truncated: it fills the length, no EOS
BETA, ENTROPY = (
    0.1,
    0.05,
)  # larger than the paper's 0.001 so every term weighs in the gradient; the rule is linear


def update_rule() -> dict:
    recipe = yaml.safe_load(RECIPE.read_text())
    return {k: recipe[k] for k in UPDATE_RULE if k in recipe}


# -- the fixed batch ---------------------------------------------------------------------------------------------
def fixed_batch(eos_id: int, pad_id: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    prompt_ids = torch.full((GROUPS * GENERATIONS, PROMPT_LEN), pad_id)
    prompt_mask = torch.zeros_like(prompt_ids)
    for group, length in enumerate((PROMPT_LEN, 3)):  # the second prompt is left-padded
        ids = torch.randint(3, 290, (length,), generator=g)
        rows = slice(group * GENERATIONS, (group + 1) * GENERATIONS)
        prompt_ids[rows, PROMPT_LEN - length :] = ids
        prompt_mask[rows, PROMPT_LEN - length :] = 1
    completion_ids = torch.full((GROUPS * GENERATIONS, COMPLETION_LEN), pad_id)
    completion_mask = torch.zeros_like(completion_ids)
    for row, length in enumerate(LENGTHS):
        completion_ids[row, :length] = torch.randint(3, 290, (length,), generator=g)
        if length < COMPLETION_LEN:
            completion_ids[row, length - 1] = eos_id
        completion_mask[row, :length] = 1
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
    }


def verl_advantages(rewards: list[float]) -> torch.Tensor:
    """verl's GRPO advantage: one group per prompt (uid), broadcast over the response tokens."""
    scores = torch.zeros(len(rewards), COMPLETION_LEN)
    scores[:, -1] = torch.tensor(rewards)
    index = np.array([row // GENERATIONS for row in range(len(rewards))])
    advantages, _ = core_algos.compute_grpo_outcome_advantage(
        scores, torch.ones_like(scores), index, epsilon=1e-6
    )
    return advantages[:, 0]


# -- verl's side ---------------------------------------------------------------------------------------------------
def verl_forward(model, batch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The fork's `_forward_micro_batch` without padding removal: (entropy, log_prob) of the response tokens."""
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # verl's compute_position_id_with_mask
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logits = logits.float().div(temperature)[:, -COMPLETION_LEN - 1 : -1]
    log_prob = verl_F.logprobs_from_logits(logits, batch["completion_ids"])
    return verl_F.entropy_from_logits(logits), log_prob


def verl_update(model, batch, micro_batches: int, beta: float, entropy_coeff: float, temperature: float):
    """The fork's `dp_actor.update_policy` for one mini-batch, with verl 0.9.1's loss functions; returns the loss."""
    config = ActorConfig(
        strategy="fsdp",
        rollout_n=GENERATIONS,
        ppo_mini_batch_size=GROUPS,
        ppo_micro_batch_size_per_gpu=GROUPS * GENERATIONS // micro_batches,
        clip_ratio=0.2,
        use_kl_loss=beta > 0,
        kl_loss_coef=beta,
        kl_loss_type="low_var_kl",
        entropy_coeff=entropy_coeff,
    )
    size = len(batch["advantages"]) // micro_batches
    total = torch.zeros(())
    for start in range(0, len(batch["advantages"]), size):
        mb = {k: v[start : start + size] for k, v in batch.items()}
        mask = mb["completion_mask"].bool()
        entropy, log_prob = verl_forward(model, mb, temperature)
        advantages = mb["advantages"]
        if advantages.dim() == 1:  # GRPO: broadcast to the response tokens, as verl stores it
            advantages = advantages[:, None] * mb["completion_mask"]
        pg_loss, _ = core_algos.compute_policy_loss_vanilla(
            mb["old_log_prob"], log_prob, advantages, mask, loss_agg_mode="token-mean", config=config
        )
        policy_loss = pg_loss - config.entropy_coeff * core_algos.agg_loss(entropy, mask, "token-mean")
        if config.use_kl_loss:
            kld = core_algos.kl_penalty(log_prob, mb["ref_log_prob"], config.kl_loss_type)
            policy_loss = policy_loss + config.kl_loss_coef * core_algos.agg_loss(kld, mask, "token-mean")
        loss = policy_loss * (len(mb["advantages"]) / len(batch["advantages"]))  # use_dynamic_bsz scaling
        loss.backward()
        total = total + loss.detach()
    return total


# -- our side ------------------------------------------------------------------------------------------------------
def zero_reward(completions, **_):
    return [0.0] * len(completions)


def make_trainer(
    model_dir, tmp_path, beta: float, entropy_coeff: float, reward_func=zero_reward, **overrides
) -> OneShotGRPOTrainer:
    settings = {"num_generations": GENERATIONS, "per_device_train_batch_size": GENERATIONS, **update_rule()}
    args = OneShotGRPOConfig(
        output_dir=str(tmp_path),
        beta=beta,
        entropy_coeff=entropy_coeff,
        use_cpu=True,
        bf16=False,
        report_to="none",
        **{**settings, **overrides},
    )
    dataset = Dataset.from_list([{"prompt": "1+1?", "answer": "2", "example_id": "x", "index": None}] * 8)
    trainer = OneShotGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        reward_funcs=[reward_func],
        args=args,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    trainer.model.train()
    return trainer


def perturb(model, scale: float, seed: int, sharpen: float = 4.0) -> None:
    """Move the policy away from the frozen reference (its initial weights) and sharpen it, as training would:
    the random model is near uniform, and a sharper policy puts some tokens where verl's KL clamp binds."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * p.std().clamp(min=1e-2))
        model.model.norm.weight.mul_(sharpen)  # logits x 4


def trainer_update(trainer, batch, micro_batches: int) -> torch.Tensor:
    """What the training loop does with one accumulation window: compute_loss + backward per micro-batch."""
    trainer.current_gradient_accumulation_steps = micro_batches
    size = len(batch["advantages"]) // micro_batches
    total = torch.zeros(())
    for start in range(0, len(batch["advantages"]), size):
        mb = {k: v[start : start + size] if v.dim() else v for k, v in batch.items()}
        loss = trainer.compute_loss(trainer.model, mb)
        loss.backward()
        total = total + loss.detach()
    return total


def gradient(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def both_updates(
    model_dir, tmp_path, beta, entropy_coeff, micro_batches, clipped, advantages=None, **overrides
) -> dict[str, float]:
    """Loss and gradient relative differences, and the shares of tokens where verl's KL clamp / the clip binds.

    `advantages`: per token (B, T), as PPO's; default GRPO's per sequence (B,) from `REWARDS`."""
    trainer = make_trainer(model_dir, tmp_path, beta, entropy_coeff, **overrides)
    perturb(trainer.model, 0.6, seed=1)
    tokenizer = trainer.processing_class
    batch = fixed_batch(tokenizer.eos_token_id, tokenizer.pad_token_id)
    batch["advantages"] = verl_advantages(REWARDS) if advantages is None else advantages
    temperature = trainer.args.temperature
    with torch.no_grad():
        _, current = verl_forward(trainer.model, batch, temperature)  # verl's compute_log_prob: old = current
        old = current
        if clipped:  # an older policy: ratios spread over (0.5, 2), many outside [0.8, 1.2]
            old = old + torch.empty_like(old).uniform_(-0.7, 0.7, generator=torch.Generator().manual_seed(2))
        ref_model = trainer.ref_model if beta else AutoModelForCausalLM.from_pretrained(model_dir)
        _, ref = verl_forward(ref_model, batch, temperature)
    mask = batch["completion_mask"].bool()
    unclamped_kl = torch.exp(ref - current) - (ref - current) - 1
    ratio = torch.exp(current - old)
    clip_share = (((ratio - 1).abs() > 0.2) & mask).float().sum() / mask.sum()
    assert ratio[mask].max() < 3  # verl 0.9.1's dual-clip (not in the fork, nor in TRL) never binds

    ours = {**batch}
    if beta:
        with torch.no_grad():  # what TRL's _generate_and_score_completions stores
            input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
            attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
            ours["ref_per_token_logps"], _, _ = trainer._get_per_token_logps_and_entropies(
                trainer.ref_model, input_ids, attention_mask, COMPLETION_LEN
            )
    if clipped:
        ours["old_per_token_logps"] = old
    our_loss = trainer_update(trainer, ours, micro_batches)
    our_grad = gradient(trainer.model)
    trainer.model.zero_grad(set_to_none=True)

    verl_batch = {**batch, "old_log_prob": old, "ref_log_prob": ref}
    verl_loss = verl_update(trainer.model, verl_batch, micro_batches, beta, entropy_coeff, temperature)
    verl_grad = gradient(trainer.model)
    return {
        "loss": relative(our_loss, verl_loss),
        "gradient": relative(our_grad, verl_grad),
        "kl_clamped": ((unclamped_kl > 10) & mask).float().sum().item() / mask.sum().item(),
        "clipped": clip_share.item(),
    }


# -- GRPO ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "beta, entropy_coeff, micro_batches, clipped",
    [
        (0.0, 0.0, 1, False),  # policy loss only
        (BETA, 0.0, 1, False),  # + KL (clamp binding)
        (0.0, ENTROPY, 1, False),  # + entropy
        (BETA, ENTROPY, 2, False),  # everything, 2 micro-batches with accumulation
        (BETA, ENTROPY, 2, True),  # everything, off-policy: the clip is active
    ],
    ids=["pg", "kl", "entropy", "kl-entropy-2mb", "clipped-2mb"],
)
def test_verl_parity_grpo_loss_and_gradient(
    tiny_model_dir, tmp_path, beta, entropy_coeff, micro_batches, clipped
):
    result = both_updates(tiny_model_dir, tmp_path, beta, entropy_coeff, micro_batches, clipped)
    if beta:
        assert result["kl_clamped"] > 0  # the batch exercises verl's clamp
    if clipped:
        assert result["clipped"] > 0.2
    assert result["loss"] <= TOLERANCE
    assert result["gradient"] <= TOLERANCE


@pytest.mark.parametrize(
    "override", [{"use_bias_correction_kl": True}, {"kl_clamp": None}], ids=["bias-corrected-kl", "no-clamp"]
)
def test_verl_parity_grpo_detects_trl_kl(tiny_model_dir, tmp_path, override):
    """TRL's own KL rules (its default bias-corrected k3, no clamp) are caught by the parity check."""
    result = both_updates(tiny_model_dir, tmp_path, BETA, 0.0, 1, False, **override)
    assert result["gradient"] > 100 * TOLERANCE


@pytest.mark.parametrize("epsilon", [None, 1e-4], ids=["recipe", "trl-epsilon"])
def test_verl_parity_grpo_advantages(tiny_model_dir, tmp_path, epsilon):
    """The trainer's advantages (generation, rewards, group normalization) equal verl's GRPO outcome advantage;
    TRL's own epsilon (1e-4) differs by ~2e-4 relative on this batch, which the check catches."""
    rewards = iter(REWARDS)

    def fixed_rewards(completions, **_):
        return [next(rewards) for _ in completions]

    trainer = make_trainer(
        tiny_model_dir,
        tmp_path,
        0.0,
        0.0,
        fixed_rewards,
        max_completion_length=4,
        per_device_train_batch_size=8,
        **({} if epsilon is None else {"advantage_epsilon": epsilon}),
    )
    inputs = [
        {"prompt": p, "answer": "2", "example_id": p, "index": None} for p in ("1+1?", "2+2=") for _ in "abcd"
    ]
    output = trainer._generate_and_score_completions(inputs)
    expected = verl_advantages(REWARDS)
    assert output["advantages"][GENERATIONS:].abs().max() == 0  # the zero-variance group
    if epsilon is None:
        assert relative(output["advantages"], expected) <= TOLERANCE
    else:
        assert relative(output["advantages"], expected) > 10 * TOLERANCE


def test_verl_parity_grpo_dapo_is_verl_091_token_mean(tiny_model_dir, tmp_path):
    """verl 0.9.1's actor normalizes by the mini-batch's token count (all micro-batches): TRL's `dapo`."""
    trainer = make_trainer(
        tiny_model_dir, tmp_path, 0.0, 0.0, loss_type="dapo", gradient_accumulation_steps=2
    )
    batch = fixed_batch(trainer.processing_class.eos_token_id, trainer.processing_class.pad_token_id)
    batch["advantages"] = verl_advantages(REWARDS)
    batch["num_items_in_batch"] = batch["completion_mask"].sum()
    trainer_update(trainer, batch, 2)
    ours = gradient(trainer.model)
    trainer.model.zero_grad(set_to_none=True)
    config = ActorConfig(strategy="fsdp", rollout_n=GENERATIONS, ppo_micro_batch_size_per_gpu=GENERATIONS)
    config.global_batch_info.update(dp_size=1, batch_num_tokens=batch["completion_mask"].sum().item())
    for start in (0, GENERATIONS):
        mb = {k: v[start : start + GENERATIONS] for k, v in batch.items() if k != "num_items_in_batch"}
        _, log_prob = verl_forward(trainer.model, mb, trainer.args.temperature)
        advantages = mb["advantages"][:, None] * mb["completion_mask"]
        pg_loss, _ = core_algos.compute_policy_loss_vanilla(
            log_prob.detach(), log_prob, advantages, mb["completion_mask"].bool(), "token-mean", config=config
        )
        pg_loss.backward()  # no 1/accumulation: the global token count already spans the mini-batch
    assert relative(ours, gradient(trainer.model)) <= TOLERANCE


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "luspo"])
def test_verl_parity_kl_clamp_aggregates_like_trl(tiny_model_dir, tmp_path, loss_type):
    """The clamp's correction term is reduced exactly as TRL reduces its per-token loss, for every loss_type: with
    zero advantages and no clamp, TRL's loss is beta * k3 reduced, which `_aggregate` must reproduce."""
    trainer = make_trainer(
        tiny_model_dir, tmp_path, BETA, 0.0, loss_type=loss_type, kl_clamp=None, gradient_accumulation_steps=2
    )
    perturb(trainer.model, 0.6, seed=1)
    batch = fixed_batch(trainer.processing_class.eos_token_id, trainer.processing_class.pad_token_id)
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    with torch.no_grad():
        ref, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.ref_model, input_ids, attention_mask, COMPLETION_LEN
        )
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention_mask, COMPLETION_LEN
        )
    half = slice(0, GENERATIONS)
    inputs = {k: v[half] for k, v in batch.items()}
    inputs |= {
        "advantages": torch.zeros(GENERATIONS),
        "ref_per_token_logps": ref[half],
        "num_items_in_batch": batch["completion_mask"].sum(),
    }
    trainer.current_gradient_accumulation_steps = 2
    loss = trainer.compute_loss(trainer.model, inputs)
    expected = BETA * trainer._aggregate(k3(ref[half], logps[half]), inputs["completion_mask"], inputs)
    assert loss.item() > 0
    assert abs(loss.item() - expected.item()) <= TOLERANCE * expected.item()


# -- the KL at its edges: far from the reference -------------------------------------------------------------------
@pytest.mark.parametrize("clamp", [10.0, 3.0])
def test_verl_low_var_kl_equals_verl_for_any_log_ratio(clamp):
    """Value and gradient of verl 0.9.1's own `kl_penalty(low_var_kl)`, elementwise, for log-ratios ref - policy
    from -90 to 90 (both clamps binding, and neither): equal, and finite everywhere."""
    delta = torch.linspace(-90.0, 90.0, 721)
    ref = torch.randn(delta.shape, generator=torch.Generator().manual_seed(7)) - 5.0
    ours_logp = (ref - delta).requires_grad_()
    verl_logp = (ref - delta).requires_grad_()
    ours = verl_low_var_kl(ref, ours_logp, clamp)
    expected = core_algos.kl_penalty(verl_logp, ref, "low_var_kl")
    if clamp != 10.0:  # verl hard-codes 10; any other clamp is the same rule with its own bound
        expected = expected.clamp(-clamp, clamp)
    ours.sum().backward()
    expected.sum().backward()
    assert torch.isfinite(ours).all() and torch.isfinite(ours_logp.grad).all()
    assert torch.equal(ours, expected)
    assert torch.equal(ours_logp.grad, verl_logp.grad)


def kl_edge_update(model_dir, tmp_path, delta: float) -> tuple[float, float, torch.Tensor]:
    """Our trainer's update and verl's on the fixed batch with the reference `delta` nats likelier than the policy
    on every other token (the rest near it): (loss rel diff, gradient rel diff, our gradient)."""
    trainer = make_trainer(model_dir, tmp_path, BETA, 0.0)
    perturb(trainer.model, 0.6, seed=1)
    batch = fixed_batch(trainer.processing_class.eos_token_id, trainer.processing_class.pad_token_id)
    batch["advantages"] = verl_advantages(REWARDS)
    with torch.no_grad():
        _, current = verl_forward(trainer.model, batch, trainer.args.temperature)
    near = torch.empty_like(current).uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(3))
    far = (torch.arange(current.numel()).view(current.shape) % 2 == 0).float()
    ref = current + far * delta + (1 - far) * near  # k3 in (0, 0.72) off the far tokens: no clamp there
    our_loss = trainer_update(trainer, {**batch, "ref_per_token_logps": ref}, 1)
    our_grad = gradient(trainer.model)
    trainer.model.zero_grad(set_to_none=True)
    verl_batch = {**batch, "old_log_prob": current, "ref_log_prob": ref}
    verl_loss = verl_update(trainer.model, verl_batch, 1, BETA, 0.0, trainer.args.temperature)
    verl_grad = gradient(trainer.model)
    assert torch.isfinite(verl_loss) and torch.isfinite(verl_grad).all()
    return (
        relative(our_loss, verl_loss),
        relative(our_grad, verl_grad),
        torch.cat([our_loss.view(1), our_grad]),
    )


@pytest.mark.parametrize("delta", [-30.0, -16.0, 1.0, 16.0, 30.0])
def test_verl_parity_kl_far_from_reference(tiny_model_dir, tmp_path, delta):
    """The trainer's loss and gradient equal verl's where the log-ratio ref - policy is large on half the tokens
    (the old correction on top of TRL's unclamped k3 put this loss 3.5% off at 16 and wholly off at 30)."""
    loss_diff, grad_diff, _ = kl_edge_update(tiny_model_dir, tmp_path, delta)
    assert loss_diff <= TOLERANCE
    assert grad_diff <= TOLERANCE


def test_verl_parity_kl_finite_at_log_ratio_90(tiny_model_dir, tmp_path):
    """exp(90) overflows fp32: verl's clamped log-ratio keeps the loss and gradient finite, and so does ours."""
    loss_diff, grad_diff, ours = kl_edge_update(tiny_model_dir, tmp_path, 90.0)
    assert torch.isfinite(ours).all()
    assert loss_diff <= TOLERANCE
    assert grad_diff <= TOLERANCE


# -- the advantage epsilon for both aggregation rules ----------------------------------------------------------------
def by_hand_advantages(
    rewards: np.ndarray, weights: np.ndarray, aggregation: str, epsilon: float
) -> np.ndarray:
    """TRL's two rules written out in numpy with `epsilon` (unbiased std, groups of GENERATIONS rows)."""
    groups = rewards.reshape(-1, GENERATIONS, rewards.shape[1])
    if aggregation == "sum_then_normalize":
        total = (groups * weights).sum(-1)
        return (
            (total - total.mean(1, keepdims=True)) / (total.std(1, ddof=1, keepdims=True) + epsilon)
        ).ravel()
    normalized = (groups - groups.mean(1, keepdims=True)) / (groups.std(1, ddof=1, keepdims=True) + epsilon)
    total = (normalized * weights).sum(-1).ravel()
    return (total - total.mean()) / (total.std(ddof=1) + epsilon)


@pytest.mark.parametrize("aggregation", ["sum_then_normalize", "normalize_then_sum"])
@pytest.mark.parametrize("epsilon", [1e-6, 1e-4])
def test_grpo_advantages_use_the_epsilon_for_both_aggregations(aggregation, epsilon):
    """Two reward functions (one with a zero-variance group), both of TRL's aggregation rules: the advantages are
    TRL's formula with `advantage_epsilon` wherever TRL divides by std + 1e-4."""
    rewards = np.array(
        [[1, 0.5], [0, 0.5], [0, 0.25], [1, 0.5], [1, 0], [1, 1], [1, 0], [1, 1]], dtype=np.float64
    )
    weights = np.array([1.0, 0.5])
    ours = grpo_advantages(
        torch.tensor(rewards), torch.tensor(weights), GENERATIONS, "group", aggregation, epsilon
    )
    expected = by_hand_advantages(rewards, weights, aggregation, epsilon)
    assert np.allclose(ours.numpy(), expected, rtol=1e-7, atol=1e-12)  # TRL's nanstd: a float32 Bessel factor
    other = by_hand_advantages(rewards, weights, aggregation, 1e-4 if epsilon == 1e-6 else 1e-6)
    assert not np.allclose(ours.numpy(), other, rtol=1e-7, atol=0)  # the epsilon shows at this precision


# -- PPO -------------------------------------------------------------------------------------------------------------
def test_verl_parity_ppo_policy_loss_with_token_advantages(tiny_model_dir, tmp_path):
    """PPO's policy loss is TRL's with (B, T) advantages (whitened GAE): verl's per-token clipped loss + KL + entropy."""
    mask = fixed_batch(0, 0)["completion_mask"].float()
    values = torch.randn(mask.shape, generator=torch.Generator().manual_seed(5)) * mask
    advantages, _ = compute_gae(token_level_rewards(torch.tensor(REWARDS), mask), values, mask, 1.0, 1.0)
    advantages = masked_whiten(advantages, mask)
    result = both_updates(tiny_model_dir, tmp_path, BETA, ENTROPY, 2, True, advantages=advantages)
    assert result["clipped"] > 0.2 and result["kl_clamped"] > 0
    assert result["loss"] <= TOLERANCE
    assert result["gradient"] <= TOLERANCE


def test_verl_parity_ppo_gae_and_whitening():
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(len(LENGTHS), COMPLETION_LEN)
    for row, length in enumerate(LENGTHS):
        mask[row, :length] = 1
    values = torch.randn(mask.shape, generator=g) * mask  # the trainer masks the critic's values
    rewards = token_level_rewards(torch.tensor(REWARDS), mask)
    for gamma, lam in ((1.0, 1.0), (0.99, 0.95)):
        advantages, returns = compute_gae(rewards, values, mask, gamma, lam)
        whitened = masked_whiten(advantages, mask)
        verl_adv, verl_returns = core_algos.compute_gae_advantage_return(rewards, values, mask, gamma, lam)
        assert relative(returns * mask, verl_returns * mask) <= TOLERANCE
        assert relative(whitened * mask, verl_adv * mask) <= TOLERANCE


def test_verl_parity_ppo_value_loss_and_gradient(tiny_model_dir, tmp_path):
    """The critic's update through OneShotPPOTrainer (2 micro-batches, clipping active) equals verl's."""
    args = OneShotPPOConfig(
        output_dir=str(tmp_path),
        num_generations=GENERATIONS,
        per_device_train_batch_size=GENERATIONS,
        use_cpu=True,
        bf16=False,
        report_to="none",
        cliprange_value=0.2,
        **update_rule(),
    )
    trainer = OneShotPPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        reward_funcs=[zero_reward],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": "1+1?", "answer": "2"}] * 8),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        critic_model=str(tiny_model_dir),
    )
    tokenizer = trainer.processing_class
    batch = fixed_batch(tokenizer.eos_token_id, tokenizer.pad_token_id)
    mask = batch["completion_mask"].float()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        values = trainer._critic_values(batch, grad=False) * mask
    batch["values"] = (
        values + torch.randn(values.shape, generator=g) * 0.3 * mask
    )  # older values: clip active
    batch["returns"] = torch.randn(values.shape, generator=g) * mask

    trainer.current_gradient_accumulation_steps = 2
    trainer.accelerator.gradient_state._set_sync_gradients(
        False
    )  # inside the accumulation window: no step yet
    for start in (0, GENERATIONS):
        trainer._critic_step({k: v[start : start + GENERATIONS] for k, v in batch.items()})
    ours = gradient(trainer.critic)
    trainer.critic.zero_grad(set_to_none=True)

    clipped = 0.0
    for start in (0, GENERATIONS):
        mb = {k: v[start : start + GENERATIONS] for k, v in batch.items()}
        vpreds = trainer._critic_values(mb, grad=True)
        vf_loss, clipfrac = core_algos.compute_value_loss(
            vpreds, mb["returns"], mb["values"], mb["completion_mask"].bool(), cliprange_value=0.2
        )
        ours_loss, _ = clipped_value_loss(vpreds, mb["values"], mb["returns"], mb["completion_mask"], 0.2)
        assert relative(ours_loss, vf_loss) <= TOLERANCE
        (vf_loss * (GENERATIONS / len(REWARDS))).backward()  # the fork's micro-batch scaling
        clipped = max(clipped, clipfrac.item())
    assert clipped > 0
    assert relative(ours, gradient(trainer.critic)) <= TOLERANCE
