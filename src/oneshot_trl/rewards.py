"""Reward functions with TRL's signature `(completions, answer, **kwargs) -> list[float]`.

They hold no grading logic of their own: the accuracy reward calls `oneshot_trl.grading`, the same code that
scores benchmarks, so training and evaluation judge an answer the same way.

Besides the paper's rewards (accuracy, format, none) there are three controls that test whether a gain comes
from the example's gold answer at all (Spurious Rewards, arXiv 2506.10947; TTRL, arXiv 2504.16084):
`random` (a coin flip per completion), `incorrect` (a wrong label, graded like accuracy) and `majority`
(agreement with the group's most common answer, no gold used).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from oneshot_trl.grading import grade_batch, last_boxed
from oneshot_trl.grading.official import strip_string

RewardFunc = Callable[..., list[float]]

# Set (True) on the reward function whose scores are the answers' correctness: the trainer logs that column as
# train accuracy (per-example metrics, accuracy history) in every reward mode, whatever the function is named.
MEASURES_ACCURACY = "measures_accuracy"


def is_accuracy_reward(func: Any) -> bool:
    """True for the reward function marked as the accuracy column (see `MEASURES_ACCURACY`)."""
    return getattr(func, MEASURES_ACCURACY, False) is True


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

    setattr(accuracy, MEASURES_ACCURACY, True)
    return accuracy


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for a completion that ends its answer in a non-empty \\boxed{}, right or wrong (the format-only reward).

    >>> format_reward(["\\\\boxed{7}", "the answer is 7", "\\\\boxed{}"])
    [1.0, 0.0, 0.0]
    """
    return [1.0 if (last_boxed(completion_text(c)) or "").strip() else 0.0 for c in completions]


# A documented wrong label per bundled pi example (DSR-sub index -> answer), for `reward: incorrect`. Each is a
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
    """The wrong label of each training example (`example_id -> label`) for `reward: incorrect`.

    `incorrect_answer` applies to every example; without it each example needs a documented default
    (`DEFAULT_INCORRECT_ANSWERS`, by DSR-sub index). A label the grader accepts as the gold is refused: the
    control would then be the accuracy reward.
    """
    labels = {}
    for ex in examples:
        label = str(incorrect_answer) if incorrect_answer is not None else DEFAULT_INCORRECT_ANSWERS.get(ex.index)
        if label is None:
            raise ValueError(
                f"reward: incorrect: example {ex.example_id} has no default wrong label; set incorrect_answer."
            )
        if make_accuracy_reward()([f"\\boxed{{{label}}}"], answer=[ex.answer]) == [1.0]:
            raise ValueError(f"incorrect_answer {label!r} is the gold answer of {ex.example_id}: pick a wrong one.")
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


def get_reward_funcs(
    reward: str,
    grader: str = "math-verify",
    timeout_s: float = 5.0,
    *,
    random_p: float = 0.5,
    seed: int = 0,
    incorrect_labels: dict[str, str] | None = None,
    num_generations: int = 8,
) -> tuple[list[RewardFunc], list[float]]:
    """Reward functions and their weights for a reward mode.

    Accuracy is always computed (weight 0 when it is not the reward) so that train accuracy per example is
    logged in every mode, including entropy-only (`none`) runs where the total reward is 0 and so are the
    advantages (the entropy bonus is then the only learning signal), and the controls (`random`, `incorrect`,
    `majority`), whose curves must show what the control did to real accuracy.
    """
    accuracy = make_accuracy_reward(grader, timeout_s)
    if reward == "accuracy":
        return [accuracy], [1.0]
    if reward == "format":
        return [format_reward, accuracy], [1.0, 0.0]
    if reward == "none":
        return [accuracy], [0.0]
    if reward == "random":
        return [make_random_reward(random_p, seed), accuracy], [1.0, 0.0]
    if reward == "incorrect":
        if not incorrect_labels:
            raise ValueError("reward: incorrect needs a wrong label per example (incorrect_answer).")
        return [make_incorrect_reward(incorrect_labels, grader, timeout_s), accuracy], [1.0, 0.0]
    if reward == "majority":
        return [make_majority_reward(num_generations), accuracy], [1.0, 0.0]
    raise ValueError(
        f"Unknown reward mode {reward!r}; choose accuracy, format, none, random, incorrect or majority."
    )
