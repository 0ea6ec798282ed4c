"""`oneshot-trl` command line: a thin dispatcher over the package's modules.

Each subcommand lives in the module of its concern and exposes `main(argv) -> int`; this file routes, so
`oneshot-trl <cmd> --help` is the subcommand's own argparse help, and holds the one error path of every command:
an `InputError` raised anywhere becomes `oneshot-trl <cmd>: error: ...` on stderr and exit 2, a failed write
(`files.WriteError`) one line and exit 1, work done but partly failed (`validate.Incomplete`: a push) its
message and exit 1, Ctrl-C one line (what was kept, how to resume) and exit 130.
A command that knows what an interrupt kept raises `KeyboardInterrupt("kept ...; rerun ... to resume")`.
"""

from __future__ import annotations

import importlib
import sys

from oneshot_trl import __version__
from oneshot_trl.files import WriteError
from oneshot_trl.secrets import scrub, secrets_in
from oneshot_trl.validate import Incomplete, InputError, fail

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

# name -> ("module[:function]", one-line description); the function defaults to `main`. Modules are imported lazily: `oneshot-trl grade` must not
# pay for importing torch/transformers.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "oneshot_trl.train_cli",  # argument errors before the training imports
        "Train with a YAML recipe (same as `python -m oneshot_trl.train RECIPE`).",
    ),
    "doctor": (
        "oneshot_trl.doctor",
        "Check a recipe offline: diffs from the paper and TRL, batch arithmetic, memory per GPU.",
    ),
    "eval": ("oneshot_trl.eval.cli", "Evaluate a local or Hub model on the paper's benchmarks and protocol."),
    "grade": ("oneshot_trl.eval.grade_cli", "Grade a JSONL file of {response, gold} rows."),
    "contamination": (
        "oneshot_trl.eval.contamination",
        "Memorisation probe: complete the first 60% of each benchmark problem, compare with the rest.",
    ),
    "lab": ("oneshot_trl.lab.cli", "CPU micro-lab: 1-shot RLVR on a tiny model in minutes (the demo)."),
    "select": ("oneshot_trl.select", "Rank training examples by historical accuracy variance."),
    "analyze": ("oneshot_trl.analysis.cli", "Plots and a report from a training run or eval outputs."),
    "card": ("oneshot_trl.hub.cli", "Render (and optionally push) the model card of a run dir or Hub repo."),
    "push": ("oneshot_trl.hub.push_cli", "Push what a run's failed pushes left off the Hub (idempotent)."),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: oneshot-trl <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run `oneshot-trl <command> --help` for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"oneshot-trl: error: unknown command {name!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    return run_command(name, rest)


def run_command(name: str, argv: list[str]) -> int:
    """Run the command `name` with `argv` through the one error path (see the module docstring)."""
    prog = f"oneshot-trl {name}"
    module_name, _, func = COMMANDS[name][0].partition(":")
    tokens = secrets_in(None, argv)  # a token given as a flag is scrubbed from the message too
    try:
        return int(getattr(importlib.import_module(module_name), func or "main")(argv) or 0)
    except InputError as err:
        return fail(prog, err, *tokens)
    except WriteError as err:
        fail(prog, err.strerror or str(err), *tokens)
        return 1
    except Incomplete as err:  # several lines: what is missing, how to finish it
        fail(prog, str(err), *tokens)
        return 1
    except KeyboardInterrupt as err:
        note = " ".join(str(err.args[0]).split()) if err.args else "nothing more was written"
        print(scrub(f"{prog}: interrupted: {note}", *tokens), file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
