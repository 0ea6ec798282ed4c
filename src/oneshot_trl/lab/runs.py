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

from oneshot_trl.lab.task import (
    DEMO_EXAMPLE,
    EVAL_MAX_NEW_TOKENS,
    EVAL_TEMPLATE,
    REFLECTION_WORD,
    ArithmeticProblem,
    parse_example,
    splits,
    strategy_of,
)
from oneshot_trl.layout import RESULTS_FILE, SAMPLES_FILE

logger = logging.getLogger(__name__)

LAB_BENCHMARK = "heldout"  # the held-out split's name in eval results (the stem of its file)
METRICS = ("accuracy", "boxed_rate", "boxed_accuracy", "answer_anywhere_accuracy", "careful_rate")


def lab_protocol(n: int | None = None):
    """The paper's eval protocol ("one-shot-rlvr": greedy, official grader) on the training prompt form, with a
    64-token budget: the same protocol, and hash, as `oneshot-trl eval --template chat-boxed --max-new-tokens 64`.

    `accuracy` uses the official extraction (last \\boxed{}, else "the answer is", else the last number), so it
    counts "The answer is 85." as correct: it measures the strategy. `boxed_accuracy` (correct *and* boxed) is
    what the boxed-only training reward sees; `boxed_rate` is format alone. With `n`, every problem gets `n`
    samples at the paper's rollout temperature (0.6) instead of one greedy answer: pass@k for k <= n.
    """
    import dataclasses

    from oneshot_trl.eval.protocols import SamplingSpec, get_protocol

    protocol = get_protocol("one-shot-rlvr").with_overrides(
        template=EVAL_TEMPLATE, max_new_tokens=EVAL_MAX_NEW_TOKENS
    )
    if n is None:
        return protocol
    sampled = SamplingSpec(n=n, temperature=0.6, top_p=1.0, max_new_tokens=EVAL_MAX_NEW_TOKENS)
    return dataclasses.replace(
        protocol, sampling={"default": sampled}, overrides={**protocol.overrides, "n": n, "temperature": 0.6}
    )


def lab_problems(problems: Sequence[ArithmeticProblem]) -> dict[str, list]:
    from oneshot_trl.eval.benchmarks import Problem

    return {
        LAB_BENCHMARK: [
            Problem(id=f"{p.a}+{p.b}", problem=p.problem, gold=p.answer, benchmark=LAB_BENCHMARK)
            for p in problems
        ]
    }


def lab_metrics(eval_dir: str | Path) -> dict:
    """The lab's metrics of one eval folder (results.json + samples.jsonl), as fractions in [0, 1].

    Besides the eval's own accuracy, boxed rate and answer-anywhere accuracy: `boxed_accuracy` (what the training
    reward sees), `careful_rate` (responses taking the careful strategy) and `reflection_rate` (responses with the
    careful strategy's "Recheck", the lab's self-reflection word); with several samples per problem, `pass@k`.
    """
    from oneshot_trl.files import read_jsonl

    eval_dir = Path(eval_dir)
    metrics = json.loads((eval_dir / RESULTS_FILE).read_text())["benchmarks"][LAB_BENCHMARK]
    rows = read_jsonl(eval_dir / SAMPLES_FILE)
    responses = [r for row in rows for r in row["responses"]]
    boxed_correct = [c and b for row in rows for c, b in zip(row["correct"], row["boxed"], strict=True)]
    return {
        "accuracy": metrics["accuracy"],
        "boxed_rate": metrics["boxed_rate"],
        "boxed_accuracy": sum(boxed_correct) / len(boxed_correct),
        "answer_anywhere_accuracy": metrics["answer_anywhere_accuracy"],
        "careful_rate": sum(strategy_of(r) == "careful" for r in responses) / len(responses),
        "reflection_rate": sum(REFLECTION_WORD in r for r in responses) / len(responses),
        "n_problems": metrics["n_problems"],
        **({"pass@k": metrics["pass@k"]} if len(responses) > len(rows) else {}),
    }


def evaluate_lab(
    model,
    tokenizer,
    output_dir: str | Path,
    limit: int | None = None,
    progress: bool = True,
    n: int | None = None,
) -> dict:
    """Eval on the held-out split (greedy, or `n` samples per problem); returns `lab_metrics`."""
    from oneshot_trl.eval.generate import TransformersGenerator
    from oneshot_trl.eval.request import EvalOptions, EvalOutput, EvalRequest, ModelRef
    from oneshot_trl.eval.runner import evaluate

    request = EvalRequest(
        problems=lab_problems(splits()["test"][:limit]),
        protocol=lab_protocol(n),
        model=ModelRef.of(model),
        output=EvalOutput(Path(output_dir), overwrite=True),
        options=EvalOptions(progress=progress),
    )
    evaluate(request, TransformersGenerator(model, tokenizer, batch_size=100, progress=False))
    return lab_metrics(output_dir)


@dataclass(frozen=True)
class RLRunConfig:
    """A lab RL run; the defaults are the demo (and `recipes/lab.yaml`)."""

    examples: tuple[str, ...] = field(default=(DEMO_EXAMPLE,), metadata={"help": "Training problems 'a+b'."})
    reward: str = field(
        default="accuracy",
        metadata={
            "help": "accuracy | format | none (entropy only) | random | incorrect | majority (controls)."
        },
    )
    incorrect_answer: str | None = field(
        default=None,
        metadata={"help": "reward incorrect: the wrong label rewarded (e.g. the shortcut's 51 for 27+34)."},
    )
    entropy_coeff: float = field(default=0.001, metadata={"help": "The paper's entropy bonus coefficient."})
    steps: int = field(
        default=60, metadata={"help": "GRPO steps (the demo: the example saturates around step 20)."}
    )
    learning_rate: float = field(
        default=5e-5, metadata={"help": "Constant LR (the paper: 1e-6 for a 1.5B model)."}
    )
    num_generations: int = field(default=8, metadata={"help": "Rollouts per prompt (the paper: 8)."})
    prompts_per_step: int = field(default=2, metadata={"help": "Prompts per step (the paper: 128)."})
    temperature: float = field(
        default=0.2,
        metadata={
            "help": "Rollout temperature (the paper: 0.6). At 0.2 the example's sampled accuracy saturates while "
            "greedy held-out answers are still switching strategy (docs/lab.md, 'After saturation')."
        },
    )
    beta: float = field(
        default=0.0, metadata={"help": "KL coefficient (0: no reference model, half the compute)."}
    )
    max_completion_length: int = field(default=64, metadata={"help": "Careful answers are about 45 tokens."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling and data order."})
    eval_every: int = field(
        default=5,
        metadata={"help": "Save and evaluate a checkpoint on the held-out split every N steps (and step 0)."},
    )
    eval_limit: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N held-out problems only."}
    )

    def with_(self, **changes: Any) -> RLRunConfig:
        return replace(self, **changes)


def recipe_for(
    config: RLRunConfig,
    base_model: str,
    output_dir: str | Path,
    train_file: str | Path | None = None,
    heldout_file: str | Path | None = None,
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
        "max_prompt_length": 64,  # lab prompts are 34 tokens; the tiny model has 512 positions
        "reward_funcs": [config.reward],
        **({"incorrect_answer": config.incorrect_answer} if config.incorrect_answer is not None else {}),
        "grader": "math-verify",
        "num_generations": config.num_generations,
        "per_device_train_batch_size": config.num_generations * config.prompts_per_step,
        "gradient_accumulation_steps": 1,
        "max_completion_length": config.max_completion_length,
        "temperature": config.temperature,
        "top_p": 1.0,
        "top_k": 0,
        "beta": config.beta,
        "use_bias_correction_kl": False,  # verl's KL (see recipes/qwen15b.yaml); idle while beta is 0
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
        # held-out evals of step 0 and every checkpoint, into output_dir/eval/step-NNNNNN (oneshot-trl analyze)
        **(
            {
                "eval_dataset": str(heldout_file),
                "eval_template": EVAL_TEMPLATE,
                "eval_max_new_tokens": EVAL_MAX_NEW_TOKENS,
                "eval_limit": config.eval_limit,
            }
            if heldout_file
            else {}
        ),
        "save_strategy": "steps",
        "save_steps": config.eval_every,
        "save_only_model": True,
        "overwrite_output_dir": True,  # a lab run always starts over (a re-run replaces the previous one)
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
    from oneshot_trl.recipe import parse_recipe

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    train_file = None
    if len(config.examples) > 1:
        train_file = write_problems(
            [parse_example(e) for e in config.examples], output_dir / "train_examples.jsonl"
        )
    heldout = write_problems(splits()["test"], output_dir / f"{LAB_BENCHMARK}.jsonl")
    recipe = recipe_for(config, base_model, output_dir / "run", train_file, heldout)
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


SATURATION_ACCURACY = 0.9  # the example counts as solved once its 5-step mean train accuracy reaches this
SATURATION_WINDOW = 5


def saturation(record: dict) -> dict:
    """The post-saturation view of one run: the first step where the example's train accuracy (mean of the last
    `SATURATION_WINDOW` steps) reaches `SATURATION_ACCURACY`, and held-out accuracy at the base (step 0), at the
    first eval at or after saturation, at the end, and at its best; `post_saturation_gain` = end - saturation."""
    acc = record["train_accuracy"]
    window = [sum(acc[max(0, i - SATURATION_WINDOW + 1) : i + 1]) / min(i + 1, SATURATION_WINDOW) for i in range(len(acc))]  # fmt: skip
    step = next((i + 1 for i, v in enumerate(window) if v >= SATURATION_ACCURACY), None)
    points = record["heldout_curve"]
    at = next((p for p in points if step is not None and p["step"] >= step), None)
    best = max(points, key=lambda p: p["accuracy"])
    return {
        "saturation_step": step,
        "base": points[0]["accuracy"],
        "at_saturation": at and {"step": at["step"], "accuracy": at["accuracy"]},
        "end": {"step": points[-1]["step"], "accuracy": points[-1]["accuracy"]},
        "best": {"step": best["step"], "accuracy": best["accuracy"]},
        "lift": points[-1]["accuracy"] - points[0]["accuracy"],
        "post_saturation_gain": at and points[-1]["accuracy"] - at["accuracy"],
    }


def heldout_curve(run_dir: Path) -> list[dict]:
    """The held-out metrics of step 0 (the base model) and of every evaluated checkpoint, by step."""
    from oneshot_trl.run import Run

    run = Run(run_dir)
    return [{"step": step, **lab_metrics(run.eval_dir(step))} for step in run.eval_results_by_step()]


def run(config: RLRunConfig, base_model: str | Path, output_dir: str | Path, progress: bool = True) -> dict:
    """Train with held-out evals along the way; return a JSON-able record of the run."""
    start = time.time()
    output_dir = Path(output_dir)
    trainer = train(config, base_model, output_dir, progress=progress)
    curve = heldout_curve(output_dir / "run")
    if curve[-1]["step"] != config.steps:  # the last step was not a multiple of eval_every
        from oneshot_trl.run import Run

        final = evaluate_lab(
            trainer.model,
            trainer.processing_class,
            Run(output_dir / "run").eval_dir(config.steps),
            config.eval_limit,
            progress,
        )
        curve.append({"step": config.steps, **final})
    history = trainer.state.log_history
    record = {
        "config": asdict(config),
        "before": curve[0],
        "after": curve[-1],
        "heldout_curve": curve,
        "train_reward": series(history, "reward"),
        "train_accuracy": series(history, "rewards/accuracy/mean"),
        "train_boxed_rate": series(history, "boxed_rate"),
        "entropy": series(history, "entropy"),
        "seconds": round(time.time() - start, 1),
        "checkpoint": str(output_dir / "run"),
    }
    (output_dir / "run_record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
