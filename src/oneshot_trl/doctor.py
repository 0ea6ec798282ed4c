"""`oneshot-trl doctor RECIPE.yaml`: check a recipe before spending GPU hours on it. Works offline.

    oneshot-trl doctor recipes/qwen15b.yaml --accelerate-config accelerate_configs/zero3.yaml
    oneshot-trl doctor recipes/qwen15b.yaml --num-processes 4 --zero-stage 3 -- --max_steps 100

Prints the effective config (what the recipe and flags set), every value that differs from the official values
of the recipe's `paper_setup` (oneshot_trl.setups) and from TRL's defaults, the batch arithmetic for the given
world size, and a memory estimate per GPU. Exits with 2 and the reasons when the run cannot work: a generation
batch that does not hold whole groups of `num_generations`, a dataset too small for one generation batch (the
sampler would yield nothing), a vLLM tensor-parallel size that does not divide the world size, an unknown setup.
The checks live in `oneshot_trl.checks`; `python -m oneshot_trl.train` runs them (`check_before_training`) with
the real world size.
Flags after `--` override recipe keys, as for `train`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import sys
from pathlib import Path
from typing import Any

import yaml

from oneshot_trl.checks import Launch, batch_plan, count_rows, find_problems
from oneshot_trl.memory import estimate_memory, kv_cache, model_info
from oneshot_trl.secrets import is_secret_key, scrub, secrets_in
from oneshot_trl.setups import OFFICIAL_GPUS, OFFICIAL_PROMPTS_PER_STEP, PAPER_SETUPS

ALIASES = {"entropy_coeff": "entropy_coef"}  # recipe key -> the field that holds its effective value
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
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    # The report goes out scrubbed of every secret (recipe, flags, HF_TOKEN): slurm_train.sbatch logs it.
    try:
        raw = yaml.safe_load(Path(args.recipe).read_text())
    except (OSError, yaml.YAMLError):
        raw = None
    tokens = secrets_in(raw if isinstance(raw, dict) else None, overrides)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return _report(args, overrides)
    finally:
        sys.stdout.write(scrub(out.getvalue(), *tokens))
        sys.stderr.write(scrub(err.getvalue(), *tokens))


def _report(args: argparse.Namespace, overrides: list[str]) -> int:
    from oneshot_trl.recipe import RecipeError, load_recipe, parse_recipe

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
        print(f"  {key}: {_show(effective(configs, key), key)}")
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
        print(f"  {key}: {_show(ours, key)}   (TRL default: {_show(default)})")

    print(f"\nBatch (world size {launch.num_processes}):")
    for line in plan.lines():
        print(f"  {line}")

    print(f"\nMemory per GPU (estimate for a {args.gpu_memory_gib:g} GiB GPU):")
    for line in estimate_memory(
        info, training_args, model_args, launch, plan, script_args.max_prompt_length, args.gpu_memory_gib
    ):
        print(f"  {line}")

    kv = kv_cache(info, training_args, plan, script_args.max_prompt_length, args.gpu_memory_gib)
    warnings += launch.precision_warnings(bool(training_args.bf16)) + (kv.warnings() if kv else [])
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


def _show(value: Any, key: str = "") -> str:
    if value is not None and is_secret_key(key):
        return "<redacted>"
    return "null" if value is None else str(plain(value))


if __name__ == "__main__":
    sys.exit(main())
