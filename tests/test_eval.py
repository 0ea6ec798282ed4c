"""`oneshot-trl eval`: benchmarks, exact prompt, protocols, metrics, generation, resume, CLI (offline, CPU)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from oneshot_trl import cli as oneshot_trl_cli
from oneshot_trl.eval import cli
from oneshot_trl.eval.benchmarks import (
    BENCHMARKS,
    SIX_BENCHMARKS,
    Problem,
    load_benchmark,
    load_dataset_problems,
    parse_benchmark_names,
)
from oneshot_trl.eval.generate import TransformersGenerator, truncate_at_stop
from oneshot_trl.eval.metrics import benchmark_average, bootstrap_ci, pass_at_k, pass_at_k_table, summarize
from oneshot_trl.eval.protocols import PROTOCOLS, SamplingSpec, get_protocol
from oneshot_trl.eval.request import EvalOutput, EvalRequest, ModelRef
from oneshot_trl.eval.runner import ResumeMismatchError, evaluate
from oneshot_trl.eval.templates import render_prompt
from oneshot_trl.hub import revision_card
from oneshot_trl.validate import InputError

# The official qwen25-math-cot prompt of MATH500 problem 0, written out literally (Qwen2.5-Eval utils.py).
MATH500_FIRST_PROMPT = (
    "<|im_start|>system\n"
    "Please reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
    "<|im_start|>user\n"
    "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your answer in the form "
    "$(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$<|im_end|>\n"
    "<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def tiny_eval_model(tmp_path_factory) -> Path:
    """Tiny random Qwen2 (hidden 64, 2 layers, head_dim 32) with room for long OlympiadBench prompts."""
    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny-eval")
    tokenizer = build_tokenizer()
    # 2048 positions: the byte-level toy tokenizer turns a 700-char problem into ~560 tokens.
    model = build_random_model(
        tokenizer, hidden_size=64, num_layers=2, num_heads=2, max_position_embeddings=2048
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class ScriptedGenerator:
    """Answers from a script instead of a model: sample j of a problem is right iff j < n_right[problem]."""

    chunk_sequences = 8  # small chunks, so resume granularity is exercised

    def __init__(self, problems: list[Problem], n_right: dict[str, int]):
        self.by_prompt = {render_prompt(p.problem, "qwen25-math-cot"): p for p in problems}
        self.n_right = n_right
        self.calls: list[str] = []  # problem ids generated, in order

    def generate(self, prompts, *, n, temperature, top_p, max_new_tokens, stop, seed):
        out = []
        for prompt in prompts:
            p = self.by_prompt[prompt]
            self.calls.append(p.id)
            right = self.n_right.get(p.id, 0)
            out.append(
                [
                    f"So the answer is $\\boxed{{{p.gold}}}$." if j < right else "I give up: \\boxed{-1}"
                    for j in range(n)
                ]
            )
        return out


def run_eval(generator, problems, out=None, *, model="m", audit=False, overwrite=False, **overrides):
    """`evaluate` of `problems` under one-shot-rlvr (with `overrides`) into `out`."""
    protocol = get_protocol("one-shot-rlvr").with_overrides(**overrides)
    output = EvalOutput(out, overwrite=overwrite, audit=audit)
    return evaluate(EvalRequest(problems, protocol, ModelRef(model), output), generator)


# --- benchmarks and the exact prompt -------------------------------------------------------------


def test_math500_prompt_is_the_official_string():
    problem = load_benchmark("math500")[0]
    assert render_prompt(problem.problem, "qwen25-math-cot") == MATH500_FIRST_PROMPT
    assert problem.id == "test/precalculus/807.json"
    assert problem.gold == "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_bundled_benchmarks_sizes_and_golds():
    sizes = {name: len(load_benchmark(name)) for name in BENCHMARKS}
    assert sizes == {
        "math500": 500,
        "aime24": 30,
        "amc23": 40,
        "minerva_math": 272,
        "olympiadbench": 675,
        "aime25": 30,
    }
    amc = load_benchmark("amc23")
    assert amc[0].gold == "27"  # float 27.0 in the file
    assert all("." not in p.gold for p in amc)
    olympiad = load_benchmark("olympiadbench")
    assert olympiad[1].gold == "\\frac{1}{2 n+2}"  # "$\frac{1}{2 n+2}$" with the $ stripped
    assert not any(p.gold.startswith("$") or p.gold.endswith("$") for p in olympiad)
    # MATH500's gold is the last \boxed{} of the solution; it agrees with the `answer` field in the file.
    rows = [
        json.loads(line)
        for line in (Path(cli.__file__).parent.parent / "resources/benchmarks/math500.jsonl").open()
    ]
    same = sum(p.gold == r["answer"] for p, r in zip(load_benchmark("math500"), rows, strict=True))
    assert same == 500
    minerva = load_benchmark("minerva_math")
    assert all(p.gold for p in minerva)
    for name in BENCHMARKS:
        problems = load_benchmark(name)
        assert len({p.id for p in problems}) == len(problems)
        assert all(p.problem == p.problem.strip() and p.benchmark == name for p in problems)


def test_unknown_benchmark_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match=r"Unknown benchmark 'gsm8k'.*math500"):
        parse_benchmark_names("math500,gsm8k")
    assert parse_benchmark_names("all") == list(SIX_BENCHMARKS)
    assert oneshot_trl_cli.main(["eval", "--model", "none", "--benchmarks", "gsm8k", "--dry-run"]) == 2
    assert "Unknown benchmark 'gsm8k'" in capsys.readouterr().err


def test_custom_dataset_from_jsonl_parquet_and_save_to_disk(tmp_path):
    import datasets

    rows = [{"q": "What is 2+3?", "a": 5.0, "idx": 7}, {"q": "Is 7 prime?", "a": "yes", "idx": 9}]
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = load_dataset_problems(str(jsonl), problem_field="q", answer_field="a")
    assert [(p.id, p.problem, p.gold, p.benchmark) for p in problems] == [
        ("7", "What is 2+3?", "5", "mine"),
        ("9", "Is 7 prime? (Yes or No)", "yes", "mine"),  # the official yes/no hint
    ]
    ds = datasets.Dataset.from_list([{"problem": "1+1?", "solution": "so \\boxed{2}."}])
    ds.to_parquet(str(tmp_path / "p.parquet"))
    assert (
        load_dataset_problems(str(tmp_path / "p.parquet"))[0].gold == "2"
    )  # default: last \boxed{} of solution
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "saved"))
    loaded = load_dataset_problems(str(tmp_path / "saved"), split="test", name="saved")
    assert (loaded[0].problem, loaded[0].gold, loaded[0].benchmark) == ("1+1?", "2", "saved")
    with pytest.raises(KeyError, match="Answer field 'nope'"):
        load_dataset_problems(str(jsonl), problem_field="q", answer_field="nope")


# --- protocols -------------------------------------------------------------------------------------


def test_one_shot_rlvr_protocol_values():
    p = PROTOCOLS["one-shot-rlvr"]
    assert p.template == "qwen25-math-cot" and p.grader == "official"
    assert p.stop == ("</s>", "<|im_end|>", "<|endoftext|>")
    for name in ("math500", "minerva_math", "olympiadbench"):
        assert p.sampling_for(name) == SamplingSpec(n=1, temperature=0.0, top_p=1.0, max_new_tokens=3072)
    for name in ("aime24", "aime25", "amc23"):
        assert p.sampling_for(name) == SamplingSpec(n=8, temperature=0.6, top_p=1.0, max_new_tokens=3072)
        assert p.sampling_for(name).metric == "avg@8"
    r1 = PROTOCOLS["r1-distill"]
    assert (r1.sampling_for("math500").n, r1.sampling_for("aime24").n, r1.sampling_for("amc23").top_p) == (
        16,
        64,
        0.95,
    )
    assert r1.sampling_for("olympiadbench").max_new_tokens == 8192


def test_protocol_hash_changes_with_any_parameter():
    base = get_protocol("one-shot-rlvr")
    assert base.hash() == get_protocol("one-shot-rlvr").hash() and len(base.hash()) == 12
    variants = [
        base.with_overrides(grader="math-verify"),
        base.with_overrides(max_new_tokens=4096),
        base.with_overrides(template="chat"),
        base.with_overrides(seed=1),
        base.with_overrides(n=16),
        PROTOCOLS["r1-distill"],
    ]
    hashes = {v.hash() for v in variants} | {base.hash()}
    assert len(hashes) == len(variants) + 1
    assert (
        variants[0].overrides == {"grader": "math-verify"}
        and variants[0].to_dict()["grader"] == "math-verify"
    )
    assert base.with_overrides(grader="official") is base  # no change, same protocol
    with pytest.raises(ValueError, match="Unknown grader"):
        base.with_overrides(grader="exact")
    with pytest.raises(ValueError, match="Unknown protocol"):
        get_protocol("lighteval")


# --- metrics -------------------------------------------------------------------------------------------


def test_pass_at_k_matches_closed_form():
    for n in range(1, 11):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)
    assert pass_at_k(8, 2, 2) == pytest.approx(13 / 28)  # 1 - C(6,2)/C(8,2)
    table = pass_at_k_table([[True, False, False, False], [False] * 4, [True] * 4])
    assert table == pytest.approx({"1": 5 / 12, "2": (0.5 + 0 + 1) / 3, "3": (0.75 + 1) / 3, "4": 2 / 3})
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_summarize_bootstrap_and_average():
    correct = [[True] * 8, [False] * 8, [True] * 4 + [False] * 4, [False] * 6 + [True] * 2]
    m = summarize(correct, boxed=[[True] * 8] * 4, anywhere=[[True] * 8, [False] * 8, [True] * 8, [True] * 8])
    assert m["accuracy"] == pytest.approx((1 + 0 + 0.5 + 0.25) / 4)
    assert m["metric"] == "avg@8" and m["n_problems"] == 4 and m["n_samples"] == 32
    assert m["pass@k"]["1"] == pytest.approx(m["accuracy"]) and m["pass@k"]["8"] == pytest.approx(0.75)
    lo, hi = m["ci95"]
    assert 0 <= lo < m["accuracy"] < hi <= 1
    assert bootstrap_ci([0.0, 1.0, 1.0], seed=0) == bootstrap_ci([0.0, 1.0, 1.0], seed=0)
    assert (m["boxed_rate"], m["answer_anywhere_accuracy"]) == (1.0, 0.75)
    six = dict.fromkeys(SIX_BENCHMARKS, 0.3) | {"math500": 0.9}
    assert benchmark_average(six) == (pytest.approx(0.4), "six-benchmark average")
    avg, label = benchmark_average({"math500": 0.5, "aime24": 0.1})
    assert avg == pytest.approx(0.3) and "not the six-benchmark average" in label


# --- generation ----------------------------------------------------------------------------------------


def test_truncate_at_stop():
    assert truncate_at_stop("a<|im_end|>b</s>c", ["</s>", "<|im_end|>"]) == "a"
    assert truncate_at_stop("no stop", ["</s>"]) == "no stop"


def test_transformers_generator_loaded_model_seed_and_greedy(tiny_eval_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_eval_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_eval_model)
    gen = TransformersGenerator(model, tokenizer, batch_size=4, progress=False)
    prompts = ["<|im_start|>user\n1+1=<|im_end|>\n<|im_start|>assistant\n", "2+2="]
    kw = dict(top_p=1.0, max_new_tokens=6, stop=["<|im_end|>", "<|endoftext|>"])
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    sampled = gen.generate(prompts, n=3, temperature=1.0, seed=7, **kw)
    assert torch.equal(torch.rand(1), expected_next), "generation must not disturb the caller's RNG"
    assert [len(s) for s in sampled] == [3, 3]
    assert gen.generate(prompts, n=3, temperature=1.0, seed=7, **kw) == sampled  # seeded
    assert len({*sampled[0], *sampled[1]}) > 1  # random model at T=1: samples differ
    greedy = gen.generate(prompts, n=2, temperature=0.0, seed=0, **kw)
    assert all(len(s) == 2 and s[0] == s[1] for s in greedy)
    # In-process use (lab, in-training eval): a loaded model + tokenizer, no output dir, nothing resolved.
    problems = {"aime25": load_benchmark("aime25")[:1]}
    protocol = get_protocol("one-shot-rlvr").with_overrides(max_new_tokens=4)
    results = evaluate(EvalRequest(problems, protocol, ModelRef.of(model)), gen)
    assert results["model"] == str(tiny_eval_model) and results["commit_sha"] is None
    assert results["benchmarks"]["aime25"]["n_samples"] == 8


def test_custom_dataset_through_the_cli(tiny_eval_model, tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text(
        json.dumps({"q": "What is 2+3?", "a": 5}) + "\n" + json.dumps({"q": "What is 1+1?", "a": 2}) + "\n"
    )
    argv = [
        "--model",
        str(tiny_eval_model),
        "--dataset",
        str(data),
        "--problem-field",
        "q",
        "--answer-field",
        "a",
    ]
    argv += [
        "--backend",
        "transformers",
        "--max-new-tokens",
        "2",
        "--output-dir",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert list(results["benchmarks"]) == ["mine"]  # --dataset alone: no bundled benchmarks
    assert (
        results["benchmarks"]["mine"]["n_problems"] == 2 and results["benchmarks"]["mine"]["metric"] == "acc"
    )
    rows = [json.loads(line) for line in (tmp_path / "o" / "samples.jsonl").open()]
    assert [r["gold"] for r in rows] == ["5", "2"] and "What is 2+3?" in rows[0]["prompt"]


def test_boxed_suffix_is_the_training_suffix():
    from oneshot_trl.data import TRAIN_PROMPT_SUFFIX
    from oneshot_trl.eval.templates import BOXED_SUFFIX

    assert BOXED_SUFFIX == TRAIN_PROMPT_SUFFIX
    assert (
        render_prompt("Q?", "deepseek-distill-boxed")
        == f"<｜begin▁of▁sentence｜><｜User｜>Q?{TRAIN_PROMPT_SUFFIX}<｜Assistant｜><think>\n"
    )


# --- end to end ---------------------------------------------------------------------------------------


def test_eval_end_to_end_transformers_all_benchmarks(tiny_eval_model, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "--model",
        str(tiny_eval_model),
        "--backend",
        "transformers",
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
    ]
    assert cli.main([*argv, "--output-dir", str(out), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "| aime24 | avg@8 |" in table and "| math500 | acc |" in table and "six-benchmark average" in table
    results = json.loads((out / "results.json").read_text())
    assert set(results["benchmarks"]) == set(SIX_BENCHMARKS)
    assert results["protocol"]["name"] == "one-shot-rlvr" and results["protocol"]["overrides"] == {
        "max_new_tokens": 8
    }
    assert (
        results["protocol"]["hash"] == get_protocol("one-shot-rlvr").with_overrides(max_new_tokens=8).hash()
    )
    assert results["grader"] == "official" and results["backend"] == "transformers"
    assert {"oneshot-trl", "transformers", "torch", "math-verify"} <= set(results["versions"])
    for name, m in results["benchmarks"].items():
        n = 8 if name in ("aime24", "aime25", "amc23") else 1
        assert (m["n_problems"], m["n_samples"], m["metric"]) == (2, 2 * n, "acc" if n == 1 else f"avg@{n}")
        assert set(m["pass@k"]) == {str(k) for k in range(1, n + 1)}
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["boxed_rate"] <= 1
    assert results["average_label"] == "six-benchmark average" and results["limit"] == 2
    rows = [json.loads(line) for line in (out / "samples.jsonl").open()]
    assert len(rows) == 12
    aime = next(r for r in rows if r["benchmark"] == "aime24")
    assert len(aime["responses"]) == len(aime["correct"]) == len(aime["extracted"]) == 8
    assert all(1 <= t <= 8 for r in rows for t in r["num_tokens"])  # generated tokens, within the budget
    assert aime["prompt"].startswith("<|im_start|>system\nPlease reason step by step")


def test_scripted_accuracy_audit_and_table(tmp_path):
    problems = {"aime24": load_benchmark("aime24")[:3], "math500": load_benchmark("math500")[:2]}
    flat = [p for ps in problems.values() for p in ps]
    gen = ScriptedGenerator(flat, {"60": 8, "61": 4, "test/precalculus/807.json": 1})
    results = run_eval(gen, problems, tmp_path, model="ignored-model", audit=True)
    aime, math500 = results["benchmarks"]["aime24"], results["benchmarks"]["math500"]
    assert aime["accuracy"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert aime["pass@k"]["8"] == pytest.approx(2 / 3) and aime["boxed_rate"] == 1.0
    assert math500["accuracy"] == pytest.approx(0.5) and math500["metric"] == "acc"
    assert results["average_label"].startswith("mean of 2 benchmarks")
    assert results["audit"]["n_disagreements"] == 0  # plain integers / boxed answers: the graders agree
    assert results["audit"]["benchmarks"]["aime24"] == {
        "n_samples": 24,
        "disagreements": 0,
        "accuracy_math-verify": pytest.approx(12 / 24),
        "accuracy_official": pytest.approx(12 / 24),
    }


def test_audit_lists_grader_disagreements(tmp_path):
    class Fixed:
        def generate(self, prompts, *, n, **kwargs):
            return [["\\boxed{0.5}"] * n for _ in prompts]

    # The official math_equal accepts x/100 for a percentage gold; math-verify does not.
    problems = {"pct": [Problem("q1", "What is one half, in percent?", "50", "pct")]}
    results = run_eval(Fixed(), problems, tmp_path, audit=True)
    assert results["benchmarks"]["pct"]["accuracy"] == 1.0  # graded by the protocol's grader: official
    (line,) = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert (line["problem_id"], line["official"]["correct"], line["math-verify"]["correct"]) == (
        "q1",
        True,
        False,
    )
    assert results["audit"]["n_disagreements"] == 1


def test_resume_generates_only_missing_problems(tmp_path):
    problems = {"amc23": load_benchmark("amc23")[:5], "aime25": load_benchmark("aime25")[:3]}
    flat = [p for ps in problems.values() for p in ps]
    right = {"0": 8, "2": 3, "1": 5}
    first = run_eval(ScriptedGenerator(flat, right), problems, tmp_path)
    samples = tmp_path / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    assert len(lines) == 8
    # Simulated kill: 3 amc23 problems finished, the 4th was being written.
    samples.write_text("".join(lines[:3]) + lines[3][:40])
    gen = ScriptedGenerator(flat, right)
    second = run_eval(gen, problems, tmp_path)
    assert gen.calls == ["3", "4", "0", "1", "2"]  # amc23 3-4 and all of aime25; nothing twice
    for name in problems:
        assert second["benchmarks"][name]["accuracy"] == first["benchmarks"][name]["accuracy"]
    # Finished run: a re-run generates nothing.
    gen = ScriptedGenerator(flat, right)
    run_eval(gen, problems, tmp_path)
    assert gen.calls == []


def test_other_protocol_in_same_dir_is_refused(tmp_path):
    problems = {"aime25": load_benchmark("aime25")[:1]}
    gen = ScriptedGenerator(problems["aime25"], {})
    run_eval(gen, problems, tmp_path)
    with pytest.raises(ResumeMismatchError, match="--overwrite"):
        run_eval(gen, problems, tmp_path, grader="math-verify")
    with pytest.raises(ResumeMismatchError, match="model"):
        run_eval(gen, problems, tmp_path, model="other")
    results = run_eval(gen, problems, tmp_path, grader="math-verify", overwrite=True)
    assert results["grader"] == "math-verify"


def test_dry_run_prints_plan_without_model(capsys):
    assert cli.main(["--model", "does/not-exist", "--benchmarks", "math500,aime24", "--dry-run"]) == 0
    out = capsys.readouterr().out
    proto = get_protocol("one-shot-rlvr")
    assert f"protocol: one-shot-rlvr v1  hash {proto.hash()}" in out
    assert "== math500: 500 problems x 1 samples (acc), temperature 0.0" in out
    assert (
        "== aime24: 30 problems x 8 samples (avg@8), temperature 0.6, top_p 1.0, max 3072 new tokens" in out
    )
    assert MATH500_FIRST_PROMPT in out
    assert "total: 740 generations over 2 benchmarks" in out


def test_revisions_summary_and_push(tiny_eval_model, tmp_path, monkeypatch, capsys):
    # A local training run dir stands in for a Hub repo: step-000002 -> checkpoint-2 (oneshot_trl.models).
    run = tmp_path / "run"
    run.mkdir()
    for step in (2, 4):
        (run / f"checkpoint-{step}").symlink_to(tiny_eval_model, target_is_directory=True)
    pushed = []
    monkeypatch.setattr(
        cli, "list_step_revisions", lambda repo_id, token=None: ["step-000002", "step-000004"]
    )
    monkeypatch.setattr(
        revision_card,
        "push_eval_results",
        lambda repo, res, revision="main", token=None: pushed.append((repo, revision)),
    )
    argv = [
        "--model",
        str(run),
        "--all-revisions",
        "--benchmarks",
        "amc23",
        "--limit",
        "1",
        "--max-new-tokens",
        "2",
    ]
    argv += ["--backend", "transformers", "--output-dir", str(tmp_path / "ev"), "--no-progress"]
    assert cli.main([*argv, "--push-to-hub", "--hub-repo-id", "me/run"]) == 0
    summary = json.loads((tmp_path / "ev" / "revisions.json").read_text())
    assert [(r["revision"], r["step"]) for r in summary["rows"]] == [("step-000002", 2), ("step-000004", 4)]
    assert (tmp_path / "ev" / "step-000002" / "results.json").exists()
    assert (tmp_path / "ev" / "revisions.png").stat().st_size > 1000
    assert "| step-000004 | 4 |" in (tmp_path / "ev" / "revisions.md").read_text()
    assert pushed == [("me/run", "step-000002"), ("me/run", "step-000004")]
    assert np.isfinite(summary["rows"][0]["amc23"])


def test_eval_hub_model_from_offline_cache(tiny_eval_model, tmp_path, monkeypatch, capsys):
    import shutil

    from huggingface_hub import constants

    # The HF cache layout the Hub leaves behind: refs/<branch> -> sha, snapshots/<sha>/<files>.
    sha = "5" * 40
    repo_dir = tmp_path / "hub" / "models--me--tiny"
    shutil.copytree(tiny_eval_model, repo_dir / "snapshots" / sha)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "step-000002").write_text(sha)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    argv = ["--model", "me/tiny", "--revision", "step-000002", "--benchmarks", "aime25", "--limit", "1"]
    argv += [
        "--max-new-tokens",
        "2",
        "--backend",
        "transformers",
        "--output-dir",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert (results["model"], results["revision"], results["commit_sha"]) == ("me/tiny", "step-000002", sha)
    capsys.readouterr()
    assert oneshot_trl_cli.main(["eval", *argv[:2], "--revision", "step-999999", *argv[4:]]) == 2
    assert "step-999999" in capsys.readouterr().err  # unknown revision: a clear error, no traceback


def test_revision_sweep_reloads_one_engine_and_equals_separate_evals(checkpoint_run, tmp_path, caplog):
    # --revisions: one transformers model, each checkpoint's weights loaded into it (load_state_dict); every
    # revision's samples identical to an eval of that revision alone (its own process-fresh engine).
    revisions = ["step-000001", "step-000002", "step-000003"]
    common = ["--model", str(checkpoint_run), "--benchmarks", "amc23,math500", "--limit", "2"]
    common += ["--max-new-tokens", "6", "--backend", "transformers", "--no-progress"]
    with caplog.at_level("INFO", logger="oneshot_trl.eval.sweep"):
        assert (
            cli.main([*common, "--revisions", ",".join(revisions), "--output-dir", str(tmp_path / "sweep")])
            == 0
        )
    assert "3 revision(s) through 1 engine start(s) and 2 weight reload(s)" in caplog.text
    responses = {}
    for revision in revisions:
        alone = tmp_path / "alone" / revision
        assert cli.main([*common, "--revision", revision, "--output-dir", str(alone)]) == 0
        swept = [
            json.loads(x) for x in (tmp_path / "sweep" / revision / "samples.jsonl").read_text().splitlines()
        ]
        single = [json.loads(x) for x in (alone / "samples.jsonl").read_text().splitlines()]
        assert [r["responses"] for r in swept] == [r["responses"] for r in single]
        responses[revision] = [r["responses"] for r in swept]
    assert (
        len({json.dumps(r) for r in responses.values()}) == 3
    )  # the weights really changed between revisions


def test_prompt_past_the_models_context_is_refused_before_generating(tiny_model_dir, tmp_path):
    # The conftest model has 512 positions: a MATH500 prompt + 3072 new tokens cannot fit.
    argv = [
        "--model",
        str(tiny_model_dir),
        "--benchmarks",
        "math500",
        "--limit",
        "2",
        "--backend",
        "transformers",
    ]
    with pytest.raises(InputError, match=r"math500: problem .* exceeds the model's context of 512 positions"):
        cli.main([*argv, "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "samples.jsonl").exists()


def test_output_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    argv = ["--model", "does/not-matter", "--benchmarks", "math500", "--limit", "1", "--dry-run"]
    with pytest.raises(InputError, match="is a file, not a folder"):
        cli.main([*argv, "--output-dir", str(tmp_path / "taken" / "out")])


def test_revisions_spread_over_processes_equal_one_process(checkpoint_run, tmp_path):
    # Two processes of a launch (RANK/WORLD_SIZE as accelerate sets them) share 3 revisions round robin, each
    # through its own engine; every revision's samples and the combined summary equal a one-process sweep.
    import os
    import subprocess
    import sys

    argv = [
        sys.executable,
        "-m",
        "oneshot_trl.cli",
        "eval",
        "--model",
        str(checkpoint_run),
        "--benchmarks",
        "amc23",
    ]
    argv += ["--limit", "2", "--max-new-tokens", "6", "--backend", "transformers", "--no-progress"]
    argv += ["--revisions", "step-000001,step-000002,step-000003"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*argv, "--output-dir", str(tmp_path / "one")], check=True, capture_output=True, env=env)
    launch = [
        subprocess.Popen(
            [*argv, "--output-dir", str(tmp_path / "two")],
            env={**env, "RANK": str(r), "WORLD_SIZE": "2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for r in (0, 1)
    ]
    outputs = [p.communicate(timeout=900) for p in launch]
    assert [p.returncode for p in launch] == [0, 0], outputs[1][1].decode()[-2000:]
    own = [out.decode() for out, _ in outputs]  # each process prints the table of each revision it evaluated
    assert "@step-000001" in own[0] and "@step-000003" in own[0] and "@step-000002" not in own[0]
    assert "@step-000002" in own[1] and "@step-000001" not in own[1]
    for revision in ("step-000001", "step-000002", "step-000003"):
        one, two = (tmp_path / d / revision / "samples.jsonl" for d in ("one", "two"))
        assert [json.loads(x)["responses"] for x in one.read_text().splitlines()] == [
            json.loads(x)["responses"] for x in two.read_text().splitlines()
        ]
    rows = [json.loads((tmp_path / d / "revisions.json").read_text())["rows"] for d in ("one", "two")]
    assert rows[0] == rows[1] and len(rows[0]) == 3


def test_in_training_eval_context_is_checked_when_training_starts(tiny_model_dir):
    # recipe evals of MATH500 at the protocol's 3,072 tokens on a 512-position model: refused in on_train_begin,
    # before the first step (and the step-0 eval); a budget that fits passes.
    from types import SimpleNamespace

    from transformers import AutoConfig, AutoTokenizer

    from oneshot_trl.callbacks import BenchmarkEvalCallback

    recipe = SimpleNamespace(eval_benchmarks=["math500"], eval_full_benchmarks=None, eval_full_steps=None,
                             eval_dataset=None, eval_protocol="one-shot-rlvr", eval_template=None, eval_limit=3,
                             eval_max_new_tokens=None, eval_before_training=True)  # fmt: skip
    trainer = SimpleNamespace(
        model=SimpleNamespace(config=AutoConfig.from_pretrained(tiny_model_dir)),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        use_vllm=False,
    )
    callback = BenchmarkEvalCallback(recipe, str(tiny_model_dir))
    callback.bind(trainer)
    with pytest.raises(InputError, match="max_new_tokens 3072 .* exceeds the trained model's context of 512"):
        callback.on_train_begin(None, SimpleNamespace(global_step=0), None)
    recipe.eval_max_new_tokens = 8
    callback.check_context()  # fits: no error


def test_doctor_refuses_in_training_evals_past_the_models_context(make_recipe, capsys):
    # issue 26: `eval_benchmarks: [math500]` at the protocol's 3,072 tokens on a 512-position model passed doctor
    from oneshot_trl import doctor

    assert doctor.main([str(make_recipe(eval_benchmarks=["math500"], eval_limit=4))]) == 2
    err = capsys.readouterr().err
    assert "in-training evals: math500: problem" in err and "exceeds the model's context of 512" in err
    assert (
        doctor.main([str(make_recipe(eval_benchmarks=["math500"], eval_limit=4, eval_max_new_tokens=8))]) == 0
    )
