"""`OneShotPPOTrainer`: PPO with a critic (verl's `adv_estimator=gae`) on OneShotGRPOTrainer's machinery.

TRL 1.16 has no PPO trainer. This subclass keeps everything of `OneShotGRPOTrainer` (generation, rewards, KL to
the reference model, entropy bonus, metrics, accuracy history) and changes only what PPO changes, in three hooks:

- `_generate_and_score_completions`: after TRL has generated and scored a batch, the critic's values of every
  completion token, the sequence reward placed on the last completion token, GAE advantages and returns, the
  advantages whitened over the whole generation batch (all processes), as verl's
  `core_algos.compute_gae_advantage_return`. They replace GRPO's one-advantage-per-sequence: TRL's
  `_compute_loss` takes (B, T) advantages as they are, so the policy loss is verl's per-token clipped PPO loss
  (`compute_policy_loss`: masked mean of max(-A·ratio, -A·clip(ratio, 1-ε, 1+ε))), KL and entropy terms unchanged.
- `compute_loss`: on every training micro-batch also the critic's clipped value loss (verl `compute_value_loss`:
  0.5 · masked mean of max((V-R)², (clip(V, V_old ± c) - R)²)), backpropagated into the critic, whose own AdamW
  steps when the policy's optimizer does (same accumulation window, gradients averaged over processes).
- `_save_checkpoint` / `_load_optimizer_and_scheduler`: the critic (weights + optimizer) in `checkpoint-N/critic/`,
  restored on resume.

The critic is the policy's architecture with a scalar head (`AutoModelForTokenClassification`, num_labels=1, no
dropout, fp32 weights, bf16 autocast when `bf16`), initialized from the policy's weights, exactly as verl builds it
(`fsdp_workers.py::_build_critic_model_optimizer`). It is replicated on every process, not sharded by DeepSpeed:
it costs about 16 bytes per parameter per GPU (weights, gradients, Adam moments in fp32).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForTokenClassification, PreTrainedModel
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from oneshot_trl.config import OneShotPPOConfig
from oneshot_trl.trainer import OneShotGRPOTrainer

logger = logging.getLogger(__name__)

CRITIC_DIR = "critic"
CRITIC_OPTIMIZER_FILE = "optimizer.pt"
WHITEN_EPS = 1e-8  # verl_F.masked_whiten


# -- the algorithm, as pure functions ------------------------------------------------------------------------
def token_level_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) sequence rewards -> (B, T), each on its completion's last token (verl's reward managers); 0 elsewhere.

    Completions are right-padded, so the last token is at `mask.sum(1) - 1`; an all-masked row (a truncated
    completion under `mask_truncated_completions`) gets no reward, and no loss either.
    """
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    lengths = mask.sum(dim=1).long()
    rows = torch.nonzero(lengths > 0).squeeze(1)
    out[rows, lengths[rows] - 1] = rewards[rows].float()
    return out


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns, (B, T) each, before whitening (verl `compute_gae_advantage_return`).

    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}, returns = A + V. Masked positions
    neither bootstrap nor accumulate (current verl), so the value after the last completion token is 0. (The
    official fork's older verl took V_{t+1} from the position after EOS, an untrained value; we do not.)
    """
    mask = mask.float()
    next_value = torch.zeros_like(values[:, 0])
    last_gae = torch.zeros_like(values[:, 0])
    reversed_advantages = []
    for t in reversed(range(values.size(1))):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * last_gae
        next_value = values[:, t] * mask[:, t] + (1 - mask[:, t]) * next_value
        last_gae = gae * mask[:, t] + (1 - mask[:, t]) * last_gae
        reversed_advantages.append(last_gae)
    advantages = torch.stack(reversed_advantages[::-1], dim=1)
    return advantages, advantages + values


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, sum_over_processes=None) -> torch.Tensor:
    """(x - mean) / sqrt(var + 1e-8) over the masked entries, unbiased variance (verl `masked_whiten`).

    `sum_over_processes` (a function summing a tensor over processes) makes mean and variance those of the whole
    generation batch, as verl whitens the whole batch on its driver. Masked entries come out 0.
    """
    total = sum_over_processes or (lambda x: x)
    mask = mask.float()
    moments = total(torch.stack([(values * mask).sum(), mask.sum()]))
    mean = moments[0] / moments[1].clamp(min=1.0)
    squares = total(((values - mean) ** 2 * mask).sum())
    variance = squares / (moments[1] - 1).clamp(min=1.0)
    return (values - mean) * torch.rsqrt(variance + WHITEN_EPS) * mask


def clipped_value_loss(
    vpreds: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl `compute_value_loss` (from TRL's old PPOTrainer): the loss and the fraction of clipped tokens."""
    mask = mask.float()
    clipped = old_values + (vpreds - old_values).clamp(-cliprange, cliprange)
    losses, clipped_losses = (vpreds - returns) ** 2, (clipped - returns) ** 2
    count = mask.sum().clamp(min=1.0)
    loss = 0.5 * (torch.max(losses, clipped_losses) * mask).sum() / count
    clipfrac = ((clipped_losses > losses).float() * mask).sum() / count
    return loss, clipfrac


@contextlib.contextmanager
def _no_zero3_init():
    """Load the critic as a plain module under DeepSpeed ZeRO-3 (no engine would gather partitioned weights)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def load_critic(source: str, trust_remote_code: bool = False) -> PreTrainedModel:
    """The policy's architecture with a scalar value head, from `source`'s weights, fp32, no dropout (as verl)."""
    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    config.num_labels = 1
    config.classifier_dropout = 0.0
    config.use_cache = False
    with _no_zero3_init():
        return AutoModelForTokenClassification.from_pretrained(
            source, config=config, dtype=torch.float32, trust_remote_code=trust_remote_code
        )


# -- the trainer -----------------------------------------------------------------------------------------------
class OneShotPPOTrainer(OneShotGRPOTrainer):
    def __init__(self, *args: Any, critic_model: str | PreTrainedModel | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, OneShotPPOConfig):
            raise TypeError(f"OneShotPPOTrainer needs a OneShotPPOConfig, got {type(self.args).__name__}.")
        source = critic_model or self.args.critic_model_name_or_path or self._policy_path()
        if isinstance(source, PreTrainedModel):
            self.critic = source.float()
        else:
            logger.info("Critic: %s with a scalar value head.", source)
            self.critic = load_critic(source, self.args.trust_remote_code)
        self.critic.to(self.accelerator.device)
        if self.accelerator.num_processes > 1:
            # Each process seeds differently (TRL's device-specific seed), so the new value heads differ: start all
            # processes from rank 0's critic; averaged gradients then keep them equal.
            for tensor in self.critic.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        if self.args.gradient_checkpointing:
            self.critic.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs
                or {"use_reentrant": False}
            )
        self.critic_optimizer = torch.optim.AdamW(
            self.critic.parameters(),
            lr=self.args.critic_learning_rate,
            betas=(self.args.adam_beta1, self.args.adam_beta2),
            eps=self.args.adam_epsilon,
            weight_decay=self.args.weight_decay,
        )

    def _policy_path(self) -> str:
        path = getattr(self.accelerator.unwrap_model(self.model).config, "_name_or_path", "")
        if not path:
            raise ValueError("Cannot tell where the policy was loaded from: set critic_model_name_or_path.")
        return path

    # -- rollouts: values, GAE, whitening -------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs):  # type: ignore[override]
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        mask = self._loss_mask(output)
        # The sequence reward as TRL weighs it (reward_weights), this process's rows; unscorable -> 0. The rewards of
        # all processes are kept by VerlUpdateRule._calculate_rewards.
        weighted = (self._rewards_per_func * self.reward_weights.to(self._rewards_per_func.device)).nansum(
            dim=1
        )
        start = self.accelerator.process_index * mask.size(0)
        rewards = weighted[start : start + mask.size(0)].to(mask.device)

        self.critic.eval()
        with torch.no_grad():
            values = self._critic_values(output, grad=False) * mask
            advantages, returns = compute_gae(
                token_level_rewards(rewards, mask), values, mask, self.args.gamma, self.args.lam
            )
            advantages = masked_whiten(advantages, mask, self._sum_over_processes)
        output["advantages"] = advantages
        output["values"] = values
        output["returns"] = returns
        self._metrics[mode]["critic/values/mean"].append(self._global_masked_mean(values, mask))
        self._metrics[mode]["critic/returns/mean"].append(self._global_masked_mean(returns, mask))
        return output

    # -- training: the policy loss is TRL's (per-token advantages), plus a critic update ---------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.model.training:
            self._critic_step(inputs)
            if self.state.global_step < self.args.critic_warmup:
                loss = loss * 0.0  # the policy waits while the critic warms up (zero gradient, same graph)
        return loss

    def _critic_step(self, inputs: dict[str, Any]) -> None:
        """One micro-batch of the critic's update; the optimizer steps at the end of the accumulation window."""
        self.critic.train()
        mask = self._loss_mask(inputs)
        vpreds = self._critic_values(inputs, grad=True)
        vf_loss, clipfrac = clipped_value_loss(
            vpreds, inputs["values"], inputs["returns"], mask, self.args.cliprange_value
        )
        (vf_loss / self.current_gradient_accumulation_steps).backward()
        metrics = self._metrics["train"]
        metrics["critic/vf_loss"].append(self.accelerator.gather(vf_loss.detach()).mean().item())
        metrics["critic/vf_clipfrac"].append(self.accelerator.gather(clipfrac.detach()).mean().item())
        metrics["critic/vpred_mean"].append(self._global_masked_mean(vpreds.detach(), mask))
        if not self.accelerator.sync_gradients:
            return
        if self.accelerator.num_processes > 1:  # a plain module, not DDP: average its gradients ourselves
            for param in self.critic.parameters():
                if param.grad is not None:
                    torch.distributed.all_reduce(param.grad)  # sum (gloo has no average)
                    param.grad.div_(self.accelerator.num_processes)
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.critic.parameters(), self.args.max_grad_norm)
            metrics["critic/grad_norm"].append(grad_norm.item())
        self.critic_optimizer.step()
        self.critic_optimizer.zero_grad(set_to_none=True)

    def _critic_values(self, batch: dict[str, Any], grad: bool) -> torch.Tensor:
        """V(s_t) for every completion token: the value head at the position before it (verl `dp_critic`)."""
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        completion_length = batch["completion_ids"].size(1)
        chunk = input_ids.size(0) if grad else self.args.per_device_train_batch_size
        autocast = torch.autocast(self.accelerator.device.type, dtype=torch.bfloat16, enabled=self.args.bf16)
        values = []
        with torch.set_grad_enabled(grad), autocast:
            for start in range(0, input_ids.size(0), chunk):
                logits = self.critic(
                    input_ids=input_ids[start : start + chunk],
                    attention_mask=attention_mask[start : start + chunk],
                ).logits
                values.append(logits[:, -completion_length - 1 : -1, 0].float())
        return torch.cat(values, dim=0)

    # -- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    def _loss_mask(batch: dict[str, Any]) -> torch.Tensor:
        mask = batch["completion_mask"]
        return mask * batch["tool_mask"] if "tool_mask" in batch else mask

    def _sum_over_processes(self, tensor: torch.Tensor) -> torch.Tensor:
        return (
            self.accelerator.reduce(tensor, reduction="sum") if self.accelerator.num_processes > 1 else tensor
        )

    def _global_masked_mean(self, values: torch.Tensor, mask: torch.Tensor) -> float:
        totals = self._sum_over_processes(torch.stack([(values * mask).sum(), mask.sum().float()]))
        return (totals[0] / totals[1].clamp(min=1.0)).item()

    # -- checkpoints -------------------------------------------------------------------------------------------
    def _save_checkpoint(self, model, trial):  # type: ignore[override]
        super()._save_checkpoint(model, trial)
        if not self.args.should_save:
            return
        checkpoint = (
            Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        )
        self.critic.save_pretrained(checkpoint / CRITIC_DIR)
        if not self.args.save_only_model:
            torch.save(self.critic_optimizer.state_dict(), checkpoint / CRITIC_DIR / CRITIC_OPTIMIZER_FILE)

    def _load_optimizer_and_scheduler(self, checkpoint):  # type: ignore[override]
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self.load_critic_checkpoint(checkpoint)

    def load_critic_checkpoint(self, checkpoint: str | Path) -> None:
        """Restore the critic's weights (and optimizer state, when saved) from `checkpoint/critic/`."""
        folder = Path(checkpoint) / CRITIC_DIR
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{checkpoint} has no {CRITIC_DIR}/ folder: it is not a PPO checkpoint, so the critic cannot be resumed."
            )
        saved = load_critic(str(folder), self.args.trust_remote_code)
        self.critic.load_state_dict(saved.state_dict())
        optimizer_file = folder / CRITIC_OPTIMIZER_FILE
        if optimizer_file.exists():
            state = torch.load(
                optimizer_file, map_location="cpu", weights_only=True
            )  # load_state_dict moves it
            self.critic_optimizer.load_state_dict(state)
        logger.info("Critic restored from %s.", folder)
