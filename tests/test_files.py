"""files.atomic_writer: a failed write leaves the target and its directory as they were."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from oneshot_trl.files import WriteError, atomic_write_bytes, atomic_write_text, atomic_writer, same_file


def test_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new ünïcode")
    assert target.read_text(encoding="utf-8") == "new ünïcode"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary file left behind


def test_new_file_gets_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644


def test_an_error_inside_the_block_leaves_the_target(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("row 1\nrow 2\n")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "row 1\nrow 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_an_interrupt_leaves_the_target(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("kept")
    with pytest.raises(KeyboardInterrupt), atomic_writer(target) as f:
        f.write("partial")
        raise KeyboardInterrupt
    assert target.read_text() == "kept"
    assert len(list(tmp_path.iterdir())) == 1


def test_unwritable_directory_is_one_line_naming_the_path(tmp_path):
    missing = tmp_path / "no" / "such" / "out.txt"
    with pytest.raises(WriteError) as info:
        atomic_write_text(missing, "x")
    assert str(missing) in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, OSError)


def test_file_size_limit_keeps_the_original(tmp_path):
    """A write past RLIMIT_FSIZE (SIGXFSZ ignored, so write() fails with EFBIG) keeps the old content."""
    target = tmp_path / "data.jsonl"
    original = "".join(f'{{"row": {i}}}\n' for i in range(200))
    target.write_text(original)
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from oneshot_trl.files import WriteError, atomic_write_text
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            atomic_write_text({str(target)!r}, "x" * 100_000)
        except WriteError as err:
            print(err)
            sys.exit(3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert str(target) in proc.stdout and "left as it was" in proc.stdout
    assert target.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_same_file(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text("x")
    os.link(a, tmp_path / "hard.jsonl")
    assert same_file(a, tmp_path / "." / "a.jsonl")
    assert same_file(a, tmp_path / "hard.jsonl")
    assert not same_file(a, tmp_path / "b.jsonl")
    assert same_file(tmp_path / "new.jsonl", tmp_path / "sub" / ".." / "new.jsonl")
