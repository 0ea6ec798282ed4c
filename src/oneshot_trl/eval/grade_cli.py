"""`oneshot-trl grade FILE.jsonl`: grade a file of {response, gold} rows and print the accuracy.

Works on outputs of any tool (ours, lighteval, verl, the official Qwen2.5-Math harness) as long as
each JSON line has a response field (a string, or a list of strings for several samples) and a gold
answer field. Each row is written back with `"correct"` and `"extracted"` (lists when the response is a
list) and `"error"` when grading hit one (timeout, unparseable gold, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from oneshot_trl import cli_args
from oneshot_trl.eval.benchmarks import BENCHMARKS, GENERATED_BENCHMARKS
from oneshot_trl.eval.random_calc import is_random_calc
from oneshot_trl.files import atomic_writer, same_file
from oneshot_trl.grading import GRADERS, gold_string, grade_batch
from oneshot_trl.grading.official import BENCHMARKS_WITH_RULES
from oneshot_trl.validate import (
    InputError,
    check_choice,
    check_count,
    check_seconds,
    check_writable,
    jsonl_rows,
)

PROG = "oneshot-trl grade"
# The names `--benchmark` (or a row's --benchmark-field) may give: ours, and those with rules of their own in the
# official harness. A misspelling would silently apply no rules (minervamath: 5/5 where minerva_math gives 3/5).
KNOWN_BENCHMARKS = tuple(dict.fromkeys([*BENCHMARKS, *GENERATED_BENCHMARKS, *BENCHMARKS_WITH_RULES]))


def make_parser() -> argparse.ArgumentParser:
    parser = cli_args.ArgumentParser(
        prog="oneshot-trl grade",
        description=__doc__.split("\n\n")[0] + " Rows are written back with the grade of each response.",
    )
    parser.add_argument("file", type=Path, help="JSONL file, one {response, gold} object per line.")
    parser.add_argument(
        "--grader",
        choices=GRADERS,
        default="math-verify",
        help="math-verify (default): Hugging Face math-verify extraction and equivalence; official: the "
        "Qwen2.5-Math harness rules used for the paper's numbers (last \\boxed{}, else 'the answer is', else "
        "the last number; its normalisation and equivalence).",
    )
    parser.add_argument(
        "--response-field",
        default="response",
        help="Field holding the response: a string, or a list of strings (several samples; then "
        "'correct' is a list). Default: response.",
    )
    parser.add_argument(
        "--gold-field",
        default="gold",
        help="Field holding the gold answer (numbers are converted to strings). Default: gold.",
    )
    parser.add_argument(
        "--benchmark",
        default=None,
        help="Benchmark the rows come from (e.g. minerva_math, math500): the official grader's per-benchmark "
        "rules (Minerva keeps units, MATH golds are normalised as the harness does). Default: none.",
    )
    parser.add_argument(
        "--benchmark-field",
        default=None,
        help="Field naming each row's benchmark instead (e.g. 'benchmark' in `oneshot-trl eval`'s "
        "samples.jsonl); rows without it fall back to --benchmark.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Where to write the graded rows (JSONL). Default: FILE with the suffix .graded.jsonl next to it.",
    )
    parser.add_argument(
        "--boxed-only",
        action="store_true",
        help="Training-reward semantics: only the last \\boxed{} of a response counts; no box is wrong.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Number of grading worker processes (default: min(8, CPU count)); 0 grades in this process.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        help="Time limit per answer in seconds (default: 3); an answer over it is graded wrong with error=timeout.",
    )
    return parser


def _gold_string(gold: object) -> str:
    # None is graded wrong with error=unparseable-gold; lists and AMC's 27.0 as the benchmarks read them
    return "" if gold is None else gold_string(gold)


def check_benchmark(name: object, where: str) -> None:
    """A benchmark name grading knows (a did-you-mean for a misspelling), or None."""
    if name is not None and not (isinstance(name, str) and is_random_calc(name)):
        check_choice(where, name, KNOWN_BENCHMARKS)


def main(argv: list[str] | None = None) -> int:
    """Every input checked before grading starts (an InputError: one line, exit 2, from oneshot_trl.cli)."""
    args = make_parser().parse_args(argv)
    output = args.output or args.file.with_name(args.file.name.removesuffix(".jsonl") + ".graded.jsonl")
    check_seconds("--timeout", args.timeout)
    check_count("--workers", args.workers, minimum=0)
    check_benchmark(args.benchmark, "--benchmark")
    check_writable(output, "--output")
    if same_file(output, args.file):  # written before it is fully read, the input would be lost on a failure
        raise InputError(f"--output {output} is the input file itself; write the graded rows elsewhere.")
    try:
        rows_in = list(jsonl_rows(args.file))
    except OSError as e:
        raise InputError(f"cannot read {args.file}: {e.strerror or e}") from e
    if not rows_in:
        raise InputError(f"{args.file} has no rows: nothing to grade.")

    rows, responses, golds, benchmarks, owners = [], [], [], [], []
    for number, row in rows_in:
        missing = [
            f for f in (args.response_field, args.gold_field) if not isinstance(row, dict) or f not in row
        ]
        if missing:
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise InputError(
                f"{args.file}:{number} has no field {missing[0]!r} (fields: {keys}); use --response-field/--gold-field."
            )
        samples = row[args.response_field]
        row_benchmark = (row.get(args.benchmark_field) if args.benchmark_field else None) or args.benchmark
        if args.benchmark_field:
            check_benchmark(row_benchmark, f"{args.file}:{number}: {args.benchmark_field}")
        for response in samples if isinstance(samples, list) else [samples]:
            responses.append("" if response is None else str(response))
            golds.append(_gold_string(row[args.gold_field]))
            benchmarks.append(row_benchmark)
            owners.append(len(rows))
        rows.append(row)

    try:
        grades = grade_batch(
            responses,
            golds,
            grader=args.grader,
            boxed_only=args.boxed_only,
            timeout_s=args.timeout,
            num_workers=args.workers,
            progress=True,
            benchmark=benchmarks,
        )
    except KeyboardInterrupt:  # cli.py prints this note on one line, exit 130
        raise KeyboardInterrupt(
            f"nothing was written ({args.file} is unchanged); rerun to grade it."
        ) from None
    per_row: list[list] = [[] for _ in rows]
    for owner, g in zip(owners, grades, strict=True):
        per_row[owner].append(g)
    unparseable_gold_rows = 0
    for row, row_grades in zip(rows, per_row, strict=True):
        as_list = isinstance(row[args.response_field], list)
        pick = (lambda values: values) if as_list else (lambda values: values[0] if values else None)
        row["correct"] = pick([g.correct for g in row_grades])
        row["extracted"] = pick([g.extracted for g in row_grades])
        if any(g.error for g in row_grades):
            row["error"] = pick([g.error for g in row_grades])
        unparseable_gold_rows += any(g.error == "unparseable-gold" for g in row_grades)

    with atomic_writer(
        output
    ) as f:  # a temporary file renamed into place: a failed write leaves no half file
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    n = len(grades)
    correct = sum(g.correct for g in grades)
    errors = Counter(g.error for g in grades if g.error)
    no_answer = sum(g.extracted is None for g in grades)
    boxed = sum(g.boxed for g in grades)
    accuracy = correct / n if n else 0.0
    named = sorted({b for b in benchmarks if b})
    print(
        f"grader: {args.grader}{' (boxed only)' if args.boxed_only else ''}"
        + (f"  benchmark rules: {', '.join(named)}" if named else "")
    )
    print(f"rows: {len(rows)}  responses: {n}")
    print(f"accuracy: {accuracy:.4f} ({correct}/{n})")
    print(f"boxed: {boxed}  no answer extracted: {no_answer}")
    print("errors: " + (", ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"))
    print(f"wrote {output}")
    if unparseable_gold_rows:
        print(
            f"warning: {unparseable_gold_rows} row(s) have a gold answer the {args.grader} grader cannot parse; "
            "they are graded wrong (error=unparseable-gold).",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":  # as `oneshot-trl grade`, through the CLI's one error path
    from oneshot_trl.cli import run_command

    sys.exit(run_command("grade", sys.argv[1:]))
