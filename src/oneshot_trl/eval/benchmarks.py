"""Benchmarks: the paper's six bundled evaluation sets, and any other dataset of (problem, answer) rows.

Gold answers are read exactly as the official Qwen2.5-Math harness reads them
(`Qwen2.5-Eval/evaluation/parser.py::parse_ground_truth`; docs/evaluation.md#benchmarks-and-metrics): MATH500 and Minerva take the
last `\\boxed{}` of the reference solution, OlympiadBench `final_answer[0].strip("$")`, AIME/AMC the `answer`
field (AMC floats such as `27.0` become `"27"`). Normalisation (`strip_string`) is the grader's job, so the gold
kept here is the raw extracted string.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from oneshot_trl.eval.problem import Problem
from oneshot_trl.eval.random_calc import generate, is_random_calc, parse_seed
from oneshot_trl.files import read_jsonl, resource_path
from oneshot_trl.grading.boxes import gold_string, last_boxed
from oneshot_trl.paper_results import SIX_BENCHMARKS  # the paper's six, in the order of its tables
from oneshot_trl.validate import InputError

logger = logging.getLogger(__name__)

# `parse_question` of the official harness: the first of these fields that is present.
QUESTION_FIELDS = ("question", "problem", "Question", "input")


def _boxed_of_solution(row: dict) -> str:
    return last_boxed(row["solution"]) or ""


def _olympiad_gold(row: dict) -> str:
    return row["final_answer"][0].strip("$")


def _answer_field_gold(row: dict) -> str:
    return gold_string(row["answer"])


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    filename: str  # under oneshot_trl/resources/benchmarks/
    size: int  # number of problems (checked when loading)
    id_field: str | None  # None: the row index is the id
    gold: Callable[[dict], str]
    description: str


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("math500", "math500.jsonl", 500, "unique_id", _boxed_of_solution,
                      "MATH500 (Lightman et al. split of MATH); gold = last \\boxed{} of the solution."),
        BenchmarkSpec("aime24", "aime24.jsonl", 30, "id", _answer_field_gold, "AIME 2024 (I and II)."),
        BenchmarkSpec("amc23", "amc23.jsonl", 40, "id", _answer_field_gold, "AMC 2023 (12A and 12B)."),
        BenchmarkSpec("minerva_math", "minerva_math.jsonl", 272, "idx", _boxed_of_solution,
                      "Minerva Math (OCW); gold = last \\boxed{} of the solution, units kept."),
        BenchmarkSpec("olympiadbench", "olympiadbench.jsonl", 675, "id", _olympiad_gold,
                      "OlympiadBench (English, text-only math, open-ended); gold = final_answer[0]."),
        BenchmarkSpec("aime25", "aime25.jsonl", 30, None, _answer_field_gold, "AIME 2025 (I and II)."),
    )
}  # fmt: skip


# Benchmarks generated at eval time (no file): `random-calc` and `random-calc@SEED` (eval/random_calc.py).
GENERATED_BENCHMARKS: tuple[str, ...] = ("random-calc",)


def _is_generated(name: str) -> bool:
    return is_random_calc(name)


def get_benchmark(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        close = difflib.get_close_matches(str(name), [*BENCHMARKS, *GENERATED_BENCHMARKS], n=1)
        raise InputError(
            f"Unknown benchmark {name!r}.{f' Did you mean {close[0]}?' if close else ''} "
            f"Bundled benchmarks: {', '.join(BENCHMARKS)}; generated: "
            "random-calc[@SEED]. "
            "For another dataset use `--dataset PATH_OR_HUB_ID` (or `load_dataset_problems`)."
        )
    return BENCHMARKS[name]


def parse_benchmark_names(value: str | Iterable[str]) -> list[str]:
    """`"math500,aime24"` / `"all"` / a list -> validated names, duplicates removed, order kept."""
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [n.strip() for n in value]
    names = [n for n in names if n]
    if names == ["all"]:
        return list(SIX_BENCHMARKS)
    if not names:
        raise InputError(f"No benchmark given. Choose from: all, {', '.join(BENCHMARKS)}.")
    for name in names:
        if _is_generated(name):
            parse_seed(name)  # a bad seed fails here, before any model is loaded
        else:
            get_benchmark(name)
    return list(dict.fromkeys(names))


def question_of(row: dict, problem_field: str | None = None) -> str:
    """Question text of a row; `problem_field=None` follows the official `parse_question` field order."""
    if problem_field is not None:
        if problem_field not in row:
            raise KeyError(f"Problem field {problem_field!r} not in row (fields: {', '.join(row)}).")
        return str(row[problem_field])
    for key in QUESTION_FIELDS:
        if key in row and row[key] is not None:
            return str(row[key])
    raise KeyError(f"None of the question fields {QUESTION_FIELDS} is in the row (fields: {', '.join(row)}).")


def _official_question(question: str, gold: str) -> str:
    # As `parse_question`: yes/no and true/false golds get a hint appended, then the text is stripped.
    gold_lower = gold.lower()
    if gold_lower in ("true", "false"):
        question += " (True or False)"
    if gold_lower in ("yes", "no"):
        question += " (Yes or No)"
    return question.strip()


def _rows_to_problems(
    rows: Iterable[dict],
    benchmark: str,
    gold_fn: Callable[[dict], str],
    id_field: str | None,
    problem_field: str | None = None,
) -> list[Problem]:
    problems = []
    for index, row in enumerate(rows):
        gold = gold_fn(row)
        pid = row.get(id_field) if id_field else None
        problems.append(
            Problem(
                id=str(index if pid is None else pid),
                problem=_official_question(question_of(row, problem_field), gold),
                gold=gold,
                benchmark=benchmark,
            )
        )
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        # Resume keys on the id, so duplicates would silently skip problems: fall back to row indices.
        logger.warning("Benchmark %s has duplicate ids in field %r; using row indices.", benchmark, id_field)
        problems = [Problem(str(i), p.problem, p.gold, p.benchmark) for i, p in enumerate(problems)]
    return problems


def load_benchmark(name: str) -> list[Problem]:
    """The bundled benchmark `name` as a list of problems (in file order), or a generated one's problems."""
    if _is_generated(name):
        return generate(parse_seed(name), name=name)
    spec = get_benchmark(name)
    rows = read_jsonl(resource_path("benchmarks", spec.filename))
    if len(rows) != spec.size:
        raise RuntimeError(
            f"Bundled {spec.filename} has {len(rows)} rows, expected {spec.size}: corrupt install?"
        )
    return _rows_to_problems(rows, name, spec.gold, spec.id_field)


def load_problem_sets(
    benchmarks: str | Sequence[str] = SIX_BENCHMARKS, limit: int | None = None
) -> dict[str, list[Problem]]:
    """Bundled benchmarks by name (`"all"`, `"math500,aime24"` or a list), each cut to its first `limit` problems."""
    return {name: load_benchmark(name)[:limit] for name in parse_benchmark_names(benchmarks)}


def _default_answer(row: dict) -> str:
    """Gold of a row with no `--answer-field`: `answer`, else OlympiadBench's `final_answer`, else the last
    `\\boxed{}` of `solution` (the official harness' rules for its datasets)."""
    if row.get("answer") is not None:
        return gold_string(row["answer"])
    if row.get("final_answer"):
        return _olympiad_gold(row)
    if isinstance(row.get("solution"), str):
        return _boxed_of_solution(row)
    raise KeyError(
        f"Cannot find the gold answer in a row with fields {', '.join(row)}: pass `--answer-field`."
    )


def _load_rows(path_or_hub_id: str, split: str, revision: str | None) -> list[dict]:
    import datasets

    path = Path(path_or_hub_id)
    if path.is_file():
        suffix = path.suffix.lower()
        builder = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(suffix)
        if builder is None:
            raise ValueError(
                f"Unsupported dataset file type {suffix!r} ({path}): use JSON, JSONL, Parquet or CSV."
            )
        ds = datasets.load_dataset(builder, data_files=str(path), split="train")
    elif path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        ds = datasets.load_from_disk(str(path))  # written by `save_to_disk`
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ValueError(f"Split {split!r} not in {path} (splits: {', '.join(ds)}). Pass `--split`.")
            ds = ds[split]
    else:
        # A Hub dataset id or a local folder of data files (load_dataset handles both).
        try:
            ds = datasets.load_dataset(path_or_hub_id, split=split, revision=revision)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"Could not load dataset {path_or_hub_id!r} (split {split!r}): {err}") from err
    return [dict(row) for row in ds]


def load_dataset_problems(
    path_or_hub_id: str,
    problem_field: str | None = None,
    answer_field: str | None = None,
    split: str = "test",
    revision: str | None = None,
    name: str | None = None,
) -> list[Problem]:
    """Problems from any dataset: a local JSON/JSONL/Parquet/CSV file, a `save_to_disk` folder, or a Hub id.

    `problem_field=None` uses the official field order (question, problem, Question, input); `answer_field=None`
    uses `answer`, then `final_answer`, then the last `\\boxed{}` of `solution`. `name` is the benchmark name in
    the results (default: the file stem or the last part of the Hub id).
    """
    rows = _load_rows(path_or_hub_id, split, revision)
    if not rows:
        raise InputError(f"Dataset {path_or_hub_id!r} (split {split!r}) has no rows: nothing to evaluate.")
    if answer_field is not None and answer_field not in rows[0]:
        raise KeyError(f"Answer field {answer_field!r} not in dataset (fields: {', '.join(rows[0])}).")
    name = name or dataset_name(path_or_hub_id)
    gold_fn = _default_answer if answer_field is None else (lambda row: gold_string(row[answer_field]))
    id_field = next((f for f in ("id", "unique_id", "idx") if f in rows[0]), None)
    return _rows_to_problems(rows, name, gold_fn, id_field, problem_field)


def dataset_name(path_or_hub_id: str) -> str:
    path = Path(path_or_hub_id)
    return path.stem if path.suffix else path.name or path_or_hub_id.rstrip("/").split("/")[-1]
