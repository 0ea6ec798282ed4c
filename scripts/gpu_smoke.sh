#!/usr/bin/env bash
# Short GPU check of the real-scale path (a few minutes on one GPU, fully offline):
# random-init Qwen2.5-Math-1.5B architecture (real config values, no download), 4 GRPO steps with the official
# values (8 prompts x 8 completions per step) through the recipes' path: accelerate + DeepSpeed ZeRO-3 (1 process)
# and vLLM colocate, when deepspeed / vllm are installed; then eval on 8 MATH500 problems. Step times and peak GPU
# memory go to bench/results/gpu-smoke.json. Any flag is passed on (see --help), e.g.
#   scripts/gpu_smoke.sh --model Qwen/Qwen2.5-Math-7B --steps 2
#   scripts/gpu_smoke.sh --no-vllm
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" -m oneshot_trl.smoke "$@"
