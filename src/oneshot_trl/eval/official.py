"""The "official" grader: answer extraction and equivalence rules of the Qwen2.5-Math evaluation harness.

One-Shot RLVR reports its benchmark numbers with a copy of the Qwen2.5-Math harness
(`Qwen2.5-Eval/evaluation/{parser,grader}.py`). This module re-implements its behaviour from the
description in `shared/paper/eval_protocol.md` (sections 5-7); no harness code is copied. Differences:
symbolic equality goes through `latex2sympy2_extended` and sympy only (the harness also tries sympy's
`parse_expr`, which `eval`s its input: model text is never executed here), and the Minerva-only
"keep units" rule is available as `strip_string(..., skip_unit=True)` but not selected automatically.

These are pure functions without time limits: call them through `oneshot_trl.eval.grading.grade(...,
grader="official")`, which bounds their run time.
"""

from __future__ import annotations

import math
import re

__all__ = ["clean_span", "extract_answer", "math_equal", "matching_brace", "raw_answer", "strip_string"]


def matching_brace(text: str, open_index: int) -> int | None:
    """Index of the `}` closing the `{` at `open_index` (escaped `\\{`/`\\}` are not groups), or None."""
    depth, i = 0, open_index
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


# --------------------------------------------------------------------------------------------------
# Extraction (harness `extract_answer`)
# --------------------------------------------------------------------------------------------------

_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")


def _after_last_boxed(text: str) -> str:
    # The harness looks for the word "boxed" (so `\boxed` and a bare `boxed`), not for a LaTeX command.
    rest = text.split("boxed")[-1]
    if rest.startswith("{"):
        end = matching_brace(rest, 0)
        # An unclosed box (truncated response) keeps everything after the brace, as the harness does.
        return rest[1:end] if end is not None else rest[1:]
    return rest.split("$")[0].strip()


def raw_answer(text: str) -> str:
    """The answer span the harness extracts, before normalisation ("" when nothing is found)."""
    if "final answer is $" in text and "$. I hope" in text:  # Minerva few-shot style
        pred = text.split("final answer is $", 1)[1].split("$. I hope", 1)[0]
    elif "boxed" in text:
        pred = _after_last_boxed(text)
    elif "he answer is" in text:
        pred = text.split("he answer is")[-1]
    elif "final answer is" in text:
        pred = text.split("final answer is")[-1]
    else:
        numbers = _LAST_NUMBER.findall(text.replace(",", ""))
        pred = numbers[-1] if numbers else ""
    return clean_span(pred)


def clean_span(pred: str) -> str:
    """The harness' post-processing of an extracted span: join lines, drop a leading ':' and a trailing '.' or '/'."""
    pred = re.sub(r"\n\s*", "", pred).strip()
    if pred.startswith(":"):
        pred = pred[1:]
    if pred.endswith("."):
        pred = pred[:-1]
    if pred.endswith("/"):
        pred = pred[:-1]
    return pred.strip()


def extract_answer(text: str, skip_unit: bool = False) -> str | None:
    """Extracted and normalised answer of a response, or None when the harness would find nothing."""
    pred = raw_answer(text)
    return strip_string(pred, skip_unit=skip_unit) if pred else None


# --------------------------------------------------------------------------------------------------
# Normalisation (harness `strip_string`)
# --------------------------------------------------------------------------------------------------

_UNIT_WORDS = (
    "east", "west", "north", "south", "degree", "degrees", "radian", "radians", "mph", "kmph", "ft", "feet",
    "foot", "inch", "inches", "yard", "yards", "mile", "miles", "meter", "meters", "metre", "centimeter",
    "centimeters", "cm", "mm", "km", "kilometer", "kilometers", "kg", "gram", "grams", "pound", "pounds",
    "ounce", "ounces", "liter", "liters", "litre", "gallon", "gallons", "second", "seconds", "minute",
    "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months", "year", "years",
    "dollar", "dollars", "cent", "cents", "unit", "units", "square", "sq", "cubic", "cu", "points",
    "students", "people", "ways", "sides", "inches^2", "cm^2", "m^2",
)  # fmt: skip
# A unit word stands alone: not part of a longer word and not a LaTeX command (`\\sec`, `\\deg`).
_UNIT_RE = re.compile(r"(^|[^\w\\])(?:" + "|".join(map(re.escape, _UNIT_WORDS)) + r")(?=$|\W)")

_WORD_NUMBERS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_WORD_NUMBERS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80})
_WORD_NUMBERS.update({"ninety": 90, "hundred": 100, "thousand": 1000})

_SUBSTITUTIONS = (
    ("\\!", ""),
    ("tfrac", "frac"),
    ("dfrac", "frac"),
    ("bmatrix", "pmatrix"),
    ("\\neq", "\\ne"),
    ("\\leq", "\\le"),
    ("\\geq", "\\ge"),
    ("\\left", ""),
    ("\\right", ""),
    ("\\{", "{"),
    ("\\}", "}"),
)


def _fix_sqrt(s: str) -> str:
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}, \frac{a}b -> \frac{a}{b}
    s = re.sub(r"\\frac(\w)(\w)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\w)\{", r"\\frac{\1}{", s)
    return re.sub(r"\\frac(\{[^{}]*\})(\w)", r"\\frac\1{\2}", s)


def strip_string(string: str, skip_unit: bool = False) -> str:
    """Normalise an answer string the way the harness does before comparing (see eval_protocol.md §5)."""
    s = str(string).strip().replace("\n", "").rstrip(".")
    s = re.sub(r"\\begin\{array\}\{[^}]*\}", r"\\begin{pmatrix}", s).replace("\\end{array}", "\\end{pmatrix}")
    for old, new in _SUBSTITUTIONS:
        s = s.replace(old, new)
    # A trailing \text{...} is a unit ("5 \text{ cm}") unless it is the whole answer ("\text{(C)}").
    without_text_unit = re.sub(r"\\text\{[^{}]*\}$", "", s).strip()
    if without_text_unit:
        s = without_text_unit
    if not skip_unit:
        for _ in range(2):
            stripped = _UNIT_RE.sub(r"\1", s).strip()
            if re.sub(r"\\(?:text|mbox|mathrm)\{\s*\}", "", stripped).strip():  # keep "\text{east}" whole
                s = stripped
    for token in ("^{\\circ}", "^\\circ", "\\$", "$", "\\(", "\\)", "\\%", "%", "\\mathbf"):
        s = s.replace(token, "")
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s).strip()
    if s.lower() in _WORD_NUMBERS:
        s = str(_WORD_NUMBERS[s.lower()])
    for prefix in ("x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"):
        s = s.replace(prefix, "")
    s = s.replace("\\emptyset", "{}").replace(" .", " 0.").replace("{.", "{0.")
    if re.fullmatch(r"[(\[{][A-Za-z0-9]+[)\]}]", s):  # "(C)" -> "C", "{5}" -> "5"
        s = s[1:-1]
    s = s.replace("infinity", "\\infty")
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("and", "")  # as the harness does, even inside words
    s = re.sub(r"(\d+)\.0+(?=[^\d]|$)", r"\1", s)  # 1.000 -> 1, 2.0 cm -> 2 cm
    if s.startswith("."):
        s = "0" + s
    parts = s.split("=")
    if len(parts) == 2 and len(parts[0].strip()) <= 2:  # "k = 5" -> "5"
        s = parts[1]
    s = _fix_fracs(_fix_sqrt(s).replace(" ", ""))
    if re.fullmatch(r"-?\d+/\d+", s):  # 3/4 -> \frac{3}{4}
        num, den = s.split("/")
        s = f"\\frac{{{num}}}{{{den}}}"
    return s


# --------------------------------------------------------------------------------------------------
# Equivalence (harness `math_equal`)
# --------------------------------------------------------------------------------------------------


def _to_number(s: str) -> float | None:
    s = s.replace(",", "").strip()
    scale = 1.0
    if s.endswith("\\%") or s.endswith("%"):
        s, scale = s.rstrip("%").rstrip("\\"), 0.01
    try:
        value = float(s) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _split_top_level(s: str, sep: str = ",") -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(s):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    return parts + [s[start:]]


def _matrix_rows(s: str) -> list[list[str]] | None:
    m = re.fullmatch(r"\\begin\{pmatrix\}(.*)\\end\{pmatrix\}", s.strip(), flags=re.DOTALL)
    if m is None:
        return None
    return [row.split("&") for row in m.group(1).strip().split("\\\\") if row.strip()]


def math_equal(pred: str | None, ref: str, _depth: int = 0) -> bool:
    """Whether normalised `pred` equals normalised `ref` under the harness' rules (see eval_protocol.md §7)."""
    if pred is None or ref is None:
        return False
    pred, ref = str(pred).strip(), str(ref).strip()
    if pred.lower() == ref.lower():
        return True
    if ref in ("A", "B", "C", "D", "E"):  # multiple choice: the last standalone letter of the prediction
        letters = re.findall(r"\b([A-E])\b", pred)
        return bool(letters) and letters[-1] == ref
    p, r = _to_number(pred), _to_number(ref)
    if p is not None and r is not None:
        # Percentage leniency: 0.3 matches 30 and 30 matches 0.3.
        return any(math.isclose(p, r * k, rel_tol=1e-4) for k in (0.01, 1.0, 100.0))
    if not pred or _depth > 3:
        return False

    # Brackets: "(1,2)" vs "1,2"; the harness also strips them entirely before a string comparison, so it
    # does not tell an open interval from a closed one.
    pred_s, ref_s = pred, ref
    if (pred[0] == "[" and pred[-1] == "]" and ref[0] != "(") or (
        pred[0] == "(" and pred[-1] == ")" and ref[0] != "["
    ):
        pred_s, ref_s = pred_s.strip("[]()"), ref_s.strip("[]()")
    drop = str.maketrans("", "", "{}()")
    if pred_s.translate(drop).lower() == ref_s.translate(drop).lower():
        return True

    bracketed = re.compile(r"[(\[].+[)\]]", flags=re.DOTALL)
    if bracketed.fullmatch(pred) and bracketed.fullmatch(ref):  # tuples and intervals, element-wise
        pred_parts, ref_parts = _split_top_level(pred[1:-1]), _split_top_level(ref[1:-1])
        if len(pred_parts) == len(ref_parts) and all(
            math_equal(a, b, _depth + 1) for a, b in zip(pred_parts, ref_parts, strict=True)
        ):
            return True
    pred_rows, ref_rows = _matrix_rows(pred), _matrix_rows(ref)
    if pred_rows and ref_rows and [len(x) for x in pred_rows] == [len(x) for x in ref_rows]:
        if all(
            math_equal(a, b, _depth + 1)
            for prow, rrow in zip(pred_rows, ref_rows, strict=True)
            for a, b in zip(prow, rrow, strict=True)
        ):
            return True

    if pred.count("=") == 1 and ref.count("=") == 1:  # equations: a=b vs c=d as a-(b) vs ±(c-(d))
        pl, pr = pred.split("=")
        rl, rr = ref.split("=")
        lhs, rhs = f"{pl}-({pr})", f"{rl}-({rr})"
        if _symbolic_equal(lhs, rhs) or _symbolic_equal(f"-({lhs})", rhs):
            return True
    elif pred.count("=") == 1 and len(pred.split("=")[0].strip()) <= 2 and "=" not in ref:
        if math_equal(pred.split("=")[1], ref, _depth + 1):
            return True
    elif ref.count("=") == 1 and len(ref.split("=")[0].strip()) <= 2 and "=" not in pred:
        if math_equal(pred, ref.split("=")[1], _depth + 1):
            return True
    return _symbolic_equal(pred, ref)


def _to_sympy(s: str):
    import sympy
    from latex2sympy2_extended import latex2sympy

    if re.fullmatch(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", s.strip()):  # a numeric literal like 4.5e-7
        return sympy.Float(s.strip())
    try:
        return latex2sympy(s)
    except Exception:
        return None


def _symbolic_equal(a_str: str, b_str: str) -> bool:
    import sympy

    a, b = _to_sympy(a_str), _to_sympy(b_str)
    if a is None or b is None:
        return False
    try:
        if a == b or str(a) == str(b):
            return True
    except Exception:
        pass
    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        try:
            return a.shape == b.shape and all(
                math.isclose(float(x), float(y), rel_tol=1e-4, abs_tol=1e-3)
                for x, y in zip(sympy.N(a), sympy.N(b), strict=True)
            )
        except Exception:
            return False
    try:
        if isinstance(a, sympy.Eq) and isinstance(b, sympy.Eq):
            a, b = a.lhs - a.rhs, b.lhs - b.rhs
            if sympy.simplify(a - b) == 0 or sympy.simplify(a + b) == 0:
                return True
        if a.equals(b) or sympy.simplify(a - b) == 0:
            return True
    except Exception:
        pass
    try:
        return math.isclose(
            complex(sympy.N(a)).real, complex(sympy.N(b)).real, rel_tol=1e-4
        ) and math.isclose(complex(sympy.N(a)).imag, complex(sympy.N(b)).imag, rel_tol=1e-4, abs_tol=1e-9)
    except Exception:
        return False
