"""What the GPU smoke (`oneshot_trl.smoke`) needs from the machine: the visible GPUs, driver and CUDA it ran on, peak
memory per phase and GPU, and a tokenizer for a random model of any vocabulary size."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

SAMPLE_EVERY_S = 0.2


def _nvidia_smi(*args: str) -> str | None:
    try:
        return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def visible_gpus() -> str | None:
    """The GPUs the run may use, as nvidia-smi's --id takes them (indices or UUIDs, comma-separated), from
    CUDA_VISIBLE_DEVICES; None: all of them."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return None if value is None else ",".join(v.strip() for v in value.split(",") if v.strip())


def _query(fields: str, ids: str | None) -> list[list[str]]:
    out = _nvidia_smi(
        f"--query-gpu={fields}", "--format=csv,noheader,nounits", *([f"--id={ids}"] if ids else [])
    )
    return [[x.strip() for x in line.split(",")] for line in (out or "").strip().splitlines() if line.strip()]


def gpu_info() -> dict[str, Any] | None:
    """The visible GPUs (CUDA_VISIBLE_DEVICES): their names, count and smallest memory, the driver, the CUDA
    version the driver supports and the one torch was built with; None without a visible NVIDIA GPU."""
    rows = _query("index,name,driver_version,memory.total", visible_gpus())
    try:
        gpus = [(index, name, driver, int(total) / 1024) for index, name, driver, total in rows]
    except ValueError:
        return None
    if not gpus:
        return None
    header = re.search(r"CUDA Version:\s*([\d.]+)", _nvidia_smi() or "")
    import torch  # torch.version.cuda: no CUDA context is created

    return {
        "gpu": gpus[0][1],
        "gpus": [name for _, name, _, _ in gpus],
        "gpu_indices": [index for index, _, _, _ in gpus],
        "count": len(gpus),
        "memory_total_gib": round(min(m for _, _, _, m in gpus), 1),
        "driver": gpus[0][2],
        "cuda_driver": header.group(1) if header else None,
        "cuda_torch": torch.version.cuda,
    }


class MemorySampler:
    """Peak memory while a phase runs, sampled every 200 ms: on GPUs the used memory of each GPU the run may use
    (CUDA_VISIBLE_DEVICES; every process, vLLM's share included, from `nvidia-smi`), on CPU the summed RSS of this
    process's descendants. `peak_gib` is the highest single GPU's peak (what an out-of-memory depends on)."""

    def __init__(self, cpu: bool = False) -> None:
        self.cpu = cpu
        self._peaks_mib: dict[str, float] = {}
        self._stop = threading.Event()
        self._proc = None
        if cpu:
            self._thread = threading.Thread(target=self._sample_rss, daemon=True)
        else:
            ids = visible_gpus()
            cmd = ["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits",
                   *([f"--id={ids}"] if ids else []), "-lms", str(int(SAMPLE_EVERY_S * 1000))]  # fmt: skip
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            self._thread = threading.Thread(target=self._read_nvidia_smi, daemon=True)
        self._thread.start()

    @property
    def peak_gib(self) -> float:
        return max(self._peaks_mib.values(), default=0.0) / 1024

    @property
    def per_gpu_gib(self) -> dict[str, float]:
        return {k: round(v / 1024, 2) for k, v in sorted(self._peaks_mib.items())}

    def reset(self) -> None:
        self._peaks_mib = {}

    def _record(self, key: str, mib: float) -> None:
        self._peaks_mib[key] = max(self._peaks_mib.get(key, 0.0), mib)

    def _read_nvidia_smi(self) -> None:
        for line in self._proc.stdout:  # type: ignore[union-attr]
            index, _, used = line.partition(",")
            if used.strip().isdigit():
                self._record(index.strip(), float(used))

    def _sample_rss(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(SAMPLE_EVERY_S):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # exited between listing and reading
                    continue
            self._record("cpu", total / 2**20)

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()
        self._thread.join(timeout=5)


def padded_tokenizer(vocab_size: int) -> Any:
    """The lab's byte-level BPE with filler tokens '<fillN>' appended up to exactly `vocab_size` ids, so that any
    id a random model samples decodes."""
    from transformers import AutoTokenizer

    from oneshot_trl.lab.tiny import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer().save_pretrained(tmp)
        path = Path(tmp) / "tokenizer.json"
        spec = json.loads(path.read_text())
        vocab = spec["model"]["vocab"]
        assert all(t["id"] < len(vocab) for t in spec["added_tokens"]), "special tokens live in the BPE vocab"
        vocab.update({f"<fill{i}>": i for i in range(len(vocab), vocab_size)})
        path.write_text(json.dumps(spec))
        return AutoTokenizer.from_pretrained(tmp)
