"""`Problem`: one evaluation problem, whatever its source (a bundled benchmark, a dataset, a generator)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    id: str  # stable id inside its benchmark (the dataset's own id field when it has one, else the row index)
    problem: str  # question text as the prompt template receives it
    gold: str  # raw gold answer string (the grader normalises it)
    benchmark: str
