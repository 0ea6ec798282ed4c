"""`oneshot-trl analyze`: the paper's diagnostics as plots and a report, from a training run or eval outputs.

    oneshot-trl analyze runs/pi1                      # a training run dir -> runs/pi1/analysis/report.md
    oneshot-trl analyze evals/pi1 --output-dir out    # an `oneshot-trl eval --all-revisions` output dir
    oneshot-trl analyze user/pi1-run --words wait,verify
    oneshot-trl analyze --compare runs/pi1 runs/pi1-random-reward runs/format   # curves of several runs

What it reads (each piece is optional; a missing one is skipped with a note in the report):
- `trainer_state.json` (the run dir's, else its latest `checkpoint-N/`'s): `log_history` metrics per step.
- `accuracy_history.jsonl`: each training example's accuracy at every step (the post-saturation curve).
- `completions.jsonl`: sampled training completions (self-reflection words against step).
- per-step evals: `eval/step-*/results.json` + `samples.jsonl` in a run dir, `<revision>/results.json` in an
  `--all-revisions` output dir, or a single `results.json`.

What it answers: does benchmark accuracy keep rising after the training example is solved (post-saturation
generalization)? How do entropy, response length, zero-variance groups and the boxed rate move? Do reflection
words become more frequent? How much of a gain is format (answer present but not boxed) rather than reasoning?
Which checkpoint is best, per benchmark and on average?
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from oneshot_trl import cli_args
from oneshot_trl.analysis.controls import compare
from oneshot_trl.analysis.report import analyze, save_plot
from oneshot_trl.analysis.stats import DEFAULT_REFLECTION_WORDS, load_run_data
from oneshot_trl.run import Run
from oneshot_trl.setups import PAPER_SETUPS, known_setup_names
from oneshot_trl.validate import InputError


def make_parser() -> argparse.ArgumentParser:
    parser = cli_args.ArgumentParser(
        prog="oneshot-trl analyze",
        description="Plots and a markdown report of the paper's diagnostics from a training run or eval outputs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "target", nargs="?", help="A training run dir, an eval output dir, or a Hub repo id of a run."
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        default=None,
        help="Overlay the held-out accuracy curves of several runs (run dirs or Hub ids; with `target`, it comes "
        "first), e.g. pi1 vs random vs format reward: compare.md/.json/.png in --output-dir (default ./compare).",
    )
    parser.add_argument(
        "--revision", default=None, help="Hub revision when target is a repo id (default: main)."
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="Where report.md, analysis.json and the PNGs go (default: <target>/analysis, or ./analysis-<repo> for a Hub repo).",
    )
    parser.add_argument(
        "--words",
        default=",".join(DEFAULT_REFLECTION_WORDS),
        help=f"Comma-separated self-reflection words/phrases to count (default: {','.join(DEFAULT_REFLECTION_WORDS)}).",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=8,
        help="Training examples drawn in the accuracy plot (default 8).",
    )
    parser.add_argument(
        "--paper-setup",
        default=None,
        help="The paper's setup whose reported row goes beside the run (a name of `oneshot-trl doctor`'s setups, e.g. "
        "qwen2.5-math-1.5b/pi1). Default: the run's recipe's `paper_setup`; none: the report without the paper's column.",
    )
    parser.add_argument(
        "--saturation-threshold",
        type=float,
        default=0.99,
        help="Mean training accuracy at which training counts as saturated (default 0.99: the paper's ~100%%).",
    )
    return parser


def check_args(args: argparse.Namespace) -> list[str]:
    """The flags checked before any file is read; returns the reflection words. An InputError is one line and
    exit 2 (oneshot_trl.cli)."""
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    if not words:
        raise InputError("--words is empty.")
    if not args.compare and not args.target:
        raise InputError("give a run (target) or --compare RUN ...")
    if not (math.isfinite(args.saturation_threshold) and 0.0 < args.saturation_threshold <= 1.0):
        raise InputError(
            f"--saturation-threshold must be a mean accuracy in (0, 1], got {args.saturation_threshold}."
        )
    if args.max_examples < 1:
        raise InputError(f"--max-examples must be >= 1, got {args.max_examples}.")
    if args.paper_setup and args.paper_setup not in PAPER_SETUPS:
        raise InputError(f"--paper-setup {args.paper_setup!r} is unknown; known: {known_setup_names()}.")
    if args.output_dir and Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise InputError(f"--output-dir {args.output_dir} is a file, not a folder.")
    return words


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    words = check_args(args)
    if args.compare:
        return _compare([*([args.target] if args.target else []), *args.compare], args)
    run = Run.open(
        args.target, revision=args.revision
    )  # a Hub repo: only the small log/eval files (no weights)
    local = Path(args.target).expanduser().is_dir()
    output_dir = (
        Path(args.output_dir)
        if args.output_dir
        else (run.path("analysis") if local else Path(f"analysis-{args.target.rsplit('/', 1)[-1]}"))
    )
    data = load_run_data(run)
    data.source = args.target if args.revision is None else f"{args.target}@{args.revision}"
    result = analyze(
        data,
        output_dir,
        words=words,
        max_examples=args.max_examples,
        saturation_threshold=args.saturation_threshold,
        paper_setup=args.paper_setup,
    )
    print(f"Report: {output_dir / 'report.md'}")
    for name in result["plots"].values():
        print(f"  plot: {output_dir / name}")
    for note in result["notes"]:
        print(f"  note: {note}")
    return 0


def _compare(targets: list[str], args: argparse.Namespace) -> int:
    runs = {}
    for target in targets:
        data = load_run_data(Run.open(target, revision=args.revision))
        data.source = target
        label = target.rstrip("/").rsplit("/", 1)[-1]
        runs[label if label not in runs else target] = data  # the folder name, unless two share it
    output_dir = Path(args.output_dir or "compare")
    result = compare(runs, output_dir, save_plot)
    print((output_dir / "compare.md").read_text())
    if not result["plot"]:
        print("note: none of the runs has evaluated checkpoints or training accuracy to plot.")
    return 0


if __name__ == "__main__":  # as `oneshot-trl analyze`, through the CLI's one error path
    from oneshot_trl.cli import run_command

    sys.exit(run_command("analyze", sys.argv[1:]))
