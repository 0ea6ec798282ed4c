"""The GPU smoke's checks, each computed from the files a phase left (trainer state, run info, completions)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_trl.layout import COMPLETIONS_FILE, RUN_INFO_FILE, TRAINER_STATE_FILE

SYNC_FLOOR_FACTOR = 2.0  # a synced engine's gap may reach this multiple of step 1's (same weights) gap
STALE_FRACTION = 0.2  # ... or this share of the gap a stale engine would show
IS_METRICS = ("sampling/sampling_logp_difference/mean", "sampling/importance_sampling_ratio/min")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def sync_checks(rows: list[dict[str, Any]]) -> list[Check]:
    """The vLLM/trainer log-prob gap after weight updates, against step 1 and against a stale engine.

    At step 1 the engine holds the weights it loaded from disk, the trainer's own: that gap is the numerical
    floor (kernels, bf16). From step 2 on the engine holds synced weights; a stale engine would still hold the
    initial ones, i.e. the reference model, so it would show about sqrt(2 KL) (TRL's logged `kl`, a k3 estimate
    of ref vs policy on the sampled tokens, is ~ d^2/2 for a log-prob change d). The check needs that to stand
    clear of the floor (else raise the learning rate: the smoke could not tell), and the gap to stay near it.
    """
    by_step = {row["step"]: row for row in rows if IS_METRICS[0] in row}
    if 1 not in by_step or len(by_step) < 2:
        return [
            Check(
                "sync",
                False,
                f"importance-sampling metrics logged at steps {sorted(by_step)}; need 1 and later",
            )
        ]
    floor = max(by_step[1][IS_METRICS[0]], 1e-6)
    checks = []
    for step in sorted(s for s in by_step if s >= 2):
        row = by_step[step]
        gap = row[IS_METRICS[0]]
        stale = math.sqrt(2 * row["kl"]) if "kl" in row else float("nan")
        visible = stale >= 3 * floor
        synced = gap <= max(SYNC_FLOOR_FACTOR * floor, STALE_FRACTION * stale)
        detail = f"gap {gap:.3g} (step 1: {floor:.3g}); a stale engine would show ~{stale:.3g}"
        checks.append(Check(f"sync_visible_step{step}", visible, detail))
        checks.append(Check(f"sync_step{step}", visible and synced, detail))
    return checks


def log_rows(run_dir: Path) -> list[dict[str, Any]]:
    state = run_dir / TRAINER_STATE_FILE
    return json.loads(state.read_text())["log_history"] if state.exists() else []


def trained_steps(rows: list[dict[str, Any]]) -> list[int]:
    return [row["step"] for row in rows if "loss" in row]


def rollouts_per_rank(completions: list[str], processes: int) -> Check:
    """Step 1's completions, gathered in rank order (all of them: the recipe logs every one): every rank sampled
    its own (every prompt is the same example, so ranks whose engines shared a seed would repeat each other)."""
    size = len(completions) // processes
    blocks = [tuple(completions[r * size : (r + 1) * size]) for r in range(processes)]
    distinct = len(set(blocks))
    return Check(
        "rollouts_differ_per_rank",
        size > 0 and distinct == processes,
        f"{distinct} distinct blocks of {size} completions over {processes} ranks",
    )


def multi_process_checks(run_dir: Path, processes: int, eval_problems: int) -> list[Check]:
    """The multi-process phase: both steps trained, ZeRO-3 reducing in fp32 (as DeepSpeed built it), every rank's
    rollouts its own, and the in-training eval's rows gathered from every rank (all problems, once)."""
    from oneshot_trl.layout import RESULTS_FILE, eval_dir

    rows = log_rows(run_dir)
    checks = [Check("multi_steps", trained_steps(rows)[:2] == [1, 2], f"trained steps {trained_steps(rows)}")]
    info = run_dir / RUN_INFO_FILE
    precision = json.loads(info.read_text()).get("precision", {}) if info.exists() else {}
    checks.append(
        Check(
            "multi_fp32_reduce",
            "3" in str(precision.get("deepspeed")) and precision.get("grad_reduce") == "float32"
            and precision.get("grad_accum") == "float32",
            f"precision recorded by the run: {precision}",
        )
    )  # fmt: skip
    path = run_dir / COMPLETIONS_FILE
    step1 = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    checks.append(rollouts_per_rank([row["completion"] for row in step1 if row["step"] == 1], processes))
    results = eval_dir(run_dir, 2) / RESULTS_FILE
    math500 = json.loads(results.read_text())["benchmarks"].get("math500", {}) if results.exists() else {}
    checks.append(
        Check(
            "multi_eval_gathered",
            math500.get("n_problems") == eval_problems,
            f"{results}: {math500.get('n_problems')} of {eval_problems} problems over {processes} ranks",
        )
    )
    return checks
