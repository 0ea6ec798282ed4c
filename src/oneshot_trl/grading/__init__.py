"""Answer grading for training rewards and evaluation. The public API; the rooms behind it:

- `boxes`: boxed-answer primitives (`last_boxed`, a gold's stated answer, `gold_string`), shared by trainer, rewards,
  benchmarks;
- `mathverify`: the math-verify grader with our extraction and normalisation rules;
- `official`: the Qwen2.5-Math harness's grader, verdict for verdict (the paper's numbers);
- `graders`: `grade` / `grade_batch` / `check_gold` over both graders, golds parsed once;
- `anywhere`: `answer_anywhere`, the gold found anywhere in a response (format vs reasoning gains);
- `deadline`: the in-process wall-clock budget (SIGALRM);
- `pool`, `workers`: worker processes with a hard time limit per answer, and this process's pool of them.

The names below load their module on first use (PEP 562): math-verify costs ~3 s to import, and the pure-string
primitives of `boxes` (read by the benchmarks and the training data) must not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and readers
    from oneshot_trl.grading.anywhere import answer_anywhere, answer_anywhere_batch
    from oneshot_trl.grading.boxes import gold_string, last_boxed
    from oneshot_trl.grading.graders import GRADERS, GoldParseError, Grade, check_gold, grade, grade_batch
    from oneshot_trl.grading.workers import shutdown_workers, start_workers

_HOMES = {
    "answer_anywhere": "anywhere",
    "answer_anywhere_batch": "anywhere",
    "gold_string": "boxes",
    "last_boxed": "boxes",
    "GRADERS": "graders",
    "GoldParseError": "graders",
    "Grade": "graders",
    "check_gold": "graders",
    "grade": "graders",
    "grade_batch": "graders",
    "shutdown_workers": "workers",
    "start_workers": "workers",
}
__all__ = [
    "GRADERS",
    "GoldParseError",
    "Grade",
    "answer_anywhere",
    "answer_anywhere_batch",
    "check_gold",
    "gold_string",
    "grade",
    "grade_batch",
    "last_boxed",
    "shutdown_workers",
    "start_workers",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
