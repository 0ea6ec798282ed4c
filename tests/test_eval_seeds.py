"""Multi-seed evals: aggregation against a hand computation, the per-seed runs, resume, table and card."""

from __future__ import annotations

import json

import pytest

from oneshot_trl import cli as oneshot_trl_cli
from oneshot_trl.eval import cli
from oneshot_trl.eval.benchmarks import load_benchmark
from oneshot_trl.eval.protocols import get_protocol
from oneshot_trl.eval.request import EvalOutput, EvalRequest, ModelRef
from oneshot_trl.eval.seeds import aggregate, evaluate_seeds, format_seed_table, parse_seeds
from oneshot_trl.eval.templates import render_prompt
from oneshot_trl.hub.cards import render_eval_table, results_to_eval_results

PROTO = get_protocol("one-shot-rlvr")


def _results(**accuracies: float) -> dict:
    return {
        "model": "m",
        "grader": "official",
        "benchmarks": {b: {"metric": "acc", "accuracy": a, "n_problems": 10} for b, a in accuracies.items()},
    }


def test_aggregate_matches_a_hand_computation():
    greedy = _results(math500=0.5)
    per_seed = {0: _results(aime24=0.1), 1: _results(aime24=0.2), 2: _results(aime24=0.6)}
    out = aggregate(greedy, per_seed, PROTO)
    aime, math500 = out["benchmarks"]["aime24"], out["benchmarks"]["math500"]
    # aime24: mean (0.1+0.2+0.6)/3 = 0.3; deviations -0.2, -0.1, 0.3 -> sd = sqrt(0.14 / 2)
    assert aime["mean"] == aime["accuracy"] == pytest.approx(0.3)
    assert aime["sd"] == pytest.approx(0.07**0.5)
    assert (aime["min"], aime["max"]) == (0.1, 0.6)
    assert aime["per_seed"] == {"0": 0.1, "1": 0.2, "2": 0.6} and not aime["greedy"]
    assert math500["greedy"] and (math500["mean"], math500["sd"]) == (0.5, 0.0)
    # averages per seed: (0.5+0.1)/2, (0.5+0.2)/2, (0.5+0.6)/2 = 0.3, 0.35, 0.55 -> mean 0.4, sd sqrt(0.035 / 2)
    spread = out["average_spread"]
    assert out["average"] == spread["mean"] == pytest.approx(0.4)
    assert spread["sd"] == pytest.approx(0.0175**0.5)
    assert (spread["min"], spread["max"]) == pytest.approx((0.3, 0.55))
    assert out["protocol"]["overrides"]["seeds"] == [0, 1, 2]
    assert out["protocol"]["hash"] != PROTO.hash()  # never confused with a single-seed run
    table = format_seed_table(out)
    assert "| aime24 | acc | 30.0 | 26.5 | 10.0-60.0 | 10.0, 20.0, 60.0 |" in table
    assert "| math500 | acc | 50.0 | 0.0 | 50.0-50.0 | greedy: one run |" in table
    assert "| **average** | | 40.0 | 13.2 | 30.0-55.0 | |" in table


def test_card_keeps_the_mean_and_shows_the_spread():
    per_seed = {0: _results(aime24=0.1), 1: _results(aime24=0.2), 2: _results(aime24=0.6)}
    out = aggregate(_results(math500=0.5), per_seed, PROTO)
    results = {r.dataset_name: r for r in results_to_eval_results(out)}
    assert results["AIME 2024"].metric_value == 30.0 and results["AIME 2024"].metric_args["sd"] == 26.46
    assert "sd" not in results["MATH-500"].metric_args
    assert "30.0 ± 26.5 (3 seeds)" in render_eval_table(results.values())


def test_parse_seeds():
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for bad in ("", "0,x", "1,1", "-1"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


class SeededGenerator:
    """Sample j of a problem is right iff (seed + j) is even: avg@8 = 0.5 for any seed; greedy always right."""

    chunk_sequences = 64

    def __init__(self, problems):
        self.by_prompt = {render_prompt(p.problem, "qwen25-math-cot"): p for p in problems}
        self.calls: list[tuple[str, int]] = []

    def generate(self, prompts, *, n, temperature, seed, **kwargs):
        out = []
        for prompt in prompts:
            p = self.by_prompt[prompt]
            self.calls.append((p.benchmark, seed))
            first_right = seed % 2 if p.id == "60" else 0  # problem 60: 4/8 or 4/8 but in another order
            right = [(j + first_right) % 2 == 0 if temperature > 0 else True for j in range(n)]
            out.append([f"\\boxed{{{p.gold}}}" if r and p.id != "61" else "\\boxed{-1}" for r in right])
        return out


def test_evaluate_seeds_runs_sampled_per_seed_greedy_once_and_resumes(tmp_path, capsys):
    problems = {"math500": load_benchmark("math500")[:2], "aime24": load_benchmark("aime24")[:2]}
    gen = SeededGenerator([p for ps in problems.values() for p in ps])
    request = EvalRequest(
        problems, get_protocol("one-shot-rlvr"), ModelRef("m"), EvalOutput(tmp_path), seeds=(0, 1, 2)
    )
    out = evaluate_seeds(request, gen)
    assert sorted(gen.calls) == sorted(
        [("math500", 0)] * 2 + [("aime24", s) for s in (0, 1, 2) for _ in range(2)]
    )
    assert {p.name for p in tmp_path.iterdir()} == {"greedy", "seed-0", "seed-1", "seed-2", "results.json"}
    assert out["benchmarks"]["math500"]["mean"] == 1.0
    assert out["benchmarks"]["aime24"]["per_seed"] == {"0": 0.25, "1": 0.25, "2": 0.25}  # 60: 4/8, 61: 0/8
    assert json.loads((tmp_path / "results.json").read_text())["average"] == pytest.approx(0.625)
    gen.calls.clear()
    evaluate_seeds(request, gen)
    assert gen.calls == []  # every seed resumed from its own samples
    evaluate_seeds(request.replace(seeds=(0, 1, 2, 3)), gen)
    assert gen.calls == [("aime24", 3), ("aime24", 3)]  # a new seed adds only its own runs


def test_cli_seeds_dry_run_and_conflict(capsys):
    argv = ["--model", "does/not-exist", "--benchmarks", "math500,aime24", "--dry-run", "--seeds", "0,1"]
    assert cli.main(argv) == 0
    assert "once per seed: aime24; once (greedy ignores the seed): math500" in capsys.readouterr().out
    assert oneshot_trl_cli.main(["eval", *argv, "--seed", "3"]) == 2
    assert "--seed or --seeds" in capsys.readouterr().err
