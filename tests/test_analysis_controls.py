"""`analyze`'s controls section (code reasoning, clip fraction, accuracy vs reward) and `analyze --compare`."""

from __future__ import annotations

import json

import pytest
from support import PNG_MAGIC, make_run_dir

from oneshot_trl.analysis.cli import main
from oneshot_trl.analysis.controls import code_reasoning_by_step, has_code, trained_rewards
from oneshot_trl.cli import main as cli_main


def test_code_reasoning_detection_and_rate_per_step():
    assert has_code("```python\nx = 1\n```") and has_code("print(12.8)") and has_code("def f(x):\n  return x")
    assert not has_code("We define the speed as v; printing is not code. The answer is \\boxed{3}.")
    rows = [
        {"step": 1, "completion": "print(1)"},
        {"step": 1, "completion": "so 3"},
        {"step": 2, "completion": "```python\nprint(2)\n```"},
        {"step": 2, "completion": "```python\nx=2\n```"},
    ]
    assert code_reasoning_by_step(rows) == [
        {"step": 1, "rate": 0.5, "n": 2},
        {"step": 2, "rate": 1.0, "n": 2},
    ]


def _make_control_run(root, *, shift: float):
    """The synthetic run of test_analysis, turned into a random-reward run with clip metrics and code."""
    run = make_run_dir(root)
    for ckpt in ("checkpoint-2", "checkpoint-4"):
        path = run / ckpt / "trainer_state.json"
        state = json.loads(path.read_text())
        for entry in state["log_history"]:
            if "loss" in entry:
                step = entry["step"]
                del entry[
                    "rewards/accuracy_reward/mean"
                ]  # the fixture's old name; TRL logs the function's name
                entry["rewards/accuracy/mean"] = 0.1 * step
                entry["rewards/random_reward/mean"] = 0.5
                entry["clip_ratio/region_mean"] = 0.01 * step
        path.write_text(json.dumps(state))
    info = json.loads((run / "oneshot_run.json").read_text())
    (run / "oneshot_run.json").write_text(json.dumps({**info, "reward": "random"}))
    with (run / "completions.jsonl").open("a") as f:
        f.write(json.dumps({"step": 2, "completion": "print(12.8)"}) + "\n")
    for step_dir in (run / "eval").iterdir():
        results = json.loads((step_dir / "results.json").read_text())
        for b in results["benchmarks"].values():
            b["accuracy"] += shift
        (step_dir / "results.json").write_text(json.dumps(results))
    return run


def test_trained_rewards_reads_reward_funcs_and_the_old_reward_key():
    names = ["format", "my_pkg.rewards.shorter"]
    assert trained_rewards({"reward_funcs": names}) == names
    assert trained_rewards({"reward": "random"}) == ["random"]  # a run recorded before the reward registry
    assert trained_rewards({}) == [] and trained_rewards(None) == []


def test_analyze_reports_the_controls(tmp_path):
    run = _make_control_run(tmp_path, shift=0.0)
    assert main([str(run), "--output-dir", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "analysis.json").read_text())
    controls = result["controls"]
    assert controls["code_reasoning"] == [
        {"step": 1, "rate": 0.0, "n": 2},
        {"step": 2, "rate": 1 / 3, "n": 3},
    ]
    assert controls["clip_fraction"] == {
        "steps": [1, 2, 3, 4],
        "values": pytest.approx([0.01, 0.02, 0.03, 0.04]),
    }
    avr = controls["accuracy_vs_reward"]
    assert avr["reward"] == "rewards/random_reward/mean" and avr["given"]["values"] == [0.5] * 4
    assert avr["accuracy"]["values"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert (tmp_path / "out" / "controls.png").read_bytes().startswith(PNG_MAGIC)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Controls" in report and "0.500 (step 1) -> 0.500 (step 4)" in report


def test_compare_overlays_runs(tmp_path, capsys):
    a = _make_control_run(tmp_path / "a", shift=0.0)
    b = _make_control_run(tmp_path / "b", shift=0.1)
    out = tmp_path / "cmp"
    assert main(["--compare", str(a), str(b), "--output-dir", str(out)]) == 0
    result = json.loads((out / "compare.json").read_text())
    # held-out mean over math500 + aime24: step 2 (0.5+0.1)/2 = 0.3, step 4 (0.4+0.3)/2 = 0.35; run b is 0.1 higher
    first, second = result["runs"]
    assert first["first"]["accuracy"] == 0.3 and first["last"]["accuracy"] == 0.35
    assert abs(second["best"]["accuracy"] - 0.45) < 1e-9 and second["best"]["step"] == 4
    assert (out / "compare.png").read_bytes().startswith(PNG_MAGIC)
    assert "| run | reward |" in capsys.readouterr().out
    assert cli_main(["analyze"]) == 2  # no run: one line, exit 2 (oneshot_trl.cli)
