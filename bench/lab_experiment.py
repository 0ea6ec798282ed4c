"""One of the lab's comparisons, run as a user runs it, its results kept in bench/results/lab-NAME.*

    python bench/run.py lab-entropy                   # through the runner: the result gets its code's fingerprint
    python bench/lab_experiment.py entropy --seeds 0  # one seed, results in bench/results

Runs `oneshot-trl lab --experiment NAME --seeds ...` in a subprocess (offline, the shipped base model, the lab's
own cache) and copies what it writes (results.json, results.md, lab-NAME.png) to `<results-dir>/lab-NAME.*`.
The numbers are micro-scale CPU results of a synthetic task, not the paper's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("experiment", help="An experiment of `oneshot-trl lab --help`.")
    parser.add_argument("--seeds", default="0,1,2", help="RL seeds (default 0,1,2).")
    args = parser.parse_args(argv)
    extra = ["--steps", "4", "--eval-limit", "20"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "oneshot_trl.cli", "lab", "--quiet", "--experiment", args.experiment]
        command += ["--seeds", args.seeds, "--output-dir", str(out), *extra]
        subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        name = f"lab-{args.experiment}"
        for source, target in (("results.json", f"{name}.json"), ("results.md", f"{name}.md"),
                               (f"{name}.png", f"{name}.png")):  # fmt: skip
            if (out / source).exists():
                shutil.copyfile(out / source, args.results_dir / target)
    print(f"{name}: {args.results_dir / (name + '.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
