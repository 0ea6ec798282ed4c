"""Train -> push: the real training entry point with `push_to_hub`, against the recording Hub stand-in."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard
from support import FakeHub, train_in_process

import oneshot_trl.hub.push as push


@pytest.mark.slow
def test_training_pushes_each_checkpoint_to_its_branch_and_the_final_model_to_main(
    make_recipe, tmp_path, monkeypatch
):
    api = FakeHub(tmp_path, fail={("create_commit", "step-000002"): 1})  # first upload of step 2 fails once
    monkeypatch.setattr(push, "HfApi", lambda *a, **k: api)
    monkeypatch.setenv("HF_TOKEN", "hf_fakeTOKENforTHEtest")  # push_to_hub: a token is checked before step 1
    recipe = make_recipe(
        max_steps=4, save_steps=2, push_to_hub=True, hub_model_id="user/tiny-pi1", save_total_limit=1
    )
    train_in_process(recipe)

    assert {"step-000002", "step-000004", "main"} <= set(api.branches)
    for branch in ("step-000002", "step-000004", "main"):
        files = api.files(branch)
        assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= files, branch
        assert not any(f.endswith((".pt", ".pth")) for f in files), branch
    assert {"accuracy_history.jsonl", "recipe.yaml", "trainer_state.json"} <= api.files("step-000004")
    history = api.branches["step-000002"]["accuracy_history.jsonl"].decode().splitlines()
    assert len(history) == 2  # the step-2 branch carries the history up to step 2 only
    card = ModelCard(api.branches["main"]["README.md"].decode())
    assert "12.8" in card.text and "step-000004" in card.text
    assert (tmp_path / "run" / "hub_pushes.json").exists()


@pytest.mark.slow
def test_no_token_byte_anywhere_in_the_run_dir(make_recipe, tmp_path, monkeypatch):
    """A token set three ways (recipe, flag, environment): no file under the run dir (binary ones included:
    training_args.bin is a pickle) and no uploaded file holds any of them."""
    tokens = {
        "recipe": "hf_recipeSCANsecret0001",
        "flag": "hf_flagSCANsecret00002",
        "env": "hf_envSCANsecret000003",
    }
    api = FakeHub(tmp_path)
    monkeypatch.setattr(push, "HfApi", lambda *a, **k: api)
    monkeypatch.setenv("HF_TOKEN", tokens["env"])
    recipe = make_recipe(
        max_steps=2, save_steps=1, push_to_hub=True, hub_model_id="user/scan", hub_token=tokens["recipe"]
    )
    train_in_process(recipe, "--hub_token", tokens["flag"])

    run = tmp_path / "run"
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in files) and any(p.suffix == ".pth" for p in files)
    for path in files:
        data = path.read_bytes()
        for how, token in tokens.items():
            assert token.encode() not in data, f"the {how} token is in {path}"
    for branch, contents in api.branches.items():
        for name, data in contents.items():
            assert not any(t.encode() in data for t in tokens.values()), f"{branch}:{name}"
