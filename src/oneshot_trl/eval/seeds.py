"""Multi-seed evaluation (`oneshot-trl eval --seeds 0,1,2`): mean, sd, min and max over sampling seeds.

One sampled benchmark (AIME24 at avg@8 has 30 problems) moves by several points from seed to seed, as large as many
reported gains (*A Sober Look at Progress in LM Reasoning*, arXiv 2504.07086: report mean +- sd over seeds). So:

- benchmarks the protocol samples (temperature > 0) run once per seed, each into `<output-dir>/seed-<S>/` with the
  protocol's seed overridden (its own protocol hash and samples.jsonl, so each seed resumes on its own);
- greedy benchmarks run once, into `<output-dir>/greedy/`: greedy decoding ignores the seed, so more runs would only
  repeat the same numbers (their sd is 0 by construction, and they are marked `"greedy": true`);
- `<output-dir>/results.json` holds per benchmark `per_seed`, `mean` (also as `accuracy`, what model cards and
  curves read), `sd` (sample standard deviation, n-1; 0 for one value), `min`, `max`, and the same four for the
  benchmark average, which is computed per seed (greedy scores + that seed's sampled scores) and then summarised.
  The protocol records the seeds in `overrides`, so its hash differs from any single-seed run's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from oneshot_trl.eval.generate import Generator
from oneshot_trl.eval.metrics import benchmark_average
from oneshot_trl.eval.protocols import Protocol
from oneshot_trl.eval.request import EvalRequest
from oneshot_trl.eval.runner import evaluate
from oneshot_trl.files import atomic_write_text
from oneshot_trl.layout import RESULTS_FILE

GREEDY_DIR = "greedy"


def seed_dir(seed: int) -> str:
    return f"seed-{seed}"


def parse_seeds(text: str) -> list[int]:
    """`"0,1,2"` -> [0, 1, 2]: non-negative, distinct, order kept."""
    seeds = [s.strip() for s in text.split(",") if s.strip()]
    if not seeds or not all(s.isdigit() for s in seeds):
        raise ValueError(f"--seeds {text!r}: give comma-separated non-negative integers, e.g. 0,1,2.")
    values = [int(s) for s in seeds]
    if len(set(values)) != len(values):
        raise ValueError(f"--seeds {text!r} repeats a seed.")
    return values


def spread(values: Sequence[float]) -> dict[str, float]:
    """mean, sample sd (n-1; 0 for a single value), min, max."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def split_by_sampling(names: Sequence[str], protocol: Protocol) -> tuple[list[str], list[str]]:
    """(sampled, greedy) benchmark names under `protocol`."""
    sampled = [n for n in names if protocol.sampling_for(n).temperature > 0]
    return sampled, [n for n in names if n not in sampled]


def aggregate(
    greedy: Mapping[str, Any] | None, per_seed: Mapping[int, Mapping[str, Any]], protocol: Protocol
) -> dict[str, Any]:
    """One results dict from a greedy run's results and each seed's results (the shape of results.json)."""
    seeds = list(per_seed)
    first = greedy if greedy is not None else per_seed[seeds[0]]
    benchmarks: dict[str, dict[str, Any]] = {}
    for name, m in ((greedy or {}).get("benchmarks") or {}).items():
        benchmarks[name] = {**_shared(m), "greedy": True, "per_seed": None, **spread([m["accuracy"]])}
    for seed, results in per_seed.items():
        for name, m in results["benchmarks"].items():
            entry = benchmarks.setdefault(name, {**_shared(m), "greedy": False, "per_seed": {}})
            entry["per_seed"][str(seed)] = m["accuracy"]
    for entry in benchmarks.values():
        if not entry["greedy"]:
            entry.update(spread(list(entry["per_seed"].values())))
    for entry in benchmarks.values():
        entry["accuracy"] = entry["mean"]

    averages, label = [], None
    for seed in seeds:
        scores = {
            n: e["accuracy"] if e["greedy"] else e["per_seed"][str(seed)] for n, e in benchmarks.items()
        }
        value, label = benchmark_average(scores)
        if value is not None:
            averages.append(value)
    avg = spread(averages) if averages else None
    seeded = dataclasses.replace(protocol, overrides={**protocol.overrides, "seeds": seeds})
    return {
        "model": first.get("model"),
        "revision": first.get("revision"),
        "commit_sha": first.get("commit_sha"),
        "protocol": seeded.to_dict(),
        "grader": first.get("grader"),
        "versions": first.get("versions"),
        "backend": first.get("backend"),
        "limit": first.get("limit"),
        "seeds": seeds,
        "runs": {GREEDY_DIR: greedy is not None}
        | {seed_dir(s): True for s in seeds if per_seed[s]["benchmarks"]},
        "benchmarks": benchmarks,
        "average": None if avg is None else avg["mean"],
        "average_label": None if avg is None else f"{label}, mean over {len(averages)} seed(s)",
        "average_spread": avg,
    }


def _shared(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in ("metric", "n_problems", "n_samples") if k in m}


def evaluate_seeds(request: EvalRequest, generator: Generator) -> dict[str, Any]:
    """`evaluate` once for the greedy benchmarks and once per seed of `request.seeds` for the sampled ones, each
    into its own folder under `request.output.dir`; the aggregated results.json there. Each run resumes on its
    own."""
    seeds = request.seeds
    if not seeds:
        raise ValueError("evaluate_seeds needs at least one seed.")
    if request.output.dir is None:
        raise ValueError("evaluate_seeds writes one folder per seed: the request needs an output dir.")
    proto, sets, out = request.protocol, request.problems, request.output.dir
    sampled, greedy = split_by_sampling(list(sets), proto)

    def run(names: list[str], protocol: Protocol, folder: str) -> dict[str, Any]:
        part = request.replace(
            problems={n: sets[n] for n in names},
            protocol=protocol,
            output=dataclasses.replace(request.output, dir=out / folder),
            seeds=None,
        )
        return evaluate(part, generator)

    greedy_results = run(greedy, proto, GREEDY_DIR) if greedy else None
    per_seed = {
        seed: run(sampled, proto.with_overrides(seed=seed), seed_dir(seed)) if sampled else {"benchmarks": {}}
        for seed in seeds
    }
    results = aggregate(greedy_results, per_seed, proto)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RESULTS_FILE, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def format_seed_table(results: Mapping[str, Any]) -> str:
    """Markdown table of an aggregated results dict: mean, sd, min-max per benchmark and for the average."""

    def pct(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"

    lines = ["| benchmark | metric | mean | sd | min-max | per seed |", "|---|---|---:|---:|---|---|"]
    for name, m in results["benchmarks"].items():
        per_seed = "greedy: one run" if m["greedy"] else ", ".join(pct(v) for v in m["per_seed"].values())
        lines.append(
            f"| {name} | {m.get('metric', '')} | {pct(m['mean'])} | {pct(m['sd'])} | "
            f"{pct(m['min'])}-{pct(m['max'])} | {per_seed} |"
        )
    avg = results.get("average_spread")
    if avg:
        lines.append(
            f"| **average** | | {pct(avg['mean'])} | {pct(avg['sd'])} | {pct(avg['min'])}-{pct(avg['max'])} | |"
        )
    proto = results["protocol"]
    lines += [
        "",
        f"seeds {', '.join(map(str, results['seeds']))}; protocol {proto['name']} v{proto['version']} "
        f"(hash {proto['hash']}); sd is the sample sd over seeds (n-1); greedy benchmarks ignore the seed, so "
        f"they run once. average: {results.get('average_label')}",
    ]
    return "\n".join(lines)
