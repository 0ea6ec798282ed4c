"""Can DeepSpeed build its CPU Adam here? (`zero3_offload.yaml` and any config that offloads the optimizer.)

DeepSpeed 0.19.8 compiles `cpu_adam` just in time on first use, with the CUDA toolkit it finds (CUDA_HOME's
nvcc), and refuses (`CUDAMismatchException`) when that toolkit's version differs from the one torch was built with
(`torch.version.cuda`), except between CUDA 12 minors it lists as compatible or with `DS_SKIP_CUDA_CHECK=1`.
`cpu_adam_problem` runs DeepSpeed's own check, so `oneshot-trl doctor` can say so before any GPU hour.
"""

from __future__ import annotations

import contextlib
import io

AVOID = (
    "install the CUDA toolkit torch was built with (torch.version.cuda), or set DS_SKIP_CUDA_CHECK=1 (the op is CPU "
    "code; DeepSpeed then only warns), or prebuild it: DS_BUILD_CPU_ADAM=1 pip install --no-build-isolation "
    "deepspeed==0.19.8 (docs/training.md#install)"
)


def cpu_adam_problem() -> str | None:
    """Why DeepSpeed would refuse to build its CPU Adam on this machine, or None (buildable, or nothing to check:
    no DeepSpeed, a CPU build of torch, or no CUDA toolkit, where DeepSpeed builds it for the CPU alone)."""
    try:
        import torch
        from deepspeed.ops.op_builder.builder import (
            CUDAMismatchException,
            MissingCUDAException,
            assert_no_cuda_mismatch,
        )
    except ImportError:
        return None
    if torch.version.cuda is None:
        return None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # DeepSpeed prints its verdicts
            assert_no_cuda_mismatch("cpu_adam")
    except MissingCUDAException:
        return None
    except CUDAMismatchException as err:
        return f"DeepSpeed cannot build its CPU Adam for the offloaded optimizer here: {str(err).lstrip('>- ')} To avoid the build: {AVOID}."
    return None
