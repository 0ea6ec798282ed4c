"""Hub calls that can fail transiently: `with_retries` retries them with exponential backoff, logging each failure
with tokens scrubbed, and gives up at once on errors that retrying cannot fix (bad request, auth, not found).
Pushes that still failed: `failure_message` says what is missing and how to retry, `HubPushFailed` carries it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oneshot_trl.secrets import scrub
from oneshot_trl.validate import Incomplete

logger = logging.getLogger(__name__)

_sleep = time.sleep  # the backoff sleep (tests record it)


def _is_retryable(err: Exception) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(err, HfHubHTTPError) and err.response is not None:
        # Bad request, auth, not found: retrying the same call cannot help.
        return err.response.status_code not in (400, 401, 403, 404, 422)
    return True


def with_retries(
    fn: Callable[[], Any],
    what: str,
    *,
    max_attempts: int = 5,
    backoff_s: float = 2.0,
    max_backoff_s: float = 120.0,
    token: str | None = None,
) -> tuple[Any, int]:
    """Call `fn` until it succeeds, sleeping backoff_s * 2**k between attempts; returns (result, attempts)."""
    for attempt in range(1, max_attempts + 1):
        try:
            return fn(), attempt
        except Exception as err:
            message = scrub(f"{type(err).__name__}: {err}", token)
            if attempt == max_attempts or not _is_retryable(err):
                logger.error("%s failed (attempt %d/%d, giving up): %s", what, attempt, max_attempts, message)
                raise
            delay = min(backoff_s * 2 ** (attempt - 1), max_backoff_s)
            logger.warning(
                "%s failed (attempt %d/%d): %s; retrying in %.1fs",
                what,
                attempt,
                max_attempts,
                message,
                delay,
            )
            _sleep(delay)
    raise AssertionError("unreachable")


class HubPushFailed(Incomplete):
    """Some pushes of a run failed; everything is saved locally and the message says how to retry."""


def failure_message(summary: dict, run_dir: str | Path) -> str | None:
    """What is not on the Hub and the command that pushes it (None when every push is ok)."""
    missing = [p for p in summary.get("pushes", []) if p.get("status") != "ok"]
    if not missing:
        return None
    lines = [
        f"{len(missing)} push(es) to {summary.get('repo_id')} did not succeed; everything is saved locally:"
    ]
    lines += [f"  {p['revision']} ({p['local_path']}): {p.get('error') or p.get('status')}" for p in missing]
    lines.append(f"Retry (pushes only what is missing): oneshot-trl push {run_dir}")
    return "\n".join(lines)
