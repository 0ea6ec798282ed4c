"""random-calc: the clean benchmark generated from a seed at eval time."""

from __future__ import annotations

import ast
import operator
from fractions import Fraction

import pytest

from oneshot_trl.eval.benchmarks import load_benchmark, load_problem_sets, parse_benchmark_names
from oneshot_trl.eval.protocols import get_protocol
from oneshot_trl.eval.random_calc import LEVEL_STEPS, PER_LEVEL, generate
from oneshot_trl.eval.request import EvalOutput, EvalRequest, ModelRef
from oneshot_trl.eval.runner import ResumeMismatchError, evaluate
from oneshot_trl.grading import grade

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(text: str) -> Fraction:
    """An independent evaluation of the problem's expression (Python's parser, exact fractions)."""
    expr = text.split("$")[1].replace("\\times", "*").replace("\\div", "/")

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        assert isinstance(node, ast.Constant) and isinstance(node.value, int)
        return Fraction(node.value)

    return walk(ast.parse(expr, mode="eval").body)


def _gold_value(gold: str) -> Fraction:
    sign = -1 if gold.startswith("-") else 1
    body = gold.lstrip("-")
    if body.startswith("\\frac{"):
        num, den = body[len("\\frac{") : -1].split("}{")
        return sign * Fraction(int(num), int(den))
    return sign * Fraction(int(body))


def test_same_seed_same_problems_other_seed_other_problems():
    a, b, c = generate(0), generate(0), generate(1)
    assert a == b
    assert len(a) == len(c) == PER_LEVEL * len(LEVEL_STEPS)
    assert sum(x.problem == y.problem for x, y in zip(a, c, strict=True)) < 5  # collisions only by chance
    assert {p.id for p in a}.isdisjoint(
        {p.id for p in c}
    )  # ids carry the seed: never resumed into each other


def test_golds_are_the_exact_values_and_the_grader_accepts_them():
    problems = generate(3)
    for p in problems:
        assert _gold_value(p.gold) == _evaluate(p.problem), p
    for p in problems[:: len(problems) // 10]:
        assert grade(f"so it is \\boxed{{{p.gold}}}", p.gold, grader="official").correct
    assert any("\\frac" in p.gold for p in problems) and any(p.gold.startswith("-") for p in problems)


def test_levels_set_the_number_of_operations():
    for p in generate(5):
        level = int(p.id.split("-L")[1].split("-")[0])
        lo, hi = LEVEL_STEPS[level]
        ops = sum(p.problem.count(s) for s in ("+", " - ", "\\times", "\\div"))
        assert lo <= ops <= hi, p


def test_names_and_protocol_hash_record_seed_and_version():
    assert parse_benchmark_names("math500,random-calc,random-calc@7") == [
        "math500",
        "random-calc",
        "random-calc@7",
    ]
    with pytest.raises(ValueError, match="seed"):
        parse_benchmark_names("random-calc@x")
    assert load_benchmark("random-calc@7")[0].benchmark == "random-calc@7"
    proto = get_protocol("one-shot-rlvr")
    assert proto.with_generated(["math500"]).hash() == proto.hash()  # runs without it keep their hash
    h0, h7 = proto.with_generated(["random-calc"]).hash(), proto.with_generated(["random-calc@7"]).hash()
    assert len({proto.hash(), h0, h7}) == 3


def test_eval_runs_random_calc_and_refuses_to_mix_seeds(tmp_path):
    class Solver:  # answers every problem correctly from its text
        def generate(self, prompts, *, n, **kwargs):
            return [[f"\\boxed{{{_evaluate(p)}}}"] * n for p in prompts]  # "-3/4" for a fraction

    def request(benchmark: str) -> EvalRequest:
        problems = load_problem_sets(benchmark, limit=10)
        return EvalRequest(problems, get_protocol("one-shot-rlvr"), ModelRef("m"), EvalOutput(tmp_path))

    results = evaluate(request("random-calc"), Solver())
    assert results["benchmarks"]["random-calc"]["accuracy"] == 1.0
    assert results["protocol"]["generated"] == {"random-calc": "random-calc v1 seed 0 x40/level"}
    with pytest.raises(ResumeMismatchError):
        evaluate(request("random-calc@1"), Solver())
