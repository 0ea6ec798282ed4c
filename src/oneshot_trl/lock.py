"""One writer per output directory: `train` and `eval` hold `run_lock(output_dir)` while they write into it.

The lock is a file (`.oneshot_trl.lock`) holding the writer's PID, host, start time and command, locked with
`fcntl.flock`: the kernel releases it when the process dies however it dies, so a lock left by a killed run is
stale by construction and the next writer takes it over (logged with the dead holder's PID). A second live writer
gets a `RunLocked` (an `InputError`: one line naming the directory and the holder). Re-entrant within a process
(training's in-process evals, the lab's runs one after another). Imports only layout and validate.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from oneshot_trl.layout import LOCK_FILE
from oneshot_trl.validate import InputError

logger = logging.getLogger(__name__)

_held: dict[Path, tuple[int, int]] = {}  # resolved dir -> (fd, depth) of the locks this process holds


class RunLocked(InputError):
    """Another live process writes into the directory."""


def holder(directory: str | os.PathLike) -> dict | None:
    """What the lock file of `directory` says about its (last) holder, or None (no file, unreadable)."""
    try:
        info = json.loads((Path(directory) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')} ({info.get('command', '?')}, since {info.get('started', '?')})"


def _acquire(directory: Path, what: str) -> int:
    path = directory / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise InputError(f"{what} {directory} cannot be written ({err.strerror or err}).") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(
                f"{what} {directory} is in use by {_describe(holder(directory))}: wait for it to finish or "
                f"use another directory (if that process is gone on another host, delete {path})."
            ) from None
        except OSError as err:  # a filesystem without locks: go on unlocked rather than refuse every run
            logger.warning("Cannot lock %s (%s); continuing without a lock.", path, err.strerror)
            return fd
        # The holder we replaced may have deleted the file between our open() and flock(): lock the live one.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def run_lock(
    directory: str | os.PathLike, what: str = "output_dir", command: str = "oneshot-trl"
) -> Iterator[None]:
    """Hold the lock on `directory` (created if missing) for the block; `what` names it in the error, `command`
    (never argv: it may hold a token) is recorded for the next writer's error."""
    directory = Path(directory)
    created = not directory.exists()  # removed again at the end if nothing else was written into it
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file there, no permission, a read-only filesystem: before any work, one line
        raise InputError(f"{what} {directory} cannot be written ({err.strerror or err}).") from None
    key = directory.resolve()
    if key in _held:  # this process already writes here
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    fd = _acquire(directory, what)
    stale = holder(directory)
    if stale and stale.get("pid") != os.getpid():
        logger.warning("%s %s: took over the lock of %s, which is gone.", what, directory, _describe(stale))
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    _held[key] = (fd, 1)
    try:
        yield
    finally:
        if _held.get(key, (fd, 1))[1] <= 1:
            _held.pop(key, None)
            with contextlib.suppress(OSError):
                (directory / LOCK_FILE).unlink()  # before unlocking: the next writer then locks a fresh file
            os.close(fd)
            if created:
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only if empty: a run refused before writing leaves nothing behind
