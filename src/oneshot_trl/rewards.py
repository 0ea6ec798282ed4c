"""Reward functions with TRL's signature `(completions, answer, **kwargs) -> list[float]`.

They hold no grading logic of their own: the accuracy reward calls `eval.grading`, the same code that
scores benchmarks, so training and evaluation judge an answer the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oneshot_trl.grading import grade_batch, last_boxed

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


def get_reward_funcs(
    reward: str, grader: str = "math-verify", timeout_s: float = 5.0
) -> tuple[list[RewardFunc], list[float]]:
    """Reward functions and their weights for a reward mode.

    Accuracy is always computed (weight 0 when it is not the reward) so that train accuracy per example is
    logged in every mode, including entropy-only (`none`) runs where the total reward is 0 and so are the
    advantages: the entropy bonus is then the only learning signal.
    """
    accuracy = make_accuracy_reward(grader, timeout_s)
    if reward == "accuracy":
        return [accuracy], [1.0]
    if reward == "format":
        return [format_reward, accuracy], [1.0, 0.0]
    if reward == "none":
        return [accuracy], [0.0]
    raise ValueError(f"Unknown reward mode {reward!r}; choose accuracy, format or none.")
