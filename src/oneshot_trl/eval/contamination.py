"""`oneshot-trl contamination`: has the model seen the benchmark's problems? A partial-prompt completion probe.

*Reasoning or Memorization?* (arXiv 2507.10532) gives a model the first 60% of a MATH500 problem (by tokens) and
greedy-completes it: Qwen2.5-Math-7B reproduces the remaining 40% word for word 54.6% of the time, Llama-3.1-8B
3.8%. A model can only continue a problem word for word if it has seen it, so such a model's benchmark gains
(and those of its spurious-reward runs) may be recall, not reasoning. This module runs that probe with any eval backend:

- the problem text alone (no prompt template: the text as it would appear in pretraining data) is tokenised with
  the model's tokenizer; the first `round(prefix_ratio * n)` tokens are the prompt, the rest the reference;
- greedy decoding of up to `len(reference tokens)` new tokens (the completion is cut to that many tokens);
- per problem: exact match (the completion equals the reference, whitespace-normalised) and ROUGE-L F1 (longest
  common subsequence over whitespace-separated words, implemented here: `rouge_l`);
- per benchmark: exact-match rate, mean ROUGE-L, and the rows with the highest overlap.

Files as eval: `samples.jsonl` (one row per problem: prefix, reference, completion, scores) and `results.json`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oneshot_trl import cli_args
from oneshot_trl.eval.benchmarks import Problem, load_problem_sets
from oneshot_trl.eval.generate import default_backend, make_generator
from oneshot_trl.eval.request import ModelRef
from oneshot_trl.eval.runner import package_versions
from oneshot_trl.files import atomic_write_text, atomic_writer
from oneshot_trl.layout import RESULTS_FILE, SAMPLES_FILE, safe_name
from oneshot_trl.validate import InputError, check_count

logger = logging.getLogger(__name__)

PROBE_VERSION = 1
TOP_ROWS = 5  # highest-overlap rows kept per benchmark in results.json


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (beta 1) over whitespace-separated words: 2PR / (P + R) with P, R = LCS / lengths.

    >>> rouge_l("the cat sat on the mat", "the cat lay on the mat")
    0.8333333333333334
    """
    c, r = candidate.split(), reference.split()
    if not c or not r:
        return float(c == r)
    previous = [0] * (len(r) + 1)  # LCS by dynamic programming, one row at a time
    for word in c:
        current = [0]
        for j, ref_word in enumerate(r):
            current.append(previous[j] + 1 if word == ref_word else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def exact_match(candidate: str, reference: str) -> bool:
    """The completion reproduces the reference, whitespace differences aside."""
    return " ".join(candidate.split()) == " ".join(reference.split())


def split_problem(text: str, tokenizer: Any, prefix_ratio: float) -> tuple[str, str, int]:
    """(prefix text, reference text, reference token count) of a problem cut at `prefix_ratio` of its tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    cut = min(max(round(prefix_ratio * len(ids)), 1), len(ids) - 1) if len(ids) > 1 else len(ids)
    return tokenizer.decode(ids[:cut]), tokenizer.decode(ids[cut:]), len(ids) - cut


def _first_tokens(text: str, tokenizer: Any, count: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[:count])


def probe_rows(
    generator: Any, problems: Sequence[Problem], tokenizer: Any, prefix_ratio: float, max_new_tokens: int
) -> list[dict[str, Any]]:
    """Greedy-complete each problem's prefix and score it against the true remainder."""
    # a problem longer than the model's context cannot be completed as written: skipped (and counted)
    limit = getattr(tokenizer, "model_max_length", None) or 0
    fits = [p for p in problems if not 0 < limit < 10**7 or len(tokenizer(p.problem)["input_ids"]) <= limit]
    cuts = [split_problem(p.problem, tokenizer, prefix_ratio) for p in fits]
    todo = [(p, cut) for p, cut in zip(fits, cuts, strict=True) if cut[2] > 0]
    budget = min(max((cut[2] for _, cut in todo), default=1), max_new_tokens)
    completions = generator.generate(
        [cut[0] for _, cut in todo], n=1, temperature=0.0, top_p=1.0, max_new_tokens=budget, stop=[], seed=0
    )
    rows = []
    for (p, (prefix, reference, count)), (completion,) in zip(todo, completions, strict=True):
        completion = _first_tokens(completion, tokenizer, count)
        rows.append(
            {
                "benchmark": p.benchmark,
                "problem_id": p.id,
                "prefix": prefix,
                "reference": reference,
                "completion": completion,
                "reference_tokens": count,
                "exact_match": exact_match(completion, reference),
                "rouge_l": rouge_l(completion, reference),
            }
        )
    return rows


def summarize_probe(
    rows: Sequence[Mapping[str, Any]], skipped: int = 0, top: int = TOP_ROWS
) -> dict[str, Any]:
    """Exact-match rate, mean ROUGE-L and the `top` highest-overlap rows of one benchmark."""
    n = len(rows)
    best = sorted(rows, key=lambda r: (-r["rouge_l"], r["problem_id"]))[:top]
    return {
        "n_problems": n,
        "skipped_too_long": skipped,
        "exact_match_rate": sum(r["exact_match"] for r in rows) / n if n else None,
        "mean_rouge_l": sum(r["rouge_l"] for r in rows) / n if n else None,
        "highest_overlap": [
            {k: r[k] for k in ("problem_id", "rouge_l", "exact_match", "prefix", "reference", "completion")}
            for r in best
        ],
    }


def probe(
    model: Any,
    *,
    benchmarks: str | Sequence[str] = "math500",
    problems: Mapping[str, Sequence[Problem]] | None = None,
    prefix_ratio: float = 0.6,
    revision: str | None = None,
    backend: Any = "transformers",
    tokenizer: Any = None,
    limit: int | None = None,
    max_new_tokens: int = 512,
    output_dir: str | Path | None = None,
    trust_remote_code: bool = False,
    generator_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the probe on each benchmark; results.json (+ samples.jsonl) under `output_dir` when given."""
    if not 0.0 < prefix_ratio < 1.0:
        raise ValueError(f"prefix_ratio must be in (0, 1), got {prefix_ratio}.")
    sets = (
        {k: list(v)[:limit] for k, v in problems.items()}
        if problems is not None
        else load_problem_sets(benchmarks, limit)
    )
    if isinstance(backend, str):  # a backend name: the model resolved and its generator built here
        ref = (
            ModelRef.resolve(model, revision)
            if isinstance(model, (str, os.PathLike))
            else ModelRef.of(model, revision)
        )
        generator = make_generator(backend, ref.path or model, tokenizer=tokenizer,
                                   trust_remote_code=trust_remote_code, **dict(generator_kwargs or {}))  # fmt: skip
    else:  # a ready generator object
        ref, generator = ModelRef.of(model, revision), backend
    name, path, revision, commit_sha = ref.name, ref.path, ref.revision, ref.commit_sha
    tokenizer = tokenizer or getattr(generator, "tokenizer", None)
    if tokenizer is None:  # transformers is imported here: ~5 s, and `--dry-run` or a bad flag must not wait
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path or model, trust_remote_code=trust_remote_code)
    all_rows, per_benchmark = [], {}
    try:
        for bench, plist in sets.items():
            rows = probe_rows(generator, plist, tokenizer, prefix_ratio, max_new_tokens)
            all_rows += rows
            per_benchmark[bench] = summarize_probe(rows, skipped=len(plist) - len(rows))
    finally:
        if isinstance(backend, str) and hasattr(generator, "close"):
            generator.close()
    results = {
        "model": name,
        "revision": revision,
        "commit_sha": commit_sha,
        "probe": {
            "version": PROBE_VERSION,
            "prefix_ratio": prefix_ratio,
            "decoding": "greedy",
            "unit": "tokens",
        },
        "versions": package_versions(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "limit": limit,
        "benchmarks": per_benchmark,
    }
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_writer(out / SAMPLES_FILE) as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in all_rows)
        atomic_write_text(out / RESULTS_FILE, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def format_probe_table(results: Mapping[str, Any]) -> str:
    lines = [
        "| benchmark | problems | exact match | mean ROUGE-L | skipped (too long) |",
        "|---|---:|---:|---:|---:|",
    ]
    for bench, m in results["benchmarks"].items():
        lines.append(
            f"| {bench} | {m['n_problems']} | {100 * m['exact_match_rate']:.1f}% | {m['mean_rouge_l']:.3f} "
            f"| {m['skipped_too_long']} |"
        )
    p = results["probe"]
    lines.append(
        f"\nfirst {100 * p['prefix_ratio']:.0f}% of each problem's tokens, greedy; model {results['model']}"
    )
    for bench, m in results["benchmarks"].items():
        for row in m["highest_overlap"][:3]:
            lines.append(f"  {bench} {row['problem_id']}: ROUGE-L {row['rouge_l']:.2f}: ...{row['prefix'][-40:]!r} "
                         f"-> {row['completion'][:60]!r} (true: {row['reference'][:60]!r})")  # fmt: skip
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    p = cli_args.ArgumentParser(
        prog="oneshot-trl contamination",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="Local model directory or Hub model id.")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit sha.")
    p.add_argument("--benchmarks", default="math500", help="Comma-separated benchmarks, or 'all' (the six).")
    p.add_argument(
        "--prefix-ratio", type=float, default=0.6, help="Share of each problem's tokens given (paper: 0.6)."
    )
    p.add_argument("--limit", type=int, default=None, help="Only the first N problems of each benchmark.")
    p.add_argument("--max-new-tokens", type=int, default=512, help="Cap on the tokens completed per problem.")
    p.add_argument("--backend", default="auto", choices=["auto", "vllm", "transformers"], help="As `eval`.")
    p.add_argument("--dtype", default="auto", help="Model dtype (auto, bfloat16, float16, float32).")
    p.add_argument("--trust-remote-code", action="store_true", help="Allow the repo's own modelling code.")
    p.add_argument("--output-dir", default=None, help="Default: contamination/<model>[/<revision>].")
    p.add_argument(
        "--dry-run", action="store_true", help="Print the plan (benchmarks, counts); load no model."
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Every flag checked before the model loads; an InputError is one line and exit 2 (oneshot_trl.cli)."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_count("--limit", args.limit)
    check_count("--max-new-tokens", args.max_new_tokens)
    if not 0.0 < args.prefix_ratio < 1.0:
        raise InputError(f"--prefix-ratio must be in (0, 1), got {args.prefix_ratio}.")
    sets = load_problem_sets(args.benchmarks, args.limit)
    if args.dry_run:
        for bench, plist in sets.items():
            print(f"{bench}: {len(plist)} problems, first {100 * args.prefix_ratio:.0f}% of tokens given")
        return 0
    out = Path(args.output_dir) if args.output_dir else Path("contamination") / safe_name(args.model)
    if args.revision and not args.output_dir:
        out = out / safe_name(args.revision)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output-dir {out} is a file, not a folder.")
    results = probe(
        args.model, problems=sets, prefix_ratio=args.prefix_ratio, revision=args.revision,
        backend=default_backend() if args.backend == "auto" else args.backend, limit=args.limit,
        max_new_tokens=args.max_new_tokens, output_dir=out, trust_remote_code=args.trust_remote_code,
        generator_kwargs={"dtype": args.dtype},
    )  # fmt: skip
    print(format_probe_table(results))
    print(f"\nwrote {out / RESULTS_FILE}")
    return 0
