"""Reward functions with TRL's signature `(completions, **kwargs) -> list[float]`, and their registry.

A recipe names its rewards as TRL's `trl/scripts/grpo.py` does: `reward_funcs` holds registry names or dotted
import paths (`my_pkg.rewards.length_penalty`, imported with the working directory on `sys.path`), weighted by
GRPOConfig's `reward_weights`. `get_reward_funcs` resolves them; `REWARDS` is the registry and `register` the one
place to add a named reward.

They hold no grading logic of their own: the accuracy reward calls `oneshot_trl.grading`, the same code that
scores benchmarks, so training and evaluation judge an answer the same way.

Besides the paper's rewards (accuracy, format, none) there are three controls that test whether a gain comes
from the example's gold answer at all (Spurious Rewards, arXiv 2506.10947; TTRL, arXiv 2504.16084):
`random` (a coin flip per completion), `incorrect` (a wrong label, graded like accuracy) and `majority`
(agreement with the group's most common answer, no gold used).

Whatever is trained on, accuracy against the gold is scored as a monitor: `RewardSet.accuracy_column` is the
registry's `accuracy` column, appended with weight 0 when it is not among the rewards.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oneshot_trl.grading import grade_batch, last_boxed
from oneshot_trl.grading.official import strip_string
from oneshot_trl.validate import InputError

RewardFunc = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    """Text of a completion, conversational (`[{"role": "assistant", "content": ...}]`) or plain."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion)
    return str(completion)


def make_accuracy_reward(grader: str = "math-verify", timeout_s: float = 5.0) -> RewardFunc:
    """1.0 when the last \\boxed{} answer equals the gold answer, else 0.0 (no box: 0.0), as in the paper.

    Grading runs in worker processes with a per-answer time limit, so a pathological completion is
    scored 0.0 and can never hang or crash a training step.

    >>> reward = make_accuracy_reward()
    >>> reward(["so it is \\\\boxed{12.8}", "I get 13", "\\\\boxed{64/5}"], answer=["12.8"] * 3)
    [1.0, 0.0, 1.0]
    """

    def accuracy(completions: list[Any], answer: list[str], **kwargs: Any) -> list[float]:
        grades = grade_batch(
            [completion_text(c) for c in completions],
            list(answer),
            grader=grader,
            boxed_only=True,
            timeout_s=timeout_s,
        )
        return [1.0 if g.correct else 0.0 for g in grades]

    return accuracy


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for a completion that ends its answer in a non-empty \\boxed{}, right or wrong (the format-only reward).

    >>> format_reward(["\\\\boxed{7}", "the answer is 7", "\\\\boxed{}"])
    [1.0, 0.0, 0.0]
    """
    return [1.0 if (last_boxed(completion_text(c)) or "").strip() else 0.0 for c in completions]


def no_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """0.0 for every completion (`none`: entropy-only training; advantages vanish, the entropy bonus is the signal).

    >>> no_reward(["\\boxed{7}", "x"])
    [0.0, 0.0]
    """
    return [0.0] * len(completions)


# A documented wrong label per bundled pi example (DSR-sub index -> answer), for the `incorrect` reward. Each is a
# plausible mistake, not the gold: pi1 ignores the doubled sail area (V^3 = 4096), pi2 halves the divisor count,
# pi13 and pi1209 flip the sign.
DEFAULT_INCORRECT_ANSWERS: dict[int, str] = {
    124: "16",
    267: "12",
    682: "-\\frac{4}{3}",
    789: "\\frac{2023}{2024}",
}


def _process_index() -> int:
    """This process's rank (0 without accelerate state), so ranks draw different random rewards."""
    try:
        from accelerate import PartialState

        return PartialState().process_index
    except (ImportError, ValueError, RuntimeError):
        return 0


def make_random_reward(p: float = 0.5, seed: int = 0) -> RewardFunc:
    """Bernoulli(p) per completion, independent of its text (the Spurious Rewards `random` control).

    The generator is seeded from (seed, optimizer step, process rank): the same run draws the same rewards (also
    after a resume), each step and each rank draw fresh ones. Several calls at one step (a train batch and an
    eval batch) repeat the step's draw, which is harmless: the draws never depend on the completions.

    >>> reward = make_random_reward(0.5, seed=1)
    >>> reward(["a"] * 6) == reward(["b"] * 6)
    True
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_reward_p must be in [0, 1], got {p}.")

    def random_reward(completions: list[Any], trainer_state: Any = None, **kwargs: Any) -> list[float]:
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        rng = np.random.default_rng([seed, step, _process_index()])
        return [float(x) for x in rng.random(len(completions)) < p]

    return random_reward


def make_incorrect_reward(
    labels: dict[str, str], grader: str = "math-verify", timeout_s: float = 5.0
) -> RewardFunc:
    """1.0 when the last \\boxed{} answer equals the example's wrong label (`labels[example_id]`), graded exactly
    like `accuracy` (the Spurious Rewards `incorrect` control).

    >>> reward = make_incorrect_reward({"dsr_sub:124": "16"})
    >>> reward(["\\\\boxed{16}", "\\\\boxed{12.8}"], answer=["12.8"] * 2, example_id=["dsr_sub:124"] * 2)
    [1.0, 0.0]
    """
    accuracy = make_accuracy_reward(grader, timeout_s)

    def incorrect(completions: list[Any], example_id: Sequence[str], **kwargs: Any) -> list[float]:
        missing = sorted({str(e) for e in example_id} - labels.keys())
        if missing:
            raise KeyError(f"No incorrect label for example(s) {missing}.")
        return accuracy(completions, answer=[labels[str(e)] for e in example_id])

    return incorrect


def incorrect_labels(examples: Sequence[Any], incorrect_answer: str | None) -> dict[str, str]:
    """The wrong label of each training example (`example_id -> label`) for the `incorrect` reward.

    `incorrect_answer` applies to every example; without it each example needs a documented default
    (`DEFAULT_INCORRECT_ANSWERS`, by DSR-sub index). A label the grader accepts as the gold is refused: the
    control would then be the accuracy reward.
    """
    labels = {}
    for ex in examples:
        label = (
            str(incorrect_answer) if incorrect_answer is not None else DEFAULT_INCORRECT_ANSWERS.get(ex.index)
        )
        if label is None:
            raise ValueError(
                f"reward incorrect: example {ex.example_id} has no default wrong label; set incorrect_answer."
            )
        if make_accuracy_reward()([f"\\boxed{{{label}}}"], answer=[ex.answer]) == [1.0]:
            raise ValueError(
                f"incorrect_answer {label!r} is the gold answer of {ex.example_id}: pick a wrong one."
            )
        labels[ex.example_id] = label
    return labels


def majority_labels(answers: Sequence[str | None]) -> list[float]:
    """Rewards of one group by majority vote (TTRL): 1.0 for a completion whose answer is the group's majority.

    Answers are compared after the Qwen2.5-Math harness' normalisation (`strip_string`). Rules: a completion
    without an answer (None or empty) gets 0 and does not vote; the majority is the strictly most common answer,
    so a tie for the most votes, or a group where nobody answered, has no majority and every completion gets 0
    (there is no consensus to reinforce, and picking one would depend on the order of the group).

    >>> majority_labels(["2", "2", "3", None])
    [1.0, 1.0, 0.0, 0.0]
    >>> majority_labels(["2", "3", None, None])
    [0.0, 0.0, 0.0, 0.0]
    """
    keys = [strip_string(a) if a and a.strip() else None for a in answers]
    counts = Counter(k for k in keys if k)
    top = counts.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return [0.0] * len(keys)
    winner = top[0][0]
    return [1.0 if k == winner else 0.0 for k in keys]


def make_majority_reward(num_generations: int) -> RewardFunc:
    """Majority-vote reward over each GRPO group, no gold used (the TTRL control): completions come in
    consecutive groups of `num_generations` (TRL's sampler repeats each prompt that many times in a row, and the
    config check keeps each process's generation batch a whole number of groups).
    """

    def majority(completions: list[Any], **kwargs: Any) -> list[float]:
        if len(completions) % num_generations:
            raise ValueError(
                f"majority reward: {len(completions)} completions are not whole groups of {num_generations}."
            )
        answers = [last_boxed(completion_text(c)) for c in completions]
        return [
            r
            for start in range(0, len(answers), num_generations)
            for r in majority_labels(answers[start : start + num_generations])
        ]

    return majority


# --- the registry ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardOptions:
    """What the registered rewards are built with (recipe values: grader, reward_timeout_s, random_reward_p, seed,
    num_generations; `incorrect_labels` from the training examples, see `incorrect_labels`)."""

    grader: str = "math-verify"
    timeout_s: float = 5.0
    random_p: float = 0.5
    seed: int = 0
    incorrect_labels: dict[str, str] | None = None
    num_generations: int = 8


RewardFactory = Callable[[RewardOptions], RewardFunc]
REWARDS: dict[str, RewardFactory] = {}  # registry name -> factory building the reward function
ACCURACY = "accuracy"  # the registry name of the gold-accuracy reward, the monitor logged in every run


def register(name: str) -> Callable[[RewardFactory], RewardFactory]:
    """Register a reward under `name` (usable in `reward_funcs`): decorate a factory `RewardOptions -> reward`."""

    def add(factory: RewardFactory) -> RewardFactory:
        if name in REWARDS or "." in name:
            raise ValueError(f"Reward name {name!r} is taken or has a dot (dots mean import paths).")
        REWARDS[name] = factory
        return factory

    return add


@register(ACCURACY)
def _accuracy(options: RewardOptions) -> RewardFunc:
    return make_accuracy_reward(options.grader, options.timeout_s)


@register("format")
def _format(options: RewardOptions) -> RewardFunc:
    return format_reward


@register("none")
def _none(options: RewardOptions) -> RewardFunc:
    return no_reward


@register("random")
def _random(options: RewardOptions) -> RewardFunc:
    return make_random_reward(options.random_p, options.seed)


@register("incorrect")
def _incorrect(options: RewardOptions) -> RewardFunc:
    if not options.incorrect_labels:
        raise InputError("reward_funcs: incorrect needs a wrong label per example (incorrect_answer).")
    return make_incorrect_reward(options.incorrect_labels, options.grader, options.timeout_s)


@register("majority")
def _majority(options: RewardOptions) -> RewardFunc:
    return make_majority_reward(options.num_generations)


# --- resolving `reward_funcs` ------------------------------------------------------------------------------------


def import_reward(path: str) -> RewardFunc:
    """The function a dotted path names, imported as TRL's grpo script does (working directory on `sys.path`)."""
    module_path, _, func_name = path.rpartition(".")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_path)
    except Exception as err:  # the user's module: any failure while importing it is an input error
        raise InputError(f"reward_funcs: cannot import {module_path!r} for {path!r}: {err!r}") from err
    func = getattr(module, func_name, None)
    if func is None:
        raise InputError(f"reward_funcs: module {module_path!r} has no {func_name!r} (from {path!r}).")
    if not callable(func):
        kind = type(func).__name__
        raise InputError(
            f"reward_funcs: {path!r} is not a function ({'an' if kind[0] in 'aeiou' else 'a'} {kind})."
        )
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): TRL will call it as it is
        return func
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise InputError(
            f"reward_funcs: {path!r} must take **kwargs: TRL calls it with prompts, completions, completion_ids, "
            "trainer_state and every dataset column as keywords."
        )
    return func


def check_reward_funcs(names: Sequence[str], weights: Sequence[float] | None = None) -> None:
    """Check `reward_funcs` (and `reward_weights`) without building anything: a one-line `InputError` naming the
    first bad entry (unknown name, unimportable path, not a function, a duplicate, a weight count mismatch)."""
    if not names:
        raise InputError("reward_funcs is empty: name at least one reward (e.g. [accuracy]).")
    for name in names:
        if name in REWARDS:
            continue
        if "." not in name:
            close = difflib.get_close_matches(name, REWARDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InputError(
                f"reward_funcs: unknown reward {name!r}; choose one of {', '.join(REWARDS)} or a dotted import path "
                f"(my_pkg.rewards.my_reward).{hint}"
            )
        import_reward(name)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"reward_funcs: {duplicates[0]!r} is listed twice.")
    if weights is not None and len(weights) != len(names):
        raise InputError(
            f"reward_weights has {len(weights)} value(s) but reward_funcs has {len(names)} "
            f"({', '.join(names)}): give one weight per reward."
        )


@dataclass(frozen=True)
class RewardSet:
    """The reward functions GRPO is given, their weights, and the column of the gold-accuracy monitor."""

    funcs: list[RewardFunc]
    weights: list[float]
    accuracy_column: int  # logged by trainer.py as train accuracy (per example, accuracy_history.jsonl)


def get_reward_funcs(
    names: Sequence[str],
    weights: Sequence[float] | None = None,
    options: RewardOptions | None = None,
) -> RewardSet:
    """The reward functions of `reward_funcs` (registry names or dotted import paths) with `reward_weights`
    (None: 1.0 each), plus the accuracy monitor.

    Accuracy against the gold is always scored: when `accuracy` is not one of the rewards it is added with
    weight 0, so train accuracy per example is logged in every run, including entropy-only (`none`) runs and the
    controls (`random`, `incorrect`, `majority`), whose curves must show what the control did to real accuracy.
    """
    check_reward_funcs(names, weights)
    options = options or RewardOptions()
    funcs = [REWARDS[n](options) if n in REWARDS else import_reward(n) for n in names]
    weights = [float(w) for w in weights] if weights is not None else [1.0] * len(funcs)
    if ACCURACY in names:
        reward_set = RewardSet(funcs, weights, list(names).index(ACCURACY))
    else:
        reward_set = RewardSet([*funcs, REWARDS[ACCURACY](options)], [*weights, 0.0], len(funcs))
    # TRL logs each reward as rewards/<function name>/...: two functions of one name would share (hide) a column
    logged = [getattr(f, "__name__", type(f).__name__) for f in reward_set.funcs]
    for entry, logged_name in zip([*names, ACCURACY], logged, strict=False):
        if logged.count(logged_name) > 1:
            raise InputError(
                f"reward_funcs: {entry!r} is logged as {logged_name!r}, like another reward (or the gold-accuracy "
                "monitor, `accuracy`): rename the function."
            )
    return reward_set
