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
import shutil
import subprocess
import sys
import tempfile
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


def run_case(case: Case, src: Path, work: Path) -> tuple[str, str]:
    if case.before is not None:
        case.before()
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}  # a case sets its own
    env.update({"PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **case.env})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "oneshot_trl.cli", *case.argv],
            cwd=work, env=env, capture_output=True, text=True, timeout=case.timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
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
             timeout=600))  # fmt: skip
    add(Case("hub", "eval --push-to-hub offline", [*gen[:-3], "--output-dir", f"{w}/evalout2", "--push-to-hub",
             "--hub-repo-id", "user/battery", "--no-progress"], "error", "push", timeout=600))  # fmt: skip
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
