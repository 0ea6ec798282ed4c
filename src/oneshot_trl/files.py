"""Files shipped in the package, JSONL reading and atomic writes (dependency-free: cheap to import from any
command).

Every file a command writes goes through `atomic_writer` / `atomic_write_text`: the text goes to a temporary
file in the target's directory, is flushed and fsynced, and only then renamed over the target (`os.replace`, atomic
on POSIX). A write that fails (full disk, file-size limit, Ctrl-C) removes the temporary file and leaves the
target as it was; the error is a `WriteError` (an OSError) whose message is one line naming the path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)


def resource_path(*parts: str) -> Path:
    """Path of a file shipped in the package (`oneshot_trl/resources/...`)."""
    return Path(str(resources.files("oneshot_trl").joinpath("resources", *parts)))


def iter_jsonl(
    lines: Iterable[str | bytes], where: str, *, skip_invalid: bool = False
) -> Iterator[tuple[int, Any]]:
    """(line number, row) of JSONL `lines` (str, or bytes decoded line by line; blank lines skipped); `where`
    names them in messages. The one JSONL reader: a line that is not UTF-8 or not JSON is a ValueError naming
    `where:line`, or, with `skip_invalid`, logged and skipped: a run killed mid-write leaves a torn last line
    (possibly cut inside a multi-byte character), and the rows before it are still good. Skipped lines are never
    silent: one warning gives their count and the first one's number."""
    skipped: list[tuple[int, str]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            kind = "UTF-8" if isinstance(err, UnicodeDecodeError) else "JSON"
            if not skip_invalid:
                raise ValueError(f"{where}:{lineno} is not valid {kind} ({err}).") from None
            skipped.append((lineno, kind))
    if skipped:
        (first, kind), count = skipped[0], len(skipped)
        logger.warning(
            "%s:%d is not valid %s (interrupted write?): %d unreadable line(s) skipped, the first at line %d.",
            where, first, kind, count, first,
        )  # fmt: skip


def parse_jsonl(
    lines: Iterable[str | bytes], where: str, *, skip_invalid: bool = False
) -> list[dict[str, Any]]:
    """The rows of JSONL `lines` (see `iter_jsonl`)."""
    return [row for _, row in iter_jsonl(lines, where, skip_invalid=skip_invalid)]


def read_jsonl(path: str | Path, *, skip_invalid: bool = False) -> list[dict[str, Any]]:
    """The rows of a JSONL file (see `iter_jsonl`): read as bytes, so a bad byte is named, not a crash."""
    with open(path, "rb") as f:
        return parse_jsonl(f, str(path), skip_invalid=skip_invalid)


# --- atomic writes --------------------------------------------------------------------------------------------


class WriteError(OSError):
    """A write that failed and left its target as it was; str() is one line naming the path (for `fail`)."""

    def __init__(
        self, path: str | os.PathLike, err: BaseException, kept: str = "it was left as it was"
    ) -> None:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err) or type(err).__name__
        errno = err.errno if isinstance(err, OSError) else None
        super().__init__(errno, " ".join(f"could not write {path} ({reason}); {kept}".split()))
        self.path = str(path)

    def __str__(self) -> str:
        return str(self.strerror)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether paths `a` and `b` name the same file (the same inode when both exist: links and `./` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare what they would resolve to
        return Path(a).resolve() == Path(b).resolve()


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """A file object (text with mode "w", bytes with "wb") whose content replaces `path` when the block ends
    without an error; on an error (or an interrupt) `path` is untouched, the temporary file is removed, and an
    OSError is raised as `WriteError`. The new file gets the permissions an ordinary open() would give (umask)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise WriteError(path, err) from err
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(path, err) from err
        raise
    with contextlib.suppress(
        OSError
    ):  # make the rename itself durable (best effort: not on every filesystem)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """Replace `path` by `text` atomically (see `atomic_writer`)."""
    with atomic_writer(path, "w", encoding=encoding) as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` by `data` atomically (see `atomic_writer`)."""
    with atomic_writer(path, "wb") as f:
        f.write(data)
