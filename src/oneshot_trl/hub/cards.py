"""Model cards: what a card shows of a run, eval results as `model-index` entries, and the rendering.

`render_model_card` fills `templates/oneshot_model_card.md` with huggingface_hub's `ModelCard`/`ModelCardData`;
eval results become `model-index` entries (`EvalResult`) carrying the protocol, so results of different protocols
never overwrite each other. Everything rendered is scrubbed of tokens.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from oneshot_trl.layout import STEP_BRANCH_RE, step_branch
from oneshot_trl.run import Run
from oneshot_trl.secrets import redact_recipe, scrub

# Hyperparameters shown on the card (an allow-list: arguments also hold hub_token).
HYPERPARAMETER_KEYS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "optim",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_generations",
    "generation_batch_size",
    "max_prompt_length",
    "max_completion_length",
    "temperature",
    "top_p",
    "beta",
    "epsilon",
    "loss_type",
    "scale_rewards",
    "entropy_coef",
    "entropy_coeff",
    "max_steps",
    "num_train_epochs",
    "save_steps",
    "seed",
    "bf16",
    "use_vllm",
    "vllm_mode",
)
PAPER_ARXIV_ID = "2504.20571"
CARD_TAGS = ["trl", "grpo", "one-shot-rlvr", "rlvr", "math", "reasoning", f"arxiv:{PAPER_ARXIV_ID}"]
CARD_TEMPLATE = "oneshot_model_card.md"
_EVAL_START, _EVAL_END = "<!-- oneshot-trl:eval-results:start -->", "<!-- oneshot-trl:eval-results:end -->"


@dataclass
class CardInputs:
    """What a card shows of a run, read through `Run` from a run dir or a Hub revision (or given directly)."""

    run_info: dict = field(default_factory=dict)  # oneshot_run.json
    recipe_text: str | None = None  # recipe.yaml, redacted
    trainer_state: dict = field(default_factory=dict)  # trainer_state.json (of the checkpoint, for a step)
    eval_by_step: dict[int, dict] = field(default_factory=dict)  # in-training eval results.json, by step
    hub_record: dict = field(default_factory=dict)  # hub_pushes.json: repo, hyperparameters, hardware, pushes

    @classmethod
    def from_run(cls, run: Run, step: int | None = None, *tokens: str | None) -> CardInputs:
        """The card inputs of `run` at `step` (None: the final model); `tokens` are scrubbed from the recipe."""
        recipe = run.recipe_text()
        return cls(
            run_info=run.run_info(),
            recipe_text=redact_recipe(recipe, *tokens) if recipe is not None else None,
            trainer_state=run.trainer_state(step),
            eval_by_step=run.eval_results_by_step(),
            hub_record=run.hub_record(),
        )

    @classmethod
    def from_run_dir(cls, output_dir: str | os.PathLike, step: int | None = None) -> CardInputs:
        return cls.from_run(Run(output_dir), step)

    def recipe(self) -> dict:
        try:
            data = yaml.safe_load(self.recipe_text or "") or {}
        except yaml.YAMLError:
            return {}
        return data if isinstance(data, dict) else {}


def hyperparameters_from(source: Any) -> dict[str, Any]:
    """The allow-listed hyperparameters of a TrainingArguments object or a recipe dict."""
    get = source.get if isinstance(source, dict) else (lambda key: getattr(source, key, None))
    values = {}
    for key in HYPERPARAMETER_KEYS:
        value = get(key)
        if value is None or (key == "max_steps" and value == -1):
            continue
        values[key] = value.value if hasattr(value, "value") else value  # enums (lr_scheduler_type)
    return values


def describe_hardware(args: Any = None) -> str:
    """'4 x NVIDIA H100 80GB HBM3' or 'CPU (16 cores)', times the number of training processes."""
    world_size = int(getattr(args, "world_size", 1) or 1)
    try:
        import torch

        if torch.cuda.is_available():
            device = f"{torch.cuda.get_device_name(0)}"
            per_node = torch.cuda.device_count()
            return f"{max(world_size, 1)} process(es) on {device} ({per_node} visible per node)"
    except Exception:  # hardware description is best effort
        pass
    return f"{world_size} process(es) on CPU ({os.cpu_count()} cores)"


def library_versions() -> dict[str, str]:
    versions = {}
    for name, dist in [
        ("oneshot-trl", "oneshot-trl"),
        ("TRL", "trl"),
        ("Transformers", "transformers"),
        ("PyTorch", "torch"),
        ("Datasets", "datasets"),
        ("Tokenizers", "tokenizers"),
        ("huggingface_hub", "huggingface_hub"),
        ("math-verify", "math-verify"),
        ("vLLM", "vllm"),
    ]:
        try:
            versions[name] = version(dist)
        except PackageNotFoundError:
            continue
    return versions


# --------------------------------------------------------------------------------------------------------------
# Eval results <-> model-index (EvalResult)
# --------------------------------------------------------------------------------------------------------------

# Pretty names and Hub dataset ids of the bundled benchmarks (the eval registry's names are the keys).
_BENCHMARK_CARD_INFO = {
    "math500": ("MATH-500", "HuggingFaceH4/MATH-500"),
    "aime24": ("AIME 2024", "math-ai/aime24"),
    "aime25": ("AIME 2025", "math-ai/aime25"),
    "amc23": ("AMC 2023", "math-ai/amc23"),
    "minerva_math": ("Minerva Math", "math-ai/minervamath"),
    "olympiadbench": ("OlympiadBench", "math-ai/olympiadbench"),
}
EVAL_TASK_TYPE = "text-generation"
EVAL_TASK_NAME = "Mathematical reasoning"
_PRIMARY_METRICS = re.compile(r"^(acc|accuracy|avg@\d+)$")


def protocol_of(results: dict) -> tuple[str, str]:
    protocol = results.get("protocol") or {}
    if isinstance(protocol, str):
        return protocol, str(results.get("protocol_hash") or "unknown")
    return str(protocol.get("name") or "custom"), str(protocol.get("hash") or "unknown")


def results_to_eval_results(results: dict) -> list[EvalResult]:
    """One `EvalResult` per benchmark and metric of an `oneshot-trl eval` results.json dict.

    Scores are in percent. The protocol (name@hash) is the `metric_config` and, with the grader, sample counts,
    CI, revision and commit, in `metric_args`, so results of different protocols never overwrite each other.
    """
    protocol, protocol_hash = protocol_of(results)
    out = []
    for bench, res in (results.get("benchmarks") or {}).items():
        pretty, dataset_type = _BENCHMARK_CARD_INFO.get(bench, (bench, bench))
        args = {
            "protocol": protocol,
            "protocol_hash": protocol_hash,
            "grader": results.get("grader"),
            "n_problems": res.get("n_problems"),
            "n_samples": res.get("n_samples"),
            "revision": results.get("revision"),
            "commit_sha": results.get("commit_sha"),
        }
        if results.get("seeds") and not res.get("greedy"):  # multi-seed eval: the value is the seeds' mean
            args["seeds"] = results["seeds"]
            args.update({k: round(100 * float(res[k]), 2) for k in ("sd", "min", "max") if k in res})
        args = {k: v for k, v in args.items() if v is not None}
        ci95 = [round(100 * float(x), 2) for x in res["ci95"]] if res.get("ci95") else None
        metrics = [(str(res.get("metric") or "acc"), res.get("accuracy"), ci95)]  # the CI is the accuracy's
        metrics += [(f"pass@{k}", v, None) for k, v in (res.get("pass@k") or {}).items() if str(k) != "1"]
        for metric, value, ci in metrics:
            if value is None:
                continue
            out.append(
                EvalResult(
                    task_type=EVAL_TASK_TYPE,
                    task_name=EVAL_TASK_NAME,
                    dataset_type=dataset_type,
                    dataset_name=pretty,
                    dataset_split="test",
                    metric_type=metric,
                    metric_value=round(100 * float(value), 2),
                    metric_name=f"{metric} ({protocol})",
                    metric_config=f"{protocol}@{protocol_hash}",
                    metric_args={**args, "ci95": ci} if ci else dict(args),
                    verified=False,
                )
            )
    return out


def _result_key(result: EvalResult) -> tuple:
    # Same benchmark + metric + protocol (name@hash) = the same result: a newer one replaces it.
    return (*result.unique_identifier, result.metric_type, result.metric_config)


def merge_eval_results(existing: Iterable[EvalResult], new: Iterable[EvalResult]) -> list[EvalResult]:
    """`existing` with entries of `new` replacing those with the same key, others appended (order kept)."""
    merged = {_result_key(r): r for r in existing}
    for result in new:
        merged[_result_key(result)] = result
    return list(merged.values())


def _fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def render_eval_table(eval_results: Iterable[EvalResult], repo_id: str | None = None) -> str:
    """Markdown table of model-index results (scores in %), one block per protocol, with an average row."""
    by_protocol: dict[str, list[EvalResult]] = {}
    for result in eval_results:
        by_protocol.setdefault(result.metric_config or "unknown", []).append(result)
    if not by_protocol:
        model = repo_id or "<repo>"
        return (
            f"_No evaluation results yet: `oneshot-trl eval --model {model} --push-to-hub` adds them here._"
        )
    blocks = []
    for protocol, results in by_protocol.items():
        args = results[0].metric_args or {}
        name, _, phash = protocol.partition("@")
        grader = f", grader `{args['grader']}`" if args.get("grader") else ""
        lines = [
            f"Protocol `{name}` (hash `{phash}`){grader}; scores in %, not verified by the Hub.",
            "",
            "| Benchmark | Metric | Score | 95% CI | Problems | Samples |",
            "|---|---|---:|---|---:|---:|",
        ]
        primary = []
        for r in results:
            a = r.metric_args or {}
            ci = a.get("ci95")
            ci_text = f"{ci[0]:.1f} – {ci[1]:.1f}" if isinstance(ci, list) and len(ci) == 2 else ""
            score = _fmt(r.metric_value)
            if "sd" in a:  # mean +- sd over sampling seeds (min-max in the CI column)
                score += f" ± {a['sd']:.1f} ({len(a.get('seeds', []))} seeds)"
                ci_text = ci_text or f"{a['min']:.1f} – {a['max']:.1f} (min – max)"
            lines.append(
                f"| {r.dataset_name} | {r.metric_type} | {score} | {ci_text} "
                f"| {a.get('n_problems', '')} | {a.get('n_samples', '')} |"
            )
            if _PRIMARY_METRICS.match(r.metric_type) and isinstance(r.metric_value, (int, float)):
                primary.append(r.metric_value)
        if len(primary) > 1:
            lines.append(
                f"| **Average** ({len(primary)} benchmarks) | | **{sum(primary) / len(primary):.1f}** | | | |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def revision_url(repo_id: str, revision: str) -> str:
    return f"https://huggingface.co/{repo_id}/tree/{revision}"


def render_curve_table(eval_by_step: dict[int, dict], repo_id: str, pushed: set[str] = frozenset()) -> str:
    """Benchmarks of the in-training evals against step; steps link to their branch when it was pushed."""
    if not eval_by_step:
        return ""
    benches = list(dict.fromkeys(b for r in eval_by_step.values() for b in (r.get("benchmarks") or {})))
    names = [_BENCHMARK_CARD_INFO.get(b, (b, b))[0] for b in benches]
    lines = [
        "| Step | " + " | ".join(names) + " | Average |",
        "|---:|" + "---:|" * (len(benches) + 1),
    ]
    for step, res in sorted(eval_by_step.items()):
        revision = step_branch(step)
        cell = f"[{step}]({revision_url(repo_id, revision)})" if revision in pushed else str(step)
        scores = [(res.get("benchmarks") or {}).get(b, {}).get("accuracy") for b in benches]
        texts = [_fmt(100 * s) if isinstance(s, (int, float)) else "" for s in scores]
        average = res.get("average")
        texts.append(_fmt(100 * average) if isinstance(average, (int, float)) else "")
        lines.append(f"| {cell} | " + " | ".join(texts) + " |")
    protocol, phash = protocol_of(next(iter(eval_by_step.values())))
    return f"Accuracy (%) under protocol `{protocol}` (hash `{phash}`).\n\n" + "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Model cards
# --------------------------------------------------------------------------------------------------------------


def card_template_path() -> Path:
    """The packaged card template (`oneshot_trl/templates/oneshot_model_card.md`)."""
    return Path(str(importlib.resources.files("oneshot_trl") / "templates" / CARD_TEMPLATE))


def _fenced(text: str, lang: str = "text") -> str:
    # A fence longer than any backtick run inside, so problem text is shown verbatim whatever it holds.
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.strip()}\n{fence}"


def _inline_code(text: str) -> str:
    text = " ".join(str(text).split())
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _is_hub_id(name: str | None) -> bool:
    if not name or Path(name).expanduser().exists():
        return False
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(name)
        return "/" in name
    except ValueError:
        return False


def _format_duration(seconds: float | None) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def render_model_card(
    repo_id: str,
    run: CardInputs,
    *,
    step: int | None = None,
    step_revisions: Iterable[str] = (),
    eval_results: Iterable[EvalResult] = (),
    hyperparameters: dict | None = None,
    hardware: str | None = None,
    versions: dict | None = None,
) -> ModelCard:
    """Render the card of `repo_id` (at branch `step-N` when `step` is given, else `main`).

    `eval_results` go into the `model-index` and the evaluation table; `run.eval_by_step` into the table of
    benchmarks during training; `step_revisions` are linked. Missing pieces are left out, never invented.
    """
    info = run.run_info or {}
    record = run.hub_record or {}
    base_model = info.get("base_model")
    revision = step_branch(step) if step is not None else None
    eval_results = list(eval_results)
    pushed = sorted(set(step_revisions), key=lambda r: int(STEP_BRANCH_RE.match(r).group(1)))
    hyperparameters = dict(
        hyperparameters or record.get("hyperparameters") or hyperparameters_from(run.recipe())
    )
    for key in ("reward_funcs", "reward_weights", "reward", "grader"):  # recorded in oneshot_run.json
        if info.get(key) is not None:
            hyperparameters.setdefault(key, info[key])
    state = run.trainer_state or {}
    global_step = state.get("global_step")
    max_steps = state.get("max_steps")
    steps = f"{global_step}" if global_step is not None else "unknown"
    if global_step is not None and max_steps and max_steps != global_step:
        steps += f" of {max_steps}"
    runtime = next(
        (e.get("train_runtime") for e in reversed(state.get("log_history") or []) if "train_runtime" in e),
        None,
    )
    examples = [
        {
            "example_id": str(ex.get("example_id", f"example-{i}")),
            "problem_block": _fenced(str(ex.get("problem", ""))),
            "answer_block": _inline_code(ex.get("answer", "")),
        }
        for i, ex in enumerate(info.get("examples") or [])
    ]
    card_data = ModelCardData(
        base_model=base_model if _is_hub_id(base_model) else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=list(CARD_TAGS),
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(card_template_path()),
        model_name=repo_id.split("/")[-1] + (f" (step {step})" if step is not None else ""),
        repo_id=repo_id,
        hub_url=f"https://huggingface.co/{repo_id}",
        step=step,
        revision=revision,
        base_model=base_model or "an unrecorded base model",
        base_model_link=f"https://huggingface.co/{base_model}" if _is_hub_id(base_model) else None,
        base_model_revision=info.get("base_model_revision"),
        num_examples=len(examples) or 1,
        examples=examples,
        eval_table=render_eval_table(eval_results, repo_id),
        curve_table=render_curve_table(run.eval_by_step, repo_id, set(pushed)),
        paper_table=render_paper_table(run),
        step_links=[
            {"revision": r, "step": int(STEP_BRANCH_RE.match(r).group(1)), "url": revision_url(repo_id, r)}
            for r in pushed
        ],
        steps=steps,
        hardware=hardware or record.get("hardware") or info.get("hardware") or "not recorded",
        train_runtime=_format_duration(runtime),
        hyperparameters=hyperparameters,
        recipe=(run.recipe_text or "").strip(),
        versions=versions or record.get("versions") or info.get("versions") or library_versions(),
        oneshot_trl_version=library_versions().get("oneshot-trl", ""),
    )
    # Only this process's known tokens can be scrubbed; a recipe token was already redacted.
    return ModelCard(scrub(str(card)))


def render_paper_table(run: CardInputs) -> str:
    """The in-training evals' best and final checkpoints beside the paper's row for the run's `paper_setup`
    (`analysis.paper`; without a setup: the same table without the paper's column); empty without evals."""
    from oneshot_trl.analysis.paper import comparison, render
    from oneshot_trl.run import CheckpointEval

    evals = [
        CheckpointEval(step_branch(step), step, results, [], "")
        for step, results in sorted(run.eval_by_step.items())
    ]
    return "\n".join(
        render(comparison(evals, (run.run_info or {}).get("paper_setup")), heading="###")
    ).strip()


def set_card_eval_results(card: ModelCard, eval_results: list[EvalResult], repo_id: str) -> ModelCard:
    """Put `eval_results` in the card's model-index and re-render its evaluation table (between markers)."""
    card.data.eval_results = eval_results or None
    if card.data.model_name is None:
        card.data.model_name = repo_id.split("/")[-1]
    table = render_eval_table(eval_results, repo_id)
    text = card.text
    start, end = text.find(_EVAL_START), text.find(_EVAL_END)
    if 0 <= start < end:
        text = f"{text[: start + len(_EVAL_START)]}\n{table}\n{text[end:]}"
    else:  # a card not made by us: append the section
        text = f"{text.rstrip()}\n\n## Evaluation\n\n{_EVAL_START}\n{table}\n{_EVAL_END}\n"
    card.text = text
    return ModelCard(str(card))  # re-parse: the returned card is what a Hub reader would see


def training_eval_results(run: CardInputs, step: int | None) -> list[EvalResult]:
    """Eval results a freshly rendered card starts from: the in-training eval of that step (or the last step)."""
    if step is None:
        step = (run.trainer_state or {}).get("global_step")
    results = run.eval_by_step.get(step) if step is not None else None
    return results_to_eval_results(results) if results else []
