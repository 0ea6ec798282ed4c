"""In-training evals run on the training's own generator, shared by every process, equal to `oneshot-trl eval`.

The greedy protocol makes the comparison exact: a 2-process DDP run (accelerate launch on CPU) evaluates the base
model (step 0) and its checkpoint with the policy it trains, each process generating and grading its part of the
problems; a 1-process `evaluate` of the same weights from disk gives the same responses and metrics. The same with
vLLM colocated (the trainer's engine, under ZeRO-3): tests/test_journey.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import ENV, REPO, read_jsonl

from oneshot_trl.eval.benchmarks import load_dataset_problems
from oneshot_trl.eval.engine import Engine
from oneshot_trl.eval.protocols import get_protocol
from oneshot_trl.eval.request import EvalOptions, EvalOutput, EvalRequest, ModelRef
from oneshot_trl.eval.runner import evaluate
from oneshot_trl.eval.sharding import Shard
from oneshot_trl.lab.runs import RLRunConfig, recipe_for, write_problems
from oneshot_trl.lab.task import splits
from oneshot_trl.layout import eval_dir


def _reference_eval(weights: Path, heldout: Path, recipe: dict, backend: str, output_dir: Path) -> dict:
    """What `oneshot-trl eval` of the same weights gives: one process, an engine or model of its own."""
    protocol = get_protocol("one-shot-rlvr").with_overrides(
        template=recipe["eval_template"], max_new_tokens=recipe["eval_max_new_tokens"]
    )
    request = EvalRequest(
        {"heldout": load_dataset_problems(str(heldout))},
        protocol,
        ModelRef.resolve(weights),
        EvalOutput(output_dir),
        EvalOptions(progress=False),
    )
    with Engine(backend, str(weights)) as engine:
        return evaluate(request, engine)


def _samples(eval_dir: Path) -> dict[tuple[str, str], dict]:
    keep = ("prompt", "responses", "extracted", "correct", "boxed", "answer_anywhere", "num_tokens")
    return {
        (r["benchmark"], r["problem_id"]): {k: r[k] for k in keep}
        for r in read_jsonl(eval_dir / "samples.jsonl")
    }


def test_shard_parts_are_contiguous_and_cover_the_chunk():
    items = list(range(7))
    parts = [Shard(index=i, count=3, is_main=i == 0).part(items) for i in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]  # concatenated in rank order: the chunk's order
    assert [Shard(index=i, count=3).part([1]) for i in range(3)] == [[1], [], []]
    assert Shard().map(items, lambda part: [2 * x for x in part]) == [2 * x for x in items]


@pytest.mark.slow
def test_two_process_in_training_eval_equals_a_one_process_eval(ci_base, tmp_path):
    """The lab's run (its base model, in-training evals on held-out arithmetic: non-trivial greedy answers)."""
    heldout = write_problems(splits()["test"][:9], tmp_path / "heldout.jsonl")  # 9: uneven parts (5 + 4)
    config = RLRunConfig(steps=2, eval_every=2, learning_rate=1e-3)  # a large step: answers change
    recipe = recipe_for(config, str(ci_base), tmp_path / "run", heldout_file=heldout)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe | {"disable_tqdm": True}))
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "accelerate_configs" / "ddp.yaml"),
        "--num_processes", "2", "--mixed_precision", "no",
        "-m", "oneshot_trl.train", str(tmp_path / "recipe.yaml"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "run"

    for step, weights in ((0, ci_base), (2, run / "checkpoint-2")):
        in_training = eval_dir(run, step)
        reference = _reference_eval(weights, heldout, recipe, "transformers", tmp_path / f"reference-{step}")
        assert _samples(in_training) == _samples(tmp_path / f"reference-{step}"), step
        results = json.loads((in_training / "results.json").read_text())
        assert results["backend"] == "trainer-policy"
        assert results["protocol"]["hash"] == reference["protocol"]["hash"]
        assert results["benchmarks"]["heldout"]["n_problems"] == 9
        assert results["benchmarks"]["heldout"]["accuracy"] == reference["benchmarks"]["heldout"]["accuracy"]
    # the comparison has teeth: the base model answers, and training changed what it answers
    base, trained = _samples(eval_dir(run, 0)), _samples(eval_dir(run, 2))
    assert any(any(row["correct"]) for row in base.values())
    assert base != trained
    state = json.loads((run / "trainer_state.json").read_text())
    assert [row["step"] for row in state["log_history"] if "eval/heldout" in row] == [0, 2]
