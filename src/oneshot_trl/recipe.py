"""Recipes: a YAML file of config fields plus command-line overrides, parsed once into the config dataclasses.

`parse_recipe(["RECIPE.yaml", "--max_steps", "5"])` reads the file once (`recipe_source.read_recipe`), takes each
override in either spelling (`--max_steps`, `--max-steps`), converts every value to its field's type (`convert`:
`1e-3` is a str in YAML, a flag is text) and builds `OneShotArguments`, `OneShotGRPOConfig` (or `OneShotPPOConfig`
with `algorithm: ppo`) and TRL's `ModelConfig`. Ranges, choices and cross-field rules are the dataclasses' own
(`oneshot_trl.config`), checked as they are built; every error is a one-line RecipeError naming the file and key,
or the flag. The parsed `Recipe` keeps what the user set, for the doctor and for the run's own record
(`effective_text`: what `train runs/R/recipe.yaml` re-runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from trl import ModelConfig

from oneshot_trl.config import ALGORITHMS, OneShotArguments, OneShotGRPOConfig, OneShotPPOConfig
from oneshot_trl.recipe_source import Flag, RecipeError, read_recipe, split_argv
from oneshot_trl.retention import check_retention_with_trainer
from oneshot_trl.rewards import check_reward_funcs
from oneshot_trl.secrets import is_secret_key, remember, scrub
from oneshot_trl.validate import FieldError

__all__ = ["Recipe", "RecipeError", "build_configs", "load_recipe", "parse_recipe", "read_recipe_argv"]

RECIPE_DATACLASSES = (OneShotArguments, OneShotGRPOConfig, ModelConfig)
ENV_KEY = "env"  # TrlParser's convention: environment variables to set before the configs are built
_TRUE, _FALSE = ("true", "yes", "y", "t", "1", "on"), ("false", "no", "n", "f", "0", "off")
_NULL = ("null", "none", "~")


def recipe_dataclasses(algorithm: str = "grpo") -> tuple[type, ...]:
    """The dataclasses whose fields are a recipe's keys: PPO recipes use OneShotPPOConfig for the trainer's."""
    return (OneShotArguments, OneShotPPOConfig, ModelConfig) if algorithm == "ppo" else RECIPE_DATACLASSES


def recipe_fields(classes: tuple[type, ...] = RECIPE_DATACLASSES) -> dict[str, tuple[type, Any]]:
    """Every recipe key: name -> (the dataclass that holds it, its type annotation)."""
    out: dict[str, tuple[type, Any]] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                out[f.name] = (cls, hints.get(f.name, Any))
    return out


# --- values: one conversion for YAML values and flag text -----------------------------------------------------


class _Mismatch(Exception):
    pass


def _convert(value: Any, tp: Any, lenient: bool) -> Any:
    """`value` as type `tp`, or _Mismatch. Strict: the value already has the type (an int is a float). Lenient:
    text that spells one (`1e-3`, `true`, `null`), a scalar for a str or list field."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for mode in (False, True) if lenient else (False,):
            for arg in typing.get_args(tp):
                try:
                    return _convert(value, arg, mode)
                except _Mismatch:
                    continue
        raise _Mismatch
    if tp is type(None):
        if value is None or (lenient and isinstance(value, str) and value.strip().lower() in _NULL):
            return None
        raise _Mismatch
    if origin is typing.Literal:
        for choice in typing.get_args(tp):
            if value == choice or (lenient and str(value) == str(choice)):
                return choice
        raise _Mismatch
    if origin in (list, tuple) or tp in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = value if isinstance(value, list) else [value] if lenient and value is not None else None
        if items is None:
            raise _Mismatch
        converted = [convert(v, item_tp) for v in items]
        return tuple(converted) if tuple in (origin, tp) else converted
    if origin is dict or tp is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if value in {m.value for m in tp} or value in tp.__members__:
            return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        if lenient and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise _Mismatch
    if tp in (int, float):
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int) or (tp is float and isinstance(value, float)):
            return tp(value)
        if lenient and isinstance(value, str):
            try:
                return tp(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        if lenient and isinstance(value, (bool, int, float)):
            return str(value).lower() if isinstance(value, bool) else str(value)
        raise _Mismatch
    return value  # exotic annotations: the dataclass checks them


def convert(value: Any, tp: Any) -> Any:
    """A recipe value or flag text as its field's type `tp` (strictly typed values first, then text such as
    YAML's `1e-3` str); ValueError when it cannot be one."""
    if value is None:
        return None
    try:
        return _convert(value, tp, lenient=True)
    except _Mismatch:
        raise ValueError(describe_type(tp)) from None


def describe_type(tp: Any) -> str:
    """What a field annotation accepts, in words (`a number (int) or null`)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe_type(a) for a in typing.get_args(tp)))
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return f"a list of {describe_type(item_tp)}"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in tp)
    names = {type(None): "null", bool: "true or false", int: "a number (int)", float: "a number (float)",
             str: "a string", dict: "a mapping"}  # fmt: skip
    return names.get(tp if origin is None else origin, str(tp))


# --- the recipe: file + overrides ----------------------------------------------------------------------------


@dataclass
class Recipe:
    """A parsed recipe command line: the file's mapping (`values`, converted; `env` kept apart), the overrides
    (`flags`: field -> value, converted; `spellings`: field -> the flag as typed) and the dataclasses they fill."""

    path: str | None
    values: dict[str, Any]
    flags: dict[str, Any]
    spellings: dict[str, str]
    env: dict[str, str]
    classes: tuple[type, ...]

    def __fspath__(self) -> str:  # older callers pass the recipe on as a path
        if self.path is None:
            raise TypeError("this recipe has no file")
        return self.path

    @property
    def effective(self) -> dict[str, Any]:
        """What the user set: the file's values with the flags' on top (every other field has its default)."""
        return {**self.values, **self.flags}

    def where(self, key: str) -> str:
        """How an error names `key`: the flag that set it, or the recipe file's key."""
        if key in self.spellings:
            return f"flag {self.spellings[key]}"
        return f"{self.path}: key {key!r}" if self.path else f"key {key!r}"

    def effective_text(self, *tokens: str | None) -> str:
        """The effective recipe as YAML, for the run's own record: `train runs/R/recipe.yaml` re-runs it. Values of
        secret keys (hub_token, an env HF_TOKEN) are left out, and any known token is scrubbed from the rest."""
        secret = sorted(k for k in self.effective if is_secret_key(k))
        values = {k: v for k, v in self.effective.items() if not is_secret_key(k)}
        env = {k: v for k, v in self.env.items() if not is_secret_key(k)}
        secret += sorted(f"env.{k}" for k in self.env if is_secret_key(k))
        flags = " ".join(
            f"{self.spellings[k]} {_show(v)}" for k, v in self.flags.items() if not is_secret_key(k)
        )
        header = [f"# The effective recipe of this run: {self.path or 'no file'}"]
        header += [f"# with the command-line overrides {flags}"] if flags else []
        header += [f"# Not saved (secrets): {', '.join(secret)}."] if secret else []
        body = yaml.safe_dump(
            {**({ENV_KEY: env} if env else {}), **values}, sort_keys=False, allow_unicode=True
        )
        return scrub("\n".join(header) + "\n" + body, *tokens)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _unknown(
    key: str, known: Mapping[str, Any], ppo_only: set[str], path: str | None, flag: Flag | None
) -> RecipeError:
    """An unknown key or flag, with the closest field names (or: it needs `algorithm: ppo`)."""
    where = f"flag {flag.spelling}" if flag else f"{path}: key {key!r}"
    if key in ppo_only:
        return RecipeError(f"{where} is a PPO setting; it needs `algorithm: ppo`.")
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" Did you mean {', '.join(('--' if flag else '') + c for c in close)}?" if close else ""
    if flag:
        return RecipeError(f"unknown flag {flag.spelling}.{hint}")
    names = ", ".join(c.__name__ for c in recipe_dataclasses())
    return RecipeError(f"{path}: unknown key {key!r}.{hint} Keys must be fields of {names}.")


def _flag_value(flag: Flag, tp: Any) -> Any:
    """An override's words as one value: a list field takes them all, a bool flag alone means true."""
    is_list = any(typing.get_origin(t) in (list, tuple) for t in (tp, *typing.get_args(tp)))
    if is_list:
        return flag.values
    if not flag.values:
        if bool in (tp, *typing.get_args(tp)):
            return True
        raise RecipeError(f"flag {flag.spelling} needs a value.")
    if len(flag.values) > 1:
        raise RecipeError(
            f"flag {flag.spelling} takes one value, got {len(flag.values)}: {' '.join(flag.values)}."
        )
    return flag.values[0]


def read_recipe_argv(argv: list[str] | None = None) -> Recipe:
    """`RECIPE.yaml [--field value ...]` (or `--config RECIPE.yaml ...`, or only flags): the file read once, every
    key and flag known and converted to its field's type. RecipeError names the key and file, or the flag."""
    parsed = split_argv(list(sys.argv[1:] if argv is None else argv))
    values = read_recipe(parsed.path) if parsed.path is not None else {}
    where = f"{parsed.path}: key {ENV_KEY!r}"
    env = values.pop(ENV_KEY, None) or {}
    if not isinstance(env, dict):
        raise RecipeError(f"{where} must be a mapping of environment variables to values.")
    flags = {f.key: f for f in parsed.flags}  # the last one wins, as with argparse
    algorithm = flags["algorithm"].values[-1] if "algorithm" in flags and flags["algorithm"].values else None
    algorithm = algorithm or values.get("algorithm") or "grpo"
    if algorithm not in ALGORITHMS:
        origin = flags["algorithm"].spelling if "algorithm" in flags else f"{parsed.path}: key 'algorithm'"
        raise RecipeError(f"{origin} is {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    classes = recipe_dataclasses(algorithm)
    known = recipe_fields(classes)
    ppo_only = set(recipe_fields(recipe_dataclasses("ppo"))) - set(known)
    recipe = Recipe(parsed.path, {}, {}, {f.key: f.spelling for f in parsed.flags}, {}, classes)
    recipe.env = {str(k): str(v) for k, v in env.items()}
    for key, value in values.items():
        if key not in known:
            raise _unknown(str(key), known, ppo_only, parsed.path, None)
        recipe.values[key] = _typed(recipe, key, value, known[key][1])
    recipe.flags = flag_values(
        list(flags.values()), {k: tp for k, (_, tp) in known.items()}, ppo_only, parsed.path
    )
    return recipe


def flag_values(
    flags: list[Flag], types: Mapping[str, Any], ppo_only: set[str] = frozenset(), path: str | None = None
) -> dict[str, Any]:
    """`--field value ...` overrides (`recipe_source.split_argv`) as {field: value of its type}; `types`: field ->
    annotation. An unknown flag (with the closest names) or a value that is not of the type is a RecipeError."""
    out: dict[str, Any] = {}
    for flag in flags:
        if flag.key not in types:
            raise _unknown(flag.key, types, ppo_only, path, flag)
        out[flag.key] = _typed(None, flag.key, _flag_value(flag, types[flag.key]), types[flag.key], flag)
    return out


def _typed(recipe: Recipe | None, key: str, value: Any, tp: Any, flag: Flag | None = None) -> Any:
    try:
        return convert(value, tp)
    except ValueError as err:
        secret = is_secret_key(key)  # a token is never shown, not even a malformed one
        if flag is not None:
            shown = " ".join(flag.values) if isinstance(value, list) else value
            shown = "<redacted>" if secret else repr(shown)
            raise RecipeError(f"flag {flag.spelling} is {shown}; it must be {err}.") from None
        where = recipe.where(key) if recipe is not None else f"key {key!r}"
        shown = "<redacted>" if secret else repr(value)
        raise RecipeError(
            f"{where} has value {shown} of type {type(value).__name__}, expected {err}."
        ) from None


def build_configs(recipe: Recipe, forced: Mapping[str, Any] | None = None) -> tuple[Any, Any, Any]:
    """The three configs of a recipe (`forced`: values set over the user's, e.g. the doctor's use_cpu). The
    dataclasses check their ranges, choices and cross-field rules as they are built; a failure is a RecipeError
    naming the key or flag (a range) or the file (a rule between fields)."""
    os.environ.update(recipe.env)
    values = {**recipe.effective, **(forced or {})}
    configs = []
    try:
        for cls in recipe.classes:
            names = {f.name for f in dataclasses.fields(cls) if f.init}
            configs.append(cls(**{k: v for k, v in values.items() if k in names}))
        script_args, training_args, model_args = configs
        # the rules between the configs: a weight per reward; evals at saved checkpoints, one deleting policy
        check_reward_funcs(script_args.reward_funcs, training_args.reward_weights)
        check_retention_with_trainer(script_args, training_args)
    except FieldError as err:
        raise RecipeError(f"{recipe.where(err.key)} {err.detail}") from None
    except (ValueError, TypeError) as err:  # a rule between fields or configs: ours (config.py) or TRL's
        raise RecipeError(f"{recipe.path}: {err}" if recipe.path else str(err)) from None
    remember(getattr(training_args, "hub_token", None))  # no later message of this process shows it
    return script_args, training_args, model_args


def parse_recipe(
    argv: list[str] | None = None,
) -> tuple[OneShotArguments, OneShotGRPOConfig, ModelConfig, Recipe]:
    """Parse `RECIPE.yaml [--field value ...]` into the three configs and the `Recipe` (its path, what was set).
    The trainer config is a `OneShotPPOConfig` when the recipe (or `--algorithm`) says `ppo`."""
    recipe = read_recipe_argv(argv)
    return (*build_configs(recipe), recipe)


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """A recipe file's keys and values, read and checked (known keys, typed values) without building the configs."""
    recipe = read_recipe_argv([str(path)])
    return {**({ENV_KEY: recipe.env} if recipe.env else {}), **recipe.values}


def help_text(prog: str) -> str:
    """`prog --help`: the recipe argument, --config and every field a recipe or flag may set, by dataclass."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} RECIPE.yaml [--field value ...]\n       {prog} --config RECIPE.yaml [--field value ...]",
        description="Train with 1-shot RLVR from a YAML recipe. Flags override the recipe's keys; each flag has "
        "both spellings (--max_steps, --max-steps); a list field takes several values (--dsr_sub_index 1 2); a "
        "bool flag alone means true (--use_cpu).",
        add_help=False,
    )
    parser.add_argument(
        "recipe", metavar="RECIPE.yaml", help="The recipe: a YAML mapping of the fields below."
    )
    parser.add_argument("--config", metavar="RECIPE.yaml", help="The recipe, as a flag (TRL's spelling).")
    parser.add_argument("-h", "--help", action="store_true", help="Show this message and exit.")
    seen: set[str] = set()
    for cls in (*RECIPE_DATACLASSES, OneShotPPOConfig):
        group = parser.add_argument_group(
            cls.__name__ + (" (algorithm: ppo)" if cls is OneShotPPOConfig else "")
        )
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init or f.name in seen:
                continue
            seen.add(f.name)
            names = dict.fromkeys([f"--{f.name}", f"--{f.name.replace('_', '-')}"])
            default = f.default if f.default is not dataclasses.MISSING else None
            shown = "" if isinstance(default, str) and len(default) > 40 else f" (default: {_show(default)})"
            text = str(f.metadata.get("help", "")).replace("%", "%%")
            group.add_argument(*names, metavar=_metavar(hints.get(f.name, Any)), help=text + shown)
    return parser.format_help()


def _metavar(tp: Any) -> str:
    """A flag's value in help: INT, FLOAT, BOOL, STR, LIST ...; the first of a union (`int | None`: INT)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) else [tp]
    first = args[0] if args else tp
    origin = typing.get_origin(first) or first
    if origin in (list, tuple):
        return "VALUE [VALUE ...]"
    names = {bool: "BOOL", int: "INT", float: "FLOAT", dict: "JSON"}
    return names.get(
        origin, "CHOICE" if isinstance(origin, type) and issubclass(origin, enum.Enum) else "STR"
    )


def recipe_path_of(recipe: Recipe | str | os.PathLike | None) -> Path | None:
    """The file of a recipe given as a parsed Recipe or a path."""
    if recipe is None or (isinstance(recipe, Recipe) and recipe.path is None):
        return None
    return Path(os.fspath(recipe))
