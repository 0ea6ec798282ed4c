"""One validation layer for every command's inputs (recipe values, command-line flags, input files), run before
any model loads (in `--dry-run` and `doctor` too).

A bad input is an `InputError`: one line naming the flag, key, file or row, which every CLI prints with `fail`
(exit code 2, no traceback). Numbers are checked against a `Range` (no NaN/inf, no negative or zero count); a config
field declares its own range and choices with the field (`oneshot_trl.config`), checked by `check_number` and
`check_choice` when the config is built.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_trl.files import iter_jsonl
from oneshot_trl.layout import RUN_FILES, checkpoint_dirs
from oneshot_trl.secrets import scrub

# Tokenizer files: a model folder without any of them cannot tokenize (transformers fails much later).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")


class InputError(ValueError):
    """A user input that cannot be used; the message is one line naming the input."""


class Incomplete(RuntimeError):
    """The command did its work but part of it failed (a push to the Hub): everything is saved locally, and the
    message (several lines) says what is missing and how to finish it. Exit code 1 (oneshot_trl.cli)."""


def fail(prog: str, err: BaseException | str, *tokens: str | None) -> int:
    """Print `prog: error: <err>` (an exception on one line; a str as it is; `tokens` and the known ones
    scrubbed) to stderr; returns 2, the exit code of a usage error."""
    message = " ".join(str(err).split()) if isinstance(err, BaseException) else err  # an exception: one line
    print(f"{prog}: error: {scrub(message, *tokens)}", file=sys.stderr)
    return 2


# --- numbers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """A number's allowed range, declared with the field it belongs to (`oneshot_trl.config`) or a CLI flag.
    `Range(1)`: >= 1; `Range(above=0, maximum=1)`: (0, 1]; `also`: values allowed outside it (-1: "unset")."""

    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    also: tuple[float, ...] = ()
    note: str = ""

    def __call__(self, value: float) -> str | None:
        """What the value must be (with `note`), or None when it is fine."""
        if value in self.also:
            return None
        if self.minimum is not None and value < self.minimum:
            return f">= {self.minimum:g}{self.note}"
        if self.above is not None and value <= self.above:
            return f"> {self.above:g}{self.note}"
        if self.maximum is not None and value > self.maximum:
            return f"<= {self.maximum:g}{self.note}"
        return None


COUNT, POSITIVE, NON_NEGATIVE = Range(1), Range(above=0), Range(0)
FRACTION, FRACTION_ABOVE_ZERO = Range(0, maximum=1), Range(above=0, maximum=1)


class FieldError(InputError):
    """A config field's value outside its declared range or choices; `detail` reads after the field's name
    ("is 0; it must be >= 1"), so the recipe reader can say where the value came from (a key, a flag)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key} {detail}")
        self.key, self.detail = key, detail


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """`value` is one of `choices`, else FieldError naming `name`, the choices and the closest one."""
    if value is None or value in choices:
        return
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise FieldError(name, f"is {value!r}; choose one of {', '.join(map(str, choices))}.{hint}")


def check_number(name: str, value: Any, check: Range | None = None) -> Any:
    """`value` unchanged when it is a finite number in range; else FieldError (an InputError) naming `name`."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if not math.isfinite(value):
        raise FieldError(name, f"is {value}; it must be a finite number.")
    problem = check(value) if check is not None else None
    if problem is not None:
        raise FieldError(name, f"is {value:g}; it must be {problem}.")
    return value


def check_count(flag: str, value: int | None, minimum: int = 1) -> None:
    """A CLI count (`--limit`, `--workers`, ...): None passes; below `minimum` is an InputError."""
    if value is not None:
        check_number(flag, value, Range(minimum))


def check_seconds(flag: str, value: float | None) -> None:
    """A CLI time limit: finite and positive (`nan` would fail every answer, `inf` never stop one)."""
    if value is not None:
        check_number(flag, value, POSITIVE)


# --- files ---------------------------------------------------------------------------------------------------


def check_writable(path: str | os.PathLike, flag: str) -> None:
    """`path` (a file to write) can be created or overwritten: checked before the work, not after it."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{flag} {path} is a directory; give a file path.")
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: {parent} is not an existing folder.")
    if not os.access(path if path.exists() else parent, os.W_OK):
        raise InputError(f"{flag} {path} is not writable (permission denied).")


def check_output_dir(path: str | os.PathLike, flag: str) -> None:
    """`path` is (or can be made) a writable folder: a file in the way or no permission is one line, up front."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"{flag} {path}: {folder} is a file, not a folder.")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise InputError(f"{flag} {path}: {folder} is not writable (permission denied).")
            return


def jsonl_rows(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(line number, row) of a JSONL input file; a line that is not UTF-8 or not JSON is an InputError naming
    file:line (`files.iter_jsonl`, the one JSONL reader)."""
    with open(path, "rb") as f:
        try:
            yield from iter_jsonl(f, str(path))
        except ValueError as err:
            raise InputError(str(err)) from None


def check_data_file(path: str | os.PathLike, flag: str) -> None:
    """A local JSON/JSONL data file parses (every row of a JSONL) and is not empty, else InputError naming
    file:line (datasets fails on an empty file with a StopIteration traceback)."""
    path = Path(path)
    if path.suffix in (".json", ".jsonl") and path.is_file() and not path.read_bytes().strip():
        raise InputError(f"{flag} {path} is empty: no rows.")
    if path.suffix == ".jsonl" and path.is_file():
        for _ in jsonl_rows(path):
            pass
    elif path.suffix == ".json" and path.is_file():
        try:
            json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            # datasets also reads JSON Lines from a .json file: accept those
            try:
                for _ in jsonl_rows(path):
                    pass
            except InputError:
                raise InputError(f"{flag} {path} is not valid JSON or JSON Lines ({err}).") from None


def check_model_dir(name_or_path: str, flag: str) -> None:
    """A local model path is a folder with config.json, tokenizer files and whole safetensors weights (a Hub id
    passes: resolved later)."""
    path = Path(str(name_or_path)).expanduser()
    if path.is_file():
        raise InputError(
            f"{flag} {name_or_path} is a file; give the model's folder (with config.json) or a Hub id."
        )
    if not path.is_dir():
        return
    if not (path / "config.json").is_file():
        raise InputError(f"{flag} {name_or_path} has no config.json: not a model folder.")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(
            f"{flag} {name_or_path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); save the "
            "tokenizer next to the model (tokenizer.save_pretrained)."
        )
    check_weights(path)


def check_safetensors(path: str | os.PathLike) -> None:
    """A `.safetensors` file is whole: its header parses and the file holds every tensor it lists (a copy or
    save cut short fails here, named, instead of deep inside the loader)."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if size < 8 or header_len > size - 8:
                raise ValueError("header cut short")
            header = json.loads(f.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise InputError(
            f"{path} is not a valid safetensors file ({err}); re-save or re-download it."
        ) from None
    if size < 8 + header_len + end:
        raise InputError(
            f"{path} is truncated ({size} bytes, its header needs {8 + header_len + end}); re-save or re-download it."
        )


def check_weights(folder: str | os.PathLike) -> None:
    """Every safetensors file of a model folder or checkpoint is whole (see `check_safetensors`)."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        check_safetensors(path)


def check_training_dirs(training_args: Any, resume: bool) -> None:
    """A fresh run (`resume` False) must not start in an output_dir holding another run's checkpoints: a later
    resume would pick the old run's newest one. `overwrite_output_dir: true` allows it (train deletes them)."""
    old = [p.name for p in checkpoint_dirs(training_args.output_dir).values()]
    if old and not resume and not training_args.overwrite_output_dir:
        raise InputError(
            f"output_dir {training_args.output_dir} holds another run's checkpoints ({', '.join(old[:3])}"
            f"{', ...' if len(old) > 3 else ''}): set resume_from_checkpoint: true to continue it, "
            "overwrite_output_dir: true to start over (its checkpoints are deleted), or another output_dir."
        )


def check_run_target(target: str, what: str = "run directory") -> None:
    """`target` of a command that reads a training run (`card`, `push`): an existing run dir, or else something
    that can be a Hub repo id. A missing path or a folder that holds no run is an InputError."""
    path = Path(target).expanduser()
    if path.is_dir():
        if not any((path / name).is_file() for name in RUN_FILES) and not checkpoint_dirs(path):
            raise InputError(
                f"{target} is not a training run: it has none of {', '.join(RUN_FILES)} and no checkpoint-N folder."
            )
        return
    looks_like_path = target.startswith((".", "/", "~")) or target.count("/") != 1 or "\\" in target
    if path.exists() or looks_like_path:
        raise InputError(f"{target} is not a {what} (no such folder) nor a Hub repo id (user/name).")
