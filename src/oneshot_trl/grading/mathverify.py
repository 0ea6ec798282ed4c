r"""The "math-verify" grader: Hugging Face math-verify (`parse` + `verify`) and our rules around it.

- Extraction: with `boxed_only=True` (training reward semantics) the last `\boxed{}` is parsed alone;
  otherwise math-verify's own extraction runs on the whole response (a `\boxed{}` first, then "final answer
  is", then any LaTeX or number). A response with no box and no "answer is"/"Final Answer" that stops
  mid-sentence is truncated: its last number is not an answer.
- Normalisation (`normalise`), for golds and responses alike: digit-group separators dropped, e-notation
  written as `\times 10^{}`, repeating decimals (`0.(3)`, `0.\overline{3}`) as fractions.
- Literal golds math-verify cannot represent are compared by value: a choice letter (`C`, `(C)`,
  `\text{(C)}`) with the choice the response states (its box, "the answer is (C)", "(C) 24"), a clock time.
- Percentages: math-verify forgives a percent sign on integers only; we also accept `12.5\%` for 12.5.
- Plus-minus inside an answer (`x = \frac{-1 \pm \sqrt{13}}{4}`, which math-verify cannot parse; it reads only a
  leading `\pm 2`): each item of a gold or a boxed answer with one `\pm` stands for its two values.
- A gold wrapped in math delimiters (`$12:00$`, `$$x = 1$$`) is read without them.

No time limit here: `graders` and `anywhere` call these functions under a deadline.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from oneshot_trl.grading.boxes import unbox

# Boxed answers first (like the official harness), then math-verify's anchors and plain LaTeX/numbers.
_EXTRACTION = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


class _DropTimeoutDisabledWarning(logging.Filter):
    # We disable math-verify's own signal timeouts on purpose (our deadline covers the whole answer); its
    # "Timeout is disabled" warning would only confuse users.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------

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


def normalise(text: str) -> str:
    """Rewrite number notations math-verify misreads into ones it reads, for golds and responses alike:
    digit-group separators, e-notation (as `\\times 10^{}`), repeating decimals (as a fraction)."""
    text = _DIGIT_GROUP_SEPARATOR.sub("", text)
    if "e" in text or "E" in text:
        text = _E_NOTATION.sub(r"\1 \\times 10^{\2}", text)
    if "." in text:
        text = _REPEATING_DECIMAL.sub(_repeating_to_fraction, text)
    return text


# --------------------------------------------------------------------------------------------------
# Literal golds: choice letters and clock times
# --------------------------------------------------------------------------------------------------

# A multiple-choice answer: a letter A-E alone, or as "(C)", "\\text{(C)}", "\\textbf{(C) }".
_LETTER_ANSWER = re.compile(r"\s*(?:\\(?:text|textbf|mathrm)\{\s*)?\(?([A-E])\)?\s*\}?\s*")
# A stated choice in a response: "(C)", "\\textbf{(C)}", or "answer is C" / "correct option is C".
_STATED_LETTER = re.compile(
    r"\(([A-E])\)|\b(?:answer|option|choice)(?: is|:)\s*\$?(?:\\text(?:bf)?\{)?\(?([A-E])\b"
)
# A clock time "9:30", "12:00" (two-digit minutes), maybe with a \text{} or a.m./p.m. after it.
_TIME_ANSWER = re.compile(r"\s*(\d{1,2})\s*:\s*(\d{2})\s*(?:\\text\{[^{}]*\}|[ap]\.?\s*m\.?|[AP]M)?\s*")
_TIME_IN_TEXT = re.compile(r"(?<![\d:])(\d{1,2})\s*:\s*(\d{2})(?![\d:])")


@dataclass(frozen=True)
class LiteralGold:
    """A gold math-verify cannot represent, compared by value: a choice letter or a clock time."""

    kind: str  # "letter" or "time"
    value: str


# Math delimiters around a whole gold: "$...$", "$$...$$", "\\(...\\)", "\\[...\\]".
_MATH_DELIMITED = re.compile(r"\s*(?:\$\$(.*)\$\$|\$(.*)\$|\\\((.*)\\\)|\\\[(.*)\\\])\s*", flags=re.DOTALL)


def strip_math_delimiters(text: str) -> str:
    """The gold inside the math delimiters wrapping all of it, else the gold as it is."""
    m = _MATH_DELIMITED.fullmatch(text)
    inner = next((g for g in m.groups() if g is not None), None) if m else None
    return inner if inner is not None and "$" not in inner else text


def expand_plus_minus(text: str) -> str:
    """Each top-level comma-separated item with exactly one `\\pm` as its two values: "x = \\frac{-1 \\pm
    \\sqrt{13}}{4}" -> "x = \\frac{-1 + \\sqrt{13}}{4}, x = \\frac{-1 - \\sqrt{13}}{4}" (an item with none or several
    is kept)."""
    if "\\pm" not in text:
        return text
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "{([" and (i == 0 or text[i - 1] != "\\")
        depth -= char in "})]" and (i == 0 or text[i - 1] != "\\")
        if char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    expanded = []
    for item in items:
        if len(re.findall(r"\\pm(?![A-Za-z])", item)) == 1 and "\\mp" not in item:
            expanded += [re.sub(r"\\pm(?![A-Za-z])", sign, item) for sign in ("+", "-")]
        else:
            expanded.append(item)
    return ",".join(expanded)


def literal_gold(text: str) -> LiteralGold | None:
    if m := _LETTER_ANSWER.fullmatch(text):
        return LiteralGold("letter", m.group(1))
    if m := _TIME_ANSWER.fullmatch(text):
        return LiteralGold("time", f"{int(m.group(1))}:{m.group(2)}")
    return None


def stated_literals(kind: str, response: str) -> list[str]:
    """Every choice letter ("(C)", "answer is C") or clock time the response states, in order."""
    if kind == "letter":
        return [m.group(1) or m.group(2) for m in _STATED_LETTER.finditer(response)]
    return [f"{int(h)}:{m}" for h, m in _TIME_IN_TEXT.findall(response)]


def literal_answer(kind: str, response: str, box: str | None) -> str | None:
    """The letter (or time) a response states: its last box when it has one, else the last stated letter
    ("(C)", "answer is C") or the last time in the text."""
    if box is not None and box.strip():
        literal = literal_gold(unbox(box))
        return literal.value if literal is not None and literal.kind == kind else None
    stated = stated_literals(kind, response)
    return stated[-1] if stated else None


# --------------------------------------------------------------------------------------------------
# Parsing, extraction, comparison
# --------------------------------------------------------------------------------------------------

_ANSWER_ANCHOR = re.compile(r"answer(?: is|:)|final answer", flags=re.IGNORECASE)
_WORD = re.compile(r"\b[A-Za-z]{2,}\b")


def parse_gold(text: str) -> tuple | LiteralGold | None:
    """A gold's stated answer (`boxes.gold_text`) parsed, or None when math-verify cannot parse it."""
    if literal := literal_gold(text):  # a choice letter or a clock time: compared as such
        return literal
    inner = strip_math_delimiters(text)
    # "$12:00$" is a clock time too; "$\\text{E}$" stays math (a symbol E), not a choice letter
    if inner != text and (literal := literal_gold(inner)) and literal.kind == "time":
        return literal
    text = expand_plus_minus(normalise(inner))
    parsed = parse(f"\\boxed{{{text}}}", _EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)
    if not parsed:  # e.g. an unbalanced brace: let math-verify find an expression in the raw text
        parsed = parse(text, _EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)
    return tuple(parsed) if parsed else None


def parse_candidate(snippet: str) -> list:
    """A candidate answer snippet parsed strictly (no fallback to the raw string)."""
    return parse(snippet, _EXTRACTION, fallback_mode="no_fallback", parsing_timeout=None)


def _looks_truncated(response: str) -> bool:
    """A response with no box and no "answer is"/"Final Answer" that stops mid-sentence (a last line of prose,
    three words or more, without final punctuation or closing bracket): its last number is not a stated
    answer. A last line that is only a result ("42", "#### 42", "x = 7") is one."""
    tail = response.rstrip()
    if not tail or tail[-1] in ".!?$)]}*>\"'" or _ANSWER_ANCHOR.search(response):
        return False
    return len(_WORD.findall(tail.rsplit("\n", 1)[-1])) >= 3


def extract(response: str, boxed_only: bool, box: str | None) -> tuple[list, str | None]:
    """math-verify's parsed answer (a list, possibly empty) and the extracted answer string."""
    if boxed_only:
        if not box:
            return [], box
        return parse(
            f"\\boxed{{{expand_plus_minus(normalise(unbox(box)))}}}", _EXTRACTION, parsing_timeout=None
        ), box
    if box is None and _looks_truncated(response):
        return [], None
    if box is not None and "\\pm" in box:  # a boxed answer with a plus-minus: its values (see the docstring)
        pred = parse(
            f"\\boxed{{{expand_plus_minus(normalise(unbox(box)))}}}", _EXTRACTION, parsing_timeout=None
        )
        if pred:
            return pred, box
    pred = parse(normalise(response), _EXTRACTION, parsing_timeout=None)
    # parse returns [sympy_expr, matched_string], or [matched_string] when the match did not parse.
    return pred, next((p for p in reversed(pred) if isinstance(p, str)), str(pred[0]) if pred else None)


def verify_parsed(gold: Sequence, pred: Sequence) -> bool:
    # allow_set_relation_comp: "x > 3" answers "(3, \\infty)" and vice versa.
    return bool(verify(list(gold), list(pred), allow_set_relation_comp=True, timeout_seconds=None))


def _percent_value(expr: object) -> object | None:
    """`x` when `expr` is latex2sympy's percentage `x * UnevaluatedExpr(1/100)` with a numeric x, else None."""
    import sympy

    if isinstance(expr, sympy.Mul) and len(expr.args) == 2:
        value, scale = expr.args
        if scale == sympy.UnevaluatedExpr(sympy.Rational(1, 100)) and isinstance(value, sympy.Number):
            return value
    return None


def compare(gold: tuple, pred: list) -> tuple[bool, str | None]:
    """(correct, error) of a parsed prediction against a parsed gold."""
    if not pred:
        return False, None
    correct = verify_parsed(gold, pred)
    if not correct:
        # math-verify forgives a percent sign on integers only ("9\\%" = 9, but "12.5\\%" = 0.125 != 12.5).
        gold_pct, pred_pct = [_percent_value(g) for g in gold], [_percent_value(p) for p in pred]
        if any(v is not None for v in gold_pct + pred_pct):
            gold_num = [v if v is not None else g for v, g in zip(gold_pct, gold, strict=True)]
            pred_num = [v if v is not None else p for v, p in zip(pred_pct, pred, strict=True)]
            correct = verify_parsed(gold_num, pred_num)
    unparsed = not correct and all(isinstance(p, str) for p in pred)
    return correct, "unparseable-response" if unparsed else None


def warm_up() -> None:
    """Load math-verify's lazy imports and parser now (a worker does it while it boots)."""
    gold, (pred, _) = parse_gold(r"\frac{1}{2}"), extract(r"so $\boxed{\frac{1}{2}}$", False, None)
    compare(gold, pred)
