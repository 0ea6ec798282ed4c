"""What the GPU smoke (`oneshot_trl.smoke`) needs from the machine: the GPU, driver and CUDA it ran on, peak
memory per phase, and a tokenizer for a random model of any vocabulary size."""

from __future__ import annotations

import json
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


def gpu_info() -> dict[str, Any] | None:
    """GPU 0's name and memory, the driver, the CUDA version the driver supports and the one torch was built with;
    None without an NVIDIA GPU."""
    query = _nvidia_smi(
        "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits", "--id=0"
    )
    if not query:
        return None
    try:
        name, driver, total_mib = (x.strip() for x in query.strip().rsplit(",", 2))
        memory_gib = int(total_mib) / 1024
    except ValueError:
        return None
    header = re.search(r"CUDA Version:\s*([\d.]+)", _nvidia_smi() or "")
    import torch  # torch.version.cuda: no CUDA context is created

    return {
        "gpu": name,
        "memory_total_gib": round(memory_gib, 1),
        "driver": driver,
        "cuda_driver": header.group(1) if header else None,
        "cuda_torch": torch.version.cuda,
    }


class MemorySampler:
    """Peak memory while a phase runs, sampled every 200 ms: on a GPU the device's used memory (every process,
    vLLM's share included, from `nvidia-smi`), on CPU the summed RSS of this process's descendants."""

    def __init__(self, cpu: bool = False) -> None:
        self.cpu = cpu
        self._peak_mib = 0.0
        self._stop = threading.Event()
        self._proc = None
        if cpu:
            self._thread = threading.Thread(target=self._sample_rss, daemon=True)
        else:
            cmd = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0",
                   "-lms", str(int(SAMPLE_EVERY_S * 1000))]  # fmt: skip
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            self._thread = threading.Thread(target=self._read_nvidia_smi, daemon=True)
        self._thread.start()

    @property
    def peak_gib(self) -> float:
        return self._peak_mib / 1024

    def reset(self) -> None:
        self._peak_mib = 0.0

    def _read_nvidia_smi(self) -> None:
        for line in self._proc.stdout:  # type: ignore[union-attr]
            if line.strip().isdigit():
                self._peak_mib = max(self._peak_mib, float(line))

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
            self._peak_mib = max(self._peak_mib, total / 2**20)

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
