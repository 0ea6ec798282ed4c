"""What one evaluation is asked to do: `EvalRequest` (problems, protocol, model, output, options).

The command lines (`oneshot-trl eval`, `contamination`), the in-training eval, the lab and the bench turn names and
flags into these objects at their edge; `oneshot_trl.eval.runner.evaluate(request, generator)` runs one, with the
generation backend passed as an object (`oneshot_trl.eval.generate`), so no flag travels further than its parser.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oneshot_trl.eval.benchmarks import Problem
from oneshot_trl.eval.protocols import Protocol
from oneshot_trl.eval.sharding import Shard
from oneshot_trl.models import resolve_model


@dataclass(frozen=True)
class ModelRef:
    """Which weights the samples belong to (recorded in run.json and results.json; checked on resume)."""

    name: str = field(metadata={"help": "Display name: the --model given, or the loaded model's name."})
    path: str | None = field(default=None, metadata={"help": "Local directory of the weights, when known."})
    revision: str | None = field(default=None, metadata={"help": "Hub branch, tag or sha."})
    commit_sha: str | None = field(default=None, metadata={"help": "The revision's resolved commit."})

    @classmethod
    def resolve(cls, model: str | os.PathLike, revision: str | None = None) -> ModelRef:
        """A local directory or Hub id (downloaded at `revision`) with its local path and commit sha."""
        resolved = resolve_model(str(model), revision=revision)
        return cls(str(model), resolved.path, resolved.revision, resolved.commit_sha)

    @classmethod
    def of(cls, model: Any, revision: str | None = None) -> ModelRef:
        """A label for a loaded model object (its `name_or_path`) or a string taken as is (not resolved)."""
        if isinstance(model, (str, os.PathLike)):
            return cls(str(model), None, revision, None)
        name = getattr(model, "name_or_path", None) or getattr(
            getattr(model, "config", None), "_name_or_path", None
        )
        return cls(str(name or type(model).__name__), None, revision, None)


@dataclass(frozen=True)
class EvalOutput:
    """Where the files go (none: results are only returned) and what to do with files already there."""

    dir: Path | None = field(
        default=None, metadata={"help": "samples.jsonl, run.json, results.json go here."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Discard samples of another model or protocol."})
    audit: bool = field(default=False, metadata={"help": "Grade with both graders; write audit.jsonl."})

    def __post_init__(self) -> None:
        if self.dir is not None and not isinstance(self.dir, Path):
            object.__setattr__(self, "dir", Path(self.dir))


@dataclass(frozen=True)
class EvalOptions:
    """How the run behaves (nothing here changes a number)."""

    progress: bool = field(default=True, metadata={"help": "A progress bar per benchmark."})
    shard: Shard = field(
        default_factory=Shard, metadata={"help": "This process's part of a distributed eval."}
    )
    check_context: bool = field(
        default=True,
        metadata={
            "help": "Refuse prompts + max_new_tokens longer than the model's context before generating."
        },
    )


@dataclass(frozen=True)
class EvalRequest:
    """One evaluation: these problems, under this protocol, of this model, into this output."""

    problems: Mapping[str, Sequence[Problem]] = field(metadata={"help": "{benchmark name: its problems}."})
    protocol: Protocol = field(metadata={"help": "The protocol, overrides applied (its hash is recorded)."})
    model: ModelRef = field(metadata={"help": "The weights evaluated (what the samples belong to)."})
    output: EvalOutput = field(default_factory=EvalOutput)
    options: EvalOptions = field(default_factory=EvalOptions)
    limit: int | None = field(
        default=None, metadata={"help": "The per-benchmark cut applied (recorded only)."}
    )
    seeds: tuple[int, ...] | None = field(
        default=None,
        metadata={
            "help": "Sampling seeds: sampled benchmarks once per seed, greedy ones once (`eval.seeds`)."
        },
    )

    def replace(self, **changes: Any) -> EvalRequest:
        return dataclasses.replace(self, **changes)
