"""Model cards: rendered from a run, parsed back with huggingface_hub, model-index round trip, merging results."""

from __future__ import annotations

import copy

import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
from support import HUB_REPO, PROTOCOL, RECIPE, TOKEN, eval_results_json

from oneshot_trl.hub.cards import (
    CardInputs,
    card_template_path,
    merge_eval_results,
    render_model_card,
    results_to_eval_results,
    set_card_eval_results,
)
from oneshot_trl.secrets import redact_recipe


def fake_run() -> CardInputs:
    return CardInputs(
        run_info={
            "base_model": "Qwen/Qwen2.5-Math-1.5B",
            "base_model_revision": "main",
            "examples": [
                {
                    "example_id": "dsr_sub:124",
                    "problem": "The pressure $P$ exerted by wind on a sail varies jointly as the area $A$ ... "
                    "| a pipe | and ```backticks``` inside.",
                    "answer": "12.8",
                }
            ],
        },
        recipe_text=redact_recipe(RECIPE),
        trainer_state={
            "global_step": 40,
            "max_steps": 40,
            "log_history": [{"step": 40, "loss": 0.01}, {"step": 40, "train_runtime": 3725.0}],
        },
        eval_by_step={20: eval_results_json(20, 0.60, 0.10), 40: eval_results_json(40, 0.72, 0.15)},
    )


def test_card_renders_and_parses_back_with_model_index():
    run = fake_run()
    card = render_model_card(
        HUB_REPO,
        run,
        step_revisions=["step-000040", "step-000020"],
        eval_results=results_to_eval_results(run.eval_by_step[40]),
        hyperparameters={"learning_rate": 1e-6, "num_generations": 8},
        hardware="1 process(es) on CPU (2 cores)",
        versions={"TRL": "1.16.0"},
    )
    content = str(card)
    parsed = ModelCard(content)  # what the Hub reads

    data = parsed.data
    assert data.base_model == "Qwen/Qwen2.5-Math-1.5B"
    assert {"trl", "grpo", "one-shot-rlvr"} <= set(data.tags)
    assert data.pipeline_tag == "text-generation" and data.model_name == "qwen-pi1"
    # One EvalResult per benchmark and metric: math500 acc, aime24 avg@8 and pass@8 (pass@1 == the accuracy).
    got = {(r.dataset_type, r.metric_type): r for r in data.eval_results}
    assert set(got) == {
        ("HuggingFaceH4/MATH-500", "acc"),
        ("math-ai/aime24", "avg@8"),
        ("math-ai/aime24", "pass@8"),
    }
    math500 = got["HuggingFaceH4/MATH-500", "acc"]
    assert (
        math500.metric_value == 72.0 and math500.task_type == "text-generation" and math500.verified is False
    )
    for r in data.eval_results:  # protocol name and hash in every result
        assert r.metric_config == "one-shot-rlvr@3f2a9c1b" and "one-shot-rlvr" in r.metric_name
        assert r.metric_args["protocol_hash"] == "3f2a9c1b" and r.metric_args["grader"] == "math-verify"

    # The model-index survives huggingface_hub's own conversion both ways.
    model_index = data.to_dict()["model-index"]
    name, round_trip = model_index_to_eval_results(model_index)
    assert name == "qwen-pi1" and round_trip == data.eval_results
    assert eval_results_to_model_index(name, round_trip) == model_index

    text = parsed.text
    assert "dsr_sub:124" in text and "`12.8`" in text and "| a pipe |" in text
    assert "````text" in text  # fenced longer than the backticks inside the problem
    assert "https://huggingface.co/user/qwen-pi1/tree/step-000020" in text
    assert text.index("step-000020") < text.index("step-000040")  # links sorted by step
    assert (
        "arXiv:2504.20571" in text and "Reinforcement Learning for Reasoning in Large Language Models" in text
    )
    assert "Average** (2 benchmarks)" in text and "| 1h 02m 05s" not in text and "1h 02m 05s" in text
    assert "| `learning_rate` | `1e-06` |" in text and "1 process(es) on CPU" in text
    assert "num_generations: 8" in text  # the recipe as YAML
    assert TOKEN not in content and "hub_token: <redacted>" in content
    # The recipe block is valid YAML again.
    recipe_block = text.split("```yaml\n", 1)[1].split("\n```", 1)[0]
    assert yaml.safe_load(recipe_block)["learning_rate"] == 1e-6
    # Benchmarks-during-training table: both steps, linked branches.
    assert "[20](https://huggingface.co/user/qwen-pi1/tree/step-000020)" in text and "| 72.0 |" in text


def test_step_card_and_card_without_results():
    card = render_model_card(HUB_REPO, CardInputs(run_info={"base_model": "/local/path/model"}), step=20)
    parsed = ModelCard(str(card))
    assert parsed.data.base_model is None  # a local path is not a Hub id
    assert parsed.data.eval_results is None and "model-index" not in parsed.data.to_dict()
    assert "Checkpoint at step 20" in parsed.text and 'revision="step-000020"' in parsed.text
    assert "No evaluation results yet" in parsed.text
    assert card_template_path().is_file()


def test_merge_replaces_same_protocol_and_keeps_others():
    old = results_to_eval_results(eval_results_json(40, 0.70, 0.10))
    other_protocol = dict(PROTOCOL, name="lighteval", hash="0000aaaa")
    new = results_to_eval_results(eval_results_json(40, 0.74, 0.10, protocol=other_protocol))
    newer_same = results_to_eval_results(eval_results_json(40, 0.75, 0.20))

    merged = merge_eval_results(merge_eval_results(old, new), newer_same)
    by_key = {(r.dataset_type, r.metric_type, r.metric_config): r.metric_value for r in merged}
    assert len(merged) == 6
    assert by_key["HuggingFaceH4/MATH-500", "acc", "one-shot-rlvr@3f2a9c1b"] == 75.0  # replaced
    assert by_key["math-ai/aime24", "avg@8", "one-shot-rlvr@3f2a9c1b"] == 20.0
    assert by_key["HuggingFaceH4/MATH-500", "acc", "lighteval@0000aaaa"] == 74.0  # kept


def test_set_card_eval_results_updates_metadata_and_table():
    card = render_model_card(
        HUB_REPO, fake_run(), eval_results=results_to_eval_results(eval_results_json(40, 0.7, 0.1))
    )
    merged = merge_eval_results(
        card.data.eval_results,
        results_to_eval_results(eval_results_json(40, 0.7, 0.1, dict(PROTOCOL, hash="beef"))),
    )
    updated = set_card_eval_results(copy.deepcopy(card), merged, HUB_REPO)
    parsed = ModelCard(str(updated))
    assert len(parsed.data.eval_results) == 6
    assert parsed.text.count("Protocol `one-shot-rlvr`") == 2 and "hash `beef`" in parsed.text
    assert "Training example" in parsed.text  # the rest of the card is untouched

    foreign = ModelCard("---\nlicense: mit\n---\n# Someone else's card\n")
    updated = ModelCard(str(set_card_eval_results(foreign, merged, HUB_REPO)))
    assert updated.data.license == "mit" and len(updated.data.eval_results) == 6
    assert "Someone else's card" in updated.text and "## Evaluation" in updated.text


@pytest.mark.parametrize(
    "line, expected",
    [
        (f"hub_token: {TOKEN}", "hub_token: <redacted>"),
        ("  wandb_api_key: abc123  # comment", "  wandb_api_key: <redacted>"),
        ("hub_token: null", "hub_token: null"),
        ("learning_rate: 1e-6", "learning_rate: 1e-6"),
        (f"note: uses {TOKEN} inline", "note: uses <redacted> inline"),
    ],
)
def test_redact_recipe(line, expected, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert redact_recipe(line + "\n") == expected + "\n"


def test_card_puts_the_run_beside_the_papers_row():
    run = fake_run()
    run.run_info["paper_setup"] = "qwen2.5-math-1.5b/pi1"
    text = str(render_model_card(HUB_REPO, run))
    assert "### This run beside the paper" in text
    assert "| benchmark | paper (reported) | this run: best | this run: final |" in text
    # no checkpoint has all six: each benchmark's best; the paper's Tab. 8 numbers in their own column
    assert "| math500 | 72.8 | 72.0 (step 40) | 72.0 (step 40) |" in text
    assert "| aime24 | 15.4 | 15.0 (step 40) | 15.0 (step 40) |" in text
    assert "the paper's, not measured here" in text

    run.run_info.pop("paper_setup")  # no setup: the same table, no paper column
    text = str(render_model_card(HUB_REPO, run))
    assert "### Best and final checkpoints" in text and "paper (reported)" not in text
    assert "| math500 | 72.0 (step 40) | 72.0 (step 40) |" in text
    assert "### Best and final" not in str(
        render_model_card(HUB_REPO, CardInputs(run_info={}))
    )  # no evals: none
