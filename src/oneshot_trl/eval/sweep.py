"""Checkpoint sweeps (`oneshot-trl eval --revisions` / `--all-revisions`): one engine per process, each revision's
weights loaded into it, the revisions spread over the processes of a job.

Starting vLLM costs tens of seconds (compilation, KV-cache profiling); loading a checkpoint's weights into a running
engine costs the read of the weights. So a process builds its `Engine` once and `load`s revision after revision
into it (a revision of another architecture or tokenizer gets a new engine). Under `accelerate launch` (or any
launcher that sets RANK/WORLD_SIZE), process r takes the node's GPU(s) of its LOCAL_RANK and evaluates revisions
r, r+W, r+2W, ... into their own folders, each exactly as one process would; the main process collects every
revision's results.json for the combined summary (`write_revision_summary`). A revision's numbers do not depend on
which process evaluated it: each is a complete, separately resumable eval.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from oneshot_trl.eval.engine import Engine
from oneshot_trl.eval.request import EvalRequest, ModelRef
from oneshot_trl.eval.runner import evaluate
from oneshot_trl.eval.seeds import evaluate_seeds
from oneshot_trl.files import atomic_write_text, atomic_writer
from oneshot_trl.layout import RESULTS_FILE, SUMMARY_STEM, step_from_label

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place in a job (RANK / WORLD_SIZE as torchrun and accelerate set them)."""

    index: int = 0
    count: int = 1

    @classmethod
    def from_env(cls) -> Ranks:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    def part(self, items: Sequence[Any]) -> list[Any]:
        """Every `count`-th item from `index` on (round robin: neighbouring checkpoints go to different ranks)."""
        return list(items[self.index :: self.count])

    def pin_device(self, per_process: int = 1) -> None:
        """Give this process its own GPU(s) of the node (`per_process` for a tensor-parallel engine) before any
        engine starts: vLLM and transformers then use "their" cuda:0. Nothing to do for a single process."""
        if self.count == 1:
            return
        local = int(os.environ.get("LOCAL_RANK", self.index))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range((local + 1) * per_process)]
        mine = devices[local * per_process : (local + 1) * per_process]
        if len(mine) == per_process:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)

    def gather(
        self, mine: dict[str, Any], folders: dict[str, Path], since: float, poll_s: float = 2.0
    ) -> dict[str, Any]:
        """On the main process, every revision's results: its own, and the other processes' as their
        results.json files appear (written after `since`). Files, not a collective: the processes share a file
        system (the output dir), and no process group has to outlive the engines. Other processes: their own."""
        if self.count == 1 or self.index != 0:
            return mine
        merged, pending = dict(mine), {label: f for label, f in folders.items() if label not in mine}
        while pending:
            for label, folder in list(pending.items()):
                path = folder / RESULTS_FILE
                if path.exists() and path.stat().st_mtime >= since:
                    merged[label] = json.loads(path.read_text())
                    del pending[label]
            if pending:
                time.sleep(poll_s)  # a failed process ends the launch (torchrun/accelerate stop them all)
        return merged


def evaluate_revisions(
    model: str,
    revisions: Sequence[str | None],
    request: EvalRequest,
    engine: Engine,
    output_dir_for: Callable[[str | None], Path],
    *,
    ranks: Ranks | None = None,
    on_result: Callable[[str | None, Path, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate `request` on each revision of `model` (this process's share of them) through one `engine`;
    returns {revision or "main": results} of all revisions (gathered from every process).

    `output_dir_for(revision)` is that revision's eval folder; `on_result(revision, folder, results)` is called
    as each of this process's revisions finishes (printing, pushing)."""
    ranks = ranks or Ranks()
    since = time.time() - 1  # (file systems with 1 s mtimes)
    mine: dict[str, dict[str, Any]] = {}
    for revision in ranks.part(list(revisions)):
        ref = ModelRef.resolve(model, revision)
        engine.load(ref.path)
        folder = output_dir_for(revision)
        part = request.replace(model=ref, output=dataclasses.replace(request.output, dir=folder))
        results = evaluate(part, engine) if part.seeds is None else evaluate_seeds(part, engine)
        mine[revision or "main"] = results
        if on_result is not None:
            on_result(revision, folder, results)
    if engine.builds or engine.reloads:
        logger.info("%d revision(s) through %d engine start(s) and %d weight reload(s).",
                    len(mine), engine.builds, engine.reloads)  # fmt: skip
    gathered = ranks.gather(mine, {r or "main": output_dir_for(r) for r in revisions}, since)
    return {label: gathered[label] for label in (r or "main" for r in revisions) if label in gathered}


def write_revision_summary(runs: dict[str, dict[str, Any]], output_dir: Path) -> list[Path]:
    """A sweep's combined table (`revisions.json` and `.md`) and, when the revisions are steps, its accuracy-vs-step
    plot (`revisions.png`) in `output_dir`; returns the paths written."""
    benchmarks = list(dict.fromkeys(b for r in runs.values() for b in r["benchmarks"]))
    rows = []
    for revision, results in runs.items():
        row = {
            "revision": revision,
            "step": step_from_label(revision),
            "commit_sha": results.get("commit_sha"),
        }
        row.update(
            {b: results["benchmarks"][b]["accuracy"] for b in benchmarks if b in results["benchmarks"]}
        )
        row["average"] = results.get("average")
        rows.append(row)
    rows.sort(key=lambda r: (r["step"] is None, r["step"] or 0, r["revision"]))
    first = next(iter(runs.values()))
    summary = {
        "model": first["model"],
        "protocol": first["protocol"],
        "average_label": first.get("average_label"),
        "benchmarks": benchmarks,
        "rows": rows,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / f"{SUMMARY_STEM}.json", json.dumps(summary, indent=2) + "\n")
    cols = ["revision", "step", *benchmarks, "average"]
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["revision"], "" if r["step"] is None else str(r["step"])]
        cells += [f"{100 * r[c]:.1f}" if r.get(c) is not None else "" for c in [*benchmarks, "average"]]
        md.append("| " + " | ".join(cells) + " |")
    md.append(
        f"\nprotocol {first['protocol']['name']} (hash {first['protocol']['hash']}), average: {first.get('average_label')}"
    )
    atomic_write_text(output_dir / f"{SUMMARY_STEM}.md", "\n".join(md) + "\n")
    written = [output_dir / f"{SUMMARY_STEM}.{suffix}" for suffix in ("json", "md")]

    stepped = [r for r in rows if r["step"] is not None]
    if stepped:
        import matplotlib  # here: a heavy import that only a sweep over step revisions needs

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for b in [*benchmarks, "average"]:
            pts = [(r["step"], 100 * r[b]) for r in stepped if r.get(b) is not None]
            if pts:
                ax.plot(
                    *zip(*pts, strict=True), marker="o", label=b, linewidth=2.5 if b == "average" else 1.2
                )
        ax.set_xlabel("training step")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(
            f"{first['model']} ({first['protocol']['name']} {first['protocol']['hash']})", fontsize=9
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        with atomic_writer(output_dir / f"{SUMMARY_STEM}.png", "wb") as f:
            fig.savefig(f, format="png", dpi=120)
        plt.close(fig)
        written.append(output_dir / f"{SUMMARY_STEM}.png")
    return written
