"""Checkpoint sweeps (`oneshot-trl eval --revisions` / `--all-revisions`): one engine per process, each revision's
weights loaded into it, the revisions spread over the processes of a job.

Starting vLLM costs tens of seconds (compilation, KV-cache profiling); loading a checkpoint's weights into a running
engine costs the read of the weights. So a process builds its `Engine` once and `load`s revision after revision
into it (a revision of another architecture or tokenizer gets a new engine). Under `accelerate launch` (or any
launcher that sets RANK/WORLD_SIZE), process r evaluates revisions r, r+W, r+2W, ... into their own folders, each
exactly as one process would, and the main process gathers every revision's results for the combined summary. A
revision's numbers do not depend on which process evaluated it: each is a complete, separately resumable eval.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from oneshot_trl.eval.generate import Engine
from oneshot_trl.eval.request import EvalRequest, ModelRef
from oneshot_trl.eval.runner import evaluate
from oneshot_trl.eval.seeds import evaluate_seeds

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place in a job (RANK / WORLD_SIZE as torchrun and accelerate set them)."""

    index: int = 0
    count: int = 1

    @classmethod
    def from_env(cls) -> Ranks:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    def part(self, items: Sequence[Any]) -> list[Any]:
        """Every `count`-th item from `index` on (round robin: neighbouring checkpoints go to different ranks)."""
        return list(items[self.index :: self.count])

    def gather(self, mine: dict[str, Any]) -> dict[str, Any]:
        """Every rank's {revision: results}, merged (identical on all ranks)."""
        if self.count == 1:
            return mine
        from accelerate.utils import gather_object

        merged: dict[str, Any] = {}
        for part in gather_object([mine]):
            merged.update(part)
        return merged


def evaluate_revisions(
    model: str,
    revisions: Sequence[str | None],
    request: EvalRequest,
    engine: Engine,
    output_dir_for: Callable[[str | None], Path],
    *,
    seeds: Sequence[int] | None = None,
    ranks: Ranks | None = None,
    on_result: Callable[[str | None, Path, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate `request` on each revision of `model` (this process's share of them) through one `engine`;
    returns {revision or "main": results} of all revisions (gathered from every process).

    `output_dir_for(revision)` is that revision's eval folder; `on_result(revision, folder, results)` is called
    as each of this process's revisions finishes (printing, pushing)."""
    ranks = ranks or Ranks()
    mine: dict[str, dict[str, Any]] = {}
    for revision in ranks.part(list(revisions)):
        ref = ModelRef.resolve(model, revision)
        engine.load(ref.path)
        folder = output_dir_for(revision)
        part = request.replace(model=ref, output=dataclasses.replace(request.output, dir=folder))
        results = evaluate(part, engine) if seeds is None else evaluate_seeds(part, engine, seeds)
        mine[revision or "main"] = results
        if on_result is not None:
            on_result(revision, folder, results)
    if engine.builds or engine.reloads:
        logger.info("%d revision(s) through %d engine start(s) and %d weight reload(s).",
                    len(mine), engine.builds, engine.reloads)  # fmt: skip
    gathered = ranks.gather(mine)
    return {label: gathered[label] for label in (r or "main" for r in revisions) if label in gathered}
