"""`oneshot-trl select`: the paper's ranking reproduced exactly, datasets written in the recipes' format."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from oneshot_trl.cli import main as cli_main
from oneshot_trl.histories import load_history, load_official_history
from oneshot_trl.select import (
    build_training_rows,
    main,
    parse_ranks,
    rank_examples,
    score_histories,
)

SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."


def _bundled_jsonl(name: str) -> list[dict]:
    path = resources.files("oneshot_trl") / "resources" / "train" / name
    with path.open("r", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def official_ranking():
    return rank_examples(load_official_history(), method="std")


def test_official_ranking_reproduces_the_shipped_ranking_exactly(official_ranking):
    expected = _bundled_jsonl("dsr_sub_historical_variance_ranking.jsonl")
    assert len(official_ranking) == len(expected) == 1209
    assert [r.example.index for r in official_ranking] == [e["dsr_sub_index"] for e in expected]
    assert [r.rank for r in official_ranking] == [e["pi_rank"] for e in expected]
    for got, exp in zip(official_ranking, expected, strict=True):
        assert got.score == pytest.approx(exp["std_score"], rel=1e-12, abs=1e-15)
        d = got.to_dict()
        assert d["mean_accuracy"] == pytest.approx(exp["mean_acc"], rel=1e-12)
        assert d["num_points"] == exp["num_epochs_recorded"]
        assert d["answer"] == exp["ground_truth"]
        assert got.example.problem == exp["prompt"]


def test_paper_pi_indices(official_ranking):
    by_rank = {r.rank: r.example.index for r in official_ranking}
    assert [by_rank[k] for k in (1, 2, 3, 4, 5)] == [124, 267, 531, 931, 212]
    assert (by_rank[13], by_rank[1209]) == (682, 789)  # pi13 and pi1209 of the shipped k-shot files


def test_var_ranks_like_std_and_other_methods_run(official_ranking):
    # var orders like std, except among examples whose scores differ only by float rounding
    var = rank_examples(load_official_history(), method="var")
    assert [r.score for r in var] == pytest.approx(
        [r.score**2 for r in official_ranking], rel=1e-9, abs=1e-15
    )
    assert [r.example.index for r in var[:100]] == [r.example.index for r in official_ranking[:100]]
    for method in ("lim", "mean-mid", "random"):
        ranking = rank_examples(load_official_history(), method=method)
        assert sorted(r.example.index for r in ranking) == list(range(1209))
        scores = [r.score for r in ranking]
        assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="Unknown selection method"):
        score_histories([[0.0, 1.0]], method="nope")


def test_score_methods_on_small_histories():
    histories = [[0.0, 1.0, 0.0, 1.0], [0.5, 0.5], [0.25, 0.75]]
    assert score_histories(histories, "std") == pytest.approx([0.5, 0.0, 0.25])
    assert score_histories(histories, "mean-mid") == pytest.approx([0.0, 0.0, 0.0])
    # LIMR on the first 2 points; mean curve (0.25, 0.75): ideal = 0.75^2 + 0.25^2
    ideal = 0.75**2 + 0.25**2
    assert score_histories(histories, "lim") == pytest.approx(
        [1 - (0.25**2 + 0.25**2) / ideal, 1 - (0.25**2 + 0.25**2) / ideal, 1.0]
    )
    assert score_histories(histories, "random", seed=1) == score_histories(histories, "random", seed=1)


def test_cli_json_prints_the_full_ranking(capsys):
    assert cli_main(["select", "--history", "official", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 1209
    assert [r["index"] for r in rows[:5]] == [124, 267, 531, 931, 212]
    assert rows[0] == {
        "rank": 1,
        "index": 124,
        "example_id": "dsr_sub:124",
        "score": pytest.approx(0.40675587051528483),
        "mean_accuracy": pytest.approx(0.4410377358490566),
        "num_points": 53,
        "answer": "12.8",
    }


def test_cli_table_marks_the_selection(capsys):
    assert main(["--ranks", "1,13", "--show", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "rank" in lines[1] and "std" in lines[1]
    assert lines[3].startswith("*") and " 124 " in lines[3] and "12.8" in lines[3]
    assert lines[4].startswith(" ") and " 267 " in lines[4]
    assert any(line.startswith("*") and " 682 " in line for line in lines[6:])  # rank 13 shown after "..."


def test_top1_dataset_equals_the_official_pi1_file(tmp_path):
    out = tmp_path / "pi1.jsonl"
    assert main(["--history", "official", "--top", "1", "--output", str(out)]) == 0
    assert _read_jsonl(out) == _bundled_jsonl("pi1_r128.jsonl")


def test_kshot_dataset_is_whole_set_blocks_and_reloads(tmp_path):
    out = tmp_path / "sub" / "pi1_pi13.jsonl"
    assert main(["--ranks", "1,13", "--repeat", "3", "--output", str(out)]) == 0
    rows = _read_jsonl(out)
    assert [r["extra_info"]["index"] for r in rows] == [124, 682] * 3
    for row in rows:
        assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
        assert row["prompt"][0]["role"] == "user" and row["prompt"][0]["content"].endswith(SUFFIX)
        assert row["reward_model"]["style"] == "rule"
    assert rows[1]["reward_model"]["ground_truth"] == "\\frac{4}{3}"

    import datasets

    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert len(ds) == 6 and ds[1]["extra_info"]["index"] == 682


def _write_run(run_dir, with_info=True):
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    accs = {
        "dsr_sub:124": (124, [0.0, 0.25, 0.5, 0.5]),  # std 0.2073
        "custom:a": (None, [0.0, 1.0, 0.0, 1.0]),  # std 0.5
        "custom:b": (None, [0.5, 0.5, 0.5, 0.0]),  # re-logged below: std 0
    }
    for step in range(1, 5):
        for eid, (index, acc) in accs.items():
            lines.append(
                {"step": step, "example_id": eid, "index": index, "accuracy": acc[step - 1], "num_samples": 8}
            )
    # a resumed run re-logs step 4 of custom:b: the last line counts, not both
    lines.append({"step": 4, "example_id": "custom:b", "index": None, "accuracy": 0.5, "num_samples": 8})
    (run_dir / "accuracy_history.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    if with_info:
        info = {
            "base_model": "tiny",
            "examples": [
                {"example_id": "custom:a", "problem": "What is 1+1?", "answer": "2", "index": None},
                {"example_id": "custom:b", "problem": "What is 2+2?", "answer": "4", "index": None},
            ],
        }
        (run_dir / "oneshot_run.json").write_text(json.dumps(info))
    return run_dir


def test_run_dir_history(tmp_path, capsys):
    run = _write_run(tmp_path / "run")
    examples = load_history(str(run))
    assert [e.example_id for e in examples] == ["dsr_sub:124", "custom:a", "custom:b"]
    assert examples[2].accuracies == [0.5] * 4 and examples[2].steps == [1, 2, 3, 4]

    out = tmp_path / "top.jsonl"
    assert main(["--history", str(run), "--top", "3", "--repeat", "2", "--output", str(out), "--json"]) == 0
    ranking = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in ranking] == ["custom:a", 124, "custom:b"]
    assert ranking[0]["score"] == pytest.approx(0.5) and ranking[0]["num_points"] == 4
    assert ranking[1]["answer"] == "12.8"  # from the bundled DSR-sub: the run info does not list it

    rows = _read_jsonl(out)
    assert len(rows) == 6
    assert rows[0] == {
        "data_source": "custom",
        "prompt": [{"role": "user", "content": "What is 1+1?" + SUFFIX}],
        "ability": "math",
        "reward_model": {"ground_truth": "2", "style": "rule"},
        "extra_info": {"index": None, "split": "train", "example_id": "custom:a"},
    }
    assert rows[1] == _bundled_jsonl("pi1_r128.jsonl")[0]
    assert rows[3:] == rows[:3]

    # the history file itself works too, and finds its oneshot_run.json next to it
    assert [e.problem for e in load_history(str(run / "accuracy_history.jsonl"))][1] == "What is 1+1?"


def test_run_without_problem_text_is_a_clear_error(tmp_path, capsys):
    run = _write_run(tmp_path / "run", with_info=False)
    assert (
        cli_main(["select", "--history", str(run), "--top", "1", "--output", str(tmp_path / "x.jsonl")]) == 2
    )
    assert "oneshot_run.json" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_bad_inputs_are_errors(tmp_path, capsys):
    assert cli_main(["select", "--history", str(tmp_path)]) == 2  # a dir without accuracy_history.jsonl
    assert "accuracy_history.jsonl" in capsys.readouterr().err
    assert cli_main(["select", "--history", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err
    assert cli_main(["select", "--ranks", "1300"]) == 2
    assert "1209" in capsys.readouterr().err
    assert parse_ranks("1-3, 13") == [1, 2, 3, 13]
    for bad in ("0", "3-1", "x"):
        with pytest.raises(ValueError):
            parse_ranks(bad)
    with pytest.raises(ValueError, match="repeat"):
        build_training_rows([], repeat=0)


def test_official_format_file_and_hub_repo(tmp_path, monkeypatch):
    # Any JSON file in the official format ranks like the bundled one (keys are DSR-sub indices).
    path = tmp_path / "acc.json"
    path.write_text(json.dumps({"7": [1.0, 1.0], "124": [0.0, 1.0], "5": [0.0, 0.5]}))
    assert [r.example.index for r in rank_examples(load_history(str(path)))] == [124, 5, 7]

    # A Hub repo id goes through models.resolve_model, asking only for the two small files.
    run = _write_run(tmp_path / "snapshot")
    calls = []

    def fake_resolve(name, revision=None, token=None, allow_patterns=None, **kwargs):
        from oneshot_trl.models import ResolvedModel

        calls.append((name, revision, tuple(allow_patterns)))
        return ResolvedModel(path=str(run), revision=revision, commit_sha="0" * 40, repo_id=name)

    monkeypatch.setattr("oneshot_trl.models.resolve_model", fake_resolve)
    examples = load_history("user/run", revision="step-000004")
    assert calls == [("user/run", "step-000004", ("accuracy_history.jsonl", "oneshot_run.json"))]
    assert len(examples) == 3


@pytest.mark.parametrize("bad", ["NaN", "null", "1.5", "-0.25", '"0.5"'])
def test_history_with_a_bad_accuracy_is_one_line_naming_the_row(tmp_path, capsys, bad):
    run = _write_run(tmp_path / "run")
    history = run / "accuracy_history.jsonl"
    lines = history.read_text().splitlines()
    lines[2] = lines[2].replace('"accuracy": 0.5', f'"accuracy": {bad}')  # custom:b at step 1, line 3
    history.write_text("\n".join(lines) + "\n")
    assert cli_main(["select", "--history", str(history), "--top", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("oneshot-trl select: error: ") and "\n" not in err
    assert f"accuracy_history.jsonl:3: accuracy {json.loads(bad)!r}" in err


def test_official_format_with_nan_names_the_example(tmp_path, capsys):
    path = tmp_path / "acc.json"
    path.write_text('{"3": [0.5, 0.25], "7": [0.5, NaN]}')
    assert cli_main(["select", "--history", str(path)]) == 2
    assert "example '7', value 2: accuracy nan" in capsys.readouterr().err


def test_unreadable_history_lines_are_counted_with_the_first_line_number(tmp_path, caplog):
    run = _write_run(tmp_path / "run")
    history = run / "accuracy_history.jsonl"
    lines = history.read_text().splitlines()
    lines[4:4] = ['{"step": 2, "exa', "\xff\xfe not json"]  # lines 5 and 6
    history.write_text("\n".join(lines) + "\n")
    with caplog.at_level("WARNING"):
        examples = load_history(str(history))
    assert len(examples) == 3
    assert "2 unreadable line(s) skipped, the first at line 5" in caplog.text


def test_output_that_is_a_directory_or_the_history_is_refused_before_any_work(tmp_path, capsys):
    run = _write_run(tmp_path / "run")
    history = run / "accuracy_history.jsonl"
    before = history.read_bytes()
    assert cli_main(["select", "--history", str(history), "--output", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert cli_main(["select", "--history", str(history), "--output", str(history)]) == 2
    assert "is the --history file itself" in capsys.readouterr().err
    assert history.read_bytes() == before
    assert cli_main(["select", "--history", str(history), "--top", "0"]) == 2
    assert "--top must be >= 1" in capsys.readouterr().err
