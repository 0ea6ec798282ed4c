"""verl's update rule where TRL 1.16 has no switch for it: the KL clamp, the advantage's epsilon, weight decay.

TRL's `GRPOTrainer` with `loss_type: bnpo`, `use_bias_correction_kl: false` and the entropy bonus computes the
official run's loss (the verl fork's `dp_actor.update_policy`: clipped policy loss, `low_var_kl`, entropy, each a
token mean over a micro-batch, scaled by 1 / gradient accumulation) except in three places, which
`VerlUpdateRule` changes (tests/test_verl_parity.py proves the result equal to verl's, loss and gradient):

- verl's `low_var_kl` (0.9.1's `kl_penalty_forward`) clamps the log-ratio ref - policy to [-20, 20], then each
  token's k3 estimate to [-10, 10] (`kl_clamp`): a clamped token contributes a constant and no gradient. TRL adds
  `beta * k3` unclamped; correcting it afterwards (adding clamp(k3) - k3) cancels badly where k3 is large (exp of
  the log-ratio: relative gradient error 1e-4 at a log-ratio of 16, NaN from 89 in fp32). So while TRL computes
  its loss we hide `beta` from it and add `beta * verl_low_var_kl`, reduced exactly as TRL reduces its per-token
  loss, and log verl's estimate as `kl`.
- verl's GRPO advantage is (r - group mean) / (std + 1e-6); TRL adds 1e-4 (`advantage_epsilon`). We recompute
  the advantages as TRL does with `advantage_epsilon` in place of its 1e-4, for both `multi_objective_aggregation`
  rules (`normalize_then_sum` divides twice: per reward function and over the batch).
- The official fork's optimizer (verl's FSDP workers) is AdamW over all parameters with `weight_decay`; HF's
  `Trainer` leaves biases and norm weights out of the decay. `get_decay_parameter_names` returns them all.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from trl.trainer.utils import nanstd

logger = logging.getLogger(__name__)

LOG_RATIO_CLAMP = 20.0  # verl 0.9.1 kl_penalty_forward: "For numerical stability", hard-coded


def k3(ref_logps: torch.Tensor, logps: torch.Tensor) -> torch.Tensor:
    """The k3 estimate of KL(pi || ref) per token, as TRL and verl's low_var_kl compute it (before any clamp)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def verl_low_var_kl(ref_logps: torch.Tensor, logps: torch.Tensor, clamp: float) -> torch.Tensor:
    """verl 0.9.1's `kl_penalty(logps, ref_logps, "low_var_kl")` with its [-10, 10] clamp as `clamp`: finite for
    any log-ratio, no gradient where either clamp binds."""
    delta = (ref_logps - logps).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return (torch.exp(delta) - delta - 1).clamp(-clamp, clamp)


def grpo_advantages(
    rewards_per_func: torch.Tensor,
    weights: torch.Tensor,
    num_generations: int,
    scale_rewards: str,
    aggregation: str,
    epsilon: float,
) -> torch.Tensor:
    """TRL 1.16's advantages (`_generate_and_score_completions`, all processes' rows) with `epsilon` for its 1e-4.

    Rows whose every reward is None (NaN) are left out of the statistics and get advantage 0, as in TRL."""
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    if aggregation == "sum_then_normalize":
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan
        mean = torch.nanmean(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
        advantages = rewards - mean
        if scale_rewards == "group" and num_generations > 1:
            std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
        elif scale_rewards == "batch" and rewards.numel() > 1:
            std = nanstd(rewards).expand_as(rewards)
        else:
            std = torch.zeros_like(rewards)
        if scale_rewards != "none":
            advantages = advantages / (std + epsilon)
    elif aggregation == "normalize_then_sum":
        grouped = rewards_per_func.view(-1, num_generations, rewards_per_func.size(1))
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = nanstd(grouped, dim=1, keepdim=True) if num_generations > 1 else torch.zeros_like(mean_k)
        reward_k = ((grouped - mean_k) / (std_k + epsilon)).view(-1, rewards_per_func.size(1))
        rewards = (reward_k * weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan
        std = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        advantages = (rewards - torch.nanmean(rewards)) / (std + epsilon)
    else:
        raise ValueError(f"Unknown multi_objective_aggregation {aggregation!r}.")
    return torch.nan_to_num(advantages, nan=0.0)


class VerlUpdateRule:
    """Mixin for a `GRPOTrainer` subclass (before it in the bases): verl's KL clamp and advantage epsilon."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The last forward's log-probs: inside _compute_loss, the loss's own (with their graph).
        self._policy_logps: torch.Tensor | None = None
        self._rewards_per_func: torch.Tensor | None = None
        if self.beta and self._kl_clamp is None and self.args.kl_clamp is not None:
            logger.warning(
                "kl_clamp applies to verl's KL (use_bias_correction_kl: false); TRL's bias-corrected KL stays "
                "unclamped."
            )

    @property
    def _kl_clamp(self) -> float | None:
        return None if self.args.use_bias_correction_kl else self.args.kl_clamp

    # -- the advantage epsilon --------------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[override]
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func

    def _generate_and_score_completions(self, inputs):  # type: ignore[override]
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        per_func = self._rewards_per_func
        advantages = grpo_advantages(
            per_func,
            self.reward_weights.to(per_func.device),
            self.num_generations if mode == "train" else self.num_generations_eval,
            self.scale_rewards,
            self.args.multi_objective_aggregation,
            self.args.advantage_epsilon,
        )
        start = self.accelerator.process_index * len(output["advantages"])
        local = advantages[start : start + len(output["advantages"])]
        output["advantages"] = local.to(output["advantages"].device, output["advantages"].dtype)
        return output

    # -- the optimizer ----------------------------------------------------------------------------------------
    def get_decay_parameter_names(self, model) -> list[str]:  # type: ignore[override]
        """Every parameter, as the official fork's AdamW (HF's default leaves out biases and norm weights)."""
        return [name for name, _ in model.named_parameters()]

    def create_optimizer(self, model=None):  # type: ignore[override]
        optimizer = super().create_optimizer(model)
        # HF's second group (no decay) is now empty; ZeRO flattens each group, so leave none empty.
        optimizer.param_groups[:] = [group for group in optimizer.param_groups if group["params"]]
        return optimizer

    # -- the KL clamp -----------------------------------------------------------------------------------------
    def _get_per_token_logps_and_entropies(self, model, *args: Any, **kwargs: Any):  # type: ignore[override]
        logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        self._policy_logps = logps  # in _compute_loss the one call is the policy's, with its graph
        return logps, entropies, aux_loss

    def _compute_loss(self, model, inputs):  # type: ignore[override]
        if self.beta == 0.0 or self._kl_clamp is None:
            loss = super()._compute_loss(model, inputs)
            self._policy_logps = None  # no reference to the graph past its backward
            return loss
        beta, self.beta = self.beta, 0.0  # TRL's own (unclamped) KL term stays out of its loss
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self.beta = beta
        logps, self._policy_logps = self._policy_logps, None
        kl = verl_low_var_kl(inputs["ref_per_token_logps"], logps, self._kl_clamp)
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        mode = "train" if self.model.training else "eval"
        totals = self.accelerator.reduce(torch.stack([(kl.detach() * mask).sum(), mask.sum().float()]), "sum")
        self._metrics[mode]["kl"].append((totals[0] / totals[1].clamp(min=1.0)).item())
        return loss + beta * self._aggregate(kl, mask, inputs)

    def _aggregate(self, per_token: torch.Tensor, mask: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
        """A per-token term reduced as TRL 1.16's `_compute_loss` reduces its per-token loss for `loss_type`."""
        train = self.model.training
        accumulation = self.current_gradient_accumulation_steps if train else 1.0
        total = (per_token * mask).sum()
        if self.loss_type in ("grpo", "sapo"):
            return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accumulation
        if self.loss_type == "bnpo":
            return total / mask.sum().clamp(min=1.0) / accumulation
        if self.loss_type == "dr_grpo":
            return total / (per_token.size(0) * self.max_completion_length) / accumulation
        if self.loss_type in ("cispo", "dapo", "vespo"):
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if train:
                normalizer = (
                    normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
                )
            return total / normalizer
        if self.loss_type == "luspo":
            return (per_token * mask).sum(-1).mean() / accumulation
        raise ValueError(
            f"kl_clamp does not know how loss_type {self.loss_type!r} aggregates; set kl_clamp: null."
        )
