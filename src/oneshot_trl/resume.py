"""Which checkpoint a training run resumes from, exact or refused (before the model loads).

- `resume_from_checkpoint: true` takes the newest *intact* `checkpoint-N` (readable trainer_state.json, weights
  present and whole); a damaged newer one is skipped with a WARNING naming what is wrong.
- A checkpoint without the state an exact resume needs (optimizer.pt, scheduler.pt, rng_state*.pth) is refused,
  naming what is missing, unless `resume_inexact: true`.
- A run that already reached max_steps is finished: resuming it does nothing (`RunFinished`).
- A run dir that holds a run (checkpoints, trainer state, history, weights) is never restarted from step 0 without
  `overwrite_output_dir: true`, whether or not a resume was asked for.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from oneshot_trl.files import WriteError
from oneshot_trl.layout import (
    COMPLETIONS_FILE,
    HISTORY_FILE,
    OPTIMIZER_FILE,
    SCHEDULER_FILE,
    TRAINER_STATE_FILE,
    checkpoint_dirs,
    checkpoint_name,
    rng_state_files,
)
from oneshot_trl.validate import InputError, check_training_dirs, check_weights

logger = logging.getLogger("oneshot_trl.train")

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
# Files whose presence means a run trained here (recipe.yaml and oneshot_run.json are written before step 1).
TRAINED_FILES = (TRAINER_STATE_FILE, HISTORY_FILE, COMPLETIONS_FILE)


class RunFinished(Exception):
    """The run in output_dir already reached max_steps: nothing to do (str: the one line that says so)."""


def resume_requested(training_args: Any) -> bool:
    """Whether resume_from_checkpoint asks for a resume (true or a path)."""
    return training_args.resume_from_checkpoint not in (None, False, "false", "False", "")


def trainer_step(path: Path) -> int:
    """global_step of a trainer_state.json; ValueError (naming the file) if unreadable."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return int(state["global_step"])
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a valid trainer state ({type(err).__name__})") from None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What makes `checkpoint` unusable (no or unreadable trainer state, no or cut weights), or None."""
    try:
        trainer_step(checkpoint / TRAINER_STATE_FILE)
    except FileNotFoundError:
        return f"it has no {TRAINER_STATE_FILE} (saving was interrupted)"
    except ValueError as err:
        return str(err)
    if not any(p for pattern in WEIGHT_PATTERNS for p in checkpoint.glob(pattern)) and not any(
        checkpoint.glob("global_step*")  # DeepSpeed's own layout
    ):
        return "it has no model weights"
    try:
        check_weights(checkpoint)
    except InputError as err:
        return str(err)
    return None


def missing_exact_state(checkpoint: Path, world_size: int = 1) -> list[str]:
    """The files an exact resume needs that `checkpoint` lacks (optimizer, scheduler, RNG of every rank)."""
    deepspeed = any(checkpoint.glob("global_step*"))  # optimizer (and scheduler) inside DeepSpeed's folder
    missing = []
    if not deepspeed:
        missing += [name for name in (OPTIMIZER_FILE, SCHEDULER_FILE) if not (checkpoint / name).is_file()]
    missing += [name for name in rng_state_files(world_size) if not (checkpoint / name).is_file()]
    return missing


def holds_a_run(output_dir: str | os.PathLike) -> list[str]:
    """The names in `output_dir` that show a run trained there (empty: nothing to lose)."""
    root = Path(output_dir)
    found = [p.name for p in checkpoint_dirs(root).values()]
    found += [name for name in TRAINED_FILES if (root / name).is_file()]
    found += sorted(p.name for pattern in WEIGHT_PATTERNS for p in root.glob(pattern))
    return found


def finished_step(output_dir: str | os.PathLike, max_steps: int) -> int | None:
    """The final step of a run that reached `max_steps` in `output_dir` (its final trainer state, or its newest
    intact checkpoint), or None if it is not finished."""
    root = Path(output_dir)
    steps = []
    try:
        steps.append(trainer_step(root / TRAINER_STATE_FILE))
    except (OSError, ValueError):
        pass
    for checkpoint in reversed(checkpoint_dirs(root).values()):
        if checkpoint_problem(checkpoint) is None:
            steps.append(trainer_step(checkpoint / TRAINER_STATE_FILE))
            break
    done = [s for s in steps if max_steps > 0 and s >= max_steps]
    return max(done) if done else None


def newest_intact_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint without a `checkpoint_problem`; each newer damaged one is named in a WARNING."""
    for checkpoint in reversed(checkpoint_dirs(output_dir).values()):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        logger.warning("%s is damaged (%s); falling back to an older checkpoint.", checkpoint, problem)
    return None


def interrupted_note(output_dir: str | os.PathLike, step: int) -> str:
    """What a Ctrl-C at `step` kept and how to go on (the CLI prints it on one line, exit 130)."""
    kept = newest_intact_checkpoint(output_dir)
    if kept is None:
        return (
            f"at step {step}, before any checkpoint of {output_dir}: rerun with --overwrite_output_dir true."
        )
    return f"at step {step}; kept {kept}: rerun the same command with --resume_from_checkpoint true to resume"


def resolve_checkpoint(training_args: Any) -> str | None:
    """The checkpoint to resume from (None: a fresh start), after every check that can refuse the run:
    InputError (one line naming the problem and the explicit way on) or RunFinished."""
    output_dir = training_args.output_dir
    resume = training_args.resume_from_checkpoint
    overwrite = bool(training_args.overwrite_output_dir)
    if not resume_requested(training_args):
        check_training_dirs(training_args, resume=False)  # another run's checkpoints: named as such
        existing = holds_a_run(output_dir)
        if existing and not overwrite:
            raise InputError(
                f"output_dir {output_dir} already holds a run ({', '.join(existing[:3])}"
                f"{', ...' if len(existing) > 3 else ''}): set resume_from_checkpoint: true to continue it, "
                "overwrite_output_dir: true to start over (its checkpoints are deleted), or another output_dir."
            )
        return None
    if resume in (True, "true", "True"):
        done = finished_step(output_dir, training_args.max_steps)
        if done is not None:
            raise RunFinished(
                f"{output_dir} is already finished (step {done}, max_steps {training_args.max_steps}): nothing to "
                "do. Raise max_steps to train on, or use another output_dir."
            )
        found = newest_intact_checkpoint(output_dir)
        if found is None:
            existing = holds_a_run(output_dir)
            if existing and not overwrite:
                raise InputError(
                    f"resume_from_checkpoint: true, but output_dir {output_dir} holds a run "
                    f"({', '.join(existing[:3])}) and no intact checkpoint to resume from: set "
                    "overwrite_output_dir: true to start over, or another output_dir."
                )
            logger.warning(
                "resume_from_checkpoint: true but %s has no checkpoint yet: starting fresh.", output_dir
            )
            return None
        checkpoint = found
    else:
        checkpoint = Path(resume)
        if not checkpoint.is_dir():
            raise InputError(f"resume_from_checkpoint={resume!r} is not a checkpoint directory.")
        if not (checkpoint / TRAINER_STATE_FILE).is_file():
            raise InputError(
                f"resume_from_checkpoint={resume!r} has no trainer_state.json: saving it was interrupted."
            )
        problem = checkpoint_problem(checkpoint)
        if problem is not None:
            raise InputError(f"resume_from_checkpoint={resume!r} cannot be resumed: {problem}.")
        step = trainer_step(checkpoint / TRAINER_STATE_FILE)
        if training_args.max_steps > 0 and step >= training_args.max_steps:
            raise RunFinished(
                f"{checkpoint} is at step {step}, max_steps is {training_args.max_steps}: nothing to do. "
                "Raise max_steps to train on."
            )
    missing = missing_exact_state(checkpoint, training_args.world_size)
    if missing:
        if not getattr(training_args, "resume_inexact", False):
            raise InputError(
                f"{checkpoint} lacks {', '.join(missing)}, so resuming from it would not continue the run exactly "
                "(optimizer moments and sampling restart): set resume_inexact: true (--resume_inexact true) to "
                "resume anyway, or resume from a checkpoint saved with save_only_model: false."
            )
        logger.warning(
            "Resuming from %s without %s (resume_inexact: true): Adam's moments and the sampling RNG restart, so "
            "the run differs from an uninterrupted one.",
            checkpoint,
            ", ".join(missing),
        )
    return str(checkpoint)


def clear_for_fresh_start(training_args: Any) -> None:
    """overwrite_output_dir on a fresh start: delete the previous run's checkpoints (main process only)."""
    if resume_requested(training_args) or not training_args.overwrite_output_dir:
        return
    if training_args.process_index != 0:
        return
    for old in checkpoint_dirs(training_args.output_dir).values():
        logger.warning("overwrite_output_dir: deleting %s of a previous run.", old)
        shutil.rmtree(old)
    for name in TRAINED_FILES:  # its history would otherwise be trimmed, its state read as this run's
        (Path(training_args.output_dir) / name).unlink(missing_ok=True)


def is_write_failure(err: BaseException) -> bool:
    """An error of a failed write: an OSError, or torch's RuntimeError / safetensors' SafetensorError wrapping one
    (full disk, file-size limit, I/O error)."""
    if isinstance(err, OSError):
        return True
    text = str(err).lower()
    return any(
        s in text for s in ("file too large", "no space left", "i/o error", "write failed", "failed writing")
    )


def checkpoint_write_error(
    output_dir: Path, step: int, err: BaseException, delete: bool = True
) -> WriteError:
    """The one-line error of a checkpoint save that failed (full disk, file-size limit), naming the path and what
    is kept; with `delete` (the main process) the half-written checkpoint goes, so a resume takes the previous one."""
    checkpoint = output_dir / checkpoint_name(step)
    path = getattr(err, "filename", None) or checkpoint
    if delete and checkpoint.is_dir() and checkpoint_problem(checkpoint) is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    previous = [
        p for s, p in checkpoint_dirs(output_dir).items() if s < step and checkpoint_problem(p) is None
    ]
    kept = (
        f"deleted the incomplete {checkpoint.name}; kept {previous[-1]}: free space, then resume with "
        "--resume_from_checkpoint true"
        if previous
        else f"deleted the incomplete {checkpoint.name}; no earlier checkpoint: free space and start over"
    )
    return WriteError(path, err, kept)
