"""Hugging Face Hub integration: pull any model revision, push every checkpoint to its own branch, model cards.

- `resolve_model`: a local directory or a Hub id at a revision (branch, tag or commit sha) -> a local folder.
  Works offline from the HF cache (`HF_HUB_OFFLINE=1`) and says what it tried when it fails.
- `HubPushCallback`: takes over pushing from the HF Trainer. Each saved `checkpoint-N` goes to branch
  `step-{N:06d}` (open-r1 style), the final model to `main`, each with a model card; uploads run in one
  background worker with retries, and a local checkpoint is deleted (`save_total_limit`) only once uploaded.
- Model cards: `render_model_card` fills `templates/oneshot_model_card.md` with huggingface_hub's
  `ModelCard`/`ModelCardData`; eval results become `model-index` entries (`EvalResult`) carrying the protocol.
- `push_eval_results` merges `oneshot-trl eval` results into the card of a repo revision;
  `list_step_revisions` lists the step branches; `main` is `oneshot-trl card <repo-or-run-dir>`.

Tokens are never printed or logged: HfApi gets them, and anything we log or render is scrubbed.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.resources
import json
import logging
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

# Each saved checkpoint goes to its own branch, open-r1 style; zero padded so branches sort by step.
STEP_BRANCH_RE = re.compile(r"^step-(\d+)$")
_COMMIT_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def step_branch(step: int) -> str:
    """The Hub branch that holds the checkpoint saved at `step`: `step-000020`."""
    return f"step-{int(step):06d}"


class ModelResolutionError(ValueError):
    """A model could not be resolved to a local folder; the message says what was tried."""


@dataclass
class ResolvedModel:
    path: str  # local folder with config.json, weights, tokenizer files
    revision: str | None  # the revision asked for (None: a local dir, or the default branch of a Hub repo)
    commit_sha: str | None  # the Hub commit the files come from (None for a local dir)
    repo_id: str | None  # None for a local dir


def _looks_like_path(name: str) -> bool:
    # A Hub id has at most one "/"; anything else path-like is a local path that does not exist.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _resolve_local(path: Path, revision: str | None) -> ResolvedModel:
    if revision is None or revision == "main":
        return ResolvedModel(path=str(path), revision=None, commit_sha=None, repo_id=None)
    # A local training run dir stands in for its Hub repo: `step-000020` is `checkpoint-20` there.
    candidates = [path / revision]
    match = STEP_BRANCH_RE.match(revision)
    if match:
        candidates.insert(0, path / f"checkpoint-{int(match.group(1))}")
    for candidate in candidates:
        if candidate.is_dir():
            return ResolvedModel(path=str(candidate), revision=revision, commit_sha=None, repo_id=None)
    tried = ", ".join(str(c) for c in candidates)
    raise ModelResolutionError(
        f"Revision {revision!r} of the local directory {str(path)!r} not found (looked for {tried}). "
        "Local directories have no Hub revisions; pass the checkpoint folder itself or a Hub repo id."
    )


def _cached_revisions(repo_id: str, cache_dir: str | None) -> list[str]:
    """Branch/tag names cached locally for `repo_id` (for error messages)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    refs = (
        Path(cache_dir or constants.HF_HUB_CACHE)
        / repo_folder_name(repo_id=repo_id, repo_type="model")
        / "refs"
    )
    if not refs.is_dir():
        return []
    return sorted(p.relative_to(refs).as_posix() for p in refs.rglob("*") if p.is_file())


def resolve_model(
    name_or_path: str,
    revision: str | None = None,
    token: str | None = None,
    allow_patterns: list[str] | str | None = None,
    cache_dir: str | None = None,
) -> ResolvedModel:
    """Resolve a local directory or a Hub model id (at `revision`) to a local folder.

    A local directory is returned as-is (for a training run dir, revision `step-000020` maps to its
    `checkpoint-20`). Otherwise the snapshot is fetched with `huggingface_hub.snapshot_download`, which uses the
    local cache when offline (`HF_HUB_OFFLINE=1`). The commit sha comes from the snapshot folder name.
    Raises `ModelResolutionError` (a `ValueError`) for an invalid id, an unknown repo or revision, or a model
    that is neither cached nor reachable.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    name_or_path = str(name_or_path)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return _resolve_local(local, revision)
    if _looks_like_path(name_or_path):
        raise ModelResolutionError(f"Local model directory {name_or_path!r} does not exist.")
    try:
        validate_repo_id(name_or_path)
    except HFValidationError as err:
        raise ModelResolutionError(
            f"{name_or_path!r} is neither an existing local directory nor a valid Hub repo id ({err})."
        ) from None

    asked = revision or "main"
    offline = constants.is_offline_mode()
    where = (
        "the local HF cache (offline mode, HF_HUB_OFFLINE=1)" if offline else "the Hub and the local HF cache"
    )
    try:
        # local_files_only when offline: otherwise a commit-sha revision goes straight to a tree listing request.
        path = snapshot_download(
            name_or_path,
            revision=revision,
            token=token,
            allow_patterns=allow_patterns,
            cache_dir=cache_dir,
            local_files_only=offline,
        )
    except RevisionNotFoundError:
        raise ModelResolutionError(
            f"Revision {asked!r} not found in Hub repo {name_or_path!r} "
            f"(list its step branches with `oneshot_trl.hub.list_step_revisions`)."
        ) from None
    except GatedRepoError:
        raise ModelResolutionError(
            f"Hub repo {name_or_path!r} is gated: accept its terms on the Hub and pass a token (or set HF_TOKEN)."
        ) from None
    except RepositoryNotFoundError:
        raise ModelResolutionError(
            f"Hub repo {name_or_path!r} not found (or private without a valid token), and no local directory "
            "of that name exists."
        ) from None
    except LocalEntryNotFoundError as err:
        cached = _cached_revisions(name_or_path, cache_dir)
        if cached:
            detail = f"the cache has revisions {cached} of it, not {asked!r}"
        else:
            detail = "it is not in the cache at all"
        raise ModelResolutionError(
            f"Could not resolve {name_or_path!r} at revision {asked!r} from {where}: {detail}. "
            f"({type(err).__name__}: {err})"
        ) from None
    commit_sha = Path(path).name
    return ResolvedModel(
        path=str(path),
        revision=revision,
        commit_sha=commit_sha if _COMMIT_SHA_RE.match(commit_sha) else None,
        repo_id=name_or_path,
    )


# --------------------------------------------------------------------------------------------------------------
# Secrets: never in logs, cards or uploaded recipes
# --------------------------------------------------------------------------------------------------------------

_SECRET_KEY_RE = re.compile(
    r"^(\s*-?\s*[\w.-]*(?:token|secret|password|api_key|apikey)[\w.-]*\s*:\s*)(.+?)\s*$", re.I
)
_REDACTED = "<redacted>"


def _known_tokens(*extra: str | None) -> list[str]:
    from huggingface_hub import get_token

    tokens = [*extra, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    try:
        tokens.append(get_token())
    except Exception:  # a broken token file must not break a push or a log line
        pass
    # Short strings would redact ordinary words; real tokens are long.
    return sorted({t for t in tokens if t and len(t) >= 8}, key=len, reverse=True)


def scrub(text: str, *tokens: str | None) -> str:
    """`text` with every known token (given, HF_TOKEN, the cached login) replaced by <redacted>."""
    for token in _known_tokens(*tokens):
        text = text.replace(token, _REDACTED)
    return text


def redact_recipe(text: str, *tokens: str | None) -> str:
    """A recipe YAML with the values of token/secret/password keys redacted (line-wise, comments kept)."""
    lines = []
    for line in text.splitlines():
        match = _SECRET_KEY_RE.match(line)
        if match and match.group(2).split("#")[0].strip() not in ("null", "~", "''", '""', "None"):
            line = f"{match.group(1)}{_REDACTED}"
        lines.append(line)
    return scrub("\n".join(lines), *tokens) + ("\n" if text.endswith("\n") else "")


# --------------------------------------------------------------------------------------------------------------
# Run data: what a training run left in output_dir (layout in the team plan)
# --------------------------------------------------------------------------------------------------------------

HUB_PUSHES_FILE = "hub_pushes.json"
# Resume-only state, pickles and DeepSpeed shards: never uploaded.
CHECKPOINT_IGNORE_PATTERNS = (
    "optimizer.pt",
    "optimizer.bin",
    "optimizer_*.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "*.pth",
    "training_args.bin",
    "entropy_ctrl_state.json",
    "global_step*",
    "global_step*/**",
    "latest",
    "zero_to_fp32.py",
    "README.md",  # replaced by our card
)
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("Could not read %s: %s", path, err)
        return None


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _checkpoint_steps(output_dir: Path) -> dict[int, Path]:
    steps = {}
    for path in output_dir.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            steps[int(match.group(1))] = path
    return dict(sorted(steps.items()))


def _eval_results_by_step(output_dir: Path) -> dict[int, dict]:
    """`eval/step-000020/results.json` files of the in-training evals, by step."""
    results = {}
    for path in sorted((output_dir / "eval").glob("*/results.json")):
        match = STEP_BRANCH_RE.match(path.parent.name)
        data = _read_json(path) if match else None
        if isinstance(data, dict):
            results[int(match.group(1))] = data
    return dict(sorted(results.items()))


@dataclass
class RunData:
    """Everything a card needs from a run: files of `output_dir` (or the same files from a Hub revision)."""

    run_info: dict = field(default_factory=dict)  # oneshot_run.json
    recipe_text: str | None = None  # recipe.yaml, redacted
    trainer_state: dict = field(default_factory=dict)  # trainer_state.json (of the checkpoint, for a step)
    eval_by_step: dict[int, dict] = field(default_factory=dict)  # in-training eval results.json, by step
    hub_record: dict = field(default_factory=dict)  # hub_pushes.json: repo, hyperparameters, hardware, pushes

    @classmethod
    def from_run_dir(cls, output_dir: str | os.PathLike, step: int | None = None) -> RunData:
        out = Path(output_dir)
        recipe = out / "recipe.yaml"
        state_path = out / f"checkpoint-{step}" / "trainer_state.json" if step is not None else None
        if state_path is None or not state_path.exists():
            state_path = out / "trainer_state.json"
        if not state_path.exists():  # no final state yet: the latest checkpoint's
            checkpoints = _checkpoint_steps(out)
            if checkpoints:
                state_path = list(checkpoints.values())[-1] / "trainer_state.json"
        return cls(
            run_info=_read_json(out / "oneshot_run.json") or {},
            recipe_text=redact_recipe(recipe.read_text()) if recipe.exists() else None,
            trainer_state=_read_json(state_path) or {},
            eval_by_step=_eval_results_by_step(out),
            hub_record=_read_json(out / HUB_PUSHES_FILE) or {},
        )

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


def _protocol_of(results: dict) -> tuple[str, str]:
    protocol = results.get("protocol") or {}
    if isinstance(protocol, str):
        return protocol, str(results.get("protocol_hash") or "unknown")
    return str(protocol.get("name") or "custom"), str(protocol.get("hash") or "unknown")


def results_to_eval_results(results: dict) -> list[EvalResult]:
    """One `EvalResult` per benchmark and metric of an `oneshot-trl eval` results.json dict.

    Scores are in percent. The protocol (name@hash) is the `metric_config` and, with the grader, sample counts,
    CI, revision and commit, in `metric_args`, so results of different protocols never overwrite each other.
    """
    protocol, protocol_hash = _protocol_of(results)
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
            lines.append(
                f"| {r.dataset_name} | {r.metric_type} | {_fmt(r.metric_value)} | {ci_text} "
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


def _step_url(repo_id: str, revision: str) -> str:
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
        cell = f"[{step}]({_step_url(repo_id, revision)})" if revision in pushed else str(step)
        scores = [(res.get("benchmarks") or {}).get(b, {}).get("accuracy") for b in benches]
        texts = [_fmt(100 * s) if isinstance(s, (int, float)) else "" for s in scores]
        average = res.get("average")
        texts.append(_fmt(100 * average) if isinstance(average, (int, float)) else "")
        lines.append(f"| {cell} | " + " | ".join(texts) + " |")
    protocol, phash = _protocol_of(next(iter(eval_by_step.values())))
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
    run: RunData,
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
    for key in ("reward", "grader"):  # script arguments, recorded in oneshot_run.json
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
        step_links=[
            {"revision": r, "step": int(STEP_BRANCH_RE.match(r).group(1)), "url": _step_url(repo_id, r)}
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


def _eval_results_for(run: RunData, step: int | None) -> list[EvalResult]:
    """Eval results a freshly rendered card starts from: the in-training eval of that step (or the last step)."""
    if step is None:
        step = (run.trainer_state or {}).get("global_step")
    results = run.eval_by_step.get(step) if step is not None else None
    return results_to_eval_results(results) if results else []


# --------------------------------------------------------------------------------------------------------------
# Pushing: retries, one ordered background worker, the Trainer callback
# --------------------------------------------------------------------------------------------------------------


_sleep = time.sleep  # the backoff sleep (tests record it)


def _is_retryable(err: Exception) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(err, HfHubHTTPError) and err.response is not None:
        # Bad request, auth, not found: retrying the same call cannot help.
        return err.response.status_code not in (400, 401, 403, 404, 422)
    return True


def with_retries(
    fn: Callable[[], Any],
    what: str,
    *,
    max_attempts: int = 5,
    backoff_s: float = 2.0,
    max_backoff_s: float = 120.0,
    token: str | None = None,
) -> tuple[Any, int]:
    """Call `fn` until it succeeds, sleeping backoff_s * 2**k between attempts; returns (result, attempts)."""
    for attempt in range(1, max_attempts + 1):
        try:
            return fn(), attempt
        except Exception as err:
            message = scrub(f"{type(err).__name__}: {err}", token)
            if attempt == max_attempts or not _is_retryable(err):
                logger.error("%s failed (attempt %d/%d, giving up): %s", what, attempt, max_attempts, message)
                raise
            delay = min(backoff_s * 2 ** (attempt - 1), max_backoff_s)
            logger.warning(
                "%s failed (attempt %d/%d): %s; retrying in %.1fs",
                what,
                attempt,
                max_attempts,
                message,
                delay,
            )
            _sleep(delay)
    raise AssertionError("unreachable")


def _collect_files(folder: Path, ignore: Iterable[str], recursive: bool = True) -> dict[str, Path]:
    """path_in_repo -> local path of the files of `folder` not matching any ignore pattern."""
    ignore = tuple(ignore)
    files = {}
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat) for pat in ignore):
            continue
        files[rel] = path
    return files


def _accuracy_history_until(path: Path, step: int | None) -> bytes | None:
    """accuracy_history.jsonl as of `step` (the file keeps growing while an upload waits in the queue)."""
    if not path.exists():
        return None
    if step is None:
        return path.read_bytes()
    kept = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                kept.append(line)
        except (ValueError, AttributeError, TypeError):
            continue
    return ("\n".join(kept) + "\n").encode() if kept else b""


@dataclass
class PushRecord:
    kind: str  # "checkpoint" or "final"
    revision: str
    step: int | None
    local_path: str
    status: str = "pending"  # pending | ok | failed
    attempts: int = 0
    commit: str | None = None
    url: str | None = None
    files: list[str] = field(default_factory=list)
    error: str | None = None
    local_deleted: bool = False


class HubPushCallback(TrainerCallback):
    """Push every saved checkpoint to branch `step-{N:06d}` and the final model to `main`, with model cards.

    Create it with `from_training_args` *before* the Trainer (which reads `push_to_hub` at init): it switches
    the Trainer's own pushing and checkpoint rotation off and does both itself. Uploads run in one background
    thread, in order, with retries; a local checkpoint is deleted for `save_total_limit` only after its upload
    succeeded. After `trainer.save_model(output_dir)`, call `push_final()`: it pushes `main`, waits for the
    queue and writes `output_dir/hub_pushes.json` (also updated after each push).
    """

    def __init__(
        self,
        repo_id: str,
        output_dir: str | os.PathLike,
        *,
        token: str | None = None,
        private: bool | None = None,
        recipe_path: str | os.PathLike | None = None,
        run_info: dict | None = None,
        save_total_limit: int | None = None,
        hyperparameters: dict | None = None,
        hardware: str | None = None,
        max_attempts: int = 5,
        backoff_s: float = 2.0,
        max_backoff_s: float = 120.0,
        api: Any = None,
    ):
        self.repo_id = repo_id
        self.output_dir = Path(output_dir)
        self.private = private
        self.recipe_path = Path(recipe_path) if recipe_path else None
        self.run_info = run_info or {}
        self.save_total_limit = save_total_limit
        self.hyperparameters = hyperparameters or {}
        self.hardware = hardware or describe_hardware()
        self.retry = {"max_attempts": max_attempts, "backoff_s": backoff_s, "max_backoff_s": max_backoff_s}
        self._token = token  # only handed to HfApi and used to scrub messages; never logged
        self.api = api if api is not None else HfApi(token=token)
        self.records: list[PushRecord] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._repo_ready = False
        self._base_commit: str | None = None
        self._best_checkpoint: str | None = None
        self.is_main_process = True  # only the main process pushes (set from the TrainingArguments)

    @classmethod
    def from_training_args(
        cls, args: Any, recipe_path: str | os.PathLike | None, run_info: dict, **kwargs: Any
    ) -> HubPushCallback:
        """Build from TrainingArguments (`hub_model_id`, `hub_token`/HF_TOKEN, `hub_private_repo`,
        `save_total_limit`) and take pushing and checkpoint rotation over from the Trainer."""
        repo_id = args.hub_model_id or Path(args.output_dir).absolute().name  # as the Trainer names it
        callback = cls(
            repo_id,
            args.output_dir,
            token=getattr(args, "hub_token", None),
            private=getattr(args, "hub_private_repo", None),
            recipe_path=recipe_path,
            run_info=run_info,
            save_total_limit=args.save_total_limit,
            hyperparameters=hyperparameters_from(args),
            hardware=describe_hardware(args),
            **kwargs,
        )
        callback.is_main_process = getattr(args, "process_index", 0) == 0
        # The Trainer would otherwise push output_dir itself and rotate checkpoints before they are uploaded.
        args.push_to_hub = False
        args.save_total_limit = None
        return callback

    # ---- Trainer events -------------------------------------------------------------------------------------

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return control
        self._best_checkpoint = state.best_model_checkpoint
        checkpoint = self.output_dir / f"checkpoint-{state.global_step}"
        if not checkpoint.is_dir():
            logger.warning(
                "on_save at step %d but %s does not exist: nothing to push", state.global_step, checkpoint
            )
            return control
        self.enqueue_checkpoint(state.global_step, checkpoint)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self._worker is not None:
            # The final model is saved after train() returns, so main is pushed by push_final(); here the
            # checkpoint uploads are flushed so the summary is complete even if push_final is never called.
            self.wait()
            self._log_summary()
        return control

    # ---- Public API -----------------------------------------------------------------------------------------

    def enqueue_checkpoint(self, step: int, checkpoint: str | os.PathLike) -> PushRecord:
        """Queue the upload of `checkpoint` (a checkpoint-N folder) to branch step-N."""
        run_files = self._snapshot_run_files(step)
        record = PushRecord("checkpoint", step_branch(step), step, str(checkpoint))
        self._submit(record, lambda: self._push_checkpoint(record, Path(checkpoint), run_files))
        return record

    def push_final(self, model_dir: str | os.PathLike | None = None, timeout: float | None = None) -> dict:
        """Push the saved final model (default: output_dir) to `main`, wait for all uploads, return the summary."""
        if not self.is_main_process:
            return {}
        folder = Path(model_dir) if model_dir is not None else self.output_dir
        run_files = self._snapshot_run_files(None)
        record = PushRecord("final", "main", None, str(folder))
        self._submit(record, lambda: self._push_final(record, folder, run_files))
        self.wait(timeout)
        self._log_summary()
        return self.summary()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queue is empty (True) or `timeout` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = any(r.status == "pending" for r in self.records)
            if not pending:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def summary(self) -> dict:
        with self._lock:
            records = [dict(r.__dict__) for r in self.records]
        for r in records:
            r["url"] = r["url"] or _step_url(self.repo_id, r["revision"])
        return {
            "repo_id": self.repo_id,
            "url": f"https://huggingface.co/{self.repo_id}",
            "private": self.private,
            "pushed": sum(r["status"] == "ok" for r in records),
            "failed": sum(r["status"] == "failed" for r in records),
            "pending": sum(r["status"] == "pending" for r in records),
            "hyperparameters": self.hyperparameters,
            "hardware": self.hardware,
            "versions": library_versions(),
            "pushes": records,
        }

    # ---- Worker -------------------------------------------------------------------------------------------

    def _submit(self, record: PushRecord, job: Callable[[], None]) -> None:
        with self._lock:
            self.records.append(record)
            if self._worker is None:
                # One worker: uploads happen in save order and never compete for bandwidth.
                self._worker = threading.Thread(target=self._work, name="oneshot-trl-hub-push", daemon=True)
                self._worker.start()
        self._queue.put((record, job))

    def _work(self) -> None:
        while True:
            record, job = self._queue.get()
            try:
                job()
            except Exception as err:  # upload errors are logged by with_retries; training must go on
                message = scrub(f"{type(err).__name__}: {err}", self._token)
                if record.status == "ok":  # uploaded; what failed came after (e.g. checkpoint rotation)
                    logger.warning("After pushing %s: %s", record.local_path, message)
                else:
                    record.status, record.error = "failed", message
            finally:
                if record.status == "pending":
                    record.status = "failed"
                self._write_summary()
                self._queue.task_done()

    def _write_summary(self) -> None:
        try:
            _write_json_atomic(self.output_dir / HUB_PUSHES_FILE, self.summary())
        except OSError as err:
            logger.warning("Could not write %s: %s", self.output_dir / HUB_PUSHES_FILE, err)

    def _log_summary(self) -> None:
        summary = self.summary()
        lines = [f"Hub pushes to {summary['url']}: {summary['pushed']} ok, {summary['failed']} failed"]
        for r in summary["pushes"]:
            where = f"{self.repo_id}@{r['revision']}"
            detail = f"commit {r['commit']}" if r["status"] == "ok" else (r["error"] or r["status"])
            lines.append(f"  {r['kind']:<10} {r['local_path']} -> {where}: {r['status']} ({detail})")
        logger.info("\n".join(lines))

    def _call(self, what: str, fn: Callable[[], Any]) -> tuple[Any, int]:
        return with_retries(fn, what, token=self._token, **self.retry)

    def _ensure_repo(self) -> None:
        if self._repo_ready:
            return
        url, _ = self._call(
            f"Creating repo {self.repo_id}",
            lambda: self.api.create_repo(self.repo_id, private=self.private, exist_ok=True),
        )
        self.repo_id = getattr(url, "repo_id", None) or self.repo_id  # the namespace is filled in by the Hub
        commits, _ = self._call(
            f"Listing commits of {self.repo_id}", lambda: self.api.list_repo_commits(self.repo_id)
        )
        # Branch from the initial commit (open-r1 does too) so a step branch holds only its checkpoint.
        self._base_commit = commits[-1].commit_id if commits else None
        self._repo_ready = True

    def _snapshot_run_files(self, step: int | None) -> dict[str, bytes]:
        """The run files as they are now (small; read at save time so each branch gets its step's state)."""
        files: dict[str, bytes] = {}
        recipe = (
            self.recipe_path
            if self.recipe_path and self.recipe_path.exists()
            else self.output_dir / "recipe.yaml"
        )
        if recipe.exists():
            files["recipe.yaml"] = redact_recipe(recipe.read_text(), self._token).encode()
        run_info = self.output_dir / "oneshot_run.json"
        if run_info.exists():
            files["oneshot_run.json"] = run_info.read_bytes()
        elif self.run_info:
            files["oneshot_run.json"] = json.dumps(self.run_info, indent=2).encode()
        history = _accuracy_history_until(self.output_dir / "accuracy_history.jsonl", step)
        if history is not None:
            files["accuracy_history.jsonl"] = history
        return files

    def _run_data(self, step: int | None, checkpoint: Path | None) -> RunData:
        run = RunData.from_run_dir(self.output_dir, step)
        if checkpoint is not None and (checkpoint / "trainer_state.json").exists():
            run.trainer_state = _read_json(checkpoint / "trainer_state.json") or {}
        if not run.run_info:
            run.run_info = self.run_info
        if self.recipe_path and self.recipe_path.exists():
            run.recipe_text = redact_recipe(self.recipe_path.read_text(), self._token)
        return run

    def _pushed_steps(self) -> list[str]:
        with self._lock:
            return [r.revision for r in self.records if r.kind == "checkpoint" and r.status == "ok"]

    def _card(self, run: RunData, step: int | None, extra_steps: Iterable[str] = ()) -> bytes:
        card = render_model_card(
            self.repo_id,
            run,
            step=step,
            step_revisions=[*self._pushed_steps(), *extra_steps],
            eval_results=_eval_results_for(run, step),
            hyperparameters=self.hyperparameters,
            hardware=self.hardware,
        )
        return scrub(str(card), self._token).encode()

    def _commit(self, record: PushRecord, files: dict[str, Path | bytes], message: str) -> None:
        """Make `record.revision` hold exactly `files` (stale files of an earlier run are deleted), one commit."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        self._ensure_repo()
        branch = record.revision
        if branch != "main":
            self._call(
                f"Creating branch {branch} of {self.repo_id}",
                lambda: self.api.create_branch(
                    self.repo_id, branch=branch, revision=self._base_commit, exist_ok=True
                ),
            )

        def commit():
            record.attempts += 1
            existing = self.api.list_repo_files(self.repo_id, revision=branch)
            ops: list = [
                CommitOperationAdd(
                    path_in_repo=name, path_or_fileobj=str(src) if isinstance(src, Path) else src
                )
                for name, src in files.items()
            ]
            ops += [
                CommitOperationDelete(path_in_repo=p)
                for p in existing
                if p not in files and p != ".gitattributes"
            ]
            return self.api.create_commit(
                self.repo_id, operations=ops, commit_message=message, revision=branch
            )

        info, attempts = self._call(f"Uploading {record.local_path} to {self.repo_id}@{branch}", commit)
        record.commit = getattr(info, "oid", None)
        record.url = _step_url(self.repo_id, branch)
        record.files = sorted(files)
        record.status = "ok"
        logger.info(
            "Pushed %s to %s (commit %s, %d files, attempt %d)",
            record.local_path,
            record.url,
            record.commit,
            len(files),
            attempts,
        )

    def _push_checkpoint(self, record: PushRecord, checkpoint: Path, run_files: dict[str, bytes]) -> None:
        files: dict[str, Path | bytes] = dict(_collect_files(checkpoint, CHECKPOINT_IGNORE_PATTERNS))
        files.update(run_files)
        results = self.output_dir / "eval" / record.revision / "results.json"
        if results.exists():
            files[f"eval/{record.revision}/results.json"] = results.read_bytes()
        files["README.md"] = self._card(
            self._run_data(record.step, checkpoint), record.step, [record.revision]
        )
        self._commit(record, files, f"Checkpoint at step {record.step}")
        self._rotate_checkpoints()

    def _push_final(self, record: PushRecord, folder: Path, run_files: dict[str, bytes]) -> None:
        ignore = (*CHECKPOINT_IGNORE_PATTERNS, HUB_PUSHES_FILE, "completions.jsonl")
        files: dict[str, Path | bytes] = dict(_collect_files(folder, ignore, recursive=False))
        files.update(run_files)
        for path in sorted((self.output_dir / "eval").glob("*/results.json")):
            files[f"eval/{path.parent.name}/results.json"] = path.read_bytes()
        files["README.md"] = self._card(self._run_data(None, None), None)
        self._commit(record, files, "Final model")

    def _rotate_checkpoints(self) -> None:
        """Delete the oldest *uploaded* checkpoints beyond save_total_limit (never the newest, never the best)."""
        if not self.save_total_limit or self.save_total_limit <= 0:
            return
        with self._lock:
            uploaded = {r.step: r for r in self.records if r.kind == "checkpoint" and r.status == "ok"}
        local = _checkpoint_steps(self.output_dir)
        excess = len(local) - self.save_total_limit
        protected = {max(local, default=None)}
        for step, path in local.items():
            if excess <= 0:
                break
            best = self._best_checkpoint and Path(self._best_checkpoint).resolve() == path.resolve()
            if step in protected or step not in uploaded or best:
                continue
            shutil.rmtree(path, ignore_errors=True)
            uploaded[step].local_deleted = True
            excess -= 1
            logger.info(
                "Deleted local %s (uploaded to %s; save_total_limit=%d)",
                path,
                uploaded[step].url,
                self.save_total_limit,
            )


# --------------------------------------------------------------------------------------------------------------
# Cards on the Hub: eval results, step revisions
# --------------------------------------------------------------------------------------------------------------


def list_step_revisions(repo_id: str, token: str | None = None, api: Any = None) -> list[str]:
    """The `step-NNNNNN` branches of a Hub repo, sorted by step.

    A local training run dir stands in for its repo (as in `resolve_model`): its `checkpoint-N` folders.
    """
    if Path(repo_id).expanduser().is_dir():
        return [step_branch(step) for step in _checkpoint_steps(Path(repo_id).expanduser())]
    api = api if api is not None else HfApi(token=token)
    refs = api.list_repo_refs(repo_id)
    names = [b.name for b in refs.branches if STEP_BRANCH_RE.match(b.name)]
    return sorted(names, key=lambda name: int(STEP_BRANCH_RE.match(name).group(1)))


def _download_text(api: Any, repo_id: str, filename: str, revision: str) -> str | None:
    """A file of a Hub revision as text, or None when that revision has no such file."""
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = api.hf_hub_download(repo_id, filename, revision=revision)
    except EntryNotFoundError:
        return None
    return Path(path).read_text()


def push_eval_results(
    repo_id: str,
    results: dict,
    revision: str = "main",
    token: str | None = None,
    api: Any = None,
    *,
    max_attempts: int = 5,
    backoff_s: float = 2.0,
) -> ModelCard:
    """Merge an `oneshot-trl eval` results.json dict into the card of `repo_id` at `revision` and upload it.

    Results already on the card are kept; one with the same benchmark, metric and protocol (name@hash) is
    replaced. A revision without a README gets a fresh card. Returns the uploaded card.
    """
    api = api if api is not None else HfApi(token=token)
    retry = {"max_attempts": max_attempts, "backoff_s": backoff_s, "token": token}
    text, _ = with_retries(
        lambda: _download_text(api, repo_id, "README.md", revision), "Downloading card", **retry
    )
    if text is None:
        step = STEP_BRANCH_RE.match(revision)
        card = render_model_card(repo_id, RunData(), step=int(step.group(1)) if step else None)
    else:
        card = ModelCard(text, ignore_metadata_errors=True)
    merged = merge_eval_results(card.data.eval_results or [], results_to_eval_results(results))
    card = set_card_eval_results(card, merged, repo_id)
    content = scrub(str(card), token).encode()
    protocol, phash = _protocol_of(results)
    with_retries(
        lambda: api.upload_file(
            path_or_fileobj=content,
            path_in_repo="README.md",
            repo_id=repo_id,
            revision=revision,
            commit_message=f"Eval results ({protocol}@{phash}) for {', '.join(results.get('benchmarks') or {})}",
        ),
        f"Uploading card of {repo_id}@{revision}",
        **retry,
    )
    logger.info("Pushed %d eval results to the card of %s@%s", len(merged), repo_id, revision)
    return card


def _run_data_from_hub(api: Any, repo_id: str, revision: str) -> tuple[RunData, ModelCard | None]:
    """The run files uploaded with a revision (recipe, run info, trainer state, eval results) and its card."""
    files = set(api.list_repo_files(repo_id, revision=revision))

    def text(name: str) -> str | None:
        return _download_text(api, repo_id, name, revision) if name in files else None

    def load(name: str) -> Any:
        content = text(name)
        return json.loads(content) if content else None

    eval_by_step = {}
    for name in sorted(files):
        match = re.fullmatch(r"eval/step-(\d+)/results\.json", name)
        if match:
            eval_by_step[int(match.group(1))] = load(name)
    readme = text("README.md")
    recipe = text("recipe.yaml")
    run = RunData(
        run_info=load("oneshot_run.json") or {},
        recipe_text=redact_recipe(recipe) if recipe else None,
        trainer_state=load("trainer_state.json") or {},
        eval_by_step=eval_by_step,
    )
    return run, ModelCard(readme, ignore_metadata_errors=True) if readme else None


def _load_results_files(paths: Iterable[str]) -> list[EvalResult]:
    out: list[EvalResult] = []
    for path in paths:
        out = merge_eval_results(out, results_to_eval_results(json.loads(Path(path).read_text())))
    return out


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oneshot-trl card",
        description="Render (and optionally push) the model card of a training run dir or a Hub repo revision. "
        "The token comes from HF_TOKEN or `hf auth login`, never from the command line.",
    )
    parser.add_argument("target", help="A training run output_dir, or a Hub repo id (user/repo).")
    parser.add_argument(
        "--revision",
        default=None,
        help="step-NNNNNN for a checkpoint's card (default: the final model, main).",
    )
    parser.add_argument(
        "--results",
        nargs="+",
        default=[],
        help="results.json files of `oneshot-trl eval` to merge into the card.",
    )
    parser.add_argument("--output", default=None, help="Write the card here (default: stdout unless --push).")
    parser.add_argument("--push", action="store_true", help="Upload the card as README.md of that revision.")
    parser.add_argument(
        "--repo-id", default=None, help="Hub repo of a run dir (default: from hub_pushes.json or the recipe)."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    revision = args.revision or "main"
    step_match = STEP_BRANCH_RE.match(revision)
    step = int(step_match.group(1)) if step_match else None
    if revision != "main" and step is None:
        print(f"oneshot-trl card: --revision must be main or step-NNNNNN, got {revision!r}", file=sys.stderr)
        return 2
    api = HfApi()
    try:
        extra = _load_results_files(args.results)
        if Path(args.target).is_dir():
            run = RunData.from_run_dir(args.target, step)
            repo_id = (
                args.repo_id
                or run.hub_record.get("repo_id")
                or run.recipe().get("hub_model_id")
                or Path(args.target).resolve().name
            )
            kept: list[EvalResult] = []
            if args.push:  # the Hub's branches, and the results already on the card we replace
                steps = list_step_revisions(repo_id, api=api)
                old_text = _download_text(api, repo_id, "README.md", revision)
                if old_text:
                    kept = ModelCard(old_text, ignore_metadata_errors=True).data.eval_results or []
            else:
                steps = [
                    p["revision"]
                    for p in run.hub_record.get("pushes", [])
                    if p.get("kind") == "checkpoint" and p.get("status") == "ok"
                ]
        else:
            repo_id = args.target
            run, old_card = _run_data_from_hub(api, repo_id, revision)
            kept = (old_card.data.eval_results or []) if old_card is not None else []
            steps = list_step_revisions(repo_id, api=api)
        # In-training evals, then what the card already holds (newer evals), then --results: later ones win.
        results = merge_eval_results(merge_eval_results(_eval_results_for(run, step), kept), extra)
        card = render_model_card(repo_id, run, step=step, step_revisions=steps, eval_results=results)
    except (OSError, ValueError) as err:
        print(f"oneshot-trl card: {scrub(str(err))}", file=sys.stderr)
        return 1
    content = str(card)
    if args.output:
        Path(args.output).write_text(content)
        print(f"Wrote {args.output}", file=sys.stderr)
    if args.push:
        with_retries(
            lambda: api.upload_file(
                path_or_fileobj=content.encode(),
                path_in_repo="README.md",
                repo_id=repo_id,
                revision=revision,
                commit_message="Update model card (oneshot-trl card)",
            ),
            f"Uploading card of {repo_id}@{revision}",
        )
        print(f"Pushed the card to https://huggingface.co/{repo_id}/tree/{revision}", file=sys.stderr)
    if not args.output and not args.push:
        print(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
