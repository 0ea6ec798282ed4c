"""Helpers shared by several test modules (pytest's conftest.py holds the fixtures; plain helpers live here).

Imported by name (`from support import ...`): pytest puts tests/ on sys.path (rootdir-relative, no package).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

from huggingface_hub.errors import EntryNotFoundError

REPO = Path(__file__).resolve().parents[1]  # the repository root
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def train_in_process(recipe: Path, *flags: str):
    """`python -m oneshot_trl.train RECIPE FLAGS...` in this process (the training stack imported on first use)."""
    from oneshot_trl.recipe import parse_recipe
    from oneshot_trl.train import main as train_main

    return train_main(*parse_recipe([str(recipe), *flags]))


def doctor(argv: list[str]) -> int:
    """`oneshot-trl doctor ARGV` in process, through the CLI's one error path (exit 2 and one line on bad input)."""
    from oneshot_trl.cli import run_command

    return run_command("doctor", argv)


def one_line_error(capsys, *needles: str) -> str:
    """The command's stderr (captured by pytest's `capsys`) is one line, no traceback, holding every needle."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# A synthetic training run dir (analysis tests) ------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


EXAMPLE = "dsr_sub:124"


COMPLETIONS = {
    1: [
        "Wait, let me recheck this. wait... The answer is \\boxed{3}.",  # wait x2, recheck x1
        "The answer is 5.",
    ],
    2: [
        "Let me rethink and re-evaluate; double-check: verify it. I will check  again. \\boxed{12.8}",
        "Awaited, unverifiable, prechecked: WAITING is not wait-free",  # whole words only: 'wait' (in wait-free)
    ],
}


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def log_entry(step: int, acc: float) -> dict:
    return {
        "step": step,
        "epoch": float(step),
        "loss": 0.01 * step,
        "learning_rate": 1e-6,
        "reward": acc,
        "reward_std": 0.1,
        "rewards/accuracy_reward/mean": acc,
        "entropy": 0.5 - 0.05 * step,
        "completions/mean_length": 100.0 + 10 * step,
        "frac_reward_zero_std": 0.25 * (step - 1),
        "boxed_rate": 0.5 + 0.1 * step,
        f"train_accuracy/{EXAMPLE}": acc,
    }


def eval_results(accs: dict[str, float], anywhere: dict[str, float], protocol_hash="abc123") -> dict:
    benchmarks = {
        name: {
            "accuracy": acc,
            "metric": "acc",
            "n_problems": 2,
            "n_samples": 4,
            "boxed_rate": 0.75,
            "answer_anywhere_accuracy": anywhere[name],
        }
        for name, acc in accs.items()
    }
    return {
        "model": "tiny",
        "protocol": {"name": "one-shot-rlvr", "hash": protocol_hash},
        "benchmarks": benchmarks,
        "average": sum(accs.values()) / len(accs),
    }


def write_eval(eval_dir, accs, anywhere, samples):
    eval_dir.mkdir(parents=True)
    (eval_dir / "results.json").write_text(json.dumps(eval_results(accs, anywhere)))
    write_jsonl(eval_dir / "samples.jsonl", samples)


ACC = {1: 0.25, 2: 0.5, 3: 1.0, 4: 1.0}  # the example saturates at step 3


def make_run_dir(root):
    """A run dir as a 4-step training run with in-training evals at steps 2 and 4 would leave it."""
    run = root / "run"
    # Only checkpoints (no final trainer_state.json yet): the latest checkpoint's log_history is read.
    for ckpt_step in (2, 4):
        state = {
            "global_step": ckpt_step,
            "log_history": [log_entry(s, ACC[s]) for s in range(1, ckpt_step + 1)],
        }
        if ckpt_step == 4:
            state["log_history"].append({"step": 4, "train_runtime": 12.0, "train_loss": 0.02})
        (run / f"checkpoint-{ckpt_step}").mkdir(parents=True)
        (run / f"checkpoint-{ckpt_step}" / "trainer_state.json").write_text(json.dumps(state))
    write_jsonl(
        run / "accuracy_history.jsonl",
        [
            {"step": s, "example_id": EXAMPLE, "index": 124, "accuracy": a, "num_samples": 8}
            for s, a in ACC.items()
        ],
    )
    write_jsonl(
        run / "completions.jsonl",
        [
            {"step": s, "example_id": EXAMPLE, "completion": c, "reward": 1.0}
            for s, cs in COMPLETIONS.items()
            for c in cs
        ],
    )
    (run / "oneshot_run.json").write_text(
        json.dumps(
            {"base_model": "tiny", "examples": [{"example_id": EXAMPLE, "problem": "wind", "answer": "12.8"}]}
        )
    )
    math_samples = [
        # boxed-only credit: correct AND boxed -> 1 of 4 responses
        {
            "benchmark": "math500",
            "id": "m1",
            "responses": ["\\boxed{1}", "1"],
            "correct": [True, True],
            "boxed": [True, False],
        },
        {
            "benchmark": "math500",
            "id": "m2",
            "responses": ["\\boxed{2}", "Wait, \\boxed{3}"],
            "correct": [False, False],
            "boxed": [True, True],
        },
    ]
    aime_samples = [{"benchmark": "aime24", "id": "a1", "response": "Let me recheck: 7", "correct": False}]
    write_eval(
        run / "eval" / "step-000002",
        {"math500": 0.5, "aime24": 0.1},
        {"math500": 0.75, "aime24": 0.2},
        math_samples + aime_samples,
    )
    write_eval(
        run / "eval" / "step-000004",
        {"math500": 0.4, "aime24": 0.3},
        {"math500": 0.8, "aime24": 0.3},
        aime_samples,
    )
    return run


# Hub stand-ins and card inputs ------------------------------------------------------------------------

HUB_REPO = "user/qwen-pi1"


TOKEN = "hf_THISisAfakeTOKENthatMUSTnotLEAK123"


PROTOCOL = {"name": "one-shot-rlvr", "version": 1, "template": "qwen25-math-cot", "hash": "3f2a9c1b"}


def eval_results_json(step: int, math500: float, aime24: float, protocol=PROTOCOL) -> dict:
    """A results.json dict as `oneshot-trl eval` writes it (schema in the team plan)."""
    return {
        "model": HUB_REPO,
        "revision": f"step-{step:06d}",
        "commit_sha": "e" * 40,
        "protocol": dict(protocol),
        "grader": "math-verify",
        "versions": {"oneshot-trl": "0.1.0"},
        "benchmarks": {
            "math500": {
                "accuracy": math500,
                "metric": "acc",
                "n_problems": 500,
                "n_samples": 500,
                "pass@k": {"1": math500},
                "ci95": [math500 - 0.04, math500 + 0.04],
                "boxed_rate": 0.97,
                "answer_anywhere_accuracy": math500 + 0.01,
            },
            "aime24": {
                "accuracy": aime24,
                "metric": "avg@8",
                "n_problems": 30,
                "n_samples": 240,
                "pass@k": {"1": aime24, "8": 0.3},
                "ci95": [0.05, 0.25],
                "boxed_rate": 0.9,
                "answer_anywhere_accuracy": aime24,
            },
        },
        "average": (math500 + aime24) / 2,
    }


RECIPE = f"""\
# Model arguments
model_name_or_path: Qwen/Qwen2.5-Math-1.5B
# GRPO trainer config
learning_rate: 1.0e-06
num_generations: 8
temperature: 0.6
max_steps: 40
hub_model_id: {HUB_REPO}
hub_token: {TOKEN}  # must never reach the card
"""


class FakeHub:
    """Records every call; `fail[(method, revision)] = n` fails the next n such calls (-1: always)."""

    def __init__(self, tmp_path: Path, fail: dict | None = None):
        self.tmp = tmp_path
        self.fail = dict(fail or {})
        self.calls: list[tuple] = []
        self.branches: dict[str, dict[str, bytes]] = {
            "main": {".gitattributes": b"*.safetensors filter=lfs\n"}
        }
        self.commits: list[tuple[str, str]] = []  # (branch, message), in commit order
        self.lock = threading.Lock()

    def _maybe_fail(self, method: str, revision: str | None = None) -> None:
        for key in ((method, revision), (method, None)):
            left = self.fail.get(key, 0)
            if left:
                self.fail[key] = left - 1 if left > 0 else left
                # The message carries the token: it must be scrubbed before it reaches a log line.
                raise ConnectionError(f"503 from Hub while sending Authorization: Bearer {TOKEN}")

    def create_repo(self, repo_id, private=None, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private, exist_ok))
        self._maybe_fail("create_repo")
        return SimpleNamespace(repo_id=repo_id)

    def list_repo_commits(self, repo_id):
        self.calls.append(("list_repo_commits", repo_id))
        return [SimpleNamespace(commit_id="c" * 40), SimpleNamespace(commit_id="init0000")]

    def create_branch(self, repo_id, *, branch, revision=None, exist_ok=False):
        self.calls.append(("create_branch", repo_id, branch, revision, exist_ok))
        self._maybe_fail("create_branch", branch)
        self.branches.setdefault(branch, {".gitattributes": self.branches["main"][".gitattributes"]})

    def list_repo_files(self, repo_id, revision=None):
        self.calls.append(("list_repo_files", repo_id, revision))
        return sorted(self.branches[revision or "main"])

    def create_commit(self, repo_id, operations, *, commit_message, revision=None):
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        self.calls.append(("create_commit", repo_id, revision, commit_message))
        self._maybe_fail("create_commit", revision)
        files = self.branches[revision]
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                src = op.path_or_fileobj
                files[op.path_in_repo] = Path(src).read_bytes() if isinstance(src, str) else bytes(src)
            elif isinstance(op, CommitOperationDelete):
                del files[op.path_in_repo]
        self.commits.append((revision, commit_message))
        return SimpleNamespace(oid=f"{len(self.commits):040d}", commit_url="https://hf.co/fake")

    def upload_file(self, *, path_or_fileobj, path_in_repo, repo_id, revision=None, commit_message=None):
        self.calls.append(("upload_file", repo_id, revision, path_in_repo))
        self._maybe_fail("upload_file", revision)
        self.branches.setdefault(revision or "main", {})[path_in_repo] = bytes(path_or_fileobj)
        self.commits.append((revision, commit_message))

    def hf_hub_download(self, repo_id, filename, *, revision=None):
        self.calls.append(("hf_hub_download", repo_id, revision, filename))
        files = self.branches.get(revision or "main", {})
        if filename not in files:
            raise EntryNotFoundError(f"{filename} not found in {repo_id}@{revision}")
        path = self.tmp / "downloads" / (revision or "main") / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[filename])
        return str(path)

    def list_repo_refs(self, repo_id):
        self.calls.append(("list_repo_refs", repo_id))
        return SimpleNamespace(branches=[SimpleNamespace(name=b) for b in self.branches])

    def files(self, branch: str) -> set[str]:
        return set(self.branches[branch])


CHECKPOINT_FILES = {
    "model.safetensors": b"weights",
    "config.json": b'{"model_type": "qwen2"}',
    "generation_config.json": b"{}",
    "tokenizer.json": b"{}",
    "tokenizer_config.json": b"{}",
    "chat_template.jinja": b"{{ messages }}",
    "optimizer.pt": b"adam state",
    "scheduler.pt": b"sched",
    "rng_state.pth": b"rng",
    "training_args.bin": b"pickle",
}


def make_run(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(RECIPE)
    run_info = {
        "base_model": "Qwen/Qwen2.5-Math-1.5B",
        "base_model_revision": "main",
        "examples": [
            {"example_id": "dsr_sub:124", "problem": "Wind pressure on a sail ...", "answer": "12.8"}
        ],
    }
    (out / "oneshot_run.json").write_text(json.dumps(run_info))
    return run_info


def save_checkpoint(out: Path, step: int) -> None:
    """What Trainer._save_checkpoint leaves, plus the run files the lead's callbacks keep growing."""
    ckpt = out / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    for name, content in CHECKPOINT_FILES.items():
        (ckpt / name).write_bytes(content)
    (ckpt / "trainer_state.json").write_text(
        json.dumps({"global_step": step, "max_steps": 30, "log_history": []})
    )
    with (out / "accuracy_history.jsonl").open("a") as f:
        f.write(json.dumps({"step": step, "example_id": "dsr_sub:124", "index": 124, "accuracy": 0.5}) + "\n")


def make_callback(out: Path, api: FakeHub, save_total_limit=None, **kwargs):
    """A HubPushCallback over `api` for a run in `out`, as train builds it (transformers imported on first use)."""
    from transformers import TrainingArguments

    from oneshot_trl.hub.push import HubPushCallback

    args = TrainingArguments(
        output_dir=str(out),
        push_to_hub=True,
        hub_model_id=HUB_REPO,
        hub_token=TOKEN,
        hub_private_repo=True,
        save_total_limit=save_total_limit,
        learning_rate=1e-6,
        report_to="none",
    )
    run_info = make_run(out)
    cb = HubPushCallback.from_training_args(
        args, out / "recipe.yaml", run_info, api=api, max_attempts=3, backoff_s=0.001, **kwargs
    )
    return cb, args


def save(cb, args, out: Path, step: int, wait: bool = True) -> None:
    """A checkpoint saved at `step`, and the callback told so (as the Trainer tells it)."""
    from transformers import TrainerControl, TrainerState

    save_checkpoint(out, step)
    state = TrainerState(global_step=step, max_steps=30)
    cb.on_save(args, state, TrainerControl())
    if wait:
        assert cb.wait(timeout=30)


# A second process holding a run's lock --------------------------------------------------------------

HOLD = textwrap.dedent(
    """
    import sys
    from oneshot_trl.lock import run_lock
    with run_lock(sys.argv[1], command="oneshot-trl train"):
        print("locked", flush=True)
        sys.stdin.readline()  # hold until the parent says so (or kills us)
    """
)


def start_holder(directory):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc
