"""Rollouts that depend on `seed`: the colocated vLLM engines are seeded from the run's seed and their rank.

TRL 1.16 builds each colocated engine with `seed=process_index // vllm_tensor_parallel_size` (the tensor-parallel
group, identical within a group so its workers sample alike), whatever `seed` says. vLLM seeds the process's global
RNGs with it when the engine starts and samples from them, so two runs that differ only in `seed` sampled the same
rollouts (and shuffling 128 copies of one example changes nothing), making any seed-to-seed spread too small.
`seeded_vllm_engines` keeps TRL's group index and mixes the run's seed in: different seeds or groups get different
streams, one seed and group always the same.

The other sources of randomness already follow `seed`: TRL calls `set_seed(seed, device_specific=True)` (seed +
process index) before generating with transformers, and its `RepeatSampler` shuffles the prompts with `seed`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def engine_seed(seed: int, group: int) -> int:
    """A 32-bit seed for the vLLM engine of tensor-parallel group `group` in a run with seed `seed`.

    Hashed (numpy's SeedSequence) rather than `seed + group`, so seed 1's group 0 is not seed 0's group 1.
    """
    return int(np.random.SeedSequence([seed % 2**32, group]).generate_state(1)[0])


@contextmanager
def seeded_vllm_engines(seed: int, enabled: bool = True) -> Iterator[None]:
    """While active, colocated vLLM engines that TRL builds get `engine_seed(seed, tp_group)` as their seed."""
    from trl.generation import vllm_generation

    llm_class = getattr(vllm_generation, "LLM", None)  # None without vLLM: TRL raises its own ImportError
    if not enabled or llm_class is None:
        yield
        return
    run_seed = seed

    def seeded_llm(*args: Any, seed: int = 0, **kwargs: Any) -> Any:
        group = seed  # TRL passes the tensor-parallel group index as `seed`
        group_seed = engine_seed(run_seed, group)
        logger.info(
            "vLLM engine seed %d (run seed %d, tensor-parallel group %d)", group_seed, run_seed, group
        )
        return llm_class(*args, seed=group_seed, **kwargs)

    vllm_generation.LLM = seeded_llm
    try:
        yield
    finally:
        vllm_generation.LLM = llm_class
