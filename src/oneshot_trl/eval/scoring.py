"""Grading an eval's samples: each problem's responses graded into samples.jsonl rows, and the audit of both graders.

The graders are imported when first used: `oneshot-trl eval --help` does not load math-verify.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from oneshot_trl.eval.problem import Problem
from oneshot_trl.eval.protocols import Protocol
from oneshot_trl.files import atomic_writer
from oneshot_trl.layout import AUDIT_FILE

logger = logging.getLogger(__name__)


def warn_unparseable_golds(problem_sets: Mapping[str, Sequence[Problem]], grader: str) -> None:
    """Report at load time (before any generation) the gold answers the grader cannot parse."""
    # imported here: the graders load math-verify (~3 s); `eval --dry-run` and a bad flag do not wait for it
    from oneshot_trl.grading import GoldParseError, check_gold

    for name, plist in problem_sets.items():
        bad = []
        for p in plist:
            try:
                check_gold(p.gold, grader, p.benchmark)
            except GoldParseError:
                bad.append(p.id)
        if bad:
            logger.warning(
                "%s: the %s grader cannot parse the gold answer of %d problem(s) (ids %s); they will be graded "
                "wrong and listed under unparseable_golds.",
                name,
                grader,
                len(bad),
                ", ".join(bad[:20]),
            )


def grade_rows(
    problems: Sequence[Problem],
    prompts: Sequence[str],
    responses: Sequence[Sequence[str]],
    protocol: Protocol,
) -> list[dict]:
    """Grade every response of each problem (in parallel workers) into samples.jsonl rows."""
    # imported here: the graders load math-verify (~3 s); `eval --dry-run` and a bad flag do not wait for it
    from oneshot_trl.grading import GoldParseError, answer_anywhere_batch, check_gold, grade_batch

    flat_responses = [r for rs in responses for r in rs]
    flat_golds = [p.gold for p, rs in zip(problems, responses, strict=True) for _ in rs]
    flat_benchmarks = [p.benchmark for p, rs in zip(problems, responses, strict=True) for _ in rs]
    grades = grade_batch(
        flat_responses,
        flat_golds,
        grader=protocol.grader,
        boxed_only=protocol.boxed_only,
        timeout_s=protocol.grade_timeout_s,
        benchmark=flat_benchmarks,
    )
    anywhere = answer_anywhere_batch(flat_responses, flat_golds, timeout_s=protocol.grade_timeout_s)
    rows, pos = [], 0
    for problem, prompt, rs in zip(problems, prompts, responses, strict=True):
        g, a = grades[pos : pos + len(rs)], anywhere[pos : pos + len(rs)]
        pos += len(rs)
        try:
            check_gold(problem.gold, protocol.grader, problem.benchmark)
            gold_error = None
        except GoldParseError as err:
            gold_error = str(err) or "unparseable gold"
        rows.append(
            {
                "benchmark": problem.benchmark,
                "problem_id": problem.id,
                "prompt": prompt,
                "gold": problem.gold,
                "responses": list(rs),
                "extracted": [x.extracted for x in g],
                "correct": [bool(x.correct) for x in g],
                "boxed": [bool(x.boxed) for x in g],
                "answer_anywhere": [bool(x) for x in a],
                "grade_errors": [x.error for x in g],
                "gold_error": gold_error,
                "protocol_hash": protocol.hash(),
            }
        )
    return rows


def audit(rows: Sequence[dict], protocol: Protocol, output_dir: Path | None) -> dict:
    """Grade every sample with both graders; write the disagreements to audit.jsonl; per-benchmark summary."""
    # imported here: the graders load math-verify (~3 s); `eval --dry-run` and a bad flag do not wait for it
    from oneshot_trl.grading import GRADERS, grade_batch

    responses = [r for row in rows for r in row["responses"]]
    golds = [row["gold"] for row in rows for _ in row["responses"]]
    benchmarks = [row["benchmark"] for row in rows for _ in row["responses"]]
    by_grader = {
        g: grade_batch(
            responses,
            golds,
            grader=g,
            boxed_only=protocol.boxed_only,
            timeout_s=protocol.grade_timeout_s,
            benchmark=benchmarks,
        )
        for g in GRADERS
    }
    summary: dict[str, dict] = {}
    disagreements, pos = [], 0
    for row in rows:
        s = summary.setdefault(
            row["benchmark"], {"n_samples": 0, "disagreements": 0, **{g: 0 for g in GRADERS}}
        )
        for i, response in enumerate(row["responses"]):
            grades = {g: by_grader[g][pos] for g in GRADERS}
            pos += 1
            s["n_samples"] += 1
            for g, grade in grades.items():
                s[g] += int(grade.correct)
            if len({grade.correct for grade in grades.values()}) > 1:
                s["disagreements"] += 1
                disagreements.append(
                    {
                        "benchmark": row["benchmark"],
                        "problem_id": row["problem_id"],
                        "sample": i,
                        "gold": row["gold"],
                        "response": response,
                        **{
                            g: {"correct": x.correct, "extracted": x.extracted, "error": x.error}
                            for g, x in grades.items()
                        },
                    }
                )
    for s in summary.values():  # counts -> accuracies
        for g in GRADERS:
            s[f"accuracy_{g}"] = s.pop(g) / s["n_samples"] if s["n_samples"] else float("nan")
    if output_dir is not None:
        with atomic_writer(output_dir / AUDIT_FILE) as f:
            f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in disagreements)
    return {"benchmarks": summary, "disagreements": disagreements}
