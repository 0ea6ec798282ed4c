"""Reward functions and their registry: the paper's rewards, the controls, dotted import paths, bad entries."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import doctor

from oneshot_trl import rewards as rewards_module
from oneshot_trl.config import OneShotArguments
from oneshot_trl.data import Example
from oneshot_trl.recipe import parse_recipe
from oneshot_trl.rewards import (
    REWARDS,
    RewardOptions,
    format_reward,
    get_reward_funcs,
    incorrect_labels,
    majority_labels,
    make_accuracy_reward,
    make_incorrect_reward,
    make_majority_reward,
    make_random_reward,
    no_reward,
    register,
)
from oneshot_trl.train import main as train_main
from oneshot_trl.validate import InputError


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
    ("reward_funcs", "weights", "logged", "given", "column"),
    [
        (["accuracy"], None, ["accuracy"], [1.0], 0),
        (["format"], None, ["format_reward", "accuracy"], [1.0, 0.0], 1),
        (["none"], None, ["no_reward", "accuracy"], [1.0, 0.0], 1),
        (["random"], None, ["random_reward", "accuracy"], [1.0, 0.0], 1),
        (["incorrect"], None, ["incorrect", "accuracy"], [1.0, 0.0], 1),
        (["majority"], None, ["majority", "accuracy"], [1.0, 0.0], 1),
        (["format", "accuracy"], [0.5, 2.0], ["format_reward", "accuracy"], [0.5, 2.0], 1),
    ],
)
def test_registry_entries_always_carry_the_accuracy_monitor(reward_funcs, weights, logged, given, column):
    options = RewardOptions(incorrect_labels={"dsr_sub:124": "16"})
    rewards = get_reward_funcs(reward_funcs, weights, options)
    assert [f.__name__ for f in rewards.funcs] == logged and rewards.weights == given
    # the monitor is the registry's accuracy column, found by the resolver (added with weight 0 when not trained on)
    assert rewards.accuracy_column == column
    assert rewards.funcs[column](["\\boxed{12.8}", "\\boxed{16}"], answer=["12.8"] * 2) == [1.0, 0.0]


def test_registry_covers_the_paper_rewards_and_the_controls():
    assert {"accuracy", "format", "none", "random", "incorrect", "majority"} <= REWARDS.keys()
    assert no_reward(["\\boxed{1}", ""]) == [0.0, 0.0]


def test_register_adds_a_named_reward(monkeypatch):
    monkeypatch.setattr(rewards_module, "REWARDS", dict(REWARDS))

    @register("shorter")
    def _shorter(options: RewardOptions):
        def shorter(completions, **kwargs):
            return [-float(len(c)) for c in completions]

        return shorter

    rewards = get_reward_funcs(["shorter"])
    assert rewards.funcs[0](["ab", "a"]) == [-2.0, -1.0] and rewards.accuracy_column == 1
    with pytest.raises(ValueError, match="taken"):
        register("shorter")(_shorter)
    with pytest.raises(ValueError, match="dot"):
        register("my.reward")(_shorter)


USER_MODULE = """
THRESHOLD = 3


def length_penalty(completions, **kwargs):
    return [-len(str(c)) / 100 for c in completions]


def no_kwargs(completions):
    return [0.0] * len(completions)


def accuracy(completions, **kwargs):
    return [1.0] * len(completions)
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's own, outside the package, importable from the working directory (TRL's rule)."""
    name = f"user_rewards_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    (tmp_path / f"{name}_broken.py").write_text("import no_such_dependency_anywhere\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_reward puts the working directory on it
    return name


def test_a_dotted_path_names_a_function_in_the_users_module(user_module):
    rewards = get_reward_funcs(["accuracy", f"{user_module}.length_penalty"], [1.0, 0.5])
    assert rewards.funcs[1] is sys.modules[user_module].length_penalty
    assert rewards.weights == [1.0, 0.5] and rewards.accuracy_column == 0
    alone = get_reward_funcs([f"{user_module}.length_penalty"])
    assert [f.__name__ for f in alone.funcs] == ["length_penalty", "accuracy"] and alone.weights == [1.0, 0.0]


@pytest.mark.parametrize(
    ("entries", "weights", "message"),
    [
        (["acuracy"], None, r"unknown reward 'acuracy'; choose one of accuracy, .*Did you mean 'accuracy'"),
        (["no_such_pkg_xyz.reward"], None, r"cannot import 'no_such_pkg_xyz' for 'no_such_pkg_xyz.reward'"),
        (["{m}_broken.reward"], None, r"cannot import '{m}_broken'.*no_such_dependency_anywhere"),
        (["{m}.missing"], None, r"module '{m}' has no 'missing'"),
        (["{m}.THRESHOLD"], None, r"'{m}.THRESHOLD' is not a function \(an int\)"),
        (["{m}.no_kwargs"], None, r"'{m}.no_kwargs' must take \*\*kwargs"),
        (["accuracy", "format", "accuracy"], None, r"'accuracy' is listed twice"),
        (
            ["accuracy", "format"],
            [1.0],
            r"reward_weights has 1 value\(s\) but reward_funcs has 2 \(accuracy, format\)",
        ),
        ([], None, "reward_funcs is empty"),
        (["{m}.accuracy"], None, r"'{m}.accuracy' is logged as 'accuracy'.*rename"),
    ],
)
def test_bad_entries_are_one_line_input_errors_naming_the_entry(user_module, entries, weights, message):
    entries = [e.format(m=user_module) for e in entries]
    with pytest.raises(InputError, match=message.format(m=user_module)) as err:
        get_reward_funcs(entries, weights)
    assert "\n" not in str(err.value)


def test_the_config_checks_reward_funcs_when_it_is_read(user_module):
    with pytest.raises(InputError, match="unknown reward 'formatt'"):
        OneShotArguments(train_examples="pi1", reward_funcs=["formatt"])
    with pytest.raises(InputError, match="cannot import"):
        OneShotArguments(train_examples="pi1", reward_funcs=["no_such_pkg_xyz.reward"])
    assert OneShotArguments(train_examples="pi1").reward_funcs == ["accuracy"]
    args = OneShotArguments(train_examples="pi1", reward_funcs=["accuracy", f"{user_module}.length_penalty"])
    assert args.reward_funcs == ["accuracy", f"{user_module}.length_penalty"]


def test_the_old_reward_key_still_works_with_a_deprecation_warning(caplog):
    args = OneShotArguments(train_examples="pi1", reward="random")
    assert args.reward_funcs == ["random"]
    assert "`reward: random` is deprecated: write `reward_funcs: [random]`." in caplog.text
    with pytest.raises(ValueError, match="Set reward_funcs only"):
        OneShotArguments(train_examples="pi1", reward="random", reward_funcs=["accuracy"])


def test_doctor_accepts_a_recipe_with_a_reward_outside_the_package(user_module, make_recipe, capsys):
    recipe = make_recipe(reward_funcs=[f"{user_module}.length_penalty", "format"], reward_weights=[0.5, 1.0])
    assert doctor([str(recipe)]) == 0, capsys.readouterr().err
    assert f"reward_funcs: ['{user_module}.length_penalty', 'format']" in capsys.readouterr().out
    mismatch = make_recipe(
        name="r2.yaml", reward_funcs=[f"{user_module}.length_penalty"], reward_weights=[1.0, 1.0]
    )
    assert doctor([str(mismatch)]) == 2
    assert "reward_weights has 2 value(s) but reward_funcs has 1" in capsys.readouterr().err


@pytest.mark.slow
def test_training_with_a_reward_outside_the_package_logs_it_and_the_accuracy_monitor(
    user_module, make_recipe
):
    recipe = make_recipe(reward_funcs=[f"{user_module}.length_penalty"], reward_weights=[2.0], max_steps=2)
    trainer = train_main(*parse_recipe([str(recipe)]))
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logged) == 2
    for row in logged:  # the user's reward is what GRPO was given (weight 2), accuracy is logged beside it
        assert row["rewards/length_penalty/mean"] < 0
        assert row["reward"] == pytest.approx(2 * row["rewards/length_penalty/mean"], abs=1e-6)
        assert {"rewards/accuracy/mean", "train_accuracy/dsr_sub:124"} <= row.keys()
    out = Path(trainer.args.output_dir)
    history = [json.loads(line) for line in (out / "accuracy_history.jsonl").read_text().splitlines()]
    assert [(r["step"], r["example_id"], r["num_samples"]) for r in history] == [
        (1, "dsr_sub:124", 8),
        (2, "dsr_sub:124", 8),
    ]
    run = json.loads((out / "oneshot_run.json").read_text())
    assert (run["reward_funcs"], run["reward_weights"]) == ([f"{user_module}.length_penalty"], [2.0])


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
