"""This process's pool of grading workers: their entry point, their warm-up, and the shared pool itself.

One pool per process, started on first use (or early by `start_workers`, so that workers boot while an eval
generates), resized on request, stopped at exit. A pool inherited through fork belongs to the parent and is
replaced. Each answer has a soft budget (the worker's own deadline) and a hard one `HARD_LIMIT_GRACE_S`
later, when the pool kills the worker (`pool.Pool.run`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Sequence

from oneshot_trl.grading import mathverify, official, pool

logger = logging.getLogger(__name__)

__all__ = ["HARD_LIMIT_GRACE_S", "run_in_pool", "shutdown_workers", "start_workers", "worker_entry"]

# A worker gets this long beyond `timeout_s` to unwind from the soft (signal) deadline before it is killed.
HARD_LIMIT_GRACE_S = 2.0

_POOL: pool.Pool | None = None
_POOL_LOCK = threading.Lock()


def worker_entry(read_fd: int, write_fd: int) -> None:
    """Entry point of a grading worker process (started by `pool.Pool`)."""
    pool.worker_main(read_fd, write_fd, warm_up=_warm_up)


def _warm_up() -> None:
    """Pay the graders' one-time costs while the worker boots, before it reports ready: the official grader's
    LaTeX parser tables (about 0.5 s) and math-verify's lazy imports. With `start_workers` called early (an
    eval starts the workers before generating), this overlaps generation instead of delaying the first answers.
    Best effort: a failure here must not stop the worker; it shows up in the answer that meets it."""
    try:
        official.warm_up()
        mathverify.warm_up()
    except Exception:  # noqa: BLE001
        logger.debug("Grading worker warm-up failed; graders load on first use.", exc_info=True)


def _default_num_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _pool(num_workers: int | None) -> pool.Pool:
    # Callers hold _POOL_LOCK.
    global _POOL
    if num_workers is not None and num_workers < 0:  # a pool of no workers would wait forever
        raise ValueError(f"num_workers must be >= 0 (0: grade in this process), got {num_workers}.")
    if _POOL is not None and _POOL.pid != os.getpid():
        _POOL = None  # inherited through fork: the workers belong to the parent
    if _POOL is None:
        _POOL = pool.Pool(num_workers or _default_num_workers(), entry=worker_entry)
    elif num_workers:
        _POOL.resize(num_workers)
    return _POOL


def run_in_pool(
    tasks: Sequence[pool.Task],
    num_workers: int | None,
    timeout_s: float,
    on_failure: Callable[[int, str], object],
    progress: bool,
    set_up: Callable[[pool.Task], tuple[str, float] | None] | None = None,
) -> list:
    """Run tasks in the shared pool, each killed `HARD_LIMIT_GRACE_S` after its soft budget `timeout_s`;
    `num_workers=None` keeps the pool's current size (the default if new)."""
    with _POOL_LOCK:
        return _pool(num_workers).run(tasks, timeout_s + HARD_LIMIT_GRACE_S, on_failure, progress, set_up)


def start_workers(num_workers: int | None = None) -> None:
    """Start the grading workers now, without waiting for them: their start-up (a Python interpreter
    importing sympy and math-verify, about a second each) then overlaps other work, e.g. an eval's first
    generation, instead of delaying the first `grade_batch`."""
    with _POOL_LOCK:
        _pool(num_workers)


def shutdown_workers() -> None:
    """Stop the grading worker processes (they are restarted on the next `grade_batch`)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL.pid == os.getpid():
            _POOL.shutdown()
        _POOL = None


atexit.register(shutdown_workers)
