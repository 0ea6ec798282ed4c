"""Answer grading for training rewards and evaluation. The public API; the rooms behind it:

- `boxes`: boxed-answer primitives (`last_boxed`, a gold's stated answer, `gold_string`), shared by trainer, rewards, benchmarks;
- `mathverify`: the math-verify grader with our extraction and normalisation rules;
- `official`: the Qwen2.5-Math harness's grader, verdict for verdict (the paper's numbers);
- `graders`: `grade` / `grade_batch` / `check_gold` over both graders, golds parsed once;
- `anywhere`: `answer_anywhere`, the gold found anywhere in a response (format vs reasoning gains);
- `deadline`: the in-process wall-clock budget (SIGALRM);
- `pool`, `workers`: worker processes with a hard time limit per answer, and this process's pool of them.
"""

from oneshot_trl.grading.anywhere import answer_anywhere, answer_anywhere_batch
from oneshot_trl.grading.boxes import gold_string, last_boxed
from oneshot_trl.grading.graders import GRADERS, GoldParseError, Grade, check_gold, grade, grade_batch
from oneshot_trl.grading.workers import shutdown_workers, start_workers

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
