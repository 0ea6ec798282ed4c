"""Progress bars that suit where they are shown: a live bar on a terminal; to a file or a pipe, a line now and then.

tqdm redraws its bar in place with carriage returns, up to ten times a second; in a log file or a pipe every redraw
stays. `progress_bar` keeps tqdm's bar on a TTY; elsewhere it prints a
plain line at most every `LOG_EVERY_S` seconds and only after another `LOG_EVERY_FRACTION` of the work (so at
most ~10 lines per bar), and one when it ends: a bar shorter than `LOG_EVERY_S` is that one line.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm.auto import tqdm

__all__ = ["is_terminal", "progress_bar"]

LOG_EVERY_S = 20.0
LOG_EVERY_FRACTION = 0.1


class _Lines:
    """A file for tqdm that turns each redraw (`\\r` + bar) into one line and drops the blank clears."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(tqdm):
    """A bar that waits `delay` before its first line, but always writes its last one (tqdm skips it)."""

    def close(self) -> None:
        if not self.disable and getattr(self, "last_print_t", None) is not None:
            self.delay, self.last_print_t = 0.0, self.start_t
        super().close()


def is_terminal(stream: Any = None) -> bool:
    """Whether `stream` (default: stderr, where bars go) is a terminal, where a live bar can redraw in place."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    disable: bool = False,
    leave: bool = True,
    file: IO[str] | None = None,
    **kwargs: Any,
) -> tqdm:
    """`tqdm(iterable, total=, desc=, ...)` that suits its output (see the module doc); `disable` hides it."""
    stream = file if file is not None else sys.stderr
    if disable or is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, disable=disable, leave=leave, file=stream, **kwargs)
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return _LogBar(
        iterable,
        total=total,
        desc=desc,
        file=_Lines(stream),
        delay=LOG_EVERY_S,
        mininterval=LOG_EVERY_S,
        miniters=max(1, math.ceil((total or 0) * LOG_EVERY_FRACTION)),
        maxinterval=math.inf,  # tqdm's monitor thread would otherwise force a line every 10 s
        ascii=True,
        ncols=100,
        leave=True,  # a line in a log is never erased: the last one says where the bar ended
        **kwargs,
    )
