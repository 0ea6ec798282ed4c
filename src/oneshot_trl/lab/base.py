"""The lab's shipped base model: one set of weights on every machine, checked by its content hash.

Pretraining is deterministic for a given machine, but CPU float kernels differ between machines, so a base
pretrained on each machine differs too (issue 23: 950 pretraining steps and a third of answers boxed on one
machine, 600 steps and all boxed on another). The package therefore ships one pretrained base
(`oneshot_trl/resources/lab_base/`: tokenizer, safetensors, `lab_base.json`) and `oneshot-trl lab` starts from
it; `--pretrain` / `--base-seed` still pretrain locally (`oneshot_trl.lab.pretrain`).

`lab_base.json` records the pretraining config and seed, the step count, the forced-strategy accuracies on the
val split, and `content_sha256`: a hash of every other file of the folder. `shipped_base()` recomputes it and
refuses a modified copy; `compare_with_shipped()` says how a local pretraining differs from the shipped base.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from oneshot_trl.files import atomic_write_text, resource_path
from oneshot_trl.lab.pretrain import BaseModelConfig, cache_dir

logger = logging.getLogger(__name__)

SHIPPED_DIR = ("lab_base",)  # under oneshot_trl/resources/
INFO_FILE = "lab_base.json"
PROFILE_FILE = "lab_profile.json"  # written next to a cached base by the lab; not part of the content hash
# A local pretraining "agrees" with the shipped base when each forced-strategy accuracy is within this.
FORCED_ACCURACY_TOLERANCE = 0.03


class ShippedBaseError(RuntimeError):
    """The shipped base model is missing or its files do not hash to the recorded `content_sha256`."""


def content_hash(folder: str | Path) -> str:
    """sha256 over the model and tokenizer files of `folder` (names and bytes, sorted by name)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(
        p for p in folder.iterdir() if p.is_file() and p.name not in (INFO_FILE, PROFILE_FILE)
    ):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return digest.hexdigest()


def shipped_dir() -> Path:
    return resource_path(*SHIPPED_DIR)


def shipped_info() -> dict:
    """The shipped base's `lab_base.json` (config, steps, forced accuracies, content hash)."""
    path = shipped_dir() / INFO_FILE
    if not path.is_file():
        raise ShippedBaseError(f"The lab's shipped base model is missing ({path}); reinstall oneshot-trl.")
    return json.loads(path.read_text())


def shipped_config() -> BaseModelConfig:
    return BaseModelConfig(**shipped_info()["config"])


def verify(folder: str | Path, expected: str) -> None:
    actual = content_hash(folder)
    if actual != expected:
        raise ShippedBaseError(
            f"The lab's base model in {folder} was modified: its files hash to {actual[:12]}, "
            f"{INFO_FILE} records {expected[:12]}. Reinstall oneshot-trl, or pretrain one with "
            "`oneshot-trl lab --pretrain`."
        )


def shipped_base() -> Path:
    """A verified copy of the shipped base in the cache (`lab/shipped-<hash>`), where the lab may write its
    profile next to it; the copy is re-checked against the recorded hash on every call."""
    info = shipped_info()
    expected = info["content_sha256"]
    target = cache_dir() / "lab" / f"shipped-{expected[:12]}"
    if not (target / INFO_FILE).is_file():
        verify(shipped_dir(), expected)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            for path in shipped_dir().iterdir():
                if path.is_file():
                    shutil.copyfile(path, tmp / path.name)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    verify(target, expected)
    logger.info(
        "Using the shipped lab base model (seed %d, content %s)", info["config"]["seed"], expected[:12]
    )
    return target


def compare_with_shipped(local: str | Path) -> dict:
    """How a locally pretrained base relates to the shipped one: same config? same bytes? forced-strategy
    accuracies within `FORCED_ACCURACY_TOLERANCE`? (`agrees`)."""
    shipped = shipped_info()
    info = json.loads((Path(local) / INFO_FILE).read_text())
    same_config = info["config"] == shipped["config"]
    forced_local, forced_shipped = (
        info["forced_strategy_val_accuracy"],
        shipped["forced_strategy_val_accuracy"],
    )
    gaps = {k: round(forced_local[k] - forced_shipped[k], 4) for k in forced_shipped}
    agrees = same_config and all(abs(g) <= FORCED_ACCURACY_TOLERANCE for g in gaps.values())
    return {
        "same_config": same_config,
        "identical_weights": same_config and content_hash(local) == shipped["content_sha256"],
        "steps": {"local": info["steps"], "shipped": shipped["steps"]},
        "forced_accuracy_gap": gaps,
        "agrees": agrees,
    }


def describe(folder: str | Path) -> dict:
    """Where a base model came from, for the results: `shipped` (a verified copy), `pretrained` on this machine
    (with `vs_shipped`, how it compares to the shipped base, when it used the shipped base's settings and seed),
    or `other` (a Hub id or a folder without `lab_base.json`)."""
    folder = Path(folder)
    if not (folder / INFO_FILE).is_file():
        return {"source": "other", "path": str(folder)}
    info = json.loads((folder / INFO_FILE).read_text())
    out = {
        "source": "shipped" if "content_sha256" in info else "pretrained",
        "seed": info["config"]["seed"],
        "steps": info["steps"],
        "forced_strategy_val_accuracy": info["forced_strategy_val_accuracy"],
        "content_sha256": info.get("content_sha256") or content_hash(folder),
    }
    if out["source"] == "pretrained":
        if info["config"] == shipped_info()["config"]:  # the shipped base's own settings, pretrained here
            out["vs_shipped"] = compare_with_shipped(folder)
            if not out["vs_shipped"]["agrees"]:
                logger.warning(
                    "This machine's pretraining of the shipped base's settings disagrees with the shipped base: %s",
                    out["vs_shipped"],
                )
    return out


def ship(folder: str | Path, destination: str | Path | None = None) -> Path:
    """Copy a pretrained base (model, tokenizer, `lab_base.json`) to the package with its content hash
    recorded: how `resources/lab_base/` is made (`python -m oneshot_trl.lab.base FOLDER`)."""
    destination = Path(destination or shipped_dir())
    destination.mkdir(parents=True, exist_ok=True)
    for path in destination.iterdir():
        if path.is_file():
            path.unlink()
    for path in Path(folder).iterdir():
        if path.is_file() and path.name != PROFILE_FILE:
            shutil.copyfile(path, destination / path.name)
    info = json.loads((destination / INFO_FILE).read_text())
    info["content_sha256"] = content_hash(destination)
    atomic_write_text(destination / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return destination


if __name__ == "__main__":
    import sys

    print(ship(sys.argv[1]))
