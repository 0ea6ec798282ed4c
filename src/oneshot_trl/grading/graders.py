"""The one answer grader used by training rewards and by evaluation: `grade`, `grade_batch`, `check_gold`.

Two graders share one interface:

- `"math-verify"`: Hugging Face math-verify with our extraction and normalisation rules (`mathverify`).
  `boxed_only=True` is the training reward's semantics: only the last `\\boxed{}` counts, no box is wrong.
- `"official"`: the Qwen2.5-Math harness's verdicts, mistakes included, for the paper's numbers
  (`official`); its rules depend on the benchmark (`benchmark=`: Minerva keeps units).

A gold string states its answer (`boxes.gold_text`): a reference solution's last box, the boxes of a list of
boxed answers (`\\boxed{1} and \\boxed{-2}` is `1, -2`), else the string itself.

Safety and time bounds. Model text is never executed. Every answer gets a wall-clock budget (`timeout_s`):
in-process, a SIGALRM deadline interrupts the Python code (`deadline`; math-verify's own signal timeouts are
replaced by ours, so one budget covers parse and verify); `grade_batch` runs in persistent worker processes
(`workers`, `pool`: answers sent in chunks, results streamed back one by one) and kills and replaces a worker
that overruns its answer by `workers.HARD_LIMIT_GRACE_S` (e.g. stuck in C code), grading that answer wrong
with `error="timeout"` and handing the rest of its chunk to a worker again. Signals only work in the main
thread, so `grade` called from another thread is routed to the worker pool.

Gold answers are parsed once (cached per process); a gold the grader cannot parse raises `GoldParseError`
from `check_gold` and gives `Grade(correct=False, error="unparseable-gold")` in `grade`/`grade_batch`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from oneshot_trl.grading import mathverify, official
from oneshot_trl.grading.boxes import gold_text, last_boxed, unbox
from oneshot_trl.grading.deadline import call_with_deadline, can_use_signals
from oneshot_trl.grading.mathverify import LiteralGold
from oneshot_trl.grading.workers import run_in_pool
from oneshot_trl.progress import progress_bar

logger = logging.getLogger(__name__)

__all__ = ["GRADERS", "GoldParseError", "Grade", "check_gold", "grade", "grade_batch"]

GRADERS = ("math-verify", "official")

# One-time set-up of the official grader in a process (sympy's LaTeX parser tables): done before the first
# answer's time budget starts, and allowed this long on top of a worker's hard limit.
_OFFICIAL_WARM_UP_S = 30.0


@dataclass(frozen=True)
class Grade:
    """The grade of one response."""

    correct: bool
    extracted: str | None  # answer extracted from the response (None: nothing found)
    boxed: bool  # the response has a (closed) \boxed{...}
    error: str | None = None  # e.g. "timeout", "unparseable-gold", "unparseable-response"


class GoldParseError(ValueError):
    """The gold answer cannot be parsed by the grader, so no response could be graded against it."""


def as_text(value: object) -> str:
    """None (a missing response or gold) is empty text, never the string "None"."""
    return "" if value is None else str(value)


# --------------------------------------------------------------------------------------------------
# Gold parsing (cached per process)
# --------------------------------------------------------------------------------------------------


def parsed_gold(gold: str, grader: str, benchmark: str | None = None) -> tuple | LiteralGold | str | None:
    """The gold parsed for `grader`, or None when it cannot be parsed (failures are cached too).

    Only the official grader's rules depend on the benchmark: math-verify golds are cached once whatever the
    benchmark, so `grade(..., benchmark=b)` and `answer_anywhere` share the entry.
    """
    return _parse_gold(gold, grader, benchmark if grader == "official" else None)


@lru_cache(maxsize=8192)
def _parse_gold(gold: str, grader: str, benchmark: str | None) -> tuple | LiteralGold | str | None:
    text = gold_text(gold)
    if not text:
        return None
    if grader == "official":
        # The harness never parses golds; reject only what cannot be compared to anything.
        norm = official.gold_answer(text, benchmark)
        balanced = norm.count("{") == norm.count("}")
        return norm if norm and balanced else None
    return mathverify.parse_gold(text)


def _check_grader(grader: str) -> None:
    if grader not in GRADERS:
        raise ValueError(f"Unknown grader {grader!r}; choose one of {GRADERS}.")


def check_gold(gold: str, grader: str = "math-verify", benchmark: str | None = None) -> None:
    """Raise `GoldParseError` if `grader` cannot parse the gold answer `gold` (of `benchmark`)."""
    _check_grader(grader)
    parse_gold = lambda: parsed_gold(as_text(gold), grader, benchmark)  # noqa: E731
    # Golds are trusted data, but a pathological one must not hang either (when signals are usable).
    parsed = call_with_deadline(parse_gold, 30.0, None) if can_use_signals() else parse_gold()
    if parsed is None:
        raise GoldParseError(f"The {grader} grader cannot parse the gold answer {as_text(gold)[:200]!r}.")


# --------------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------------


def _extract_official(response: str, boxed_only: bool, box: str | None, benchmark: str | None) -> str | None:
    if boxed_only:
        return official.extract_answer(f"\\boxed{{{unbox(box)}}}", benchmark) if box else None
    return official.extract_answer(response, benchmark)


def _grade_unbounded(response: str, gold: str, grader: str, boxed_only: bool, benchmark: str | None) -> Grade:
    box = last_boxed(response)
    boxed, extracted = box is not None, box if boxed_only else None
    try:
        gold_parsed = parsed_gold(gold, grader, benchmark)
        if isinstance(gold_parsed, LiteralGold):
            extracted = mathverify.literal_answer(gold_parsed.kind, response if not boxed_only else "", box)
            correct, error = extracted == gold_parsed.value, None
        elif grader == "math-verify":
            pred, extracted = mathverify.extract(response, boxed_only, box)
            if gold_parsed is None:
                return Grade(False, extracted, boxed, "unparseable-gold")
            correct, error = mathverify.compare(gold_parsed, pred)
        else:
            extracted = _extract_official(response, boxed_only, box, benchmark)
            if gold_parsed is None:
                return Grade(False, extracted, boxed, "unparseable-gold")
            correct, error = official.math_equal(extracted, gold_parsed), None
        return Grade(correct, extracted, boxed, error)
    except Exception as e:  # never raise on model text
        logger.debug("grading failed", exc_info=True)
        return Grade(False, extracted, boxed, f"error: {type(e).__name__}")


def _timeout_grade(response: str, boxed_only: bool, error: str = "timeout") -> Grade:
    box = last_boxed(response)
    return Grade(False, box if boxed_only else None, box is not None, error)


def _grade_in_process(
    response: str, gold: str, grader: str, boxed_only: bool, timeout_s: float, benchmark: str | None = None
) -> Grade:
    response = as_text(response)
    if grader == "official":
        official.warm_up()
    return call_with_deadline(
        lambda: _grade_unbounded(response, as_text(gold), grader, boxed_only, benchmark),
        timeout_s,
        _timeout_grade(response, boxed_only),
    )


def grade(
    response: str,
    gold: str,
    *,
    grader: str = "math-verify",
    boxed_only: bool = False,
    timeout_s: float = 3.0,
    benchmark: str | None = None,
) -> Grade:
    """Grade one response against its gold answer. Never raises on model text and never hangs.

    `boxed_only=True` is the training reward's semantics (only the last `\\boxed{}` counts, no box is
    wrong); `boxed_only=False` is the chosen grader's eval semantics. `benchmark` (e.g. "minerva_math")
    selects the official grader's per-benchmark rules (Minerva keeps units; MATH golds are normalised
    twice); math-verify's rules do not depend on it. Off the main thread (where signals cannot interrupt)
    the answer is graded by a worker process under a hard time limit.
    """
    _check_grader(grader)
    if not can_use_signals():
        return grade_batch(
            [response], [gold], grader=grader, boxed_only=boxed_only, timeout_s=timeout_s, benchmark=benchmark
        )[0]
    return _grade_in_process(response, gold, grader, boxed_only, timeout_s, benchmark)


def check_lengths(responses: Sequence, golds: Sequence) -> None:
    if len(responses) != len(golds):
        raise ValueError(f"Got {len(responses)} responses but {len(golds)} gold answers; they must pair up.")


def grade_batch(
    responses: Sequence[str],
    golds: Sequence[str],
    *,
    grader: str = "math-verify",
    boxed_only: bool = False,
    timeout_s: float = 3.0,
    num_workers: int | None = None,
    progress: bool = False,
    benchmark: str | Sequence[str | None] | None = None,
) -> list[Grade]:
    """Grade many responses in parallel worker processes (persistent, reused across calls).

    Each answer has `timeout_s` of soft budget; a worker still busy `workers.HARD_LIMIT_GRACE_S` later is killed
    and replaced, and that answer is graded wrong with `error="timeout"`. `num_workers=None` keeps the
    running pool's size (a new pool gets min(8, CPU count) workers); `num_workers=0` grades serially in
    this process (signal time limit only; off the main thread it still uses the pool). `benchmark` is one
    name for all answers or one per answer (see `grade`).
    """
    _check_grader(grader)
    check_lengths(responses, golds)
    if not responses:
        return []
    responses, golds = [as_text(r) for r in responses], [as_text(g) for g in golds]
    benchmarks = (
        [benchmark] * len(responses) if benchmark is None or isinstance(benchmark, str) else benchmark
    )
    if len(benchmarks) != len(responses):
        raise ValueError(
            f"Got {len(responses)} responses but {len(benchmarks)} benchmarks; they must pair up."
        )
    args = [
        (r, g, grader, boxed_only, timeout_s, b) for r, g, b in zip(responses, golds, benchmarks, strict=True)
    ]
    if num_workers == 0 and can_use_signals():
        if progress:
            args = progress_bar(args, total=len(responses), desc="grading", unit="answer")
        return [_grade_in_process(*a) for a in args]
    return run_in_pool(
        [(_grade_in_process, a) for a in args],
        num_workers,
        timeout_s,
        lambda i, error: _timeout_grade(responses[i], boxed_only, error),
        progress,
        (lambda task: ("official", _OFFICIAL_WARM_UP_S)) if grader == "official" else None,
    )
