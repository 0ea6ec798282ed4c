"""Files shipped in the package and JSONL reading (dependency-free: cheap to import from any command)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def resource_path(*parts: str) -> Path:
    """Path of a file shipped in the package (`oneshot_trl/resources/...`)."""
    return Path(str(resources.files("oneshot_trl").joinpath("resources", *parts)))


def iter_jsonl(
    lines: Iterable[str | bytes], where: str, *, skip_invalid: bool = False
) -> Iterator[tuple[int, Any]]:
    """(line number, row) of JSONL `lines` (str, or bytes decoded line by line; blank lines skipped); `where`
    names them in messages. The one JSONL reader: a line that is not UTF-8 or not JSON is a ValueError naming
    `where:line`, or, with `skip_invalid`, logged and skipped: a run killed mid-write leaves a torn last line
    (possibly cut inside a multi-byte character), and the rows before it are still good."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            kind = "UTF-8" if isinstance(err, UnicodeDecodeError) else "JSON"
            if not skip_invalid:
                raise ValueError(f"{where}:{lineno} is not valid {kind} ({err}).") from None
            logger.warning("%s:%d is not valid %s (interrupted write?); skipped.", where, lineno, kind)


def parse_jsonl(
    lines: Iterable[str | bytes], where: str, *, skip_invalid: bool = False
) -> list[dict[str, Any]]:
    """The rows of JSONL `lines` (see `iter_jsonl`)."""
    return [row for _, row in iter_jsonl(lines, where, skip_invalid=skip_invalid)]


def read_jsonl(path: str | Path, *, skip_invalid: bool = False) -> list[dict[str, Any]]:
    """The rows of a JSONL file (see `iter_jsonl`): read as bytes, so a bad byte is named, not a crash."""
    with open(path, "rb") as f:
        return parse_jsonl(f, str(path), skip_invalid=skip_invalid)
