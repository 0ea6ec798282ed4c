"""`oneshot-trl push RUN_DIR`: push what a training run did not get onto the Hub (idempotent).

A run with `push_to_hub: true` records every push in `hub_pushes.json`; when some failed (network, auth, after
retries), training still saves everything locally and exits non-zero with this command to run. It re-pushes
only the records that are not `ok` (a checkpoint to its `step-NNNNNN` branch, the final model to `main`), from
the local files, and updates `hub_pushes.json`; running it again when all are ok does nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from oneshot_trl import cli_args
from oneshot_trl.files import atomic_write_text
from oneshot_trl.hub.retry import HubPushFailed, failure_message
from oneshot_trl.layout import HUB_PUSHES_FILE, RECIPE_FILE
from oneshot_trl.run import Run
from oneshot_trl.validate import InputError, check_run_target

PROG = "oneshot-trl push"


def make_parser() -> argparse.ArgumentParser:
    parser = cli_args.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="The training run's output_dir (it has hub_pushes.json).")
    parser.add_argument("--repo-id", default=None, help="Push there instead of the repo the run pushed to.")
    return parser


def push_missing(run_dir: str | Path, repo_id: str | None = None, api=None) -> dict:
    """Re-push the pushes of `run_dir` that are not ok; returns the new summary (also in hub_pushes.json)."""
    # imported here: hub.push loads transformers (~5 s), and `push --help` or a bad run dir must not wait for it
    from oneshot_trl.hub.push import HubPushCallback, PushRecord

    run = Run(run_dir)
    record = run.hub_record()
    if not record:
        raise InputError(
            f"{run_dir} has no {HUB_PUSHES_FILE}: it never pushed (train with push_to_hub: true)."
        )
    recipe = Path(run_dir) / RECIPE_FILE
    callback = HubPushCallback(
        repo_id or record["repo_id"],
        run_dir,
        private=record.get("private"),
        recipe_path=recipe if recipe.is_file() else None,
        run_info=run.run_info(),
        hyperparameters=record.get("hyperparameters"),
        hardware=record.get("hardware"),
        api=api,
    )
    # Pushing elsewhere (--repo-id) changes the run's record only once everything is there: a failure keeps it
    callback.record_to_file = repo_id in (None, record["repo_id"])
    fields = set(PushRecord.__dataclass_fields__)
    done = [p for p in record.get("pushes", []) if p.get("status") == "ok"]
    callback.records = [PushRecord(**{k: v for k, v in p.items() if k in fields}) for p in done]
    todo = [p for p in record.get("pushes", []) if p.get("status") != "ok"]
    for push in sorted(todo, key=lambda p: p["kind"] == "final"):  # the final model last, as in training
        if not Path(push["local_path"]).is_dir():
            raise InputError(
                f"{push['local_path']} is gone: {push['revision']} cannot be pushed from this machine."
            )
        if push["kind"] == "checkpoint":
            callback.enqueue_checkpoint(push["step"], push["local_path"])
        else:
            callback.push_final(push["local_path"])
    callback.wait()
    summary = callback.summary()
    if not callback.record_to_file and summary["failed"] == 0 and summary["pending"] == 0:
        atomic_write_text(run.path(HUB_PUSHES_FILE), json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_run_target(args.run_dir)  # an InputError is one line and exit 2 (oneshot_trl.cli)
    summary = push_missing(args.run_dir, args.repo_id)
    message = failure_message(summary, args.run_dir)
    if message:  # not an input error: several lines (what is missing, how to retry) and exit 1
        raise HubPushFailed(message)
    print(f"{summary['pushed']} push(es) on {summary['url']}: nothing missing.")
    return 0


if __name__ == "__main__":  # as `oneshot-trl push`, through the CLI's one error path
    from oneshot_trl.cli import run_command

    sys.exit(run_command("push", sys.argv[1:]))
