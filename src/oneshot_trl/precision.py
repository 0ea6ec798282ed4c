"""The dtypes a run actually trains with: weights, gradient accumulation, gradient reduction.

verl's FSDP mixed precision computes in bf16 but accumulates and reduces gradients in fp32. DeepSpeed's defaults
follow the model dtype (bf16 accumulation over the micro-batches and bf16 reduce-scatter) unless its config sets
`data_types.grad_accum_dtype` and `communication_data_type`; accelerate_configs/deepspeed/*.json set both to fp32.
`PrecisionCallback` reads the dtypes from the optimizer DeepSpeed built (not from the config), records them in the
run info file and warns when a bf16 run reduces or accumulates in less than fp32 (e.g. a user's own DeepSpeed
config).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from oneshot_trl.files import atomic_write_text
from oneshot_trl.layout import RUN_INFO_FILE

logger = logging.getLogger(__name__)


def _name(dtype: torch.dtype | None) -> str | None:
    return None if dtype is None else str(dtype).removeprefix("torch.")


def _zero_optimizer(optimizer: Any) -> Any | None:
    """DeepSpeed's ZeRO optimizer under accelerate's wrapper (it has the effective dtypes), or None."""
    for _ in range(
        3
    ):  # accelerate's DeepSpeedOptimizerWrapper -> DeepSpeedZeroOptimizer(_Stage3) -> torch optimizer
        if optimizer is None or hasattr(optimizer, "gradient_accumulation_dtype"):
            return optimizer
        optimizer = getattr(optimizer, "optimizer", None)
    return None


def effective_precision(model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """Compute, gradient-accumulation and gradient-reduction dtypes as the engine will use them.

    Without DeepSpeed, gradients have the dtype of the trainable weights and DDP reduces them in that dtype.
    """
    zero = _zero_optimizer(optimizer)
    if zero is not None:
        return {
            "deepspeed": getattr(zero, "zero_stage_string", "ZeRO-3"),  # only stage 3's optimizer lacks it
            "weights": _name(zero.dtype),
            "grad_accum": _name(zero.gradient_accumulation_dtype),
            "grad_reduce": _name(zero.communication_data_type),
        }
    dtype = next((p.dtype for p in model.parameters() if p.requires_grad), None)
    return {
        "deepspeed": None,
        "weights": _name(dtype),
        "grad_accum": _name(dtype),
        "grad_reduce": _name(dtype),
    }


def low_precision_warning(precision: dict[str, Any]) -> str | None:
    """A warning when a bf16/fp16 run accumulates or reduces gradients below fp32 (verl does both in fp32)."""
    low = [k for k in ("grad_accum", "grad_reduce") if precision[k] in ("bfloat16", "float16")]
    if not low:
        return None
    return (
        f"gradients: {', '.join(f'{k} in {precision[k]}' for k in low)} (verl accumulates and reduces in float32). "
        "Use accelerate_configs/zero{2,3}.yaml, whose DeepSpeed files set data_types.grad_accum_dtype and "
        "communication_data_type to fp32, or dtype: float32 with bf16: true without DeepSpeed."
    )


class PrecisionCallback(TrainerCallback):
    """At train start: log the effective dtypes, record them as `precision` in the run info file, warn if low."""

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        precision = effective_precision(kwargs["model"], kwargs.get("optimizer"))
        if not state.is_world_process_zero:
            return
        logger.info("Precision: %s", precision)
        warning = low_precision_warning(precision)
        if warning:
            logger.warning("%s", warning)
        path = Path(args.output_dir) / RUN_INFO_FILE
        if path.exists():
            info = json.loads(path.read_text())
            atomic_write_text(path, json.dumps({**info, "precision": precision}, indent=2))
