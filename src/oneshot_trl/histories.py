"""Training-accuracy histories, the input of `oneshot-trl select`: each example's accuracy every time it was trained on.

Sources: `official` (the bundled `acc_step_500.json` of the paper's 500-step DSR-sub run), any JSON file in that
format (`{"<dsr_sub index>": [acc, acc, ...]}`), a training run's `accuracy_history.jsonl`, a run dir holding one,
or a Hub repo of a run. Every accuracy is checked (a number in [0, 1]: NaN, null or 1.5 is an InputError naming
the file and line or example); unreadable lines of a JSONL history are skipped with one warning giving their count
and the first line's number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from oneshot_trl.files import iter_jsonl, read_jsonl, resource_path
from oneshot_trl.layout import HISTORY_FILE, RUN_INFO_FILE
from oneshot_trl.run import Run
from oneshot_trl.validate import InputError

OFFICIAL_HISTORY = "official"


@dataclass
class ExampleHistory:
    """One training example and its accuracy at every step (or epoch) it was trained on."""

    example_id: str = field(metadata={"help": "Stable id, e.g. 'dsr_sub:124'."})
    index: int | None = field(metadata={"help": "DSR-sub row index when known, else None."})
    accuracies: list[float] = field(metadata={"help": "Training accuracy each time the example was seen."})
    steps: list[int] | None = field(default=None, metadata={"help": "Step of each accuracy (None: epochs)."})
    problem: str | None = field(
        default=None, metadata={"help": "Problem text (for display and the dataset)."}
    )
    answer: str | None = field(default=None, metadata={"help": "Ground-truth answer."})
    row: dict | None = field(
        default=None, metadata={"help": "The bundled verl training row, when there is one."}
    )

    @property
    def display_index(self) -> int | str:
        return self.index if self.index is not None else self.example_id


def load_dsr_sub_rows() -> list[dict]:
    """The bundled DSR-sub training rows (verl format); row i has `extra_info.index == i`."""
    return read_jsonl(resource_path("train", "dsr_sub.jsonl"))


def checked_accuracy(value: object, where: str) -> float:
    """An accuracy read from a history: a number in [0, 1], else an InputError naming `where` (NaN, null, a
    string or 1.5 would rank first or crash the ranking)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where}: accuracy {value!r} is not a number in [0, 1].")
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{where}: accuracy {value!r} is out of range [0, 1].")
    return float(value)


def _history_from_dict(
    data: dict, dsr_rows: list[dict] | None, where: str = "acc_step_500.json"
) -> list[ExampleHistory]:
    examples = []
    for key, values in data.items():
        index = int(key) if str(key).lstrip("-").isdigit() else None
        row = (
            dsr_rows[index]
            if dsr_rows is not None and index is not None and 0 <= index < len(dsr_rows)
            else None
        )
        examples.append(
            ExampleHistory(
                example_id=f"dsr_sub:{key}" if index is not None else str(key),
                index=index,
                accuracies=[
                    checked_accuracy(v, f"{where}: example {key!r}, value {i + 1}")
                    for i, v in enumerate(values)
                ],
                problem=row["prompt"][0]["content"] if row else None,
                answer=row["reward_model"]["ground_truth"] if row else None,
                row=row,
            )
        )
    return examples


def load_official_history() -> list[ExampleHistory]:
    """The paper's history: `acc_step_500.json` of a 500-step DSR-sub run of Qwen2.5-Math-1.5B (1209 examples)."""
    with resource_path("train", "acc_step_500.json").open(encoding="utf-8") as f:
        data = json.load(f)
    return _history_from_dict(data, load_dsr_sub_rows())


def read_accuracy_history(path: str | Path, run_info: dict | None = None) -> list[ExampleHistory]:
    """Read an `accuracy_history.jsonl` file (see `histories_from_rows`); unreadable lines (a torn last line) are
    skipped with a warning giving their count and the first one's number."""
    with open(path, "rb") as f:
        numbered = list(iter_jsonl(f, str(path), skip_invalid=True))
    return histories_from_rows([row for _, row in numbered], run_info, str(path), [n for n, _ in numbered])


def histories_from_rows(
    rows: Sequence[dict],
    run_info: dict | None = None,
    where: str = HISTORY_FILE,
    line_numbers: Sequence[int] | None = None,
) -> list[ExampleHistory]:
    """Histories from a run's accuracy-history rows (one per step and example, see `oneshot_trl.layout`).

    Examples keep the order in which they first appear. A (step, example) pair logged twice, as after a resumed
    run re-does steps, counts once (the last row wins). Problems and answers come from the run's
    `oneshot_run.json` (`run_info`), else from the bundled DSR-sub for examples with a DSR-sub index.
    """
    per_example: dict[str, dict[int, float]] = {}
    indices: dict[str, int | None] = {}
    for number, rec in enumerate(rows, start=1):
        label = f"{where}:{line_numbers[number - 1]}" if line_numbers else f"{where}: row {number}"
        try:
            example_id, step = str(rec["example_id"]), int(rec["step"])
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{label} is not an accuracy-history row (missing or bad {err}).") from None
        acc = checked_accuracy(rec.get("accuracy"), label)
        per_example.setdefault(example_id, {})[step] = acc
        if rec.get("index") is not None:
            indices[example_id] = int(rec["index"])
        else:
            indices.setdefault(example_id, None)

    known = {str(e["example_id"]): e for e in (run_info or {}).get("examples", []) if "example_id" in e}
    dsr_rows = load_dsr_sub_rows() if any(i is not None for i in indices.values()) else None
    examples = []
    for example_id, by_step in per_example.items():
        steps = sorted(by_step)
        index = indices[example_id]
        info = known.get(example_id, {})
        row = (
            dsr_rows[index]
            if dsr_rows is not None and index is not None and 0 <= index < len(dsr_rows)
            else None
        )
        problem, answer = info.get("problem"), info.get("answer")
        if problem is None and row is not None:  # only the bundled row: use it as is
            problem, answer = row["prompt"][0]["content"], row["reward_model"]["ground_truth"]
        else:
            row = None  # the run's own problem text wins over the bundled copy
        examples.append(
            ExampleHistory(
                example_id=example_id,
                index=index,
                accuracies=[by_step[s] for s in steps],
                steps=steps,
                problem=problem,
                answer=None if answer is None else str(answer),
                row=row,
            )
        )
    return examples


def _read_history_file(path: Path) -> list[ExampleHistory]:
    # The official format is one JSON dict of lists; ours is JSONL. Decide by content, not by file name.
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError):  # JSONL, possibly with a torn last line
        data = None
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        return _history_from_dict(data, load_dsr_sub_rows(), str(path))
    return read_accuracy_history(path, Run(path.parent).run_info())  # the run info next to it


def load_history(source: str, revision: str | None = None, token: str | None = None) -> list[ExampleHistory]:
    """Load a history from `official`, a history file, a run dir, or a Hub repo id (see the module docstring)."""
    if source == OFFICIAL_HISTORY:
        return load_official_history()
    path = Path(source).expanduser()
    if path.is_file():
        return _read_history_file(path)
    if path.suffix in (".json", ".jsonl") and not path.is_dir():
        raise InputError(f"--history {source} does not exist.")
    # A run dir, or a Hub repo id of a run: of a Hub revision download only the two small files we need.
    run = Run.open(source, revision=revision, token=token, patterns=(HISTORY_FILE, RUN_INFO_FILE))
    if not run.has(HISTORY_FILE):
        if path.is_dir():
            raise InputError(
                f"{path} has no {HISTORY_FILE}: is it a training run dir? (runs write it from the first step)"
            )
        raise InputError(f"Hub repo {source!r} (revision {revision or 'main'}) has no {HISTORY_FILE}.")
    return histories_from_rows(run.accuracy_history(), run.run_info(), where=f"{run.source}/{HISTORY_FILE}")
