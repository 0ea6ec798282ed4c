"""The lab's default demo and the paper's comparisons at micro scale.

Each experiment is a list of arms (lab RL runs that differ in one setting), run for several seeds from
the same base model and reported as mean ± std over seeds on the held-out split. The task is built so
that every comparison can come out either way: the base model can gain from format alone (boxing its
answers) or from arithmetic (fewer wrong sums), and the arms only differ in what the paper varies. The
numbers are whatever the runs produce; nothing here decides the outcome.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from oneshot_trl.lab import report
from oneshot_trl.lab.base import describe as describe_base
from oneshot_trl.lab.runs import METRICS, RLRunConfig, evaluate_lab, run, saturation
from oneshot_trl.lab.task import DEMO_EXAMPLE, parse_example, splits

logger = logging.getLogger(__name__)

LAB_RESULTS_FILE = "results.json"  # the lab's summary (not an eval's layout.RESULTS_FILE)
_SHORTCUT = parse_example(DEMO_EXAMPLE).shortcut_answer  # "51": the incorrect label of `controls`


@dataclass(frozen=True)
class Arm:
    name: str
    config: RLRunConfig
    group: str | None = None  # arms of one group are also reported pooled (selection: top-variance vs random)


@dataclass(frozen=True)
class Experiment:
    name: str
    claim: str  # what the paper reports, that this experiment puts to a micro-scale test
    arms: tuple[Arm, ...] = ()
    curves: bool = False  # report held-out accuracy against step (post-saturation) rather than bars
    # arms that can only be named after a run (selection): (base_model, output_dir, seeds, progress) -> arms
    build_arms: Callable[..., tuple[Arm, ...]] | None = field(default=None, repr=False)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _full_set() -> tuple[str, ...]:
    return tuple(f"{p.a}+{p.b}" for p in splits()["train"])


def _selection_arms(
    base_model: str, output_dir: Path, seeds: Sequence[int], progress: bool, top: int = 3
) -> tuple[Arm, ...]:
    """The paper's data selection at micro scale: a short full-set run, rank by accuracy-history std.

    The candidates are the first 64 problems of the RL pool, each seen 12 times in 48 steps: long enough for the
    full-set run to saturate, as the paper ranks on a 500-step history. Arms: the `top` highest-variance examples
    vs `top` random candidates, each trained alone (1-shot).
    """
    from oneshot_trl.histories import load_history
    from oneshot_trl.run import Run
    from oneshot_trl.select import rank_examples

    candidates = _full_set()[:64]
    history_run = output_dir / "history-run"
    config = RLRunConfig(examples=candidates, steps=48, prompts_per_step=16, seed=0, eval_every=24)
    if not Run(history_run / "run").accuracy_history():
        run(config, base_model, history_run, progress=progress)
    ranking = rank_examples(load_history(str(history_run / "run")), method="std")
    ranked = [
        re.sub(r"\D*(\d+)\+(\d+)\D*", r"\1+\2", r.example.problem or r.example.example_id) for r in ranking
    ]
    rng = random.Random(1234)
    randoms = rng.sample([c for c in candidates if c not in ranked[:top]], top)
    (output_dir / "ranking.json").write_text(json.dumps([r.to_dict() for r in ranking], indent=2) + "\n")
    arms = [
        Arm(f"top-{i + 1} variance ({ex})", RLRunConfig(examples=(ex,)), group="top variance")
        for i, ex in enumerate(ranked[:top])
    ]
    arms += [Arm(f"random ({ex})", RLRunConfig(examples=(ex,)), group="random") for ex in randoms]
    return tuple(arms)


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "one-vs-full",
            "1 example does about as well as the full 1.2k set (MATH500 73.6 both, Qwen2.5-Math-1.5B).",
            (
                Arm(f"1 example ({DEMO_EXAMPLE})", RLRunConfig()),
                Arm("full set (256 problems)", RLRunConfig(examples=_full_set())),
            ),
        ),
        Experiment(
            "post-saturation",
            "Train accuracy on the one example saturates early; test accuracy keeps rising long after, helped by "
            "the entropy bonus ({pi1} MATH500 72.8 with 0.001 vs 68.2 without).",
            (
                Arm("entropy 0.001 (paper, the demo)", RLRunConfig()),
                Arm("entropy 0", RLRunConfig(entropy_coeff=0.0)),
                Arm("entropy 0.01", RLRunConfig(entropy_coeff=0.01)),
            ),
            curves=True,
        ),
        Experiment(
            "entropy",
            "An entropy bonus (0.001) helps 1-shot RLVR; exploration matters.",
            (
                Arm("entropy 0", RLRunConfig(entropy_coeff=0.0)),
                Arm("entropy 0.001 (paper)", RLRunConfig(entropy_coeff=0.001)),
                Arm("entropy 0.01", RLRunConfig(entropy_coeff=0.01)),
                Arm("entropy 0.1", RLRunConfig(entropy_coeff=0.1)),
            ),
        ),
        Experiment(
            "entropy-only",
            "Entropy loss alone, no reward at all, lifts MATH500 by 27.4 points.",
            (
                Arm(
                    "no reward, no entropy (weight decay only)", RLRunConfig(reward="none", entropy_coeff=0.0)
                ),
                Arm("no reward, entropy 0.001", RLRunConfig(reward="none", entropy_coeff=0.001)),
                Arm("no reward, entropy 0.01", RLRunConfig(reward="none", entropy_coeff=0.01)),
            ),
        ),
        Experiment(
            "format-only",
            "Part of the gain is format (boxing); format reward alone gets 65.0 vs 73.6 on MATH500 (DSR-sub).",
            (
                Arm("accuracy reward", RLRunConfig()),
                Arm("format reward", RLRunConfig(reward="format")),
            ),
        ),
        Experiment(
            "controls",
            "Spurious Rewards (arXiv 2506.10947), Qwen2.5-Math-7B MATH500: random +21.4, incorrect label +24.1, "
            "majority vote +27.1, format +13.8 vs ground truth +29.1 points; not on Llama3/OLMo2.",
            (
                Arm("accuracy reward", RLRunConfig()),
                Arm("random reward (p 0.5)", RLRunConfig(reward="random")),
                # the shortcut's answer to the example (the carry dropped): the base model's own wrong answer
                Arm(
                    f"incorrect label ({_SHORTCUT})",
                    RLRunConfig(reward="incorrect", incorrect_answer=_SHORTCUT),
                ),
                Arm("majority vote", RLRunConfig(reward="majority")),
                Arm("format reward", RLRunConfig(reward="format")),
            ),
        ),
        Experiment(
            "selection",
            "Examples with high historical variance of training accuracy (pi1) are good 1-shot examples.",
            build_arms=_selection_arms,
        ),
    )
}


def resolve_base(
    base_model: str | None,
    revision: str | None = None,
    pretrain_steps: int | None = None,
    progress: bool = True,
    base_seed: int | None = None,
    pretrain: bool = False,
) -> str:
    """A local folder with the base model: the shipped base (verified by its content hash), a base pretrained
    here (`pretrain`, another `base_seed` or `pretrain_steps`: the shipped base's settings otherwise; cached),
    or `base_model` resolved."""
    if base_model is not None:
        from oneshot_trl.models import resolve_model

        return resolve_model(base_model, revision=revision).path
    from oneshot_trl.lab.base import shipped_base, shipped_config
    from oneshot_trl.lab.pretrain import get_base_model

    config = shipped_config()
    if base_seed is not None:
        config = replace(config, seed=base_seed)
    if pretrain_steps is not None:
        config = replace(config, max_steps=pretrain_steps)
    if config == shipped_config() and not pretrain:
        return str(shipped_base())
    return str(get_base_model(config, progress=progress))


def base_profile(base_model: str, output_dir: Path, eval_limit: int | None, progress: bool) -> dict:
    """What the base model can do, beyond its greedy answers: pass@k over 8 samples at the rollout temperature,
    and each strategy's accuracy when forced by its prefix. Cached next to the lab's own base model."""
    from oneshot_trl.lab.pretrain import forced_strategy_accuracy

    cache = Path(base_model) / "lab_profile.json"
    if eval_limit is None and cache.is_file():
        return json.loads(cache.read_text())
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    sampled = evaluate_lab(model, tokenizer, output_dir / "eval_base_sampled", eval_limit, progress, n=8)
    forced = forced_strategy_accuracy(model, tokenizer, splits()["test"][:eval_limit])
    profile = {
        "pass@k": sampled["pass@k"],
        "sampled_careful_rate": sampled["careful_rate"],
        "forced_strategy_accuracy": forced,
        "n_problems": sampled["n_problems"],
    }
    if eval_limit is None and (Path(base_model) / "lab_base.json").is_file():
        cache.write_text(json.dumps(profile, indent=2) + "\n")
    return profile


def run_demo(
    base_model: str,
    output_dir: str | Path,
    config: RLRunConfig | None = None,
    progress: bool = True,
) -> dict:
    """Base profile, 1-shot RLVR with held-out evals along the way; writes results.json, lab.png, the run."""
    start = time.time()
    config = config or RLRunConfig()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    profile = base_profile(base_model, output_dir, config.eval_limit, progress)
    record = run(config, base_model, output_dir, progress=progress)
    results = {
        "base_model": base_model,
        "base": describe_base(base_model),
        "base_profile": profile,
        **{
            k: record[k]
            for k in (
                "before",
                "after",
                "heldout_curve",
                "train_reward",
                "train_accuracy",
                "train_boxed_rate",
            )
        },
        "entropy": record["entropy"],
        "seconds": round(time.time() - start, 1),
        "checkpoint": record["checkpoint"],
        "config": asdict(config),
        "label": "micro-scale synthetic task (CPU), not the paper's setting",
    }
    (output_dir / LAB_RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    report.plot_demo(results, output_dir / "lab.png")
    return results


def run_experiment(
    name: str,
    base_model: str,
    output_dir: str | Path,
    seeds: Sequence[int] = (0, 1, 2),
    eval_limit: int | None = None,
    progress: bool = True,
    steps: int | None = None,
) -> dict:
    """Run every arm of experiment `name` for every seed; writes results.json, results.md and a PNG."""
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}.")
    experiment = EXPERIMENTS[name]
    start = time.time()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    arms = experiment.arms or experiment.build_arms(base_model, output_dir, seeds, progress)
    if steps is not None:
        arms = tuple(Arm(a.name, a.config.with_(steps=steps), a.group) for a in arms)
    runs: dict[str, list[dict]] = {}
    for arm in arms:
        for seed in seeds:
            run_dir = output_dir / _slug(arm.name) / f"seed-{seed}"
            logger.info("experiment %s: arm %r, seed %d", name, arm.name, seed)
            config = arm.config.with_(seed=seed, eval_limit=eval_limit)
            if not experiment.curves:  # bars need only the start and the end (and one point between)
                config = config.with_(eval_every=max(config.eval_every, config.steps // 2))
            runs.setdefault(arm.name, []).append(run(config, base_model, run_dir, progress=progress))
    first = next(iter(runs.values()))[0]
    results = {
        "experiment": name,
        "claim_in_paper": experiment.claim,
        "label": "micro-scale synthetic task (CPU), not the paper's setting",
        "base_model": base_model,
        "seeds": list(seeds),
        "base": first["before"],  # every run evaluates the same base model as its step 0
        "arms": summarize_arms(runs),
        "groups": summarize_arms(
            {
                g: [r for a in arms if a.group == g for r in runs[a.name]]
                for g in dict.fromkeys(a.group for a in arms if a.group)
            }
        ),
        **({"saturation": _saturation_summary(runs)} if experiment.curves else {}),
        "runs": runs,
        "seconds": round(time.time() - start, 1),
    }
    (output_dir / LAB_RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    (output_dir / "results.md").write_text(experiment_table(results) + "\n")
    _plot_experiment(results, experiment, output_dir / f"lab-{name}.png")
    return results


# per-run numbers reported per arm: held-out metrics after training, and the last 5 steps' training logs
TRAIN_TAILS = {"train_reward": "train_reward", "train_accuracy": "train_accuracy", "entropy": "entropy"}


def summarize_arms(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm: every seed's value of each metric, and their mean and std."""
    arms = {}
    for arm, records in runs.items():
        values = {m: [r["after"][m] for r in records] for m in METRICS}
        values |= {f"final_{k}": [_tail_mean(r[key]) for r in records] for k, key in TRAIN_TAILS.items()}
        arms[arm] = {
            "config": records[0]["config"],
            "values": values,
            "mean": {k: report.mean_std(v)[0] for k, v in values.items()},
            "std": {k: report.mean_std(v)[1] for k, v in values.items()},
        }
    return arms


def _tail_mean(values: Sequence[float], n: int = 5) -> float:
    tail = list(values)[-n:]
    return sum(tail) / len(tail) if tail else float("nan")


def _saturation_summary(runs: dict[str, list[dict]]) -> dict:
    """Per arm, per seed: `runs.saturation` (saturation step, held-out at base, saturation, end, best)."""
    return {
        arm: [{"seed": r["config"]["seed"], **saturation(r)} for r in records]
        for arm, records in runs.items()
    }


def experiment_table(results: dict) -> str:
    """Markdown: one row per arm (plus the base), mean ± std over seeds."""
    seeds = results["seeds"]
    lines = [
        f"**{results['experiment']}** — micro-scale synthetic task (CPU); {len(seeds)} seed(s) {seeds}; "
        f"held-out {results['base']['n_problems']} problems, greedy; mean ± std over seeds, in %.",
        "",
        "| arm | accuracy | careful strategy | boxed & correct | boxed rate | train reward | train acc. | entropy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = results["base"]
    lines.append(
        f"| base model | {report.pct(base['accuracy'])} | {report.pct(base['careful_rate'])} | "
        f"{report.pct(base['boxed_accuracy'])} | {report.pct(base['boxed_rate'])} | – | – | – |"
    )
    for arm, data in results["arms"].items():
        v = data["values"]
        entropy, entropy_std = report.mean_std(v["final_entropy"])
        lines.append(
            f"| {arm} | {report.pct_pm(v['accuracy'])} | {report.pct_pm(v['careful_rate'])} | "
            f"{report.pct_pm(v['boxed_accuracy'])} | {report.pct_pm(v['boxed_rate'])} | "
            f"{report.pct_pm(v['final_train_reward'])} | {report.pct_pm(v['final_train_accuracy'])} | "
            f"{entropy:.3f} ± {entropy_std:.3f} |"
        )
    for group, data in results.get("groups", {}).items():
        v = data["values"]
        lines.append(
            f"| **all {group}** ({len(v['accuracy'])} runs) | {report.pct_pm(v['accuracy'])} | "
            f"{report.pct_pm(v['careful_rate'])} | {report.pct_pm(v['boxed_accuracy'])} | "
            f"{report.pct_pm(v['boxed_rate'])} | {report.pct_pm(v['final_train_reward'])} | "
            f"{report.pct_pm(v['final_train_accuracy'])} | |"
        )
    lines += [
        "",
        "Held-out columns: after training, greedy. `train reward` (the arm's own reward), `train acc.` (accuracy "
        "reward on the training examples, logged in every mode) and `entropy` (mean token entropy of the "
        "rollouts, nats): mean of the last 5 steps.",
    ]
    for arm, per_seed in results.get("saturation", {}).items():
        lines += ["", f"Saturation ({arm}):", "", *report.saturation_table(per_seed)]
    return "\n".join(lines)


def _plot_experiment(results: dict, experiment: Experiment, path: Path) -> None:
    summary = {arm: data["values"] for arm, data in results["arms"].items()}
    if not experiment.curves:
        report.plot_arms(
            summary, path, f"{results['experiment']} (micro-scale, CPU)", baseline=results["base"]
        )
        return
    curves, steps = {}, {}
    for arm, records in results["runs"].items():
        label = f"train accuracy ({arm})"
        curves[label] = [r["train_accuracy"] for r in records]
        steps[label] = range(1, len(records[0]["train_accuracy"]) + 1)
        label = f"held-out accuracy ({arm})"
        curves[label] = [[p["accuracy"] for p in r["heldout_curve"]] for r in records]
        steps[label] = [p["step"] for p in records[0]["heldout_curve"]]
    report.plot_curves(
        curves, steps, path, f"post-saturation (micro-scale, CPU, {len(results['seeds'])} seeds)"
    )


__all__ = ["EXPERIMENTS", "run_demo", "run_experiment", "resolve_base"]
