"""`random-calc`: a clean benchmark of arithmetic expressions generated from a seed at evaluation time.

A model cannot have memorised problems that did not exist before the eval, so a gain here is not contamination
(the RandomCalculation control of *Reasoning or Memorization?*, arXiv 2507.10532: on such data only correct
rewards helped Qwen2.5-Math, random and incorrect ones did not).

What is generated (generator version `GENERATOR_VERSION`):
- operators `+ - * /` over integer operands 1..`MAX_OPERAND`, each new operation wrapping the expression so far
  (left or right operand chosen at random), parenthesised so the order of evaluation is explicit;
- difficulty levels 1-5 by the number of operations: 1: 1-2, 2: 3-5, 3: 6-9, 4: 10-14, 5: 15-20 (their 1-20
  steps), `PER_LEVEL` problems per level by default, so 200 problems;
- exact gold answers (`fractions.Fraction`): an integer (`-7`) or a fraction in lowest terms (`\\frac{-3}{4}` is
  written `-\\frac{3}{4}`); an expression is redrawn when it divides by zero or when a numerator or denominator
  of an intermediate value leaves `MAX_MAGNITUDE` / `MAX_DENOMINATOR` (so answers stay checkable by hand).

The name `random-calc` uses seed 0; `random-calc@SEED` another seed. Problem ids carry the generator version and
seed, and the run's protocol hash covers them (`Protocol.generated`), so results of different seeds or versions
are never mixed or resumed into one another silently.
"""

from __future__ import annotations

import random
from fractions import Fraction

from oneshot_trl.eval.problem import Problem

NAME = "random-calc"
GENERATOR_VERSION = 1
LEVEL_STEPS: dict[int, tuple[int, int]] = {1: (1, 2), 2: (3, 5), 3: (6, 9), 4: (10, 14), 5: (15, 20)}
PER_LEVEL = 40
MAX_OPERAND = 50
MAX_MAGNITUDE = 10**6
MAX_DENOMINATOR = 1000
QUESTION = "Compute the exact value of the following expression. Give an integer or a fraction in lowest terms.\n\n{}"
_SYMBOL = {"+": "+", "-": "-", "*": "\\times", "/": "\\div"}


def is_random_calc(name: str) -> bool:
    return name == NAME or name.startswith(NAME + "@")


def parse_seed(name: str) -> int:
    """`random-calc` -> 0, `random-calc@7` -> 7."""
    if name == NAME:
        return 0
    text = name[len(NAME) + 1 :]
    if not text.isdigit():
        raise ValueError(f"Benchmark {name!r}: the seed after '@' must be a non-negative integer.")
    return int(text)


def identity(seed: int, per_level: int = PER_LEVEL) -> str:
    """What the protocol hash records for a generated set: generator, version, seed, size."""
    return f"{NAME} v{GENERATOR_VERSION} seed {seed} x{per_level}/level"


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return None if b == 0 else a / b


def _in_bounds(value: Fraction) -> bool:
    return abs(value.numerator) <= MAX_MAGNITUDE and value.denominator <= MAX_DENOMINATOR


def expression(rng: random.Random, steps: int) -> tuple[str, Fraction]:
    """One expression of `steps` operations and its exact value (drawn until it stays within bounds)."""
    while True:
        value = Fraction(rng.randint(1, MAX_OPERAND))
        text = str(value)
        for step in range(steps):
            op = rng.choice("+-*/")
            operand = Fraction(rng.randint(1, MAX_OPERAND))
            left = rng.random() < 0.5  # the expression so far is the left operand
            new = _apply(op, value, operand) if left else _apply(op, operand, value)
            if new is None or not _in_bounds(new):
                break
            inner = text if step == 0 else f"({text})"
            text = f"{inner} {_SYMBOL[op]} {operand}" if left else f"{operand} {_SYMBOL[op]} {inner}"
            value = new
        else:
            return text, value


def latex_answer(value: Fraction) -> str:
    """Gold string: `7`, `-7`, `\\frac{3}{4}`, `-\\frac{3}{4}`."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def generate(seed: int = 0, per_level: int = PER_LEVEL, name: str | None = None) -> list[Problem]:
    """The problems of one seed: `per_level` per difficulty level, levels in order, same seed -> same problems."""
    rng = random.Random(f"{NAME}-v{GENERATOR_VERSION}-{seed}")  # a string seed is stable across Python runs
    problems = []
    for level, (lo, hi) in LEVEL_STEPS.items():
        for k in range(per_level):
            text, value = expression(rng, rng.randint(lo, hi))
            problems.append(
                Problem(
                    id=f"v{GENERATOR_VERSION}-s{seed}-L{level}-{k}",
                    problem=QUESTION.format(f"${text}$"),
                    gold=latex_answer(value),
                    benchmark=name or (NAME if seed == 0 else f"{NAME}@{seed}"),
                )
            )
    return problems
