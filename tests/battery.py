"""Hostile-input battery (issue 18): every family of bad input and interrupted run, run as a user would.

    python tests/battery.py                     # this checkout's src/
    python tests/battery.py --src /tmp/base/src # another checkout (e.g. a `git worktree` of an older commit)

Each case is a real command (`python -m oneshot_trl.cli ...`, a subprocess with a timeout) on a tiny offline
model, judged by its exit code and output: `clear error` (refused: non-zero exit, no traceback, the message names
the input), `correct` (a valid input that worked as asked), `traceback`, `hang` (timed out) or `silently wrong`
(exit 0 where it should have refused, a secret printed, a wrong result). Prints counts per family. Not collected
by pytest (it trains a few tiny runs: about 5 minutes on 2 CPUs); tests/test_validate.py holds the unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUTCOMES = ("clear error", "correct", "traceback", "hang", "silently wrong")
TOKENS = {
    "env": "hf_envBATTERYsecret0001",
    "recipe": "hf_recipeBATTERYsecret02",
    "flag": "hf_flagBATTERYsecret003",
}


@dataclass
class Case:
    family: str
    name: str
    argv: list[str]
    expect: str  # "error" or "ok"
    needle: str = ""  # an error must mention it (the flag, key, file or row)
    check: Callable[[str], bool] | None = None  # an "ok" case's output (or files) must pass this
    before: Callable[[], None] | None = None  # set-up right before the command
    env: dict = field(default_factory=dict)
    timeout: float = 180.0
    fsize: int | None = None  # RLIMIT_FSIZE of the command in bytes (SIGXFSZ ignored): a full disk
    sigint_when: Callable[[], bool] | None = None  # Ctrl-C as soon as this holds (polled: files the run writes)
    keeps: Callable[[], bool] | None = None  # what must still hold afterwards (inputs, earlier outputs)


def run_case(case: Case, src: Path, work: Path) -> tuple[str, str]:
    outcome, output = _judge_case(case, src, work)
    if outcome in ("clear error", "correct") and case.keeps is not None:
        try:
            kept = case.keeps()
        except (OSError, ValueError, subprocess.TimeoutExpired) as err:
            kept, output = False, f"{output}\nkeeps failed: {err}"
        if not kept:
            return "silently wrong", f"{output}\nwhat the command had to leave as it was changed"
    return outcome, output


def _launch(case: Case, env: dict, work: Path) -> subprocess.CompletedProcess | None:
    """The command, under `case.fsize` and with Ctrl-C at `case.sigint_when`; None if it hangs."""

    def limits() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a battery started in the background (`&`) ignores Ctrl-C
        if case.fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.fsize, resource.RLIM_INFINITY))

    argv = [sys.executable, "-m", "oneshot_trl.cli", *case.argv]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # no pipe to fill up
        proc = subprocess.Popen(argv, cwd=work, env=env, stdout=out, stderr=err, text=True,
                                stdin=subprocess.DEVNULL, preexec_fn=limits)  # fmt: skip
        deadline = time.monotonic() + case.timeout
        if case.sigint_when is not None:
            while proc.poll() is None and not case.sigint_when() and time.monotonic() < deadline:
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            deadline = max(deadline, time.monotonic() + 120)  # time to stop cleanly, however late the signal came
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())


def _judge_case(case: Case, src: Path, work: Path) -> tuple[str, str]:
    if case.before is not None:
        case.before()
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}  # a case sets its own
    env.update({"PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **case.env})
    proc = _launch(case, env, work)
    if proc is None:
        return "hang", ""
    output = proc.stdout + proc.stderr
    if "Traceback (most recent call last)" in output:
        return "traceback", output
    if any(t in output for t in TOKENS.values()):
        return "silently wrong", output
    if case.expect == "error":
        if proc.returncode == 0:
            return "silently wrong", output
        return ("clear error" if case.needle in output else "silently wrong"), output
    if proc.returncode != 0:
        return "silently wrong", output
    try:
        passed = case.check is None or case.check(output)
    except (OSError, ValueError) as err:  # the files it left cannot even be read
        passed, output = False, f"{output}\ncheck failed: {err}"
    return ("correct" if passed else "silently wrong"), output


def build_world(work: Path, src: Path) -> dict[str, Path]:
    """A tiny model (and a copy without tokenizer, a file for a model path), a recipe, grade/eval inputs."""
    code = (
        "import sys; from oneshot_trl.lab.tiny import build_random_model, build_tokenizer\n"
        "t = build_tokenizer(); m = build_random_model(t, hidden_size=64, num_layers=2, num_heads=2, seed=0)\n"
        "m.save_pretrained(sys.argv[1]); t.save_pretrained(sys.argv[1])\n"
        "build_random_model(t, hidden_size=64, num_layers=2, num_heads=2, seed=1).save_pretrained(sys.argv[2])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, str(work / "tiny"), str(work / "other")], env=env, check=True,
                   capture_output=True)  # fmt: skip
    (work / "notok").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(work / "tiny" / name, work / "notok")
    recipe = {
        "model_name_or_path": str(work / "tiny"), "train_examples": "pi1", "dataset_repeat_to": 8,
        "num_generations": 4, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
        "max_completion_length": 8, "max_prompt_length": 500, "learning_rate": 1.0e-3, "max_steps": 2,
        "save_steps": 1, "logging_steps": 1, "seed": 0, "use_cpu": True, "bf16": False, "report_to": "none",
        "output_dir": str(work / "run"), "completions_per_step": 4, "disable_tqdm": True,
    }  # fmt: skip
    (work / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (work / "lr_str.yaml").write_text(
        yaml.safe_dump({**recipe, "output_dir": str(work / "run_lr")}).replace("learning_rate: 0.001", "learning_rate: 1e-3")
    )  # fmt: skip
    for key, value in (("max_steps", 0), ("max_steps", -5), ("learning_rate", float("nan")), ("num_generations", 0),
                       ("train_examples", "pi99"), ("learnin_rate", 0.1)):  # fmt: skip
        (work / f"bad_{key}_{value}.yaml").write_text(yaml.safe_dump({**recipe, key: value}))
    (work / "token.yaml").write_text(yaml.safe_dump({**recipe, "hub_token": TOKENS["recipe"]}))
    (work / "push.yaml").write_text(
        yaml.safe_dump(
            {
                **recipe,
                "output_dir": str(work / "run_push"),
                "push_to_hub": True,
                "hub_model_id": "user/battery",
                "max_steps": 1,
            }
        )  # fmt: skip
    )
    good = json.dumps({"response": r"so \boxed{1}", "gold": "1"}) + "\n"
    (work / "good.jsonl").write_text(good)
    (work / "bad_utf8.jsonl").write_bytes(good.encode() + b'{"response": "\xff\xfe", "gold": "1"}\n')
    (work / "bad_json.jsonl").write_text(good + "not json\n")
    (work / "data_bad.jsonl").write_text(json.dumps({"problem": "1+1", "answer": "2"}) + "\nnot json\n")
    (work / "empty").mkdir()
    return {"recipe": work / "recipe.yaml", "tiny": work / "tiny"}


def cases(work: Path) -> list[Case]:
    w = str(work)
    out: list[Case] = []
    add = out.append
    # --- recipes: train (both entry points) and doctor -----------------------------------------------------
    for flag, value in (("max_steps", "abc"), ("max_steps", "0"), ("max_steps", "-5"), ("learning_rate", "nan"),
                        ("num_generations", "0"), ("temperature", "inf"), ("bogus", "1")):  # fmt: skip
        add(
            Case(
                "recipe",
                f"train --{flag} {value}",
                ["train", "recipe.yaml", f"--{flag}", value],
                "error",
                flag,
            )
        )
    for name, needle in (("max_steps_0", "max_steps"), ("max_steps_-5", "max_steps"), ("learning_rate_nan", "learning_rate"),
                         ("num_generations_0", "num_generations"), ("train_examples_pi99", "pi99"),
                         ("learnin_rate_0.1", "learnin_rate")):  # fmt: skip
        add(Case("recipe", f"train {name}", ["train", f"bad_{name}.yaml"], "error", needle))
        add(Case("recipe", f"doctor {name}", ["doctor", f"bad_{name}.yaml"], "error", needle))
    add(Case("recipe", "doctor learning_rate: 1e-3 (a YAML str)", ["doctor", "lr_str.yaml"], "ok",
             check=lambda o: "learning_rate: 0.001" in o))  # fmt: skip
    add(Case("recipe", "train model path is a file", ["train", "recipe.yaml", "--model_name_or_path",
             f"{w}/tiny/config.json"], "error", "config.json"))  # fmt: skip
    add(Case("recipe", "train model without tokenizer", ["train", "recipe.yaml", "--model_name_or_path", f"{w}/notok"],
             "error", "tokenizer"))  # fmt: skip
    # --- grade ---------------------------------------------------------------------------------------------
    for flags, needle in ((["--workers", "-3"], "--workers"), (["--timeout", "nan"], "--timeout"),
                          (["--timeout", "inf"], "--timeout"), (["--timeout", "0"], "--timeout"),
                          (["--output", f"{w}/missing/x.jsonl"], "missing"), (["--output", w], "directory")):  # fmt: skip
        add(Case("grade", " ".join(flags), ["grade", "good.jsonl", "--workers", "1", *flags], "error", needle,
                 timeout=60))  # fmt: skip
    add(
        Case(
            "grade",
            "invalid UTF-8 line",
            ["grade", "bad_utf8.jsonl", "--workers", "1"],
            "error",
            "bad_utf8.jsonl:2",
        )
    )
    add(
        Case(
            "grade",
            "non-JSON line",
            ["grade", "bad_json.jsonl", "--workers", "1"],
            "error",
            "bad_json.jsonl:2",
        )
    )
    add(
        Case(
            "grade",
            "good file",
            ["grade", "good.jsonl", "--workers", "1"],
            "ok",
            check=lambda o: "accuracy: 1.0000" in o,
        )
    )
    # --- eval (dry runs: no generation) --------------------------------------------------------------------
    dry = [
        "eval",
        "--model",
        f"{w}/tiny",
        "--dry-run",
        "--backend",
        "transformers",
        "--benchmarks",
        "math500",
    ]
    for flags, needle in ((["--limit", "-2"], "--limit"), (["--max-new-tokens", "0"], "--max-new-tokens"),
                          (["--seed", "-1"], "--seed"), (["--batch-size", "0"], "--batch-size")):  # fmt: skip
        add(Case("eval", " ".join(flags), [*dry, *flags], "error", needle))
    add(
        Case(
            "eval", "--model is a file", [*dry[:2], f"{w}/tiny/config.json", *dry[3:]], "error", "config.json"
        )
    )
    add(Case("eval", "--model without tokenizer", [*dry[:2], f"{w}/notok", *dry[3:]], "error", "tokenizer"))
    add(
        Case(
            "eval",
            "--dataset non-JSON line",
            [*dry[:-2], "--dataset", "data_bad.jsonl"],
            "error",
            "data_bad.jsonl",
        )
    )
    add(Case("eval", "--limit 2", [*dry, "--limit", "2"], "ok", check=lambda o: "total: 2 generations" in o))
    # --- card ----------------------------------------------------------------------------------------------
    add(Case("card", "missing dir", ["card", f"{w}/missing"], "error", "missing"))
    add(Case("card", "empty dir", ["card", f"{w}/empty"], "error", "empty"))
    # --- secrets -------------------------------------------------------------------------------------------
    add(
        Case(
            "secrets",
            "doctor: token in recipe + env",
            ["doctor", "token.yaml"],
            "ok",
            env={"HF_TOKEN": TOKENS["env"]},
        )
    )
    add(
        Case(
            "secrets",
            "doctor: token in a flag",
            ["doctor", "recipe.yaml", "--", "--hub_token", TOKENS["flag"]],
            "ok",
        )
    )
    add(Case("secrets", "train error with a token flag", ["train", "token.yaml", "--hub_token", TOKENS["flag"],
             "--max_steps", "0"], "error", "max_steps", env={"HF_TOKEN": TOKENS["env"]}))  # fmt: skip
    # --- interrupted training runs -------------------------------------------------------------------------
    run = work / "run"

    def tear_history() -> None:
        shutil.rmtree(run / "checkpoint-2", ignore_errors=True)
        with (run / "accuracy_history.jsonl").open("ab") as f:
            f.write(b'{"step": 2, "example_id": "\xe2\x88')  # killed mid-write, inside a character

    def half_saved_checkpoint() -> None:
        (run / "checkpoint-2" / "trainer_state.json").unlink(missing_ok=True)

    def other_run_checkpoints() -> None:
        shutil.rmtree(work / "run_lr", ignore_errors=True)
        (work / "run_lr" / "checkpoint-9").mkdir(parents=True)  # a killed run's checkpoint
        (work / "run_lr" / "checkpoint-9" / "trainer_state.json").write_text("{}")

    def history_steps_ok(_: str) -> bool:
        steps = [
            json.loads(line)["step"] for line in (run / "accuracy_history.jsonl").read_text().splitlines()
        ]
        return steps == sorted(steps) and steps.count(2) == 1 and max(steps) == 2

    add(Case("runs", "train (first run)", ["train", "recipe.yaml"], "ok", timeout=400))
    add(Case("runs", "resume after a torn accuracy_history tail", ["train", "recipe.yaml", "--resume_from_checkpoint",
             "true"], "ok", check=history_steps_ok, before=tear_history, timeout=400))  # fmt: skip
    add(Case("runs", "resume with a half-saved last checkpoint", ["train", "recipe.yaml", "--resume_from_checkpoint",
             "true"], "ok", before=half_saved_checkpoint, timeout=400,
             check=lambda o: "checkpoint-2 has no trainer_state.json" in o))  # fmt: skip
    add(Case("runs", "fresh run over another run's checkpoints", ["train", "lr_str.yaml"], "error",
             "checkpoint-9", before=other_run_checkpoints, timeout=400))  # fmt: skip
    # --- eval identity -------------------------------------------------------------------------------------
    gen = ["eval", "--model", f"{w}/evalmodel", "--benchmarks", "math500", "--limit", "1", "--max-new-tokens", "2",
           "--backend", "transformers", "--output-dir", f"{w}/evalout", "--no-progress"]  # fmt: skip

    def swap_weights() -> None:
        shutil.copy(work / "other" / "model.safetensors", work / "evalmodel" / "model.safetensors")

    add(Case("eval identity", "eval a local model", gen, "ok",
             before=lambda: shutil.copytree(work / "tiny", work / "evalmodel")))  # fmt: skip
    add(Case("eval identity", "resume with other weights", gen, "error", "--overwrite", before=swap_weights))
    # --- Hub -------------------------------------------------------------------------------------------------
    add(Case("hub", "train with every push failing (offline)", ["train", "push.yaml"], "error", "oneshot-trl push",
             timeout=600, env={"HF_TOKEN": TOKENS["env"]}))  # fmt: skip
    add(Case("hub", "eval --push-to-hub offline", [*gen[:-3], "--output-dir", f"{w}/evalout2", "--push-to-hub",
             "--hub-repo-id", "user/battery", "--no-progress"], "error", "push", timeout=600))  # fmt: skip
    out += input_cases(work)  # issue 26 items 5 and 8 (appended by the ROOMS helper)
    out += reliability_cases(work)  # issue 26 items 1-4, 6, 7 (appended by the RELIABLE helper)
    out += recipe_cases(work)  # issue 26 items 5 and 9, issue 24 item 5 (appended by the CONFIG helper)
    return out


def input_cases(work: Path) -> list[Case]:
    """Issue 26, second battery: inputs accepted and then wrong (benchmark names, empty files, histories with bad
    accuracies, analyze's numbers, outputs that are directories or the input) and realistic golds to grade."""
    w = str(work)
    hist = [{"step": s, "example_id": f"custom:{e}", "index": None, "accuracy": a, "num_samples": 8}
            for s in (1, 2, 3) for e, a in (("a", s / 4), ("b", 0.5))]  # fmt: skip

    def history(name: str, row: int, value: str) -> Callable[[], None]:
        def write() -> None:
            lines = [json.dumps(r) for r in hist]
            lines[row - 1] = lines[row - 1].replace('"accuracy": 0.5', f'"accuracy": {value}')
            (work / name).write_text("\n".join(lines) + "\n")

        return write

    def torn_run() -> None:
        run = work / "torn_run"
        run.mkdir(exist_ok=True)
        lines = [json.dumps(r) for r in hist]
        lines.insert(2, '{"step": 2, "exam')  # line 3: a torn write in the middle, not only at the end
        (run / "accuracy_history.jsonl").write_text("\n".join(lines) + "\n")

    def grading_rows() -> None:
        rows = [  # our own realistic golds: a list of boxed answers in words, a plus-minus, a clock time
            (r"\boxed{3} cats and \boxed{5} dogs", r"So there are $\boxed{3, 5}$."),
            (r"$x = 2 \pm \sqrt{3}$", r"The roots are $\boxed{x = 2 + \sqrt{3}, x = 2 - \sqrt{3}}$."),
            (r"$7:45$", r"The train arrives at $7:45$."),
            (r"$7:45$", r"The train arrives at $7:15$."),  # wrong
        ]
        (work / "realistic.jsonl").write_text("".join(json.dumps({"response": r, "gold": g}) + "\n" for g, r in rows))

    def garbage_run_json() -> None:
        shutil.copytree(work / "tiny", work / "evalmodel_rj", dirs_exist_ok=True)
        (work / "evalout_rj").mkdir(exist_ok=True)
        (work / "evalout_rj" / "run.json").write_text("{not json")

    out: list[Case] = []
    add = out.append
    fam = "inputs-26"
    add(Case(fam, "grade --benchmark misspelled", ["grade", "good.jsonl", "--benchmark", "minervamath"], "error",
             "minerva_math"))  # fmt: skip
    add(Case(fam, "grade --benchmark-field misspelled in a row", ["grade", "bench_row.jsonl", "--benchmark-field",
             "benchmark"], "error", "Did you mean", before=lambda: (work / "bench_row.jsonl").write_text(
             json.dumps({"response": "1", "gold": "1", "benchmark": "math_500"}) + "\n")))  # fmt: skip
    add(Case(fam, "grade an empty file", ["grade", "empty.jsonl"], "error", "empty.jsonl",
             before=lambda: (work / "empty.jsonl").write_text("\n")))  # fmt: skip
    add(Case(fam, "grade F --output ./F", ["grade", "good.jsonl", "--output", "./good.jsonl"], "error",
             "input file itself"))  # fmt: skip
    for value, needle in (("NaN", "h_nan.jsonl:2"), ("null", "h_null.jsonl:2"), ("1.5", "h_1.5.jsonl:2")):
        name = f"h_{value.lower()}.jsonl"
        add(Case(fam, f"select --history with accuracy {value}", ["select", "--history", name], "error",
                 needle.lower(), before=history(name, 2, value)))  # fmt: skip
    add(Case(fam, "select --history official format with NaN", ["select", "--history", "acc_nan.json"], "error",
             "example '7'", before=lambda: (work / "acc_nan.json").write_text('{"3": [0.5, 0.25], "7": [0.5, NaN]}')))  # fmt: skip
    add(Case(fam, "select --output a directory", ["select", "--history", "official", "--output", "empty"], "error",
             "is a directory"))  # fmt: skip
    add(Case(fam, "analyze --saturation-threshold 7", ["analyze", "torn_run", "--saturation-threshold", "7"],
             "error", "--saturation-threshold", before=torn_run))  # fmt: skip
    add(Case(fam, "analyze --max-examples -3", ["analyze", "torn_run", "--max-examples", "-3"], "error",
             "--max-examples", before=torn_run))  # fmt: skip
    add(Case(fam, "analyze a history with a torn middle row", ["analyze", "torn_run", "--output-dir", f"{w}/an"],
             "ok", check=lambda o: "1 unreadable line(s) skipped, the first at line 3" in o, before=torn_run))  # fmt: skip
    add(Case(fam, "eval --benchmarks misspelled", ["eval", "--model", f"{w}/tiny", "--benchmarks", "math5000",
             "--dry-run"], "error", "Did you mean math500"))  # fmt: skip
    add(Case(fam, "eval an empty --dataset", ["eval", "--model", f"{w}/tiny", "--dataset", "empty.jsonl",
             "--dry-run"], "error", "empty.jsonl", before=lambda: (work / "empty.jsonl").write_text("")))  # fmt: skip
    add(Case(fam, "eval into a dir whose run.json is garbage", ["eval", "--model", f"{w}/evalmodel_rj",
             "--benchmarks", "math500", "--limit", "1", "--max-new-tokens", "2", "--backend", "transformers",
             "--output-dir", f"{w}/evalout_rj", "--no-progress"], "error", "run.json", before=garbage_run_json,
             timeout=300))  # fmt: skip
    add(Case(fam, "contamination --benchmarks misspelled", ["contamination", "--model", f"{w}/tiny",
             "--benchmarks", "aime2024", "--dry-run"], "error", "aime24"))  # fmt: skip
    add(Case("grading-26", "grade realistic golds (box lists, plus-minus, a time)", ["grade", "realistic.jsonl",
             "--workers", "0"], "ok", check=lambda o: "accuracy: 0.7500 (3/4)" in o, before=grading_rows))  # fmt: skip
    return out


def reliability_cases(work: Path) -> list[Case]:
    """Issue 26, second battery (appended by the RELIABLE helper): outputs that could harm inputs, tokens on disk,
    resumes that are silently wrong, two writers, Ctrl-C and full disks, Hub inputs checked late."""
    w = str(work)
    base = yaml.safe_load((work / "recipe.yaml").read_text())
    background: list[subprocess.Popen] = []

    def recipe(name: str, **overrides) -> str:
        (work / f"{name}.yaml").write_text(yaml.safe_dump({**base, "output_dir": f"{w}/{name}", **overrides}))
        return f"{name}.yaml"

    def same(path: Path, content: bytes) -> Callable[[], bool]:
        return lambda: path.read_bytes() == content

    def no_token_under(folder: str) -> Callable[[str], bool]:
        def check(_: str) -> bool:
            files = [p for p in (work / folder).rglob("*") if p.is_file()]
            return bool(files) and not any(t.encode() in p.read_bytes() for p in files for t in TOKENS.values())

        return check

    big = "".join(json.dumps({"response": "so " + "x" * 200 + r" \boxed{1}", "gold": "1"}) + "\n" for _ in range(60))
    (work / "big.jsonl").write_text(big)
    (work / "old_out.jsonl").write_text('{"kept": true}\n')
    os.link(work / "good.jsonl", work / "good_link.jsonl")
    good = (work / "good.jsonl").read_bytes()
    out: list[Case] = []
    add = out.append
    # --- outputs never harm inputs ---------------------------------------------------------------------------
    add(Case("outputs-26", "grade F --output a hard link to F", ["grade", "good.jsonl", "--workers", "1", "--output",
             "good_link.jsonl"], "error", "good_link.jsonl", keeps=same(work / "good.jsonl", good), timeout=60))  # fmt: skip
    add(Case("outputs-26", "grade --output over a file, disk full", ["grade", "big.jsonl", "--workers", "1",
             "--output", "old_out.jsonl"], "error", "old_out.jsonl", fsize=4096,
             keeps=same(work / "old_out.jsonl", b'{"kept": true}\n'), timeout=120))  # fmt: skip
    # --- no secret on disk -----------------------------------------------------------------------------------
    add(Case("secrets-26", "train with a token in recipe, flag and env: scan the run", ["train", recipe(
             "r26_tok", hub_token=TOKENS["recipe"], max_steps=1), "--hub_token", TOKENS["flag"]], "ok",
             check=no_token_under("r26_tok"), env={"HF_TOKEN": TOKENS["env"]}, timeout=400))  # fmt: skip
    # --- resume is exact or refused --------------------------------------------------------------------------
    res = work / "r26_res"
    add(Case("resume-26", "train (the run the next cases resume)", ["train", recipe("r26_res")], "ok", timeout=400))
    add(Case("resume-26", "resume a finished run", ["train", "r26_res.yaml", "--resume_from_checkpoint", "true"],
             "ok", check=lambda o: not (res / "checkpoint-3").exists(), timeout=400))  # fmt: skip

    def drop_optimizer() -> None:
        (res / "checkpoint-2" / "optimizer.pt").unlink(missing_ok=True)
        shutil.rmtree(res / "checkpoint-3", ignore_errors=True)

    add(Case("resume-26", "resume without the newest optimizer.pt", ["train", "r26_res.yaml", "--max_steps", "3",
             "--resume_from_checkpoint", "true"], "error", "optimizer.pt", before=drop_optimizer, timeout=400))  # fmt: skip

    def cut_newest_state() -> None:
        shutil.rmtree(res / "checkpoint-3", ignore_errors=True)
        (res / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2, "log_hi')

    add(Case("resume-26", "resume with the newest trainer_state cut", ["train", "r26_res.yaml", "--max_steps", "3",
             "--resume_from_checkpoint", "true"], "ok", before=cut_newest_state, timeout=400,
             check=lambda o: "WARNING" in o and "checkpoint-2" in o and (res / "checkpoint-3").is_dir()))  # fmt: skip

    def run_without_checkpoints() -> None:
        shutil.copytree(res, work / "r26_nock", dirs_exist_ok=True)
        for old in (work / "r26_nock").glob("checkpoint-*"):
            shutil.rmtree(old)

    add(Case("resume-26", "fresh run over a run that has no checkpoint", ["train", recipe("r26_nock")], "error",
             "overwrite_output_dir", before=run_without_checkpoints, timeout=400))  # fmt: skip

    def only_damaged_checkpoints() -> None:  # a run killed mid-save: no final state or model, checkpoints cut
        shutil.copytree(res, work / "r26_dmg", dirs_exist_ok=True)
        for old in (work / "r26_dmg").glob("checkpoint-*"):
            (old / "trainer_state.json").write_text("{")
        for final in [work / "r26_dmg" / "trainer_state.json", *(work / "r26_dmg").glob("*.safetensors")]:
            final.unlink(missing_ok=True)

    add(Case("resume-26", "resume when every checkpoint is damaged", ["train", recipe("r26_dmg"),
             "--resume_from_checkpoint", "true"], "error", "overwrite_output_dir", before=only_damaged_checkpoints,
             timeout=400))  # fmt: skip

    def checkpoint_without_weights() -> None:
        shutil.copytree(res / "checkpoint-1", work / "r26_now" / "checkpoint-1", dirs_exist_ok=True)
        for weights in (work / "r26_now" / "checkpoint-1").glob("*.safetensors"):
            weights.unlink()

    add(Case("resume-26", "resume from a checkpoint without weights", ["train", recipe("r26_now"),
             "--resume_from_checkpoint", f"{w}/r26_now/checkpoint-1"], "error", "weights",
             before=checkpoint_without_weights, timeout=400))  # fmt: skip
    # --- one writer per run ----------------------------------------------------------------------------------
    two = work / "r26_two"

    def start_first_writer() -> None:  # a long run, still at work when the second one starts
        env = {**os.environ, "PYTHONPATH": os.environ.get("BATTERY_SRC", ""), "HF_HUB_OFFLINE": "1",
               "OMP_NUM_THREADS": "1"}  # fmt: skip
        background.append(subprocess.Popen([sys.executable, "-m", "oneshot_trl.cli", "train", recipe("r26_two",
                          max_steps=500, save_steps=1000)], cwd=work, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)))  # fmt: skip
        deadline = time.monotonic() + 300
        while not (two / "oneshot_run.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # the first writer is at work (its run record is written before step 1)

    def one_history() -> bool:
        first = background.pop()
        first.send_signal(signal.SIGINT)  # the first writer has shown what it needed to: stop it
        first.wait(timeout=300)
        steps = [json.loads(line)["step"] for line in (two / "accuracy_history.jsonl").read_text().splitlines()]
        return steps == sorted(set(steps))

    add(Case("writers-26", "two trains into one output_dir at once", ["train", "r26_two.yaml", "--max_steps", "2"],
             "error", "in use",
             before=start_first_writer, keeps=one_history, timeout=400))  # fmt: skip
    # --- interrupts and full disks ---------------------------------------------------------------------------
    add(Case("interrupts-26", "Ctrl-C after the first checkpoint", ["train", recipe("r26_int", max_steps=200)],
             "error", "--resume_from_checkpoint", timeout=900,
             sigint_when=lambda: (work / "r26_int" / "checkpoint-1" / "trainer_state.json").exists()))  # fmt: skip
    add(Case("interrupts-26", "file-size limit at the first checkpoint", ["train", recipe("r26_fs")], "error",
             "checkpoint-1", fsize=60_000, timeout=400))  # fmt: skip
    # --- Hub inputs before the work ----------------------------------------------------------------------------
    add(Case("hub-26", "push_to_hub with a malformed hub_model_id", ["train", recipe("r26_hub1", push_to_hub=True,
             hub_model_id="me/my model!")], "error", "hub_model_id", env={"HF_TOKEN": TOKENS["env"]}, timeout=600))  # fmt: skip
    add(Case("hub-26", "push_to_hub without any token", ["train", recipe("r26_hub2", push_to_hub=True,
             hub_model_id="me/model")], "error", "token", env={"HF_HOME": f"{w}/no_hf_home"}, timeout=600))  # fmt: skip

    def recorded_repo() -> bool:
        return json.loads((work / "run_push" / "hub_pushes.json").read_text())["repo_id"] == "user/battery"

    add(Case("hub-26", "push --repo-id elsewhere, failing", ["push", f"{w}/run_push", "--repo-id", "other/elsewhere"],
             "error", "push", env={"HF_TOKEN": TOKENS["env"]}, keeps=recorded_repo, timeout=600))  # fmt: skip
    return out


def recipe_cases(work: Path) -> list[Case]:
    """Issue 26 (second battery) and issue 24 item 5: a duplicated recipe key, no-op numbers, overrides in either
    spelling in train and doctor, a run re-run from its own saved recipe."""
    w = str(work)
    base = yaml.safe_load((work / "recipe.yaml").read_text())

    def recipe(name: str, **overrides) -> str:
        (work / f"{name}.yaml").write_text(yaml.safe_dump({**base, "output_dir": f"{w}/{name}", **overrides}))
        return f"{name}.yaml"

    text = (work / "recipe.yaml").read_text()
    (work / "dup.yaml").write_text(text + "temperature: 0.7\ntemperature: 0.9\n")
    out: list[Case] = []
    add = out.append
    add(Case("recipe-26", "a key set twice", ["train", "dup.yaml"], "error", "'temperature' is set twice"))
    add(Case("recipe-26", "doctor: a key set twice", ["doctor", "dup.yaml"], "error", "set twice"))
    add(Case("recipe-26", "doctor learning_rate: 0 (a no-op)", ["doctor", recipe("r26_lr0", learning_rate=0)], "ok",
             check=lambda o: "warning: learning_rate is 0" in o))  # fmt: skip
    add(Case("recipe-26", "doctor reward_funcs [none] without entropy (zero advantages)", ["doctor", recipe(
             "r26_none", reward_funcs=["none"], entropy_coeff=0)], "ok",
             check=lambda o: "every advantage is 0" in o))  # fmt: skip
    add(Case("recipe-26", "train with no recipe", ["train"], "error", "give a recipe", timeout=60))
    add(Case("recipe-26", "train --max_step (a typo)", ["train", "recipe.yaml", "--max_step", "5"], "error",
             "--max_steps"))  # fmt: skip
    add(Case("recipe-26", "doctor RECIPE --max-steps 5 (no --)", ["doctor", "recipe.yaml", "--max-steps", "5"], "ok",
             check=lambda o: "  max_steps: 5\n" in o))  # fmt: skip
    rec = work / "r26_rec"
    add(Case("recipe-26", "train with overrides", ["train", recipe("r26_rec", eval_max_new_tokens=16),
             "--learning-rate", "2e-3", "--max_steps", "1"], "ok", timeout=400,
             check=lambda o: "learning_rate: 0.002" in (rec / "recipe.yaml").read_text()))  # fmt: skip
    add(Case("recipe-26", "doctor the run's own recipe.yaml", ["doctor", "r26_rec/recipe.yaml"], "ok",
             check=lambda o: "eval_max_new_tokens: 16" in o and "max_steps: 1" in o))  # fmt: skip
    add(Case("recipe-26", "train the run's own recipe.yaml into a new dir", ["train", "r26_rec/recipe.yaml",
             "--output_dir", f"{w}/r26_rec2"], "ok", timeout=400,
             check=lambda o: (work / "r26_rec2" / "model.safetensors").read_bytes()
             == (rec / "model.safetensors").read_bytes()))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--src", type=Path, default=REPO / "src", help="The package source to run (default: ours)."
    )
    parser.add_argument("--families", default=None, help="Comma-separated families to run (default: all).")
    parser.add_argument(
        "--verbose", action="store_true", help="Print the output of every case not as expected."
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="battery-"))
    os.environ["BATTERY_SRC"] = str(args.src.resolve())  # for commands a case starts in the background
    build_world(work, args.src.resolve())
    wanted = set(args.families.split(",")) if args.families else None
    counts: dict[str, Counter] = defaultdict(Counter)
    for case in cases(work):
        if wanted and case.family not in wanted:
            continue
        outcome, output = run_case(case, args.src.resolve(), work)
        counts[case.family][outcome] += 1
        print(f"{case.family:<14} {case.name:<48} {outcome}", flush=True)
        if args.verbose and outcome not in ("clear error", "correct"):
            print("    " + "\n    ".join(output.strip().splitlines()[-6:]), flush=True)
    print(f"\n| family | cases | {' | '.join(OUTCOMES)} |\n|---|---|" + "---|" * len(OUTCOMES))
    for family, c in [*counts.items(), ("all", sum(counts.values(), Counter()))]:
        print(f"| {family} | {sum(c.values())} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    shutil.rmtree(work, ignore_errors=True)
    bad = sum(c[o] for c in counts.values() for o in ("traceback", "hang", "silently wrong"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
