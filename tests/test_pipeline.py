"""The loop across modules on a real tiny run: train with in-training evals -> analyze -> card -> select."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from support import train_in_process

from oneshot_trl import select
from oneshot_trl.analysis import cli as analysis_cli
from oneshot_trl.hub import cli as card_cli


@pytest.mark.slow
def test_train_with_benchmark_evals_then_analyze_card_and_select(make_recipe, tmp_path):
    recipe = make_recipe(
        max_steps=4, save_steps=2, eval_benchmarks=["math500", "amc23"], eval_limit=2, eval_max_new_tokens=8
    )  # amc23, not aime24: AIME24's first problem (505 tokens + 8) does not fit the tiny model's 512 positions
    trainer = train_in_process(recipe)
    run = tmp_path / "run"
    for step in ("step-000000", "step-000002", "step-000004"):
        results = json.loads((run / "eval" / step / "results.json").read_text())
        assert set(results["benchmarks"]) == {"math500", "amc23"}
        assert results["benchmarks"]["amc23"]["n_samples"] == 2 * 8  # avg@8 protocol for AMC
    evals = [row for row in trainer.state.log_history if "eval/math500" in row]
    assert [row["step"] for row in evals] == [0, 2, 4]

    out = tmp_path / "analysis"
    assert analysis_cli.main([str(run), "--output-dir", str(out)]) == 0
    report = (out / "report.md").read_text()
    for png in ("post_saturation.png", "entropy.png", "reflection_words.png", "format_vs_reasoning.png"):
        assert (out / png).stat().st_size > 1000 and png in report

    readme = tmp_path / "README.md"
    assert card_cli.main([str(run), "--output", str(readme)]) == 0
    card = ModelCard(readme.read_text())
    assert {r.dataset_name for r in card.data.eval_results} >= {"MATH-500"} and "12.8" in card.text

    selected = tmp_path / "selected.jsonl"
    assert select.main(["--history", str(run), "--top", "1", "--repeat", "4", "--output", str(selected)]) == 0
    rows = [json.loads(line) for line in selected.read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["reward_model"]["ground_truth"] == "12.8"
    assert Path(selected).exists()
