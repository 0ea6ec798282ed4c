"""`Run`: the one reader of a training run's files, local or on the Hub. The layout (file names, checkpoint and
eval dirs, step labels) is `oneshot_trl.layout`'s; this module reads it.

An `oneshot-trl eval --all-revisions` output dir reads as a run with evals only: `<revision>/results.json`
(+ samples.jsonl) per revision, or a single `results.json` at its root.

Reading never raises for a missing or broken file: a missing one reads as None (or empty), a broken JSON
file is logged and reads as None, and a JSONL line that is not JSON (the torn last line of a killed run) is
logged and skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from oneshot_trl import models
from oneshot_trl.files import parse_jsonl
from oneshot_trl.layout import (
    COMPLETIONS_FILE,
    EVAL_DIR,
    HISTORY_FILE,
    HUB_PUSHES_FILE,
    RECIPE_FILE,
    RESULTS_FILE,
    RUN_INFO_FILE,
    SAMPLES_FILE,
    SMALL_FILE_PATTERNS,
    STEP_BRANCH_RE,
    TRAINER_STATE_FILE,
    checkpoint_dirs,
    checkpoint_name,
    checkpoint_state_file,
    eval_dir,
    eval_results_file,
    revision_dirs,
    step_from_label,
)

logger = logging.getLogger(__name__)


def is_finite(value: Any) -> bool:
    """A logged value that is a real number (not a bool, NaN or inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_series(log_history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of a logged training metric; eval-phase entries (`eval_*` keys) never match."""
    by_step: dict[int, float] = {}
    for entry in log_history:
        if key in entry and "step" in entry and is_finite(entry[key]):
            by_step[int(entry["step"])] = float(entry[key])  # a resumed run re-logs steps: the last one wins
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


@dataclass
class CheckpointEval:
    """One evaluated checkpoint: an `oneshot-trl eval` results.json and its samples."""

    label: str  # revision or eval dir name, e.g. "step-000020" or "main"
    step: int | None
    results: dict
    samples: list[dict]
    path: str

    @property
    def benchmarks(self) -> dict[str, dict]:
        return self.results.get("benchmarks") or {}


class _LocalFiles:
    def __init__(self, root: Path):
        self.root = root

    def names(self, pattern: str) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(pattern) if p.is_file())

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def read_text(self, name: str) -> str | None:
        # errors="replace": a line torn inside a multi-byte character is then just an unreadable line
        return (self.root / name).read_text(encoding="utf-8", errors="replace") if self.has(name) else None


class _HubFiles:
    """A Hub revision through an `HfApi` (or a stand-in): listed once, each file downloaded when read."""

    def __init__(self, api: Any, repo_id: str, revision: str):
        self.api, self.repo_id, self.revision = api, repo_id, revision
        self.files = sorted(api.list_repo_files(repo_id, revision=revision))

    def names(self, pattern: str) -> list[str]:
        depth = len(PurePosixPath(pattern).parts)
        return [
            n for n in self.files if len(PurePosixPath(n).parts) == depth and PurePosixPath(n).match(pattern)
        ]

    def has(self, name: str) -> bool:
        return name in self.files

    def read_text(self, name: str) -> str | None:
        return models.download_text(self.api, self.repo_id, name, self.revision) if self.has(name) else None


class Run:
    """A training run's files: a local run dir (or a snapshot of a Hub revision), or a Hub revision read
    through the API. See the module docstring for the layout. Nothing is cached: each call reads the files as
    they are now (a run that is still training keeps writing them)."""

    def __init__(self, root: str | os.PathLike):
        self.root: Path | None = Path(root).expanduser()
        self.source = str(root)
        self._files: _LocalFiles | _HubFiles = _LocalFiles(self.root)

    @classmethod
    def from_hub(cls, api: Any, repo_id: str, revision: str = "main") -> Run:
        """The run files uploaded with a Hub revision, read through `api` (no checkpoints: `root` is None)."""
        run = cls.__new__(cls)
        run.root, run.source = None, f"{repo_id}@{revision}"
        run._files = _HubFiles(api, repo_id, revision)
        return run

    @classmethod
    def open(
        cls,
        target: str,
        revision: str | None = None,
        token: str | None = None,
        patterns: Sequence[str] = SMALL_FILE_PATTERNS,
    ) -> Run:
        """A local dir as is; a Hub repo id -> a local snapshot of only the files matching `patterns` (the
        small files of a run by default: no weights), from the HF cache when offline."""
        path = Path(target).expanduser()
        if path.is_dir():
            return cls(path)
        return cls(
            models.resolve_model(target, revision=revision, token=token, allow_patterns=list(patterns)).path
        )

    # ---- files -------------------------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        """The local path of a run file (it may not exist); a Hub revision read through the API has none."""
        if self.root is None:
            raise ValueError(f"{self.source} is read through the Hub API: its files have no local path.")
        return self.root / name

    def has(self, name: str) -> bool:
        return self._files.has(name)

    def read_text(self, name: str) -> str | None:
        return self._files.read_text(name)

    def read_json(self, name: str) -> Any:
        text = self.read_text(name)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as err:
            logger.warning("Could not read %s/%s: %s", self.source, name, err)
            return None

    def read_jsonl(self, name: str) -> list[dict]:
        """The rows of a JSONL run file ([] when missing); a line that is not JSON is logged and skipped."""
        text = self.read_text(name)
        return (
            [] if text is None else parse_jsonl(text.splitlines(), f"{self.source}/{name}", skip_invalid=True)
        )

    # ---- what the run recorded ---------------------------------------------------------------------------

    def run_info(self) -> dict:
        """oneshot_run.json: base model, examples, reward, grader, versions ({} when missing)."""
        info = self.read_json(RUN_INFO_FILE)
        return info if isinstance(info, dict) else {}

    def recipe_text(self) -> str | None:
        """recipe.yaml as written (it may hold a token: redact it before showing it, see `secrets`)."""
        return self.read_text(RECIPE_FILE)

    def hub_record(self) -> dict:
        """hub_pushes.json: repo, hyperparameters, hardware and every push ({} when the run never pushed)."""
        record = self.read_json(HUB_PUSHES_FILE)
        return record if isinstance(record, dict) else {}

    def checkpoints(self) -> dict[int, Path]:
        """The local `checkpoint-N` folders by step, in step order."""
        return checkpoint_dirs(self.root) if self.root is not None else {}

    def checkpoint_dir(self, step: int) -> Path:
        """Where the Trainer saves (saved) the checkpoint of `step`."""
        return self.path(checkpoint_name(step))

    def revision_dirs(self, revision: str) -> list[Path]:
        """Where a local run dir keeps what its Hub repo has at `revision` (step-N: checkpoint-N), in order."""
        return revision_dirs(self.path("."), revision)

    def trainer_state_file(self, step: int | None = None) -> str | None:
        """The trainer_state.json to read: checkpoint-`step`'s, else the final one, else the latest checkpoint's."""
        candidates = [checkpoint_state_file(step)] if step is not None else []
        candidates.append(TRAINER_STATE_FILE)
        candidates += [f"{p.name}/{TRAINER_STATE_FILE}" for p in reversed(self.checkpoints().values())]
        return next((name for name in candidates if self.has(name)), None)

    def trainer_state(self, step: int | None = None) -> dict:
        """The Trainer state (global_step, max_steps, log_history) of `trainer_state_file(step)`; {} if none."""
        name = self.trainer_state_file(step)
        state = self.read_json(name) if name else None
        return state if isinstance(state, dict) else {}

    def log_history(self, step: int | None = None) -> list[dict]:
        """The Trainer's logged metrics, one dict per logging step."""
        return list(self.trainer_state(step).get("log_history") or [])

    def metric_series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of a logged training metric, e.g. `entropy` or `train_accuracy/<example_id>`."""
        return metric_series(self.log_history(), key)

    def accuracy_history(self) -> list[dict]:
        """accuracy_history.jsonl rows: step, example_id, index, accuracy, num_samples."""
        return self.read_jsonl(HISTORY_FILE)

    def accuracy_history_text(self, until_step: int | None = None) -> str | None:
        """accuracy_history.jsonl as text, only the rows up to `until_step` (the file keeps growing while an
        upload of an earlier step waits); None when the run has none."""
        text = self.read_text(HISTORY_FILE)
        if text is None or until_step is None:
            return text
        kept = []
        for line in text.splitlines():
            try:
                if int(json.loads(line).get("step", 0)) <= until_step:
                    kept.append(line)
            except (ValueError, AttributeError, TypeError):
                continue
        return "\n".join(kept) + "\n" if kept else ""

    def completions(self) -> list[dict]:
        """completions.jsonl rows: step, example_id, completion, reward."""
        return self.read_jsonl(COMPLETIONS_FILE)

    # ---- evals -------------------------------------------------------------------------------------------

    def eval_dir(self, step: int) -> Path:
        """Where the in-training eval of `step` goes (the Hub branch of that checkpoint is named the same)."""
        return eval_dir(self.path("."), step)

    def eval_results_file(self, step: int) -> str:
        """The run-relative name of the results.json of the in-training eval of `step` (also on the Hub)."""
        return eval_results_file(step)

    def eval_results_files(self) -> list[str]:
        """The in-training eval results, `eval/<label>/results.json`, as run-relative names."""
        return self._files.names(f"{EVAL_DIR}/*/{RESULTS_FILE}")

    def eval_results_by_step(self) -> dict[int, dict]:
        """The in-training eval results.json dicts (`eval/step-NNNNNN/`), by step."""
        results = {}
        for name in self.eval_results_files():
            match = STEP_BRANCH_RE.match(PurePosixPath(name).parent.name)
            data = self.read_json(name) if match else None
            if isinstance(data, dict):
                results[int(match.group(1))] = data
        return dict(sorted(results.items()))

    def evals(self) -> list[CheckpointEval]:
        """Every evaluated checkpoint with its samples, in step order: `eval/*/` (in-training evals),
        `<revision>/` (an --all-revisions output dir) and a results.json at the root. `main` is the final
        model: its step is the run's global_step when the run has a trainer state."""
        dirs = [str(PurePosixPath(n).parent) for n in self.eval_results_files()]
        dirs += [
            str(PurePosixPath(n).parent)
            for n in self._files.names(f"*/{RESULTS_FILE}")
            if PurePosixPath(n).parent.name != EVAL_DIR
        ]
        if self.has(RESULTS_FILE):
            dirs.append(".")
        final_step = self.trainer_state().get("global_step")
        evals = []
        for d in dict.fromkeys(dirs):
            results = self.read_json(PurePosixPath(d, RESULTS_FILE).as_posix())
            if not isinstance(results, dict):
                continue
            label = PurePosixPath(d).name if d != "." else str(results.get("revision") or "main")
            step = step_from_label(label)
            if step is None and label == "main" and final_step:
                step = int(final_step)
            samples = self.read_jsonl(PurePosixPath(d, SAMPLES_FILE).as_posix())
            where = self.root / d if self.root is not None else PurePosixPath(self.source, d)
            evals.append(CheckpointEval(label, step, results, samples, str(where)))
        evals.sort(key=lambda e: (e.step is None, e.step or 0, e.label))
        return evals
