"""Training examples: load them (bundled pi sets, DSR-sub rows, a dataset, or one inline problem), check the
gold answers, repeat them to fill the run and turn them into prompts.

The bundled files are the official ones (verl format, `resources/train/`): each row carries
`prompt=[{"role": "user", "content": problem + suffix}]`, `reward_model.ground_truth` and `extra_info.index`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from datasets import Dataset

from oneshot_trl.config import OneShotArguments
from oneshot_trl.files import read_jsonl, resource_path
from oneshot_trl.grading import GoldParseError, check_gold, gold_string
from oneshot_trl.prompts import TRAIN_PROMPT_SUFFIX

logger = logging.getLogger(__name__)


# Bundled set name -> file under resources/train (the official repository's file names).
BUNDLED_FILES = {
    "pi1": "pi1_r128.jsonl",
    "pi2": "pi2_r128.jsonl",
    "pi13": "pi13_r128.jsonl",
    "pi1209": "pi1209_r128.jsonl",
    "pi1_pi13": "merge_pi1_pi13_r128.jsonl",
    "pi1_pi2_pi13_pi1209": "merge_pi1_pi2_pi13_pi1209_r128.jsonl",
    "dsr_sub": "dsr_sub.jsonl",
}


@dataclass(frozen=True)
class Example:
    """One distinct training problem."""

    example_id: str  # stable id used in metrics and histories, e.g. "dsr_sub:124"
    problem: str  # without the training suffix
    answer: str  # gold answer, as the grader reads it
    index: int | None = None  # DSR-sub index when known


def strip_suffix(text: str, suffix: str = TRAIN_PROMPT_SUFFIX) -> str:
    return text[: -len(suffix)] if text.endswith(suffix) else text


def example_from_verl_row(row: dict[str, Any], source: str = "dsr_sub") -> Example:
    """Read an official (verl-format) row: the user turn minus the suffix, the ground truth, the index."""
    index = (row.get("extra_info") or {}).get("index")
    problem = strip_suffix(row["prompt"][-1]["content"])
    example_id = (
        f"{source}:{index}"
        if index is not None
        else f"{source}:{hashlib.sha1(problem.encode()).hexdigest()[:8]}"
    )
    return Example(example_id, problem, str(row["reward_model"]["ground_truth"]), index)


def unique_in_order(examples: Iterable[Example]) -> list[Example]:
    seen: dict[str, Example] = {}
    for ex in examples:
        seen.setdefault(ex.example_id, ex)
    return list(seen.values())


@cache
def dsr_sub() -> tuple[Example, ...]:
    """The 1,209 DSR-sub examples, in file order (row number == index)."""
    return tuple(
        example_from_verl_row(r) for r in read_jsonl(resource_path("train", BUNDLED_FILES["dsr_sub"]))
    )


@cache
def pi_rank_to_index() -> dict[int, int]:
    """pi rank (1 = highest historical variance) -> DSR-sub index, from the official ranking."""
    rows = read_jsonl(resource_path("train", "dsr_sub_historical_variance_ranking.jsonl"))
    return {r["pi_rank"]: r["dsr_sub_index"] for r in rows}


def _by_index(indices: Sequence[int]) -> list[Example]:
    table = dsr_sub()
    bad = [i for i in indices if not 0 <= i < len(table)]
    if bad:
        raise ValueError(f"DSR-sub index out of range (0..{len(table) - 1}): {bad}")
    return [table[i] for i in indices]


def load_dataset_examples(args: OneShotArguments) -> list[Example]:
    """Rows of a Hub dataset, a local file or a local dataset directory, selected by id."""
    import datasets

    name = args.dataset_name
    assert name is not None
    path = Path(name)
    if path.is_dir():  # a dataset saved with `save_to_disk`
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[args.dataset_split]
    elif path.is_file():
        builder = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
        if builder is None:
            raise ValueError(
                f"Unsupported dataset file type {path.suffix!r} for {path} (use JSON, JSONL, Parquet, CSV)."
            )
        ds = datasets.load_dataset(builder, data_files=str(path), split="train")
    else:
        ds = datasets.load_dataset(
            name, args.dataset_config, split=args.dataset_split, revision=args.dataset_revision
        )

    verl = "prompt" in ds.column_names and "reward_model" in ds.column_names
    if not verl:
        missing = [f for f in (args.problem_field, args.answer_field) if f not in ds.column_names]
        if missing:
            raise ValueError(
                f"Dataset {name} has no column(s) {missing}; columns are {ds.column_names}. "
                "Set problem_field / answer_field."
            )
    if args.id_field and args.id_field not in ds.column_names:
        raise ValueError(f"Dataset {name} has no id column {args.id_field!r}; columns are {ds.column_names}.")
    ids = [str(r[args.id_field]) for r in ds] if args.id_field else [str(i) for i in range(len(ds))]
    wanted = [str(i) for i in args.dataset_ids] if args.dataset_ids else ids
    position = {row_id: n for n, row_id in enumerate(ids)}
    unknown = [i for i in wanted if i not in position]
    if unknown:
        raise ValueError(
            f"Row id(s) {unknown[:5]} not found in {name} ({len(ds)} rows, ids from {args.id_field or 'row numbers'})."
        )
    examples = []
    for row_id in wanted:
        row = ds[position[row_id]]
        if verl:  # official/`oneshot-trl select` rows: a repeated example keeps one id (`dsr_sub:<index>`)
            ex = example_from_verl_row(row)
            example_id = (row.get("extra_info") or {}).get("example_id") or (
                ex.example_id if ex.index is not None else f"{name}:{row_id}"
            )
            examples.append(Example(example_id, ex.problem, ex.answer, ex.index))
        else:
            examples.append(
                Example(f"{name}:{row_id}", str(row[args.problem_field]), gold_string(row[args.answer_field]))
            )
    return unique_in_order(examples)


def load_examples(args: OneShotArguments) -> list[Example]:
    """The distinct training examples the arguments name, with their gold answers checked."""
    if args.train_examples is not None:
        rows = read_jsonl(resource_path("train", BUNDLED_FILES[args.train_examples]))
        examples = unique_in_order(
            example_from_verl_row(r) for r in rows
        )  # ids carry the index: all 1,209 kept
    elif args.dsr_sub_index:
        examples = _by_index(args.dsr_sub_index)
    elif args.pi_rank:
        table = pi_rank_to_index()
        bad = [r for r in args.pi_rank if r not in table]
        if bad:
            raise ValueError(f"pi rank out of range (1..{len(table)}): {bad}")
        examples = _by_index([table[r] for r in args.pi_rank])
    elif args.dataset_name:
        examples = load_dataset_examples(args)
    else:
        examples = [Example("inline:0", str(args.problem), str(args.answer))]
    unparseable = []
    for ex in examples:
        try:
            check_gold(ex.answer, args.grader)
        except GoldParseError:
            unparseable.append(ex)
    if unparseable:
        listing = ", ".join(f"{ex.example_id} ({ex.answer!r})" for ex in unparseable[:10])
        if not args.skip_unparseable_golds:
            raise ValueError(
                f"{len(unparseable)} gold answer(s) cannot be parsed by the {args.grader} grader, so their reward "
                f"would always be 0: {listing}. Fix them, or set skip_unparseable_golds: true to drop them."
            )
        logger.warning(
            "Dropping %d example(s) whose gold answer cannot be parsed: %s", len(unparseable), listing
        )
        examples = [ex for ex in examples if ex not in unparseable]
    return examples


def repeat_in_blocks(examples: Sequence[Example], total: int | None) -> list[Example]:
    """Repeat k examples to `total` rows in blocks of total/k, as the official k-shot files are built."""
    if total is None:
        return list(examples)
    per_example, extra = divmod(total, len(examples))
    if per_example == 0:
        raise ValueError(
            f"dataset_repeat_to ({total}) is smaller than the number of examples ({len(examples)})."
        )
    if extra:
        logger.warning(
            "dataset_repeat_to=%d is not a multiple of %d examples; the first get one more copy.",
            total,
            len(examples),
        )
    return [ex for n, ex in enumerate(examples) for _ in range(per_example + (n < extra))]


def build_prompt(example: Example, args: OneShotArguments, chat: bool) -> str | list[dict[str, str]]:
    text = example.problem + args.prompt_suffix
    if not chat:
        return text
    messages = [{"role": "system", "content": args.system_prompt}] if args.system_prompt else []
    return [*messages, {"role": "user", "content": text}]


def build_train_dataset(examples: Sequence[Example], args: OneShotArguments, tokenizer: Any) -> Dataset:
    """The TRL training dataset: one row per copy, with the gold answer and example id for rewards/metrics."""
    chat = args.prompt_format == "chat" or (args.prompt_format == "auto" and bool(tokenizer.chat_template))
    if args.prompt_format == "chat" and not tokenizer.chat_template:
        raise ValueError("prompt_format is 'chat' but the tokenizer has no chat template; use 'plain'.")
    if args.max_prompt_length is not None:
        for ex in examples:
            prompt = build_prompt(ex, args, chat)
            text = (
                tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
                if chat
                else prompt
            )
            n_tokens = len(tokenizer(text, add_special_tokens=not chat)["input_ids"])
            if n_tokens > args.max_prompt_length:
                raise ValueError(
                    f"Prompt of {ex.example_id} has {n_tokens} tokens > max_prompt_length={args.max_prompt_length}."
                )
    rows = [
        {
            "prompt": build_prompt(ex, args, chat),
            "answer": ex.answer,
            "example_id": ex.example_id,
            "index": ex.index,
        }
        for ex in repeat_in_blocks(examples, args.dataset_repeat_to)
    ]
    logger.info(
        "Training set: %d distinct example(s) -> %d rows (%s prompts).",
        len(examples),
        len(rows),
        "chat" if chat else "plain",
    )
    return Dataset.from_list(rows)


def examples_to_json(examples: Sequence[Example]) -> list[dict[str, Any]]:
    return [asdict(ex) for ex in examples]
