"""OneShotPPOTrainer: GAE, whitening and both losses by hand, the critic learning, checkpoints, and PPO learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from support import ENV
from transformers import AutoModelForCausalLM, AutoTokenizer

from oneshot_trl.config import OneShotGRPOConfig, OneShotPPOConfig
from oneshot_trl.ppo import (
    CRITIC_DIR,
    OneShotPPOTrainer,
    clipped_value_loss,
    compute_gae,
    masked_whiten,
    token_level_rewards,
)
from oneshot_trl.recipe import RecipeError, load_recipe, parse_recipe
from oneshot_trl.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
TEMPERATURE = 0.7


# -- the algorithm against hand computations -------------------------------------------------------------------
def test_reward_goes_on_the_last_completion_token():
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    out = token_level_rewards(torch.tensor([1.0, 0.5, 1.0]), mask)
    assert out.tolist() == [[0.0, 0.0, 1.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]  # all-masked row: nowhere


def test_gae_matches_a_hand_computation():
    gamma, lam = 0.9, 0.8
    v = [[0.2, -0.1, 0.4], [0.3, 0.6, 9.0]]  # row 2: the last position is padding, its value must be ignored
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.5, 0.0]])
    advantages, returns = compute_gae(rewards, torch.tensor(v), mask, gamma, lam)

    # Row 1: A2 = r - V2; A1 = gamma V2 - V1 + gamma lam A2; A0 = gamma V1 - V0 + gamma lam A1.
    a2 = 1.0 - 0.4
    a1 = gamma * 0.4 - (-0.1) + gamma * lam * a2
    a0 = gamma * (-0.1) - 0.2 + gamma * lam * a1
    # Row 2 ends at t=1: nothing is bootstrapped from the padding position.
    b1 = 0.5 - 0.6
    b0 = gamma * 0.6 - 0.3 + gamma * lam * b1
    torch.testing.assert_close(advantages[0], torch.tensor([a0, a1, a2]))
    torch.testing.assert_close(advantages[1, :2], torch.tensor([b0, b1]))
    torch.testing.assert_close(returns[0], torch.tensor([a0 + 0.2, a1 - 0.1, a2 + 0.4]))
    torch.testing.assert_close(returns[1, :2], torch.tensor([b0 + 0.3, b1 + 0.6]))


def test_gae_with_verl_defaults_is_reward_minus_value():
    """gamma = lam = 1 (the official defaults): A_t = R - V_t and the return of every token is R."""
    values = torch.tensor([[0.1, 0.7, -0.3, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    advantages, returns = compute_gae(token_level_rewards(torch.tensor([1.0]), mask), values, mask, 1.0, 1.0)
    torch.testing.assert_close(advantages[0, :3], 1.0 - values[0, :3])
    torch.testing.assert_close(returns[0, :3], torch.ones(3))


def test_whitening_uses_masked_mean_and_unbiased_variance():
    x = torch.tensor([[1.0, 2.0, 4.0], [3.0, 100.0, -50.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    kept = torch.tensor([1.0, 2.0, 4.0, 3.0])
    expected = (kept - kept.mean()) / torch.sqrt(kept.var(unbiased=True) + 1e-8)
    out = masked_whiten(x, mask)
    torch.testing.assert_close(out[mask.bool()], expected)
    assert out[~mask.bool()].eq(0).all()
    # Summed over "processes": two halves whitened together equal the whole batch whitened at once.
    doubled = masked_whiten(x, mask, sum_over_processes=lambda t: 2 * t)
    both = torch.cat([kept, kept])
    torch.testing.assert_close(doubled[mask.bool()], (kept - both.mean()) / torch.sqrt(both.var() + 1e-8))


def test_value_loss_clips_against_the_rollout_values():
    vpreds = torch.tensor([[1.0, 0.0, 2.0]])
    old = torch.tensor([[0.0, 0.0, 0.0]])
    returns = torch.tensor([[1.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss, clipfrac = clipped_value_loss(vpreds, old, returns, mask, cliprange=0.5)
    # token 0: unclipped (1-1)^2 = 0, clipped (0.5-1)^2 = 0.25 -> max 0.25; token 1: both 1.0; token 2 masked
    torch.testing.assert_close(loss, torch.tensor(0.5 * (0.25 + 1.0) / 2))
    torch.testing.assert_close(clipfrac, torch.tensor(0.5))


# -- the trainer's losses on a tiny model ---------------------------------------------------------------------
def ppo_args(tmp_path, **overrides) -> OneShotPPOConfig:
    values = dict(
        output_dir=str(tmp_path / "run"),
        beta=0.0,
        entropy_coeff=0.0,
        loss_type="bnpo",
        temperature=TEMPERATURE,
        num_generations=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        critic_learning_rate=1e-3,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    return OneShotPPOConfig(**{**values, **overrides})


def constant_reward(completions, **kwargs):
    return [1.0] * len(completions)


def make_trainer(model_dir, args, reward=constant_reward, rows=2) -> OneShotPPOTrainer:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = Dataset.from_list([{"prompt": "What is 1+1?"}] * rows)
    return OneShotPPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        reward_funcs=reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )


def test_policy_and_value_losses_match_a_hand_computation(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, ppo_args(tmp_path))
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; one micro-batch here
    trainer.model.train()
    g = torch.Generator().manual_seed(0)
    inputs = {
        "prompt_ids": torch.randint(3, 200, (2, 3), generator=g),
        "prompt_mask": torch.ones(2, 3, dtype=torch.long),
        "completion_ids": torch.randint(3, 200, (2, 4), generator=g),
        "completion_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),
        "advantages": torch.tensor([[1.0, -0.5, 2.0, 0.3], [-1.0, 0.7, 0.0, 0.0]]),  # one per token
        "values": torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.0, -0.2, 0.0, 0.0]]),
        "returns": torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]),
        "num_items_in_batch": torch.tensor(6),
    }
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = inputs["completion_mask"].float()
    with torch.no_grad():
        logits = trainer.model(input_ids=ids).logits[:, 2:-1] / TEMPERATURE  # positions predicting completion
        logp = torch.log_softmax(logits, -1).gather(-1, inputs["completion_ids"][..., None]).squeeze(-1)
        vpreds = trainer.critic(input_ids=ids).logits[:, 2:-1, 0]
    # Rollout log-probs that put some ratios outside [1 - 0.2, 1 + 0.2], so clipping is exercised.
    inputs["old_per_token_logps"] = logp + torch.tensor([[0.5, -0.5, 0.1, -0.3], [0.4, -0.05, 0.0, 0.0]])

    ratio = torch.exp(logp - inputs["old_per_token_logps"])
    a = inputs["advantages"]
    pg = torch.max(-a * ratio, -a * ratio.clamp(0.8, 1.2))
    expected_policy = (pg * mask).sum() / mask.sum()  # verl compute_policy_loss: token mean
    clipped = inputs["values"] + (vpreds - inputs["values"]).clamp(-0.5, 0.5)
    vf = torch.max((vpreds - inputs["returns"]) ** 2, (clipped - inputs["returns"]) ** 2)
    expected_value = 0.5 * (vf * mask).sum() / mask.sum()

    critic_before = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    loss = trainer.compute_loss(trainer.model, inputs)
    torch.testing.assert_close(loss, expected_policy, rtol=1e-5, atol=1e-6)
    assert trainer._metrics["train"]["clip_ratio/region_mean"][-1] > 0  # the clip did bite
    torch.testing.assert_close(
        trainer._metrics["train"]["critic/vf_loss"][-1], expected_value.item(), rtol=1e-5, atol=1e-6
    )
    changed = [k for k, v in trainer.critic.state_dict().items() if not torch.equal(v, critic_before[k])]
    assert "score.weight" in changed and any(k.startswith("model.layers") for k in changed)


# -- training ------------------------------------------------------------------------------------------------------
def test_critic_learns_a_fixed_reward_while_warmup_holds_the_policy(tiny_model_dir, tmp_path):
    args = ppo_args(
        tmp_path,
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=6,
        temperature=1.0,
        learning_rate=1e-2,
        weight_decay=0.0,
        critic_warmup=100,  # longer than the run: only the critic learns
        max_steps=15,
    )
    trainer = make_trainer(tiny_model_dir, args, rows=4 * 15)
    policy_before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    vf_loss = [row["critic/vf_loss"] for row in trainer.state.log_history if "critic/vf_loss" in row]
    assert len(vf_loss) == 15
    first, last = sum(vf_loss[:3]) / 3, sum(vf_loss[-3:]) / 3
    assert last < 0.2 * first, f"value loss did not fall on a constant reward: {vf_loss}"
    returns = [
        row["critic/returns/mean"] for row in trainer.state.log_history if "critic/returns/mean" in row
    ]
    assert all(abs(r - 1.0) < 1e-5 for r in returns)  # gamma = lam = 1: every token's return is the reward
    assert all(torch.equal(v, policy_before[k]) for k, v in trainer.model.state_dict().items())


def digit_fraction(completions, **kwargs):
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in texts]


def test_ppo_with_one_completion_per_prompt_learns_a_simple_reward(tiny_model_dir, tmp_path):
    """reward = share of digits in the completion: from ~5% on the random model to most of the completion."""
    steps = 30
    args = ppo_args(
        tmp_path,
        num_generations=1,  # no groups: the critic is the baseline
        per_device_train_batch_size=16,
        max_completion_length=8,
        temperature=1.0,
        learning_rate=1e-2,
        max_steps=steps,
    )
    assert args.num_generations == 1
    trainer = make_trainer(tiny_model_dir, args, reward=digit_fraction, rows=16 * steps)
    trainer.train()
    rewards = [row["reward"] for row in trainer.state.log_history if "reward" in row]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert first < 0.2 and last > 0.6, f"PPO did not raise the reward: {rewards}"


# -- the entry point: recipes, checkpoints, resume ------------------------------------------------------------
def test_checkpoint_holds_the_critic_and_resume_restores_it(make_recipe, monkeypatch):
    recipe = make_recipe(algorithm="ppo", critic_learning_rate=1e-3, max_steps=2, save_steps=2)
    trainer = train_main(*parse_recipe([str(recipe)]))
    assert isinstance(trainer, OneShotPPOTrainer)
    out = Path(load_recipe(recipe)["output_dir"])
    critic_dir = out / "checkpoint-2" / CRITIC_DIR
    for name in ("config.json", "model.safetensors", "optimizer.pt"):
        assert (critic_dir / name).is_file(), name
    saved = load_file(critic_dir / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in trainer.critic.state_dict().items())
    assert json.loads((out / "oneshot_run.json").read_text())["algorithm"] == "ppo"

    restored = {}
    load = OneShotPPOTrainer.load_critic_checkpoint

    def spy(self, checkpoint):
        load(self, checkpoint)
        restored.update({k: v.clone() for k, v in self.critic.state_dict().items()})

    monkeypatch.setattr(OneShotPPOTrainer, "load_critic_checkpoint", spy)
    resumed = train_main(
        *parse_recipe(
            [str(recipe), "--resume_from_checkpoint", str(out / "checkpoint-2"), "--max_steps", "3"]
        )
    )
    # The critic starts step 3 as saved (not re-initialized from the policy) ...
    assert restored.keys() == saved.keys() and all(torch.equal(saved[k], v) for k, v in restored.items())
    # ... and its optimizer continues: Adam's step count is 2 + 1, not a fresh 1.
    steps = {int(s["step"]) for s in resumed.critic_optimizer.state_dict()["state"].values()}
    assert steps == {3}


def test_resuming_a_grpo_checkpoint_as_ppo_is_a_clear_error(make_recipe, tmp_path):
    recipe = make_recipe(max_steps=1, save_steps=1)
    train_main(*parse_recipe([str(recipe)]))
    checkpoint = tmp_path / "run" / "checkpoint-1"
    with pytest.raises(FileNotFoundError, match="not a PPO checkpoint"):
        train_main(
            *parse_recipe(  # max_steps 2: resuming a run at its max_steps is a no-op (resume.RunFinished)
                [
                    str(recipe),
                    "--algorithm",
                    "ppo",
                    "--resume_from_checkpoint",
                    str(checkpoint),
                    "--max_steps",
                    "2",
                ]
            )
        )


def test_ppo_recipe_parses_with_the_official_defaults():
    script_args, training_args, model_args, _ = parse_recipe(
        [str(REPO / "recipes/qwen15b-ppo.yaml"), "--use_cpu", "true"]
    )
    assert script_args.algorithm == "ppo" and isinstance(training_args, OneShotPPOConfig)
    assert (training_args.critic_learning_rate, training_args.cliprange_value) == (1e-5, 0.5)
    assert (training_args.gamma, training_args.lam, training_args.critic_warmup) == (1.0, 1.0, 0)
    assert (training_args.learning_rate, training_args.beta, training_args.entropy_coef) == (
        1e-6,
        0.001,
        0.001,
    )
    assert model_args.model_name_or_path == "Qwen/Qwen2.5-Math-1.5B"


def test_ppo_keys_need_algorithm_ppo(make_recipe):
    recipe = make_recipe(gamma=0.99)
    with pytest.raises(RecipeError, match=r"'gamma' is a PPO setting; it needs `algorithm: ppo`"):
        parse_recipe([str(recipe)])
    with pytest.raises(RecipeError, match="unknown key 'lamda'.*lam"):
        parse_recipe([str(make_recipe(name="r2.yaml", algorithm="ppo", lamda=0.9))])
    with pytest.raises(RecipeError, match="'algorithm' is 'dpo'"):
        parse_recipe([str(make_recipe(name="r3.yaml", algorithm="dpo"))])
    # the flag switches the config class too
    _, training_args, _, _ = parse_recipe([str(recipe), "--algorithm", "ppo"])
    assert isinstance(training_args, OneShotPPOConfig) and training_args.gamma == 0.99


def test_one_completion_per_prompt_is_ppo_only(tmp_path):
    common = dict(output_dir=str(tmp_path), num_generations=1, per_device_train_batch_size=4, use_cpu=True)
    assert OneShotPPOConfig(**common).num_generations == 1
    with pytest.raises(ValueError, match="at least 2 generations"):
        OneShotGRPOConfig(**common)
    with pytest.raises(ValueError, match=r"lam is 1.5; it must be <= 1"):
        OneShotPPOConfig(**{**common, "lam": 1.5})


RANK_SCRIPT = """
import hashlib, sys
from oneshot_trl.recipe import parse_recipe
from oneshot_trl.train import main
trainer = main(*parse_recipe(sys.argv[1:]))
digest = hashlib.sha1(b"".join(p.detach().float().numpy().tobytes() for p in trainer.critic.parameters()))
open(f"critic-rank{trainer.accelerator.process_index}.sha1", "w").write(digest.hexdigest())
"""


@pytest.mark.slow
def test_two_processes_keep_one_critic(make_recipe, tmp_path):
    """`accelerate launch` with 2 processes (the DDP config, on CPU): the replicated critic stays identical.

    The critic is a plain module on every process (also under ZeRO-3): same start (broadcast from rank 0), gradients
    averaged by hand. A ZeRO-3 launch of the same script passes as well, but DeepSpeed's JIT build costs minutes.
    """
    import subprocess
    import sys

    recipe = make_recipe(algorithm="ppo", critic_learning_rate=1e-3, max_steps=2, save_steps=2)
    (tmp_path / "rank_critic.py").write_text(RANK_SCRIPT)
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "accelerate_configs/ddp.yaml"),
        "--num_processes", "2",
        "rank_critic.py", str(recipe),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    digests = {(tmp_path / f"critic-rank{rank}.sha1").read_text() for rank in (0, 1)}
    assert len(digests) == 1, "the two processes' critics diverged"
    assert (tmp_path / "run" / "checkpoint-2" / CRITIC_DIR / "model.safetensors").is_file()


@pytest.mark.slow
def test_ppo_improves_the_lab_model_on_its_one_example(ci_base, tmp_path):
    """The lab's demo recipe (1-shot "What is 37+48?", accuracy reward) with `algorithm: ppo`: the reward rises."""
    import yaml

    from oneshot_trl.lab.runs import RLRunConfig, recipe_for

    recipe = recipe_for(RLRunConfig(steps=20, learning_rate=1e-4), str(ci_base), tmp_path / "run")
    del recipe["scale_rewards"]  # GRPO's reward normalization; PPO's baseline is the critic
    recipe.update(algorithm="ppo", critic_learning_rate=1e-4, disable_tqdm=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    trainer = train_main(*parse_recipe([str(path)]))
    rewards = [row["reward"] for row in trainer.state.log_history if "reward" in row]
    assert len(rewards) == 20
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.2, f"PPO did not raise the reward on the lab example: {rewards}"
