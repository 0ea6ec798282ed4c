"""One command-line convention: every command takes both spellings of each flag, as TRL's parsers do.

The recipe commands (`train`, `doctor`) take recipe fields in either spelling (`oneshot_trl.recipe_source`); the
other commands build their parser with this module's `ArgumentParser`, argparse's own except that the snake_case
spelling of a kebab-case long option is accepted (`--output_dir` for `--output-dir`). `--help` shows one spelling.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser that also takes `--foo_bar` (and `--foo_bar=x`) for its `--foo-bar` option."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)  # after `--`: positional values, untouched
        return super().parse_known_args([*map(self.kebab, args[:end]), *args[end:]], namespace)

    def kebab(self, arg: str) -> str:
        """`arg` in the spelling this parser knows: `--output_dir[=x]` -> `--output-dir[=x]` when only that exists."""
        if not arg.startswith("--") or "_" not in arg:
            return arg
        name, eq, value = arg.partition("=")
        spelled = name.replace("_", "-")
        if name not in self._option_string_actions and spelled in self._option_string_actions:
            return spelled + eq + value
        return arg
