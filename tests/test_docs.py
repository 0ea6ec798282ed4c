"""The README and docs/ stay true to the tree: links resolve, shown commands have --help, the module map and the
benchmark numbers match the code and bench/results.

Fast: markdown parsing, plus one `--help` process per command shown (run side by side).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

FENCE_RE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
LINK_RE = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING_RE = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The markdown without its fenced code blocks (a `# comment` in a bash block is no heading, `[x](y)` no link)."""
    return FENCE_RE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (hyphens kept), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING_RE.findall(prose(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(page: Path) -> list[str]:
    links = LINK_RE.findall(prose(page.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]  # http:, https:, mailto:


def test_docs_exist_and_readme_is_a_landing_page():
    assert {p.name for p in DOCS} >= {
        "training.md",
        "evaluation.md",
        "lab.md",
        "performance.md",
        "architecture.md",
    }
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines; the manual goes to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for link in relative_links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link}: no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_link_checker_catches_broken_links(tmp_path: Path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# A heading: `with code`\n\n```bash\n# not a heading\n```\n")
    page.write_text("[ok](other.md#a-heading-with-code) [gone](missing.md) [bad](other.md#not-a-heading)\n")
    assert anchors(tmp_path / "other.md") == {"a-heading-with-code"}
    links = relative_links(page)
    assert [(tmp_path / link.partition("#")[0]).exists() for link in links] == [True, False, True]
    assert links[2].partition("#")[2] not in anchors(tmp_path / "other.md")


def shown_commands() -> list[list[str]]:
    """The commands README shows first: its first code block and its command table, as argv prefixes."""
    text = README.read_text(encoding="utf-8")
    first_block = FENCE_RE.search(text).group(0)
    table = text[text.index("## Commands") :].split("\n## ", 1)[0]
    shown = first_block + "\n" + table
    commands = [["oneshot-trl", name] for name in dict.fromkeys(re.findall(r"oneshot-trl ([a-z]+)", shown))]
    commands += [
        ["python", "-m", module] for module in dict.fromkeys(re.findall(r"python -m ([\w.]+)", shown))
    ]
    return commands


def test_shown_commands_have_help():
    from oneshot_trl.cli import COMMANDS

    commands = shown_commands()
    names = {c[1] for c in commands if c[0] == "oneshot-trl"}
    assert "lab" in names  # the newcomer's command
    assert names == set(COMMANDS), (
        f"the command table and `oneshot-trl --help` differ: {names ^ set(COMMANDS)}"
    )
    script = Path(sys.executable).parent / "oneshot-trl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    procs = {}
    for command in commands:  # side by side: only `train` and `lab` import torch
        if command[0] == "oneshot-trl":
            argv = (
                [str(script), *command[1:]]
                if script.exists()
                else [sys.executable, "-m", "oneshot_trl.cli", *command[1:]]
            )
        else:
            argv = [sys.executable, *command[1:]]
        procs[" ".join(command)] = subprocess.Popen(
            [*argv, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT, text=True
        )
    failed = {}
    for name, proc in procs.items():
        output, _ = proc.communicate()
        if proc.returncode != 0 or "usage:" not in output:
            failed[name] = f"exit {proc.returncode}: {output.strip().splitlines()[-1:]}"
    assert not failed, failed


def test_architecture_lists_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", text, re.M))
    package = ROOT / "src" / "oneshot_trl"
    actual = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    assert listed == actual, f"missing: {sorted(actual - listed)}; gone: {sorted(listed - actual)}"


def test_performance_headlines_are_the_results_files():
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w-]+)` \|.*$", text, re.M)}
    checked = 0
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        result = json.loads(path.read_text())
        name = result.get("name")
        if name not in rows:
            continue  # lab experiment files, or a benchmark the page does not document yet
        headline = result["ratio"] if result.get("ratio") is not None else result["value"]
        assert f"**{headline}**" in rows[name], f"docs/performance.md row {name}: {path.name} says {headline}"
        checked += 1
    assert checked >= 5


def test_lab_timings_are_the_results_file():
    """The demo's timings are quoted in three pages; all three say what bench/results/lab.json measured."""
    figures = json.loads((ROOT / "bench" / "results" / "lab.json").read_text())["figures"]
    cold, pretrain, warm = (
        round(figures[k]["median"]) for k in ("cold_seconds", "pretrain_seconds", "warm_seconds")
    )
    for page in (README, ROOT / "docs" / "lab.md", ROOT / "docs" / "performance.md"):
        text = page.read_text(encoding="utf-8")
        for seconds in (cold, pretrain, warm):
            assert f"{seconds} s" in text, f"{page.name}: lab.json says {seconds} s"
        quoted = re.findall(r"(\d+) s cold", text)
        assert all(int(s) == cold for s in quoted), f"{page.name}: cold {quoted} vs lab.json {cold} s"


def test_no_quoted_number_comes_from_a_stale_result():
    """A result quoted in README.md or docs/ was measured on the code as it is (issue 23: numbers older than the
    code). Stale: its fingerprint's source paths have changed since; re-run `python bench/run.py NAME`."""
    sys.path.insert(0, str(ROOT / "bench"))
    from common import stale_results

    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    stale = stale_results(ROOT / "bench" / "results", ROOT)
    quoted = {
        name: why for name, why in stale.items() if re.search(rf"(?<![\w-]){Path(name).stem}(?![\w-])", text)
    }
    assert not quoted, "\n".join(f"{name}: {why}" for name, why in quoted.items())
