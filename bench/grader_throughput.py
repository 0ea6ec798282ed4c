"""Grader throughput: our parallel, time-bounded `grade_batch` vs serial `math_verify.verify`, same answers.

    python bench/grader_throughput.py        # -> bench/results/grader-throughput.json

Inputs (4,000 answers, built from files the repo ships): MATH500 reference solutions graded against their
own gold and against another problem's gold (long LaTeX reasoning ending in a \\boxed{} answer), and the
answers of tests/data/grading_cases.jsonl and official_harness_cases.jsonl (every answer format we test)
after a MATH500 solution's reasoning as preamble; plus 4 pathological answers (a power tower, 200 nested
braces) among them.

- baseline: `verify(parse("\\boxed{gold}"), parse(response))` per answer in one process, as a user would call
  math-verify (its own signal time limits);
- ours: `grade_batch(responses, golds)` (math-verify grader, eval semantics) with one worker per core, pool
  start-up included (it is paid once per eval or training run).
Repetitions alternate baseline, ours, baseline, ours. Ratio = median answers/s ours / baseline. Also: our
serial `grade` (the same work without the pool), the machine's own parallel ceiling (two CPU-bound Python
processes vs one), CPU seconds per answer, and the worst single-answer latency on the pathological answers
(ours is bounded by the time limit plus the kill grace).
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Result, base_parser, figure  # noqa: E402

NUM_ANSWERS = 4000
TIMEOUT_S = 3.0  # grade_batch's default per-answer budget
PATHOLOGICAL = [
    ("Simplifying gives $\\boxed{9^{9^{9^{9^{9}}}}}$.", "1"),
    ("The answer is $\\boxed{" + "{" * 200 + "3" + "}" * 200 + "}$", "3"),
]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_answers(n: int) -> tuple[list[str], list[str]]:
    math500 = _jsonl(ROOT / "src/oneshot_trl/resources/benchmarks/math500.jsonl")
    solutions = [(row["solution"], row["answer"]) for row in math500]
    pairs = list(solutions)  # right answers
    pairs += [
        (sol, math500[(i + 1) % len(math500)]["answer"]) for i, (sol, _) in enumerate(solutions)
    ]  # wrong
    cases = [
        c
        for path in ("tests/data/grading_cases.jsonl", "tests/data/official_harness_cases.jsonl")
        for c in _jsonl(ROOT / path)
        if c["category"] != "pathological"
    ]
    for i, case in enumerate(cases):
        # The reasoning of a real solution (its box removed, so the case's own answer is the final one).
        preamble = re.sub(r"\\boxed\s*", "", solutions[i % len(solutions)][0])
        pairs.append((preamble + "\n\n" + case["response"], case["gold"]))
    pairs = (pairs * -(-n // len(pairs)))[: n - 2 * len(PATHOLOGICAL)]
    for k, bad in enumerate(PATHOLOGICAL * 2):  # spread through the batch
        pairs.insert((k + 1) * len(pairs) // 5, bad)
    return [r for r, _ in pairs], [g for _, g in pairs]


def parallel_ceiling(seconds: float = 2.0) -> float:
    """Throughput of two CPU-bound Python processes / one on this machine (2.0 on two free cores)."""
    loop = f"import time; t=time.perf_counter(); n=0\nwhile time.perf_counter()-t<{seconds}: n+=1\nprint(n)"

    def counts(k: int) -> list[int]:
        procs = [subprocess.Popen([sys.executable, "-c", loop], stdout=subprocess.PIPE) for _ in range(k)]
        return [int(p.communicate()[0]) for p in procs]

    return sum(counts(2)) / counts(1)[0]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children: the stopped grading workers
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # raw math-verify logs every timeout
    # sympy's deprecation notes on odd inputs, once per process (grading workers inherit the environment)
    os.environ["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    warnings.simplefilter("ignore", DeprecationWarning)

    from math_verify import parse, verify

    from oneshot_trl import grading
    from oneshot_trl.grading import graders
    from oneshot_trl.grading import workers as grading_workers

    n = 400 if args.quick else NUM_ANSWERS
    repeats = 1 if args.quick else args.repeats
    workers = min(8, os.cpu_count() or 1)
    responses, golds = load_answers(n)
    pairs = list(zip(responses, golds, strict=True))
    ceiling = parallel_ceiling()

    def raw() -> tuple[list[bool], float]:
        worst, out = 0.0, []
        for r, g in pairs:
            start = time.perf_counter()
            out.append(bool(verify(parse(f"\\boxed{{{g}}}"), parse(r))))
            worst = max(worst, time.perf_counter() - start)
        return out, worst

    def ours() -> list[bool]:
        grades = grading.grade_batch(responses, golds, num_workers=workers, timeout_s=TIMEOUT_S)
        grading.shutdown_workers()  # the next repetition starts cold, as a new eval run does
        return [g.correct for g in grades]

    def serial() -> list[bool]:
        return [grading.grade(r, g, timeout_s=TIMEOUT_S).correct for r, g in pairs]

    rates: dict[str, list[float]] = {"baseline": [], "ours": [], "ours_serial": []}
    cpu_per_answer: dict[str, list[float]] = {k: [] for k in rates}
    worst_raw: list[float] = []
    verdicts = {}
    for i in range(repeats):
        for name, fn in (("baseline", raw), ("ours", ours), ("ours_serial", serial)):
            graders._parse_gold.cache_clear()
            cpu = time.process_time() + children_cpu()
            start = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - start
            cpu = time.process_time() + children_cpu() - cpu
            if name == "baseline":
                out, worst = out
                worst_raw.append(worst)
            verdicts[name] = out
            rates[name].append(n / seconds)
            cpu_per_answer[name].append(1000 * cpu / n)
            print(f"  {name} repetition {i}: {n / seconds:.0f} answers/s", file=sys.stderr, flush=True)

    # Worst single-answer latency of ours: each pathological answer alone through the (warm) pool.
    grading.grade_batch(["\\boxed{1}"] * workers, ["1"] * workers, num_workers=workers)
    latencies = []
    for response, gold in PATHOLOGICAL:
        start = time.perf_counter()
        grading.grade_batch([response], [gold], num_workers=workers, timeout_s=TIMEOUT_S)
        latencies.append(time.perf_counter() - start)
    grading.shutdown_workers()

    result = Result(
        name="grader-throughput",
        description="answers graded per second, grade_batch (parallel, time-bounded) / serial math_verify.verify",
        command="python bench/grader_throughput.py",
        figures={
            **{f"answers_per_s_{k}": figure(v, "answers/s", 1) for k, v in rates.items()},
            **{f"cpu_ms_per_answer_{k}": figure(v, "ms", 3) for k, v in cpu_per_answer.items()},
            "worst_latency_s_baseline": figure(worst_raw, "s", 3),
            "worst_latency_s_ours": figure(latencies, "s", 3),
            "parallel_ceiling": figure([ceiling], "x", 2),
        },
        target=1.8,
        better="higher",
        notes=[
            f"{n} answers ({len(set(pairs))} distinct), {workers} workers, {repeats} repetitions alternating",
            f"ours bounds every answer at {TIMEOUT_S} s (soft) + {grading_workers.HARD_LIMIT_GRACE_S} s grace (kill)",
        ],
        details={
            "agreement_ours_vs_baseline": sum(
                a == b for a, b in zip(verdicts["ours"], verdicts["baseline"], strict=True)
            )
            / n,
            "ours_equals_ours_serial": verdicts["ours"] == verdicts["ours_serial"],
            "speedup_over_ours_serial": round(
                figure(rates["ours"], "")["median"] / figure(rates["ours_serial"], "")["median"], 3
            ),
        },
    )
    result.set_ratio("answers_per_s_ours", "answers_per_s_baseline")
    result.write(args.results_dir)


if __name__ == "__main__":
    main()
