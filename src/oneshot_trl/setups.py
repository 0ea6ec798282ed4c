"""The paper's setups in one table: official values per setup, and the architectures of the paper's models.

`PAPER_SETUPS` is what `oneshot-trl doctor` compares a recipe with (`paper_setup:` names the setup). Values are
recipe keys. The main run's values come from the official script `scripts/train/training_1.5b_pi1_r128.sh` and
verl 0.9's trainer defaults (One-Shot-RLVR's `verl/trainer/config/ppo_trainer.yaml`); the other setups change only what the paper says changes.

`KNOWN_ARCHITECTURES` holds the `config.json` values of the paper's models, so that parameter counts, memory
estimates and a random-init model of the real architecture (scripts/gpu_smoke.sh) need no Hub access.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The official 1-shot run (Qwen2.5-Math-1.5B on pi1), as recipe keys.
MAIN_RUN: dict[str, Any] = {
    "model_name_or_path": "Qwen/Qwen2.5-Math-1.5B",
    "train_examples": "pi1",
    "dataset_repeat_to": 128,  # pi1_r128.parquet
    "prompt_format": "chat",  # verl applies the tokenizer's chat template
    "max_prompt_length": 1024,
    "reward_funcs": ["accuracy"],
    "num_generations": 8,
    "max_completion_length": 3072,
    "temperature": 0.6,
    "top_p": 1.0,
    "top_k": 0,  # verl top_k -1 = off
    "beta": 0.001,  # kl_loss_coef, low_var_kl
    "use_bias_correction_kl": False,  # low_var_kl has no importance ratio on the KL (TRL's default multiplies by it)
    "kl_clamp": 10.0,  # low_var_kl clamps the per-token estimate to [-10, 10]
    "advantage_epsilon": 1e-6,  # compute_grpo_outcome_advantage: (r - mean) / (std + 1e-6)
    "entropy_coeff": 0.001,  # verl default, not overridden by the script
    "loss_type": "bnpo",  # token mean per micro-batch
    "scale_rewards": "group",
    "epsilon": 0.2,
    "num_iterations": 1,  # ppo_epochs
    "mask_truncated_completions": False,
    "vllm_importance_sampling_correction": False,
    "learning_rate": 1e-6,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "weight_decay": 0.01,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "max_grad_norm": 1.0,
    "max_steps": 2000,
    "save_steps": 20,
    "seed": 1,
}
# Batch shape of the official run (not single keys: per-device sizes depend on the GPU count).
OFFICIAL_PROMPTS_PER_STEP = (
    128  # data.train_batch_size = ppo_mini_batch_size: one optimizer step per generation
)
OFFICIAL_GPUS = 8


@dataclass(frozen=True)
class PaperSetup:
    target: str  # the paper's table/figure and row this setup reproduces, with its numbers
    changes: dict[str, Any] = field(default_factory=dict)  # official values that differ from MAIN_RUN
    source: str = "official script"  # where the values come from

    def values(self) -> dict[str, Any]:
        return {**MAIN_RUN, **self.changes}


_NOT_IN_REPO = "paper App. B.4 (steps, lengths) + the 1.5B script (no official script for this model)"
_DSR_SUB = {"train_examples": "dsr_sub", "dataset_repeat_to": None}

PAPER_SETUPS: dict[str, PaperSetup] = {
    "qwen2.5-math-1.5b/pi1": PaperSetup("Tab. 8 {pi1}: MATH500 72.8, avg 35.0"),
    "qwen2.5-math-1.5b/pi13": PaperSetup("Tab. 8 {pi13}: MATH500 73.6, avg 35.7", {"train_examples": "pi13"}),
    "qwen2.5-math-1.5b/pi1_pi13": PaperSetup(
        "Tab. 8 {pi1, pi13}: MATH500 74.8, avg 36.6", {"train_examples": "pi1_pi13"}
    ),
    "qwen2.5-math-1.5b/4-shot": PaperSetup(
        "Tab. 9 {pi1, pi2, pi13, pi1209}: MATH500 74.4 (best per benchmark), avg 36.0",
        {"train_examples": "pi1_pi2_pi13_pi1209"},
    ),
    "qwen2.5-math-1.5b/pi1209": PaperSetup(
        "Tab. 9 {pi1209}: MATH500 72.2 (best per benchmark), avg 33.5", {"train_examples": "pi1209"}
    ),
    "qwen2.5-math-1.5b/dsr_sub": PaperSetup(
        "Tab. 8 DSR-sub (1209): MATH500 73.6, avg 35.9", _DSR_SUB, "official script training_1.5b_dsr_sub.sh"
    ),
    "qwen2.5-math-1.5b/format-reward": PaperSetup(
        "Tab. 8 format reward (DSR-sub): MATH500 65.0, avg 28.7",
        {**_DSR_SUB, "reward_funcs": ["format"]},
        "paper §3.1 (format reward) + the DSR-sub script",
    ),
    "qwen2.5-math-1.5b/entropy-only": PaperSetup(
        "Tab. 13 entropy loss only, 20 steps: MATH500 63.4, avg 25.0 (Tab. 5 row 10)",
        {"reward_funcs": ["none"], "beta": 0.0, "weight_decay": 0.0, "max_steps": 20},
        "paper Tab. 5 row 10 (no policy loss, KL or weight decay) + Tab. 13 (20 steps)",
    ),
    "qwen2.5-math-1.5b/no-entropy": PaperSetup(
        "Tab. 14 {pi1} without entropy loss: MATH500 68.2, avg 32.6",
        {"entropy_coeff": 0.0},
        "paper Tab. 5/14",
    ),
    "qwen2.5-math-1.5b/ppo": PaperSetup(
        "Tab. 4 PPO {pi1}: MATH500 72.4, avg 33.8",
        # verl's PPO critic defaults (ppo_trainer.yaml of the official fork): gamma = lam = 1, critic lr 1e-5
        {"algorithm": "ppo", "critic_learning_rate": 1e-5, "cliprange_value": 0.5, "gamma": 1.0, "lam": 1.0},
        "paper Tab. 4; critic values are verl defaults (no official PPO script)",
    ),
    # Controls (not the paper's runs): pi1 and the official recipe, only the reward changes. The numbers are
    # Spurious Rewards' (arXiv 2506.10947, abstract), for Qwen2.5-Math-7B, 300 steps on DeepScaleR: theirs.
    "qwen2.5-math-1.5b/random-reward": PaperSetup(
        "control; Spurious Rewards (their 7B): random reward +21.4 MATH500 vs +29.1 ground truth",
        {"reward_funcs": ["random"]},
        "the pi1 script with reward_funcs: [random] (Spurious Rewards' Bernoulli(0.5))",
    ),
    "qwen2.5-math-1.5b/incorrect-reward": PaperSetup(
        "control; Spurious Rewards (their 7B): incorrect labels +24.1 MATH500 vs +29.1 ground truth",
        {"reward_funcs": ["incorrect"]},
        "the pi1 script with reward_funcs: [incorrect] (default wrong label 16)",
    ),
    "qwen2.5-math-1.5b/majority": PaperSetup(
        "control; Spurious Rewards (their 7B): majority vote +27.1 MATH500 vs +29.1 ground truth (TTRL's reward)",
        {"reward_funcs": ["majority"]},
        "the pi1 script with reward_funcs: [majority] (TTRL, arXiv 2504.16084)",
    ),
    "llama-3.2-3b-instruct/random-reward": PaperSetup(
        "control; Spurious Rewards: random reward gives Llama3 models no gain (their Llama3.1-8B-Instruct)",
        {
            "model_name_or_path": "meta-llama/Llama-3.2-3B-Instruct",
            "max_steps": 1000,
            "reward_funcs": ["random"],
        },
        _NOT_IN_REPO + ", reward_funcs: [random]",
    ),
    "qwen2.5-math-7b/pi1": PaperSetup(
        "Tab. 4 Qwen2.5-Math-7B {pi1}: MATH500 79.2, avg 40.2",
        {"model_name_or_path": "Qwen/Qwen2.5-Math-7B", "max_steps": 1000},
        _NOT_IN_REPO,
    ),
    "llama-3.2-3b-instruct/pi1": PaperSetup(
        "Tab. 4 Llama-3.2-3B-Instruct {pi1}: MATH500 45.8, avg 19.0",
        {"model_name_or_path": "meta-llama/Llama-3.2-3B-Instruct", "max_steps": 1000},
        _NOT_IN_REPO,
    ),
    "r1-distill-qwen-1.5b/pi1": PaperSetup(
        "Tab. 12 {pi1}, 8k training: MATH500 80.5, avg 42.3 (8k eval); 83.9 / 46.3 (32k eval, Tab. 4)",
        {
            "model_name_or_path": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            "max_completion_length": 8192,
            "max_steps": 1200,
        },
        _NOT_IN_REPO,
    ),
}

_QWEN2_15B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_act": "silu",
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_attention_heads": 12,
    "num_hidden_layers": 28,
    "num_key_value_heads": 2,
    "max_window_layers": 21,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "use_sliding_window": False,
    "vocab_size": 151936,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}

# config.json values of the paper's models (the fields that determine shapes and sizes).
KNOWN_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-Math-1.5B": {**_QWEN2_15B, "max_position_embeddings": 4096, "tie_word_embeddings": True},
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": {
        **_QWEN2_15B,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
        "bos_token_id": 151646,
    },
    "Qwen/Qwen2.5-Math-7B": {
        **_QWEN2_15B,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
        "vocab_size": 152064,
    },
    "meta-llama/Llama-3.2-3B-Instruct": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_attention_heads": 24,
        "num_hidden_layers": 28,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "tie_word_embeddings": True,
        "vocab_size": 128256,
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
    },
}


def known_setup_names() -> str:
    return ", ".join(PAPER_SETUPS)
