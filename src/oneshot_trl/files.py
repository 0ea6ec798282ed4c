"""Files shipped in the package and JSONL reading (dependency-free: cheap to import from any command)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any


def resource_path(*parts: str) -> Path:
    """Path of a file shipped in the package (`oneshot_trl/resources/...`)."""
    return Path(str(resources.files("oneshot_trl").joinpath("resources", *parts)))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
