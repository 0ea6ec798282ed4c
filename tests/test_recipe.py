"""Recipes and their command lines: the dataclasses hold each field's rules, the file is read once (a duplicated
key is an error), flags take both spellings in train and doctor, no-op settings are warned, and a run's saved
recipe re-runs it (issue 24 items 1 and 5, issue 26 items 5 and 9)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import doctor, one_line_error

from oneshot_trl import train
from oneshot_trl.cli import run_command
from oneshot_trl.config import OneShotArguments, OneShotGRPOConfig
from oneshot_trl.recipe import RecipeError, parse_recipe
from oneshot_trl.validate import FieldError, InputError

TOKEN, ENV_TOKEN = "hf_recipeSECRETrecipe01", "hf_envSECRETenvSECRET02"


def test_field_rules_live_with_the_fields_and_hold_however_a_config_is_built(tmp_path):
    fields = {f.name: f for f in dataclasses.fields(OneShotGRPOConfig)}
    inherited = OneShotGRPOConfig.TRL_FIELD_RULES
    assert set(inherited) <= set(fields), set(inherited) - set(fields)  # every rule names a real field
    assert not {name for name, f in fields.items() if "range" in f.metadata} & set(
        inherited
    )  # one place each
    with pytest.raises(FieldError, match=r"max_steps is 0; it must be >= 1 \(or -1"):
        OneShotGRPOConfig(output_dir=str(tmp_path), use_cpu=True, max_steps=0)
    with pytest.raises(FieldError, match="eval_limit is 0; it must be >= 1"):
        OneShotArguments(train_examples="pi1", eval_limit=0)
    with pytest.raises(
        FieldError, match="prompt_format is 'chatt'; choose one of auto, chat, plain. Did you mean chat"
    ):
        OneShotArguments(train_examples="pi1", prompt_format="chatt")


def test_a_duplicated_key_names_the_key_and_both_lines(make_recipe, capsys):
    recipe = make_recipe()
    lines = recipe.read_text().splitlines()
    first = next(i for i, line in enumerate(lines, 1) if line.startswith("learning_rate:"))
    recipe.write_text("\n".join([*lines, "learning_rate: 0.5"]) + "\n")
    needle = f"key 'learning_rate' is set twice (lines {first} and {len(lines) + 1})"
    with pytest.raises(RecipeError, match=r"recipe\.yaml: " + re.escape(needle)):
        parse_recipe([str(recipe)])
    assert run_command("train", [str(recipe)]) == 2
    one_line_error(capsys, needle)
    assert doctor([str(recipe)]) == 2
    one_line_error(capsys, needle)


def test_flags_take_both_spellings(make_recipe, capsys):
    recipe = str(make_recipe())
    for flags in (
        ["--max-steps", "7"],
        ["--max_steps=7"],
        ["--max-steps=7"],
        ["--config", recipe, "--max_steps", "7"],
    ):
        argv = flags if flags[0] == "--config" else [recipe, *flags]
        _, training_args, _, parsed = parse_recipe(argv)
        assert training_args.max_steps == 7 and parsed.flags == {"max_steps": 7}, flags
    script_args, training_args, _, _ = parse_recipe(
        [recipe, "--eval-benchmarks", "math500", "aime24", "--use_vllm", "false", "--seed", "-0"]
    )
    assert script_args.eval_benchmarks == ["math500", "aime24"] and training_args.use_vllm is False
    assert run_command("train", [recipe, "--max-steps", "abc"]) == 2
    one_line_error(capsys, "flag --max-steps is 'abc'; it must be a number (int)")
    assert run_command("train", [recipe, "--max_step", "5"]) == 2
    one_line_error(capsys, "unknown flag --max_step.", "Did you mean --max_steps")
    assert run_command("train", [recipe, "--learning-rate", "-1"]) == 2
    one_line_error(capsys, "flag --learning-rate is -1; it must be >= 0")


def test_doctor_takes_overrides_as_train_does(make_recipe, capsys):
    recipe = str(make_recipe())
    assert doctor([recipe, "--max_steps", "5", "--num_processes", "2"]) == 0
    out = capsys.readouterr().out
    assert "  max_steps: 5\n" in out and "2 process(es)" in out
    assert doctor([recipe, "--num-processes", "2", "--", "--max-steps", "6"]) == 0  # the older form
    assert "  max_steps: 6\n" in capsys.readouterr().out
    assert doctor([recipe, "--max-steps", "0"]) == 2
    one_line_error(capsys, "flag --max-steps is 0; it must be >= 1")


def test_lab_takes_its_run_settings_as_flags_in_either_spelling():
    from oneshot_trl.lab import cli as lab_cli
    from oneshot_trl.lab.experiments import EXPERIMENTS

    flags = ["--learning_rate", "1e-4", "--entropy-coeff", "0", "--examples", "1+2", "3+4"]
    assert lab_cli.run_overrides(flags) == {
        "learning_rate": 1e-4,
        "entropy_coeff": 0.0,
        "examples": ("1+2", "3+4"),
    }
    with pytest.raises(RecipeError, match="unknown flag --learning_rat. Did you mean --learning_rate"):
        lab_cli.run_overrides(["--learning_rat", "1"])
    with pytest.raises(RecipeError, match="flag --temperature is 'hot'; it must be a number"):
        lab_cli.run_overrides(["--temperature", "hot"])
    with pytest.raises(InputError, match="runs its own settings; --learning_rate applies to the demo only"):
        lab_cli.main(["--experiment", next(iter(EXPERIMENTS)), "--learning_rate", "1e-4"])


def test_train_help_lists_what_train_accepts(capsys):
    assert train.cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    usage = out.split("\n\n")[0]
    assert "oneshot-trl train RECIPE.yaml" in usage and "--config RECIPE.yaml" in usage
    for flag in (
        "--max_steps",
        "--max-steps",
        "--reward_funcs",
        "--entropy_coeff",
        "--model_name_or_path",
        "--gamma",
    ):
        assert flag in out, flag
    assert "--no_" not in out  # argparse's negated bools, which train does not take


def test_train_without_a_recipe_fails_before_the_training_imports(tmp_path):
    code = (
        "import sys; from oneshot_trl.cli import main; rcs = [main(['train']), main(['train', sys.argv[1]])]; "
        "print(rcs, [m for m in ('torch', 'transformers', 'trl') if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "[2, 2] []", proc.stdout + proc.stderr
    assert "oneshot-trl train: error: give a recipe" in proc.stderr
    assert "Recipe file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_group_size_rule_is_the_configs_own(make_recipe, capsys):
    """num_generations 1: GRPOConfig refuses it (a group baseline needs 2), PPO takes it (the critic is the
    baseline); the doctor's batch arithmetic does not repeat the rule, so it does not refuse PPO's."""
    assert doctor([str(make_recipe(num_generations=1))]) == 2
    one_line_error(capsys, "GRPO requires at least 2 generations per prompt")
    assert doctor([str(make_recipe(algorithm="ppo", num_generations=1))]) == 0, capsys.readouterr().err


def test_no_op_settings_are_warned(make_recipe, capsys):
    assert doctor([str(make_recipe(learning_rate=0))]) == 0
    assert "warning: learning_rate is 0: the policy's weights never change" in capsys.readouterr().out
    assert doctor([str(make_recipe(reward_funcs=["none"], entropy_coeff=0))]) == 0
    assert "every advantage is 0, and entropy_coeff is 0" in capsys.readouterr().out
    assert doctor([str(make_recipe(reward_funcs=["random"], random_reward_p=1.0, entropy_coeff=0))]) == 0
    assert "every advantage is 0" in capsys.readouterr().out
    assert doctor([str(make_recipe(reward_funcs=["none"], entropy_coeff=0.01))]) == 0  # entropy-only: meant
    assert "every advantage is 0" not in capsys.readouterr().out


def test_saved_recipe_holds_the_effective_values_and_no_secret(make_recipe, tmp_path, monkeypatch, capsys):
    for name in ("HF_TOKEN", "ONESHOT_TEST_FLAG"):  # the recipe's env: sets them; monkeypatch restores them
        monkeypatch.setenv(name, "")
    recipe = make_recipe(
        hub_token=TOKEN, eval_max_new_tokens=64, env={"HF_TOKEN": ENV_TOKEN, "ONESHOT_TEST_FLAG": 1}
    )
    *_, parsed = parse_recipe([str(recipe), "--learning-rate", "1e-4", "--max_steps", "3"])
    text = parsed.effective_text()
    saved = yaml.safe_load(text)
    assert TOKEN not in text and ENV_TOKEN not in text and "hub_token" not in saved
    assert "hub_token, env.HF_TOKEN" in text  # says what was left out
    assert saved["eval_max_new_tokens"] == 64 and saved["env"] == {"ONESHOT_TEST_FLAG": "1"}
    assert (saved["learning_rate"], saved["max_steps"]) == (1e-4, 3)
    path = tmp_path / "saved.yaml"
    path.write_text(text)
    *configs, again = parse_recipe([str(path)])
    assert again.effective == {k: v for k, v in parsed.effective.items() if k != "hub_token"}
    assert doctor([str(path)]) == 0, capsys.readouterr().err  # issue 26: the saved recipe was refused


@pytest.mark.slow
def test_a_run_reruns_from_its_own_record(make_recipe, tmp_path):
    from safetensors.torch import load_file

    recipe = make_recipe(max_steps=1, save_steps=100)
    assert train.cli_main([str(recipe), "--learning_rate", "5e-3", "--max-steps", "2"]) == 0
    first = tmp_path / "run"
    saved = yaml.safe_load((first / "recipe.yaml").read_text())
    assert (saved["learning_rate"], saved["max_steps"]) == (5e-3, 2)  # the overrides, not the file's values
    again = tmp_path / "again"
    assert train.cli_main([str(first / "recipe.yaml"), "--output_dir", str(again)]) == 0
    resaved = yaml.safe_load((again / "recipe.yaml").read_text())
    assert {**resaved, "output_dir": str(first)} == saved
    state = [json.loads((d / "trainer_state.json").read_text())["global_step"] for d in (first, again)]
    assert state == [2, 2]
    a, b = (load_file(Path(d) / "model.safetensors") for d in (first, again))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), "the re-run trained other weights"
