"""Files shipped in the package and JSONL reading (dependency-free: cheap to import from any command)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def resource_path(*parts: str) -> Path:
    """Path of a file shipped in the package (`oneshot_trl/resources/...`)."""
    return Path(str(resources.files("oneshot_trl").joinpath("resources", *parts)))


def parse_jsonl(lines: Iterable[str], where: str, *, skip_invalid: bool = False) -> list[dict[str, Any]]:
    """The rows of JSONL `lines` (blank lines skipped); `where` names them in messages.

    With `skip_invalid`, a line that is not JSON is logged and skipped instead of raising: a run killed
    mid-write leaves a torn last line, and the rows before it are still good.
    """
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if not skip_invalid:
                raise
            logger.warning("%s:%d is not valid JSON; skipped.", where, lineno)
    return rows


def read_jsonl(path: str | Path, *, skip_invalid: bool = False) -> list[dict[str, Any]]:
    """The rows of a JSONL file (see `parse_jsonl`)."""
    with open(path, encoding="utf-8") as f:
        return parse_jsonl(f, str(path), skip_invalid=skip_invalid)
