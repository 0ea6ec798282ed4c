"""Reward functions: the paper's binary boxed-answer reward, the format reward, and reward modes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from oneshot_trl.data import Example
from oneshot_trl.rewards import (
    format_reward,
    get_reward_funcs,
    incorrect_labels,
    is_accuracy_reward,
    majority_labels,
    make_accuracy_reward,
    make_incorrect_reward,
    make_majority_reward,
    make_random_reward,
)


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
        ("random", ["random_reward", "accuracy"], [1.0, 0.0]),
        ("incorrect", ["incorrect", "accuracy"], [1.0, 0.0]),
        ("majority", ["majority", "accuracy"], [1.0, 0.0]),
    ],
)
def test_reward_modes_always_compute_accuracy(mode, names, weights):
    funcs, w = get_reward_funcs(mode, incorrect_labels={"dsr_sub:124": "16"})
    assert [f.__name__ for f in funcs] == names and w == weights
    # The trainer's accuracy column is the one marked by the reward itself, not found by name: exactly one per
    # mode, the accuracy function (the `incorrect` control grades like accuracy but is not it).
    assert [is_accuracy_reward(f) for f in funcs] == [n == "accuracy" for n in names]


def test_accuracy_column_is_marked_not_named():
    accuracy = make_accuracy_reward()
    accuracy.__name__ = "renamed"
    assert is_accuracy_reward(accuracy)
    assert not is_accuracy_reward(format_reward) and not is_accuracy_reward(lambda completions, **kw: [])


def _at_step(step: int) -> SimpleNamespace:
    return SimpleNamespace(global_step=step)


def test_random_reward_is_seeded_per_step_and_ignores_the_text():
    draw = make_random_reward(0.5, seed=3)
    first = draw(["x"] * 64, trainer_state=_at_step(5))
    assert first == make_random_reward(0.5, seed=3)(
        ["other"] * 64, trainer_state=_at_step(5)
    )  # same seed, text
    assert first != draw(["x"] * 64, trainer_state=_at_step(6))  # a new step draws afresh
    assert first != make_random_reward(0.5, seed=4)(["x"] * 64, trainer_state=_at_step(5))
    assert set(first) == {0.0, 1.0}
    many = [r for step in range(50) for r in draw(["x"] * 64, trainer_state=_at_step(step))]
    assert 0.45 < sum(many) / len(many) < 0.55  # 3200 Bernoulli(0.5) draws: sd 0.009
    assert set(make_random_reward(0.0)(["x"] * 20)) == {0.0} and set(make_random_reward(1.0)(["x"] * 20)) == {
        1.0
    }
    with pytest.raises(ValueError, match="random_reward_p"):
        make_random_reward(1.5)


def test_incorrect_reward_rewards_the_wrong_label_graded_like_accuracy():
    reward = make_incorrect_reward({"dsr_sub:124": "16"})
    completions = [
        "\\boxed{16}",
        "\\boxed{\\frac{32}{2}}",
        "\\boxed{12.8}",
        "16",
        "\\boxed{16} then \\boxed{3}",
    ]
    ids = ["dsr_sub:124"] * len(completions)
    assert reward(completions, answer=["12.8"] * len(completions), example_id=ids) == [
        1.0,
        1.0,
        0.0,
        0.0,
        0.0,
    ]
    with pytest.raises(KeyError, match="dsr_sub:9"):
        reward(["\\boxed{16}"], answer=["1"], example_id=["dsr_sub:9"])


def test_incorrect_labels_defaults_for_pi_examples_and_refuses_the_gold():
    pi1 = Example("dsr_sub:124", "wind pressure ...", "12.8", 124)
    other = Example("mine:1", "1+1", "2", None)
    assert incorrect_labels([pi1], None) == {"dsr_sub:124": "16"}
    assert incorrect_labels([pi1, other], "7") == {"dsr_sub:124": "7", "mine:1": "7"}
    with pytest.raises(ValueError, match="no default wrong label"):
        incorrect_labels([other], None)
    with pytest.raises(ValueError, match="is the gold"):
        incorrect_labels([pi1], "64/5")  # 12.8 in another form is not a wrong label


def test_bundled_default_wrong_labels_are_wrong():
    from oneshot_trl.config import OneShotArguments
    from oneshot_trl.data import load_examples

    for name in ("pi1", "pi2", "pi13", "pi1209"):
        examples = load_examples(OneShotArguments(train_examples=name))
        assert len(incorrect_labels(examples, None)) == 1


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["2", "2", "3", None], [1.0, 1.0, 0.0, 0.0]),  # plain majority; no answer: 0, no vote
        (["2", "3", "3", "2"], [0.0] * 4),  # tie for the most votes: no majority
        (["2", "3", None, None], [0.0] * 4),  # a 1-1 tie even though most did not answer
        ([None, None, "", " "], [0.0] * 4),  # nobody answered
        (["5", None, None, None], [1.0, 0.0, 0.0, 0.0]),  # a lone answer is the majority of the voters
        (["\\frac{1}{2}", "\\dfrac{1}{2}", "1/2", "0.5"], [1.0, 1.0, 1.0, 0.0]),  # harness normalisation
        (["7", "7", "7", "3", "3", "1"], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]),  # a plurality wins
    ],
)
def test_majority_labels_rules(answers, expected):
    assert majority_labels(answers) == expected


def test_majority_reward_votes_within_each_group():
    reward = make_majority_reward(num_generations=3)
    completions = ["\\boxed{1}", "\\boxed{1}", "\\boxed{2}", "\\boxed{2}", "\\boxed{2}", "\\boxed{1}"]
    assert reward(completions) == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]  # answer 1 wins group 1, answer 2 group 2
    with pytest.raises(ValueError, match="whole groups"):
        reward(completions[:4])
