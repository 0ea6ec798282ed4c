"""Progress bars: a live tqdm bar on a terminal, a few plain lines in a file or a pipe."""

from __future__ import annotations

import io

from oneshot_trl import progress
from oneshot_trl.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_to_a_file_a_line_every_tenth_at_most(monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)  # no time gate: the fraction alone decides
    out = io.StringIO()
    for _ in progress_bar(range(10_000), desc="grading", file=out):
        pass
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 10 <= len(lines) <= 13 and all(line.startswith("grading:") for line in lines)
    assert "10000/10000" in lines[-1]


def test_to_a_file_a_bar_shorter_than_the_time_gate_is_one_line(monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY_S", 1e9)  # every update comes before the time gate opens
    out = io.StringIO()
    bar = progress_bar(total=500, desc="generate", file=out, leave=False)  # a log line is never erased
    for _ in range(500):
        bar.update(1)
    bar.close()
    assert out.getvalue().splitlines() == [out.getvalue().strip()] and "500/500" in out.getvalue()


def test_on_a_terminal_the_bar_redraws_in_place():
    out = _Terminal()
    for _ in progress_bar(range(3), desc="x", file=out, mininterval=0):
        pass
    assert "\r" in out.getvalue()


def test_disabled_writes_nothing():
    out = io.StringIO()
    for _ in progress_bar(range(3), file=out, disable=True):
        pass
    assert out.getvalue() == ""
