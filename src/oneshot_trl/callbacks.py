"""Training callbacks: benchmark evaluation of each saved checkpoint (the post-saturation curve), and the training
progress bar.

Hub pushes live in `hub.push.HubPushCallback`; per-example accuracy history is written by the trainer itself,
where the rewards are known.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import (
    PrinterCallback,
    ProgressCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from oneshot_trl.config import OneShotArguments
from oneshot_trl.eval.generate import TransformersGenerator, VLLMGenerator
from oneshot_trl.eval.protocols import get_protocol
from oneshot_trl.eval.request import EvalOptions, EvalOutput, EvalRequest, ModelRef
from oneshot_trl.eval.runner import check_context, evaluate
from oneshot_trl.eval.sharding import Shard
from oneshot_trl.layout import RESULTS_FILE, checkpoint_dirs, checkpoint_name, eval_dir
from oneshot_trl.progress import progress_bar
from oneshot_trl.retention import AVERAGE_METRIC, checkpoints_to_keep, metric_value
from oneshot_trl.tracking import CompactLog, log_eval

if TYPE_CHECKING:
    from trl import GRPOTrainer

    from oneshot_trl.eval.benchmarks import Problem

logger = logging.getLogger(__name__)


class TrainingProgressCallback(ProgressCallback):
    """transformers' training bar through `progress.progress_bar`: the same live bar on a terminal; in a log file
    or a pipe, a line now and then instead of a redraw ten times a second. Each log is one compact line
    (`tracking.compact_line`) instead of the whole dict, which goes to the trackers and log_history."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.compact = CompactLog()

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = progress_bar(total=state.max_steps, desc="train", unit="step")
        self.current_step = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            line = self.compact.line(logs, state)
            if line is not None:
                (self.training_bar.write if self.training_bar is not None else print)(line)


class CompactPrinterCallback(PrinterCallback):
    """transformers' `PrinterCallback` (no progress bar: `disable_tqdm`) with the compact line per log."""

    def __init__(self) -> None:
        self.compact = CompactLog()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            line = self.compact.line(logs, state)
            if line is not None:
                print(line, flush=True)


class TrainerEngineGenerator(VLLMGenerator):
    """The eval generator on TRL's colocated vLLM engine (`trainer.vllm_generation.llm`), never a second one."""

    name = "trainer-vllm"


class TrainerPolicyGenerator(TransformersGenerator):
    """The eval generator on the policy being trained (transformers `generate`)."""

    name = "trainer-policy"


@contextmanager
def training_generator(trainer: GRPOTrainer) -> Iterator[tuple[VLLMGenerator | TransformersGenerator, Shard]]:
    """The training's own generator holding the current weights, and this process's shard of an eval.

    - `use_vllm` + colocate: TRL's engine, the policy synced into it first (as TRL does before a generation; the
      sync then counts for the next rollout too), woken up for the eval and put back to sleep in sleep mode.
      The processes of one tensor-parallel engine share a shard.
    - otherwise: the policy with transformers, unwrapped as TRL's GRPOTrainer generates (DDP module, ZeRO-3 params
      gathered once for the whole eval, gradient checkpointing off meanwhile). In `vllm_mode: server` the server
      serves the trainer's rollouts only, so the evals use this path too.
    Every process must enter this together (the sync and the ZeRO-3 gather are collectives).
    """
    from trl.distributed import DistributedBackend
    from trl.models import unwrap_model_for_generation

    args = trainer.args
    vllm_generation = getattr(trainer, "vllm_generation", None) if trainer.use_vllm else None
    if vllm_generation is not None and vllm_generation.mode == "colocate":
        sleeping = getattr(vllm_generation, "_llm_weights_sleeping", False)
        if sleeping or trainer.state.global_step != trainer._last_loaded_step:
            vllm_generation.sync_weights()  # wakes the weights up first in sleep mode
            trainer._last_loaded_step = trainer.state.global_step
        if vllm_generation.enable_sleep_mode:
            vllm_generation.llm.wake_up(tags=["kv_cache"])
        try:
            shard = Shard.from_accelerator(trainer.accelerator, vllm_generation.tensor_parallel_size)
            yield TrainerEngineGenerator(vllm_generation.llm), shard
        finally:
            if vllm_generation.enable_sleep_mode:  # as after TRL's own generation; weights resynced next time
                vllm_generation.llm.sleep(level=2)
                vllm_generation._llm_weights_sleeping = True
        return
    if DistributedBackend(trainer.accelerator).is_zero3 and not args.ds3_gather_for_generation:
        raise ValueError(
            "In-training evals under ZeRO-3 generate with the gathered policy; ds3_gather_for_generation: false "
            "(shards kept apart, ranks in lockstep) is not supported. Set it to true or use_vllm: true."
        )
    with unwrap_model_for_generation(
        trainer.model_wrapped,
        trainer.accelerator,
        gather_deepspeed3_params=True,
        gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs,
    ) as model:
        generator = TrainerPolicyGenerator(model, trainer.processing_class, progress=False)
        yield generator, Shard.from_accelerator(trainer.accelerator)


class BenchmarkEvalCallback(TrainerCallback):
    """Evaluate each saved checkpoint (and the base model as step 0) with the training's own generator.

    Same code, files and metrics as `oneshot-trl eval` (`oneshot_trl.eval.runner.evaluate`, into
    `output_dir/eval/step-NNNNNN/`), with only the generation step swapped for `training_generator`: TRL's colocated
    vLLM engine, or the policy with transformers. Every rank evaluates its share of the problems and the rows are
    gathered, so no rank idles at a collective while another evaluates, and no second engine (and no reload from
    disk) competes with the trainer for memory. Why a callback bound to the trainer rather than a separate eval
    process: the engine and the policy already hold the checkpoint's weights in memory and every rank is idle at a
    save anyway; a separate process would need its own copy of the model (memory the trainer uses) or would queue
    behind training for a GPU. Must come before `HubPushCallback` so that a checkpoint's branch carries its eval
    results. Accuracies are appended to the log history as `eval/<benchmark>`. Call `bind(trainer)` before
    training.
    """

    def __init__(self, script_args: OneShotArguments, base_model_path: str) -> None:
        self.args = script_args
        self.base_model_path = base_model_path
        self.trainer: GRPOTrainer | None = None
        self._problems: dict[str, list[Problem]] | None = None

    def bind(self, trainer: GRPOTrainer) -> None:
        """The trainer whose generator (and weights) the evals use."""
        self.trainer = trainer

    def problems(self, step: int | None = None) -> dict[str, list[Problem]]:
        """The problem sets evaluated at `step` (loaded once): every checkpoint's, plus `eval_full_benchmarks` at
        step 0 and every `eval_full_steps` steps (None: all of them)."""
        if self._problems is None:
            from oneshot_trl.eval.benchmarks import load_dataset_problems, load_problem_sets

            names = list(
                dict.fromkeys([*(self.args.eval_benchmarks or []), *(self.args.eval_full_benchmarks or [])])
            )
            problems = load_problem_sets(names) if names else {}
            if self.args.eval_dataset:
                dataset = load_dataset_problems(self.args.eval_dataset)
                problems[dataset[0].benchmark] = dataset
            self._problems = problems
        full = set(self.args.eval_full_benchmarks or []) - set(self.args.eval_benchmarks or [])
        every = self.args.eval_full_steps
        if step is None or not full or step == 0 or (every and step % every == 0):
            return self._problems
        return {name: problems for name, problems in self._problems.items() if name not in full}

    def evaluate(self, model_label: str, output_dir: Path, step: int | None = None) -> dict[str, Any]:
        """Evaluate the trainer's current weights (of `step`) into `output_dir`; every process calls this
        together."""
        if self.trainer is None:
            raise RuntimeError("BenchmarkEvalCallback.bind(trainer) was not called.")
        with training_generator(self.trainer) as (generator, shard):
            request = self.request(model_label, step).replace(
                output=EvalOutput(dir=Path(output_dir)), options=EvalOptions(progress=False, shard=shard)
            )
            return evaluate(request, generator)

    def request(self, model_label: str, step: int | None = None) -> EvalRequest:
        """The eval request of `step` (the recipe's eval_* keys turned into one object)."""
        protocol = get_protocol(self.args.eval_protocol).with_overrides(
            template=self.args.eval_template, max_new_tokens=self.args.eval_max_new_tokens
        )
        problems = {k: v[: self.args.eval_limit] for k, v in self.problems(step).items()}
        return EvalRequest(problems, protocol, ModelRef(model_label), limit=self.args.eval_limit)

    def check_context(self) -> None:
        """Refuse (InputError), before the first step, evals whose prompt + max_new_tokens exceed the context of
        the model or of TRL's colocated engine: they would fail or run past the positions at the first save."""
        trainer = self.trainer
        contexts = [getattr(trainer.model.config, "max_position_embeddings", None)]
        vllm_generation = getattr(trainer, "vllm_generation", None) if trainer.use_vllm else None
        if vllm_generation is not None and vllm_generation.mode == "colocate":
            contexts.append(vllm_generation.llm.llm_engine.model_config.max_model_len)
        request = self.request("")
        check_context(request.problems, request.protocol, trainer.processing_class,
                      min((c for c in contexts if c), default=None), where="the trained model")  # fmt: skip

    def _evaluate_step(self, model_label: str, args: TrainingArguments, state: TrainerState) -> None:
        step = state.global_step
        results = self.evaluate(model_label, eval_dir(args.output_dir, step), step)
        scores: dict[str, Any] = {f"eval/{name}": r["accuracy"] for name, r in results["benchmarks"].items()}
        average = metric_value(results, AVERAGE_METRIC)  # the six-benchmark average only
        if average is not None:
            scores[AVERAGE_METRIC] = average
        log_eval(self.trainer, scores)  # log_history, trackers, console

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ):
        self.check_context()
        if not self.args.eval_before_training or state.global_step != 0:
            return
        done = eval_dir(args.output_dir, 0) / RESULTS_FILE
        # the main process sees the files: it decides for every process (they must all evaluate, or none)
        if not Shard.from_accelerator(self.trainer.accelerator).from_main(done.exists):
            self._evaluate_step(self.base_model_path, args, state)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self._evaluate_step(str(Path(args.output_dir) / checkpoint_name(state.global_step)), args, state)


class CheckpointRetentionCallback(TrainerCallback):
    """Delete checkpoints that are neither the newest `keep_last` nor the best `keep_best` by `metrics`.

    `deletable(step)` says whether a checkpoint may go at all (with push_to_hub: its upload succeeded). Runs on the
    process that saves (`args.should_save`), after the eval and Hub callbacks' `on_save` (add it after them).
    """

    def __init__(
        self,
        keep_last: int,
        keep_best: int,
        metrics: Sequence[str],
        deletable: Callable[[int], bool] = lambda step: True,
    ) -> None:
        self.keep_last, self.keep_best, self.metrics = keep_last, keep_best, list(metrics)
        self.deletable = deletable

    def scores(self, output_dir: str | Path, steps: Iterable[int]) -> dict[str, dict[int, float]]:
        """Each metric's value per checkpoint step, from the checkpoint's in-training eval."""
        scores: dict[str, dict[int, float]] = {m: {} for m in self.metrics}
        for step in steps:
            path = eval_dir(output_dir, step) / RESULTS_FILE
            try:
                results = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not evaluated (yet), or evaluated elsewhere: never ranked, kept while newest
            for metric in self.metrics:
                value = metric_value(results, metric)
                if value is not None:
                    scores[metric][step] = value
        return scores

    def rotate(self, output_dir: str | Path) -> list[int]:
        """Delete what retention does not keep; returns the deleted steps."""
        local = checkpoint_dirs(output_dir)
        scores = self.scores(output_dir, local)
        keep = checkpoints_to_keep(local, scores, self.keep_last, self.keep_best)
        deleted = []
        for step, path in sorted(local.items()):
            if step in keep or not self.deletable(step):
                continue
            shutil.rmtree(path, ignore_errors=True)
            deleted.append(step)
            logger.info(
                "Retention: deleted %s (not among the newest %d or the best %d by %s).",
                path,
                self.keep_last,
                self.keep_best,
                ", ".join(self.metrics) or "-",
            )
        return deleted

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            self.rotate(args.output_dir)
        return control


def uploaded_steps(hub_callback: Any) -> Callable[[int], bool]:
    """`deletable` for a run that pushes: only checkpoints whose upload to their branch succeeded."""

    def deletable(step: int) -> bool:
        pushes = hub_callback.summary()["pushes"]
        return any(p["kind"] == "checkpoint" and p["step"] == step and p["status"] == "ok" for p in pushes)

    return deletable


def build_retention(script_args: Any, hub_callback: Any = None) -> CheckpointRetentionCallback | None:
    """The recipe's retention callback (None without `keep_last_checkpoints`)."""
    if script_args.keep_last_checkpoints is None:
        return None
    return CheckpointRetentionCallback(
        script_args.keep_last_checkpoints,
        script_args.keep_best_checkpoints,
        script_args.ranking_metrics,
        uploaded_steps(hub_callback) if hub_callback is not None else (lambda step: True),
    )


def recipe_callbacks(
    script_args: OneShotArguments, base_model_path: str, hub_callback: Any = None
) -> list[TrainerCallback]:
    """The recipe's callbacks in the order they must run: in-training evals, then the Hub push (a checkpoint's
    branch then carries that checkpoint's eval results), then retention (keeps the newest + the best: after
    both)."""
    evals = (
        BenchmarkEvalCallback(script_args, base_model_path)
        if script_args.eval_benchmarks or script_args.eval_dataset
        else None
    )
    return [c for c in (evals, hub_callback, build_retention(script_args, hub_callback)) if c is not None]
