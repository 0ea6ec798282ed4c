"""The GPU install routes resolve on the package registry: `pip install --dry-run --report` of what each Makefile
target installs (no GPU, nothing installed), the resolved torch/vLLM pair and the CUDA major version of torch's
NVIDIA libraries checked. Slow (minutes of metadata downloads); skipped without access to the registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# target -> (the requirements its pip lines install, as written there; torch, vLLM, CUDA major of torch's libraries)
ROUTES = {
    "install-gpu": (['".[dev,vllm]"', "deepspeed==0.19.8"], "2.13.0", "0.31.0", "13"),
    "install-gpu-cu12": (
        ['".[dev]"', "torch==2.10.0", "vllm==0.19.1", "deepspeed==0.19.8"],
        "2.10.0",
        "0.19.1",
        "12",
    ),
}


def makefile_target(name: str) -> str:
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(name)}:.*?\n((?:\t.*\n)+)", text, re.M)
    assert match, name
    return match.group(1)


@pytest.mark.parametrize("target", sorted(ROUTES))
def test_makefile_target_installs_the_checked_requirements(target):
    """What the dry run below resolves is what the target installs."""
    body = makefile_target(target)
    for requirement in ROUTES[target][0]:
        assert requirement in body, f"{target} no longer installs {requirement}"


def test_extras_named_in_messages_exist():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = set()
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        named |= set(re.findall(r"oneshot-trl\[([a-z0-9_,-]+)\]", path.read_text()))
    for group in named:
        for extra in group.split(","):
            assert extra in extras, f"oneshot-trl[{extra}] is named but pyproject.toml has no such extra"


def pip(*args: str) -> list[str]:
    """pip --isolated (no pip config: local wheel folders, such as a CPU torch 2.13.0, cannot stand in for the
    registry's builds), keeping the certificate bundle the environment names."""
    cert = ["--cert", os.environ["PIP_CERT"]] if os.environ.get("PIP_CERT") else []
    return [sys.executable, "-m", "pip", "--isolated", *cert, *args]


def registry_reachable() -> bool:
    try:
        done = subprocess.run(pip("index", "versions", "vllm"), capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and "0.31.0" in done.stdout


def resolve(requirements: list[str], report: Path) -> dict[str, str]:
    """Versions pip would install into an empty environment (the project itself editable, as the Makefile does)."""
    argv = [arg for r in requirements for arg in (["-e", r.strip('"')] if r.startswith('".') else [r])]
    subprocess.run(
        pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), *argv),
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=1500,
    )
    report_rows = json.loads(report.read_text())["install"]
    return {row["metadata"]["name"].lower(): row["metadata"]["version"] for row in report_rows}


@pytest.mark.slow
def test_gpu_routes_resolve_on_the_registry(tmp_path):
    if not registry_reachable():
        pytest.skip("the package registry is not reachable")
    with ThreadPoolExecutor(len(ROUTES)) as pool:
        futures = {t: pool.submit(resolve, ROUTES[t][0], tmp_path / f"{t}.json") for t in ROUTES}
        resolved = {t: f.result() for t, f in futures.items()}
    for target, (_, torch, vllm, cuda) in ROUTES.items():
        versions = resolved[target]
        assert (versions["torch"], versions["vllm"], versions["trl"]) == (torch, vllm, "1.16.0"), target
        assert versions["deepspeed"] == "0.19.8"
        nccl = {m.group(1) for name in versions if (m := re.fullmatch(r"nvidia-nccl-cu(\d+)", name))}
        assert nccl == {cuda}, (target, nccl)  # torch's NCCL wheel names its CUDA major
