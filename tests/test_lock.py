"""lock.run_lock: one writer per output dir, a dead holder's lock taken over."""

from __future__ import annotations

import json
import logging
import os

import pytest
from support import start_holder

from oneshot_trl.lock import LOCK_FILE, RunLocked, holder, run_lock
from oneshot_trl.validate import InputError


def test_second_writer_gets_one_line_naming_the_holder(tmp_path):
    proc = start_holder(tmp_path / "run")
    try:
        with pytest.raises(RunLocked) as info, run_lock(tmp_path / "run"):
            pass
        message = str(info.value)
        assert isinstance(info.value, InputError) and "\n" not in message
        assert (
            str(tmp_path / "run") in message
            and f"pid {proc.pid}" in message
            and "oneshot-trl train" in message
        )
    finally:
        proc.communicate("\n")
    assert proc.returncode == 0
    assert not (tmp_path / "run" / LOCK_FILE).exists()  # released: the file goes with it
    with run_lock(tmp_path / "run"):
        assert holder(tmp_path / "run")["pid"] == os.getpid()


def test_a_killed_holders_lock_is_taken_over(tmp_path, caplog):
    proc = start_holder(tmp_path)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    proc.stdin.close()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == proc.pid  # left behind
    with caplog.at_level(logging.WARNING, logger="oneshot_trl.lock"), run_lock(tmp_path):
        assert holder(tmp_path)["pid"] == os.getpid()
    assert f"pid {proc.pid}" in caplog.text and "gone" in caplog.text


def test_reentrant_in_one_process(tmp_path):
    with run_lock(tmp_path):
        with run_lock(tmp_path / "."):  # the same dir, another spelling
            pass
        assert holder(tmp_path)["pid"] == os.getpid()  # the inner exit did not release it
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_directory_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"output_dir .*file cannot be written"), run_lock(tmp_path / "file"):
        pass
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores permissions: nothing to test there
            return
        with pytest.raises(InputError, match="cannot be written"), run_lock(tmp_path / "new"):
            pass
    finally:
        os.chmod(tmp_path, 0o700)


def test_a_second_eval_into_the_same_output_dir_is_refused(tmp_path, tiny_model_dir):
    from oneshot_trl.eval import cli as eval_cli

    holder = start_holder(tmp_path / "eval")  # an eval (or a run) writing there
    try:
        with pytest.raises(
            RunLocked, match=rf"--output-dir {tmp_path / 'eval'} is in use by pid {holder.pid}"
        ):
            eval_cli.main(["--model", str(tiny_model_dir), "--benchmarks", "math500", "--limit", "1",
                           "--max-new-tokens", "2", "--backend", "transformers", "--output-dir",
                           str(tmp_path / "eval"), "--no-progress"])  # fmt: skip
    finally:
        holder.communicate("\n")
    assert not (tmp_path / "eval").exists()  # the refused eval wrote nothing: the holder's dir went with it
