"""Where a training run and an eval keep what: every file name, and the pure path and label functions.

A leaf module (standard library only): the trainer, train, eval, the Hub code, the lab and `run.Run` (the
reader) take their names from here, so a name is defined once.

A training run's output dir:

    output_dir/
      recipe.yaml              the recipe the run was started with                         RECIPE_FILE
      oneshot_run.json         base model (+ revision, commit), examples, reward, grader   RUN_INFO_FILE
      trainer_state.json       the Trainer's final state: global_step, log_history        TRAINER_STATE_FILE
      accuracy_history.jsonl   a row per step and example: step, example_id, index,       HISTORY_FILE
                               accuracy, num_samples (`oneshot-trl select` ranks on it)
      completions.jsonl        a few sampled completions per step: step, example_id,      COMPLETIONS_FILE
                               completion, reward
      hub_pushes.json          what was pushed where (only with push_to_hub)              HUB_PUSHES_FILE
      .oneshot_trl.lock        pid and host of the process writing the run (while it runs) LOCK_FILE
      checkpoint-N/            the Trainer's checkpoint of step N with its own           checkpoint_name(N)
                               trainer_state.json and copies of the run files as of step N;
                               optimizer.pt, scheduler.pt, rng_state*.pth: an exact resume
      eval/step-NNNNNN/        the in-training eval of step N (step 0: the base model),  eval_dir(root, N)
                               an eval dir as below
      config.json, *.safetensors, tokenizer files: the final model

An eval dir (`oneshot-trl eval --output-dir`, or a run's `eval/step-NNNNNN/`):

      results.json             metrics, protocol + hash, grader, versions, commit sha     RESULTS_FILE
      samples.jsonl            one row per finished problem, every response graded        SAMPLES_FILE
      run.json                 model and protocol of the samples (checked on resume)      EVAL_RUN_FILE
      audit.jsonl              the graders' disagreements (--audit)                       AUDIT_FILE
    and, for several revisions, `<revision>/` eval dirs and revisions.{json,md,png}       SUMMARY_STEM

A Hub repo of a run (pushed by `hub.push.HubPushCallback`): branch `step-NNNNNN` holds checkpoint-N's model
files at its root, the run files (accuracy_history.jsonl only up to step N) and eval/step-NNNNNN/results.json;
`main` holds the final model, the run files and every eval/*/results.json. Step labels are zero padded to
six digits so that they sort by step; eval dirs and branches share them.
"""

from __future__ import annotations

import re
from pathlib import Path

# ---- a training run ------------------------------------------------------------------------------------------
RECIPE_FILE = "recipe.yaml"
RUN_INFO_FILE = "oneshot_run.json"
TRAINER_STATE_FILE = "trainer_state.json"
HISTORY_FILE = "accuracy_history.jsonl"
COMPLETIONS_FILE = "completions.jsonl"
HUB_PUSHES_FILE = "hub_pushes.json"
EVAL_DIR = "eval"
CHECKPOINT_PREFIX = "checkpoint-"  # the Trainer's name (transformers' PREFIX_CHECKPOINT_DIR)
# What the Trainer saves into a checkpoint beside the weights, needed for an exact resume (transformers' names)
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
TRAINING_ARGS_FILE = "training_args.bin"
LOCK_FILE = ".oneshot_trl.lock"  # the one writer's pid and host (lock.run_lock), while it writes

# ---- an eval dir ----------------------------------------------------------------------------------------------
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
EVAL_RUN_FILE = "run.json"
AUDIT_FILE = "audit.jsonl"
SUMMARY_STEM = "revisions"  # <output-dir>/revisions.{json,md,png} for --revisions / --all-revisions

# The small files that describe a run (uploaded with every revision, read by analyze, card and select).
RUN_FILES = (TRAINER_STATE_FILE, HISTORY_FILE, COMPLETIONS_FILE, RUN_INFO_FILE, RECIPE_FILE)
# What to download of a Hub revision to read it as a run: everything but the weights.
SMALL_FILE_PATTERNS = (
    *RUN_FILES,
    f"{CHECKPOINT_PREFIX}*/{TRAINER_STATE_FILE}",
    RESULTS_FILE,
    SAMPLES_FILE,
    f"*/{RESULTS_FILE}",
    f"*/{SAMPLES_FILE}",
)

STEP_BRANCH_RE = re.compile(r"^step-(\d+)$")
_CHECKPOINT_RE = re.compile(re.escape(CHECKPOINT_PREFIX) + r"(\d+)")
_STEP_LABEL_RE = re.compile(r"(?:^|[-_/])(?:step|checkpoint|global_step)?[-_]?0*(\d+)$")


def step_branch(step: int) -> str:
    """The label of step N: its eval dir `eval/step-000020` and its Hub branch `step-000020`."""
    return f"step-{int(step):06d}"


def step_from_label(label: str | None) -> int | None:
    """`step-000020` -> 20, `checkpoint-20` -> 20, `main` (or None) -> None."""
    match = _STEP_LABEL_RE.search(label or "")
    return int(match.group(1)) if match else None


def checkpoint_name(step: int) -> str:
    """The Trainer's folder of the checkpoint of `step`: `checkpoint-20`."""
    return f"{CHECKPOINT_PREFIX}{int(step)}"


def checkpoint_dirs(root: str | Path) -> dict[int, Path]:
    """The `checkpoint-N` folders of a local run dir by step, in step order."""
    steps = {}
    for path in Path(root).glob(f"{CHECKPOINT_PREFIX}*"):
        match = _CHECKPOINT_RE.fullmatch(path.name)
        if match and path.is_dir():
            steps[int(match.group(1))] = path
    return dict(sorted(steps.items()))


def revision_dirs(root: str | Path, revision: str) -> list[Path]:
    """Where a local run dir keeps what its Hub repo has at `revision` (step-N: checkpoint-N), in order."""
    candidates = [Path(root) / revision]
    match = STEP_BRANCH_RE.match(revision)
    if match:
        candidates.insert(0, Path(root) / checkpoint_name(int(match.group(1))))
    return candidates


def rng_state_files(world_size: int) -> list[str]:
    """The Trainer's RNG state file(s) of a checkpoint: one, or one per process."""
    if world_size <= 1:
        return ["rng_state.pth"]
    return [f"rng_state_{rank}.pth" for rank in range(world_size)]


def checkpoint_state_file(step: int) -> str:
    """The run-relative name of checkpoint-`step`'s trainer_state.json."""
    return f"{checkpoint_name(step)}/{TRAINER_STATE_FILE}"


def eval_results_file(step: int) -> str:
    """The run-relative name of the results.json of the in-training eval of `step` (also its path in the
    Hub revisions that carry it)."""
    return f"{EVAL_DIR}/{step_branch(step)}/{RESULTS_FILE}"


def eval_dir(root: str | Path, step: int) -> Path:
    """Where the in-training eval of `step` goes (the Hub branch of that checkpoint is named the same)."""
    return Path(root) / EVAL_DIR / step_branch(step)


def safe_name(text: str) -> str:
    """A model id or revision as one folder name (`user/model` -> `user_model`), for default output dirs."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/")).strip("_") or "model"
