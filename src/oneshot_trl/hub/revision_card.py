"""The model card of one Hub repo revision: upload it (`upload_card`), or merge `oneshot-trl eval` results into
the card already there (`push_eval_results`; `EvalResultsPusher` for a sweep's revisions, failures collected). No
transformers import: `eval --push-to-hub` and `card --push` load it cheaply (the training-time pushes are
`hub.push`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, ModelCard

from oneshot_trl.hub.cards import (
    CardInputs,
    merge_eval_results,
    protocol_of,
    render_model_card,
    results_to_eval_results,
    set_card_eval_results,
)
from oneshot_trl.hub.retry import HubPushFailed, with_retries
from oneshot_trl.layout import RESULTS_FILE, STEP_BRANCH_RE
from oneshot_trl.models import download_text
from oneshot_trl.secrets import scrub

logger = logging.getLogger(__name__)


def upload_card(api: Any, repo_id: str, revision: str, content: bytes, message: str, **retry: Any) -> None:
    """Upload `content` as README.md of `repo_id` at `revision`, with retries (`hub.retry.with_retries` options)."""
    with_retries(
        lambda: api.upload_file(
            path_or_fileobj=content,
            path_in_repo="README.md",
            repo_id=repo_id,
            revision=revision,
            commit_message=message,
        ),
        f"Uploading card of {repo_id}@{revision}",
        **retry,
    )


def push_eval_results(
    repo_id: str,
    results: dict,
    revision: str = "main",
    token: str | None = None,
    api: Any = None,
    *,
    max_attempts: int = 5,
    backoff_s: float = 2.0,
) -> ModelCard:
    """Merge an `oneshot-trl eval` results.json dict into the card of `repo_id` at `revision` and upload it.

    Results already on the card are kept; one with the same benchmark, metric and protocol (name@hash) is
    replaced. A revision without a README gets a fresh card. Returns the uploaded card.
    """
    api = api if api is not None else HfApi(token=token)
    retry = {"max_attempts": max_attempts, "backoff_s": backoff_s, "token": token}
    text, _ = with_retries(
        lambda: download_text(api, repo_id, "README.md", revision), "Downloading card", **retry
    )
    if text is None:
        step = STEP_BRANCH_RE.match(revision)
        card = render_model_card(repo_id, CardInputs(), step=int(step.group(1)) if step else None)
    else:
        card = ModelCard(text, ignore_metadata_errors=True)
    merged = merge_eval_results(card.data.eval_results or [], results_to_eval_results(results))
    card = set_card_eval_results(card, merged, repo_id)
    protocol, phash = protocol_of(results)
    upload_card(
        api,
        repo_id,
        revision,
        scrub(str(card), token).encode(),
        f"Eval results ({protocol}@{phash}) for {', '.join(results.get('benchmarks') or {})}",
        **retry,
    )
    logger.info("Pushed %d eval results to the card of %s@%s", len(merged), repo_id, revision)
    return card


class EvalResultsPusher:
    """`eval --push-to-hub`: each revision's results onto its branch's model card as the revision finishes; a
    failed push is collected, not raised, since the results are saved locally already, and `raise_failures` ends
    the command with them all and how to retry each."""

    def __init__(self, repo_id: str) -> None:
        self.repo_id = repo_id
        self.failed: list[str] = []

    def push(self, revision: str | None, folder: Path, results: dict) -> None:
        where = f"{self.repo_id}@{revision or 'main'}"
        try:
            push_eval_results(self.repo_id, results, revision=revision or "main")
            print(f"pushed results to {where}")
        except Exception as err:  # noqa: BLE001 - network, auth, Hub errors after retries
            self.failed.append(
                f"{where}: {scrub(' '.join(str(err).split()))[:300]}\n  retry: oneshot-trl card {self.repo_id} "
                f"--revision {revision or 'main'} --results {folder / RESULTS_FILE} --push"
            )

    def raise_failures(self) -> None:
        """HubPushFailed (exit 1 through `oneshot_trl.cli`) listing the failed pushes and their retries, if any."""
        if self.failed:
            raise HubPushFailed(
                f"results saved locally, but {len(self.failed)} push(es) to the Hub failed:\n"
                + "\n".join(self.failed)
            )
