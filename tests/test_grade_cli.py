"""`oneshot-trl grade --benchmark / --benchmark-field`: the official grader's per-benchmark rules from the CLI."""

from __future__ import annotations

import json

import pytest

from oneshot_trl.cli import main as cli_main
from oneshot_trl.eval import grade_cli

UNITS = r"So the length is $\boxed{10 meters}$."  # Minerva keeps units in the harness, MATH strips them


def test_grade_cli_applies_benchmark_rules(tmp_path, capsys):
    src = tmp_path / "samples.jsonl"
    rows = [
        {"response": UNITS, "gold": "10", "benchmark": "minerva_math"},
        {"response": UNITS, "gold": "10", "benchmark": "math500"},
        {"response": UNITS, "gold": ["10"]},  # no field: falls back to --benchmark
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def graded(*flags: str) -> list[bool]:
        out = tmp_path / "graded.jsonl"
        assert (
            grade_cli.main([str(src), "--grader", "official", "--workers", "0", "--output", str(out), *flags])
            == 0
        )
        return [json.loads(line)["correct"] for line in out.read_text().splitlines()]

    assert graded() == [True, True, True]  # no benchmark: units stripped everywhere
    assert graded("--benchmark", "minerva_math") == [False, False, False]
    assert graded("--benchmark-field", "benchmark") == [False, True, True]
    assert graded("--benchmark-field", "benchmark", "--benchmark", "minerva_math") == [False, True, False]
    assert "benchmark rules: math500, minerva_math" in capsys.readouterr().out


def _rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("oneshot-trl grade: error: ") and "\n" not in err, err
    return err


def test_a_misspelled_benchmark_is_refused_with_a_suggestion(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(grade_cli, "grade_batch", lambda *a, **k: pytest.fail("graded before the check"))
    src = _rows(tmp_path / "s.jsonl", [{"response": UNITS, "gold": "10", "benchmark": "minervamath"}])
    assert cli_main(["grade", str(src), "--benchmark", "minervamath"]) == 2
    assert "Did you mean minerva_math?" in _one_line(capsys)
    assert cli_main(["grade", str(src), "--benchmark-field", "benchmark"]) == 2
    assert "s.jsonl:1: benchmark is 'minervamath'" in _one_line(capsys)
    assert not (tmp_path / "s.graded.jsonl").exists()


def test_an_empty_file_is_an_error_not_accuracy_zero(tmp_path, capsys):
    for text in ("", "\n\n"):
        (tmp_path / "empty.jsonl").write_text(text)
        assert cli_main(["grade", str(tmp_path / "empty.jsonl")]) == 2
        assert "has no rows" in _one_line(capsys)


def test_output_equal_to_the_input_is_refused_and_the_input_kept(tmp_path, capsys):
    src = _rows(tmp_path / "s.jsonl", [{"response": UNITS, "gold": "10"}] * 3)
    before = src.read_bytes()
    assert cli_main(["grade", str(src), "--output", str(tmp_path / "." / "s.jsonl")]) == 2
    assert "is the input file itself" in _one_line(capsys)
    assert src.read_bytes() == before


def test_ctrl_c_while_grading_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(grade_cli, "grade_batch", interrupted)
    src = _rows(tmp_path / "s.jsonl", [{"response": UNITS, "gold": "10"}])
    assert cli_main(["grade", str(src)]) == 130
    err = capsys.readouterr().err.strip()
    assert (
        err == f"oneshot-trl grade: interrupted: nothing was written ({src} is unchanged); rerun to grade it."
    )
    assert not (tmp_path / "s.graded.jsonl").exists()
