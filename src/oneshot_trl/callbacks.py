"""Training callbacks: benchmark evaluation of each saved checkpoint (the post-saturation curve).

Hub pushes live in `hub.push.HubPushCallback`; per-example accuracy history is written by the trainer itself,
where the rewards are known.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from oneshot_trl.config import OneShotArguments
from oneshot_trl.run import Run

logger = logging.getLogger(__name__)


def eval_dir(output_dir: str | Path, step: int) -> Path:
    """Where the evaluation of step N goes; the Hub branch of that checkpoint is named the same."""
    return Run(output_dir).eval_dir(step)


class BenchmarkEvalCallback(TrainerCallback):
    """Evaluate each saved checkpoint (and the base model as step 0) with `oneshot_trl.eval.runner.evaluate`.

    Runs on the main process from the checkpoint on disk, so it works the same under DeepSpeed ZeRO-3 (whose
    checkpoints hold the gathered 16-bit model). Must come before `HubPushCallback` so that a checkpoint's
    branch carries its eval results. Accuracies are appended to the log history as `eval/<benchmark>`.
    """

    def __init__(
        self, script_args: OneShotArguments, base_model_path: str, trust_remote_code: bool = False
    ) -> None:
        self.args = script_args
        self.base_model_path = base_model_path
        self.trust_remote_code = trust_remote_code

    def _evaluate(self, model_path: str, args: TrainingArguments, state: TrainerState) -> None:
        from oneshot_trl.eval.benchmarks import load_dataset_problems
        from oneshot_trl.eval.runner import evaluate, load_problem_sets

        step = state.global_step
        problems = load_problem_sets(self.args.eval_benchmarks) if self.args.eval_benchmarks else {}
        if self.args.eval_dataset:
            dataset = load_dataset_problems(self.args.eval_dataset)
            problems[dataset[0].benchmark] = dataset
        results = evaluate(
            model_path,
            problems=problems,
            template=self.args.eval_template,
            protocol=self.args.eval_protocol,
            backend=self.args.eval_backend,
            output_dir=eval_dir(args.output_dir, step),
            limit=self.args.eval_limit,
            max_new_tokens=self.args.eval_max_new_tokens,
            trust_remote_code=self.trust_remote_code,
            progress=False,
        )
        scores: dict[str, Any] = {f"eval/{name}": r["accuracy"] for name, r in results["benchmarks"].items()}
        if results.get("average") is not None:
            scores["eval/average"] = results["average"]
        state.log_history.append({"step": step, **scores})
        logger.info("Step %d benchmark accuracy: %s", step, {k: round(v, 4) for k, v in scores.items()})

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ):
        done = eval_dir(args.output_dir, 0) / "results.json"
        if (
            self.args.eval_before_training
            and state.global_step == 0
            and state.is_world_process_zero
            and not done.exists()
        ):
            self._evaluate(self.base_model_path, args, state)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        if state.is_world_process_zero:
            self._evaluate(str(Run(args.output_dir).checkpoint_dir(state.global_step)), args, state)
