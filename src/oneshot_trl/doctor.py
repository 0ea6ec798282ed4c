"""`oneshot-trl doctor RECIPE.yaml`: check a recipe before spending GPU hours on it. Works offline.

    oneshot-trl doctor recipes/qwen15b.yaml --accelerate-config accelerate_configs/zero3.yaml
    oneshot-trl doctor recipes/qwen15b.yaml --num-processes 4 --zero-stage 3 -- --max_steps 100

Prints the effective config (what the recipe and flags set), every value that differs from the official values
of the recipe's `paper_setup` (oneshot_trl.setups) and from TRL's defaults, the batch arithmetic for the given
world size, and a memory estimate per GPU. Exits with 2 and the reasons when the run cannot work: a generation
batch that does not hold whole groups of `num_generations`, a dataset too small for one generation batch (the
sampler would yield nothing), a vLLM tensor-parallel size that does not divide the world size, an unknown setup.
`python -m oneshot_trl.train` runs the same checks (`check_before_training`) with the real world size.
Flags after `--` override recipe keys, as for `train`.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oneshot_trl.memory import ModelInfo, estimate_memory, model_info
from oneshot_trl.setups import (
    OFFICIAL_GPUS,
    OFFICIAL_PROMPTS_PER_STEP,
    PAPER_SETUPS,
    known_setup_names,
)

logger = logging.getLogger(__name__)

ALIASES = {"entropy_coeff": "entropy_coef"}  # recipe key -> the field that holds its effective value
# Names rather than settings: never listed as "differs from TRL's default".
NAMES = {"model_name_or_path", "output_dir", "hub_model_id", "run_name"}


class SetupError(ValueError):
    """A recipe + launch combination that cannot train as intended."""


@dataclass
class Launch:
    """How many processes train and how DeepSpeed shards them (what `accelerate launch` is given)."""

    num_processes: int = 1  # total over all machines, as accelerate's --num_processes
    num_machines: int = 1
    zero_stage: int | None = None  # None: no DeepSpeed
    offload_optimizer: bool = False
    offload_params: bool = False
    source: str = "default: 1 process, no DeepSpeed"

    @classmethod
    def from_accelerate_config(cls, path: str | Path) -> Launch:
        cfg = yaml.safe_load(Path(path).read_text()) or {}
        ds = cfg.get("deepspeed_config") or {}
        stage = ds.get("zero_stage") if cfg.get("distributed_type") == "DEEPSPEED" else None
        if stage is None and ds.get("deepspeed_config_file"):
            import json

            stage = json.loads(Path(ds["deepspeed_config_file"]).read_text())["zero_optimization"]["stage"]
        return cls(
            num_processes=int(cfg.get("num_processes", 1)),
            num_machines=int(cfg.get("num_machines", 1)),
            zero_stage=stage,
            offload_optimizer=ds.get("offload_optimizer_device", "none") not in ("none", None),
            offload_params=ds.get("offload_param_device", "none") not in ("none", None),
            source=str(path),
        )

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
    if n_gen < 2:
        errors.append(f"num_generations is {n_gen}: GRPO needs at least 2 completions per prompt.")
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


def plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def same(a: Any, b: Any) -> bool:
    a, b = plain(a), plain(b)
    if {repr(a), repr(b)} == {"'none'", "[]"}:  # transformers turns report_to: none into []
        return True
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1.0)
    return a == b


def effective(configs: tuple[Any, ...], key: str) -> Any:
    name = ALIASES.get(key, key)
    for cfg in configs:
        if hasattr(cfg, name):
            return plain(getattr(cfg, name))
    raise KeyError(key)


def declared_defaults(configs: tuple[Any, ...]) -> dict[str, Any]:
    """Field defaults as declared (TRL's GRPOConfig/ModelConfig and ours), before any __post_init__."""
    out: dict[str, Any] = {}
    for cfg in configs:
        for f in dataclasses.fields(cfg):
            if f.default is not dataclasses.MISSING:
                out[f.name] = plain(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = plain(f.default_factory())
    return out


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
    a = training_args
    if script_args.paper_setup and script_args.paper_setup not in PAPER_SETUPS:
        errors.append(f"unknown paper_setup {script_args.paper_setup!r}; known: {known_setup_names()}.")
    if a.use_vllm and a.vllm_mode == "colocate" and plan.world_size % a.vllm_tensor_parallel_size:
        errors.append(
            f"vllm_tensor_parallel_size ({a.vllm_tensor_parallel_size}) must divide the number of training "
            f"processes ({plan.world_size}) in colocate mode."
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
    """The doctor's checks with the real world size, run by `train` before the model is loaded."""
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


# --- the command ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oneshot-trl doctor",
        description="Check a recipe offline: effective config, differences from the paper's official values and "
        "TRL's defaults, batch arithmetic, memory per GPU. Exit code 2 when the run cannot work.",
    )
    p.add_argument("recipe", help="A recipe YAML file (recipes/*.yaml).")
    p.add_argument(
        "--accelerate-config", help="Read processes, machines and ZeRO stage from this accelerate config."
    )
    p.add_argument("--num-processes", type=int, help="Training processes in total (all machines); overrides.")
    p.add_argument("--num-machines", type=int, help="Machines (overrides the accelerate config).")
    p.add_argument("--zero-stage", type=int, choices=(0, 1, 2, 3), help="DeepSpeed ZeRO stage (overrides).")
    p.add_argument("--offload", choices=("none", "optimizer", "all"), help="ZeRO CPU offload (overrides).")
    p.add_argument(
        "--gpu-memory-gib", type=float, default=80.0, help="Memory of one GPU (default: 80, A100)."
    )
    p.add_argument("--all", action="store_true", help="Print every config field, not only those set.")
    return p


def resolve_launch(args: argparse.Namespace) -> Launch:
    launch = Launch.from_accelerate_config(args.accelerate_config) if args.accelerate_config else Launch()
    flags = []
    if args.num_processes is not None:
        launch.num_processes = args.num_processes
        flags.append(f"--num-processes {args.num_processes}")
    if args.num_machines is not None:
        launch.num_machines = args.num_machines
        flags.append(f"--num-machines {args.num_machines}")
    if args.zero_stage is not None:
        launch.zero_stage = args.zero_stage
        flags.append(f"--zero-stage {args.zero_stage}")
    if args.offload is not None:
        launch.offload_optimizer = args.offload in ("optimizer", "all")
        launch.offload_params = args.offload == "all"
        flags.append(f"--offload {args.offload}")
    if flags:
        launch.source = (f"{args.accelerate_config} + " if args.accelerate_config else "") + " ".join(flags)
    return launch


def main(argv: list[str] | None = None) -> int:
    from oneshot_trl.config import RecipeError, load_recipe, parse_recipe

    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    try:
        launch = resolve_launch(args)
        recipe = load_recipe(args.recipe)
        # TrainingArguments refuses bf16 on a machine without a GPU unless use_cpu is set; the doctor must work on
        # any machine, so it parses with use_cpu and checks the recipe's own value.
        forced_cpu = not recipe.get("use_cpu") and "--use_cpu" not in overrides and not _has_gpu()
        parsed = parse_recipe([args.recipe, *overrides, *(["--use_cpu", "true"] if forced_cpu else [])])
        script_args, training_args, model_args, _ = parsed
        if forced_cpu:
            training_args.use_cpu = False
    except (RecipeError, ValueError, OSError) as err:
        print(f"doctor: {args.recipe} cannot be used:\n  {err}", file=sys.stderr)
        return 2
    configs = (script_args, training_args, model_args)
    user_keys = {k for k in recipe if k != "env"} | {
        a[2:].split("=")[0] for a in overrides if a.startswith("--")
    }
    rows, load_error = count_rows(script_args)
    plan = batch_plan(training_args, launch.num_processes, user_keys, rows)
    info = model_info(model_args.model_name_or_path)
    errors, warnings = find_problems(script_args, training_args, model_args, plan, info, launch.zero_stage)
    if load_error:
        errors.append(f"training examples: {load_error}")

    print(f"oneshot-trl doctor: {args.recipe}")
    setup = PAPER_SETUPS.get(script_args.paper_setup or "")
    print(f"paper setup: {script_args.paper_setup or 'none (set paper_setup: to compare with one)'}")
    if setup:
        print(f"  target: {setup.target}\n  official values from: {setup.source}")
    print(f"launch: {launch.describe()}")

    defaults = declared_defaults(configs)
    print("\nEffective config (set by the recipe or flags; every other field has its default):")
    keys = sorted(defaults) if args.all else list(dict.fromkeys([*recipe, *sorted(user_keys - set(recipe))]))
    for key in keys:
        if key == "env":
            continue
        print(f"  {key}: {_show(effective(configs, key))}")
    print(
        f"  (derived for world size {plan.world_size}) generation_batch_size: {plan.generation_batch_size}, "
        f"steps_per_generation: {plan.steps_per_generation}, entropy_coef: {training_args.entropy_coef}"
    )

    if setup:
        official = setup.values()
        diffs = [
            (k, effective(configs, k), v)
            for k, v in official.items()
            if _is_field(configs, k) and not same(effective(configs, k), v)
        ]
        shape = [
            (
                "prompts per optimizer step",
                plan.prompts_per_step,
                OFFICIAL_PROMPTS_PER_STEP,
            ),
            ("optimizer steps per generation", plan.updates_per_generation, 1),
            ("GPUs", launch.num_processes, OFFICIAL_GPUS),
        ]
        diffs += [(k, ours, off) for k, ours, off in shape if not same(ours, off)]
        print(f"\nDiffers from the official {script_args.paper_setup} ({len(diffs)}):")
        for key, ours, off in diffs:
            print(f"  {key}: {_show(ours)}   (official: {_show(off)})")
        if not diffs:
            print("  nothing")

    trl_diffs = [
        (k, effective(configs, k), defaults[ALIASES.get(k, k)])
        for k in keys
        if k in defaults
        and _is_trl_field(k)
        and k not in NAMES
        and not same(effective(configs, k), defaults[ALIASES.get(k, k)])
    ]
    print(f"\nDiffers from TRL's defaults ({len(trl_diffs)}):")
    for key, ours, default in trl_diffs:
        print(f"  {key}: {_show(ours)}   (TRL default: {_show(default)})")

    print(f"\nBatch (world size {launch.num_processes}):")
    for line in plan.lines():
        print(f"  {line}")

    print(f"\nMemory per GPU (estimate for a {args.gpu_memory_gib:g} GiB GPU):")
    for line in estimate_memory(
        info, training_args, model_args, launch, plan, script_args.max_prompt_length, args.gpu_memory_gib
    ):
        print(f"  {line}")

    for w in warnings:
        print(f"\nwarning: {w}")
    if errors:
        print(f"\nREFUSED: {args.recipe} cannot train as set up:", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 2
    print("\nOK: no problem found.")
    return 0


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _is_field(configs: tuple[Any, ...], key: str) -> bool:
    return any(hasattr(c, ALIASES.get(key, key)) for c in configs)


def _is_trl_field(key: str) -> bool:
    from oneshot_trl.config import OneShotArguments

    return key not in {f.name for f in dataclasses.fields(OneShotArguments)}


def _show(value: Any) -> str:
    return "null" if value is None else str(plain(value))


if __name__ == "__main__":
    sys.exit(main())
