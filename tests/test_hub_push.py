"""Pushing against a stand-in for HfApi that records calls and fails on demand (there is no Hub server here)."""

from __future__ import annotations

import json
import logging

import pytest
from huggingface_hub import ModelCard
from support import (
    HUB_REPO,
    PROTOCOL,
    TOKEN,
    FakeHub,
    eval_results_json,
    make_callback,
    make_run,
    save,
    save_checkpoint,
)
from transformers import TrainerControl, TrainerState, TrainingArguments

import oneshot_trl.hub.cli as card_cli
import oneshot_trl.hub.retry as retry
from oneshot_trl.cli import main as cli_main
from oneshot_trl.hub.push import HubPushCallback
from oneshot_trl.hub.revision_card import push_eval_results
from oneshot_trl.models import list_step_revisions

UPLOADED_CHECKPOINT_FILES = {
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "trainer_state.json",
    "recipe.yaml",
    "oneshot_run.json",
    "accuracy_history.jsonl",
    "README.md",
    ".gitattributes",
}


@pytest.fixture
def backoffs(monkeypatch):
    delays = []
    monkeypatch.setattr(retry, "_sleep", delays.append)
    return delays


def test_checkpoints_go_to_step_branches_without_optimizer_state(tmp_path, backoffs):
    out, api = tmp_path / "run", FakeHub(tmp_path)
    cb, args = make_callback(out, api, save_total_limit=2)
    # The Trainer must neither push nor rotate: the callback does both.
    assert args.push_to_hub is False and args.save_total_limit is None
    assert cb.hyperparameters["learning_rate"] == 1e-6 and "hub_token" not in cb.hyperparameters

    for step in (10, 20, 30):
        save(cb, args, out, step)

    assert api.calls[0] == ("create_repo", HUB_REPO, True, True)  # private, exist_ok
    branches = [c for c in api.calls if c[0] == "create_branch"]
    assert [c[2] for c in branches] == ["step-000010", "step-000020", "step-000030"]
    assert all(c[3] == "init0000" and c[4] is True for c in branches)  # from the initial commit
    assert api.commits == [(f"step-{s:06d}", f"Checkpoint at step {s}") for s in (10, 20, 30)]
    assert api.files("step-000020") == UPLOADED_CHECKPOINT_FILES
    assert "main" not in {c[2] for c in api.calls if c[0] == "create_commit"}
    # Each branch has the accuracy history as of its step, and the recipe without the token.
    history = api.branches["step-000020"]["accuracy_history.jsonl"].decode().splitlines()
    assert [json.loads(line)["step"] for line in history] == [10, 20]
    assert b"hub_token: <redacted>" in api.branches["step-000020"]["recipe.yaml"]
    card = ModelCard(api.branches["step-000020"]["README.md"].decode())
    assert "Checkpoint at step 20" in card.text and "one-shot-rlvr" in card.data.tags
    # save_total_limit=2, all uploaded: the oldest is gone, the rest stay.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-30"]
    assert backoffs == []


def test_failed_upload_is_retried_with_backoff(tmp_path, backoffs, caplog):
    out = tmp_path / "run"
    api = FakeHub(tmp_path, fail={("create_commit", "step-000010"): 2})
    cb, args = make_callback(out, api)
    with caplog.at_level(logging.INFO, logger="oneshot_trl.hub"):
        save(cb, args, out, 10)
    (record,) = cb.records
    assert record.status == "ok" and record.attempts == 3
    assert [c[0] for c in api.calls].count("create_commit") == 3
    assert backoffs == [0.001, 0.002]  # exponential
    assert caplog.text.count("failed (attempt") == 2 and "retrying in" in caplog.text
    assert TOKEN not in caplog.text and "<redacted>" in caplog.text
    assert api.files("step-000010") == UPLOADED_CHECKPOINT_FILES


def test_permanently_failing_upload_never_loses_the_checkpoint(tmp_path, backoffs, caplog):
    out = tmp_path / "run"
    api = FakeHub(tmp_path, fail={("create_commit", "step-000010"): -1})
    cb, args = make_callback(out, api, save_total_limit=1)
    with caplog.at_level(logging.INFO, logger="oneshot_trl.hub"):
        for step in (10, 20, 30):
            save(cb, args, out, step)
        cb.on_train_end(args, TrainerState(global_step=30), TrainerControl())
        (out / "model.safetensors").write_bytes(b"final weights")  # trainer.save_model(output_dir)
        (out / "config.json").write_text("{}")
        summary = cb.push_final()

    # checkpoint-10 never uploaded: kept despite save_total_limit=1; 20 uploaded and older than 30: deleted.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-30"]
    assert (out / "checkpoint-10" / "optimizer.pt").exists()
    by_revision = {p["revision"]: p for p in summary["pushes"]}
    assert by_revision["step-000010"]["status"] == "failed" and by_revision["step-000010"]["attempts"] == 3
    assert by_revision["step-000020"]["local_deleted"] is True
    assert by_revision["step-000030"]["local_deleted"] is False
    assert (summary["pushed"], summary["failed"]) == (3, 1)
    assert json.loads((out / "hub_pushes.json").read_text()) == json.loads(json.dumps(summary))
    assert "step-000010" not in api.branches or "model.safetensors" not in api.files("step-000010")
    # The run ends with a summary of what went where; the token is nowhere.
    assert "Hub pushes to https://huggingface.co/user/qwen-pi1: 3 ok, 1 failed" in caplog.text
    assert f"{HUB_REPO}@step-000020: ok" in caplog.text and f"{HUB_REPO}@main: ok" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in (out / "hub_pushes.json").read_text()
    for files in api.branches.values():
        assert all(TOKEN.encode() not in content for content in files.values())


def test_final_model_goes_to_main_with_card_and_eval_results(tmp_path, backoffs):
    out, api = tmp_path / "run", FakeHub(tmp_path)
    api.branches["main"]["stale-shard.safetensors"] = b"from an earlier run"
    cb, args = make_callback(out, api)
    for step in (10, 20):
        save(cb, args, out, step)
    (out / "eval" / "step-000020").mkdir(parents=True)
    (out / "eval" / "step-000020" / "results.json").write_text(json.dumps(eval_results_json(20, 0.7, 0.1)))
    (out / "eval" / "step-000020" / "samples.jsonl").write_text("{}\n")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "generation_config.json"):
        (out / name).write_bytes(b"final")
    (out / "trainer_state.json").write_text(
        json.dumps({"global_step": 20, "max_steps": 20, "log_history": []})
    )
    (out / "README.md").write_text("TRL's draft card")
    (out / "training_args.bin").write_bytes(b"pickle")

    summary = cb.push_final()

    assert api.commits[-1] == ("main", "Final model")
    assert api.files("main") == {
        ".gitattributes",
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "trainer_state.json",
        "recipe.yaml",
        "oneshot_run.json",
        "accuracy_history.jsonl",
        "eval/step-000020/results.json",
        "README.md",
    }  # no checkpoint-*, no samples, no pickles, the stale shard deleted
    card = ModelCard(api.branches["main"]["README.md"].decode())
    assert {r.dataset_name for r in card.data.eval_results} == {"MATH-500", "AIME 2024"}
    assert "https://huggingface.co/user/qwen-pi1/tree/step-000010" in card.text
    assert "https://huggingface.co/user/qwen-pi1/tree/step-000020" in card.text
    assert [p["revision"] for p in summary["pushes"]] == ["step-000010", "step-000020", "main"]


def test_auth_errors_are_not_retried(backoffs):
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    calls = []

    def unauthorized():
        calls.append(1)
        response = httpx.Response(
            401, request=httpx.Request("POST", "https://huggingface.co/api/repos/create")
        )
        raise HfHubHTTPError("401 Unauthorized", response=response)

    with pytest.raises(HfHubHTTPError):
        retry.with_retries(unauthorized, "Creating repo", max_attempts=5, backoff_s=0.001)
    assert calls == [1] and backoffs == []


def test_non_main_process_pushes_nothing(tmp_path):
    out, api = tmp_path / "run", FakeHub(tmp_path)
    cb, args = make_callback(out, api)
    save_checkpoint(out, 10)
    cb.on_save(args, TrainerState(global_step=10, is_world_process_zero=False), TrainerControl())
    cb.is_main_process = False
    assert cb.push_final() == {}
    assert cb.records == [] and api.calls == []


def test_push_eval_results_merges_into_existing_card(tmp_path, backoffs):
    api = FakeHub(tmp_path, fail={("upload_file", "step-000020"): 1})
    # A revision without a card gets a fresh one.
    push_eval_results(HUB_REPO, eval_results_json(20, 0.60, 0.10), revision="step-000020", api=api)
    first = ModelCard(api.branches["step-000020"]["README.md"].decode())
    assert len(first.data.eval_results) == 3 and "Checkpoint at step 20" in first.text
    assert backoffs == [2.0]  # the failed upload was retried

    other = dict(PROTOCOL, name="lighteval-math", hash="0badcafe")
    newer = eval_results_json(20, 0.65, 0.10)
    del newer["benchmarks"]["aime24"]
    push_eval_results(
        HUB_REPO, eval_results_json(20, 0.61, 0.12, protocol=other), revision="step-000020", api=api
    )
    card = push_eval_results(HUB_REPO, newer, revision="step-000020", api=api)

    stored = ModelCard(api.branches["step-000020"]["README.md"].decode())
    assert str(stored) == str(card)
    values = {
        (r.dataset_name, r.metric_type, r.metric_config): r.metric_value for r in stored.data.eval_results
    }
    assert values == {
        ("MATH-500", "acc", "one-shot-rlvr@3f2a9c1b"): 65.0,  # replaced by the newer run
        ("AIME 2024", "avg@8", "one-shot-rlvr@3f2a9c1b"): 10.0,  # kept: not in the newer results
        ("AIME 2024", "pass@8", "one-shot-rlvr@3f2a9c1b"): 30.0,
        ("MATH-500", "acc", "lighteval-math@0badcafe"): 61.0,  # another protocol: kept
        ("AIME 2024", "avg@8", "lighteval-math@0badcafe"): 12.0,
        ("AIME 2024", "pass@8", "lighteval-math@0badcafe"): 30.0,
    }
    assert "| MATH-500 | acc | 65.0 |" in stored.text and "hash `0badcafe`" in stored.text
    assert "main" not in {c[2] for c in api.calls if c[0] == "upload_file"}


def test_list_step_revisions_sorted_by_step(tmp_path):
    api = FakeHub(tmp_path)
    for branch in ("step-000100", "step-000020", "dev", "step-000003"):
        api.branches[branch] = {}
    assert list_step_revisions(HUB_REPO, api=api) == ["step-000003", "step-000020", "step-000100"]
    # A local run dir stands in for its repo.
    for step in (100, 20, 3):
        (tmp_path / "run" / f"checkpoint-{step}").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint-final-copy").mkdir()
    assert list_step_revisions(str(tmp_path / "run")) == ["step-000003", "step-000020", "step-000100"]


def test_card_cli_from_run_dir_and_from_hub(tmp_path, monkeypatch, capsys):
    out, api = tmp_path / "run", FakeHub(tmp_path)
    cb, args = make_callback(out, api)
    save(cb, args, out, 10)
    cb.push_final()
    results = tmp_path / "results.json"
    results.write_text(json.dumps(eval_results_json(10, 0.5, 0.05)))

    readme = tmp_path / "README.md"
    assert card_cli.main([str(out), "--results", str(results), "--output", str(readme)]) == 0
    card = ModelCard(readme.read_text())
    assert (
        len(card.data.eval_results) == 3
        and "https://huggingface.co/user/qwen-pi1/tree/step-000010" in card.text
    )
    assert TOKEN not in readme.read_text()

    # From the Hub: the run files uploaded with step-000010 are enough to re-render its card.
    monkeypatch.setattr(card_cli, "HfApi", lambda *a, **k: api)
    assert card_cli.main([HUB_REPO, "--revision", "step-000010", "--results", str(results), "--push"]) == 0
    pushed = ModelCard(api.branches["step-000010"]["README.md"].decode())
    assert "Checkpoint at step 10" in pushed.text and "dsr_sub:124" in pushed.text
    assert {r.metric_value for r in pushed.data.eval_results} == {50.0, 5.0, 30.0}

    # Re-rendering main from the run dir keeps results that were pushed to the Hub card since.
    other = dict(PROTOCOL, name="lighteval-math", hash="0badcafe")
    push_eval_results(HUB_REPO, eval_results_json(10, 0.4, 0.0, protocol=other), api=api)
    assert card_cli.main([str(out), "--push"]) == 0
    main_card = ModelCard(api.branches["main"]["README.md"].decode())
    assert {r.metric_config for r in main_card.data.eval_results} == {"lighteval-math@0badcafe"}
    assert "Training example" in main_card.text

    assert cli_main(["card", HUB_REPO, "--revision", "nope"]) == 2
    assert "must be main or step-NNNNNN" in capsys.readouterr().err


def test_with_a_real_trainer(tmp_path, backoffs):
    """The callback inside transformers' Trainer: the Trainer neither pushes nor rotates, we do both."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Trainer

    out, api = tmp_path / "run", FakeHub(tmp_path)
    args = TrainingArguments(
        output_dir=str(out),
        push_to_hub=True,  # would make the Trainer create the repo at init (network) if left on
        hub_model_id=HUB_REPO,
        save_steps=2,
        max_steps=6,
        save_total_limit=1,
        per_device_train_batch_size=2,
        report_to="none",
        use_cpu=True,
    )
    cb = HubPushCallback.from_training_args(args, None, make_run(out), api=api, backoff_s=0.001)
    # A 1-layer model: only the save/push plumbing matters here.
    config = Qwen2Config(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = Qwen2ForCausalLM(config)
    data = [{"input_ids": torch.arange(8), "labels": torch.arange(8)} for _ in range(12)]
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[cb])
    trainer.train()
    trainer.save_model(str(out))
    trainer.save_state()
    summary = cb.push_final()

    assert [p["revision"] for p in summary["pushes"]] == ["step-000002", "step-000004", "step-000006", "main"]
    assert summary["failed"] == 0 and {"model.safetensors", "trainer_state.json"} <= api.files("main")
    assert "optimizer.pt" not in api.files("step-000004") and "model.safetensors" in api.files("step-000004")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-6"]  # limit 1, all uploaded
    card = ModelCard(api.branches["main"]["README.md"].decode())
    assert "- Steps: 6" in card.text and "https://huggingface.co/user/qwen-pi1/tree/step-000006" in card.text


def test_failed_push_to_another_repo_keeps_the_runs_recorded_repo(tmp_path, backoffs):
    from oneshot_trl.hub.push_cli import push_missing

    out = tmp_path / "run"
    cb, args = make_callback(out, FakeHub(tmp_path, fail={("create_commit", "step-000010"): -1}))
    save(cb, args, out, 10)
    recorded = (out / "hub_pushes.json").read_text()
    assert json.loads(recorded)["repo_id"] == HUB_REPO and json.loads(recorded)["failed"] == 1

    elsewhere = FakeHub(tmp_path, fail={("create_commit", None): -1})  # the other repo fails too
    summary = push_missing(out, repo_id="someone/else", api=elsewhere)
    assert summary["failed"] == 1
    assert (out / "hub_pushes.json").read_text() == recorded  # the run still records its own repo, unchanged

    summary = push_missing(out, repo_id="someone/else", api=FakeHub(tmp_path))  # all there now: recorded
    assert summary["failed"] == 0
    assert json.loads((out / "hub_pushes.json").read_text())["repo_id"] == "someone/else"
