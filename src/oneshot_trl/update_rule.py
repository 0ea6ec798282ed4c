"""verl's update rule where TRL 1.16 has no switch for it: the KL clamp and the GRPO advantage's epsilon.

TRL's `GRPOTrainer` with `loss_type: bnpo`, `use_bias_correction_kl: false` and the entropy bonus computes the
official run's loss (the verl fork's `dp_actor.update_policy`: clipped policy loss, `low_var_kl`, entropy, each a
token mean over a micro-batch, scaled by 1 / gradient accumulation) except in two hard-coded places, which
`VerlUpdateRule` changes (tests/test_verl_parity.py proves the result equal to verl's, loss and gradient):

- verl's `low_var_kl` clamps each token's k3 estimate to [-10, 10] (`kl_clamp`): a clamped token contributes a
  constant and no gradient. TRL adds `beta * k3` unclamped to its per-token loss; we add
  `beta * (clamp(k3) - k3)`, aggregated exactly as TRL aggregates its per-token loss, which leaves TRL's loss
  where the clamp does not bind and makes it verl's where it does.
- verl's GRPO advantage is (r - group mean) / (std + 1e-6); TRL adds 1e-4 (`advantage_epsilon`). We rescale
  TRL's advantages by (std + 1e-4) / (std + epsilon), std being the one TRL used (group or batch, nan-aware).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from trl.trainer.utils import nanstd

logger = logging.getLogger(__name__)

TRL_ADVANTAGE_EPSILON = 1e-4  # GRPOTrainer._generate_and_score_completions, hard-coded


def k3(ref_logps: torch.Tensor, logps: torch.Tensor) -> torch.Tensor:
    """The k3 estimate of KL(pi || ref) per token, as TRL and verl's low_var_kl compute it (before any clamp)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def kl_clamp_excess(ref_logps: torch.Tensor, logps: torch.Tensor, clamp: float) -> torch.Tensor:
    """clamp(k3) - k3: 0 where verl's clamp does not bind; adding it to k3 gives verl's clamped estimate."""
    kl = k3(ref_logps, logps)
    return kl.clamp(-clamp, clamp) - kl


def advantage_rescale(
    rewards: torch.Tensor, num_generations: int, scale_rewards: str, epsilon: float
) -> torch.Tensor:
    """(std + TRL's 1e-4) / (std + epsilon) per completion, std as TRL computes it for `scale_rewards`."""
    if scale_rewards == "group":
        std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
    else:  # "batch"
        std = nanstd(rewards).expand_as(rewards)
    return (std + TRL_ADVANTAGE_EPSILON) / (std + epsilon)


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
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        if (
            self.scale_rewards == "none"
            or self.args.multi_objective_aggregation != "sum_then_normalize"
            or num_generations < 2
        ):
            return output
        per_func = self._rewards_per_func
        rewards = (per_func * self.reward_weights.to(per_func.device)).nansum(dim=1)
        rewards[torch.isnan(per_func).all(dim=1)] = torch.nan  # unscorable rows, as TRL leaves them out
        scale = advantage_rescale(rewards, num_generations, self.scale_rewards, self.args.advantage_epsilon)
        start = self.accelerator.process_index * len(output["advantages"])
        local = scale[start : start + len(output["advantages"])].to(output["advantages"].device)
        output["advantages"] = output["advantages"] * local
        return output

    # -- the KL clamp -----------------------------------------------------------------------------------------
    def _get_per_token_logps_and_entropies(self, model, *args: Any, **kwargs: Any):  # type: ignore[override]
        logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        self._policy_logps = logps  # in _compute_loss the one call is the policy's, with its graph
        return logps, entropies, aux_loss

    def _compute_loss(self, model, inputs):  # type: ignore[override]
        loss = super()._compute_loss(model, inputs)
        logps, self._policy_logps = self._policy_logps, None
        if self.beta == 0.0 or self._kl_clamp is None or logps is None:
            return loss
        excess = kl_clamp_excess(inputs["ref_per_token_logps"], logps, self._kl_clamp)
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        return loss + self.beta * self._aggregate(excess, mask, inputs)

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
