"""The lab's synthetic task: two-number addition, "What is 37+48?".

Small enough that a 1M-parameter model learns the arithmetic in minutes of CPU pretraining, and rich
enough to show the paper's effects: the base model answers with column sums and a final answer in one of
two formats ("7+8=15, 3+4+1=8. The answer is \\boxed{85}." or "... The answer is 85.") and makes
arithmetic slips, so RLVR can change the *format* (what the boxed-only reward and the boxed rate see) and the
*arithmetic* (what the official grader's accuracy sees) separately.

Splits are disjoint sets of operand pairs: `test` (held out from pretraining and RL, the lab's
benchmark), `val` (held out too: pretraining stops when it reaches the target accuracy there), `train`
(the RL pool: the "full set" of `one-vs-full` and the candidates of `selection`), and everything else,
which only pretraining sees.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from oneshot_trl.data import TRAIN_PROMPT_SUFFIX

LOW, HIGH = 10, 99  # operands are two-digit numbers: 8,100 ordered pairs
NUM_TEST = 200
NUM_VAL = 100
NUM_TRAIN = 256
DEFAULT_EXAMPLE = (37, 48)  # the demo's one training example: a carry in the units digit
# Held-out problems are asked as the training problem is: chat template on question + the paper's training
# instruction. The paper's eval prompt asks for \\boxed{} too (Qwen2.5-Math's system line); a tiny model
# also computes better with the instruction's tokens after the question (they act as pause tokens).
EVAL_TEMPLATE = "chat-boxed"


@dataclass(frozen=True)
class ArithmeticProblem:
    a: int
    b: int

    @property
    def problem(self) -> str:
        return f"What is {self.a}+{self.b}?"

    @property
    def answer(self) -> str:
        return str(self.a + self.b)

    @property
    def example_id(self) -> str:
        return f"lab:{self.a}+{self.b}"


def parse_example(text: str) -> ArithmeticProblem:
    """`"37+48"` -> ArithmeticProblem(37, 48); the CLI's `--example` format."""
    try:
        a, b = (int(x) for x in text.replace(" ", "").split("+"))
    except ValueError as err:
        raise ValueError(f"Expected an example like '37+48', got {text!r}.") from err
    return ArithmeticProblem(a, b)


SLIPS = ("units+1", "units-1", "tens+1", "tens-1", "no-carry")  # the pretraining data's arithmetic errors


def answer_text(problem: ArithmeticProblem, boxed: bool, slip: str | None = None) -> str:
    """A pretraining answer: the column sums, then the final answer in one of two formats.

    "37+48" -> "7+8=15, 3+4+1=8. The answer is \\boxed{85}." (or "... The answer is 85."). The sum is worked
    out in the steps, which both formats share, and only copied into the final answer; so the format (what
    the boxed-only reward needs) and the arithmetic (what any grader needs) are separate skills, as format
    correction and reasoning are in the paper's analysis. A `slip` (one of `SLIPS`) puts one error into the
    steps, carried consistently into the answer.
    """
    a1, a0, b1, b0 = problem.a // 10, problem.a % 10, problem.b // 10, problem.b % 10
    units = a0 + b0 + {"units+1": 1, "units-1": -1 if a0 + b0 else 1}.get(slip or "", 0)
    carry = 0 if slip == "no-carry" else units // 10
    tens = a1 + b1 + carry + {"tens+1": 1, "tens-1": -1}.get(slip or "", 0)
    value = tens * 10 + units % 10
    steps = f"{a0}+{b0}={units}, " + (f"{a1}+{b1}+{carry}={tens}" if carry else f"{a1}+{b1}={tens}")
    final = f"\\boxed{{{value}}}" if boxed else str(value)
    return f"{steps}. The answer is {final}."


@cache
def splits(seed: int = 0) -> dict[str, tuple[ArithmeticProblem, ...]]:
    """Disjoint `test`, `val` and `train` problem sets; the demo example is the first of `train`."""
    pairs = [(a, b) for a in range(LOW, HIGH + 1) for b in range(LOW, HIGH + 1) if (a, b) != DEFAULT_EXAMPLE]
    random.Random(seed).shuffle(pairs)
    cuts = (NUM_TEST, NUM_TEST + NUM_VAL, NUM_TEST + NUM_VAL + NUM_TRAIN - 1)
    test, val, train = pairs[: cuts[0]], pairs[cuts[0] : cuts[1]], pairs[cuts[1] : cuts[2]]
    return {
        "test": tuple(ArithmeticProblem(a, b) for a, b in test),
        "val": tuple(ArithmeticProblem(a, b) for a, b in val),
        "train": (ArithmeticProblem(*DEFAULT_EXAMPLE), *(ArithmeticProblem(a, b) for a, b in train)),
    }


def iter_pretraining_problems(seed: int) -> Iterator[ArithmeticProblem]:
    """An endless deterministic stream of problems, never from the held-out `test` and `val` splits."""
    held_out = {(p.a, p.b) for name in ("test", "val") for p in splits()[name]}
    rng = random.Random(seed)
    while True:
        a, b = rng.randint(LOW, HIGH), rng.randint(LOW, HIGH)
        if (a, b) not in held_out:
            yield ArithmeticProblem(a, b)


def tokenizer_corpus(num_problems: int = 2000, seed: int = 0) -> list[str]:
    """Text the lab tokenizer's BPE merges are learned from: chat turns as the lab renders them.

    Role names and the prompt suffix appear as often as in real lab traffic, so the few merges of a
    300-token vocabulary go to the strings that make up most of every prompt.
    """
    suffix = TRAIN_PROMPT_SUFFIX
    stream = iter_pretraining_problems(seed)
    texts = []
    for i in range(num_problems):
        p = next(stream)
        question = p.problem + (suffix if i % 2 else "")
        texts.append(f"user\n{question}\nassistant\n{answer_text(p, boxed=i % 3 == 0)}\n")
    return texts
