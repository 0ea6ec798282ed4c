"""The package's shape, read from the code: no import cycle, no module over 500 lines, run file names in one place.

The import graph holds every `import` / `from ... import` of src/oneshot_trl, at module level and inside functions
alike (a function-local import that closes a loop is still a loop), resolved to the package's own modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from oneshot_trl import layout

SRC = Path(__file__).resolve().parents[1] / "src" / "oneshot_trl"
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The package module `name` refers to: itself, or the package holding it (`a.b.func` -> `a.b`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import sub` is an edge to the submodule `pkg.sub` when there is one, else to `pkg`
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("oneshot_trl") and (target := _resolve(name)) and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module: _imports(module) for module in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_imports():
    # `run.Run.open` once reached model resolution through a function-local import: such imports are edges too.
    graph = import_graph()
    assert "oneshot_trl.models" in graph["oneshot_trl.run"]
    assert "oneshot_trl.grading.graders" in graph["oneshot_trl.grading"]  # from-import of a package's module
    assert "oneshot_trl.eval.runner" in graph["oneshot_trl.callbacks"]  # imported inside a method


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layout_and_run_are_light():
    """The run layout is a leaf; reading a run does not load the eval runner or the graders."""
    graph = import_graph()
    assert graph["oneshot_trl.layout"] == set()

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    assert not reachable("oneshot_trl.run") & {"oneshot_trl.eval.runner", "oneshot_trl.grading"}
    assert not any(m.startswith("oneshot_trl.eval") for m in reachable("oneshot_trl.rewards"))


# docs/architecture.md's leaves: every floor may use them, so they use nothing of the package.
LEAVES = {
    f"oneshot_trl.{name}"
    for name in (
        "layout", "files", "secrets", "prompts", "progress", "setups", "seeding", "vllm_cpu", "eval.problem",
        "eval.sharding", "lab.report", "grading.boxes", "grading.deadline", "grading.official",
    )
}  # fmt: skip
# Modules that are only a command line: the dispatcher reaches them through importlib, nothing imports them.
COMMAND_MODULES = {
    f"oneshot_trl.{name}"
    for name in ("eval.cli", "eval.grade_cli", "eval.contamination", "hub.cli", "hub.push_cli", "analysis.cli",
                 "lab.cli", "doctor")
}  # fmt: skip


def test_the_leaves_import_nothing_of_the_package_and_validation_rests_on_them():
    graph = import_graph()
    assert {leaf: graph[leaf] for leaf in LEAVES if graph[leaf]} == {}
    # validation sits under every command and the library: an import up the floors (it once reached
    # hub/tokens for secret scrubbing) would make it load what it validates
    assert graph["oneshot_trl.validate"] <= LEAVES


def test_no_module_imports_a_command_module():
    graph = import_graph()
    assert sorted((a, b) for a, targets in graph.items() for b in targets & COMMAND_MODULES) == []


def _private_imports(module: str) -> list[str]:
    path = MODULES[module]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("oneshot_trl"):
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private and _resolve(node.module) != module:
                found.append(f"line {node.lineno}: from {node.module} import {', '.join(private)}")
    return found


def test_no_private_cross_imports():
    """A helper two modules share is public in the module of its concern (contamination once imported
    eval/cli's `_safe_name` and eval/runner's `_make_generator`)."""
    found = {m: f for m in MODULES if (f := _private_imports(m))}
    assert found == {}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_at_most_500_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(SRC.parent)} has {lines} lines (> {MAX_LINES})"


# File names that only the run layout may spell (an exact string constant, or the start of an f-string).
# "results.json" is left out: the lab's own summary file has that name too (lab.experiments.LAB_RESULTS_FILE).
LAYOUT_NAMES = {
    layout.RECIPE_FILE,
    layout.RUN_INFO_FILE,
    layout.TRAINER_STATE_FILE,
    layout.HISTORY_FILE,
    layout.COMPLETIONS_FILE,
    layout.HUB_PUSHES_FILE,
    layout.SAMPLES_FILE,
    layout.AUDIT_FILE,
}
LAYOUT_PREFIXES = (layout.CHECKPOINT_PREFIX, "step-")


def _layout_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    skipped = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    skipped |= {
        id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            head = str(node.values[0].value)
            if head.startswith(LAYOUT_PREFIXES) or head in LAYOUT_NAMES:
                found.append(f"line {node.lineno}: f{head!r}...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            text = node.value.strip()
            if text in LAYOUT_NAMES or text.rstrip("*") in LAYOUT_PREFIXES:
                found.append(f"line {node.lineno}: {node.value!r}")
    return sorted(found)


def test_the_layout_check_finds_literals(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        '"""Reads trainer_state.json."""\nA = d / "trainer_state.json"\nB = f"checkpoint-{n}"\nC = "ok"\n'
    )
    assert _layout_literals(path) == [
        "line 2: 'trainer_state.json'",
        "line 3: f'checkpoint-'...",
    ]  # not line 1


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "oneshot_trl.layout"))
def test_run_file_names_are_spelled_only_in_layout(module):
    assert not _layout_literals(MODULES[module]), "use oneshot_trl.layout's names instead"
