"""Model resolution: a local directory or a Hub id at a revision (branch, tag or commit sha) -> a local folder.

Works offline from the HF cache (`HF_HUB_OFFLINE=1`) and says what it tried when it fails. A local training run
dir stands in for its Hub repo (revision `step-000020` is its `checkpoint-20`, see `oneshot_trl.layout`). Used by
train, eval, select, analyze and `run.Run` alike; `hub/` is about publishing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_trl.layout import STEP_BRANCH_RE, checkpoint_dirs, revision_dirs, step_branch
from oneshot_trl.validate import InputError

_COMMIT_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


class ModelResolutionError(InputError):
    """A model could not be resolved to a local folder; the message says what was tried."""


@dataclass
class ResolvedModel:
    path: str  # local folder with config.json, weights, tokenizer files
    revision: str | None  # the revision asked for (None: a local dir, or the default branch of a Hub repo)
    commit_sha: str | None  # the Hub commit the files come from (None for a local dir)
    repo_id: str | None  # None for a local dir


def _looks_like_path(name: str) -> bool:
    # A Hub id has at most one "/"; anything else path-like is a local path that does not exist.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _resolve_local(path: Path, revision: str | None) -> ResolvedModel:
    if revision is None or revision == "main":
        return ResolvedModel(path=str(path), revision=None, commit_sha=None, repo_id=None)
    # A local training run dir stands in for its Hub repo: `step-000020` is `checkpoint-20` there.
    candidates = revision_dirs(path, revision)
    for candidate in candidates:
        if candidate.is_dir():
            return ResolvedModel(path=str(candidate), revision=revision, commit_sha=None, repo_id=None)
    tried = ", ".join(str(c) for c in candidates)
    raise ModelResolutionError(
        f"Revision {revision!r} of the local directory {str(path)!r} not found (looked for {tried}). "
        "Local directories have no Hub revisions; pass the checkpoint folder itself or a Hub repo id."
    )


def _cached_revisions(repo_id: str, cache_dir: str | None) -> list[str]:
    """Branch/tag names cached locally for `repo_id` (for error messages)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    refs = (
        Path(cache_dir or constants.HF_HUB_CACHE)
        / repo_folder_name(repo_id=repo_id, repo_type="model")
        / "refs"
    )
    if not refs.is_dir():
        return []
    return sorted(p.relative_to(refs).as_posix() for p in refs.rglob("*") if p.is_file())


def resolve_model(
    name_or_path: str,
    revision: str | None = None,
    token: str | None = None,
    allow_patterns: list[str] | str | None = None,
    cache_dir: str | None = None,
) -> ResolvedModel:
    """Resolve a local directory or a Hub model id (at `revision`) to a local folder.

    A local directory is returned as-is (for a training run dir, revision `step-000020` maps to its
    `checkpoint-20`). Otherwise the snapshot is fetched with `huggingface_hub.snapshot_download`, which uses the
    local cache when offline (`HF_HUB_OFFLINE=1`). The commit sha comes from the snapshot folder name.
    Raises `ModelResolutionError` (a `ValueError`) for an invalid id, an unknown repo or revision, or a model
    that is neither cached nor reachable.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    name_or_path = str(name_or_path)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return _resolve_local(local, revision)
    if _looks_like_path(name_or_path):
        raise ModelResolutionError(f"Local model directory {name_or_path!r} does not exist.")
    try:
        validate_repo_id(name_or_path)
    except HFValidationError as err:
        raise ModelResolutionError(
            f"{name_or_path!r} is neither an existing local directory nor a valid Hub repo id ({err})."
        ) from None

    asked = revision or "main"
    offline = constants.is_offline_mode()
    where = (
        "the local HF cache (offline mode, HF_HUB_OFFLINE=1)" if offline else "the Hub and the local HF cache"
    )
    try:
        # local_files_only when offline: otherwise a commit-sha revision goes straight to a tree listing request.
        path = snapshot_download(
            name_or_path,
            revision=revision,
            token=token,
            allow_patterns=allow_patterns,
            cache_dir=cache_dir,
            local_files_only=offline,
        )
    except RevisionNotFoundError:
        raise ModelResolutionError(
            f"Revision {asked!r} not found in Hub repo {name_or_path!r} "
            f"(list its step branches with `oneshot_trl.models.list_step_revisions`)."
        ) from None
    except GatedRepoError:
        raise ModelResolutionError(
            f"Hub repo {name_or_path!r} is gated: accept its terms on the Hub and pass a token (or set HF_TOKEN)."
        ) from None
    except RepositoryNotFoundError:
        raise ModelResolutionError(
            f"Hub repo {name_or_path!r} not found (or private without a valid token), and no local directory "
            "of that name exists."
        ) from None
    except LocalEntryNotFoundError as err:
        cached = _cached_revisions(name_or_path, cache_dir)
        if cached:
            detail = f"the cache has revisions {cached} of it, not {asked!r}"
        else:
            detail = "it is not in the cache at all"
        raise ModelResolutionError(
            f"Could not resolve {name_or_path!r} at revision {asked!r} from {where}: {detail}. "
            f"({type(err).__name__}: {err})"
        ) from None
    commit_sha = Path(path).name
    return ResolvedModel(
        path=str(path),
        revision=revision,
        commit_sha=commit_sha if _COMMIT_SHA_RE.match(commit_sha) else None,
        repo_id=name_or_path,
    )


def list_step_revisions(repo_id: str, token: str | None = None, api: Any = None) -> list[str]:
    """The `step-NNNNNN` branches of a Hub repo, sorted by step.

    A local training run dir stands in for its repo (as in `resolve_model`): its `checkpoint-N` folders.
    """
    if Path(repo_id).expanduser().is_dir():
        return [step_branch(step) for step in checkpoint_dirs(Path(repo_id).expanduser())]
    from huggingface_hub import HfApi

    api = api if api is not None else HfApi(token=token)
    refs = api.list_repo_refs(repo_id)
    names = [b.name for b in refs.branches if STEP_BRANCH_RE.match(b.name)]
    return sorted(names, key=lambda name: int(STEP_BRANCH_RE.match(name).group(1)))


def download_text(api: Any, repo_id: str, filename: str, revision: str) -> str | None:
    """A file of a Hub revision as text, or None when that revision has no such file."""
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = api.hf_hub_download(repo_id, filename, revision=revision)
    except EntryNotFoundError:
        return None
    return Path(path).read_text()


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_FINGERPRINT_SAMPLES, _FINGERPRINT_CHUNK = 16, 1 << 16


def weights_fingerprint(folder: str | Path) -> str | None:
    """A fingerprint of a local model folder's weights (None when it has no weight files): sha256 over each
    weight file's name, size and 16 chunks of 64 KiB spread over it. Replacing the weights (another
    checkpoint, a fine-tune: every byte differs) changes it; reading ~1 MiB per file keeps it instant where a
    full hash of a 3 GB model takes seconds. Local models have no commit sha: this is their identity."""
    import hashlib

    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as f:
            for i in range(_FINGERPRINT_SAMPLES):
                f.seek(max(0, size - _FINGERPRINT_CHUNK) * i // max(1, _FINGERPRINT_SAMPLES - 1))
                digest.update(f.read(_FINGERPRINT_CHUNK))
    return digest.hexdigest()[:16]
