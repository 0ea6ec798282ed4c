"""`oneshot-trl train RECIPE.yaml [--field value ...]`: the command's cheap argument errors (no recipe, a missing
file) in a fraction of a second, then `oneshot_trl.train.cli_main`, whose import of the training stack (torch,
transformers, TRL) takes seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from oneshot_trl.recipe_source import HELP_FLAGS, RecipeError, split_argv


def main(argv: list[str] | None = None) -> int:
    """`oneshot-trl train RECIPE.yaml [--field value ...]`: the cheap argument errors first, then training."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in HELP_FLAGS for a in argv):  # a RecipeError is an InputError: cli.py prints it, exit 2
        path = split_argv(argv).path
        if path is None:
            raise RecipeError(
                "give a recipe: oneshot-trl train RECIPE.yaml [--field value ...] (recipes/*.yaml)."
            )
        if not Path(path).is_file():
            raise RecipeError(f"Recipe file not found: {path}")
    # Imported only now: the training stack (torch, transformers, TRL) takes seconds to import.
    from oneshot_trl.train import cli_main

    return cli_main(argv)
