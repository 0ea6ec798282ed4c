"""Model sizes, a per-GPU memory estimate and the checkpoint disk of a training run, offline.

Parameter counts come from instantiating the architecture on PyTorch's meta device (no memory, no download),
from `setups.KNOWN_ARCHITECTURES` for the paper's Hub ids or from a local folder's config.json. The estimate
uses the ZeRO paper's accounting for mixed-precision Adam (bf16 weights 2 B + gradients 4 B when DeepSpeed
accumulates them in fp32 as our configs do, else 2 B + fp32 master weights and Adam moments 12 B per trainable
parameter, each part sharded by its ZeRO stage), DeepSpeed's communication buckets, the activations of one
micro-batch with and without gradient checkpointing (`activation_bytes`, checked against the saved tensors of a
CPU run in tests/test_doctor.py), PPO's replicated fp32 critic, vLLM's share and its fixed overhead, the colocated
engine's KV cache against what a generation batch needs (`KVCache`), and the disk a run's checkpoints take. It is
arithmetic, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from oneshot_trl.setups import KNOWN_ARCHITECTURES

GIB = 1024**3
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "auto": 2, None: 4}
# DeepSpeed 0.19.8's defaults (runtime/zero/config.py), in elements; our DeepSpeed files set none of them.
DEEPSPEED_BUCKETS = {
    "reduce_bucket_size": 5e8,
    "allgather_bucket_size": 5e8,
    "stage3_prefetch_bucket_size": 5e7,
    "stage3_max_live_parameters": 1e9,
}
# Per training process, outside any estimate above: CUDA context, cuBLAS/NCCL workspaces (typical, not measured).
CUDA_CONTEXT = 1.0 * GIB
# vLLM colocate beyond its weights and KV cache: CUDA graphs and the sampler's buffers, which sleep mode keeps
# (it frees only the memory tagged weights and kv_cache); vLLM logs the graphs' size at start-up (typical: 0.5-1).
VLLM_FIXED = 1.0 * GIB


@dataclass
class ModelInfo:
    name: str
    source: str  # where the architecture came from
    config: Any  # transformers.PretrainedConfig

    @cached_property
    def params(self) -> int:
        # Counted on demand: `train` only needs the config, and under ZeRO-3 a meta-device model cannot be built.
        return sum(p.numel() for p in meta_model(self.config).parameters())

    @property
    def max_positions(self) -> int | None:
        return getattr(self.config, "max_position_embeddings", None)

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int | None:
        c = self.config
        try:
            head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
            kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
            return 2 * c.num_hidden_layers * kv_heads * head_dim * dtype_bytes
        except AttributeError:
            return None


def architecture_config(name_or_path: str) -> tuple[Any, str] | None:
    """(transformers config, source) for a known Hub id or a local folder with config.json; None otherwise."""
    from transformers import AutoConfig

    if name_or_path in KNOWN_ARCHITECTURES:
        values = dict(KNOWN_ARCHITECTURES[name_or_path])
        return AutoConfig.for_model(values.pop("model_type"), **values), "known architecture table"
    if (Path(name_or_path) / "config.json").is_file():
        return AutoConfig.from_pretrained(
            name_or_path, trust_remote_code=False
        ), f"{name_or_path}/config.json"
    return None


def meta_model(config: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def model_info(name_or_path: str | None) -> ModelInfo | None:
    if not name_or_path:
        return None
    try:
        found = architecture_config(name_or_path)
    except (OSError, ValueError):
        return None
    if found is None:
        return None
    config, source = found
    return ModelInfo(name_or_path, source, config)


def lora_params(info: ModelInfo, rank: int, targets: str | list[str] | None) -> int:
    """Trainable LoRA parameters: rank x (in + out) for every targeted Linear (peft's rules for the names)."""
    import torch
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if targets is None:
        targets = DEFAULTS.get(info.config.model_type, ["q_proj", "v_proj"])
    total = 0
    for name, module in meta_model(info.config).named_modules():
        if not isinstance(module, torch.nn.Linear) or name.endswith("lm_head"):
            continue
        if targets == "all-linear" or name.split(".")[-1] in targets:
            total += rank * (module.in_features + module.out_features)
    return total


def critic_bytes(info: ModelInfo, training_args: Any) -> float:
    """PPO's critic: the policy's backbone (its own weights when critic_model_name_or_path is set) + a scalar head,
    kept in fp32 with AdamW on every GPU (`OneShotPPOTrainer` does not shard it): 4 + 4 + 8 bytes per parameter."""
    if not hasattr(training_args, "critic_learning_rate"):  # not a OneShotPPOConfig
        return 0.0
    critic = (
        model_info(training_args.critic_model_name_or_path)
        if training_args.critic_model_name_or_path
        else None
    )
    info = critic or info
    head = (
        0
        if getattr(info.config, "tie_word_embeddings", False)
        else info.config.vocab_size * info.config.hidden_size
    )
    return 16.0 * (
        info.params - head + info.config.hidden_size
    )  # the LM head replaced by a 1-output value head


def activation_bytes(
    info: ModelInfo, tokens: int, dtype_bytes: int, checkpointing: bool
) -> tuple[float, float]:
    """(kept for backward, transient peak) bytes of one micro-batch's activations through the decoder (`tokens` =
    sequences x padded length). Per token and layer a Qwen2/Llama block saves, in elements: both norms' inputs and
    outputs (4h), q, k, v and the rotated q, k (2h + 3 kv), the attention output (h), gate, up, act(gate) and their
    product (4 x intermediate); the norms keep their input in fp32 (+2h x 2 B in bf16). With gradient checkpointing
    only each layer's input (h) is kept, and backward recomputes one layer at a time (the transient). The final norm
    adds 2h per token; the LM head adds nothing: TRL 1.16 computes log-probs and entropy tile by tile."""
    c = info.config
    h, layers = c.hidden_size, c.num_hidden_layers
    kv = (getattr(c, "num_key_value_heads", None) or c.num_attention_heads) * (
        getattr(c, "head_dim", None) or h // c.num_attention_heads
    )
    layer = (7 * h + 3 * kv + 4 * c.intermediate_size) * dtype_bytes + (2 * h * 2 if dtype_bytes == 2 else 0)
    final = 2 * h * dtype_bytes + (2 * h if dtype_bytes == 2 else 0)  # the final norm, its input in fp32
    if checkpointing:
        return tokens * (layers * h * dtype_bytes + final), tokens * layer
    return tokens * (layers * layer + final), 0.0


def bucket_bytes(params: int, stage: int | None, buckets: dict[str, float], fp32_gradients: bool) -> float:
    """DeepSpeed's communication buffers on one GPU: the gradient reduce bucket (in the reduce dtype) and, by stage,
    the parameter all-gather bucket (ZeRO-1/2) or the prefetch bucket and the gathered live parameters (ZeRO-3,
    at most the whole model)."""
    if stage is None:
        return 0.0
    b = {**DEEPSPEED_BUCKETS, **buckets}
    total = b["reduce_bucket_size"] * (4 if fp32_gradients else 2)
    if stage == 3:
        total += (b["stage3_prefetch_bucket_size"] + min(b["stage3_max_live_parameters"], params)) * 2
    else:
        total += b["allgather_bucket_size"] * 2
    return total


def checkpoint_bytes(info: ModelInfo, training_args: Any, model_args: Any, zero_stage: int | None) -> float:
    """One `checkpoint-N/` on disk: the model's weights in the training dtype (LoRA: the adapters) and, unless
    save_only_model, the optimizer state: DeepSpeed's fp32 master weights + Adam moments (12 B per trainable
    parameter, all ranks' shards together) or torch's AdamW moments in the weights' dtype; PPO adds its fp32
    critic and its AdamW moments."""
    p = info.params
    wbytes = DTYPE_BYTES.get(model_args.dtype, 2)
    if model_args.use_peft:
        trainable = lora_params(info, model_args.lora_r, model_args.lora_target_modules)
        weights, optimizer = trainable * 4, trainable * 8
    else:
        trainable = p
        weights = p * wbytes
        optimizer = trainable * 12 if zero_stage is not None else trainable * 2 * wbytes
    critic = critic_bytes(info, training_args) * 12 / 16  # weights 4 B + moments 8 B, no gradients
    return weights + critic + (0.0 if training_args.save_only_model else optimizer)


@dataclass
class KVCache:
    """vLLM colocate's KV cache in one training process (bytes), against what one generation batch needs."""

    share: float  # vllm_gpu_memory_utilization x the GPU
    weights: float  # the engine's bf16 weight copy (its tensor-parallel shard)
    per_token: int
    sequences: int  # completions this engine generates per generation batch
    sequence_tokens: int  # max_prompt_length + max_completion_length
    max_model_len: int  # what vLLM sizes for: vllm_max_model_length, else the model's whole context

    @property
    def available(self) -> float:  # an upper bound: vLLM also reserves its activation peak
        return self.share - self.weights

    @property
    def needed(self) -> float:
        return self.sequences * self.sequence_tokens * self.per_token

    def warnings(self) -> list[str]:
        gib = f"{max(self.available, 0) / GIB:.1f} GiB"
        if self.available < self.max_model_len * self.per_token:
            return [
                f"vLLM would refuse to start: its KV cache ({gib}) cannot hold one sequence of max_model_len "
                f"{self.max_model_len} tokens ({self.max_model_len * self.per_token / GIB:.1f} GiB). Set "
                f"vllm_max_model_length: {self.sequence_tokens} or raise vllm_gpu_memory_utilization."
            ]
        if self.available < self.needed:
            return [
                f"vLLM generates in waves: its KV cache holds {gib} of the {self.needed / GIB:.1f} GiB that "
                f"{self.sequences} sequences x {self.sequence_tokens} tokens need at full length, so some wait for "
                "others to finish (slower steps). Raise vllm_gpu_memory_utilization, or use more GPUs."
            ]
        return []


def kv_cache(
    info: ModelInfo | None, training_args: Any, plan: Any, max_prompt_length: int | None, gpu_gib: float
) -> KVCache | None:
    """The colocated engine's KV cache estimate; None without vLLM colocate or an unknown architecture."""
    a = training_args
    per_token = info.kv_bytes_per_token() if info is not None else None
    if not (a.use_vllm and a.vllm_mode == "colocate") or not per_token:
        return None
    sequence_tokens = (max_prompt_length or 0) + a.max_completion_length
    return KVCache(
        share=a.vllm_gpu_memory_utilization * gpu_gib * GIB,
        weights=info.params * 2 / a.vllm_tensor_parallel_size,
        per_token=per_token,
        sequences=plan.per_device * plan.steps_per_generation,
        sequence_tokens=sequence_tokens,
        max_model_len=a.vllm_max_model_length or info.max_positions or sequence_tokens,
    )


def estimate_memory(
    info: ModelInfo | None,
    training_args: Any,
    model_args: Any,
    launch: Any,
    plan: Any,
    max_prompt_length: int | None,
    gpu_gib: float,
) -> list[str]:
    """Lines of a per-GPU estimate: model states by ZeRO stage, DeepSpeed buckets, activations, reference model, PPO
    critic, vLLM (share, KV cache, fixed overhead), and the peak of training and of generation."""
    if info is None:
        return [
            f"unknown: {model_args.model_name_or_path} is not a known Hub id nor a local folder with config.json"
        ]
    a, n = training_args, max(launch.num_processes, 1)
    stage = launch.zero_stage
    wbytes = DTYPE_BYTES.get(model_args.dtype, 2)
    p = info.params
    lines = [f"model: {p / 1e9:.2f} B parameters ({info.source}), weights in {model_args.dtype}"]

    def shard(nbytes: float, from_stage: int) -> float:
        return nbytes / n if stage is not None and stage >= from_stage else nbytes

    gbytes = 4 if stage is not None and launch.fp32_gradients else wbytes
    if model_args.use_peft:
        trainable = lora_params(info, model_args.lora_r, model_args.lora_target_modules)
        weights = shard(p * wbytes, 3)
        lines.append(
            f"LoRA: {trainable / 1e6:.1f} M trainable parameters (frozen base, fp32 adapters + Adam)"
        )
        grads, optim, gbytes = trainable * 4, trainable * 12, 4
    elif stage is None:  # plain DDP / one GPU: weights, grads and Adam moments in the weights' dtype
        weights, grads, optim = p * wbytes, p * wbytes, 2 * p * wbytes
    else:  # DeepSpeed mixed precision: bf16 weights, grads as accumulated, fp32 master weights + Adam moments
        weights, grads, optim = shard(2 * p, 3), shard(gbytes * p, 2), shard(12 * p, 1)
    if launch.offload_optimizer:
        optim = 0.0
    if launch.offload_params and stage == 3:
        weights = 0.0
    ref = 0.0
    if a.beta > 0 and not model_args.use_peft:  # TRL keeps a frozen reference copy (PEFT: adapters disabled)
        ref = shard(p * 2, 3)
    states = weights + grads + optim + ref
    what = "no DeepSpeed" if stage is None else f"ZeRO-{stage} over {n} GPU(s)"
    lines.append(
        f"model states ({what}): weights {weights / GIB:.1f} + grads {grads / GIB:.1f} ({'fp32' if gbytes == 4 else 'bf16'}) "
        f"+ optimizer {optim / GIB:.1f} + reference model {ref / GIB:.1f} = {states / GIB:.1f} GiB"
        + (" (optimizer on CPU)" if launch.offload_optimizer else "")
    )
    buckets = bucket_bytes(p, stage, getattr(launch, "buckets", {}), launch.fp32_gradients)
    if buckets:
        lines.append(
            f"DeepSpeed buckets: {buckets / GIB:.1f} GiB (gradient reduce bucket"
            + (", prefetch bucket and gathered live parameters" if stage == 3 else ", all-gather bucket")
            + "; DeepSpeed's default sizes unless the config sets them)"
        )
    critic = critic_bytes(info, a)
    if critic:
        states += critic
        lines.append(
            f"PPO critic (replicated on every GPU, outside DeepSpeed): fp32 weights + grads + AdamW moments, "
            f"16 B x {critic / 16 / 1e9:.2f} B parameters = {critic / GIB:.1f} GiB"
        )
    tokens = a.per_device_train_batch_size * ((max_prompt_length or 0) + a.max_completion_length)
    kept, transient = activation_bytes(info, tokens, wbytes, bool(a.gradient_checkpointing))
    if critic:  # the critic runs its own forward and backward on the same micro-batch, in fp32
        ck, ct = activation_bytes(info, tokens, 4, bool(a.gradient_checkpointing))
        kept, transient = kept + ck, max(transient, ct)
    activations = kept + transient
    other, _ = activation_bytes(info, tokens, wbytes, not a.gradient_checkpointing)
    lines.append(
        f"activations (micro-batch {a.per_device_train_batch_size} x {tokens // a.per_device_train_batch_size} "
        f"tokens, gradient checkpointing {'on' if a.gradient_checkpointing else 'off'}): "
        + (
            f"{kept / GIB:.1f} kept + {transient / GIB:.1f} recomputing a layer = {activations / GIB:.1f} GiB "
            f"(off: {other / GIB:.1f} GiB)"
            if a.gradient_checkpointing
            else f"{activations / GIB:.1f} GiB (on: {other / GIB:.1f} GiB + one layer recomputed)"
        )
    )
    lines.append(f"CUDA context, cuBLAS and NCCL workspaces: ~{CUDA_CONTEXT / GIB:.1f} GiB (typical)")
    train_peak = states + buckets + activations + CUDA_CONTEXT
    vllm = 0.0
    kv = kv_cache(info, a, plan, max_prompt_length, gpu_gib)
    if kv is not None:
        vllm = kv.share
        lines.append(
            f"vLLM colocate: {a.vllm_gpu_memory_utilization:g} x {gpu_gib:g} GiB = {vllm / GIB:.1f} GiB for a "
            f"{kv.weights / GIB:.1f} GiB weight copy + KV cache ({kv.per_token / 1024:.0f} KiB per token: "
            f"{kv.sequences} sequences x {kv.sequence_tokens} tokens need {kv.needed / GIB:.1f} GiB, "
            f"{max(kv.available, 0) / GIB:.1f} GiB available; engine sized for {kv.max_model_len} tokens)"
        )
        lines.append(
            f"  + fixed overhead (CUDA graphs, sampler buffers): ~{VLLM_FIXED / GIB:.1f} GiB, kept in sleep mode"
        )
        if a.vllm_enable_sleep_mode:
            lines.append("  sleep mode: vLLM releases its share while the policy trains")
    if kv is None:
        peak = train_peak
    elif a.vllm_enable_sleep_mode:
        peak = max(train_peak, states + buckets + CUDA_CONTEXT + vllm) + VLLM_FIXED
    else:
        peak = train_peak + vllm + VLLM_FIXED
    lines.append(
        f"total: ~{peak / GIB:.1f} GiB of {gpu_gib:g} GiB (training ~{train_peak / GIB:.1f} GiB"
        + (
            f", generation ~{(states + buckets + CUDA_CONTEXT + vllm) / GIB:.1f} GiB"
            if kv is not None
            else ""
        )
        + ")"
        + ("  <-- likely out of memory" if peak > gpu_gib * GIB else "")
    )
    return lines


def disk_lines(
    info: ModelInfo | None, training_args: Any, model_args: Any, launch: Any, kept: int | None
) -> list[str]:
    """Lines of the checkpoint disk estimate: one checkpoint, times the most a run keeps at once (+1 while saving)."""
    a = training_args
    if a.save_strategy in ("no", None) or str(getattr(a.save_strategy, "value", a.save_strategy)) == "no":
        return ["no checkpoints (save_strategy: no)"]
    if info is None:
        return ["unknown model size"]
    one = checkpoint_bytes(info, a, model_args, launch.zero_stage)
    what = "weights only (save_only_model)" if a.save_only_model else "weights + optimizer state (resumable)"
    lines = [f"one checkpoint: ~{one / 1e9:.0f} GB, {what}"]
    if kept is None:
        steps = a.max_steps // a.save_steps if a.max_steps > 0 and a.save_steps else None
        lines.append(
            "retention: every checkpoint kept"
            + (
                f": {steps} x {one / 1e9:.0f} GB = ~{steps * one / 1e12:.1f} TB by step {a.max_steps}"
                if steps
                else ""
            )
        )
    else:
        lines.append(
            f"retention: at most {kept} kept + 1 while saving = {kept + 1} x {one / 1e9:.0f} GB = ~{(kept + 1) * one / 1e9:.0f} GB"
        )
    return lines
