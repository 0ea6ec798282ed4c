"""Pushing a run to the Hub: every checkpoint to its own branch, the final model to `main`, eval results to cards.

- `HubPushCallback` takes over pushing from the HF Trainer. Each saved `checkpoint-N` goes to branch
  `step-{N:06d}` (open-r1 style; `oneshot_trl.layout.step_branch`), the final model to `main`, each with a model
  card; uploads run in one background worker with retries, and a local checkpoint is deleted
  (`save_total_limit`) only once uploaded.

Eval results pushed to the card of a repo revision after training: `hub.revision_card`.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi
from transformers import TrainerCallback

from oneshot_trl.files import atomic_write_text
from oneshot_trl.hub.cards import (
    CardInputs,
    describe_hardware,
    hyperparameters_from,
    library_versions,
    render_model_card,
    revision_url,
    training_eval_results,
)
from oneshot_trl.hub.retry import with_retries
from oneshot_trl.layout import (
    COMPLETIONS_FILE,
    HISTORY_FILE,
    HUB_PUSHES_FILE,
    RECIPE_FILE,
    RUN_INFO_FILE,
    step_branch,
)
from oneshot_trl.run import Run
from oneshot_trl.secrets import redact_recipe, scrub

logger = logging.getLogger(__name__)

# Resume-only state, pickles and DeepSpeed shards: never uploaded.
CHECKPOINT_IGNORE_PATTERNS = (
    "optimizer.pt",
    "optimizer.bin",
    "optimizer_*.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "*.pth",
    "training_args.bin",
    "entropy_ctrl_state.json",
    "global_step*",
    "global_step*/**",
    "latest",
    "zero_to_fp32.py",
    "README.md",  # replaced by our card
    "critic/*",  # PPO's value model and its optimizer: resume state, not part of the released policy
)


def _collect_files(folder: Path, ignore: Iterable[str], recursive: bool = True) -> dict[str, Path]:
    """path_in_repo -> local path of the files of `folder` not matching any ignore pattern."""
    ignore = tuple(ignore)
    files = {}
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat) for pat in ignore):
            continue
        files[rel] = path
    return files


@dataclass
class PushRecord:
    kind: str  # "checkpoint" or "final"
    revision: str
    step: int | None
    local_path: str
    status: str = "pending"  # pending | ok | failed
    attempts: int = 0
    commit: str | None = None
    url: str | None = None
    files: list[str] = field(default_factory=list)
    error: str | None = None
    local_deleted: bool = False


class HubPushCallback(TrainerCallback):
    """Push every saved checkpoint to branch `step-{N:06d}` and the final model to `main`, with model cards.

    Create it with `from_training_args` *before* the Trainer (which reads `push_to_hub` at init): it switches
    the Trainer's own pushing and checkpoint rotation off and does both itself. Uploads run in one background
    thread, in order, with retries; a local checkpoint is deleted for `save_total_limit` only after its upload
    succeeded. After `trainer.save_model(output_dir)`, call `push_final()`: it pushes `main`, waits for the
    queue and writes `output_dir/hub_pushes.json` (also updated after each push).
    """

    def __init__(
        self,
        repo_id: str,
        output_dir: str | os.PathLike,
        *,
        token: str | None = None,
        private: bool | None = None,
        recipe_path: str | os.PathLike | None = None,
        run_info: dict | None = None,
        save_total_limit: int | None = None,
        hyperparameters: dict | None = None,
        hardware: str | None = None,
        max_attempts: int = 5,
        backoff_s: float = 2.0,
        max_backoff_s: float = 120.0,
        api: Any = None,
    ):
        self.repo_id = repo_id
        self.output_dir = Path(output_dir)
        self.run = Run(output_dir)
        self.private = private
        self.recipe_path = Path(recipe_path) if recipe_path else None
        self.run_info = run_info or {}
        self.save_total_limit = save_total_limit
        self.hyperparameters = hyperparameters or {}
        self.hardware = hardware or describe_hardware()
        self.retry = {"max_attempts": max_attempts, "backoff_s": backoff_s, "max_backoff_s": max_backoff_s}
        self._token = token  # only handed to HfApi and used to scrub messages; never logged
        self.api = api if api is not None else HfApi(token=token)
        self.records: list[PushRecord] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._repo_ready = False
        self._base_commit: str | None = None
        self._best_checkpoint: str | None = None
        self.is_main_process = True  # only the main process pushes (set from the TrainingArguments)
        self.record_to_file = True  # hub_pushes.json follows every push (`push --repo-id` holds it back)

    @classmethod
    def from_training_args(
        cls, args: Any, recipe_path: str | os.PathLike | None, run_info: dict, **kwargs: Any
    ) -> HubPushCallback:
        """Build from TrainingArguments (`hub_model_id`, `hub_token`/HF_TOKEN, `hub_private_repo`,
        `save_total_limit`) and take pushing and checkpoint rotation over from the Trainer."""
        repo_id = args.hub_model_id or Path(args.output_dir).absolute().name  # as the Trainer names it
        callback = cls(
            repo_id,
            args.output_dir,
            token=getattr(args, "hub_token", None),
            private=getattr(args, "hub_private_repo", None),
            recipe_path=recipe_path,
            run_info=run_info,
            save_total_limit=args.save_total_limit,
            hyperparameters=hyperparameters_from(args),
            hardware=describe_hardware(args),
            **kwargs,
        )
        callback.is_main_process = getattr(args, "process_index", 0) == 0
        # The Trainer would otherwise push output_dir itself and rotate checkpoints before they are uploaded.
        args.push_to_hub = False
        args.save_total_limit = None
        return callback

    # ---- Trainer events -------------------------------------------------------------------------------------

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return control
        self._best_checkpoint = state.best_model_checkpoint
        checkpoint = self.run.checkpoint_dir(state.global_step)
        if not checkpoint.is_dir():
            logger.warning(
                "on_save at step %d but %s does not exist: nothing to push", state.global_step, checkpoint
            )
            return control
        self.enqueue_checkpoint(state.global_step, checkpoint)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self._worker is not None:
            # The final model is saved after train() returns, so main is pushed by push_final(); here the
            # checkpoint uploads are flushed so the summary is complete even if push_final is never called.
            self.wait()
            self._log_summary()
        return control

    # ---- Public API -----------------------------------------------------------------------------------------

    def enqueue_checkpoint(self, step: int, checkpoint: str | os.PathLike) -> PushRecord:
        """Queue the upload of `checkpoint` (a checkpoint-N folder) to branch step-N."""
        run_files = self._snapshot_run_files(step)
        record = PushRecord("checkpoint", step_branch(step), step, str(checkpoint))
        self._submit(record, lambda: self._push_checkpoint(record, Path(checkpoint), run_files))
        return record

    def push_final(self, model_dir: str | os.PathLike | None = None, timeout: float | None = None) -> dict:
        """Push the saved final model (default: output_dir) to `main`, wait for all uploads, return the summary."""
        if not self.is_main_process:
            return {}
        folder = Path(model_dir) if model_dir is not None else self.output_dir
        run_files = self._snapshot_run_files(None)
        record = PushRecord("final", "main", None, str(folder))
        self._submit(record, lambda: self._push_final(record, folder, run_files))
        self.wait(timeout)
        self._log_summary()
        return self.summary()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queue is empty (True) or `timeout` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # unfinished_tasks: a job counts until its record is written to hub_pushes.json, not just uploaded
            if self._queue.unfinished_tasks == 0:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def summary(self) -> dict:
        with self._lock:
            records = [dict(r.__dict__) for r in self.records]
        for r in records:
            r["url"] = r["url"] or revision_url(self.repo_id, r["revision"])
        return {
            "repo_id": self.repo_id,
            "url": f"https://huggingface.co/{self.repo_id}",
            "private": self.private,
            "pushed": sum(r["status"] == "ok" for r in records),
            "failed": sum(r["status"] == "failed" for r in records),
            "pending": sum(r["status"] == "pending" for r in records),
            "hyperparameters": self.hyperparameters,
            "hardware": self.hardware,
            "versions": library_versions(),
            "pushes": records,
        }

    # ---- Worker -------------------------------------------------------------------------------------------

    def _submit(self, record: PushRecord, job: Callable[[], None]) -> None:
        with self._lock:
            self.records.append(record)
            if self._worker is None:
                # One worker: uploads happen in save order and never compete for bandwidth.
                self._worker = threading.Thread(target=self._work, name="oneshot-trl-hub-push", daemon=True)
                self._worker.start()
        self._queue.put((record, job))

    def _work(self) -> None:
        while True:
            record, job = self._queue.get()
            try:
                job()
            except Exception as err:  # upload errors are logged by with_retries; training must go on
                message = scrub(f"{type(err).__name__}: {err}", self._token)
                if record.status == "ok":  # uploaded; what failed came after (e.g. checkpoint rotation)
                    logger.warning("After pushing %s: %s", record.local_path, message)
                else:
                    record.status, record.error = "failed", message
            finally:
                if record.status == "pending":
                    record.status = "failed"
                self._write_summary()
                self._queue.task_done()

    def _write_summary(self) -> None:
        try:
            if self.record_to_file:
                atomic_write_text(self.run.path(HUB_PUSHES_FILE), json.dumps(self.summary(), indent=2) + "\n")
        except OSError as err:
            logger.warning("Could not write %s: %s", self.run.path(HUB_PUSHES_FILE), err)

    def _log_summary(self) -> None:
        summary = self.summary()
        lines = [f"Hub pushes to {summary['url']}: {summary['pushed']} ok, {summary['failed']} failed"]
        for r in summary["pushes"]:
            where = f"{self.repo_id}@{r['revision']}"
            detail = f"commit {r['commit']}" if r["status"] == "ok" else (r["error"] or r["status"])
            lines.append(f"  {r['kind']:<10} {r['local_path']} -> {where}: {r['status']} ({detail})")
        logger.info("\n".join(lines))

    def _call(self, what: str, fn: Callable[[], Any]) -> tuple[Any, int]:
        return with_retries(fn, what, token=self._token, **self.retry)

    def _ensure_repo(self) -> None:
        if self._repo_ready:
            return
        url, _ = self._call(
            f"Creating repo {self.repo_id}",
            lambda: self.api.create_repo(self.repo_id, private=self.private, exist_ok=True),
        )
        self.repo_id = getattr(url, "repo_id", None) or self.repo_id  # the namespace is filled in by the Hub
        commits, _ = self._call(
            f"Listing commits of {self.repo_id}", lambda: self.api.list_repo_commits(self.repo_id)
        )
        # Branch from the initial commit (open-r1 does too) so a step branch holds only its checkpoint.
        self._base_commit = commits[-1].commit_id if commits else None
        self._repo_ready = True

    def _snapshot_run_files(self, step: int | None) -> dict[str, bytes]:
        """The run files as they are now (small; read at save time so each branch gets its step's state)."""
        files: dict[str, bytes] = {}
        if self.recipe_path and self.recipe_path.exists():
            recipe = self.recipe_path.read_text()
        else:
            recipe = self.run.recipe_text()
        if recipe is not None:
            files[RECIPE_FILE] = redact_recipe(recipe, self._token).encode()
        run_info = self.run.read_text(RUN_INFO_FILE)
        if run_info is not None:
            files[RUN_INFO_FILE] = run_info.encode()
        elif self.run_info:
            files[RUN_INFO_FILE] = json.dumps(self.run_info, indent=2).encode()
        history = self.run.accuracy_history_text(until_step=step)
        if history is not None:
            files[HISTORY_FILE] = history.encode()
        return files

    def _card_inputs(self, step: int | None, checkpoint: Path | None) -> CardInputs:
        inputs = CardInputs.from_run(self.run, step, self._token)
        checkpoint_state = Run(checkpoint).trainer_state() if checkpoint is not None else {}
        if checkpoint_state:  # the checkpoint being pushed, wherever it lies
            inputs.trainer_state = checkpoint_state
        if not inputs.run_info:
            inputs.run_info = self.run_info
        if self.recipe_path and self.recipe_path.exists():
            inputs.recipe_text = redact_recipe(self.recipe_path.read_text(), self._token)
        return inputs

    def _pushed_steps(self) -> list[str]:
        with self._lock:
            return [r.revision for r in self.records if r.kind == "checkpoint" and r.status == "ok"]

    def _card(self, run: CardInputs, step: int | None, extra_steps: Iterable[str] = ()) -> bytes:
        card = render_model_card(
            self.repo_id,
            run,
            step=step,
            step_revisions=[*self._pushed_steps(), *extra_steps],
            eval_results=training_eval_results(run, step),
            hyperparameters=self.hyperparameters,
            hardware=self.hardware,
        )
        return scrub(str(card), self._token).encode()

    def _commit(self, record: PushRecord, files: dict[str, Path | bytes], message: str) -> None:
        """Make `record.revision` hold exactly `files` (stale files of an earlier run are deleted), one commit."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        self._ensure_repo()
        branch = record.revision
        if branch != "main":
            self._call(
                f"Creating branch {branch} of {self.repo_id}",
                lambda: self.api.create_branch(
                    self.repo_id, branch=branch, revision=self._base_commit, exist_ok=True
                ),
            )

        def commit():
            record.attempts += 1
            existing = self.api.list_repo_files(self.repo_id, revision=branch)
            ops: list = [
                CommitOperationAdd(
                    path_in_repo=name, path_or_fileobj=str(src) if isinstance(src, Path) else src
                )
                for name, src in files.items()
            ]
            ops += [
                CommitOperationDelete(path_in_repo=p)
                for p in existing
                if p not in files and p != ".gitattributes"
            ]
            return self.api.create_commit(
                self.repo_id, operations=ops, commit_message=message, revision=branch
            )

        info, attempts = self._call(f"Uploading {record.local_path} to {self.repo_id}@{branch}", commit)
        record.commit = getattr(info, "oid", None)
        record.url = revision_url(self.repo_id, branch)
        record.files = sorted(files)
        record.status = "ok"
        logger.info(
            "Pushed %s to %s (commit %s, %d files, attempt %d)",
            record.local_path,
            record.url,
            record.commit,
            len(files),
            attempts,
        )

    def _push_checkpoint(self, record: PushRecord, checkpoint: Path, run_files: dict[str, bytes]) -> None:
        files: dict[str, Path | bytes] = dict(_collect_files(checkpoint, CHECKPOINT_IGNORE_PATTERNS))
        files.update(run_files)
        results = self.run.eval_results_file(record.step)
        if self.run.has(results):
            files[results] = self.run.path(results).read_bytes()
        files["README.md"] = self._card(
            self._card_inputs(record.step, checkpoint), record.step, [record.revision]
        )
        self._commit(record, files, f"Checkpoint at step {record.step}")
        self._rotate_checkpoints()

    def _push_final(self, record: PushRecord, folder: Path, run_files: dict[str, bytes]) -> None:
        ignore = (*CHECKPOINT_IGNORE_PATTERNS, HUB_PUSHES_FILE, COMPLETIONS_FILE)
        files: dict[str, Path | bytes] = dict(_collect_files(folder, ignore, recursive=False))
        files.update(run_files)
        for name in self.run.eval_results_files():
            files[name] = self.run.path(name).read_bytes()
        files["README.md"] = self._card(self._card_inputs(None, None), None)
        self._commit(record, files, "Final model")

    def _rotate_checkpoints(self) -> None:
        """Delete the oldest *uploaded* checkpoints beyond save_total_limit (never the newest, never the best)."""
        if not self.save_total_limit or self.save_total_limit <= 0:
            return
        with self._lock:
            uploaded = {r.step: r for r in self.records if r.kind == "checkpoint" and r.status == "ok"}
        local = self.run.checkpoints()
        excess = len(local) - self.save_total_limit
        protected = {max(local, default=None)}
        for step, path in local.items():
            if excess <= 0:
                break
            best = self._best_checkpoint and Path(self._best_checkpoint).resolve() == path.resolve()
            if step in protected or step not in uploaded or best:
                continue
            shutil.rmtree(path, ignore_errors=True)
            uploaded[step].local_deleted = True
            excess -= 1
            logger.info(
                "Deleted local %s (uploaded to %s; save_total_limit=%d)",
                path,
                uploaded[step].url,
                self.save_total_limit,
            )
