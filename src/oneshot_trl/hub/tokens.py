"""Tokens never leave the process: every text we log, render or upload goes through `scrub`, and uploaded
recipes through `redact_recipe`. HfApi is the only code that gets a token."""

from __future__ import annotations

import os
import re

_SECRET_KEY_RE = re.compile(
    r"^(\s*-?\s*[\w.-]*(?:token|secret|password|api_key|apikey)[\w.-]*\s*:\s*)(.+?)\s*$", re.I
)
_REDACTED = "<redacted>"


def _known_tokens(*extra: str | None) -> list[str]:
    from huggingface_hub import get_token

    tokens = [*extra, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    try:
        tokens.append(get_token())
    except Exception:  # a broken token file must not break a push or a log line
        pass
    # Short strings would redact ordinary words; real tokens are long.
    return sorted({t for t in tokens if t and len(t) >= 8}, key=len, reverse=True)


def scrub(text: str, *tokens: str | None) -> str:
    """`text` with every known token (given, HF_TOKEN, the cached login) replaced by <redacted>."""
    for token in _known_tokens(*tokens):
        text = text.replace(token, _REDACTED)
    return text


def redact_recipe(text: str, *tokens: str | None) -> str:
    """A recipe YAML with the values of token/secret/password keys redacted (line-wise, comments kept)."""
    lines = []
    for line in text.splitlines():
        match = _SECRET_KEY_RE.match(line)
        if match and match.group(2).split("#")[0].strip() not in ("null", "~", "''", '""', "None"):
            line = f"{match.group(1)}{_REDACTED}"
        lines.append(line)
    return scrub("\n".join(lines), *tokens) + ("\n" if text.endswith("\n") else "")
