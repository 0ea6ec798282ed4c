r"""Boxed-answer primitives: where a response or a gold states its answer in `\boxed{...}` (or `\fbox{...}`).

Pure string functions with no grader behind them, shared by the training reward (only the last box counts),
the trainer's completion records, the benchmarks' gold strings and both graders.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["all_boxed", "gold_string", "gold_text", "last_boxed", "matching_brace", "unbox"]

BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# Boxes looked at from the end of a response: bounds the work on a text made of thousands of "\boxed{".
_MAX_BOXES = 16
# What may stand between the boxes of a gold that lists its answers ("\\boxed{1} and \\boxed{-2}", "\\(\\boxed{1}\\)
# and \\(\\boxed{-2}\\)", "\\boxed{1} papers and \\boxed{2} bins"): punctuation, spacing, math delimiters, and a
# few plain words (`_MAX_GLUE_WORDS` besides and/or per gap, so a reference solution's prose is never a list).
_BOX_LIST_GLUE = re.compile(r"(?:[\s,;:$.]|\\[()\[\]]|\\q?quad|\\text\{[A-Za-z\s]*\}|(?<!\\)\b[A-Za-z]+\b)*")
_GLUE_WORD = re.compile(r"(?<!\\)\b[A-Za-z]+\b")
_MAX_GLUE_WORDS = 2


def _is_list_glue(text: str) -> bool:
    words = [w for w in _GLUE_WORD.findall(text.replace("\\text", " ")) if w not in ("and", "or")]
    return bool(_BOX_LIST_GLUE.fullmatch(text)) and len(words) <= _MAX_GLUE_WORDS


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


def _boxed_at(text: str, start: int) -> tuple[str, int] | None:
    """(content, end index) of the box whose command ends at `start`, or None when it is not closed."""
    tail = text[start:]
    spaces = len(tail) - len(tail.lstrip())
    i = start + spaces
    if i < len(text) and text[i] == "{":
        end = matching_brace(text, i)
        return (text[i + 1 : end], end) if end is not None else None
    # "\boxed 5" (LaTeX allows a single token without braces): up to the next space or "$".
    m = re.compile(r"[^\s$]+").match(text, i) if spaces else None
    return (m.group(0), m.end()) if m else None


def last_boxed(text: str) -> str | None:
    r"""Content of the last `\boxed{...}` (or `\fbox{...}`), brace matched.

    "Last" is the box that closes last, so in `\boxed{\frac{\boxed{1}}{2}}` it is the outer one. None
    when there is no box or when the last box command is not closed (a truncated response): like the
    training reward of the paper's code, an earlier box does not count then.

    >>> last_boxed(r"so $x = \boxed{\frac{1}{2}}$.")
    '\\frac{1}{2}'
    """
    commands = list(BOX_COMMAND.finditer(text))[-_MAX_BOXES:]
    if not commands or _boxed_at(text, commands[-1].end()) is None:
        return None
    boxes = [box for m in commands if (box := _boxed_at(text, m.end())) is not None]
    return max(boxes, key=lambda box: box[1])[0]


def all_boxed(text: str) -> list[str]:
    """Contents of the (last `_MAX_BOXES`) closed, non-empty boxes, in order."""
    commands = list(BOX_COMMAND.finditer(text))[-_MAX_BOXES:]
    return [box[0] for m in commands if (box := _boxed_at(text, m.end())) is not None and box[0].strip()]


def unbox(content: str) -> str:
    """Boxes nested in an answer ("\\boxed{\\boxed{7}}"): keep their content, drop the command."""
    return BOX_COMMAND.sub("", content)


def gold_text(gold: str) -> str:
    """The answer a gold string states: a reference solution's last box; the boxes of a list of boxed
    answers ("\\boxed{1} and \\boxed{-2}" -> "1, -2"); otherwise the gold itself ("" when a box is unclosed)."""
    gold = gold.strip()
    if "\\boxed" not in gold and "\\fbox" not in gold:
        return gold
    spans, pos = [], 0
    for m in BOX_COMMAND.finditer(gold):
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
    if len(spans) > 1 and all(_is_list_glue(g) for g in glue):
        return ", ".join(unbox(content).strip() for _, content, _ in spans)
    return last_boxed(gold) or ""  # a reference solution: its last box is the answer


def gold_string(value: Any) -> str:
    """A dataset's gold value as the string a grader reads: AMC stores answers as floats (27.0 -> "27"); a list
    of several answers is the comma-separated list it states (never only its first element)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(s for s in map(gold_string, value) if s)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
