"""The contamination probe: ROUGE-L by hand, the token split, and a memorising model told apart from a fresh one."""

from __future__ import annotations

import json

import pytest
import torch

from oneshot_trl.cli import main as cli_main
from oneshot_trl.eval.benchmarks import load_benchmark
from oneshot_trl.eval.contamination import exact_match, main, probe, rouge_l, split_problem
from oneshot_trl.eval.generate import TransformersGenerator
from oneshot_trl.lab.tiny import build_random_model, build_tokenizer


def test_rouge_l_against_hand_computation():
    # LCS("a b c d e", "a c e f") = "a c e" = 3 words: P = 3/5, R = 3/4, F1 = 2PR/(P+R) = 2/3
    assert rouge_l("a b c d e", "a c e f") == pytest.approx(2 / 3)
    assert rouge_l("x y", "x y") == 1.0 and rouge_l("x y", "z") == 0.0
    assert rouge_l("", "") == 1.0 and rouge_l("", "a") == 0.0
    assert exact_match(" the  answer\nis 3", "the answer is 3") and not exact_match(
        "the answer", "the answer is"
    )


def test_split_problem_cuts_at_the_token_ratio():
    tok = build_tokenizer()
    text = load_benchmark("math500")[0].problem
    prefix, reference, count = split_problem(text, tok, 0.6)
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    assert count == n - round(0.6 * n) and prefix + reference == text


@pytest.fixture(scope="module")
def memorised():
    """A tiny model trained to memorise 6 MATH500 problems (cross-entropy, ~1 s), a fresh twin, the problems."""
    torch.manual_seed(0)
    tok = build_tokenizer()
    problems = [p for p in load_benchmark("math500") if 25 <= len(tok(p.problem)["input_ids"]) <= 45][:12]
    seen, unseen = problems[:6], problems[6:]

    def fresh():
        torch.manual_seed(0)
        return build_random_model(tok, hidden_size=64, num_layers=2, num_heads=2, max_position_embeddings=512)

    model = fresh()
    batch = tok([p.problem for p in seen], add_special_tokens=False, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), fresh().eval(), tok, seen, unseen


def test_probe_separates_a_memorising_model_from_a_fresh_one(memorised, tmp_path):
    model, fresh, tok, seen, unseen = memorised

    def run(m, problems, out=None):
        gen = TransformersGenerator(m, tok, progress=False)
        return probe(m, problems={"math500": problems}, backend=gen, tokenizer=tok, output_dir=out)[
            "benchmarks"
        ]["math500"]

    trained = run(model, seen, tmp_path)
    untrained = run(fresh, seen)
    assert trained["exact_match_rate"] >= 5 / 6 and trained["mean_rouge_l"] > 0.9
    assert untrained["exact_match_rate"] == 0.0 and untrained["mean_rouge_l"] < 0.2
    assert run(model, unseen)["exact_match_rate"] == 0.0  # it recalls what it saw, nothing else
    rows = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert (
        len(rows) == 6 and {"prefix", "reference", "completion", "exact_match", "rouge_l"} <= rows[0].keys()
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert (
        results["probe"]["prefix_ratio"] == 0.6
        and len(results["benchmarks"]["math500"]["highest_overlap"]) == 5
    )


def test_problems_longer_than_the_context_are_skipped(memorised):
    _, fresh, tok, seen, _ = memorised
    long = max(load_benchmark("math500"), key=lambda p: len(p.problem))
    assert len(tok(long.problem)["input_ids"]) > tok.model_max_length
    gen = TransformersGenerator(fresh, tok, progress=False)
    result = probe(fresh, problems={"math500": [*seen[:2], long]}, backend=gen, tokenizer=tok)["benchmarks"][
        "math500"
    ]
    assert (result["n_problems"], result["skipped_too_long"]) == (2, 1)


def test_cli_dry_run_help_and_bad_ratio(capsys):
    assert main(["--model", "nowhere", "--benchmarks", "math500,aime24", "--limit", "3", "--dry-run"]) == 0
    assert "math500: 3 problems" in capsys.readouterr().out
    assert cli_main(["contamination", "--model", "nowhere", "--prefix-ratio", "1.5", "--dry-run"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "oneshot-trl contamination: error: --prefix-ratio must be in (0, 1), got 1.5."
    )
    assert cli_main(["contamination", "--model", "nowhere", "--benchmarks", "math5000", "--dry-run"]) == 2
    assert "Unknown benchmark 'math5000'. Did you mean math500?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--prefix-ratio" in capsys.readouterr().out
