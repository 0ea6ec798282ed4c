"""GPU smoke check at real scale, offline: `scripts/gpu_smoke.sh` (= `python -m oneshot_trl.smoke`).

Builds a random-init model with the real architecture of a paper model (`setups.KNOWN_ARCHITECTURES`, no
download) and a byte-level tokenizer padded to the model's full vocabulary (so every sampled id decodes),
trains a few GRPO steps with the official values (`setups.MAIN_RUN`; vLLM colocate when vLLM is installed),
evaluates on a few MATH500 problems with `oneshot-trl eval`, and writes step times and peak GPU memory to
bench/results/gpu-smoke.json. A random model scores 0: the check is that the GPU path runs, and what it costs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

from oneshot_trl.layout import RECIPE_FILE, RESULTS_FILE, TRAINER_STATE_FILE
from oneshot_trl.memory import architecture_config
from oneshot_trl.setups import MAIN_RUN


def padded_tokenizer(vocab_size: int) -> Any:
    """The lab's byte-level BPE with filler tokens '<fillN>' appended up to exactly `vocab_size` ids, so that any
    id a random model samples decodes."""
    import tempfile

    from transformers import AutoTokenizer

    from oneshot_trl.lab.tiny import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer().save_pretrained(tmp)
        path = Path(tmp) / "tokenizer.json"
        spec = json.loads(path.read_text())
        vocab = spec["model"]["vocab"]
        assert all(t["id"] < len(vocab) for t in spec["added_tokens"]), "special tokens live in the BPE vocab"
        vocab.update({f"<fill{i}>": i for i in range(len(vocab), vocab_size)})
        path.write_text(json.dumps(spec))
        return AutoTokenizer.from_pretrained(tmp)


def smoke_config(model: str) -> tuple[Any, Any]:
    """(config of the real architecture, a tokenizer of exactly its vocabulary size) with matching special ids."""
    found = architecture_config(model)
    if found is None:
        raise ValueError(
            f"{model} is not in setups.KNOWN_ARCHITECTURES (nor a local folder with config.json)."
        )
    config, _ = found
    tokenizer = padded_tokenizer(config.vocab_size)
    config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    config.bos_token_id = tokenizer.eos_token_id
    return config, tokenizer


def build_smoke_model(model: str, out_dir: Path, device: str = "cuda", seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    config, tokenizer = smoke_config(model)
    torch.manual_seed(seed)
    with torch.device(device):
        net = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    net.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id
    )
    net.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def smoke_recipe(
    model_dir: Path, output_dir: Path, steps: int, max_completion_length: int, use_vllm: bool
) -> dict:
    """The official values, shrunk to a few steps of 8 prompts x 8 completions on one GPU."""
    recipe = {k: v for k, v in MAIN_RUN.items() if k not in ("model_name_or_path", "max_steps", "save_steps")}
    recipe.update(
        model_name_or_path=str(model_dir),
        dtype="bfloat16",
        dataset_repeat_to=8,  # = prompts per step
        per_device_train_batch_size=16,
        gradient_accumulation_steps=4,
        steps_per_generation=4,  # 64 completions = 8 prompts x 8 per optimizer step, on-policy
        max_completion_length=max_completion_length,
        max_steps=steps,
        use_vllm=use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.3,
        vllm_enable_sleep_mode=True,
        bf16=True,
        gradient_checkpointing=True,
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        output_dir=str(output_dir),
        completions_per_step=4,
    )
    return recipe


def gpu_info() -> tuple[str, float] | None:
    """(name, memory in GiB) of GPU 0 from nvidia-smi; None without an NVIDIA GPU."""
    query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits", "--id=0"]
    try:
        name, total_mib = subprocess.run(query, capture_output=True, text=True, check=True).stdout.rsplit(
            ",", 1
        )
    except (OSError, subprocess.CalledProcessError, ValueError):
        return None
    return name.strip(), int(total_mib) / 1024


class GpuMemorySampler:
    """Peak memory used on GPU 0 (all processes, vLLM included) from `nvidia-smi` every 200 ms."""

    def __init__(self) -> None:
        self.peak_mib = 0
        cmd = [
            "nvidia-smi",
            "--query-gpu=memory.used",
            "--format=csv,noheader,nounits",
            "--id=0",
            "-lms",
            "200",
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._proc.stdout:  # type: ignore[union-attr]
            if line.strip().isdigit():
                self.peak_mib = max(self.peak_mib, int(line))

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait()
        self._thread.join(timeout=5)


def run(cmd: list[str], log: Path) -> float:
    """Run a command, tee'ing to a log file; returns seconds; raises with the log's tail on failure."""
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read_text()[-4000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m oneshot_trl.smoke", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default="Qwen/Qwen2.5-Math-1.5B", help="A KNOWN_ARCHITECTURES id (random weights)."
    )
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--max-completion-length", type=int, default=1024)
    p.add_argument("--eval-problems", type=int, default=8)
    p.add_argument(
        "--no-vllm", action="store_true", help="Generate with transformers even if vLLM is installed."
    )
    p.add_argument(
        "--accelerate-config",
        default="accelerate_configs/zero3.yaml",
        help="Launch training with this accelerate config on 1 process (the recipes' ZeRO-3 path; needs "
        "deepspeed). Empty: a plain single process.",
    )
    p.add_argument("--work-dir", default="runs/gpu_smoke", help="Scratch directory (emptied first).")
    p.add_argument("--output", default="bench/results/gpu-smoke.json")
    p.add_argument("--build-model-into", help=argparse.SUPPRESS)  # internal: the child process that builds
    args = p.parse_args(argv)
    if args.build_model_into:
        build_smoke_model(args.model, Path(args.build_model_into))
        return 0

    gpu = gpu_info()
    if gpu is None:
        print(
            "gpu_smoke: no NVIDIA GPU visible (nvidia-smi); this check is for GPU machines.", file=sys.stderr
        )
        return 2
    gpu_name, gpu_gib = gpu
    use_vllm = not args.no_vllm and find_spec("vllm") is not None
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)  # a fresh run: eval would otherwise resume stale samples
    work.mkdir(parents=True)
    py = sys.executable
    # Every GPU step runs in a child process, so this one holds no CUDA context and nvidia-smi's peak is the run's.
    build = [py, "-m", "oneshot_trl.smoke", "--model", args.model, "--build-model-into", str(work / "model")]
    build_s = run(build, work / "build.log")
    recipe_path = work / RECIPE_FILE
    recipe = smoke_recipe(work / "model", work / "run", args.steps, args.max_completion_length, use_vllm)
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    accelerate = bool(args.accelerate_config) and find_spec("deepspeed") is not None
    launcher = [py]
    doctor = [py, "-m", "oneshot_trl.cli", "doctor", str(recipe_path), "--gpu-memory-gib", f"{gpu_gib:.0f}"]
    if accelerate:
        launcher = [py, "-m", "accelerate.commands.launch", "--config_file", args.accelerate_config]
        launcher += ["--num_processes", "1"]
        doctor += ["--accelerate-config", args.accelerate_config, "--num-processes", "1"]
    run(doctor, work / "doctor.log")
    sampler = GpuMemorySampler()
    try:
        train_s = run([*launcher, "-m", "oneshot_trl.train", str(recipe_path)], work / "train.log")
        train_peak, sampler.peak_mib = sampler.peak_mib, 0
        backend = "vllm" if use_vllm else "transformers"
        eval_s = run(
            [py, "-m", "oneshot_trl.cli", "eval", "--model", str(work / "run"), "--benchmarks", "math500",
             "--limit", str(args.eval_problems), "--backend", backend, "--max-new-tokens", "256",
             "--output-dir", str(work / "eval")],
            work / "eval.log",
        )  # fmt: skip
    finally:
        sampler.stop()

    state = json.loads((work / "run" / TRAINER_STATE_FILE).read_text())
    steps = [row for row in state["log_history"] if "step_time" in row]
    eval_results = json.loads((work / "eval" / RESULTS_FILE).read_text())
    from oneshot_trl.memory import model_info

    result = {
        "what": "random-init model with the real architecture; a few GRPO steps with the official values; measured",
        "model_architecture": args.model,
        "parameters": model_info(str(work / "model")).params,
        "gpu": gpu_name,
        "gpu_memory_total_gib": round(gpu_gib, 1),
        "generation": "vllm colocate" if use_vllm else "transformers",
        "launch": f"accelerate {args.accelerate_config}, 1 process" if accelerate else "python, 1 process",
        "completions_per_step": 64,
        "max_completion_length": args.max_completion_length,
        "steps": len(steps),
        "step_time_s": [round(row["step_time"], 2) for row in steps],
        "train_wall_s": round(train_s, 1),
        # nvidia-smi, used memory of the whole device (vLLM's share included), sampled every 200 ms
        "peak_gpu_memory_gib_training": round(train_peak / 1024, 1),
        "peak_gpu_memory_gib_eval": round(sampler.peak_mib / 1024, 1),
        "eval_problems": args.eval_problems,
        "eval_wall_s": round(eval_s, 1),
        "eval_accuracy_math500": eval_results["benchmarks"]["math500"]["accuracy"],
        "build_model_s": round(build_s, 1),
        "versions": {m: __import__(m).__version__ for m in ("torch", "transformers", "trl")}
        | ({"vllm": __import__("vllm").__version__} if use_vllm else {}),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
