"""`oneshot-trl`'s one error path (oneshot_trl.cli.run_command): an InputError raised anywhere in a command is one
line and exit 2, a failed write one line and exit 1, Ctrl-C one line (what was kept, how to resume) and exit 130."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from oneshot_trl import cli
from oneshot_trl.files import WriteError
from oneshot_trl.validate import InputError

TOKEN = "hf_cliTESTsecret000001"


@pytest.fixture
def command(monkeypatch):
    """Registers `oneshot-trl fake`, whose main raises what the test sets (deep in a helper, as real code does)."""
    module = types.ModuleType("oneshot_trl_fake_command")
    raised: dict[str, BaseException | None] = {"error": None}

    def helper() -> None:
        if raised["error"] is not None:
            raise raised["error"]

    def main(argv: list[str]) -> int:
        helper()
        return 0

    module.main = main
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "fake", (module.__name__, "a test command"))
    return raised


def _stderr_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err and captured.out == ""
    return err


def test_an_input_error_anywhere_is_one_line_and_exit_2(command, capsys):
    command["error"] = InputError("--foo is 3;\n  it must be 1 or 2.")
    assert cli.main(["fake", "--foo", "3"]) == 2
    assert _stderr_line(capsys) == "oneshot-trl fake: error: --foo is 3; it must be 1 or 2."


def test_a_token_given_as_a_flag_is_scrubbed_from_the_error(command, capsys):
    command["error"] = InputError(f"cannot use {TOKEN} for this repo")
    assert cli.main(["fake", "--hub_token", TOKEN]) == 2
    assert TOKEN not in _stderr_line(capsys)


def test_a_failed_write_is_one_line_naming_the_path_and_exit_1(command, capsys, tmp_path):
    command["error"] = WriteError(tmp_path / "out.jsonl", OSError(27, "File too large"))
    assert cli.main(["fake"]) == 1
    assert _stderr_line(capsys) == (
        f"oneshot-trl fake: error: could not write {tmp_path / 'out.jsonl'} (File too large); it was left as it was"
    )


def test_ctrl_c_is_one_line_with_the_commands_note_and_exit_130(command, capsys):
    command["error"] = KeyboardInterrupt(
        "samples of 12 problems kept in out/; rerun the same command to resume."
    )
    assert cli.main(["fake"]) == 130
    assert _stderr_line(capsys) == (
        "oneshot-trl fake: interrupted: samples of 12 problems kept in out/; rerun the same command to resume."
    )
    command["error"] = KeyboardInterrupt()  # a command that knows nothing more
    assert cli.main(["fake"]) == 130
    assert _stderr_line(capsys) == "oneshot-trl fake: interrupted: nothing more was written"


def test_other_errors_keep_their_traceback(command):
    command["error"] = RuntimeError("a bug")  # not an input error: the traceback is what a bug report needs
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["fake"])


def test_unknown_command_and_real_commands_through_the_path(capsys, tmp_path):
    assert cli.main(["nope"]) == 2
    assert capsys.readouterr().err.startswith("oneshot-trl: error: unknown command 'nope'.")
    # a real command's library error (models.ModelResolutionError, an InputError) through the same path
    assert cli.main(["analyze", str(tmp_path / "missing-run")]) == 2
    assert _stderr_line(capsys).startswith("oneshot-trl analyze: error: ")


def test_python_dash_m_train_goes_through_the_same_path(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "oneshot_trl.train", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("oneshot-trl train: error: ") and "missing.yaml" in err[-1]
    assert "Traceback" not in proc.stderr


def test_an_empty_eval_dataset_is_one_line_before_any_model_loads(tiny_model_dir, tmp_path, capsys):
    for name, text in (("empty.jsonl", ""), ("blank.json", "\n \n")):
        (tmp_path / name).write_text(text)
        argv = ["eval", "--model", str(tiny_model_dir), "--dataset", str(tmp_path / name), "--dry-run"]
        assert cli.main(argv) == 2
        assert (
            _stderr_line(capsys) == f"oneshot-trl eval: error: --dataset {tmp_path / name} is empty: no rows."
        )
