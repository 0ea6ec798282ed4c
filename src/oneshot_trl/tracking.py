"""What a 1-shot RLVR run shows while it trains: one compact console line per logged step, and the in-training
evals sent to every tracker.

transformers prints each log as a dict (29 keys for a GRPO step). `compact_line` keeps what a 1-shot user watches:
step, reward, the example's accuracy, entropy, completion length, KL, clip fraction, zero-variance groups and
seconds per step; the full dict still goes to the trackers (`report_to`: trackio by default in the recipes, local
under ~/.cache/huggingface/trackio, `trackio show` opens it), to `trainer_state.json`'s `log_history`, and to the
log at debug level (`log_level: debug`).
In-training eval results (`callbacks.BenchmarkEvalCallback`) go through `log_eval`: log_history as
`eval/<benchmark>`, and every callback's `on_log` as `eval_<benchmark>`, which transformers' tracker callbacks
file under `eval/<benchmark>` (their `rewrite_logs`), next to the console line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

# (log key, console label, format) in console order; `train_accuracy/*` (the examples') is added after reward.
CONSOLE_KEYS = (
    ("reward", "reward", "{:.3f}"),
    ("entropy", "entropy", "{:.3f}"),
    ("completions/mean_length", "len", "{:.0f}"),
    ("kl", "kl", "{:.2e}"),
    ("clip_ratio/region_mean", "clip", "{:.3f}"),
    ("frac_reward_zero_std", "zero-var", "{:.2f}"),
)
EXAMPLE_ACCURACY_PREFIX = "train_accuracy/"
EVAL_LOG_PREFIX = "eval_"  # what trackers show as eval/<name>


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def compact_line(
    logs: Mapping[str, Any], step: int, max_steps: int, seconds_per_step: float | None
) -> str | None:
    """One console line for a training log; an eval log as `eval step N: math500 0.412 ...`; None for a log
    with nothing to show (it still reaches the trackers)."""
    evals = {k.removeprefix(EVAL_LOG_PREFIX): v for k, v in logs.items() if k.startswith(EVAL_LOG_PREFIX)}
    if evals and all(_number(v) is not None for v in evals.values()):
        return f"eval step {step}: " + "  ".join(f"{k} {float(v):.3f}" for k, v in evals.items())
    parts = []
    for key, label, fmt in CONSOLE_KEYS:
        value = _number(logs.get(key))
        if value is not None:
            parts.append(f"{label} {fmt.format(value)}")
        if key == "reward":
            accs = [
                v for k, v in logs.items() if k.startswith(EXAMPLE_ACCURACY_PREFIX) and _number(v) is not None
            ]
            if accs:
                label = "acc" if len(accs) == 1 else f"acc(mean of {len(accs)})"
                parts.append(f"{label} {sum(accs) / len(accs):.3f}")
    if not parts:
        return None
    if seconds_per_step is not None:
        parts.append(f"{seconds_per_step:.1f} s/step")
    return f"step {step}/{max_steps} | " + " | ".join(parts)


class CompactLog:
    """Seconds per step between logged steps, and the line to print for a log (transformers' `on_log` inputs)."""

    def __init__(self) -> None:
        self._last: tuple[int, float] | None = None

    def line(self, logs: Mapping[str, Any], state: Any) -> str | None:
        now, step = time.monotonic(), state.global_step
        logger.debug("step %d: %s", step, dict(logs))  # the whole dict, with log_level: debug
        is_eval = any(k.startswith(EVAL_LOG_PREFIX) for k in logs)
        seconds = None
        if not is_eval:
            if self._last is not None and step > self._last[0]:
                seconds = (now - self._last[1]) / (step - self._last[0])
            self._last = (step, now)
        return compact_line(logs, step, state.max_steps, seconds)


def log_eval(trainer: Any, scores: Mapping[str, float]) -> None:
    """Record one in-training eval (`{"eval/<name>": accuracy}`) in log_history and send it to every callback's
    `on_log` (trackers, console). Not `trainer.log`: GRPOTrainer's would flush and clear the training metrics
    gathered since the last logged step into this record."""
    state = trainer.state
    state.log_history.append({**scores, "step": state.global_step})
    logs = {EVAL_LOG_PREFIX + k.removeprefix("eval/"): v for k, v in scores.items()}
    trainer.control = trainer.callback_handler.on_log(trainer.args, state, trainer.control, logs)
