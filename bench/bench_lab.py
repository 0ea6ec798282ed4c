"""Time the lab's default demo, cold (pretraining the base model) and warm (base model cached).

    python bench/bench_lab.py                 # writes bench/results/lab.json, lab.md and lab.png

Each run is the real command (`oneshot-trl lab --output-dir ...`) in a subprocess with a fresh cache dir
for the cold run, so the numbers are what a user sees on a fresh clone. The issue's budget: <= 5 minutes
on 2 CPU cores for the cold run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def run_demo(output_dir: Path, cache: Path, extra: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "ONESHOT_TRL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    start = time.time()
    subprocess.run(
        [sys.executable, "-m", "oneshot_trl.cli", "lab", "--output-dir", str(output_dir), *extra],
        env=env,
        check=True,
    )
    seconds = time.time() - start
    return seconds, json.loads((output_dir / "results.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep", type=Path, default=None, help="Keep the demo outputs here (default: a temp dir)."
    )
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-lab-"))
    cache = work / "cache"
    cold_s, cold = run_demo(work / "cold", cache, [])
    warm_s, warm = run_demo(work / "warm", cache, [])
    base_info = json.loads(next((cache / "lab").glob("base-*/lab_base.json")).read_text())
    report = {
        "label": "micro-scale synthetic task (CPU), not the paper's setting",
        "command": "oneshot-trl lab",
        "cold_wall_seconds": round(cold_s, 1),
        "warm_wall_seconds": round(warm_s, 1),
        "budget_seconds": 300,
        "pretrain": {k: base_info[k] for k in ("steps", "val_accuracy", "seconds")},
        "before": cold["before"],
        "after": cold["after"],
        "train_reward_first_last": [cold["train_reward"][0], cold["train_reward"][-1]],
        "train_seconds": cold["train_seconds"],
        "warm_after_equals_cold_after": warm["after"] == cold["after"],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "lab.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.copyfile(work / "cold" / "lab.png", args.results_dir / "lab.png")
    from oneshot_trl.lab.report import before_after_table

    (args.results_dir / "lab.md").write_text(
        f"`oneshot-trl lab` (micro-scale synthetic task, CPU): cold {cold_s:.0f} s (incl. pretraining "
        f"{base_info['seconds']:.0f} s), warm {warm_s:.0f} s on {os.cpu_count()} CPU cores.\n\n"
        + before_after_table(cold["before"], cold["after"])
        + "\n"
    )
    print(json.dumps(report, indent=2))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
