"""`answer_anywhere`: does the gold answer appear anywhere in a response as a final-answer candidate?

Separates format gains (the model now boxes an answer it already wrote) from reasoning gains. Candidates:
every `\\boxed{}`, every "answer is X", every `$...$`/`\\[...\\]`/`\\(...\\)` span and the last number of
each line, verified with math-verify, under the same time bounds as `grade` / `grade_batch`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from oneshot_trl.grading import mathverify
from oneshot_trl.grading.boxes import all_boxed, unbox
from oneshot_trl.grading.deadline import call_with_deadline, can_use_signals
from oneshot_trl.grading.graders import as_text, check_lengths, parsed_gold
from oneshot_trl.grading.mathverify import LiteralGold
from oneshot_trl.grading.workers import run_in_pool

__all__ = ["answer_anywhere", "answer_anywhere_batch"]

# At most this many candidate spans are verified.
_MAX_CANDIDATES = 48

_ANSWER_IS = re.compile(r"answer(?: is|:)\s*(.{1,120}?)(?:\.\s|\n|$)", flags=re.IGNORECASE)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", flags=re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _is_label(line: str, m: re.Match) -> bool:
    after = line[m.end() : m.end() + 1]
    return after == ":" or (
        not line[: m.start()].strip() and after in (".", ")") and line[m.end() + 1 : m.end() + 2] in (" ", "")
    )


def _candidates(response: str) -> list[str]:
    """Spans that may state a final answer, most answer-like first, each as a parseable snippet."""
    boxed = [f"\\boxed{{{c}}}" for c in reversed(all_boxed(response))]
    stated = [f"answer is {m.group(1)}" for m in reversed(list(_ANSWER_IS.finditer(response)))]
    spans = [next(g for g in m.groups() if g is not None) for m in _MATH_SPAN.finditer(response)]
    maths = [f"${s.strip()}$" for s in reversed(spans) if s.strip()]
    # The last number of each line, not every number, and not a label ("Step 3:", "2) ", "1. " at the
    # start of a line): a gold of 3 would otherwise be found in almost any response.
    numbers = []
    for line in reversed(response.splitlines()):
        found = [m for m in _NUMBER.finditer(line) if not _is_label(line, m)]
        if found:
            numbers.append(found[-1].group(0).replace(",", ""))
    seen, out = set(), []
    for c in boxed + stated + maths + numbers:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out[:_MAX_CANDIDATES]


def _anywhere_unbounded(response: str, gold: str) -> bool:
    gold_parsed = parsed_gold(gold, "math-verify")
    if gold_parsed is None:
        return False
    if isinstance(gold_parsed, LiteralGold):  # a choice letter or a time: any box, stated choice or time
        boxed = {mathverify.literal_gold(unbox(box)) for box in all_boxed(response)}
        return gold_parsed in boxed or gold_parsed.value in mathverify.stated_literals(
            gold_parsed.kind, response
        )
    for candidate in _candidates(response):
        try:
            pred = mathverify.parse_candidate(candidate)
            if pred and mathverify.verify_parsed(gold_parsed, pred):
                return True
        except Exception:
            continue
    return False


def _anywhere_in_process(response: str, gold: str, timeout_s: float) -> bool:
    response = as_text(response)
    return bool(call_with_deadline(lambda: _anywhere_unbounded(response, as_text(gold)), timeout_s, False))


def answer_anywhere(response: str, gold: str, *, timeout_s: float = 3.0) -> bool:
    """True if the gold answer appears as a final-answer candidate anywhere in the text (see the module doc).
    False on timeout or unparseable gold."""
    if not can_use_signals():
        return answer_anywhere_batch([response], [gold], timeout_s=timeout_s)[0]
    return _anywhere_in_process(response, gold, timeout_s)


def answer_anywhere_batch(
    responses: Sequence[str],
    golds: Sequence[str],
    *,
    timeout_s: float = 3.0,
    num_workers: int | None = None,
    progress: bool = False,
) -> list[bool]:
    """`answer_anywhere` for many responses, in the grading worker pool (same time limits as `grade_batch`)."""
    check_lengths(responses, golds)
    if not responses:
        return []
    if num_workers == 0 and can_use_signals():
        return [_anywhere_in_process(r, g, timeout_s) for r, g in zip(responses, golds, strict=True)]
    tasks = [
        (_anywhere_in_process, (as_text(r), as_text(g), timeout_s))
        for r, g in zip(responses, golds, strict=True)
    ]
    return run_in_pool(tasks, num_workers, timeout_s, lambda i, e: False, progress)
