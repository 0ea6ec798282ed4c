"""`Run`: one reader of a run's files, from a run dir (as train leaves it), a Hub revision, or eval outputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from huggingface_hub.errors import EntryNotFoundError

from oneshot_trl.files import read_jsonl
from oneshot_trl.histories import load_history
from oneshot_trl.layout import step_branch, step_from_label
from oneshot_trl.run import Run, metric_series


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _history_rows(steps) -> list[dict]:
    return [
        {"step": s, "example_id": "dsr_sub:124", "index": 124, "accuracy": s / 10, "num_samples": 8}
        for s in steps
    ]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run killed at step 10: no final trainer_state.json, a torn last history line."""
    out = tmp_path / "run"
    _json(out / "oneshot_run.json", {"base_model": "tiny", "examples": [{"example_id": "dsr_sub:124"}]})
    (out / "recipe.yaml").write_text("learning_rate: 1.0e-06\n")
    for step in (2, 10):
        _json(
            out / f"checkpoint-{step}" / "trainer_state.json",
            {
                "global_step": step,
                "log_history": [{"step": s, "entropy": 1.0 / s} for s in range(1, step + 1)],
            },
        )
        _json(
            out / "eval" / step_branch(step) / "results.json", {"benchmarks": {"math500": {"accuracy": step}}}
        )
    (out / "checkpoint-3").write_text("a file, not a checkpoint")
    (out / "checkpoint-best").mkdir()
    lines = [json.dumps(r) for r in _history_rows(range(1, 11))]
    (out / "accuracy_history.jsonl").write_text("\n".join(lines) + '\n{"step": 11, "exam')
    return out


def test_run_dir_layout(run_dir, caplog):
    run = Run(run_dir)
    assert run.run_info()["base_model"] == "tiny" and run.recipe_text() == "learning_rate: 1.0e-06\n"
    assert run.hub_record() == {}  # never pushed
    assert list(run.checkpoints()) == [
        2,
        10,
    ]  # by step, not by name; the file and checkpoint-best are no steps
    assert run.checkpoint_dir(10) == run.checkpoints()[10]
    assert run.revision_dirs("step-000010")[0] == run_dir / "checkpoint-10"

    # No final trainer_state.json: the latest checkpoint's, unless a step's is asked for.
    assert run.trainer_state()["global_step"] == 10 and run.trainer_state(2)["global_step"] == 2
    assert run.metric_series("entropy") == (list(range(1, 11)), [1.0 / s for s in range(1, 11)])

    with caplog.at_level(logging.WARNING, logger="oneshot_trl.files"):
        history = run.accuracy_history()
    assert [r["step"] for r in history] == list(range(1, 11))  # the torn step-11 line is skipped...
    assert "accuracy_history.jsonl:11 is not valid JSON" in caplog.text  # ...and said
    assert [json.loads(x)["step"] for x in run.accuracy_history_text(until_step=4).splitlines()] == [
        1,
        2,
        3,
        4,
    ]
    assert run.completions() == []
    assert [e.steps for e in load_history(str(run_dir))] == [
        list(range(1, 11))
    ]  # select reads it the same way

    assert run.eval_dir(2) == run_dir / "eval" / "step-000002"
    assert run.eval_results_file(2) == "eval/step-000002/results.json"
    assert {s: r["benchmarks"]["math500"]["accuracy"] for s, r in run.eval_results_by_step().items()} == {
        2: 2,
        10: 10,
    }


def test_evals_of_an_all_revisions_output_dir(tmp_path):
    root = tmp_path / "evals"
    for label in ("main", "step-000020", "step-000003"):
        _json(root / label / "results.json", {"revision": label, "benchmarks": {"amc23": {"accuracy": 0.5}}})
    (root / "step-000003" / "samples.jsonl").write_text('{"benchmark": "amc23", "response": "ok"}\n')
    _json(root / "trainer_state.json", {"global_step": 40})  # `main` is then the final model, step 40
    evals = Run(root).evals()
    assert [(e.label, e.step) for e in evals] == [("step-000003", 3), ("step-000020", 20), ("main", 40)]
    assert evals[0].samples == [{"benchmark": "amc23", "response": "ok"}] and evals[1].samples == []
    assert evals[0].path == str(root / "step-000003") and evals[0].benchmarks == {"amc23": {"accuracy": 0.5}}


def test_broken_files_read_as_missing(tmp_path, caplog):
    (tmp_path / "oneshot_run.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="oneshot_trl.run"):
        assert Run(tmp_path).run_info() == {}
    assert "oneshot_run.json" in caplog.text
    empty = Run(tmp_path / "missing")
    assert empty.trainer_state() == {} and empty.accuracy_history() == [] and empty.evals() == []
    assert empty.accuracy_history_text() is None and empty.checkpoints() == {}


class _Api:
    """The two HfApi calls a Hub revision is read with."""

    def __init__(self, tmp_path: Path, files: dict[str, str]):
        self.tmp, self.files, self.downloads = tmp_path, files, []

    def list_repo_files(self, repo_id, revision=None):
        return sorted(self.files)

    def hf_hub_download(self, repo_id, filename, *, revision=None):
        self.downloads.append(filename)
        if filename not in self.files:
            raise EntryNotFoundError(filename)
        path = self.tmp / "dl" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.files[filename])
        return str(path)


def test_hub_revision_through_the_api(tmp_path):
    files = {
        "oneshot_run.json": json.dumps({"base_model": "tiny"}),
        "trainer_state.json": json.dumps({"global_step": 20}),
        "eval/step-000020/results.json": json.dumps({"average": 0.5}),
        "deep/eval/step-000010/results.json": "{}",  # not an eval dir of the run
        "model.safetensors": "weights",
    }
    api = _Api(tmp_path, files)
    run = Run.from_hub(api, "user/run", "step-000020")
    assert run.source == "user/run@step-000020" and run.root is None
    assert run.run_info() == {"base_model": "tiny"} and run.trainer_state()["global_step"] == 20
    assert run.eval_results_by_step() == {20: {"average": 0.5}}
    assert run.recipe_text() is None and run.checkpoints() == {}
    assert "model.safetensors" not in api.downloads and "recipe.yaml" not in api.downloads  # listed first
    with pytest.raises(ValueError, match="no local path"):
        run.path("oneshot_run.json")


def test_open_downloads_only_small_files(run_dir, monkeypatch):
    assert Run.open(str(run_dir)).root == run_dir
    asked = []

    def fake_resolve(name, revision=None, token=None, allow_patterns=None, **kwargs):
        from oneshot_trl.models import ResolvedModel

        asked.append((name, revision, allow_patterns))
        return ResolvedModel(path=str(run_dir), revision=revision, commit_sha=None, repo_id=name)

    monkeypatch.setattr("oneshot_trl.models.resolve_model", fake_resolve)
    run = Run.open("user/run", revision="step-000010")
    assert run.root == run_dir and asked[0][:2] == ("user/run", "step-000010")
    assert "accuracy_history.jsonl" in asked[0][2] and not any("safetensors" in p for p in asked[0][2])


def test_labels_and_series():
    assert step_branch(20) == "step-000020" and step_from_label("step-000020") == 20
    assert step_from_label("checkpoint-7") == 7 and step_from_label("main") is None
    log = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": float("nan")}, {"step": 1, "loss": 1.5}]
    assert metric_series(log, "loss") == ([1], [1.5])  # NaN dropped; a re-logged step: the last one wins


def test_read_jsonl_strict_unless_told(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": ')
    with pytest.raises(ValueError, match=r"rows\.jsonl:4 is not valid JSON"):
        read_jsonl(path)  # bundled data: a bad line is a bug, not a killed run
    assert read_jsonl(path, skip_invalid=True) == [{"a": 1}, {"a": 2}]
