"""Worker processes with a hard wall-clock limit per task: the mechanism behind `grading.grade_batch` /
`grading.answer_anywhere_batch` (`grading.workers` holds this process's pool of grading workers).

A task is `(function, args)`: a module-level function (sent by reference, as pickle does) that the worker
calls. A worker is a fresh interpreter that runs the entry point it is given (`Pool(..., entry=)`), a
module-level function `entry(read_fd, write_fd)` which calls `worker_main` with its own warm-up.

Answers go to a worker in chunks (one pipe message for several answers) and come back one result per
message, as each is graded. Why chunks: with one answer per message, a worker sat idle after every answer
until the parent woke up, read the result and sent the next answer (two wake-ups in a row, about 0.15 ms
on a 2-vCPU VM: some 6% of a 2.6 ms answer, lost on every worker). Why a result per answer: the parent
always knows which answer a worker is running, so the hard time limit stays per answer and the progress
bar moves per answer; it costs the parent one wake-up per answer (about 0.07 ms of CPU).

What chunks cannot remove: each worker is a separate process with its own caches (math-verify's ANTLR
LaTeX parser builds its prediction tables as it meets new inputs; sympy's caches; the parsed golds), so the
first answers a fresh worker grades cost more than in a warm process. That is paid once per worker (and
again after a worker is killed), not per batch.

Guarantees:

- hard wall-clock limit per answer: a worker still on one answer `hard_limit_s` after it started (e.g.
  stuck in C code, where its own SIGALRM cannot interrupt) is killed and replaced; that answer is
  failed with "timeout", the answers queued behind it in the same chunk go back to the queue;
- a worker that crashes is replaced; its answer is retried once, then failed with "worker-crashed"; the
  rest of its chunk goes back to the queue (not their fault);
- an exception or Ctrl-C mid-batch replaces every worker that still holds answers, so no stale result
  reaches the next batch; results are returned in input order.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait

from oneshot_trl.progress import progress_bar

logger = logging.getLogger(__name__)

# A task: (function, args), run in a worker as `function(*args)`.
Task = tuple[Callable, tuple]

# A worker must import sympy/math-verify and report ready within this time.
WORKER_BOOT_TIMEOUT_S = 120.0
# Address-space cap of a worker process: a pathological expression fails with MemoryError instead of
# taking the machine's memory.
WORKER_MEMORY_LIMIT_BYTES = 4 * 1024**3
# Chunk sizes (guided self-scheduling): a worker that asks for work gets 1/(CHUNK_SPLIT * workers) of the
# answers not yet handed out, between 1 and MAX_CHUNK. Large chunks early amortise the round trip (above);
# small chunks at the end keep the workers finishing together. MAX_CHUNK bounds how much one worker holds
# (and one message carries). Chunks are runs of consecutive answers: the samples of one problem, usually
# adjacent, mostly go to one worker, which parses their gold once.
CHUNK_SPLIT = 4
MAX_CHUNK = 64

# Workers are fresh interpreters (`python -c`), not multiprocessing children: spawn/forkserver children
# re-import the parent's `__main__` module, which for the trainer means torch + transformers in every
# worker (seconds and hundreds of MB each, again after every kill). Plain fork is unsafe in a process
# with torch threads. The entry point is imported by name in the new interpreter.
_WORKER_BOOT = "import sys; from {module} import {name} as main; main(int(sys.argv[1]), int(sys.argv[2]))"


def worker_main(read_fd: int, write_fd: int, warm_up: Callable[[], None] | None = None) -> None:
    """Serve a worker's pipes: run chunks of tasks from the parent until the pipe closes, sending back each
    task's result as soon as it is done (in order). `warm_up` runs before the worker reports ready."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = (
            WORKER_MEMORY_LIMIT_BYTES
            if hard == resource.RLIM_INFINITY
            else min(hard, WORKER_MEMORY_LIMIT_BYTES)
        )
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass
    # Ctrl-C reaches the whole process group: the parent handles it (and stops us), a worker must not die
    # mid-answer with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    if warm_up is not None:
        warm_up()
    outbox.send("ready")
    while True:
        try:
            chunk = inbox.recv()
        except (EOFError, OSError):
            return
        if isinstance(chunk, tuple):  # one task: from a parent started before chunking, still running
            chunk = [chunk]
        for function, args in chunk:
            outbox.send(function(*args))


class _Worker:
    def __init__(self, entry: Callable[[int, int], None]) -> None:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        env = dict(os.environ)
        # The parent's import path (e.g. a source checkout, pytest's rootdir) so the worker finds the package.
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
        env.setdefault("OMP_NUM_THREADS", "1")
        boot = _WORKER_BOOT.format(module=entry.__module__, name=entry.__qualname__)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", boot, str(task_r), str(result_w)],
                pass_fds=(task_r, result_w),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            os.close(task_w)
            os.close(result_r)
            raise
        finally:
            os.close(task_r)
            os.close(result_w)
        self.inbox = Connection(task_w, readable=False)  # parent -> worker
        self.outbox = Connection(result_r, writable=False)  # worker -> parent
        self.ready = False
        self.started = time.monotonic()
        # Indices of the answers sent and not yet reported, in the order the worker runs them: the first
        # is the one in flight, and `deadline` is its hard limit.
        self.pending: deque[int] = deque()
        self.deadline = math.inf
        self.set_up: set[str] = set()  # one-time set-ups done in this worker (see `Pool.run`)

    @property
    def task(self) -> int | None:
        """Index of the answer this worker is running (None when idle)."""
        try:
            return self.pending[0]
        except IndexError:  # idle (or emptied meanwhile, when another thread asks)
            return None

    def assign(self, indices: list[int], chunk: list[Task]) -> None:
        """Send a chunk to this (idle) worker; raises OSError when it is dead."""
        # Only an idle worker gets a chunk: it is blocked reading its pipe, so a large message cannot
        # block the parent (a worker stuck in C code with a full pipe would stall the hard limit).
        assert not self.pending
        self.inbox.send(chunk)
        self.pending.extend(indices)

    def kill(self) -> None:
        for conn in (self.inbox, self.outbox):
            conn.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        self.inbox.close()  # the worker exits on EOF
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.outbox.close()


class Pool:
    """Persistent workers with a hard per-task wall-clock limit, each running `entry` (see the module doc)."""

    def __init__(self, num_workers: int, entry: Callable[[int, int], None]) -> None:
        self.pid = os.getpid()
        self.entry = entry
        self.workers = [_Worker(entry) for _ in range(num_workers)]

    def resize(self, num_workers: int) -> None:
        while len(self.workers) < num_workers:
            self.workers.append(_Worker(self.entry))
        while len(self.workers) > num_workers:
            self.workers.pop().stop()

    def shutdown(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self.workers[self.workers.index(worker)] = _Worker(self.entry)

    def _chunk_size(self, unassigned: int) -> int:
        return max(1, min(MAX_CHUNK, unassigned // (CHUNK_SPLIT * len(self.workers))))

    def run(
        self,
        tasks: Sequence[Task],
        hard_limit_s: float,
        on_failure: Callable[[int, str], object],
        progress: bool = False,
        set_up: Callable[[Task], tuple[str, float] | None] | None = None,
    ) -> list:
        """Results of `tasks`, in order; `on_failure(index, "timeout" | "worker-crashed")` stands in for
        the result of a task that overran `hard_limit_s` or crashed its worker twice.

        `set_up(task)` names a one-time set-up the task triggers in a worker and how long it may take
        (e.g. the official grader's parser tables): the first such task in each worker gets that much
        time on top of its hard limit.
        """
        results: list = [None] * len(tasks)
        queue, attempts, remaining = deque(range(len(tasks))), [0] * len(tasks), len(tasks)
        bar = None
        if progress:
            bar = progress_bar(total=len(tasks), desc="grading", unit="answer")

        def finish(index: int, result: object) -> None:
            nonlocal remaining
            results[index] = result
            remaining -= 1
            if bar is not None:
                bar.update(1)

        def start_next(worker: _Worker, now: float) -> None:
            # The worker starts its next answer as soon as it has sent the previous result, so `now` (when
            # the parent sees that result, or sends the chunk) is no earlier than the answer's start: the
            # limit is never short, at most late by the parent's reaction time.
            if not worker.pending:
                worker.deadline = math.inf
                return
            extra = set_up(tasks[worker.pending[0]]) if set_up is not None else None
            if extra is not None and extra[0] not in worker.set_up:
                worker.set_up.add(extra[0])
                worker.deadline = now + hard_limit_s + extra[1]
            else:
                worker.deadline = now + hard_limit_s

        def take_back(worker: _Worker) -> int | None:
            # Replace a worker that died or overran; its queued answers (all but the one in flight, which
            # is returned) go back to the front of the queue, in order: they never started.
            index, rest = worker.task, list(worker.pending)[1:]
            self._replace(worker)
            queue.extendleft(reversed(rest))
            return index

        try:
            while remaining:
                for worker in list(self.workers):
                    if worker.ready and not worker.pending and queue:
                        indices = [queue.popleft() for _ in range(self._chunk_size(len(queue)))]
                        try:
                            worker.assign(indices, [tasks[i] for i in indices])
                        except OSError:  # died while idle: replace it and retry the chunk
                            queue.extendleft(reversed(indices))
                            self._replace(worker)
                            continue
                        start_next(worker, time.monotonic())
                by_conn = {w.outbox: w for w in self.workers}
                now = time.monotonic()
                deadlines = [
                    w.deadline if w.ready else w.started + WORKER_BOOT_TIMEOUT_S for w in self.workers
                ]
                timeout = max(0.0, min(deadlines, default=now + 1.0) - now) if deadlines else 1.0
                for conn in wait(list(by_conn), timeout=min(timeout, 1.0)):
                    worker = by_conn[conn]
                    # Read every result already there: one wake-up of the parent for a burst of results.
                    while True:
                        try:
                            message = conn.recv()
                        except (EOFError, OSError):  # the worker died (crash, OOM kill, ...)
                            if not worker.ready:
                                code = worker.process.wait()
                                self._replace(worker)
                                raise RuntimeError(
                                    f"A grading worker failed to start (exit code {code})."
                                ) from None
                            index = take_back(worker)
                            if index is not None:
                                attempts[index] += 1
                                if attempts[index] < 2:  # one retry: the crash may not be this answer's fault
                                    queue.appendleft(index)
                                else:
                                    finish(index, on_failure(index, "worker-crashed"))
                            break
                        if not worker.ready:
                            worker.ready = message == "ready"
                        else:
                            finish(worker.pending.popleft(), message)
                            start_next(worker, time.monotonic())
                        if not conn.poll():
                            break
                now = time.monotonic()
                for worker in list(self.workers):
                    if worker.pending and now > worker.deadline:
                        index = take_back(worker)
                        logger.warning(
                            "Grading task %d overran its %.1f s hard limit; restarting its worker.",
                            index,
                            hard_limit_s,
                        )
                        finish(index, on_failure(index, "timeout"))
                    elif not worker.ready and now > worker.started + WORKER_BOOT_TIMEOUT_S:
                        raise RuntimeError(
                            f"A grading worker did not start within {WORKER_BOOT_TIMEOUT_S:.0f} s."
                        )
        except BaseException:
            # Interrupted mid-batch (error, KeyboardInterrupt): busy workers hold stale tasks, drop them.
            for worker in list(self.workers):
                if worker.pending:
                    self._replace(worker)
            raise
        finally:
            if bar is not None:
                bar.close()
        return results
