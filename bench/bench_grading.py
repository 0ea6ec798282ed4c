"""Grading throughput: serial in-process math-verify vs `grade_batch` with worker processes, same inputs.

    OMP_NUM_THREADS=1 python bench/bench_grading.py            # writes bench/results/grading.json

Inputs: the realistic cases of tests/data/grading_cases.jsonl (the "pathological" ones excluded: they
only measure the time limit) repeated to about 2000 answers. Three ways to grade the same answers:

- `math_verify_raw`: plain math-verify as a user would call it, `verify(parse(gold), parse(response))`
  per answer, its own signal timeouts (the gold is parsed again for every answer);
- `serial_grade`: our `grade(...)` in this process (gold parsed once per distinct gold, our time limit);
- `grade_batch`: our `grade_batch(..., num_workers=N)`; the workers' start-up is timed separately
  (the pool is persistent, a training run pays it once).

Each method grades the answers twice ("first_pass" with cold caches, "second_pass" warm).

One run on a shared CPU machine: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_inputs(target: int) -> tuple[list[str], list[str]]:
    cases = [json.loads(line) for line in (ROOT / "tests/data/grading_cases.jsonl").read_text().splitlines()]
    cases = [c for c in cases if c["category"] != "pathological" and not c.get("boxed_only")]
    repeats = -(-target // len(cases))
    cases = (cases * repeats)[:target]
    return [c["response"] for c in cases], [c["gold"] for c in cases]


def worker_cpu_seconds() -> float:
    """User + system CPU seconds of the live grading workers (Linux /proc; 0 elsewhere)."""
    from oneshot_trl.eval import grading

    total = 0.0
    for worker in grading._POOL.workers if grading._POOL is not None else []:
        try:
            fields = Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-answers", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/grading.json")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # raw math-verify logs every timeout

    from math_verify import parse, verify

    from oneshot_trl.eval import grading

    responses, golds = load_inputs(args.num_answers)
    n = len(responses)
    results: dict = {
        "description": "answers graded per second (math-verify grader, eval semantics), same inputs for each method",
        "num_answers": n,
        "distinct_cases": len(set(zip(responses, golds, strict=True))),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average_1m_before": round(os.getloadavg()[0], 2),
        },
    }

    def timed(fn) -> tuple[list, dict]:
        # Two passes over the same answers: the first also fills sympy's and math-verify's caches (and, for
        # grade_batch, those of fresh workers), the second is the steady state of a long eval/training run.
        # CPU seconds (this process + grading workers) tell a slow method from a CPU-starved one: the
        # machine is shared, so the workers may not get a core each.
        numbers = {}
        for name in ("first_pass", "second_pass"):
            cpu = time.process_time() + worker_cpu_seconds()
            start = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - start
            cpu = time.process_time() + worker_cpu_seconds() - cpu
            numbers[name] = {
                "seconds": round(seconds, 2),
                "answers_per_s": round(n / seconds, 1),
                "cpu_seconds": round(cpu, 2),
                "answers_per_cpu_s": round(n / cpu, 1),
            }
        return out, numbers

    pairs = list(zip(responses, golds, strict=True))
    raw, results["math_verify_raw"] = timed(
        lambda: [bool(verify(parse(f"\\boxed{{{g}}}"), parse(r))) for r, g in pairs]
    )
    grading._parsed_gold.cache_clear()
    serial, results["serial_grade"] = timed(lambda: [grading.grade(r, g) for r, g in pairs])

    start = time.perf_counter()
    grading.grade_batch(["\\boxed{1}"] * args.workers, ["1"] * args.workers, num_workers=args.workers)
    startup = time.perf_counter() - start
    batch, numbers = timed(lambda: grading.grade_batch(responses, golds, num_workers=args.workers))
    results["grade_batch"] = {
        "num_workers": args.workers,
        "worker_startup_seconds": round(startup, 2),
        **numbers,
    }
    grading.shutdown_workers()

    for reference in ("serial_grade", "math_verify_raw"):
        results[f"speedup_batch_vs_{reference}"] = {
            name: round(results[reference][name]["seconds"] / results["grade_batch"][name]["seconds"], 2)
            for name in ("first_pass", "second_pass")
        }
    results["agreement"] = {
        "batch_equals_serial": sum(a == b for a, b in zip(batch, serial, strict=True)) / n,
        "serial_correct_equals_raw": sum(a.correct == b for a, b in zip(serial, raw, strict=True)) / n,
    }
    results["machine"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
