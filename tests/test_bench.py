"""bench/: the runner's bookkeeping and the benchmarks' inputs (the measurements themselves live in bench/results)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str):
    sys.path.insert(0, str(BENCH))  # the scripts import their shared `common` module by name
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def common():
    return load("common")


@pytest.fixture(scope="module")
def runner():
    return load("run")


@pytest.mark.parametrize(
    ("ratio", "target", "better", "met"),
    [
        (1.02, 1.03, "lower", True),
        (1.04, 1.03, "lower", False),
        (1.9, 1.8, "higher", True),
        (1.7, 1.8, "higher", False),
    ],
)
def test_result_judges_its_target(common, ratio, target, better, met):
    result = common.Result("x", "d", "c", ratio=ratio, target=target, better=better)
    assert result.met is met
    assert common.Result("x", "d", "c", value=None, target=target, better=better).met is None


def test_ratio_is_of_the_medians(common):
    result = common.Result(
        "x",
        "d",
        "c",
        figures={"ours": common.figure([3.0, 9.0, 6.0], "s"), "base": common.figure([4.0, 5.0, 100.0], "s")},
    )
    result.set_ratio("ours", "base")
    assert result.ratio == 1.2 and result.headline == 1.2


def test_result_file_has_the_schema(common, tmp_path):
    result = common.Result(
        "grader-throughput",
        "answers/s",
        "python bench/grader_throughput.py",
        figures={"answers_per_s_ours": common.figure([3.0, 1.0, 2.0], "answers/s")},
        ratio=2.5,
        target=1.8,
        better="higher",
    )
    data = json.loads(result.write(tmp_path).read_text())
    assert {"ratio", "target", "better", "met", "machine", "versions", "figures", "date"} <= data.keys()
    assert data["met"] is True
    assert data["figures"]["answers_per_s_ours"] == {
        "unit": "answers/s",
        "runs": [3.0, 1.0, 2.0],
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
    }
    assert data["machine"]["cpu_count"] >= 1 and "load_average_1m_after" in data["machine"]


def test_runner_resolves_benchmarks_and_result_names(runner):
    default = runner.resolve([])
    assert "lab-grid" not in default and {"trainer-overhead", "grader-throughput", "lab"} <= set(default)
    assert runner.resolve(["trainer-overhead-rss", "trainer-overhead-time"]) == ["trainer-overhead"]
    with pytest.raises(SystemExit, match="Unknown benchmark 'nope'"):
        runner.resolve(["nope"])
    for spec in runner.BENCHMARKS.values():  # every script the runner names exists
        if spec.script[0].endswith(".py"):
            assert (BENCH.parent / spec.script[0]).is_file()


def test_summary_lists_results_and_missed_targets(runner, common, tmp_path):
    common.Result(
        "eval-pipeline", "share outside generation", "c", ratio=0.08, target=0.05, better="lower"
    ).write(tmp_path)
    common.Result("grader-throughput", "answers/s", "c", ratio=2.1, target=1.8, better="higher").write(
        tmp_path
    )
    text = runner.write_summary(tmp_path, {"eval-pipeline": 12.0}).read_text()
    pipeline = next(line for line in text.splitlines() if line.startswith("| eval-pipeline"))
    assert "ratio 0.08 (target <= 0.05: NOT met)" in pipeline and "**no**" in pipeline
    grader = next(line for line in text.splitlines() if line.startswith("| grader-throughput"))
    assert "met" in grader and "| yes |" in grader
    assert "| lab |" not in text  # not measured: no row


def test_grader_bench_inputs(tmp_path):
    bench = load("grader_throughput")
    responses, golds = bench.load_answers(4000)
    assert len(responses) == len(golds) == 4000
    pathological = [r for r in responses if r in {p for p, _ in bench.PATHOLOGICAL}]
    assert len(pathological) == 4
    assert len(set(zip(responses, golds, strict=True))) > 2000  # mostly distinct answers, not one repeated
    assert sum(len(r) for r in responses) / len(responses) > 300  # reasoning-length answers


def test_trainer_bench_baseline_has_our_config_values():
    from trl import GRPOConfig

    from oneshot_trl.recipe import parse_recipe

    bench = load("trainer_overhead")
    _, ours, _, _ = parse_recipe(bench.recipe_argv(Path("model"), Path("out"), 20))
    vanilla = bench.vanilla_config(ours)
    assert type(vanilla) is GRPOConfig
    assert ours.max_steps == 20 and ours.entropy_coef == 0.001
    differing = {k for k in GRPOConfig.__dataclass_fields__ if getattr(vanilla, k) != getattr(ours, k)}
    assert not differing, differing


@pytest.fixture
def repo(tmp_path):
    """A git repository with one committed source file, standing in for the project's tree."""
    root = tmp_path / "repo"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "a.py").write_text("x = 1\n")
    (root / "README.md").write_text("doc\n")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


def test_fingerprint_is_what_a_commit_records(common, repo):
    ids = common.source_fingerprint(["src/pkg", "README.md", "gone.py"], repo)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD:src/pkg", "HEAD:README.md"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    assert [ids["src/pkg"], ids["README.md"]] == head and ids["gone.py"] == "absent"
    (repo / "src" / "pkg" / "b.py").write_text("y = 2\n")  # a new, uncommitted file changes the tree's id
    assert common.source_fingerprint(["src/pkg"], repo)["src/pkg"] != ids["src/pkg"]
    (repo / "src" / "pkg" / "__pycache__").mkdir()  # ignored files do not
    (repo / ".gitignore").write_text("__pycache__/\n")
    (repo / "src" / "pkg" / "b.py").unlink()
    (repo / "src" / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert common.source_fingerprint(["src/pkg"], repo)["src/pkg"] == ids["src/pkg"]


def test_stale_results_finds_changed_code_and_unrecorded_results(common, repo, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    fresh = {"name": "fresh", "fingerprint": common.fingerprint_record(["src/pkg"], repo)}
    (results / "fresh.json").write_text(json.dumps(fresh))
    (results / "old.json").write_text(json.dumps({"name": "old"}))
    assert set(common.stale_results(results, repo)) == {"old.json"}
    (repo / "src" / "pkg" / "a.py").write_text("x = 2\n")
    stale = common.stale_results(results, repo)
    assert set(stale) == {"old.json", "fresh.json"} and "src/pkg" in stale["fresh.json"]


def test_runner_stamps_results_and_every_benchmark_names_its_sources(runner, common, tmp_path):
    for name, spec in runner.BENCHMARKS.items():
        assert spec.depends, f"{name} declares no source paths"
        for path in spec.sources:
            assert (BENCH.parent / path).exists() or path.endswith("lab_base"), (
                f"{name}: {path} does not exist"
            )
    common.Result("lab", "wall", "c", value=100.0).write(tmp_path)
    runner.stamp(tmp_path, ("lab",), 3.0, {"paths": {"bench/lab.py": "abc"}, "commit": "c", "dirty": False})
    written = json.loads((tmp_path / "lab.json").read_text())
    assert (
        written["fingerprint"]["paths"] == {"bench/lab.py": "abc"}
        and written["benchmark_wall_seconds"] == 3.0
    )
    assert runner.check(tmp_path) == 1  # "abc" is not bench/lab.py's id
