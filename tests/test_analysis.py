"""`oneshot-trl analyze` on a synthetic run dir laid out as PLAN.md says a training run leaves it."""

from __future__ import annotations

import json

import pytest
from support import (
    COMPLETIONS,
    EXAMPLE,
    PNG_MAGIC,
    make_run_dir,
    write_eval,
)

from oneshot_trl.analysis.cli import main
from oneshot_trl.analysis.stats import (
    DEFAULT_REFLECTION_WORDS,
    count_reflection_words,
    load_run_data,
    reflection_by_step,
)
from oneshot_trl.cli import main as cli_main
from oneshot_trl.layout import step_from_label


@pytest.fixture()
def run_dir(tmp_path):
    return make_run_dir(tmp_path)


def test_reflection_word_counting():
    counts = count_reflection_words(COMPLETIONS[1] + COMPLETIONS[2])
    assert counts.num_responses == 4
    assert counts.occurrences == {
        "rethink": 1,
        "recheck": 1,
        "recalculate": 0,
        "re-evaluate": 1,
        "check again": 1,
        "wait": 3,
        "double-check": 1,
        "verify": 1,
    }
    assert counts.responses_with["wait"] == 2 and counts.responses_with_any == 3
    assert counts.responses_with_paper_words == 2
    assert counts.per_1k["wait"] == pytest.approx(750.0)
    custom = count_reflection_words(["Hmm, HMM. hmmm"], words=["hmm"])
    assert custom.occurrences == {"hmm": 2}


def test_reflection_counts_in_step_windows():
    completions = [{"step": s, "completion": "wait" if s % 2 else "done"} for s in range(1, 26)]
    rows = reflection_by_step(completions, ["wait"], bin_size=10)
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert [r["num_responses"] for r in rows] == [10, 10, 5]
    assert [r["occurrences"]["wait"] for r in rows] == [5, 5, 3]


def test_step_labels():
    assert [
        step_from_label(x) for x in ("step-000020", "checkpoint-20", "step-000000", "main", "Qwen2.5-Math")
    ] == [
        20,
        20,
        0,
        None,
        None,
    ]


def test_analyze_run_dir(run_dir, tmp_path):
    out = tmp_path / "analysis"
    assert main([str(run_dir), "--output-dir", str(out)]) == 0

    expected_plots = {
        "post_saturation",
        "entropy",
        "response_length",
        "zero_std_groups",
        "boxed_rate",
        "reflection_words",
        "format_vs_reasoning",
        "controls",  # code-reasoning rate of the completions
        "reward",
        "loss",  # the logs have no kl or grad_norm: no plot of them
    }
    result = json.loads((out / "analysis.json").read_text())
    assert set(result["plots"]) == expected_plots
    report = (out / "report.md").read_text()
    for file in result["plots"].values():
        data = (out / file).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
        assert f"]({file})" in report

    # the latest checkpoint's log_history was used, the summary entry without metrics ignored
    assert result["training_metrics"]["entropy"]["steps"] == [1, 2, 3, 4]
    assert result["training_metrics"]["entropy"]["values"] == pytest.approx([0.45, 0.4, 0.35, 0.3])
    assert result["training_accuracy"][EXAMPLE]["first_step_at_threshold"] == 3

    # reflection counts per training step
    train = {r["step"]: r for r in result["reflection"]["training"]}
    assert train[1]["occurrences"]["wait"] == 2 and train[1]["occurrences"]["recheck"] == 1
    assert train[1]["responses_with_any"] == 1 and train[1]["per_1k_responses"]["wait"] == pytest.approx(
        1000.0
    )
    assert train[2]["occurrences"]["check again"] == 1 and train[2]["occurrences"]["wait"] == 1
    assert train[2]["responses_with_paper_words"] == 1
    evals = {r["checkpoint"]: r for r in result["reflection"]["eval"]}
    assert evals["step-000002"]["num_responses"] == 5
    assert (
        evals["step-000002"]["occurrences"]["wait"] == 1
        and evals["step-000002"]["occurrences"]["recheck"] == 1
    )

    # best checkpoint per benchmark and on average (avg 0.30 at step 2, 0.35 at step 4)
    best = result["best_checkpoint"]
    assert best["per_benchmark"]["math500"] == {"checkpoint": "step-000002", "step": 2, "accuracy": 0.5}
    assert best["per_benchmark"]["aime24"]["step"] == 4
    assert best["average"]["checkpoint"] == "step-000004" and best["average"]["accuracy"] == pytest.approx(
        0.35
    )

    # post-saturation: saturated at step 3, average 0.30 at step 2 -> best later 0.35 at step 4
    sat = result["post_saturation"]
    assert sat["saturation_step"] == 3
    assert sat["average_at_saturation"] == {"step": 2, "accuracy": pytest.approx(0.3)}
    assert sat["gain_after_saturation"] == pytest.approx(0.05)

    # format vs reasoning: boxed-only from the per-sample flags, answer-anywhere from results.json
    row = next(r for r in result["evals"] if r["checkpoint"] == "step-000002" and r["benchmark"] == "math500")
    assert row["boxed_only_accuracy"] == pytest.approx(0.25)
    assert row["answer_anywhere_accuracy"] == 0.75 and row["format_gap"] == pytest.approx(0.25)
    aime = next(r for r in result["evals"] if r["checkpoint"] == "step-000002" and r["benchmark"] == "aime24")
    assert aime["boxed_only_accuracy"] is None  # no `boxed` flags in those samples: not guessed

    assert "| step-000002 | 2 | math500 | 50.0 | 25.0 | 75.0 | 75.0 | +25.0 |" in report
    assert "| **average** (2 benchmarks) | step-000004 | 4 | 35.0 |" in report
    assert "Mean training accuracy first reached 99.0% at step 3." in report


def test_default_output_dir_and_custom_words(run_dir, capsys):
    assert main([str(run_dir), "--words", "recheck, wait"]) == 0
    assert "report.md" in capsys.readouterr().out
    result = json.loads((run_dir / "analysis" / "analysis.json").read_text())
    assert result["reflection_words"] == ["recheck", "wait"]
    assert set(result["reflection"]["training"][0]["occurrences"]) == {"recheck", "wait"}


def test_missing_pieces_are_notes_not_crashes(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "trainer_state.json").write_text(
        json.dumps({"global_step": 2, "log_history": [{"step": 1, "loss": 0.1}]})
    )
    out = tmp_path / "out"
    assert main([str(run), "--output-dir", str(out)]) == 0
    result = json.loads((out / "analysis.json").read_text())
    assert (
        result["plots"] == {"loss": "loss.png"} and result["best_checkpoint"] is None
    )  # the only series logged
    report = (out / "report.md").read_text()
    for missing in ("accuracy_history.jsonl", "completions.jsonl", "per-step evals", "`entropy`"):
        assert missing in report

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--output-dir", str(tmp_path / "out2")]) == 0
    assert "No trainer_state.json" in (tmp_path / "out2" / "report.md").read_text()


def test_all_revisions_eval_dir(tmp_path):
    # `oneshot-trl eval --all-revisions` layout: <out>/<revision>/results.json, no training logs
    root = tmp_path / "evals"
    write_eval(
        root / "step-000010", {"math500": 0.6}, {"math500": 0.7}, [{"benchmark": "math500", "response": "ok"}]
    )
    write_eval(
        root / "step-000020",
        {"math500": 0.7},
        {"math500": 0.7},
        [{"benchmark": "math500", "response": "wait"}],
    )
    write_eval(root / "main", {"math500": 0.65}, {"math500": 0.7}, [])
    data = load_run_data(root)
    assert [(e.label, e.step) for e in data.evals] == [
        ("step-000010", 10),
        ("step-000020", 20),
        ("main", None),
    ]
    out = tmp_path / "out"
    assert main([str(root), "--output-dir", str(out)]) == 0
    result = json.loads((out / "analysis.json").read_text())
    assert result["best_checkpoint"]["average"]["checkpoint"] == "step-000020"
    assert "post_saturation" in result["plots"] and "reflection_words" in result["plots"]
    assert len(result["evals"]) == 3


def test_hub_repo_target(run_dir, tmp_path, monkeypatch):
    calls = []

    def fake_resolve(name, revision=None, token=None, allow_patterns=None, **kwargs):
        from oneshot_trl.models import ResolvedModel

        calls.append((name, revision, allow_patterns))
        return ResolvedModel(path=str(run_dir), revision=revision, commit_sha="0" * 40, repo_id=name)

    monkeypatch.setattr("oneshot_trl.models.resolve_model", fake_resolve)
    monkeypatch.chdir(tmp_path)
    assert main(["user/pi1-run", "--revision", "step-000004"]) == 0
    assert calls[0][:2] == ("user/pi1-run", "step-000004")
    assert "accuracy_history.jsonl" in calls[0][2] and not any("safetensors" in p for p in calls[0][2])
    report = (tmp_path / "analysis-pi1-run" / "report.md").read_text()
    assert report.startswith("# oneshot-trl analysis: `user/pi1-run@step-000004`")
    assert len(DEFAULT_REFLECTION_WORDS) == 8


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--saturation-threshold", "7"], "--saturation-threshold"),
        (["--saturation-threshold", "nan"], "--saturation-threshold"),
        (["--max-examples", "-3"], "--max-examples"),
        (["--words", " , "], "--words"),
    ],
)
def test_bad_numeric_flags_are_one_line_before_any_file_is_read(tmp_path, capsys, flags, named):
    out = tmp_path / "out"
    assert cli_main(["analyze", str(tmp_path / "no-such-run"), "--output-dir", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"oneshot-trl analyze: error: {named}") and "\n" not in err
    assert not out.exists()


def test_unreadable_history_rows_are_reported_with_count_and_first_line(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"step": s, "example_id": EXAMPLE, "index": 124, "accuracy": s / 4, "num_samples": 8}
        for s in (1, 2, 3)
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(1, '{"step": 9, "exa')  # line 2: a torn write in the middle
    (run / "accuracy_history.jsonl").write_text("\n".join(lines) + "\n")
    with caplog.at_level("WARNING"):
        assert main([str(run), "--output-dir", str(tmp_path / "out")]) == 0
    assert "accuracy_history.jsonl:2 is not valid JSON" in caplog.text
    assert "1 unreadable line(s) skipped, the first at line 2" in caplog.text


SIX = ("math500", "aime24", "amc23", "minerva_math", "olympiadbench", "aime25")


def _paper_run(tmp_path, paper_setup):
    """make_run_dir's run plus the paper's cadence: all six at steps 0 and 8, MATH500 alone at step 6."""
    run = make_run_dir(tmp_path)
    info = json.loads((run / "oneshot_run.json").read_text())
    (run / "oneshot_run.json").write_text(json.dumps({**info, "paper_setup": paper_setup}))
    six = {0: dict.fromkeys(SIX, 0.1), 8: {**dict.fromkeys(SIX, 0.3), "math500": 0.7}}
    for step, accs in {0: six[0], 6: {"math500": 0.9}, 8: six[8]}.items():
        write_eval(run / "eval" / f"step-{step:06d}", accs, accs, [])
    return run


def test_report_puts_the_papers_row_beside_the_runs_best_and_final(tmp_path):
    run = _paper_run(tmp_path, "qwen2.5-math-1.5b/pi1")
    assert main([str(run), "--output-dir", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    result = json.loads((tmp_path / "out" / "analysis.json").read_text())["paper_comparison"]
    assert result["paper_source"] == "Tab. 8 {pi1}" and result["rule"] == "best six-benchmark average"
    rows = {r["benchmark"]: r for r in result["rows"]}
    assert rows["math500"]["paper"] == pytest.approx(0.728) and rows["aime25"]["paper"] == pytest.approx(
        0.071
    )
    # best = the best six-benchmark-average checkpoint (step 8), not MATH500's own best (step 6)
    assert rows["math500"]["best"]["step"] == 8 and rows["math500"]["best"]["accuracy"] == 0.7
    assert rows["math500"]["final"]["step"] == 8 and rows["aime24"]["final"]["step"] == 8
    assert result["average"]["paper"] == pytest.approx(0.35)
    assert result["average"]["best"]["accuracy"] == pytest.approx((0.7 + 5 * 0.3) / 6)
    assert "| benchmark | paper (reported) | this run: best | this run: final |" in report
    assert "| math500 | 72.8 | 70.0 (step 8) | 70.0 (step 8) |" in report
    assert "the paper's, not measured here" in report
    assert (tmp_path / "out" / "post_saturation.png").stat().st_size > 0
    for stem in ("reward", "kl", "loss", "grad_norm"):
        assert (
            stem in json.loads((tmp_path / "out" / "analysis.json").read_text())["training_metrics"] or stem
        )
    assert (tmp_path / "out" / "reward.png").is_file() and (tmp_path / "out" / "loss.png").is_file()


def test_report_without_a_paper_setup_has_no_paper_column(tmp_path):
    run = _paper_run(tmp_path, None)
    assert main([str(run), "--output-dir", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| benchmark | this run: best | this run: final |" in report
    assert "paper (reported)" not in report and "72.8" not in report
    # the same run with the setup named on the command line gets the column (Tab. 9: best per benchmark)
    assert (
        main([str(run), "--output-dir", str(tmp_path / "out2"), "--paper-setup", "qwen2.5-math-1.5b/4-shot"])
        == 0
    )
    report = (tmp_path / "out2" / "report.md").read_text()
    assert "| math500 | 74.4 | 90.0 (step 6) | 70.0 (step 8) |" in report
    assert "label 24" in report  # pi2's official label, said where the setup includes it


def test_an_unknown_paper_setup_is_one_line(tmp_path, capsys):
    run = _paper_run(tmp_path, None)
    assert cli_main(["analyze", str(run), "--paper-setup", "nope/none"]) == 2
    assert "--paper-setup 'nope/none' is unknown" in capsys.readouterr().err


def test_paper_rows_match_the_setups_they_name():
    from oneshot_trl.paper_results import PAPER_RESULTS
    from oneshot_trl.setups import PAPER_SETUPS

    for name, row in PAPER_RESULTS.items():
        target = PAPER_SETUPS[name].target  # the setups' one-line summaries quote MATH500 and the average
        assert f"MATH500 {row.scores[0]}" in target and f"avg {row.average}" in target, name
        assert (
            abs(sum(row.scores) / 6 - row.average) < 0.35 or row.checkpoint != "best six-benchmark average"
        ), name
