"""Where a recipe comes from, read without the config classes (so without TRL): the command line
`RECIPE.yaml [--field value ...]` split into the recipe path and its override flags, and the recipe file read once.

`oneshot_trl.train_cli` checks a command line with it before the training stack is imported;
`oneshot_trl.recipe` turns the result into the config dataclasses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oneshot_trl.validate import InputError

HELP_FLAGS = ("-h", "--help")


class RecipeError(InputError):
    """A recipe or an override that cannot be used: missing, not a mapping, a duplicated or unknown key, a value
    of the wrong type or out of its field's range. The message names the file and key, or the flag."""


@dataclass
class Flag:
    """One `--name value ...` of a command line, as typed (`spelling`), and the field it names (`key`)."""

    spelling: str
    values: list[str]

    @property
    def key(self) -> str:
        return self.spelling.lstrip("-").replace("-", "_")


@dataclass
class RecipeArgv:
    """A recipe command line: the recipe path (positional or `--config`) and the other flags, in order."""

    path: str | None
    flags: list[Flag] = field(default_factory=list)
    help: bool = False


def split_argv(argv: list[str]) -> RecipeArgv:
    """`RECIPE.yaml [--field value ...]`, `--config RECIPE.yaml [...]`, `--field=value`; a `--` is skipped (the
    doctor's older `doctor RECIPE -- --field value` still works). A flag takes the words up to the next `--flag`
    (so `--seed -1` is a value, `--dsr_sub_index 1 2 3` a list)."""
    parsed = RecipeArgv(None, help=any(a in HELP_FLAGS for a in argv))
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--" or arg in HELP_FLAGS:
            continue
        if not arg.startswith("--"):
            if parsed.path is not None:
                raise RecipeError(
                    f"unexpected argument {arg!r}: give one recipe, then --field value overrides."
                )
            parsed.path = arg
            continue
        name, eq, inline = arg.partition("=")
        values = [inline] if eq else []
        while not eq and i < len(argv) and not argv[i].startswith("--"):
            values.append(argv[i])
            i += 1
        if name == "--config":
            if len(values) != 1 or parsed.path is not None:
                raise RecipeError(
                    "--config takes one recipe file (or give the recipe as the first argument)."
                )
            parsed.path = values[0]
        else:
            parsed.flags.append(Flag(name, values))
    return parsed


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key set twice in one mapping is an error (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = lines.setdefault(key, line)
            except TypeError:  # an unhashable key: the base loader says what is wrong
                continue
            if first != line:
                raise _DuplicateKey(key, first, line)
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """A recipe file's mapping, read once: missing file, invalid YAML, a non-mapping or a key set twice is a
    RecipeError naming the file (and the key and both lines)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"Recipe file not found: {path}")
    try:
        recipe = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as dup:
        raise RecipeError(
            f"{path}: key {dup.key!r} is set twice (lines {dup.first} and {dup.second}); keep one."
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    except OSError as err:  # exists but cannot be read (permissions): one line, not a traceback
        raise RecipeError(f"{path} could not be read: {err.strerror or err}") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path} must be a YAML mapping of config fields to values.")
    return recipe
