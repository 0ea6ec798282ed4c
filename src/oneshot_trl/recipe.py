"""Recipe files: read, validate and parse a recipe into the config dataclasses (`oneshot_trl.config`).

`parse_recipe` validates keys and value types against the fields of `OneShotArguments`, `OneShotGRPOConfig` (or
`OneShotPPOConfig` with `algorithm: ppo`) and TRL's `ModelConfig` before anything starts, naming the key and the
file on error; command-line flags override recipe values, as with TRL's scripts.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from trl import ModelConfig, TrlParser

from oneshot_trl.config import ALGORITHMS, OneShotArguments, OneShotGRPOConfig, OneShotPPOConfig
from oneshot_trl.validate import InputError, check_field, check_flags, coerce_value

RECIPE_DATACLASSES = (OneShotArguments, OneShotGRPOConfig, ModelConfig)


def recipe_dataclasses(algorithm: str = "grpo") -> tuple[type, ...]:
    """The dataclasses whose fields are a recipe's keys: PPO recipes use OneShotPPOConfig for the trainer's."""
    if algorithm not in ALGORITHMS:
        raise RecipeError(f"Unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    return (OneShotArguments, OneShotPPOConfig, ModelConfig) if algorithm == "ppo" else RECIPE_DATACLASSES


class RecipeError(InputError):
    """A recipe file that cannot be used: missing, not a mapping, unknown key or wrong value type."""


def _type_matches(value: Any, tp: Any) -> bool:
    """Whether a YAML value fits a dataclass field annotation (loose: ints are floats, strings fit enums)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_matches(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(_type_matches(v, item_tp) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return value in {m.value for m in tp} or value in tp.__members__
    if tp is bool:
        return isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True  # exotic annotations: leave the check to the dataclass


def _recipe_fields(classes: tuple[type, ...] = RECIPE_DATACLASSES) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                fields[f.name] = hints.get(f.name, Any)
    return fields


def load_recipe(path: str | os.PathLike, algorithm: str | None = None) -> dict[str, Any]:
    """Read and validate a recipe file: every key must be a config field and every value of the field's type.

    The fields are those of the recipe's `algorithm` (or of `algorithm`, when a command-line flag overrides it).
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"Recipe file not found: {path}")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RecipeError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path} must be a YAML mapping of config fields to values.")
    algorithm = algorithm or recipe.get("algorithm") or "grpo"
    if algorithm not in ALGORITHMS:
        raise RecipeError(f"{path}: key 'algorithm' is {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    classes = recipe_dataclasses(algorithm)
    known = _recipe_fields(classes)
    ppo_only = _recipe_fields(recipe_dataclasses("ppo")).keys() - known
    for key, value in recipe.items():
        if key == "env":  # TrlParser convention: environment variables to set
            continue
        if key in ppo_only:
            raise RecipeError(f"{path}: key {key!r} is a PPO setting; it needs `algorithm: ppo`.")
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise RecipeError(f"{path}: unknown key {key!r}.{hint} Keys must be fields of {_names(classes)}.")
        value = recipe[key] = coerce_value(value, known[key])  # `1e-3` is a str in YAML
        if value is not None and not _type_matches(value, known[key]):
            raise RecipeError(
                f"{path}: key {key!r} has value {value!r} of type {type(value).__name__}, expected {known[key]}."
            )
        try:
            check_field(key, value, known[key], f"{path}: key {key!r}")
        except InputError as err:
            raise RecipeError(str(err)) from None
    return recipe


def _names(classes: tuple[type, ...] = RECIPE_DATACLASSES) -> str:
    return ", ".join(c.__name__ for c in classes)


def _flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in argv (the last one wins, as with argparse)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def parse_recipe(
    argv: list[str] | None = None,
) -> tuple[OneShotArguments, OneShotGRPOConfig, ModelConfig, str | None]:
    """Parse `RECIPE.yaml [--field value ...]` (or `--config RECIPE.yaml ...`) into the three configs.

    Command-line flags override recipe values, as with TRL's scripts. Returns the recipe path as well. The trainer
    config is a `OneShotPPOConfig` when the recipe (or `--algorithm`) says `ppo`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_path = None
    if argv and not argv[0].startswith("-"):
        recipe_path = argv.pop(0)
        argv = ["--config", recipe_path, *argv]
    elif "--config" in argv:
        recipe_path = argv[argv.index("--config") + 1]
    algorithm = _flag_value(argv, "algorithm")
    if recipe_path is not None:
        # validate before TrlParser, which would accept wrong types silently
        algorithm = algorithm or load_recipe(recipe_path, algorithm).get("algorithm")
    classes = recipe_dataclasses(algorithm or "grpo")
    if not {"-h", "--help"} & set(argv):  # --help is argparse's: it lists every field and exits 0
        check_flags(argv, _recipe_fields(classes))  # one line per bad flag, not argparse's usage
    parser = TrlParser(classes)
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    return script_args, training_args, model_args, recipe_path
