"""The lab's synthetic task: two-number addition, "What is 37+48?", solved by one of two strategies.

The task is built so that the paper's mechanism can operate: the base model *can* solve most problems, but
its default behaviour often does not, and what RL on one example can shift is a behaviour shared by every
problem. Pretraining answers use one of two strategies, chosen by the answer's first words and independent of
the operands:

- *careful* (`STRATEGY_PREFIX["careful"]`): column sums with an explicit carry, then a recheck by subtraction;
  always right in the data:
  "Step by step: 7+8=15, carry 1, 3+4+1=8. Recheck: 85-48=37. The answer is 85."
- *shortcut* (`STRATEGY_PREFIX["shortcut"]`): the sum in one line, tens and units added separately and the
  carry dropped: right exactly when the units do not carry (about 55% of problems):
  "Quick: 37+48=75. The answer is 75."
  It writes no column sums on purpose: when the shortcut wrote them ("7+8=5, 3+4=7"), RL on the one example
  also rewarded the memorised "3+4=8" of a shortcut that lands on 85, and the careful strategy's column sums
  on other problems drifted towards 8 (held-out accuracy 97.5 -> 73.5 within 30 steps of saturation).

The shortcut is the majority in pretraining, and more so the bigger the numbers (`careful_share`: 45% careful
answers when the tens digits sum to 2, falling linearly to 5% when they sum to 18; 37+48 gets 32.5%), so greedy
decoding takes it everywhere; sampling takes the careful strategy often enough that the base model solves most
problems within 8 samples. RL on one example shifts the strategy choice that every problem shares; a held-out
problem switches, under greedy decoding, once the shift outweighs its own lean towards the shortcut. Whether
that happens before or after the example's *sampled* accuracy saturates depends on the rollout temperature: at
the paper's 0.6 the example saturates only once nearly every held-out problem has switched; at the demo's 0.2
it saturates earlier, and held-out accuracy keeps rising after it (docs/lab.md, "After saturation"). The
final answer is boxed or not ("The answer is \\boxed{85}." / "The answer is 85."), a separate choice shared by
both strategies, so format (what the boxed-only reward needs) and strategy (what any grader needs) can move
separately.

Splits are disjoint sets of operand pairs: `test` (held out from pretraining and RL, the lab's benchmark),
`val` (held out too: pretraining checks both strategies there), `train` (the RL pool: the "full set" of
`one-vs-full` and the candidates of `selection`), and everything else, which only pretraining sees.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from oneshot_trl.prompts import TRAIN_PROMPT_SUFFIX

LOW, HIGH = 10, 99  # operands are two-digit numbers: 8,100 ordered pairs
NUM_TEST = 200
NUM_VAL = 100
NUM_TRAIN = 256
# Kept out of the shuffle and first in `train`, so the splits (and the data the shipped base was pretrained on,
# which excludes `test` and `val`) stay as they were built; it was the first demo's example.
DEFAULT_EXAMPLE = (37, 48)
# The demo's one training example, from the RL pool: the units carry (7+4), so the shortcut fails on it ("51").
DEMO_EXAMPLE = "27+34"
# Held-out problems are asked as the training problem is: chat template on question + the paper's training
# instruction (the paper's eval prompt asks for \\boxed{} too, through Qwen2.5-Math's system line).
EVAL_TEMPLATE = "chat-boxed"
EVAL_MAX_NEW_TOKENS = 64  # every lab eval's budget: a careful answer is about 45 tokens, a shortcut 20
STRATEGY_PREFIX = {"careful": "Step by step:", "shortcut": "Quick:"}
REFLECTION_WORD = "Recheck"  # the careful strategy's self-check, counted like the paper's reflection words


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

    @property
    def carries(self) -> bool:
        """The units carry: the shortcut gets this problem wrong."""
        return self.a % 10 + self.b % 10 >= 10

    @property
    def tens_sum(self) -> int:
        """The tens digits' sum (2..18): how big the numbers are, and how rarely the base model works carefully."""
        return self.a // 10 + self.b // 10

    @property
    def shortcut_answer(self) -> str:
        """What the shortcut writes: tens and units added separately, the carry dropped."""
        return f"{self.a // 10 + self.b // 10}{(self.a + self.b) % 10}"


def careful_share(problem: ArithmeticProblem, most: float, least: float) -> float:
    """Pretraining's share of careful answers to `problem`: `most` at the smallest tens sum (2), falling
    linearly to `least` at the largest (18). The bigger the numbers, the more often the base model takes the
    shortcut, so held-out problems with bigger numbers than the training example switch strategy only after it
    (the post-saturation rise)."""
    return most + (least - most) * (problem.tens_sum - 2) / 16


def parse_example(text: str) -> ArithmeticProblem:
    """`"37+48"` -> ArithmeticProblem(37, 48); the CLI's `--example` format."""
    try:
        a, b = (int(x) for x in text.replace(" ", "").split("+"))
    except ValueError as err:
        raise ValueError(f"Expected an example like '37+48', got {text!r}.") from err
    return ArithmeticProblem(a, b)


def solution_text(problem: ArithmeticProblem, strategy: str) -> str:
    """The working of `strategy` ("careful" or "shortcut"), up to the final answer sentence."""
    a1, a0, b1, b0 = problem.a // 10, problem.a % 10, problem.b // 10, problem.b % 10
    if strategy == "shortcut":
        return f"{STRATEGY_PREFIX['shortcut']} {problem.a}+{problem.b}={problem.shortcut_answer}."
    if strategy != "careful":
        raise ValueError(f"Unknown strategy {strategy!r}; choose careful or shortcut.")
    units, total = a0 + b0, problem.a + problem.b
    carry = units // 10
    return (
        f"{STRATEGY_PREFIX['careful']} {a0}+{b0}={units}, carry {carry}, {a1}+{b1}+{carry}={a1 + b1 + carry}. "
        f"{REFLECTION_WORD}: {total}-{problem.b}={problem.a}."
    )


def answer_text(problem: ArithmeticProblem, strategy: str, boxed: bool) -> str:
    """A pretraining answer: the strategy's working, then the final answer boxed or not."""
    value = problem.answer if strategy == "careful" else problem.shortcut_answer
    final = f"\\boxed{{{value}}}" if boxed else value
    return f"{solution_text(problem, strategy)} The answer is {final}."


def strategy_of(response: str) -> str | None:
    """Which strategy a response took (by its first words), or None for anything else."""
    text = response.lstrip()
    return next((name for name, prefix in STRATEGY_PREFIX.items() if text.startswith(prefix)), None)


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

    Role names, the prompt suffix and both strategies appear as often as in real lab traffic, so the few
    merges of a 300-token vocabulary go to the strings that make up most of every prompt and answer.
    """
    stream = iter_pretraining_problems(seed)
    texts = []
    for i in range(num_problems):
        p = next(stream)
        answer = answer_text(p, "careful" if i % 2 else "shortcut", boxed=i % 3 == 0)
        texts.append(f"user\n{p.problem}{TRAIN_PROMPT_SUFFIX}\nassistant\n{answer}\n")
    return texts
