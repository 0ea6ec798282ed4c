"""Tokens never leave the process: every text we log, print, render or upload goes through `scrub`, and written
or uploaded recipes through `redact_recipe`. HfApi is the only code that gets a token. A leaf: imports nothing of
the package, so every floor (validation, training, eval, the Hub) can use it."""

from __future__ import annotations

import logging
import os
import re

# A secret's key has a name part token/secret/password/api_key (hub_token, HF_TOKEN, wandb_api_key), not a word
# that contains one (max_new_tokens, tokenizer_name): those are settings, and a re-run needs their values.
_SECRET_NAME = r"(?:^|[_.-])(?:token|secret|password|passwd|api_?key)(?:$|[_.-])"
_SECRET_KEY_RE = re.compile(r"^(\s*-?\s*([\w.-]+)\s*:\s*)(.+?)\s*$")
_REDACTED = "<redacted>"
_remembered: set[str] = set()  # tokens a recipe or flag gave this process (`remember`)


def remember(*tokens: str | None) -> None:
    """Scrub these tokens from every later text of this process, wherever it is printed or logged: a recipe's
    `hub_token` is known to the one error path (`oneshot_trl.cli`) without being passed along."""
    _remembered.update(t for t in tokens if t)


def _known_tokens(*extra: str | None) -> list[str]:
    # Imported here: huggingface_hub costs ~0.3 s, and `scrub` sits on every command's error path (`--help` too).
    from huggingface_hub import get_token

    tokens = [*extra, *_remembered, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
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
        if (
            match
            and is_secret_key(match.group(2))
            and match.group(3).split("#")[0].strip() not in ("null", "~", "''", '""', "None")
        ):
            line = f"{match.group(1)}{_REDACTED}"
        lines.append(line)
    return scrub("\n".join(lines), *tokens) + ("\n" if text.endswith("\n") else "")


_SECRET_NAME_RE = re.compile(_SECRET_NAME, re.I)


def is_secret_key(key: str) -> bool:
    """Whether a config key or flag names a secret (hub_token, ...): its value is never shown."""
    return bool(_SECRET_NAME_RE.search(str(key)))


def secrets_in(recipe: dict | None = None, argv: list[str] | None = None) -> list[str]:
    """The values of secret keys in a recipe mapping and in `--key value` / `--key=value` flags."""
    values = [v for k, v in (recipe or {}).items() if is_secret_key(k) and isinstance(v, str)]
    argv = argv or []
    for i, arg in enumerate(argv):
        key, eq, inline = arg.lstrip("-").partition("=")
        if arg.startswith("--") and is_secret_key(key):
            values.append(inline if eq else (argv[i + 1] if i + 1 < len(argv) else ""))
    return [v for v in values if v]


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs `tokens` (and the known ones, see `scrub`) from every record it passes."""

    def __init__(self, *tokens: str | None) -> None:
        super().__init__()
        self.tokens = tokens

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, *self.tokens)
        if clean != message:
            record.msg, record.args = clean, None
        return True
