"""The lab's synthetic task: two-number addition, "What is 37+48?".

Small enough that a 1M-parameter model learns the arithmetic in minutes of CPU pretraining, and rich
enough to show the paper's effects: the base model answers in two formats (`\\boxed{N}` and "The answer
is N.") and makes arithmetic slips, so RLVR can change the *format* (what the boxed-only reward and
the boxed rate see) and the *arithmetic* (what answer-anywhere accuracy sees) separately.

Splits are disjoint sets of operand pairs: `test` (held out from pretraining and RL, the lab's
benchmark), `train` (the RL pool: the "full set" of `one-vs-full` and the candidates of `selection`),
and everything else, which only pretraining sees.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from oneshot_trl.data import TRAIN_PROMPT_SUFFIX

LOW, HIGH = 10, 99  # operands are two-digit numbers: 8,100 ordered pairs
NUM_TEST = 200
NUM_TRAIN = 256
DEFAULT_EXAMPLE = (37, 48)  # the demo's one training example: a carry in the units digit


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


def answer_text(value: int | str, boxed: bool) -> str:
    """The two answer formats the base model is pretrained on."""
    return f"\\boxed{{{value}}}" if boxed else f"The answer is {value}."


@cache
def splits(seed: int = 0) -> dict[str, tuple[ArithmeticProblem, ...]]:
    """Disjoint `test` and `train` problem sets (the demo example is kept out of `test`)."""
    pairs = [(a, b) for a in range(LOW, HIGH + 1) for b in range(LOW, HIGH + 1) if (a, b) != DEFAULT_EXAMPLE]
    random.Random(seed).shuffle(pairs)
    test = tuple(ArithmeticProblem(a, b) for a, b in pairs[:NUM_TEST])
    train = tuple(ArithmeticProblem(a, b) for a, b in pairs[NUM_TEST : NUM_TEST + NUM_TRAIN - 1])
    return {"test": test, "train": (ArithmeticProblem(*DEFAULT_EXAMPLE), *train)}


def iter_pretraining_problems(seed: int) -> Iterator[ArithmeticProblem]:
    """An endless deterministic stream of problems, never from the held-out `test` split."""
    held_out = {(p.a, p.b) for p in splits()["test"]}
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
        texts.append(f"user\n{question}\nassistant\n{answer_text(p.answer, boxed=i % 3 == 0)}\n")
    return texts
