"""`oneshot-trl lab`: 1-shot RLVR on a tiny model, end to end on a CPU in minutes.

    oneshot-trl lab                                   # the demo: base eval, GRPO on "What is 27+34?", eval
    oneshot-trl lab --output-dir runs/lab             # + results.json, lab.png, the checkpoint in runs/lab/
    oneshot-trl lab --experiment entropy --seeds 0,1,2
    oneshot-trl lab --save-base runs/lab-base         # the base model as a folder (then: recipes/lab.yaml)
    oneshot-trl lab --save-test-set runs/heldout.jsonl    # the held-out problems, for `oneshot-trl eval`
    oneshot-trl lab --base-model user/lab-base        # a base model pushed to the Hub, or any local folder

The lab starts from the base model shipped in the package (oneshot_trl/resources/lab_base/, the same bytes on
every machine, checked by its content hash). --pretrain or --base-seed pretrains one here instead (a minute or
two on 2 cores), cached under $ONESHOT_TRL_CACHE (default ~/.cache/oneshot_trl/lab/).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import typing
from pathlib import Path
from typing import Any

from oneshot_trl import cli_args
from oneshot_trl.lab.task import DEMO_EXAMPLE
from oneshot_trl.progress import is_terminal
from oneshot_trl.validate import InputError

logger = logging.getLogger(__name__)


def make_parser() -> argparse.ArgumentParser:
    from oneshot_trl.lab.experiments import EXPERIMENTS

    parser = cli_args.ArgumentParser(
        prog="oneshot-trl lab",
        description="CPU micro-lab: 1-shot RLVR on a tiny model and a synthetic arithmetic task. The demo run's "
        "settings (oneshot_trl.lab.runs.RLRunConfig) are flags too, as train's flags override a recipe: "
        "--learning_rate 1e-4, --entropy-coeff 0, --temperature 1.0, --reward format ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="experiments:\n" + "\n".join(f"  {name:16s} {e.claim}" for name, e in EXPERIMENTS.items()),
    )
    parser.add_argument(
        "--output-dir", default=None, help="Where results go (default: runs/lab or runs/lab-<experiment>)."
    )
    parser.add_argument(
        "--experiment", choices=list(EXPERIMENTS), default=None, help="Run a comparison instead of the demo."
    )
    parser.add_argument(
        "--seeds", default="0,1,2", help="Comma-separated RL seeds for --experiment (default: 0,1,2)."
    )
    parser.add_argument(
        "--base-model",
        default=None,
        help="Hub id or local folder of the base model (default: the lab's own).",
    )
    parser.add_argument("--base-revision", default=None, help="Hub revision of --base-model.")
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        default=None,
        help="Pretrain a base model here with at most this many steps (default 1500; it stops once both "
        "strategies are learned).",
    )
    parser.add_argument(
        "--base-seed",
        type=int,
        default=None,
        help="Pretrain a base model with this seed (weights and data) instead of using the shipped one "
        "(whose seed is in oneshot_trl/resources/lab_base/lab_base.json).",
    )
    parser.add_argument(
        "--pretrain",
        action="store_true",
        help="Pretrain the base model on this machine (cached) instead of using the shipped one; the results "
        "say whether it agrees with the shipped base.",
    )
    parser.add_argument("--seed", type=int, default=0, help="RL seed of the demo (sampling, data order).")
    parser.add_argument(
        "--example", default=DEMO_EXAMPLE, help="The one training problem of the demo, as 'a+b'."
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="GRPO steps (default: the demo's / experiment's own)."
    )
    parser.add_argument(
        "--eval-limit", type=int, default=None, help="Evaluate on the first N held-out problems only."
    )
    parser.add_argument(
        "--save-base", metavar="DIR", default=None, help="Copy the base model to DIR and exit."
    )
    parser.add_argument(
        "--save-test-set",
        metavar="FILE",
        default=None,
        help="Write the held-out problems as JSONL (problem, answer) for `oneshot-trl eval --dataset FILE` and exit.",
    )
    parser.add_argument("--quiet", action="store_true", help="No progress bars, warnings only.")
    return parser


def run_overrides(argv: list[str]) -> dict[str, Any]:
    """The demo run's settings as flags, the way train's flags override a recipe (either spelling):
    `--learning_rate 1e-4` sets RLRunConfig.learning_rate. An unknown flag is an InputError with the closest."""
    from oneshot_trl.lab.runs import RLRunConfig
    from oneshot_trl.recipe import flag_values
    from oneshot_trl.recipe_source import split_argv

    parsed = split_argv(argv)
    if parsed.path is not None:
        raise InputError(f"unexpected argument {parsed.path!r}.")
    return flag_values(parsed.flags, typing.get_type_hints(RLRunConfig))


def main(argv: list[str] | None = None) -> int:
    args, rest = make_parser().parse_known_args(argv)
    overrides = run_overrides(rest)  # RLRunConfig fields of the demo (--learning_rate ...)
    if overrides and args.experiment:
        raise InputError(
            f"--experiment {args.experiment} runs its own settings; {rest[0]} applies to the demo only."
        )
    logging.basicConfig(
        format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING if args.quiet else logging.INFO
    )
    progress = not args.quiet
    if args.quiet or not is_terminal():  # transformers' and datasets' own bars (weights, shards, splits) too
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    try:  # an InputError is one line and exit 2 (oneshot_trl.cli)
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None

    from oneshot_trl.lab import experiments, report
    from oneshot_trl.lab.base import ShippedBaseError
    from oneshot_trl.lab.runs import RLRunConfig, write_problems
    from oneshot_trl.lab.task import parse_example, splits

    try:
        example = parse_example(args.example)
    except ValueError as err:
        raise InputError(str(err)) from None
    if args.save_test_set:
        path = write_problems(splits()["test"], Path(args.save_test_set))
        print(f"{len(splits()['test'])} held-out problems written to {path}")
    if args.save_test_set and not args.save_base:
        return 0
    try:
        base = experiments.resolve_base(
            args.base_model, args.base_revision, args.pretrain_steps, progress, args.base_seed, args.pretrain
        )
    except (
        ValueError,
        ShippedBaseError,
    ) as err:  # an unknown Hub id or a missing folder: says what was tried
        raise InputError(str(err)) from None
    if args.save_base:
        shutil.copytree(base, args.save_base, dirs_exist_ok=True)
        print(f"base model copied to {args.save_base}")
        return 0

    if args.experiment:
        output_dir = Path(args.output_dir or f"runs/lab-{args.experiment}")
        results = experiments.run_experiment(
            args.experiment,
            base,
            output_dir,
            seeds,
            eval_limit=args.eval_limit,
            progress=progress,
            steps=args.steps,
        )
        print()
        print(experiments.experiment_table(results))
        print(
            f"\n{output_dir}/results.json, results.md, lab-{args.experiment}.png ({results['seconds']:.0f} s)"
        )
        return 0

    output_dir = Path(args.output_dir or "runs/lab")
    config = RLRunConfig(examples=(f"{example.a}+{example.b}",), eval_limit=args.eval_limit, seed=args.seed)
    if args.steps is not None:
        config = config.with_(steps=args.steps)
    config = config.with_(**overrides)
    results = experiments.run_demo(base, output_dir, config, progress=progress)
    print()
    print(f"1-shot RLVR on {example.problem!r} (answer {example.answer}), {config.steps} GRPO steps; "
          f"held-out: {results['after']['n_problems']} problems, greedy. Micro-scale synthetic task (CPU).")  # fmt: skip
    print(report.before_after_table(results["before"], results["after"], results["base_profile"]))
    print(report.base_line(results["base"]))
    curve = ", ".join(f"{p['step']}: {report.pct(p['accuracy'])}" for p in results["heldout_curve"])
    print(f"held-out accuracy by step: {curve}")
    rewards = results["train_reward"]
    print(
        f"train reward on the example: {rewards[0]:.2f} (step 1) -> {rewards[-1]:.2f} (step {len(rewards)})"
    )
    print(
        f"{output_dir}/results.json, lab.png, checkpoint {results['checkpoint']} ({results['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
