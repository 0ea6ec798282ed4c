"""`Engine`: a generation backend for a model folder, started on first use and able to take another checkpoint's
weights in place, so that a checkpoint sweep starts vLLM (or loads the transformers model) once.

`oneshot_trl.eval.generate` holds the backends themselves; this module holds their life cycle: when to build one
(lazily: a resumed eval with nothing left loads no model), when a new checkpoint can be loaded into the running
one (same architecture and tokenizer: `load_weights`) and when it needs a new engine, and closing it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oneshot_trl.eval.generate import BACKENDS, make_generator

logger = logging.getLogger(__name__)

_IDENTITY_FREE_CONFIG_KEYS = ("_name_or_path", "transformers_version")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


def _architecture(path: str | None) -> tuple[str, ...] | None:
    """What must match for one engine to serve two checkpoints: config.json (less its provenance keys) and the
    tokenizer files; None when `path` is not a local model folder."""
    if path is None or not (Path(path) / "config.json").is_file():
        return None
    config = json.loads((Path(path) / "config.json").read_text())
    for key in _IDENTITY_FREE_CONFIG_KEYS:
        config.pop(key, None)
    tokenizer = [
        (Path(path) / name).read_bytes() for name in _TOKENIZER_FILES if (Path(path) / name).is_file()
    ]
    return (json.dumps(config, sort_keys=True), *(hashlib.sha256(b).hexdigest() for b in tokenizer))


class Engine:
    """A generator for a model folder, built on first use (a resumed eval with nothing left loads no model), whose
    weights `load` replaces by another checkpoint's in place: a checkpoint sweep starts vLLM (or loads the
    transformers model) once, not once per revision. A checkpoint of another architecture or tokenizer gets a
    fresh engine instead. `close()` frees what was built."""

    def __init__(
        self,
        backend: str,
        path: str | None = None,
        *,
        trust_remote_code: bool = False,
        **kwargs: Any,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
        self.name = backend
        self.path = path
        self.trust_remote_code = trust_remote_code
        self.kwargs = kwargs
        self.builds = 0  # engines started (a sweep with weight reloads: 1)
        self.reloads = 0  # checkpoints loaded into a running engine
        self._generator: Any = None

    @property
    def generator(self) -> Any:
        if self._generator is None:
            if self.path is None:
                raise ValueError("Engine: no model loaded (call load(path) first).")
            self._generator = make_generator(
                self.name, self.path, trust_remote_code=self.trust_remote_code, **self.kwargs
            )
            self.builds += 1
        return self._generator

    def load(self, path: str) -> None:
        """Serve checkpoint `path` from now on (its weights loaded into the running engine when there is one)."""
        if self._generator is not None and path != self.path:
            same = _architecture(path) is not None and _architecture(path) == _architecture(self.path)
            if same:
                self._generator.load_weights(path, trust_remote_code=self.trust_remote_code)
                self.reloads += 1
            else:
                logger.info(
                    "%s differs from %s in architecture or tokenizer: starting a new engine.", path, self.path
                )
                self.close()
        self.path = path

    @property
    def tokenizer(self) -> Any:
        return self.generator.tokenizer

    @property
    def chunk_sequences(self) -> int:
        return self.generator.chunk_sequences

    @property
    def last_num_tokens(self) -> list[list[int]]:
        return self.generator.last_num_tokens

    @property
    def max_context(self) -> int | None:
        return self.generator.max_context

    def generate(self, prompts: Sequence[str], **kwargs: Any) -> list[list[str]]:
        return self.generator.generate(prompts, **kwargs)

    def close(self) -> None:
        if self._generator is not None and hasattr(self._generator, "close"):
            self._generator.close()
        self._generator = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
