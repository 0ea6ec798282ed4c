"""One lab RL run: the lab example(s) -> a recipe -> `oneshot_trl.train.main` -> held-out eval.

Nothing here trains or grades by itself: the run is written as a recipe YAML, parsed by the same parser
as `python -m oneshot_trl.train RECIPE`, trained by `OneShotGRPOTrainer` with the package's rewards, and
evaluated by `oneshot_trl.eval.runner.evaluate` with the package's grader. Only the sizes are micro.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from oneshot_trl.lab.task import EVAL_TEMPLATE, ArithmeticProblem, parse_example, splits

logger = logging.getLogger(__name__)

LAB_BENCHMARK = "lab"  # the held-out split's name in eval results
METRICS = ("accuracy", "boxed_rate", "boxed_accuracy", "answer_anywhere_accuracy")
EVAL_MAX_NEW_TOKENS = 32  # answers are about 20 tokens


def lab_protocol():
    """The paper's eval protocol ("one-shot-rlvr": greedy, official grader) on the training prompt form, with a
    32-token budget: the same protocol, and hash, as `oneshot-trl eval --template chat-boxed --max-new-tokens 32`.

    `accuracy` uses the official extraction (last \\boxed{}, else "the answer is", else the last number), so it
    counts "The answer is 85." as correct: it measures arithmetic. `boxed_accuracy` (correct *and* boxed) is
    what the boxed-only training reward sees; `boxed_rate` is format alone.
    """
    from oneshot_trl.eval.protocols import get_protocol

    return get_protocol("one-shot-rlvr").with_overrides(
        template=EVAL_TEMPLATE, max_new_tokens=EVAL_MAX_NEW_TOKENS
    )


def lab_problems(problems: Sequence[ArithmeticProblem]) -> dict[str, list]:
    from oneshot_trl.eval.benchmarks import Problem

    return {
        LAB_BENCHMARK: [
            Problem(id=p.example_id, problem=p.problem, gold=p.answer, benchmark=LAB_BENCHMARK)
            for p in problems
        ]
    }


def evaluate_lab(
    model, tokenizer, output_dir: str | Path, limit: int | None = None, progress: bool = True
) -> dict:
    """Greedy eval on the held-out split; returns the lab metrics (fractions in [0, 1])."""
    from oneshot_trl.eval.runner import SAMPLES_FILE, evaluate

    output_dir = Path(output_dir)
    problems = splits()["test"][:limit]
    results = evaluate(
        model,
        tokenizer=tokenizer,
        problems=lab_problems(problems),
        protocol=lab_protocol(),
        output_dir=output_dir,
        overwrite=True,
        generator_kwargs={"batch_size": 100, "progress": False},
        progress=progress,
    )
    metrics = results["benchmarks"][LAB_BENCHMARK]
    rows = [json.loads(line) for line in (output_dir / SAMPLES_FILE).read_text().splitlines() if line.strip()]
    boxed_correct = [c and b for r in rows for c, b in zip(r["correct"], r["boxed"], strict=True)]
    return {
        "accuracy": metrics["accuracy"],
        "boxed_rate": metrics["boxed_rate"],
        "boxed_accuracy": sum(boxed_correct) / len(boxed_correct),
        "answer_anywhere_accuracy": metrics["answer_anywhere_accuracy"],
        "n_problems": metrics["n_problems"],
    }


@dataclass(frozen=True)
class RLRunConfig:
    """A lab RL run; the defaults are the demo (and `recipes/lab.yaml`)."""

    examples: tuple[str, ...] = field(default=("37+48",), metadata={"help": "Training problems 'a+b'."})
    reward: str = field(default="accuracy", metadata={"help": "accuracy | format | none (entropy only)."})
    entropy_coeff: float = field(default=0.001, metadata={"help": "The paper's entropy bonus coefficient."})
    steps: int = field(default=40, metadata={"help": "GRPO steps."})
    learning_rate: float = field(
        default=5e-5,
        metadata={"help": "Constant LR (the paper: 1e-6 for a 1.5B model; 1e-4+ breaks this one)."},
    )
    num_generations: int = field(default=8, metadata={"help": "Rollouts per prompt (the paper: 8)."})
    prompts_per_step: int = field(default=2, metadata={"help": "Prompts per step (the paper: 128)."})
    temperature: float = field(default=0.6, metadata={"help": "Rollout temperature (as the paper)."})
    beta: float = field(
        default=0.0, metadata={"help": "KL coefficient (0: no reference model, half the compute)."}
    )
    max_completion_length: int = field(default=32, metadata={"help": "Answers are about 20 tokens."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling and data order."})
    save_steps: int | None = field(
        default=None, metadata={"help": "Save a checkpoint every N steps (None: only the end)."}
    )

    def with_(self, **changes: Any) -> RLRunConfig:
        return replace(self, **changes)


def recipe_for(
    config: RLRunConfig, base_model: str, output_dir: str | Path, train_file: str | Path | None = None
) -> dict:
    """The run as a recipe dict: keys are fields of the config dataclasses (see `recipes/lab.yaml`)."""
    problems = [parse_example(e) for e in config.examples]
    recipe: dict[str, Any] = {"model_name_or_path": str(base_model)}
    if len(problems) == 1:
        recipe |= {"problem": problems[0].problem, "answer": problems[0].answer}
    else:
        if train_file is None:
            raise ValueError("Several training examples need a train_file to write them to.")
        recipe |= {"dataset_name": str(train_file), "id_field": "id"}
    rows = config.steps * config.prompts_per_step
    recipe |= {
        # one example: repeat it to exactly the prompts the run consumes (the paper's 128 = one step's batch);
        # several: each appears once per epoch, shuffled
        "dataset_repeat_to": rows if len(problems) == 1 else None,
        "prompt_format": "chat",
        "reward": config.reward,
        "grader": "math-verify",
        "num_generations": config.num_generations,
        "per_device_train_batch_size": config.num_generations * config.prompts_per_step,
        "gradient_accumulation_steps": 1,
        "max_completion_length": config.max_completion_length,
        "temperature": config.temperature,
        "top_p": 1.0,
        "top_k": 0,
        "beta": config.beta,
        "entropy_coeff": config.entropy_coeff,
        "loss_type": "bnpo",
        "scale_rewards": "group",
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        "max_steps": config.steps,
        "seed": config.seed,
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "save_strategy": "steps" if config.save_steps else "no",
        "save_steps": config.save_steps or config.steps,
        "save_only_model": True,
        "logging_steps": 1,
        "report_to": "none",
        "completions_per_step": 8,
        "output_dir": str(output_dir),
    }
    return recipe


def write_problems(problems: Sequence[ArithmeticProblem], path: Path) -> Path:
    """Problems as JSONL rows {id, problem, answer}: a training dataset or an eval dataset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps({"id": f"{p.a}+{p.b}", "problem": p.problem, "answer": p.answer}) + "\n"
            for p in problems
        )
    )
    return path


def train(config: RLRunConfig, base_model: str | Path, output_dir: str | Path, progress: bool = True):
    """Train through the package's entry point; returns the trainer (its model is the trained policy)."""
    from oneshot_trl import train as train_module
    from oneshot_trl.config import parse_recipe

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    train_file = None
    if len(config.examples) > 1:
        train_file = write_problems(
            [parse_example(e) for e in config.examples], output_dir / "train_examples.jsonl"
        )
    recipe = recipe_for(config, base_model, output_dir / "run", train_file)
    recipe["disable_tqdm"] = not progress
    recipe_path = output_dir / "lab_recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    script_args, training_args, model_args, _ = parse_recipe([str(recipe_path)])
    # The HF Trainer prints every step's log dict to stdout; keep them in a file, the terminal shows progress bars.
    with open(output_dir / "train_log.txt", "w") as log, contextlib.redirect_stdout(log):
        return train_module.main(script_args, training_args, model_args, str(recipe_path))


def series(log_history: list[dict], key: str) -> list[float]:
    """Per-step values of a logged metric (TRL logs one dict per step with logging_steps=1)."""
    return [float(e[key]) for e in log_history if key in e and "step" in e]


def run(
    config: RLRunConfig,
    base_model: str | Path,
    output_dir: str | Path,
    eval_limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Train, evaluate the result on the held-out split, return a JSON-able record of the run."""
    start = time.time()
    output_dir = Path(output_dir)
    trainer = train(config, base_model, output_dir, progress=progress)
    train_seconds = time.time() - start
    after = evaluate_lab(
        trainer.model, trainer.processing_class, output_dir / "eval_after", eval_limit, progress
    )
    history = trainer.state.log_history
    record = {
        "config": asdict(config),
        "after": after,
        "train_reward": series(history, "reward"),
        "train_accuracy": series(history, "rewards/accuracy/mean"),
        "train_boxed_rate": series(history, "boxed_rate"),
        "entropy": series(history, "entropy"),
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.time() - start, 1),
        "checkpoint": str(output_dir / "run"),
    }
    (output_dir / "run_record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
