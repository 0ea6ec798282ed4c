"""Pretrain the lab's base model: both strategies learned, the careful one rarely chosen.

The base model plays the role of Qwen2.5-Math-1.5B in the paper: it *can* solve most problems (its pass@8 is
high), but its default behaviour often does not. Its pretraining answers take the careful strategy
(`careful_most` on the smallest numbers to `careful_least` on the biggest, right every time) or the shortcut (the
rest: no carry, right only when the units do not carry), and box the final answer with probability `boxed_fraction`; see `oneshot_trl.lab.task`. Greedy decoding
takes the majority strategy and format, so the base model's greedy accuracy is about the shortcut's.

Pretraining runs until the model has learned *both* strategies, measured on the held-out `val` split with the
strategy forced by its prefix: the careful strategy's accuracy and the shortcut's agreement with its own rule
must both reach `target_accuracy` (97%; a base stopped at 90% was weak enough that RL found a reward hack, a
shortcut that miscopies 37 as 47 to land on 85), checked every `check_every` steps with the official grader.
A plain next-token loop on the answer tokens: this is not the part of the project under study.

Built deterministically from `BaseModelConfig` and cached under `cache_dir()/lab/base-<hash>`, so the second
`oneshot-trl lab` starts in seconds; the folder is an ordinary model repo (push it with `hf upload` and pass
the id to `--base-model`). The same config gives different weights on machines whose CPU float kernels differ,
which is why the lab ships one pretrained base (`oneshot_trl.lab.base`) and pretrains only when asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from oneshot_trl.data import TRAIN_PROMPT_SUFFIX
from oneshot_trl.lab.task import (
    EVAL_MAX_NEW_TOKENS,
    EVAL_TEMPLATE,
    STRATEGY_PREFIX,
    ArithmeticProblem,
    answer_text,
    careful_share,
    iter_pretraining_problems,
    splits,
)
from oneshot_trl.lab.tiny import IM_END, build_random_model, build_tokenizer
from oneshot_trl.progress import progress_bar

logger = logging.getLogger(__name__)

# Bump when the pretraining code changes what it produces: cached models of other versions are rebuilt.
PRETRAIN_VERSION = 6
CACHE_ENV = "ONESHOT_TRL_CACHE"


@dataclass(frozen=True)
class BaseModelConfig:
    """Everything the base model depends on; its hash names the cache folder."""

    vocab_size: int = field(default=400, metadata={"help": "Byte-level BPE vocabulary size."})
    hidden_size: int = field(default=128, metadata={"help": "Model width (head_dim = hidden / heads >= 32)."})
    num_layers: int = field(default=4, metadata={"help": "Transformer layers."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads."})
    max_steps: int = field(
        default=1500, metadata={"help": "Pretraining steps at most (the LR schedule's length)."}
    )
    target_accuracy: float = field(
        default=0.97,
        metadata={
            "help": "Stop once, on the val split with each strategy forced, the careful strategy's accuracy and "
            "the shortcut's agreement with its rule both reach this (1.0: never stop early)."
        },
    )
    check_every: int = field(default=50, metadata={"help": "Steps between val checks (after warmup)."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per pretraining step."})
    learning_rate: float = field(
        default=3e-3, metadata={"help": "Peak AdamW learning rate (cosine decay to 10%)."}
    )
    warmup_steps: int = field(default=100, metadata={"help": "Linear warmup steps."})
    careful_most: float = field(
        default=0.45,
        metadata={
            "help": "Share of careful answers (the rest: shortcut) on the smallest numbers (tens sum 2)."
        },
    )
    careful_least: float = field(
        default=0.05,
        metadata={
            "help": "Share of careful answers on the biggest numbers (tens sum 18); linear in between."
        },
    )
    boxed_fraction: float = field(default=0.5, metadata={"help": "Share of answers written as \\boxed{N}."})
    seed: int = field(default=0, metadata={"help": "Seed of the weights and the data stream."})

    def hash(self) -> str:
        canonical = json.dumps({"version": PRETRAIN_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """`$ONESHOT_TRL_CACHE`, else `$XDG_CACHE_HOME/oneshot_trl`, else `~/.cache/oneshot_trl`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "oneshot_trl"


def chat_prompt(tokenizer, question: str) -> str:
    """The prompt as every lab component renders it: one user turn through the chat template."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )


def _sample_answer(rng: random.Random, problem: ArithmeticProblem, config: BaseModelConfig) -> str:
    share = careful_share(problem, config.careful_most, config.careful_least)
    strategy = "careful" if rng.random() < share else "shortcut"
    return answer_text(problem, strategy, boxed=rng.random() < config.boxed_fraction) + IM_END


def _batches(tokenizer, config: BaseModelConfig):
    """Endless (input_ids, labels) batches of training prompts; the loss sees only the answer and <|im_end|>."""
    rng = random.Random(config.seed + 1)
    problems = iter_pretraining_problems(config.seed + 2)
    pad = tokenizer.pad_token_id
    while True:
        rows = []
        for _ in range(config.batch_size):
            p = next(problems)
            prompt = chat_prompt(tokenizer, p.problem + TRAIN_PROMPT_SUFFIX)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            answer_ids = tokenizer(_sample_answer(rng, p, config), add_special_tokens=False)["input_ids"]
            rows.append((prompt_ids, answer_ids))
        length = max(len(p) + len(a) for p, a in rows)
        input_ids = torch.full((len(rows), length), pad)
        labels = torch.full((len(rows), length), -100)
        for i, (p, a) in enumerate(rows):
            input_ids[i, : len(p) + len(a)] = torch.tensor(p + a)
            labels[i, len(p) : len(p) + len(a)] = torch.tensor(a)
        yield input_ids, labels


def forced_strategy_accuracy(
    model, tokenizer, problems: tuple[ArithmeticProblem, ...] | None = None
) -> dict[str, float]:
    """Greedy answers on `problems` (default: val) with each strategy forced by its prefix.

    Returns the careful strategy's accuracy (`careful`), the shortcut's accuracy (`shortcut`) and how often
    the shortcut follows its own rule (`shortcut_rule`), graded by the official grader.
    """
    from oneshot_trl.eval.templates import render_prompt
    from oneshot_trl.grading import grade_batch

    problems = problems or splits()["val"]
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    for strategy, prefix in STRATEGY_PREFIX.items():
        prompts = [render_prompt(p.problem, EVAL_TEMPLATE, tokenizer) + prefix for p in problems]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=EVAL_MAX_NEW_TOKENS, do_sample=False)
        texts = [
            prefix + t
            for t in tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        ]
        golds = [p.answer for p in problems]
        if strategy == "shortcut":
            rule = grade_batch(texts, [p.shortcut_answer for p in problems], grader="official", num_workers=0)
            out["shortcut_rule"] = sum(g.correct for g in rule) / len(rule)
        grades = grade_batch(texts, golds, grader="official", num_workers=0)
        out[strategy] = sum(g.correct for g in grades) / len(grades)
    model.train(was_training)
    return out


def _learned(check: dict[str, float], target: float) -> bool:
    return check["careful"] >= target and check["shortcut_rule"] >= target


def pretrain(config: BaseModelConfig, output_dir: str | Path, progress: bool = True) -> dict:
    """Build the tokenizer and model from `config`, pretrain, save both to `output_dir`."""
    start = time.time()
    tokenizer = build_tokenizer(vocab_size=config.vocab_size)
    model = build_random_model(
        tokenizer,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        seed=config.seed,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)

    def lr_lambda(step: int) -> float:  # linear warmup, then cosine to 10% at max_steps
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        done = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, done)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model.train()
    losses, check, step = [], None, 0
    batches = _batches(tokenizer, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        bar = progress_bar(
            total=config.max_steps, desc="pretrain base model", disable=not progress, leave=False
        )
        while step < config.max_steps:
            input_ids, labels = next(batches)
            # right padding + causal attention: pads never influence real tokens, so no mask is needed
            loss = model(input_ids=input_ids, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            bar.update(1)
            if step >= config.warmup_steps and step % config.check_every == 0 and config.target_accuracy < 1:
                check = forced_strategy_accuracy(model, tokenizer)
                logger.debug("pretrain step %d: loss %.3f, forced-strategy val %s", step, losses[-1], check)
                bar.set_postfix(
                    loss=f"{sum(losses[-20:]) / 20:.3f}", **{k: f"{v:.2f}" for k, v in check.items()}
                )
                if _learned(check, config.target_accuracy):
                    break
        bar.close()
    if check is None or step % config.check_every:  # stopped at max_steps between checks
        check = forced_strategy_accuracy(model, tokenizer)
    if not _learned(check, config.target_accuracy) and config.target_accuracy < 1:
        logger.warning(
            "Pretraining stopped at max_steps=%d before both strategies reached %.2f on val: %s.",
            config.max_steps,
            config.target_accuracy,
            check,
        )
    model.eval()
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    info = {
        "config": asdict(config),
        "config_hash": config.hash(),
        "pretrain_version": PRETRAIN_VERSION,
        "steps": step,
        "forced_strategy_val_accuracy": check,
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "seconds": round(time.time() - start, 1),
    }
    (output_dir / "lab_base.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def get_base_model(
    config: BaseModelConfig | None = None, progress: bool = True, rebuild: bool = False
) -> Path:
    """The cached base model folder for `config`, pretraining it first if it is not cached."""
    config = config or BaseModelConfig()
    target = cache_dir() / "lab" / f"base-{config.hash()}"
    if (target / "lab_base.json").is_file() and not rebuild:
        logger.info("Using the cached lab base model %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Pretraining the lab base model (up to %d steps); cached at %s", config.max_steps, target)
    # Build in a scratch folder and rename: an interrupted run never leaves a half-written cache entry.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        pretrain(config, tmp, progress=progress)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
