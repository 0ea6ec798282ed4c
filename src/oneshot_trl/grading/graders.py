"""The one answer grader used by training rewards and by evaluation.

Two graders share one interface:

- `"math-verify"`: Hugging Face math-verify (`parse` + `verify`). With `boxed_only=True` (training reward
  semantics) we extract the last `\\boxed{}` ourselves and parse only that; otherwise math-verify's own
  extraction runs on the whole response (a `\\boxed{}` first, then "final answer is", then any LaTeX or number).
  Before parsing, golds and responses go through one normalisation (`_normalise`): digit-group separators
  dropped, e-notation written as `\\times 10^{}`, repeating decimals (`0.(3)`, `0.\\overline{3}`) as
  fractions. A multiple-choice gold (`C`, `(C)`, `\\text{(C)}`) is compared as a letter with the choice
  the response states (its box, "the answer is (C)", "(C) 24"). A response with no box and no "answer
  is"/"Final Answer" that stops mid-sentence is truncated: its last number is not an answer.
- `"official"`: the Qwen2.5-Math harness's verdicts, mistakes included, for the paper's numbers
  (`official.py`); its rules depend on the benchmark (`benchmark=`: Minerva keeps units).

A gold string states its answer: a reference solution's last box, the boxes of a list of boxed answers
(`\\boxed{1} and \\boxed{-2}` is `1, -2`), else the string itself.

Safety and time bounds. Model text is never executed. Every answer gets a wall-clock budget (`timeout_s`):
in-process, a SIGALRM timer interrupts the Python code (math-verify's own signal timeouts are replaced by
ours, so one budget covers parse and verify); `grade_batch` runs in persistent worker processes
(`grading_pool`: answers sent in chunks, results streamed back one by one) and kills and replaces a worker
that overruns its answer by `_HARD_LIMIT_GRACE_S` (e.g. stuck in C code), grading that answer wrong with
`error="timeout"` and handing the rest of its chunk to a worker again. Signals only work in the main
thread, so `grade` called from another thread is routed to the worker pool.

Gold answers are parsed once (cached per process); a gold the grader cannot parse raises `GoldParseError`
from `check_gold` and gives `Grade(correct=False, error="unparseable-gold")` in `grade`/`grade_batch`.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from oneshot_trl.eval import grading_pool, official
from oneshot_trl.eval.grading_pool import Task, _Pool

logger = logging.getLogger(__name__)

__all__ = [
    "GRADERS",
    "Grade",
    "GoldParseError",
    "last_boxed",
    "check_gold",
    "grade",
    "grade_batch",
    "answer_anywhere",
    "answer_anywhere_batch",
    "shutdown_workers",
    "start_workers",
]

GRADERS = ("math-verify", "official")

# A worker gets this long beyond `timeout_s` to unwind from the soft (signal) deadline before it is killed.
_HARD_LIMIT_GRACE_S = 2.0
# One-time set-up of the official grader in a process (sympy's LaTeX parser tables): done before the first
# answer's time budget starts, and allowed this long on top of a worker's hard limit.
_OFFICIAL_WARM_UP_S = 30.0
# At most this many candidate spans are verified by `answer_anywhere`.
_MAX_ANYWHERE_CANDIDATES = 48

# Boxed answers first (like the official harness), then math-verify's anchors and plain LaTeX/numbers.
_EXTRACTION = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


@dataclass(frozen=True)
class Grade:
    """The grade of one response."""

    correct: bool
    extracted: str | None  # answer extracted from the response (None: nothing found)
    boxed: bool  # the response has a (closed) \boxed{...}
    error: str | None = None  # e.g. "timeout", "unparseable-gold", "unparseable-response"


class GoldParseError(ValueError):
    """The gold answer cannot be parsed by the grader, so no response could be graded against it."""


class _Deadline(BaseException):
    # BaseException: library code that catches `Exception` (math-verify does) must not swallow it.
    pass


class _DropTimeoutDisabledWarning(logging.Filter):
    # We disable math-verify's own signal timeouts on purpose (ours covers the whole answer); its
    # "Timeout is disabled" warning would only confuse users.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


# --------------------------------------------------------------------------------------------------
# Extraction helpers
# --------------------------------------------------------------------------------------------------

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _boxed_at(text: str, start: int) -> tuple[str, int] | None:
    """(content, end index) of the box whose command ends at `start`, or None when it is not closed."""
    tail = text[start:]
    spaces = len(tail) - len(tail.lstrip())
    i = start + spaces
    if i < len(text) and text[i] == "{":
        end = official.matching_brace(text, i)
        return (text[i + 1 : end], end) if end is not None else None
    # "\boxed 5" (LaTeX allows a single token without braces): up to the next space or "$".
    m = re.compile(r"[^\s$]+").match(text, i) if spaces else None
    return (m.group(0), m.end()) if m else None


# Boxes looked at from the end of a response: bounds the work on a text made of thousands of "\boxed{".
_MAX_BOXES = 16


def last_boxed(text: str) -> str | None:
    r"""Content of the last `\boxed{...}` (or `\fbox{...}`), brace matched.

    "Last" is the box that closes last, so in `\boxed{\frac{\boxed{1}}{2}}` it is the outer one. None
    when there is no box or when the last box command is not closed (a truncated response): like the
    training reward of the paper's code, an earlier box does not count then.

    >>> last_boxed(r"so $x = \boxed{\frac{1}{2}}$.")
    '\\frac{1}{2}'
    """
    commands = list(_BOX_COMMAND.finditer(text))[-_MAX_BOXES:]
    if not commands or _boxed_at(text, commands[-1].end()) is None:
        return None
    boxes = [box for m in commands if (box := _boxed_at(text, m.end())) is not None]
    return max(boxes, key=lambda box: box[1])[0]


def _all_boxed(text: str) -> list[str]:
    commands = list(_BOX_COMMAND.finditer(text))[-_MAX_BOXES:]
    return [box[0] for m in commands if (box := _boxed_at(text, m.end())) is not None and box[0].strip()]


def _unbox(content: str) -> str:
    # Boxes nested in the answer ("\boxed{\boxed{7}}"): keep their content, drop the command.
    return _BOX_COMMAND.sub("", content)


# --------------------------------------------------------------------------------------------------
# Gold parsing (cached per process)
# --------------------------------------------------------------------------------------------------


def _text(value: object) -> str:
    # None (a missing response or gold) is empty text, never the string "None".
    return "" if value is None else str(value)


# What may stand between the boxes of a gold that lists its answers ("\\boxed{1} and \\boxed{-2}").
_BOX_LIST_GLUE = re.compile(r"(?:[\s,;$.]|\\quad|\\qquad|\\text\{\s*(?:and|or)?\s*\}|\b(?:and|or)\b)*")


def _gold_text(gold: str) -> str:
    """The answer a gold string states: a reference solution's last box; the boxes of a list of boxed
    answers ("\\boxed{1} and \\boxed{-2}" -> "1, -2"); otherwise the gold itself."""
    gold = gold.strip()
    if "\\boxed" not in gold and "\\fbox" not in gold:
        return gold
    spans, pos = [], 0
    for m in _BOX_COMMAND.finditer(gold):
        if m.start() < pos:  # a box inside a box
            continue
        box = _boxed_at(gold, m.end())
        if box is None:
            return ""  # an unclosed box: unparseable
        spans.append((m.start(), box[0], box[1] + 1))
        pos = box[1] + 1
    glue = (
        [gold[: spans[0][0]]]
        + [gold[a[2] : b[0]] for a, b in zip(spans, spans[1:], strict=False)]
        + [gold[spans[-1][2] :]]
    )
    if len(spans) > 1 and all(_BOX_LIST_GLUE.fullmatch(g) for g in glue):
        return ", ".join(_unbox(content).strip() for _, content, _ in spans)
    return last_boxed(gold) or ""  # a reference solution: its last box is the answer


def _parsed_gold(gold: str, grader: str, benchmark: str | None = None) -> tuple | _Literal | str | None:
    """The gold parsed for `grader`, or None when it cannot be parsed (failures are cached too).

    Only the official grader's rules depend on the benchmark: math-verify golds are cached once whatever the
    benchmark, so `grade(..., benchmark=b)` and `answer_anywhere` share the entry.
    """
    return _parse_gold(gold, grader, benchmark if grader == "official" else None)


@lru_cache(maxsize=8192)
def _parse_gold(gold: str, grader: str, benchmark: str | None) -> tuple | _Literal | str | None:
    text = _gold_text(gold)
    if not text:
        return None
    if grader == "official":
        # The harness never parses golds; reject only what cannot be compared to anything.
        norm = official.gold_answer(text, benchmark)
        balanced = norm.count("{") == norm.count("}")
        return norm if norm and balanced else None
    if literal := _literal_gold(text):  # a choice letter or a clock time: compared as such
        return literal
    text = _normalise(text)
    parsed = parse(f"\\boxed{{{text}}}", _EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)
    if not parsed:  # e.g. an unbalanced brace: let math-verify find an expression in the raw text
        parsed = parse(text, _EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)
    return tuple(parsed) if parsed else None


@dataclass(frozen=True)
class _Literal:
    """A gold math-verify cannot represent, compared by value: a choice letter or a clock time."""

    kind: str  # "letter" or "time"
    value: str


def _literal_gold(text: str) -> _Literal | None:
    if m := _LETTER_ANSWER.fullmatch(text):
        return _Literal("letter", m.group(1))
    if m := _TIME_ANSWER.fullmatch(text):
        return _Literal("time", f"{int(m.group(1))}:{m.group(2)}")
    return None


def _check_grader(grader: str) -> None:
    if grader not in GRADERS:
        raise ValueError(f"Unknown grader {grader!r}; choose one of {GRADERS}.")


def check_gold(gold: str, grader: str = "math-verify", benchmark: str | None = None) -> None:
    """Raise `GoldParseError` if `grader` cannot parse the gold answer `gold` (of `benchmark`)."""
    _check_grader(grader)
    parse_gold = lambda: _parsed_gold(_text(gold), grader, benchmark)  # noqa: E731
    # Golds are trusted data, but a pathological one must not hang either (when signals are usable).
    parsed = _call_with_deadline(parse_gold, 30.0, None) if _can_use_signals() else parse_gold()
    if parsed is None:
        raise GoldParseError(f"The {grader} grader cannot parse the gold answer {_text(gold)[:200]!r}.")


# --------------------------------------------------------------------------------------------------
# In-process grading
# --------------------------------------------------------------------------------------------------


def _call_with_deadline(fn: Callable[[], object], seconds: float, on_timeout: object) -> object:
    """Run `fn()` in the main thread, interrupting it with SIGALRM after `seconds` (wall clock)."""
    state = {"armed": True}

    def on_alarm(signum, frame):
        if state["armed"]:
            raise _Deadline

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_timer = signal.getitimer(signal.ITIMER_REAL)  # e.g. pytest-timeout's; restored below
    started = time.monotonic()
    timed_out = False
    try:
        # Re-fire every 0.1 s: a bare `except:` somewhere in library code may swallow the first alarm.
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), 0.1)
        result = fn()
    except _Deadline:
        timed_out = True
    finally:
        # The alarm can interrupt this cleanup too; repeat until it has run through once.
        while True:
            try:
                state["armed"] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_handler)
                if previous_timer[0] > 0:
                    remaining = previous_timer[0] - (time.monotonic() - started)
                    signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-3), previous_timer[1])
                break
            except _Deadline:
                timed_out = True
    return on_timeout if timed_out else result


def _can_use_signals() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _percent_value(expr: object) -> object | None:
    """`x` when `expr` is latex2sympy's percentage `x * UnevaluatedExpr(1/100)` with a numeric x, else None."""
    import sympy

    if isinstance(expr, sympy.Mul) and len(expr.args) == 2:
        value, scale = expr.args
        if scale == sympy.UnevaluatedExpr(sympy.Rational(1, 100)) and isinstance(value, sympy.Number):
            return value
    return None


# Digit-group separators math-verify does not read: "1\\,000\\,000", "1{,}000".
_DIGIT_GROUP_SEPARATOR = re.compile(r"(?<=\d)(?:\\,|\\;|\\ |\{,\})(?=\d{3}(?!\d))")
# A number in e-notation ("4.5e33", "1.6E-19"), not part of a word or a longer number.
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
# A repeating decimal: "0.(3)", "0.1(6)", "0.\\overline{3}", "1.\\dot{6}".
_REPEATING_DECIMAL = re.compile(
    r"(?<![\w.])(\d+)\.(\d*)(?:\((\d+)\)|\\(?:overline|dot)\{(\d+)\}|\\(?:overline|dot)\s*(\d))"
)


def _repeating_to_fraction(m: re.Match) -> str:
    whole, fixed, repeat = m.group(1), m.group(2), next(g for g in m.groups()[2:] if g)
    denominator = (10 ** len(repeat) - 1) * 10 ** len(fixed)
    numerator = int(whole + fixed + repeat) - int(whole + fixed)
    return f"\\frac{{{numerator}}}{{{denominator}}}"


def _normalise(text: str) -> str:
    """Rewrite number notations math-verify misreads into ones it reads, for golds and responses alike:
    digit-group separators, e-notation (as `\\times 10^{}`), repeating decimals (as a fraction)."""
    text = _DIGIT_GROUP_SEPARATOR.sub("", text)
    if "e" in text or "E" in text:
        text = _E_NOTATION.sub(r"\1 \\times 10^{\2}", text)
    if "." in text:
        text = _REPEATING_DECIMAL.sub(_repeating_to_fraction, text)
    return text


# A multiple-choice answer: a letter A-E alone, or as "(C)", "\\text{(C)}", "\\textbf{(C) }".
_LETTER_ANSWER = re.compile(r"\s*(?:\\(?:text|textbf|mathrm)\{\s*)?\(?([A-E])\)?\s*\}?\s*")
# A stated choice in a response: "(C)", "\\textbf{(C)}", or "answer is C" / "correct option is C".
_STATED_LETTER = re.compile(
    r"\(([A-E])\)|\b(?:answer|option|choice)(?: is|:)\s*\$?(?:\\text(?:bf)?\{)?\(?([A-E])\b"
)
# A clock time "9:30", "12:00" (two-digit minutes), maybe with a \text{} or a.m./p.m. after it.
_TIME_ANSWER = re.compile(r"\s*(\d{1,2})\s*:\s*(\d{2})\s*(?:\\text\{[^{}]*\}|[ap]\.?\s*m\.?|[AP]M)?\s*")
_TIME_IN_TEXT = re.compile(r"(?<![\d:])(\d{1,2})\s*:\s*(\d{2})(?![\d:])")
_ANSWER_ANCHOR = re.compile(r"answer(?: is|:)|final answer", flags=re.IGNORECASE)


def _literal_answer(kind: str, response: str, box: str | None) -> str | None:
    """The letter (or time) a response states: its last box when it has one, else the last stated letter
    ("(C)", "answer is C") or the last time in the text."""
    if box is not None and box.strip():
        literal = _literal_gold(_unbox(box))
        return literal.value if literal is not None and literal.kind == kind else None
    if kind == "letter":
        stated = [m.group(1) or m.group(2) for m in _STATED_LETTER.finditer(response)]
        return stated[-1] if stated else None
    times = _TIME_IN_TEXT.findall(response)
    return f"{int(times[-1][0])}:{times[-1][1]}" if times else None


def _looks_truncated(response: str) -> bool:
    """A response with no box and no "answer is"/"Final Answer" that stops mid-sentence (a last line of prose,
    three words or more, without final punctuation or closing bracket): its last number is not a stated
    answer. A last line that is only a result ("42", "#### 42", "x = 7") is one."""
    tail = response.rstrip()
    if not tail or tail[-1] in ".!?$)]}*>\"'" or _ANSWER_ANCHOR.search(response):
        return False
    return len(_WORD.findall(tail.rsplit("\n", 1)[-1])) >= 3


_WORD = re.compile(r"\b[A-Za-z]{2,}\b")


def _verify(gold: Sequence, pred: Sequence) -> bool:
    # allow_set_relation_comp: "x > 3" answers "(3, \\infty)" and vice versa.
    return bool(verify(list(gold), list(pred), allow_set_relation_comp=True, timeout_seconds=None))


def _extract_math_verify(response: str, boxed_only: bool, box: str | None) -> tuple[list, str | None]:
    """math-verify's parsed answer (a list, possibly empty) and the extracted answer string."""
    if boxed_only:
        if not box:
            return [], box
        return parse(f"\\boxed{{{_normalise(_unbox(box))}}}", _EXTRACTION, parsing_timeout=None), box
    if box is None and _looks_truncated(response):
        return [], None
    pred = parse(_normalise(response), _EXTRACTION, parsing_timeout=None)
    # parse returns [sympy_expr, matched_string], or [matched_string] when the match did not parse.
    return pred, next((p for p in reversed(pred) if isinstance(p, str)), str(pred[0]) if pred else None)


def _compare_math_verify(gold: tuple, pred: list) -> tuple[bool, str | None]:
    if not pred:
        return False, None
    correct = _verify(gold, pred)
    if not correct:
        # math-verify forgives a percent sign on integers only ("9\\%" = 9, but "12.5\\%" = 0.125 != 12.5).
        gold_pct, pred_pct = [_percent_value(g) for g in gold], [_percent_value(p) for p in pred]
        if any(v is not None for v in gold_pct + pred_pct):
            gold_num = [v if v is not None else g for v, g in zip(gold_pct, gold, strict=True)]
            pred_num = [v if v is not None else p for v, p in zip(pred_pct, pred, strict=True)]
            correct = _verify(gold_num, pred_num)
    unparsed = not correct and all(isinstance(p, str) for p in pred)
    return correct, "unparseable-response" if unparsed else None


def _extract_official(response: str, boxed_only: bool, box: str | None, benchmark: str | None) -> str | None:
    if boxed_only:
        return official.extract_answer(f"\\boxed{{{_unbox(box)}}}", benchmark) if box else None
    return official.extract_answer(response, benchmark)


def _grade_unbounded(response: str, gold: str, grader: str, boxed_only: bool, benchmark: str | None) -> Grade:
    box = last_boxed(response)
    boxed, extracted = box is not None, box if boxed_only else None
    try:
        parsed_gold = _parsed_gold(gold, grader, benchmark)
        if isinstance(parsed_gold, _Literal):
            extracted = _literal_answer(parsed_gold.kind, response if not boxed_only else "", box)
            correct, error = extracted == parsed_gold.value, None
        elif grader == "math-verify":
            pred, extracted = _extract_math_verify(response, boxed_only, box)
            if parsed_gold is None:
                return Grade(False, extracted, boxed, "unparseable-gold")
            correct, error = _compare_math_verify(parsed_gold, pred)
        else:
            extracted = _extract_official(response, boxed_only, box, benchmark)
            if parsed_gold is None:
                return Grade(False, extracted, boxed, "unparseable-gold")
            correct, error = official.math_equal(extracted, parsed_gold), None
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
    response = _text(response)
    if grader == "official":
        official.warm_up()
    return _call_with_deadline(
        lambda: _grade_unbounded(response, _text(gold), grader, boxed_only, benchmark),
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
    if not _can_use_signals():
        return grade_batch(
            [response], [gold], grader=grader, boxed_only=boxed_only, timeout_s=timeout_s, benchmark=benchmark
        )[0]
    return _grade_in_process(response, gold, grader, boxed_only, timeout_s, benchmark)


# --------------------------------------------------------------------------------------------------
# answer_anywhere
# --------------------------------------------------------------------------------------------------

_ANSWER_IS = re.compile(r"answer(?: is|:)\s*(.{1,120}?)(?:\.\s|\n|$)", flags=re.IGNORECASE)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", flags=re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _is_label(line: str, m: re.Match) -> bool:
    after = line[m.end() : m.end() + 1]
    return after == ":" or (
        not line[: m.start()].strip() and after in (".", ")") and line[m.end() + 1 : m.end() + 2] in (" ", "")
    )


def _anywhere_candidates(response: str) -> list[str]:
    """Spans that may state a final answer, most answer-like first, each as a parseable snippet."""
    boxed = [f"\\boxed{{{c}}}" for c in reversed(_all_boxed(response))]
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
    return out[:_MAX_ANYWHERE_CANDIDATES]


def _anywhere_unbounded(response: str, gold: str) -> bool:
    parsed_gold = _parsed_gold(gold, "math-verify")
    if parsed_gold is None:
        return False
    if isinstance(parsed_gold, _Literal):  # a choice letter or a time: any box, stated choice or time
        boxed = {_literal_gold(_unbox(box)) for box in _all_boxed(response)}
        if parsed_gold.kind == "letter":
            stated = {m.group(1) or m.group(2) for m in _STATED_LETTER.finditer(response)}
        else:
            stated = {f"{int(h)}:{m}" for h, m in _TIME_IN_TEXT.findall(response)}
        return parsed_gold in boxed or parsed_gold.value in stated
    for candidate in _anywhere_candidates(response):
        try:
            pred = parse(candidate, _EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)
            if pred and _verify(parsed_gold, pred):
                return True
        except Exception:
            continue
    return False


def _anywhere_in_process(response: str, gold: str, timeout_s: float) -> bool:
    response = _text(response)
    return bool(_call_with_deadline(lambda: _anywhere_unbounded(response, _text(gold)), timeout_s, False))


def answer_anywhere(response: str, gold: str, *, timeout_s: float = 3.0) -> bool:
    """True if the gold answer appears as a final-answer candidate anywhere in the text.

    Candidates: every `\\boxed{}`, every "answer is X", every `$...$`/`\\[...\\]`/`\\(...\\)` span and
    the last number of each line, verified with math-verify. Separates format gains (the model now
    boxes an answer it already wrote) from reasoning gains. False on timeout or unparseable gold.
    """
    if not _can_use_signals():
        return answer_anywhere_batch([response], [gold], timeout_s=timeout_s)[0]
    return _anywhere_in_process(response, gold, timeout_s)


# --------------------------------------------------------------------------------------------------
# Worker pool (the processes and their scheduling: `grading_pool`)
# --------------------------------------------------------------------------------------------------

# What a worker can run: `grading_pool.worker_main` looks the task kind up here.
_TASKS: dict[str, Callable] = {"grade": _grade_in_process, "anywhere": _anywhere_in_process}


def _worker_main(read_fd: int, write_fd: int) -> None:
    """Entry point of a grading worker process (see `grading_pool._WORKER_BOOT`)."""
    grading_pool.worker_main(_TASKS, read_fd, write_fd, warm_up=_warm_up)


def _warm_up() -> None:
    """Pay the graders' one-time costs while the worker boots, before it reports ready: the official grader's
    LaTeX parser tables (about 0.5 s) and math-verify's lazy imports. With `start_workers` called early (an
    eval starts the workers before generating), this overlaps generation instead of delaying the first answers.
    Best effort: a failure here must not stop the worker; it shows up in the answer that meets it."""
    try:
        official.warm_up()
        _grade_unbounded(r"so $\boxed{\frac{1}{2}}$", r"\frac{1}{2}", "math-verify", False, None)
    except Exception:  # noqa: BLE001
        logger.debug("Grading worker warm-up failed; graders load on first use.", exc_info=True)


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _default_num_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _run_in_pool(
    tasks: Sequence[Task],
    num_workers: int | None,
    hard_limit_s: float,
    on_failure: Callable[[int, str], object],
    progress: bool,
    set_up: Callable[[Task], tuple[str, float] | None] | None = None,
) -> list:
    """Run tasks in the shared pool; `num_workers=None` keeps the pool's current size (default if new)."""
    with _POOL_LOCK:
        return _pool(num_workers).run(tasks, hard_limit_s, on_failure, progress, set_up)


def _pool(num_workers: int | None) -> _Pool:
    # Callers hold _POOL_LOCK.
    global _POOL
    if _POOL is not None and _POOL.pid != os.getpid():
        _POOL = None  # inherited through fork: the workers belong to the parent
    if _POOL is None:
        _POOL = _Pool(num_workers or _default_num_workers())
    elif num_workers:
        _POOL.resize(num_workers)
    return _POOL


def start_workers(num_workers: int | None = None) -> None:
    """Start the grading workers now, without waiting for them: their start-up (a Python interpreter
    importing sympy and math-verify, about a second each) then overlaps other work, e.g. an eval's first
    generation, instead of delaying the first `grade_batch`."""
    with _POOL_LOCK:
        _pool(num_workers)


def shutdown_workers() -> None:
    """Stop the grading worker processes (they are restarted on the next `grade_batch`)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL.pid == os.getpid():
            _POOL.shutdown()
        _POOL = None


atexit.register(shutdown_workers)


def _check_lengths(responses: Sequence, golds: Sequence) -> None:
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

    Each answer has `timeout_s` of soft budget; a worker still busy `_HARD_LIMIT_GRACE_S` later is killed
    and replaced, and that answer is graded wrong with `error="timeout"`. `num_workers=None` keeps the
    running pool's size (a new pool gets min(8, CPU count) workers); `num_workers=0` grades serially in
    this process (signal time limit only; off the main thread it still uses the pool). `benchmark` is one
    name for all answers or one per answer (see `grade`).
    """
    _check_grader(grader)
    _check_lengths(responses, golds)
    if not responses:
        return []
    responses, golds = [_text(r) for r in responses], [_text(g) for g in golds]
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
    if num_workers == 0 and _can_use_signals():
        if progress:
            from tqdm.auto import tqdm

            args = tqdm(args, total=len(responses), desc="grading", unit="answer")
        return [_grade_in_process(*a) for a in args]
    return _run_in_pool(
        [("grade", a) for a in args],
        num_workers,
        timeout_s + _HARD_LIMIT_GRACE_S,
        lambda i, error: _timeout_grade(responses[i], boxed_only, error),
        progress,
        (lambda task: ("official", _OFFICIAL_WARM_UP_S)) if grader == "official" else None,
    )


def answer_anywhere_batch(
    responses: Sequence[str],
    golds: Sequence[str],
    *,
    timeout_s: float = 3.0,
    num_workers: int | None = None,
    progress: bool = False,
) -> list[bool]:
    """`answer_anywhere` for many responses, in the grading worker pool (same time limits as `grade_batch`)."""
    _check_lengths(responses, golds)
    if not responses:
        return []
    if num_workers == 0 and _can_use_signals():
        return [_anywhere_in_process(r, g, timeout_s) for r, g in zip(responses, golds, strict=True)]
    tasks = [("anywhere", (_text(r), _text(g), timeout_s)) for r, g in zip(responses, golds, strict=True)]
    return _run_in_pool(tasks, num_workers, timeout_s + _HARD_LIMIT_GRACE_S, lambda i, e: False, progress)
