"""Reward functions: the paper's binary boxed-answer reward, the format reward, and reward modes."""

from __future__ import annotations

import pytest

from oneshot_trl.rewards import format_reward, get_reward_funcs, make_accuracy_reward


def test_accuracy_reward_grades_the_last_boxed_answer_only():
    reward = make_accuracy_reward()
    completions = [
        "So v^3 = 2048/... and v = \\boxed{12.8}.",
        "The answer is 12.8.",  # right number, no box: 0, as the official reward
        "First \\boxed{12.8}, but on reflection \\boxed{13}.",  # last box counts
        "\\boxed{\\frac{64}{5}}",  # equivalent form
        [{"role": "assistant", "content": "\\boxed{12.8}"}],  # conversational completion
        "",
    ]
    assert reward(completions, answer=["12.8"] * len(completions)) == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]


def test_accuracy_reward_survives_a_pathological_answer():
    reward = make_accuracy_reward(timeout_s=2.0)
    evil = "\\boxed{" + "9^{" * 60 + "9" + "}" * 60 + "}"
    assert reward([evil, "\\boxed{3}"], answer=["3", "3"]) == [0.0, 1.0]


def test_format_reward_ignores_correctness():
    assert format_reward(["\\boxed{wrong}", "\\boxed{12.8}", "12.8", "\\boxed{ }"]) == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("mode", "names", "weights"),
    [
        ("accuracy", ["accuracy"], [1.0]),
        ("format", ["format_reward", "accuracy"], [1.0, 0.0]),
        ("none", ["accuracy"], [0.0]),
    ],
)
def test_reward_modes_always_compute_accuracy(mode, names, weights):
    funcs, w = get_reward_funcs(mode)
    assert [f.__name__ for f in funcs] == names and w == weights
