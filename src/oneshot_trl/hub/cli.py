"""`oneshot-trl card`: render (and optionally push) the model card of a training run dir or a Hub repo revision."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard

from oneshot_trl import cli_args
from oneshot_trl.files import atomic_write_text
from oneshot_trl.hub.cards import (
    CardInputs,
    merge_eval_results,
    render_model_card,
    results_to_eval_results,
    training_eval_results,
)
from oneshot_trl.hub.revision_card import upload_card
from oneshot_trl.layout import STEP_BRANCH_RE
from oneshot_trl.models import download_text, list_step_revisions
from oneshot_trl.run import Run
from oneshot_trl.secrets import scrub
from oneshot_trl.validate import InputError, check_run_target


def _load_results_files(paths: Iterable[str]) -> list[EvalResult]:
    out: list[EvalResult] = []
    for path in paths:
        out = merge_eval_results(out, results_to_eval_results(json.loads(Path(path).read_text())))
    return out


def make_parser() -> argparse.ArgumentParser:
    parser = cli_args.ArgumentParser(
        prog="oneshot-trl card",
        description="Render (and optionally push) the model card of a training run dir or a Hub repo revision. "
        "The token comes from HF_TOKEN or `hf auth login`, never from the command line.",
    )
    parser.add_argument("target", help="A training run output_dir, or a Hub repo id (user/repo).")
    parser.add_argument(
        "--revision",
        default=None,
        help="step-NNNNNN for a checkpoint's card (default: the final model, main).",
    )
    parser.add_argument(
        "--results",
        nargs="+",
        default=[],
        help="results.json files of `oneshot-trl eval` to merge into the card.",
    )
    parser.add_argument("--output", default=None, help="Write the card here (default: stdout unless --push).")
    parser.add_argument("--push", action="store_true", help="Upload the card as README.md of that revision.")
    parser.add_argument(
        "--repo-id", default=None, help="Hub repo of a run dir (default: from hub_pushes.json or the recipe)."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    revision = args.revision or "main"
    step_match = STEP_BRANCH_RE.match(revision)
    step = int(step_match.group(1)) if step_match else None
    if revision != "main" and step is None:
        raise InputError(f"--revision must be main or step-NNNNNN, got {revision!r}.")
    check_run_target(args.target)
    api = HfApi()
    try:
        extra = _load_results_files(args.results)
        old_text = None  # the card on the Hub now: the results on it are kept
        if Path(args.target).is_dir():
            run = CardInputs.from_run_dir(args.target, step)
            repo_id = (
                args.repo_id
                or run.hub_record.get("repo_id")
                or run.recipe().get("hub_model_id")
                or Path(args.target).resolve().name
            )
            if args.push:  # the Hub's branches, and the results already on the card we replace
                steps = list_step_revisions(repo_id, api=api)
                old_text = download_text(api, repo_id, "README.md", revision)
            else:
                steps = [
                    p["revision"]
                    for p in run.hub_record.get("pushes", [])
                    if p.get("kind") == "checkpoint" and p.get("status") == "ok"
                ]
        else:
            repo_id = args.target
            hub_run = Run.from_hub(api, repo_id, revision)
            run = CardInputs.from_run(hub_run)
            old_text = hub_run.read_text("README.md")
            steps = list_step_revisions(repo_id, api=api)
        kept: list[EvalResult] = []
        if old_text:
            kept = ModelCard(old_text, ignore_metadata_errors=True).data.eval_results or []
        # In-training evals, then what the card already holds (newer evals), then --results: later ones win.
        results = merge_eval_results(merge_eval_results(training_eval_results(run, step), kept), extra)
        card = render_model_card(repo_id, run, step=step, step_revisions=steps, eval_results=results)
    except InputError:
        raise
    except (OSError, ValueError) as err:  # a --results file, the run or the Hub: one line (oneshot_trl.cli)
        raise InputError(scrub(str(err))) from err
    content = str(card)
    if args.output:
        atomic_write_text(args.output, content)
        print(f"Wrote {args.output}", file=sys.stderr)
    if args.push:
        upload_card(api, repo_id, revision, content.encode(), "Update model card (oneshot-trl card)")
        print(f"Pushed the card to https://huggingface.co/{repo_id}/tree/{revision}", file=sys.stderr)
    if not args.output and not args.push:
        print(content)
    return 0


if __name__ == "__main__":  # as `oneshot-trl card`, through the CLI's one error path
    from oneshot_trl.cli import run_command

    sys.exit(run_command("card", sys.argv[1:]))
