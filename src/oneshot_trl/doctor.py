"""`oneshot-trl doctor RECIPE.yaml`: check a recipe before spending GPU hours on it. Works offline.

    oneshot-trl doctor recipes/qwen15b.yaml --accelerate-config accelerate_configs/zero3.yaml
    oneshot-trl doctor recipes/qwen15b.yaml --num-processes 4 --zero-stage 3 --max_steps 100

Prints the effective config (what the recipe and flags set), every value that differs from the official values
of the recipe's `paper_setup` (oneshot_trl.setups) and from TRL's defaults, the batch arithmetic for the given
world size, and a memory estimate per GPU. Exits with 2 and the reasons when the run cannot work: a generation
batch that does not hold whole groups of `num_generations`, a dataset too small for one generation batch (the
sampler would yield nothing), a vLLM tensor-parallel size that does not divide the world size, an unknown setup.
The checks live in `oneshot_trl.checks`; `python -m oneshot_trl.train` runs them (`check_before_training`) with
the real world size.
Every other flag overrides a recipe key, as for `train` (`--max_steps 5` or `--max-steps 5`; a `--` before them is
allowed); the doctor's own flags take either spelling too (`--num-processes`, `--num_processes`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oneshot_trl.checks import BatchPlan, Launch, batch_plan, count_rows, find_problems
from oneshot_trl.memory import ModelInfo, disk_lines, estimate_memory, kv_cache, model_info
from oneshot_trl.offload import cpu_adam_problem
from oneshot_trl.recipe_source import RecipeError, split_argv
from oneshot_trl.retention import max_checkpoints_on_disk
from oneshot_trl.secrets import is_secret_key, scrub, secrets_in
from oneshot_trl.setups import OFFICIAL_GPUS, OFFICIAL_PROMPTS_PER_STEP, PAPER_SETUPS
from oneshot_trl.validate import InputError

if TYPE_CHECKING:
    from oneshot_trl.recipe import Recipe


def _alias(key: str) -> str:
    """The field that holds a recipe key's effective value: its own, or the one its metadata says it sets
    (`entropy_coeff` sets TRL's `entropy_coef`)."""
    from oneshot_trl.config import OneShotGRPOConfig

    field = OneShotGRPOConfig.__dataclass_fields__.get(key)
    return field.metadata.get("sets", key) if field is not None else key


# Names rather than settings: never listed as "differs from TRL's default".
NAMES = {"model_name_or_path", "output_dir", "hub_model_id", "run_name"}


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
    name = _alias(key)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oneshot-trl doctor",
        usage="%(prog)s RECIPE.yaml [options] [--field value ...]",
        description="Check a recipe offline: effective config, differences from the paper's official values and "
        "TRL's defaults, batch arithmetic, memory per GPU. Exit code 2 when the run cannot work. Flags other than "
        "the options below override recipe keys, as for `oneshot-trl train` (--max_steps 5).",
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


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the doctor's own arguments, the recipe overrides): a flag the doctor's parser knows (in either spelling)
    is the doctor's, any other one a recipe key's, so `doctor RECIPE --num-processes 4 --max_steps 5` works."""
    own = {
        opt.lstrip("-").replace("-", "_"): action
        for action in build_parser()._actions
        for opt in action.option_strings
    }
    parsed = split_argv(argv)
    mine = [parsed.path] if parsed.path is not None else []
    overrides: list[str] = []
    for flag in parsed.flags:
        action = own.get(flag.key)
        if action is None:
            overrides += [flag.spelling, *flag.values]
        elif action.nargs == 0:  # --all takes no value: a word after it is the recipe
            mine += [action.option_strings[-1], *flag.values]
        else:
            mine += [action.option_strings[-1], *flag.values]
    return mine + (["--help"] if parsed.help else []), overrides


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mine, overrides = split_args(argv)  # a RecipeError is one line and exit 2 (oneshot_trl.cli)
    args = build_parser().parse_args(mine)
    if not Path(args.recipe).is_file():  # before the config classes' import of TRL (seconds)
        raise RecipeError(f"Recipe file not found: {args.recipe}")
    # Imported after the cheap argument errors: the config classes import TRL (seconds).
    from oneshot_trl.recipe import read_recipe_argv

    recipe = read_recipe_argv([args.recipe, *overrides])  # read once; the report goes out scrubbed (slurm logs it)
    tokens = secrets_in({**recipe.env, **recipe.effective}, overrides)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return _report(args, recipe)
    finally:
        sys.stdout.write(scrub(out.getvalue(), *tokens))
        sys.stderr.write(scrub(err.getvalue(), *tokens))


def _report(args: argparse.Namespace, recipe: Recipe) -> int:
    try:
        launch, configs = _launch_and_configs(args, recipe)
    except InputError:  # a RecipeError: one line and exit 2 (oneshot_trl.cli)
        raise
    except (ValueError, OSError) as err:  # a malformed accelerate config
        raise InputError(str(err)) from err
    script_args, training_args, model_args = configs
    rows, load_error = count_rows(script_args)
    plan = batch_plan(training_args, launch.num_processes, set(recipe.effective), rows)
    info = model_info(model_args.model_name_or_path)
    errors, warnings = find_problems(script_args, training_args, model_args, plan, info, launch.zero_stage)
    if load_error:
        errors.append(f"training examples: {load_error}")
    if eval_error := _eval_context_error(script_args, training_args, model_args):
        errors.append(eval_error)

    print(f"oneshot-trl doctor: {args.recipe}")
    _print_setup(script_args.paper_setup, launch)
    defaults = declared_defaults(configs)
    keys = sorted(defaults) if args.all else list(dict.fromkeys([*recipe.values, *sorted(recipe.flags)]))
    _print_effective(configs, keys, plan)
    _print_official_diffs(configs, launch, plan)
    _print_trl_diffs(configs, keys, defaults)
    _print_resources(args, configs, info, launch, plan)

    kv = kv_cache(info, training_args, plan, script_args.max_prompt_length, args.gpu_memory_gib)
    warnings += launch.precision_warnings(bool(training_args.bf16)) + (kv.warnings() if kv else [])
    if launch.offload_optimizer and (problem := cpu_adam_problem()):
        warnings.append(problem)
    for w in warnings:
        print(f"\nwarning: {w}")
    if errors:
        print(f"\nREFUSED: {args.recipe} cannot train as set up:", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 2
    print("\nOK: no problem found.")
    return 0


def _eval_context_error(script_args: Any, training_args: Any, model_args: Any) -> str | None:
    """The in-training evals' prompts + eval_max_new_tokens against the model's context (and vLLM's
    vllm_max_model_length), as BenchmarkEvalCallback checks it when training starts: here, before any GPU time."""
    if not (script_args.eval_benchmarks or script_args.eval_full_benchmarks or script_args.eval_dataset):
        return None
    # callbacks and the tokenizer import transformers/TRL: only for a recipe with evals
    from oneshot_trl.callbacks import BenchmarkEvalCallback
    from oneshot_trl.eval.runner import check_model_context
    from oneshot_trl.models import resolve_model

    try:
        path = resolve_model(model_args.model_name_or_path, revision=model_args.model_revision).path
        request = BenchmarkEvalCallback(script_args, path).request("")
    except (ValueError, OSError):  # a model or eval dataset that is not here (offline): other checks say so
        return None
    max_model_len = training_args.vllm_max_model_length if training_args.use_vllm else None
    try:
        check_model_context(path, request.problems, request.protocol, max_model_len)
    except InputError as err:
        return f"in-training evals: {err}"
    return None


def _launch_and_configs(args: argparse.Namespace, recipe: Recipe) -> tuple[Launch, tuple[Any, Any, Any]]:
    from oneshot_trl.recipe import build_configs  # imported with read_recipe_argv (main)

    launch = resolve_launch(args)
    # TrainingArguments refuses bf16 on a machine without a GPU unless use_cpu is set; the doctor must work on
    # any machine, so it builds the configs with use_cpu and checks the recipe's own value.
    forced_cpu = not recipe.effective.get("use_cpu") and not _has_gpu()
    script_args, training_args, model_args = build_configs(recipe, {"use_cpu": True} if forced_cpu else None)
    if forced_cpu:
        training_args.use_cpu = False
    return launch, (script_args, training_args, model_args)


def _print_setup(paper_setup: str | None, launch: Launch) -> None:
    setup = PAPER_SETUPS.get(paper_setup or "")
    print(f"paper setup: {paper_setup or 'none (set paper_setup: to compare with one)'}")
    if setup:
        print(f"  target: {setup.target}\n  official values from: {setup.source}")
    print(f"launch: {launch.describe()}")


def _print_effective(configs: tuple[Any, ...], keys: list[str], plan: BatchPlan) -> None:
    print("\nEffective config (set by the recipe or flags; every other field has its default):")
    for key in keys:
        print(f"  {key}: {_show(effective(configs, key), key)}")
    print(
        f"  (derived for world size {plan.world_size}) generation_batch_size: {plan.generation_batch_size}, "
        f"steps_per_generation: {plan.steps_per_generation}, entropy_coef: {configs[1].entropy_coef}"
    )


def _print_official_diffs(configs: tuple[Any, ...], launch: Launch, plan: BatchPlan) -> None:
    """Every value that differs from the official one of the recipe's paper_setup, the run's shape included."""
    paper_setup = configs[0].paper_setup
    setup = PAPER_SETUPS.get(paper_setup or "")
    if not setup:
        return
    diffs = [
        (k, effective(configs, k), v)
        for k, v in setup.values().items()
        if _is_field(configs, k) and not same(effective(configs, k), v)
    ]
    shape = [
        ("prompts per optimizer step", plan.prompts_per_step, OFFICIAL_PROMPTS_PER_STEP),
        ("optimizer steps per generation", plan.updates_per_generation, 1),
        ("GPUs", launch.num_processes, OFFICIAL_GPUS),
    ]
    diffs += [(k, ours, off) for k, ours, off in shape if not same(ours, off)]
    print(f"\nDiffers from the official {paper_setup} ({len(diffs)}):")
    for key, ours, off in diffs:
        print(f"  {key}: {_show(ours)}   (official: {_show(off)})")
    if not diffs:
        print("  nothing")


def _print_trl_diffs(configs: tuple[Any, ...], keys: list[str], defaults: dict[str, Any]) -> None:
    trl_diffs = [
        (k, effective(configs, k), defaults[_alias(k)])
        for k in keys
        if k in defaults
        and _is_trl_field(k)
        and k not in NAMES
        and not same(effective(configs, k), defaults[_alias(k)])
    ]
    print(f"\nDiffers from TRL's defaults ({len(trl_diffs)}):")
    for key, ours, default in trl_diffs:
        print(f"  {key}: {_show(ours, key)}   (TRL default: {_show(default)})")


def _print_resources(
    args: argparse.Namespace,
    configs: tuple[Any, ...],
    info: ModelInfo | None,
    launch: Launch,
    plan: BatchPlan,
) -> None:
    """Batch arithmetic, memory per GPU, disk and the optimizer."""
    script_args, training_args, model_args = configs
    print(f"\nBatch (world size {launch.num_processes}):")
    for line in plan.lines():
        print(f"  {line}")

    print(f"\nMemory per GPU (estimate for a {args.gpu_memory_gib:g} GiB GPU):")
    for line in estimate_memory(
        info, training_args, model_args, launch, plan, script_args.max_prompt_length, args.gpu_memory_gib
    ):
        print(f"  {line}")

    print(f"\nDisk ({training_args.output_dir}):")
    kept = max_checkpoints_on_disk(script_args, training_args)
    for line in disk_lines(info, training_args, model_args, launch, kept):
        print(f"  {line}")
    decay = training_args.weight_decay
    print(
        f"\nOptimizer: AdamW, weight_decay {decay:g} on every parameter, biases and norms included (the official "
        "fork's; HF's Trainer would exempt them)"
        if decay
        else "\nOptimizer: AdamW, no weight decay"
    )


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _is_field(configs: tuple[Any, ...], key: str) -> bool:
    return any(hasattr(c, _alias(key)) for c in configs)


def _is_trl_field(key: str) -> bool:
    from oneshot_trl.config import OneShotArguments

    return key not in {f.name for f in dataclasses.fields(OneShotArguments)}


def _show(value: Any, key: str = "") -> str:
    if value is not None and is_secret_key(key):
        return "<redacted>"
    return "null" if value is None else str(plain(value))


if __name__ == "__main__":
    sys.exit(main())
