"""Configuration dataclasses: what a recipe's keys are (`oneshot_trl.recipe` reads and validates recipe files).

A recipe is a flat YAML file whose keys are exactly the fields of three dataclasses (open-r1 style):
`OneShotArguments` (what to train on, how to reward it), `OneShotGRPOConfig` (TRL's `GRPOConfig` plus
the paper's verl-named entropy coefficient) and TRL's `ModelConfig`. With `algorithm: ppo` the second one is
`OneShotPPOConfig` (the same fields plus the critic's).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from trl import GRPOConfig

from oneshot_trl.prompts import TRAIN_PROMPT_SUFFIX
from oneshot_trl.retention import check_retention_keys, default_metrics, evaluated_benchmarks
from oneshot_trl.rewards import ACCURACY, check_reward_funcs
from oneshot_trl.validate import (
    COUNT,
    FRACTION,
    FRACTION_ABOVE_ZERO,
    NON_NEGATIVE,
    POSITIVE,
    Range,
    check_choice,
    check_number,
)

logger = logging.getLogger(__name__)

BUNDLED_SETS = ("pi1", "pi2", "pi13", "pi1209", "pi1_pi13", "pi1_pi2_pi13_pi1209", "dsr_sub")
ALGORITHMS = ("grpo", "ppo")
PROMPT_FORMATS = ("auto", "chat", "plain")


def check_field_rules(config: Any) -> None:
    """Every field of `config` in its declared range and choices: a field's own `metadata` ("range": a `Range`,
    "choices": the allowed values), or for a field inherited from TRL, its class's `TRL_FIELD_RULES`. The first
    thing each config's `__post_init__` does, so every way of building a config (recipe, lab, bench, a test) is
    checked alike; FieldError names the field."""
    inherited = getattr(type(config), "TRL_FIELD_RULES", {})
    for f in dataclasses.fields(config):
        value = getattr(config, f.name, None)
        if "choices" in f.metadata:
            check_choice(f.name, value, f.metadata["choices"])
        check_number(f.name, value, f.metadata.get("range", inherited.get(f.name)))


@dataclass
class OneShotArguments:
    """What to train on and how to reward it. Exactly one source of training examples must be set."""

    # --- Training examples (choose one source) ---
    train_examples: str | None = field(
        default=None,
        metadata={
            "choices": BUNDLED_SETS,
            "help": "A bundled example set: pi1, pi2, pi13, pi1209 (one example each), pi1_pi13 (2-shot), "
            "pi1_pi2_pi13_pi1209 (4-shot) or dsr_sub (the 1,209-example set). Rows come from the official files.",
        },
    )
    dsr_sub_index: list[int] | None = field(
        default=None, metadata={"help": "Train on these DSR-sub rows, by index (pi1 is index 124)."}
    )
    pi_rank: list[int] | None = field(
        default=None,
        metadata={
            "help": "Train on these examples by historical-variance rank (1 = pi1, 13 = pi13, 1209 = pi1209)."
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub dataset id, a local JSON/JSONL/Parquet file, or a local dataset directory. Rows are "
            "picked with `dataset_ids`; the problem and gold answer come from `problem_field` and `answer_field` "
            "(verl-format rows with `prompt`/`reward_model` are read as well)."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset configuration name."})
    dataset_split: str = field(default="train", metadata={"help": "Dataset split to read."})
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub revision (branch, tag or sha)."}
    )
    dataset_ids: list[str] | None = field(
        default=None,
        metadata={
            "help": "Row ids to train on: values of `id_field`, or row numbers when `id_field` is not set. "
            "Empty: every row of the split."
        },
    )
    id_field: str | None = field(
        default=None, metadata={"help": "Column holding row ids (default: row numbers)."}
    )
    problem_field: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_field: str = field(default="answer", metadata={"help": "Column holding the gold answer."})
    problem: str | None = field(
        default=None, metadata={"help": "One inline training problem (with `answer`)."}
    )
    answer: str | None = field(default=None, metadata={"help": "Gold answer of the inline `problem`."})

    # --- How the examples become a dataset ---
    dataset_repeat_to: int | None = field(
        default=128,
        metadata={
            "range": COUNT,
            "help": "Repeat the selected examples, in blocks as the official files do, to this many rows. The paper "
            "uses 128 = prompts per step, so one step sees every copy once. null: no repetition (e.g. dsr_sub).",
        },
    )
    prompt_format: str = field(
        default="auto",
        metadata={
            "choices": PROMPT_FORMATS,
            "help": "`chat`: conversational prompt rendered with the tokenizer's chat template, as the official verl "
            "code does for every model (Qwen2.5-Math's template adds its default system prompt). `plain`: the raw "
            "text. `auto`: chat when the tokenizer has a chat template.",
        },
    )
    prompt_suffix: str = field(
        default=TRAIN_PROMPT_SUFFIX,
        metadata={"help": "Appended to every training problem (the official training prompt)."},
    )
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "Optional system message (chat format only). Default: the template's own."},
    )
    skip_unparseable_golds: bool = field(
        default=False,
        metadata={
            "help": "Drop examples whose gold answer the grader cannot parse (DSR-sub has 3) instead of stopping "
            "with an error. Either way they are never trained on with an always-zero reward."
        },
    )
    max_prompt_length: int | None = field(
        default=1024,
        metadata={
            "range": COUNT,
            "help": "Longest allowed prompt in tokens (official: 1024); a longer one is an error at load time.",
        },
    )

    # --- Algorithm ---
    algorithm: str = field(
        default="grpo",
        metadata={
            "choices": ALGORITHMS,
            "help": "`grpo` (the paper's default: OneShotGRPOTrainer) or `ppo` (a critic and GAE: OneShotPPOTrainer; "
            "its extra settings are the fields of OneShotPPOConfig).",
        },
    )

    # --- Reward ---
    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Rewards, as TRL's grpo script takes them: registry names (oneshot_trl.rewards.REWARDS) or dotted "
            "import paths (my_pkg.rewards.length_penalty), weighted by `reward_weights` (default 1 each). "
            "`accuracy`: 1 if the last \\boxed{} answer equals the gold (math-verify), else 0 (the paper). "
            "`format`: 1 for any non-empty \\boxed{} answer. `none`: 0 always (entropy-only training). "
            "Controls (is the gain from the gold label at all?): `random`: Bernoulli(random_reward_p) per completion, "
            "seeded by `seed` (Spurious Rewards, arXiv 2506.10947); `incorrect`: 1 if the answer equals a wrong "
            "label (incorrect_answer), graded like accuracy (same paper); `majority`: 1 if the answer equals its "
            "group's most common answer, no gold used (TTRL, arXiv 2504.16084). "
            "Accuracy against the gold is computed and logged in every run. Default: [accuracy]."
        },
    )
    reward: str | None = field(
        default=None,
        metadata={"help": "Deprecated: `reward: NAME` is `reward_funcs: [NAME]`."},
    )
    random_reward_p: float = field(
        default=0.5,
        metadata={
            "range": FRACTION,
            "help": "The `random` reward: probability that a completion gets reward 1, whatever its text.",
        },
    )
    incorrect_answer: str | None = field(
        default=None,
        metadata={
            "help": "The `incorrect` reward: the wrong label every example is rewarded for. Null: the documented "
            "default wrong label of each bundled pi example (rewards.DEFAULT_INCORRECT_ANSWERS: pi1 16, pi2 12, "
            "pi13 -4/3, pi1209 2023/2024); other examples then need this set."
        },
    )
    grader: str = field(
        default="math-verify",
        metadata={
            "help": "Answer checker for the accuracy reward: `math-verify` or `official` (Qwen2.5-Math rules)."
        },
    )
    reward_timeout_s: float = field(
        default=5.0,
        metadata={
            "range": POSITIVE,
            "help": "Wall-clock limit per graded answer; a slower answer is graded wrong.",
        },
    )

    # --- Benchmarks during training (the post-saturation curve) ---
    eval_benchmarks: list[str] | None = field(
        default=None,
        metadata={
            "help": "Benchmarks to evaluate at every saved checkpoint (e.g. [math500]), with `oneshot-trl eval`'s "
            "code and the training's own generator (its vLLM engine with use_vllm, else the policy), the problems "
            "shared by all processes; results go to output_dir/eval/step-NNNNNN/ and onto the checkpoint's Hub "
            "branch. Empty: none."
        },
    )
    eval_dataset: str | None = field(
        default=None,
        metadata={
            "help": "A dataset evaluated at every saved checkpoint besides `eval_benchmarks` (local JSON/JSONL/"
            "Parquet file, `save_to_disk` folder or Hub id; fields as `oneshot-trl eval --dataset`)."
        },
    )
    eval_protocol: str = field(
        default="one-shot-rlvr", metadata={"help": "Protocol of the in-training evals."}
    )
    eval_template: str | None = field(
        default=None,
        metadata={
            "help": "Override the protocol's prompt template (e.g. `chat-boxed`: the training prompt)."
        },
    )
    eval_limit: int | None = field(
        default=None,
        metadata={
            "range": COUNT,
            "help": "Evaluate only the first N problems of each benchmark (quick curves).",
        },
    )
    eval_max_new_tokens: int | None = field(
        default=None,
        metadata={
            "range": COUNT,
            "help": "Override the protocol's generation length (changes the protocol hash).",
        },
    )
    eval_before_training: bool = field(
        default=True,
        metadata={"help": "Also evaluate the base model as step 0 (the official val_before_train)."},
    )
    eval_full_benchmarks: list[str] | None = field(
        default=None,
        metadata={
            "help": "Benchmarks evaluated besides `eval_benchmarks` at the base model and every `eval_full_steps` "
            "steps (e.g. the paper's six: its best-average checkpoint needs them all at one step). Empty: none."
        },
    )
    eval_full_steps: int | None = field(
        default=None,
        metadata={"range": COUNT, "help": "`eval_full_benchmarks` every N steps (a multiple of save_steps)."},
    )

    # --- Checkpoint retention (oneshot_trl.retention) ---
    keep_last_checkpoints: int | None = field(
        default=None,
        metadata={
            "range": COUNT,
            "help": "Keep the newest N checkpoints plus the best ones (`keep_best_checkpoints`); older ones are "
            "deleted after their eval (and, with push_to_hub, their upload). Replaces save_total_limit, which "
            "deletes the oldest whatever their eval: set that to null. null: keep every checkpoint.",
        },
    )
    keep_best_checkpoints: int = field(
        default=0,
        metadata={
            "range": NON_NEGATIVE,
            "help": "Also keep the best K checkpoints by each of `keep_best_metrics` (in-training evals).",
        },
    )
    keep_best_metrics: list[str] | None = field(
        default=None,
        metadata={
            "help": "In-training eval metrics that rank checkpoints, higher is better: eval/<benchmark> or "
            "eval/average (the six-benchmark average, only at steps that evaluated all six). Default: "
            "[eval/average] when the six are evaluated, else eval/<first benchmark>."
        },
    )

    # --- Provenance ---
    paper_setup: str | None = field(
        default=None,
        metadata={
            "help": "The paper setup this recipe reproduces (a name in oneshot_trl.setups.PAPER_SETUPS, e.g. "
            "qwen2.5-math-1.5b/pi1). `oneshot-trl doctor` lists every value that differs from that setup's official "
            "values; training only records it."
        },
    )

    # --- Diagnostics written during training ---
    completions_per_step: int = field(
        default=16,
        metadata={
            "range": NON_NEGATIVE,
            "help": "Completions per step written to `completions.jsonl` (0: none).",
        },
    )

    def __post_init__(self) -> None:
        check_field_rules(self)
        sources = {
            "train_examples": self.train_examples,
            "dsr_sub_index": self.dsr_sub_index,
            "pi_rank": self.pi_rank,
            "dataset_name": self.dataset_name,
            "problem": self.problem,
        }
        chosen = [k for k, v in sources.items() if v not in (None, [], "")]
        if len(chosen) != 1:
            raise ValueError(
                "Set exactly one source of training examples: train_examples, dsr_sub_index, pi_rank, dataset_name "
                f"or problem (+ answer). Got: {chosen or 'none'}."
            )
        if (self.problem is None) != (self.answer is None):
            raise ValueError("An inline training example needs both `problem` and `answer`.")
        if self.reward is not None:  # the pre-registry key: one name
            if self.reward_funcs is not None:
                raise ValueError("Set reward_funcs only: reward is its deprecated one-name form.")
            logger.warning(
                "`reward: %s` is deprecated: write `reward_funcs: [%s]`.", self.reward, self.reward
            )
            self.reward_funcs = [self.reward]
        if self.reward_funcs is None:
            self.reward_funcs = [ACCURACY]
        check_reward_funcs(self.reward_funcs)  # names and import paths; weights: recipe.build_configs
        check_retention_keys(self)

    @property
    def ranking_metrics(self) -> list[str]:
        """The metrics that rank checkpoints for retention: `keep_best_metrics`, or its default."""
        return list(self.keep_best_metrics or default_metrics(evaluated_benchmarks(self)))


@dataclass
class OneShotGRPOConfig(GRPOConfig):
    """TRL's `GRPOConfig` plus the paper's verl-named entropy coefficient.

    TRL 1.16 already implements the paper's entropy term: `loss = policy_loss - entropy_coef * H`, with H the mean
    per-token entropy of the temperature-scaled policy over completion tokens of a micro-batch, which is verl's
    `pg_loss - entropy_coeff * masked_mean(entropy)`. `entropy_coeff` only gives it the paper's name.
    `kl_clamp` and `advantage_epsilon` are verl's values where TRL hard-codes its own (see update_rule.py).
    """

    # Ranges of the fields inherited from TRL's GRPOConfig (ours declare theirs in their metadata): values that
    # TRL accepts but that train something else than asked, silently (transformers reads max_steps <= 0 as "use
    # num_train_epochs": 0 trained a step, -5 a whole epoch).
    TRL_FIELD_RULES: ClassVar[dict[str, Range]] = {
        "max_steps": Range(1, also=(-1,), note=" (or -1: train for num_train_epochs)"),
        "num_train_epochs": POSITIVE,
        "per_device_train_batch_size": COUNT,
        "per_device_eval_batch_size": COUNT,
        "gradient_accumulation_steps": COUNT,
        "num_generations": COUNT,
        "num_iterations": COUNT,
        "steps_per_generation": COUNT,
        "generation_batch_size": COUNT,
        "max_completion_length": COUNT,
        "vllm_tensor_parallel_size": COUNT,
        "save_steps": POSITIVE,
        "logging_steps": POSITIVE,
        "save_total_limit": COUNT,
        "seed": NON_NEGATIVE,
        "learning_rate": NON_NEGATIVE,
        "weight_decay": NON_NEGATIVE,
        "beta": NON_NEGATIVE,
        "warmup_steps": NON_NEGATIVE,
        "max_grad_norm": NON_NEGATIVE,
        "temperature": POSITIVE,
        "top_p": FRACTION_ABOVE_ZERO,
        "vllm_gpu_memory_utilization": FRACTION_ABOVE_ZERO,
    }

    entropy_coeff: float | None = field(
        default=None,
        metadata={
            "sets": "entropy_coef",  # the TRL field that holds its value (doctor shows that one)
            "help": "Entropy bonus with the paper's (verl) meaning: loss = policy loss - entropy_coeff * mean token "
            "entropy. The official run uses 0.001; 0 turns it off. Sets TRL's `entropy_coef`; leave that one unset.",
        },
    )
    kl_clamp: float | None = field(
        default=10.0,
        metadata={
            "range": POSITIVE,
            "help": "Clamp each token's k3 KL estimate to [-kl_clamp, kl_clamp], as verl's low_var_kl does (10, "
            "hard-coded there): a clamped token adds a constant and no gradient. Applies with "
            "use_bias_correction_kl: false (verl's KL). null: TRL's unclamped k3.",
        },
    )
    advantage_epsilon: float = field(
        default=1e-6,
        metadata={
            "range": POSITIVE,
            "help": "GRPO advantage = (r - mean) / (std + advantage_epsilon) with scale_rewards group or batch: "
            "verl's 1e-6 (TRL hard-codes 1e-4).",
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start a fresh run in an output_dir that holds another run's checkpoints, deleting them (else "
            "refused: a later resume would pick the old run's newest checkpoint). Not needed to resume."
        },
    )
    resume_inexact: bool = field(
        default=False,
        metadata={
            "help": "Resume from a checkpoint that lacks what an exact resume needs (optimizer.pt, scheduler.pt, "
            "rng_state*.pth: e.g. saved with save_only_model): Adam's moments and the sampling RNG restart, so the "
            "run differs from an uninterrupted one. Without it such a resume is refused, naming what is missing."
        },
    )

    def __post_init__(self) -> None:
        check_field_rules(self)
        if self.entropy_coeff is not None:
            if self.entropy_coef not in (0.0, self.entropy_coeff):
                raise ValueError(
                    f"entropy_coeff ({self.entropy_coeff}) and TRL's entropy_coef ({self.entropy_coef}) are both set "
                    "and differ. They are the same coefficient: set only entropy_coeff."
                )
            self.entropy_coef = self.entropy_coeff
        super().__post_init__()


@dataclass
class OneShotPPOConfig(OneShotGRPOConfig):
    """`OneShotGRPOConfig` plus the critic of PPO (verl's `algorithm.adv_estimator=gae`), for `OneShotPPOTrainer`.

    Defaults are verl's (`verl/trainer/config/ppo_trainer.yaml` of the official code): critic lr 1e-5 constant,
    `cliprange_value` 0.5, `gamma` = `lam` = 1.0, `critic_warmup` 0. The critic shares the policy's optimizer
    settings that verl sets alike for both (AdamW betas/eps, `weight_decay`, `max_grad_norm`) and
    `gradient_checkpointing`. Generation, clipping (`epsilon`), KL (`beta`), entropy and `loss_type` act on the
    policy as in GRPO; the GRPO-only reward normalization (`scale_rewards`, `multi_objective_aggregation`) is
    unused: the critic is the baseline. No `vf_coef`: the critic has its own optimizer (verl has none either).
    """

    critic_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Weights the critic starts from (a causal LM checkpoint; a scalar value head is added). Default: "
            "the policy's, as verl does (critic.model.path = the actor's path)."
        },
    )
    critic_learning_rate: float = field(
        default=1.0e-5,
        metadata={"range": POSITIVE, "help": "Critic learning rate, constant (verl critic.optim.lr: 1e-5)."},
    )
    cliprange_value: float = field(
        default=0.5,
        metadata={
            "range": POSITIVE,
            "help": "Value clipping: new values stay within this distance of the rollout's values in the clipped "
            "value loss (verl critic.cliprange_value: 0.5).",
        },
    )
    gamma: float = field(
        default=1.0, metadata={"range": FRACTION, "help": "GAE discount factor (verl algorithm.gamma: 1.0)."}
    )
    lam: float = field(
        default=1.0, metadata={"range": FRACTION, "help": "GAE lambda (verl algorithm.lam: 1.0)."}
    )
    critic_warmup: int = field(
        default=0,
        metadata={
            "range": NON_NEGATIVE,
            "help": "Optimizer steps at the start that train only the critic: the policy loss is zeroed, so only "
            "AdamW's decoupled weight decay touches the policy; verl skips the policy update (trainer.critic_warmup: 0).",
        },
    )

    def __post_init__(self) -> None:
        check_field_rules(self)  # the critic's; OneShotGRPOConfig's __post_init__ checks the rest
        if self.fp16:
            raise ValueError(
                "PPO supports bf16 or fp32: the critic has no fp16 loss scaling. Set bf16: true instead."
            )
        if self.num_generations != 1:
            super().__post_init__()
            return
        # GRPOConfig refuses fewer than 2 completions per prompt (a group baseline needs 2); PPO's baseline is the
        # critic, so 1 is valid. GRPOConfig's other num_generations checks (whole groups per generation and eval
        # batch) hold for any batch when the group size is 1, so run them with a group size that also divides every
        # batch: the per-device batch (the generation batch is a multiple of it).
        if self.per_device_train_batch_size < 2:
            raise ValueError("num_generations: 1 needs per_device_train_batch_size >= 2.")
        eval_generations = self.num_generations_eval
        self.num_generations = self.per_device_train_batch_size
        self.num_generations_eval = eval_generations or 1
        try:
            super().__post_init__()
        finally:
            self.num_generations, self.num_generations_eval = 1, eval_generations
