"""A wall-clock budget for Python code in the main thread: SIGALRM interrupts it.

Graders run model text through parsers that can take unbounded time (a tower of exponents, 100k characters);
the in-process budget is this deadline, the hard limit beyond it is the worker pool's kill (`pool`). Signals
only work in the main thread: off it, callers route work to the pool (`can_use_signals`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

__all__ = ["call_with_deadline", "can_use_signals"]


class _Deadline(BaseException):
    # BaseException: library code that catches `Exception` (math-verify does) must not swallow it.
    pass


def call_with_deadline(fn: Callable[[], object], seconds: float, on_timeout: object) -> object:
    """Run `fn()` in the main thread, interrupting it with SIGALRM after `seconds` (wall clock); `on_timeout`
    is returned then. The caller's SIGALRM handler and timer (e.g. pytest-timeout's) are restored."""
    state = {"armed": True}

    def on_alarm(signum, frame):
        if state["armed"]:
            raise _Deadline

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_timer = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    timed_out = False
    try:
        # Re-fire every 0.1 s: a bare `except:` somewhere in library code may swallow the first alarm.
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), 0.1)
        result = fn()
    except _Deadline:
        timed_out = True
    finally:
        # The alarm can interrupt this cleanup too; repeat until it has run through once.
        while True:
            try:
                state["armed"] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_handler)
                if previous_timer[0] > 0:
                    remaining = previous_timer[0] - (time.monotonic() - started)
                    signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-3), previous_timer[1])
                break
            except _Deadline:
                timed_out = True
    return on_timeout if timed_out else result


def can_use_signals() -> bool:
    """True where `call_with_deadline` works: a platform with timers, in the main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
