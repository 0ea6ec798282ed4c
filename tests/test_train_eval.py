"""In-training evals run on the training's own generator, shared by every process, equal to `oneshot-trl eval`.

The greedy protocol makes the comparison exact: a 2-process DDP run (accelerate launch on CPU) evaluates the base
model (step 0) and its checkpoint with the policy it trains, each process generating and grading its part of the
problems; a 1-process `evaluate` of the same weights from disk gives the same responses and metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import ENV, REPO, FakeHub, read_jsonl, train_in_process

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


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_colocate_in_training_eval_uses_the_trainers_engine(ci_base, tmp_path, monkeypatch):
    """use_vllm colocate: the evals generate on TRL's engine (no second one), with the trained weights synced."""
    vllm = pytest.importorskip("vllm")

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    engines = []
    init = vllm.LLM.__init__
    monkeypatch.setattr(
        vllm.LLM, "__init__", lambda self, *a, **k: engines.append(self) or init(self, *a, **k)
    )
    heldout = write_problems(splits()["test"][:9], tmp_path / "heldout.jsonl")
    recipe = recipe_for(RLRunConfig(steps=2, eval_every=2, learning_rate=1e-3), str(ci_base), tmp_path / "run",
                        heldout_file=heldout)  # fmt: skip
    recipe |= {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_enable_sleep_mode": False,
        "disable_tqdm": True,
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    trainer = train_in_process(tmp_path / "recipe.yaml")
    assert engines == [trainer.vllm_generation.llm]  # one engine in the training process: TRL's
    del trainer, engines[:]

    run = tmp_path / "run"
    for step, weights in ((0, ci_base), (2, run / "checkpoint-2")):
        in_training = eval_dir(run, step)
        assert json.loads((in_training / "results.json").read_text())["backend"] == "trainer-vllm"
        _reference_eval(weights, heldout, recipe, "vllm", tmp_path / f"reference-{step}")
        assert _samples(in_training) == _samples(tmp_path / f"reference-{step}"), step
    assert _samples(eval_dir(run, 0)) != _samples(eval_dir(run, 2))  # synced weights


@pytest.mark.slow
def test_the_journey_evals_retention_hub_analyze_and_card(make_recipe, tmp_path, monkeypatch, capsys):
    """One tiny run as a paper recipe sets it up: in-training evals (base first, then every checkpoint), retention
    of the newest + the best that deletes only uploaded checkpoints, every checkpoint and its eval on its branch,
    then `analyze` and the card beside the paper's row. What a GPU user gets, at tiny scale."""

    import oneshot_trl.hub.push as push
    from oneshot_trl.analysis.cli import main as analyze
    from oneshot_trl.layout import checkpoint_dirs

    api = FakeHub(tmp_path)
    monkeypatch.setattr(push, "HfApi", lambda *a, **k: api)
    monkeypatch.setenv("HF_TOKEN", "hf_fakeTOKENforTHEjourney")
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(
        "".join(json.dumps({"problem": f"{i} + 1 = ?", "answer": str(i + 1)}) + "\n" for i in range(3))
    )
    recipe = make_recipe(
        max_steps=3, save_steps=1, eval_dataset=str(heldout), eval_max_new_tokens=8,
        keep_last_checkpoints=1, keep_best_checkpoints=1, keep_best_metrics=["eval/heldout"],
        push_to_hub=True, hub_model_id="user/tiny-journey", paper_setup="qwen2.5-math-1.5b/pi1",
    )  # fmt: skip

    train_in_process(recipe)
    run = tmp_path / "run"
    state = json.loads((run / "trainer_state.json").read_text())
    scores = {row["step"]: row["eval/heldout"] for row in state["log_history"] if "eval/heldout" in row}
    assert sorted(scores) == [0, 1, 2, 3]
    best = min((s for s in scores if s > 0), key=lambda s: (-scores[s], s))
    assert set(checkpoint_dirs(run)) <= {3, best} and 3 in checkpoint_dirs(run)  # deleted: uploaded, not kept
    for step in (1, 2, 3):  # every checkpoint and its eval on its branch, deleted locally or not
        files = api.files(f"step-{step:06d}")
        assert {"model.safetensors", f"eval/step-{step:06d}/results.json"} <= files, step
    assert {f"eval/step-{s:06d}/results.json" for s in range(4)} <= api.files("main")

    assert analyze([str(run)]) == 0
    report = (run / "analysis" / "report.md").read_text()
    assert "## This run beside the paper" in report and "| heldout | – |" in report
    assert "| **six-benchmark average** | 35.0 | – | – |" in report  # the paper's; this run has no six
    card = api.branches["main"]["README.md"].decode()
    assert "### This run beside the paper" in card
    listing = {
        str(p.relative_to(run)): p.stat().st_size for p in sorted(run.rglob("*")) if p.is_file()
    }  # printed for the closing note of issue 25 (pytest -s)
    with capsys.disabled():
        print("\nrun dir:", json.dumps(listing, indent=0))
        print("hub:", json.dumps({b: sorted(f) for b, f in api.branches.items()}, indent=0))
