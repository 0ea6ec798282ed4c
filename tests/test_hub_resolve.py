"""`resolve_model` against a local HF cache laid out exactly as the Hub leaves it, with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

from oneshot_trl.models import ModelResolutionError, ResolvedModel, resolve_model

SHA_MAIN = "a" * 40
SHA_STEP20 = "b" * 40
SHA_OLD = "c" * 40  # a commit reachable only by sha (no ref points at it)
SHA_PARTIAL = "d" * 40


def _add_snapshot(repo_dir: Path, sha: str, files: dict[str, str], tree: list[str] | None = None) -> None:
    """Files go to blobs/<hash>; snapshots/<sha>/<name> are relative symlinks to them, as huggingface_hub does.

    `tree`: the repo's file list at that commit, cached under trees/<sha>.json as recent huggingface_hub
    versions do (None: an older cache without it).
    """
    if tree is not None:
        entries = {
            name: TreeCacheEntry(size=1, blob_id=hashlib.sha1(name.encode()).hexdigest()) for name in tree
        }
        write_tree_cache(str(repo_dir), sha, entries)
    for name, content in files.items():
        blob_id = hashlib.sha256(content.encode()).hexdigest()
        blob = repo_dir / "blobs" / blob_id
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_text(content)
        link = repo_dir / "snapshots" / sha / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def _set_ref(repo_dir: Path, ref: str, sha: str) -> None:
    path = repo_dir / "refs" / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sha)  # the Hub cache writes the bare sha, no newline


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """HF_HOME/HF_HUB_CACHE in tmp, offline, with `user/repo` at main, step-000020 and an unreferenced sha."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_home" / "hub"
    repo_dir = cache / "models--user--repo"
    config = {"model_type": "qwen2", "hidden_size": 64}
    _add_snapshot(
        repo_dir, SHA_MAIN, {"config.json": json.dumps(config), "model.safetensors": "main-weights"}
    )
    step20 = {"config.json": json.dumps(config), "model.safetensors": "step20-weights"}
    _add_snapshot(repo_dir, SHA_STEP20, step20, tree=list(step20))
    _add_snapshot(repo_dir, SHA_OLD, {"config.json": json.dumps(config), "model.safetensors": "old-weights"})
    _set_ref(repo_dir, "main", SHA_MAIN)
    _set_ref(repo_dir, "step-000020", SHA_STEP20)
    # An interrupted download: the tree says there is a tokenizer.json, the snapshot lacks it.
    _add_snapshot(
        repo_dir, SHA_PARTIAL, {"config.json": json.dumps(config)}, tree=["config.json", "tokenizer.json"]
    )
    _set_ref(repo_dir, "partial", SHA_PARTIAL)

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads these at import time: patch the module constants too.
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_resolve_main_branch_and_sha_offline(hf_cache):
    main = resolve_model("user/repo")
    assert main == ResolvedModel(
        path=str(hf_cache / "models--user--repo" / "snapshots" / SHA_MAIN),
        revision=None,
        commit_sha=SHA_MAIN,
        repo_id="user/repo",
    )
    assert (Path(main.path) / "model.safetensors").read_text() == "main-weights"

    step = resolve_model("user/repo", revision="step-000020")
    assert step.commit_sha == SHA_STEP20 and step.revision == "step-000020"
    assert (Path(step.path) / "model.safetensors").read_text() == "step20-weights"

    old = resolve_model("user/repo", revision=SHA_OLD)
    assert old.commit_sha == SHA_OLD
    assert (Path(old.path) / "model.safetensors").read_text() == "old-weights"


def test_unknown_revision_names_cached_ones(hf_cache):
    with pytest.raises(ModelResolutionError) as err:
        resolve_model("user/repo", revision="step-000040")
    msg = str(err.value)
    assert "user/repo" in msg and "step-000040" in msg and "offline" in msg
    assert "step-000020" in msg and "main" in msg  # what the cache does have


def test_unknown_repo_offline(hf_cache):
    with pytest.raises(ValueError, match=r"'user/missing'.*not in the cache at all"):
        resolve_model("user/missing")


def test_invalid_repo_id_and_missing_local_dir(hf_cache, tmp_path):
    with pytest.raises(
        ModelResolutionError, match="neither an existing local directory nor a valid Hub repo id"
    ):
        resolve_model("not a valid id!!")
    with pytest.raises(ModelResolutionError, match="does not exist"):
        resolve_model(str(tmp_path / "no" / "such" / "dir"))


def test_local_dir_as_is_and_run_dir_step_revision(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-20").mkdir(parents=True)
    assert resolve_model(str(run)) == ResolvedModel(
        path=str(run), revision=None, commit_sha=None, repo_id=None
    )
    step = resolve_model(str(run), revision="step-000020")
    assert step.path == str(run / "checkpoint-20") and step.commit_sha is None
    with pytest.raises(ModelResolutionError, match="checkpoint-40"):
        resolve_model(str(run), revision="step-000040")


def test_incomplete_snapshot_is_an_error_unless_filtered(hf_cache):
    with pytest.raises(ModelResolutionError, match=r"revision 'partial'.*tokenizer\.json"):
        resolve_model("user/repo", revision="partial")
    only_config = resolve_model("user/repo", revision="partial", allow_patterns=["config.json"])
    assert only_config.commit_sha == SHA_PARTIAL
