"""One evaluation spread over the processes of a distributed job (the in-training eval: every training rank).

`evaluate(..., shard=...)` runs on every process in lockstep: the main process owns the output files and
decides what is left to do (resume); each chunk of problems is split into contiguous parts, each process
generates and grades its part, and the rows are gathered back in order on every process. Processes that share
one engine (a vLLM tensor-parallel group) form one part: all of them generate it (the engine needs them all),
only the group's first process grades and contributes rows.

`Shard()` is the single-process default: no collective is ever called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Shard:
    index: int = field(default=0, metadata={"help": "This process's part (its engine group's index)."})
    count: int = field(default=1, metadata={"help": "Parts a chunk is split into (engine groups)."})
    is_main: bool = field(default=True, metadata={"help": "The process that reads and writes the files."})
    contributes: bool = field(default=True, metadata={"help": "First process of its group: grades its part."})

    @classmethod
    def from_accelerator(cls, accelerator: Any, group_size: int = 1) -> Shard:
        """This process's shard in an accelerate job whose processes form engine groups of `group_size`."""
        if accelerator.num_processes % group_size:
            raise ValueError(f"{group_size} processes per engine do not divide {accelerator.num_processes}.")
        return cls(
            index=accelerator.process_index // group_size,
            count=accelerator.num_processes // group_size,
            is_main=accelerator.is_main_process,
            contributes=accelerator.process_index % group_size == 0,
        )

    @property
    def distributed(self) -> bool:
        return self.count > 1 or not (self.is_main and self.contributes)

    def part(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous part of `items` (sizes differ by at most one; parts may be empty)."""
        size, extra = divmod(len(items), self.count)
        start = self.index * size + min(self.index, extra)
        return list(items[start : start + size + (self.index < extra)])

    def map(self, items: Sequence[T], fn: Callable[[list[T]], list[R]]) -> list[R]:
        """`fn` over this process's part; every process gets the results of all parts, in the order of `items`.

        `fn` is called on every process (even with an empty part): it may hold collectives of its own.
        """
        mine = fn(self.part(items))
        if not self.distributed:
            return mine
        from accelerate.utils import gather_object

        return gather_object(mine if self.contributes else [])

    def from_main(self, fn: Callable[[], R]) -> R:
        """`fn()` run on the main process only, its result (or its exception) handed to every process."""
        if not self.distributed:
            return fn()
        from accelerate.utils import broadcast_object_list

        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = (fn(), None)
            except Exception as err:  # re-raised on every process, so none is left waiting
                box[0] = (None, err)
        result, error = broadcast_object_list(box)[0]
        if error is not None:
            raise error
        return result
