"""Checks and estimates of a recipe under a launch, before any GPU hour is spent: the library behind
`oneshot-trl doctor` (which prints them) and `train` (which refuses a run that cannot work).

`batch_plan` redoes TRL's batch arithmetic (GRPOConfig.__post_init__ + RepeatSampler) for any world size;
`find_problems` lists what cannot work (a generation batch that does not hold whole groups of `num_generations`,
a dataset too small for one generation batch, a vLLM tensor-parallel size that does not divide the world size, an
unknown setup) and what is probably not meant (`no_op_warnings`, `retention_warnings`); `check_before_training`
runs them with the real world size. A rule among a recipe's fields alone is its config's (`oneshot_trl.config`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oneshot_trl.memory import DEEPSPEED_BUCKETS, ModelInfo, model_info
from oneshot_trl.setups import PAPER_SETUPS, known_setup_names
from oneshot_trl.validate import InputError

logger = logging.getLogger(__name__)


class SetupError(InputError):
    """A recipe + launch combination that cannot train as intended (an input error: refused before any work)."""


def deepspeed_file(name: str, accelerate_config: Path) -> dict[str, Any]:
    """A `deepspeed_config_file` as accelerate reads it (relative to the working directory), or else relative to
    the repository holding the accelerate config (accelerate_configs/..), so `doctor` works from anywhere."""
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = accelerate_config.resolve().parent.parent / name
    return json.loads(path.read_text())


@dataclass
class Launch:
    """How many processes train and how DeepSpeed shards them (what `accelerate launch` is given)."""

    num_processes: int = 1  # total over all machines, as accelerate's --num_processes
    num_machines: int = 1
    zero_stage: int | None = None  # None: no DeepSpeed
    offload_optimizer: bool = False
    offload_params: bool = False
    fp32_gradients: bool = (
        True  # DeepSpeed accumulates and reduces in fp32 (data_types, communication_data_type)
    )
    source: str = "default: 1 process, no DeepSpeed"
    buckets: dict[str, float] = field(
        default_factory=dict
    )  # DeepSpeed bucket sizes the config sets (memory.py)

    @classmethod
    def from_accelerate_config(cls, path: str | Path) -> Launch:
        cfg = yaml.safe_load(Path(path).read_text()) or {}
        ds = cfg.get("deepspeed_config") or {}
        stage = ds.get("zero_stage") if cfg.get("distributed_type") == "DEEPSPEED" else None
        offload_optimizer = ds.get("offload_optimizer_device", "none")
        offload_params = ds.get("offload_param_device", "none")
        buckets: dict[str, float] = {}
        fp32_gradients = (
            stage is None
        )  # accelerate's generated DeepSpeed config follows the model dtype (bf16)
        if stage is None and ds.get("deepspeed_config_file"):
            ds_file = deepspeed_file(ds["deepspeed_config_file"], Path(path))
            fp32_gradients = (ds_file.get("data_types") or {}).get(
                "grad_accum_dtype"
            ) == "fp32" and ds_file.get("communication_data_type") == "fp32"
            zero = ds_file["zero_optimization"]
            stage = zero["stage"]
            offload_optimizer = (zero.get("offload_optimizer") or {}).get("device", "none")
            offload_params = (zero.get("offload_param") or {}).get("device", "none")
            buckets = {
                k: float(v) for k, v in zero.items() if k in DEEPSPEED_BUCKETS and not isinstance(v, str)
            }
        return cls(
            num_processes=int(cfg.get("num_processes", 1)),
            num_machines=int(cfg.get("num_machines", 1)),
            zero_stage=stage,
            offload_optimizer=offload_optimizer not in ("none", None),
            offload_params=offload_params not in ("none", None),
            fp32_gradients=fp32_gradients,
            source=str(path),
            buckets=buckets,
        )

    def precision_warnings(self, bf16: bool) -> list[str]:
        if self.zero_stage is None or self.fp32_gradients or not bf16:
            return []
        return [
            f"{self.source}: DeepSpeed accumulates and reduces the bf16 gradients in bf16 (its default follows the "
            "model dtype); verl does both in fp32. Use accelerate_configs/zero{2,3}.yaml, whose DeepSpeed files set "
            'data_types.grad_accum_dtype and communication_data_type to "fp32".'
        ]

    def describe(self) -> str:
        ds = "no DeepSpeed" if self.zero_stage is None else f"DeepSpeed ZeRO-{self.zero_stage}"
        offload = [
            n for n, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on
        ]
        ds += f", {' + '.join(offload)} offloaded to CPU" if offload else ""
        return f"{self.num_processes} process(es) on {self.num_machines} machine(s), {ds} ({self.source})"


@dataclass
class BatchPlan:
    """TRL's batch arithmetic (GRPOConfig.__post_init__ + RepeatSampler) for a given world size."""

    world_size: int
    per_device: int
    grad_accum: int
    num_generations: int
    steps_per_generation: int
    generation_batch_size: int  # completions generated at once, over all processes
    num_iterations: int
    dataset_rows: int | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def completions_per_step(self) -> int:  # per optimizer step
        return self.per_device * self.world_size * self.grad_accum

    @property
    def prompts_per_step(self) -> int | float:
        prompts = self.completions_per_step / self.num_generations
        return int(prompts) if prompts.is_integer() else prompts

    @property
    def prompts_per_generation(self) -> int:
        return self.generation_batch_size // self.num_generations

    @property
    def updates_per_generation(self) -> float:
        return self.num_iterations * self.steps_per_generation / self.grad_accum

    def lines(self) -> list[str]:
        out = [
            f"micro-batch: {self.per_device} completions per device x {self.world_size} device(s) = "
            f"{self.per_device * self.world_size}",
            f"optimizer step: x {self.grad_accum} accumulation = {self.completions_per_step} completions "
            f"= {self.prompts_per_step} prompts x {self.num_generations} generations",
            f"generation: {self.generation_batch_size} completions = {self.prompts_per_generation} prompts x "
            f"{self.num_generations} every {self.steps_per_generation} micro-step(s) -> "
            f"{self.updates_per_generation:g} optimizer step(s) per generation"
            + (" (on-policy)" if self.updates_per_generation == 1 else ""),
        ]
        if self.dataset_rows is not None:
            per_epoch = self.dataset_rows // max(self.prompts_per_generation, 1)
            out.append(f"dataset: {self.dataset_rows} rows -> {per_epoch} generation batch(es) per epoch")
        return out


def batch_plan(
    training_args: Any, world_size: int, user_keys: set[str], dataset_rows: int | None
) -> BatchPlan:
    """Redo TRL's arithmetic for `world_size` processes, from the values the user set (not the ones TRL derived
    for the doctor's own single process)."""
    a = training_args
    per_device, accum, n_gen = a.per_device_train_batch_size, a.gradient_accumulation_steps, a.num_generations
    errors: list[str] = []
    global_micro = per_device * world_size
    if "generation_batch_size" in user_keys and a.generation_batch_size is not None:
        gen_batch = a.generation_batch_size
        if gen_batch % global_micro:
            errors.append(
                f"generation_batch_size ({gen_batch}) must be divisible by per_device_train_batch_size x world size "
                f"({per_device} x {world_size} = {global_micro})."
            )
        steps = max(gen_batch // global_micro, 1)
    else:
        steps = a.steps_per_generation if "steps_per_generation" in user_keys else accum
        steps = steps or accum
        gen_batch = global_micro * steps
    plan = BatchPlan(
        world_size, per_device, accum, n_gen, steps, gen_batch, a.num_iterations, dataset_rows, errors
    )
    if gen_batch % n_gen:
        errors.append(
            f"the generation batch ({per_device} per device x {world_size} process(es) x {steps} "
            f"steps_per_generation = {gen_batch} completions) is not a multiple of num_generations ({n_gen}): "
            "groups would be split. Change per_device_train_batch_size, gradient_accumulation_steps/"
            "steps_per_generation or the number of processes."
        )
    elif dataset_rows is not None and dataset_rows < plan.prompts_per_generation:
        errors.append(
            f"the dataset has {dataset_rows} row(s) but one generation batch takes {plan.prompts_per_generation} "
            f"prompts ({gen_batch} completions / {n_gen} generations); TRL's sampler drops incomplete batches, so "
            f"training would see no data. Set dataset_repeat_to: {plan.prompts_per_generation} (or a multiple)."
        )
    elif dataset_rows is not None and dataset_rows % plan.prompts_per_generation:
        plan.warnings.append(
            f"{dataset_rows % plan.prompts_per_generation} of {dataset_rows} rows are left out of each epoch "
            f"(batches of {plan.prompts_per_generation} prompts; verl's drop_last does the same)."
        )
    if steps % accum and (steps > accum or accum % steps):
        plan.warnings.append(
            f"steps_per_generation ({steps}) is not a multiple of gradient_accumulation_steps ({accum}): an "
            "optimizer step mixes completions of two generations."
        )
    return plan


def count_rows(script_args: Any) -> tuple[int | None, str | None]:
    """Rows of the training set (None when it cannot be known offline) and a load error, if any."""
    from oneshot_trl.data import load_examples

    if script_args.dataset_name and not Path(script_args.dataset_name).exists():
        return script_args.dataset_repeat_to, None  # a Hub dataset: not loaded offline
    try:
        examples = load_examples(script_args)
    except (ValueError, FileNotFoundError) as err:
        return None, str(err)
    if not examples:
        return 0, "the example source selects no rows"
    return script_args.dataset_repeat_to or len(examples), None


def no_op_warnings(script_args: Any, training_args: Any) -> list[str]:
    """Settings that make a run train nothing while it spends its steps: a zero learning rate, or (GRPO) a reward
    that is the same for every completion of a group, so every advantage is 0, without an entropy bonus."""
    a, warnings = training_args, []
    if a.learning_rate == 0:
        warnings.append(
            "learning_rate is 0: the policy's weights never change (the run only generates and logs)."
        )
    names = list(script_args.reward_funcs or [])
    weights = list(a.reward_weights or [1.0] * len(names))
    constant = all(
        w == 0 or n == "none" or (n == "random" and script_args.random_reward_p in (0, 1))
        for n, w in zip(names, weights, strict=False)
    )
    if script_args.algorithm == "grpo" and names and constant and not a.entropy_coef:
        warnings.append(
            f"reward_funcs {names} (weights {weights}, random_reward_p {script_args.random_reward_p:g}) give every "
            "completion of a group the same reward, so every advantage is 0, and entropy_coeff is 0: nothing "
            "moves the policy. Set entropy_coeff for entropy-only training, or a reward that tells answers apart."
        )
    return warnings


def retention_warnings(script_args: Any, training_args: Any) -> list[str]:
    """Evaluated checkpoints that a run would delete with nothing else keeping their weights (push_to_hub off):
    transformers' `save_total_limit` (the oldest, whatever their eval) or retention (all but the newest and best)."""
    s, a = script_args, training_args
    evaluates = bool(s.eval_benchmarks or s.eval_full_benchmarks or s.eval_dataset)
    saves = a.save_strategy not in ("no", None) and str(a.save_strategy) != "SaveStrategy.NO"
    deletes = saves and (s.keep_last_checkpoints is not None or bool(a.save_total_limit))
    if not (evaluates and deletes) or a.push_to_hub:
        return []
    if a.save_total_limit and s.keep_last_checkpoints is None:
        return [
            f"save_total_limit: {a.save_total_limit} deletes the oldest checkpoints whatever their eval, and "
            "push_to_hub is off: the best evaluated checkpoint is lost. Use keep_last_checkpoints + "
            "keep_best_checkpoints (save_total_limit: null), or push_to_hub: true."
        ]
    return [
        "checkpoint retention deletes evaluated checkpoints that are not among the newest or the best, and "
        "push_to_hub is off: their weights are lost (their evals stay in eval/). Set push_to_hub: true "
        "(every checkpoint on its branch) to keep them all."
    ]


def find_problems(
    script_args: Any,
    training_args: Any,
    model_args: Any,
    plan: BatchPlan,
    info: ModelInfo | None,
    zero_stage: int | None,
) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a recipe under a launch: what cannot work, and what probably is not meant."""
    errors, warnings = list(plan.errors), list(plan.warnings)
    warnings += no_op_warnings(script_args, training_args) + retention_warnings(script_args, training_args)
    a = training_args
    if script_args.paper_setup and script_args.paper_setup not in PAPER_SETUPS:
        errors.append(f"unknown paper_setup {script_args.paper_setup!r}; known: {known_setup_names()}.")
    if a.use_vllm and a.vllm_mode == "colocate" and plan.world_size % a.vllm_tensor_parallel_size:
        errors.append(
            f"vllm_tensor_parallel_size ({a.vllm_tensor_parallel_size}) must divide the number of training "
            f"processes ({plan.world_size}) in colocate mode."
        )
    local_batch = plan.generation_batch_size // max(plan.world_size, 1)
    if "majority" in script_args.reward_funcs and local_batch % plan.num_generations:
        errors.append(
            f"reward_funcs: majority votes within each group of {plan.num_generations}, but each process scores "
            f"{local_batch} completions per generation, not whole groups: make per_device_train_batch_size x "
            "steps_per_generation a multiple of num_generations."
        )
    if a.use_vllm and a.use_cpu and (a.vllm_mode != "colocate" or a.vllm_enable_sleep_mode):
        errors.append(
            "use_vllm on CPU (use_cpu: true) needs vllm_mode: colocate and vllm_enable_sleep_mode: false "
            "(a vllm-serve server on CPU prepacks its weights; sleep mode needs a GPU)."
        )
    if info is not None and info.max_positions:
        total = (script_args.max_prompt_length or 0) + a.max_completion_length
        if total > info.max_positions:
            warnings.append(
                f"max_prompt_length + max_completion_length = {total} > the model's max_position_embeddings "
                f"({info.max_positions})."
            )
        elif (
            a.use_vllm
            and a.vllm_mode == "colocate"
            and not a.vllm_max_model_length
            and info.max_positions > total
        ):
            warnings.append(
                f"vllm_max_model_length is unset: vLLM sizes its engine for the model's {info.max_positions}-token "
                f"context (and refuses to start when its KV cache cannot hold one such sequence) while this run "
                f"needs {total}; set vllm_max_model_length: {total}."
            )
    if (
        not a.use_cpu
        and model_args.dtype in ("bfloat16", "float16")
        and not model_args.use_peft
        and zero_stage is None
        and a.learning_rate < 1e-5
    ):
        warnings.append(
            f"dtype {model_args.dtype} without DeepSpeed trains the {model_args.dtype} weights directly (no fp32 master "
            f"copy): Adam steps of ~learning_rate ({a.learning_rate:g}) are below bf16 resolution (~1e-4 for weights of "
            "size 0.02) and mostly round to zero. Use a DeepSpeed config (fp32 master weights, as verl) or dtype: "
            "float32 with bf16: true."
        )
    return errors, warnings


def check_before_training(script_args: Any, training_args: Any, model_args: Any, num_examples: int) -> None:
    """The checks with the real world size, run by `train` before the model is loaded."""
    rows = script_args.dataset_repeat_to or num_examples
    # TRL has derived steps_per_generation for the real world size already: take it as set.
    plan = batch_plan(training_args, training_args.world_size, {"steps_per_generation"}, rows)
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    zero_stage = int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", 0)) if deepspeed else None
    info = model_info(model_args.model_name_or_path)
    errors, warnings = find_problems(script_args, training_args, model_args, plan, info, zero_stage)
    for w in warnings:
        logger.warning("%s", w)
    if errors:
        raise SetupError("The recipe cannot train as set up:\n- " + "\n- ".join(errors))
