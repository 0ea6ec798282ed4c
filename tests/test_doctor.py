"""`oneshot-trl doctor`: every shipped recipe passes, bad batch arithmetic is refused, diffs and sizes are right."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from support import REPO, doctor, train_in_process

from oneshot_trl.checks import Launch, SetupError
from oneshot_trl.config import OneShotArguments
from oneshot_trl.memory import lora_params, model_info
from oneshot_trl.recipe import RECIPE_DATACLASSES
from oneshot_trl.setups import KNOWN_ARCHITECTURES, PAPER_SETUPS

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def launch_config(recipe: Path) -> list[str]:
    """The accelerate config the recipe's own header launches it with (none for CPU recipes)."""
    found = re.search(r"accelerate launch --config_file (\S+)", recipe.read_text())
    return ["--accelerate-config", str(REPO / found.group(1))] if found else []


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_passes_doctor(recipe, capsys):
    code = doctor([str(recipe), *launch_config(recipe)])
    out = capsys.readouterr()
    assert code == 0, out.out[-2000:] + out.err
    assert "OK: no problem found." in out.out
    assert "vllm_max_model_length is unset" not in out.out and "vLLM would refuse to start" not in out.out
    setup = yaml.safe_load(recipe.read_text()).get("paper_setup")
    if (
        setup and "lora" not in recipe.name
    ):  # the paper's recipes match their setup exactly, batch shape included
        assert f"Differs from the official {setup} (0):" in out.out, out.out


def test_every_recipe_names_a_known_setup_and_marks_trl_defaults():
    trl_defaults = {}
    for cls in RECIPE_DATACLASSES[1:]:  # TRL's GRPOConfig (+ entropy_coeff) and ModelConfig
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                trl_defaults[f.name] = getattr(f.default, "value", f.default)
    ours = {f.name for f in dataclasses.fields(OneShotArguments)}
    for recipe in RECIPES:
        if recipe.name == "lab.yaml":
            continue
        assert yaml.safe_load(recipe.read_text())["paper_setup"] in PAPER_SETUPS, recipe.name
        for line in recipe.read_text().splitlines():
            match = re.match(r"^(\w+): (.*?)\s*(#.*)?$", line)
            if not match or match[1] in ours | {"model_name_or_path", "output_dir", "entropy_coeff"}:
                continue
            key, value = match[1], yaml.safe_load(match[2])
            if key in trl_defaults and value != trl_defaults[key] and str(value) != str(trl_defaults[key]):
                assert "TRL default" in (match[3] or ""), f"{recipe.name}: {key} differs from TRL's default"


def test_doctor_refuses_a_dataset_smaller_than_one_generation_batch(make_recipe, capsys):
    recipe = make_recipe()  # 8 rows; 4 per device x 2 accumulation = 2 prompts x 4 generations per generation
    assert doctor([str(recipe)]) == 0
    capsys.readouterr()
    assert (
        doctor([str(recipe), "--num-processes", "8"]) == 2
    )  # 8 processes: 16 prompts per generation > 8 rows
    err = capsys.readouterr().err
    assert "REFUSED" in err and "the dataset has 8 row(s) but one generation batch takes 16 prompts" in err
    assert "dataset_repeat_to: 16" in err


def test_doctor_refuses_a_generation_batch_that_splits_groups(make_recipe, capsys):
    recipe = make_recipe(generation_batch_size=16, gradient_accumulation_steps=1)  # fine on 1 process
    assert doctor([str(recipe), "--num-processes", "3"]) == 2  # 16 completions over 3 x 4 per micro-batch
    assert (
        "must be divisible by per_device_train_batch_size x world size (4 x 3 = 12)"
        in capsys.readouterr().err
    )


def test_majority_reward_needs_whole_groups_on_each_process(make_recipe, capsys):
    recipe = make_recipe(
        reward_funcs=["majority"], num_generations=8, generation_batch_size=16, gradient_accumulation_steps=1
    )
    assert doctor([str(recipe), "--num-processes", "2"]) == 0  # 8 completions per process: one whole group
    capsys.readouterr()
    assert doctor([str(recipe), "--num-processes", "4"]) == 2  # 4 per process: half a group each
    assert "reward_funcs: majority votes within each group of 8" in capsys.readouterr().err


def test_doctor_prints_diffs_from_the_official_setup_and_trl(capsys):
    code = doctor(
        [str(REPO / "recipes/qwen15b.yaml"), "--num-processes", "4", "--zero-stage", "2"]
        + ["--", "--learning_rate", "1e-5"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "learning_rate: 1e-05   (official: 1e-06)" in out
    assert "prompts per optimizer step: 64   (official: 128)" in out  # 16 x 4 GPUs x 8 / 8 generations
    assert "GPUs: 4   (official: 8)" in out
    assert "loss_type: bnpo   (TRL default: dapo)" in out
    assert "vocab" not in out  # TRL 1.16's fused LM head never materializes the logits
    assert "ZeRO-2 over 4 GPU(s)" in out


def test_train_runs_the_doctor_checks_before_loading_the_model(make_recipe, tmp_path):
    recipe = make_recipe(dataset_repeat_to=1)  # one row; a generation batch takes 2 prompts
    with pytest.raises(SetupError, match="the dataset has 1 row"):
        train_in_process(recipe)
    assert not (tmp_path / "run").exists()


def test_unknown_paper_setup_is_refused(make_recipe, capsys):
    assert doctor([str(make_recipe(paper_setup="qwen2.5-math-1.5b/pi99"))]) == 2
    assert "unknown paper_setup 'qwen2.5-math-1.5b/pi99'" in capsys.readouterr().err


def test_accelerate_configs_are_read_for_world_size_and_zero_stage():
    multinode = Launch.from_accelerate_config(REPO / "accelerate_configs/zero3_multinode.yaml")
    assert (multinode.num_processes, multinode.num_machines, multinode.zero_stage) == (16, 2, 3)
    offload = Launch.from_accelerate_config(REPO / "accelerate_configs/zero3_offload.yaml")
    assert offload.offload_optimizer and offload.offload_params
    assert Launch.from_accelerate_config(REPO / "accelerate_configs/ddp.yaml").zero_stage is None
    assert Launch.from_accelerate_config(REPO / "accelerate_configs/single_gpu.yaml").num_processes == 1


def test_deepspeed_configs_reduce_in_fp32_and_a_bf16_default_is_warned(tmp_path, capsys):
    for name in ("zero2", "zero3", "zero3_offload", "zero3_multinode"):
        launch = Launch.from_accelerate_config(REPO / f"accelerate_configs/{name}.yaml")
        assert launch.fp32_gradients and not launch.precision_warnings(bf16=True), name
    # An accelerate config without a DeepSpeed file (open-r1's style): DeepSpeed reduces bf16 gradients in bf16.
    plain = tmp_path / "zero3_plain.yaml"
    plain.write_text(yaml.safe_dump({"distributed_type": "DEEPSPEED", "deepspeed_config": {"zero_stage": 3}}))
    assert not Launch.from_accelerate_config(plain).fp32_gradients
    assert doctor([str(REPO / "recipes/qwen15b.yaml"), "--accelerate-config", str(plain)]) == 0
    assert "DeepSpeed accumulates and reduces the bf16 gradients in bf16" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("model", "published"),  # the parameter counts on the models' Hub pages
    [
        ("Qwen/Qwen2.5-Math-1.5B", "1.54"),
        ("Qwen/Qwen2.5-Math-7B", "7.62"),
        ("meta-llama/Llama-3.2-3B-Instruct", "3.21"),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "1.78"),
    ],
)
def test_known_architectures_have_the_published_parameter_counts(model, published):
    assert f"{model_info(model).params / 1e9:.2f}" == published
    assert model in KNOWN_ARCHITECTURES


def test_local_folder_sizes_and_lora_count_match_the_real_models(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    info = model_info(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert info.params == sum(p.numel() for p in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert lora_params(info, 4, "all-linear") == trainable
    assert model_info("no/such-model") is None


def test_unparseable_gold_answers_are_refused(make_recipe, capsys):
    recipe = make_recipe(train_examples="dsr_sub", dataset_repeat_to=None)  # 3 DSR-sub golds cannot be parsed
    assert doctor([str(recipe)]) == 2
    assert "3 gold answer(s) cannot be parsed" in capsys.readouterr().err
    assert doctor([str(recipe), "--", "--skip_unparseable_golds", "true"]) == 0


def _memory_section(argv: list[str], capsys) -> str:
    assert doctor(argv) == 0
    return capsys.readouterr().out.split("Memory per GPU")[1]


def test_ppo_estimate_adds_the_replicated_fp32_critic(capsys):
    zero3 = ["--accelerate-config", str(REPO / "accelerate_configs/zero3.yaml")]
    grpo = _memory_section([str(REPO / "recipes/qwen15b.yaml"), *zero3], capsys)
    ppo = _memory_section([str(REPO / "recipes/qwen15b-ppo.yaml"), *zero3], capsys)
    states = [float(re.search(r"= ([\d.]+) GiB\n", s)[1]) for s in (grpo, ppo)]  # the model states line
    critic = float(re.search(r"PPO critic .* = ([\d.]+) GiB", ppo)[1])
    # Qwen2.5-Math-1.5B ties its LM head to the embeddings: the critic is the whole 1.54 B model + a value head.
    params = model_info("Qwen/Qwen2.5-Math-1.5B").params
    assert "PPO critic" not in grpo
    assert states[0] == states[1]
    assert critic == pytest.approx(16 * params / 2**30, abs=0.05)


def test_kv_cache_that_cannot_hold_the_generation_batch_warns_of_waves(capsys):
    # qwen7b at 0.35 of 80 GiB: 28 GiB - 14.2 GiB of weights leaves 13.8 GiB; 128 x 4096 tokens need 28 GiB.
    out = _memory_section([str(REPO / "recipes/qwen7b.yaml")], capsys)
    assert "warning: vLLM generates in waves: its KV cache holds 13.8 GiB of the 28.0 GiB" in out
    roomy = _memory_section([str(REPO / "recipes/qwen7b.yaml"), "--gpu-memory-gib", "141"], capsys)
    assert "generates in waves" not in roomy
    assert "generates in waves" not in _memory_section([str(REPO / "recipes/qwen15b.yaml")], capsys)


def test_unset_vllm_max_model_length_on_a_long_context_model_warns(tmp_path, capsys):
    text = (REPO / "recipes/llama3b-instruct.yaml").read_text()
    recipe = tmp_path / "llama.yaml"
    recipe.write_text(
        "".join(line for line in text.splitlines(True) if not line.startswith("vllm_max_model_length"))
    )
    out = _memory_section([str(recipe)], capsys)
    assert "vllm_max_model_length is unset: vLLM sizes its engine for the model's 131072-token context" in out
    assert "engine sized for 131072 tokens" in out
    # On a 24 GiB GPU, 131072 tokens x 112 KiB (14 GiB) do not fit next to the 6 GiB weight copy.
    assert "vLLM would refuse to start" in _memory_section([str(recipe), "--gpu-memory-gib", "24"], capsys)
    assert "vLLM would refuse to start" not in _memory_section(
        [str(REPO / "recipes/llama3b-instruct.yaml"), "--gpu-memory-gib", "24"], capsys
    )


# -- memory and disk ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["no-checkpointing", "checkpointing"])
def test_activation_estimate_matches_what_a_cpu_forward_saves(tiny_model_dir, dtype, checkpointing):
    """memory.activation_bytes against the bytes the tiny model's forward saves for backward (autograd's saved
    tensors, parameters excluded), with and without gradient checkpointing, fp32 and bf16: within 5%."""
    from transformers import AutoModelForCausalLM

    from oneshot_trl.memory import ModelInfo, activation_bytes

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype).train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    batch, length = 4, 96
    ids = torch.randint(3, 200, (batch, length), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.model(input_ids=ids, use_cache=False)  # the decoder; TRL's LM head works in tiles
    kept, transient = activation_bytes(
        ModelInfo("tiny", "test", model.config), batch * length, dtype.itemsize, checkpointing
    )
    assert sum(saved.values()) == pytest.approx(kept, rel=0.05)
    assert (transient > 0) == checkpointing


def test_gradients_are_counted_in_fp32_where_deepspeed_accumulates_in_fp32(tmp_path, capsys):
    """Issue 25: 1.54 B parameters' fp32 gradients over 8 GPUs are 0.7 GiB per GPU (bf16 would be 0.4)."""
    out = _memory_section(
        [
            str(REPO / "recipes/qwen15b.yaml"),
            "--accelerate-config",
            str(REPO / "accelerate_configs/zero3.yaml"),
        ],
        capsys,
    )
    assert "grads 0.7 (fp32)" in out
    config = tmp_path / "zero3_bf16.yaml"  # a DeepSpeed file without the fp32 settings: bf16 accumulation
    ds = tmp_path / "ds.json"
    ds.write_text('{"zero_optimization": {"stage": 3, "reduce_bucket_size": 1e8}}')
    config.write_text(
        (REPO / "accelerate_configs/zero3.yaml")
        .read_text()
        .replace("accelerate_configs/deepspeed/zero3.json", str(ds))
    )
    out = _memory_section([str(REPO / "recipes/qwen15b.yaml"), "--accelerate-config", str(config)], capsys)
    assert "grads 0.4 (bf16)" in out
    # the config's reduce bucket (1e8 x 2 B) + default prefetch (5e7 x 2 B) + default live parameters (1e9 x 2 B)
    expected = (1e8 * 2 + 5e7 * 2 + 1e9 * 2) / 2**30
    assert f"DeepSpeed buckets: {expected:.1f} GiB" in out


def test_disk_is_one_checkpoint_times_the_retention(capsys):
    """qwen15b: bf16 weights (2 B) + DeepSpeed's fp32 master weights and Adam moments (12 B) per parameter, kept
    newest 2 + best 2 by each of 2 metrics = 6, + 1 while saving."""
    argv = [
        str(REPO / "recipes/qwen15b.yaml"),
        "--accelerate-config",
        str(REPO / "accelerate_configs/zero3.yaml"),
    ]
    assert doctor(argv) == 0
    out = capsys.readouterr().out
    one = 14 * model_info("Qwen/Qwen2.5-Math-1.5B").params / 1e9
    assert f"one checkpoint: ~{one:.0f} GB, weights + optimizer state" in out
    assert f"at most 6 kept + 1 while saving = 7 x {one:.0f} GB" in out
    assert doctor([*argv, "--save_only_model", "true"]) == 0
    assert f"one checkpoint: ~{2 * one / 14:.0f} GB, weights only" in capsys.readouterr().out


def test_doctor_says_every_parameter_is_decayed(capsys):
    assert doctor([str(REPO / "recipes/qwen15b.yaml")]) == 0
    assert "weight_decay 0.01 on every parameter, biases and norms included" in capsys.readouterr().out


def test_offload_config_cpu_adam_mismatch_is_warned(tmp_path, monkeypatch, capsys):
    """DeepSpeed's own check: a system CUDA 12.4 toolkit against a torch built for CUDA 13.0 cannot build the CPU
    Adam of zero3_offload.yaml; the doctor says so and how to avoid the build. DS_SKIP_CUDA_CHECK=1 lifts it."""
    pytest.importorskip("deepspeed")
    import torch.utils.cpp_extension

    nvcc = tmp_path / "cuda" / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.4, V12.4.131'\n")
    nvcc.chmod(0o755)
    monkeypatch.setattr(torch.utils.cpp_extension, "CUDA_HOME", str(tmp_path / "cuda"))
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.delenv("DS_SKIP_CUDA_CHECK", raising=False)
    argv = [
        str(REPO / "recipes/qwen15b.yaml"),
        "--accelerate-config",
        str(REPO / "accelerate_configs/zero3_offload.yaml"),
    ]
    assert doctor(argv) == 0
    out = capsys.readouterr().out
    assert "DeepSpeed cannot build its CPU Adam" in out and "12.4" in out and "DS_SKIP_CUDA_CHECK=1" in out
    monkeypatch.setenv("DS_SKIP_CUDA_CHECK", "1")
    assert doctor(argv) == 0
    assert "cannot build its CPU Adam" not in capsys.readouterr().out


def test_slurm_example_commands_pass_doctor_on_two_nodes(capsys):
    """Every `sbatch` line of the Slurm example, as the script runs doctor: 2 nodes x 8 GPUs, the multinode config."""
    script = (REPO / "scripts/slurm_train.sbatch").read_text()
    lines = re.findall(r"^#\s+sbatch --nodes=2 scripts/slurm_train.sbatch (\S+)(.*)$", script, re.M)
    assert any("qwen7b" in recipe for recipe, _ in lines)
    config = str(REPO / "accelerate_configs/zero3_multinode.yaml")
    for recipe, overrides in lines:
        argv = [
            str(REPO / recipe),
            "--accelerate-config",
            config,
            "--num-processes",
            "16",
            "--num-machines",
            "2",
        ]
        assert doctor([*argv, "--", *overrides.split()]) == 0, recipe
        capsys.readouterr()


def test_a_missing_recipe_is_refused_before_the_training_stack_loads(tmp_path):
    """The cheap error first (issue 24 item 5): no TRL, transformers or torch import for a path that is not there."""
    code = (
        "import sys; from oneshot_trl.cli import run_command; rc = run_command('doctor', [sys.argv[1]]); "
        "heavy = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]; print(rc, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nope.yaml")], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[0] == "2 []" and "Recipe file not found" in out.stderr
