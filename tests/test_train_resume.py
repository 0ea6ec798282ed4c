"""A training run's directory is never harmed: resume exact or refused, one writer, Ctrl-C and full disks end in
one line and leave the last intact checkpoint (issue 26 items 3, 4, 6)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import ENV, start_holder, train_in_process

from oneshot_trl import train
from oneshot_trl.cli import run_command
from oneshot_trl.layout import OPTIMIZER_FILE, TRAINER_STATE_FILE
from oneshot_trl.recipe import parse_recipe

REPO = Path(__file__).resolve().parents[1]


def cli(recipe: Path, *flags: str) -> subprocess.CompletedProcess:
    """`oneshot-trl train RECIPE FLAGS` as a user runs it (the CLI's one error path)."""
    return subprocess.run(
        [sys.executable, "-m", "oneshot_trl.cli", "train", str(recipe), *flags],
        env=ENV, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if "oneshot-trl train" in line]
    assert len(lines) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def weights_of(folder: Path) -> bytes:
    return (folder / "model.safetensors").read_bytes()


# --- before any model loads: refusals that need no training ----------------------------------------------------


def test_second_writer_is_refused_in_one_line(make_recipe, tmp_path, capsys):
    holder = start_holder(tmp_path / "run")  # another `oneshot-trl train` writing into output_dir
    try:
        assert run_command("train", [str(make_recipe())]) == 2
    finally:
        holder.communicate("\n")
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"pid {holder.pid}" in err and str(tmp_path / "run") in err
    assert not (tmp_path / "run" / TRAINER_STATE_FILE).exists()


@pytest.mark.parametrize(
    ("overrides", "env", "needle"),
    [
        (
            {"hub_model_id": "user/bad name!"},
            {"HF_TOKEN": "hf_fakeTOKENforTHEtest"},
            "hub_model_id 'user/bad name!'",
        ),
        ({"hub_model_id": "a/b/c"}, {"HF_TOKEN": "hf_fakeTOKENforTHEtest"}, "hub_model_id 'a/b/c'"),
        ({"hub_model_id": "user/ok"}, {}, "needs a Hub token"),
    ],
)
def test_hub_target_checked_before_the_model_loads(
    make_recipe, tmp_path, monkeypatch, capsys, overrides, env, needle
):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no `hf auth login` token either
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert run_command("train", [str(make_recipe(push_to_hub=True, **overrides))]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_run_dir_whose_only_checkpoint_is_damaged_is_not_restarted(make_recipe, tmp_path, capsys):
    checkpoint = tmp_path / "run" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / TRAINER_STATE_FILE).write_text('{"global_st')  # truncated
    assert run_command("train", [str(make_recipe(resume_from_checkpoint=True))]) == 2
    err = capsys.readouterr().err
    assert "no intact checkpoint" in err and "overwrite_output_dir: true" in err
    assert checkpoint.is_dir()  # nothing deleted


# --- trained runs -----------------------------------------------------------------------------------------------


@pytest.fixture
def trained(make_recipe, tmp_path):
    """A finished 2-step run with checkpoints at steps 1 and 2 (exactly resumable)."""
    recipe = make_recipe(max_steps=2, save_steps=1)
    train_in_process(recipe)
    return recipe, tmp_path / "run"


@pytest.mark.slow
def test_resume_of_a_finished_run_does_nothing(trained):
    recipe, run = trained
    before = weights_of(run)
    proc = cli(recipe, "--resume_from_checkpoint", "true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already finished (step 2, max_steps 2): nothing to do" in proc.stdout
    assert weights_of(run) == before and not (run / "checkpoint-3").exists()
    # and a fresh start over it is refused, naming the explicit way
    one_line_error(cli(recipe), "holds another run", "overwrite_output_dir")


@pytest.mark.slow
def test_missing_optimizer_is_refused_then_resumed_inexactly_on_request(trained):
    recipe, run = trained
    (run / "checkpoint-2" / OPTIMIZER_FILE).unlink()
    proc = cli(recipe, "--max_steps", "3", "--resume_from_checkpoint", str(run / "checkpoint-2"))
    assert proc.returncode == 2
    one_line_error(proc, "lacks optimizer.pt", "resume_inexact: true")
    assert not (run / "checkpoint-3").exists()
    _, training_args, _, _ = parse_recipe(
        [str(recipe), "--max_steps", "3", "--resume_from_checkpoint", "true", "--resume_inexact", "true"]
    )
    assert train.resolve_checkpoint(training_args) == str(run / "checkpoint-2")


@pytest.mark.slow
def test_damaged_newest_checkpoint_falls_back_with_a_warning(trained, caplog):
    recipe, run = trained
    (run / "checkpoint-2" / TRAINER_STATE_FILE).write_text('{"global_step": 2, "log_')  # cut mid-write
    _, training_args, _, _ = parse_recipe(
        [str(recipe), "--max_steps", "3", "--resume_from_checkpoint", "true"]
    )
    with caplog.at_level(logging.WARNING, logger="oneshot_trl"):
        assert train.resolve_checkpoint(training_args) == str(run / "checkpoint-1")
    assert "checkpoint-2 is damaged" in caplog.text
    assert all(r.levelno == logging.WARNING for r in caplog.records if "damaged" in r.message)


@pytest.mark.slow
def test_ctrl_c_keeps_the_checkpoint_says_how_to_resume_and_exits_130(make_recipe, tmp_path):
    recipe = make_recipe(max_steps=200, save_steps=1)
    # Ctrl-C's default in the child, as a user's shell gives it: a suite started in the background (`cmd &`,
    # nohup) inherits SIGINT ignored and Python keeps an inherited SIG_IGN, so the run never saw the signal (it
    # trained to its last step and exited 0) although a terminal's Ctrl-C stops it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "oneshot_trl.cli", "train", str(recipe)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    run = tmp_path / "run"  # any checkpoint (retention may already have deleted checkpoint-1)
    deadline = time.monotonic() + 600
    while (
        not any(run.glob(f"checkpoint-*/{TRAINER_STATE_FILE}"))
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)  # polls a file the run writes: no assumption about how fast it trains
    assert proc.poll() is None, "the run ended before the first checkpoint was seen"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if "interrupted" in line]
    assert "checkpoint-" in line and "--resume_from_checkpoint true" in line
    assert not (tmp_path / "run" / ".oneshot_trl.lock").exists()  # the lock went with the process


FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from oneshot_trl.cli import run_command
    from oneshot_trl.trainer import OneShotGRPOTrainer

    save = OneShotGRPOTrainer._save_checkpoint

    def save_on_a_full_disk(self, model, trial):
        if self.state.global_step == 2:  # the disk fills up after checkpoint-1
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
        return save(self, model, trial)

    OneShotGRPOTrainer._save_checkpoint = save_on_a_full_disk
    sys.exit(run_command("train", sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(make_recipe, tmp_path):
    recipe = make_recipe(max_steps=3, save_steps=1)
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(recipe)], env=ENV, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = one_line_error(proc, "could not write", str(tmp_path / "run"), "kept", "checkpoint-1")
    assert "checkpoint-2" in line  # the path that failed
    run = tmp_path / "run"
    assert not (run / "checkpoint-2").exists()  # the half-written one is gone ...
    assert (
        json.loads((run / "checkpoint-1" / TRAINER_STATE_FILE).read_text())["global_step"] == 1
    )  # ... not this
    _, training_args, _, _ = parse_recipe([str(recipe), "--resume_from_checkpoint", "true"])
    assert train.resolve_checkpoint(training_args) == str(run / "checkpoint-1")
    assert not os.path.exists(run / ".oneshot_trl.lock")
