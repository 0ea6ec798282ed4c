"""`oneshot-trl grade --benchmark / --benchmark-field`: the official grader's per-benchmark rules from the CLI."""

from __future__ import annotations

import json

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
