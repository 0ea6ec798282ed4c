"""Training data: bundled sets rebuild the official files, every example source, gold-answer checks."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from oneshot_trl.config import OneShotArguments
from oneshot_trl.data import (
    BUNDLED_FILES,
    TRAIN_PROMPT_SUFFIX,
    build_train_dataset,
    load_examples,
    read_jsonl,
    repeat_in_blocks,
    resource_path,
)


@pytest.mark.parametrize("name", [n for n in BUNDLED_FILES if n != "dsr_sub"])
def test_bundled_sets_rebuild_the_official_files_row_by_row(name, tiny_model_dir):
    args = OneShotArguments(train_examples=name, prompt_format="chat", max_prompt_length=None)
    rows = build_train_dataset(load_examples(args), args, AutoTokenizer.from_pretrained(tiny_model_dir))
    official = read_jsonl(resource_path("train", BUNDLED_FILES[name]))
    assert len(rows) == len(official) == 128
    for ours, theirs in zip(rows, official, strict=True):
        assert ours["prompt"] == [{"role": "user", "content": theirs["prompt"][0]["content"]}]
        assert ours["answer"] == theirs["reward_model"]["ground_truth"]
        assert ours["index"] == theirs["extra_info"]["index"]


def test_dsr_sub_has_three_unparseable_golds_that_stop_the_run_unless_skipped():
    with pytest.raises(
        ValueError, match=r"3 gold answer\(s\) cannot be parsed.*dsr_sub:139.*skip_unparseable_golds"
    ):
        load_examples(OneShotArguments(train_examples="dsr_sub"))
    examples = load_examples(OneShotArguments(train_examples="dsr_sub", skip_unparseable_golds=True))
    assert [e.index for e in examples] == [i for i in range(1209) if i not in (139, 265, 1187)]


def test_index_and_pi_rank_name_the_same_examples():
    by_rank = load_examples(OneShotArguments(pi_rank=[1, 13, 1209]))
    by_index = load_examples(OneShotArguments(dsr_sub_index=[124, 682, 789]))
    assert by_rank == by_index
    assert [e.answer for e in by_rank] == ["12.8", "\\frac{4}{3}", "-\\frac{2023}{2024}"]
    assert by_rank[0].problem.startswith("The pressure") and not by_rank[0].problem.endswith(
        TRAIN_PROMPT_SUFFIX
    )


def test_out_of_range_index_and_rank_are_errors():
    with pytest.raises(ValueError, match="index out of range"):
        load_examples(OneShotArguments(dsr_sub_index=[5000]))
    with pytest.raises(ValueError, match="rank out of range"):
        load_examples(OneShotArguments(pi_rank=[0]))


def test_inline_example_and_plain_prompts(tiny_model_dir):
    args = OneShotArguments(problem="What is 37+48?", answer="85", dataset_repeat_to=4, prompt_format="plain")
    ds = build_train_dataset(load_examples(args), args, AutoTokenizer.from_pretrained(tiny_model_dir))
    assert ds["prompt"] == ["What is 37+48?" + TRAIN_PROMPT_SUFFIX] * 4
    assert set(ds["example_id"]) == {"inline:0"}


def test_unparseable_gold_is_an_error_at_load_time():
    with pytest.raises(ValueError, match="cannot be parsed.*inline:0"):
        load_examples(OneShotArguments(problem="Find x.", answer="\\frac{"))


def test_local_jsonl_dataset_by_id_and_field_names(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"uid": f"q{i}", "question": f"What is {i}+{i}?", "solution": str(2 * i)} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = OneShotArguments(
        dataset_name=str(path),
        dataset_ids=["q3", "q1"],
        id_field="uid",
        problem_field="question",
        answer_field="solution",
    )
    examples = load_examples(args)
    assert [(e.problem, e.answer) for e in examples] == [("What is 3+3?", "6"), ("What is 1+1?", "2")]
    assert examples[0].example_id == f"{path}:q3"


def test_dataset_saved_to_disk_in_verl_format_and_errors(tmp_path):
    official = read_jsonl(resource_path("train", "pi2_r128.jsonl"))[:1]
    Dataset.from_list(official).save_to_disk(str(tmp_path / "ds"))
    examples = load_examples(OneShotArguments(dataset_name=str(tmp_path / "ds"), dataset_ids=["0"]))
    assert examples[0].answer == "24" and examples[0].index == 267
    with pytest.raises(ValueError, match="not found"):
        load_examples(OneShotArguments(dataset_name=str(tmp_path / "ds"), dataset_ids=["7"]))
    (tmp_path / "plain.jsonl").write_text(json.dumps({"problem": "p"}) + "\n")
    with pytest.raises(ValueError, match="no column"):
        load_examples(OneShotArguments(dataset_name=str(tmp_path / "plain.jsonl")))


def test_repeat_in_blocks_matches_the_official_k_shot_layout():
    a, b = load_examples(OneShotArguments(train_examples="pi1_pi13"))
    assert repeat_in_blocks([a, b], 6) == [a, a, a, b, b, b]
    assert repeat_in_blocks([a], None) == [a]
    with pytest.raises(ValueError, match="smaller than"):
        repeat_in_blocks([a, b], 1)


def test_overlong_prompt_is_an_error(tiny_model_dir):
    args = OneShotArguments(train_examples="pi1", max_prompt_length=10)
    with pytest.raises(ValueError, match="max_prompt_length=10"):
        build_train_dataset(load_examples(args), args, AutoTokenizer.from_pretrained(tiny_model_dir))
