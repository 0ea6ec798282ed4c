"""The run beside the paper: the paper's row for the recipe's `paper_setup` next to the run's best and final
checkpoints on each benchmark (for `analyze`'s report and the model card).

The run's "best" follows the paper's rule for that row: the checkpoint with the best six-benchmark average (only
checkpoints that evaluated all six count), or each benchmark's own best (Tab. 9). "final" is each benchmark's
latest evaluated checkpoint. A run without a paper setup gets the same table without the paper's column. The
paper's numbers are always labelled as the paper's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oneshot_trl.paper_results import BEST_AVERAGE, BEST_PER_BENCHMARK, SIX_BENCHMARKS, PaperRow, paper_row
from oneshot_trl.run import CheckpointEval, is_finite


def _accuracy(ev: CheckpointEval, bench: str) -> float | None:
    value = (ev.benchmarks.get(bench) or {}).get("accuracy")
    return float(value) if is_finite(value) else None


def _point(ev: CheckpointEval | None, bench: str) -> dict[str, Any] | None:
    if ev is None or _accuracy(ev, bench) is None:
        return None
    return {"checkpoint": ev.label, "step": ev.step, "accuracy": _accuracy(ev, bench)}


def six_average(ev: CheckpointEval) -> float | None:
    values = [_accuracy(ev, b) for b in SIX_BENCHMARKS]
    return sum(values) / len(values) if all(v is not None for v in values) else None  # type: ignore[arg-type]


def comparison(evals: Sequence[CheckpointEval], setup: str | None) -> dict[str, Any] | None:
    """Rows per benchmark (paper, run best, run final) and the average; None when the run has no evals."""
    evals = sorted((e for e in evals if e.benchmarks), key=lambda e: (e.step is None, e.step or 0))
    if not evals:
        return None
    row: PaperRow | None = paper_row(setup)
    averaged = [(e, six_average(e)) for e in evals]
    averaged = [(e, a) for e, a in averaged if a is not None]
    best_avg = max(averaged, key=lambda ea: ea[1])[0] if averaged else None  # max keeps the earliest of ties
    rule = row.checkpoint if row else (BEST_AVERAGE if best_avg else BEST_PER_BENCHMARK)
    if rule == BEST_AVERAGE and best_avg is None:
        rule = BEST_PER_BENCHMARK  # the run never evaluated all six at one checkpoint
    names = [b for b in SIX_BENCHMARKS if any(b in e.benchmarks for e in evals)]
    names += [b for b in dict.fromkeys(b for e in evals for b in e.benchmarks) if b not in names]
    paper = row.benchmarks() if row else {}
    rows = []
    for bench in names:
        having = [e for e in evals if _accuracy(e, bench) is not None]
        if rule == BEST_AVERAGE:
            best = _point(best_avg, bench)
        else:
            best = _point(max(having, key=lambda e: _accuracy(e, bench)), bench) if having else None
        rows.append(
            {
                "benchmark": bench,
                "paper": paper.get(bench) / 100 if bench in paper else None,
                "paper_base": (
                    row.base[SIX_BENCHMARKS.index(bench)] / 100
                    if row and row.base and bench in paper
                    else None
                ),
                "best": best,
                "final": _point(having[-1] if having else None, bench),
            }
        )
    final_avg = averaged[-1] if averaged else None
    return {
        "paper_setup": setup if row else None,
        "paper_source": row.source if row else None,
        "paper_note": row.note if row else "",
        "rule": rule,
        "rows": rows,
        "average": {
            "paper": row.average / 100 if row else None,
            "best": {"checkpoint": best_avg.label, "step": best_avg.step, "accuracy": six_average(best_avg)}
            if best_avg
            else None,
            "final": {"checkpoint": final_avg[0].label, "step": final_avg[0].step, "accuracy": final_avg[1]}
            if final_avg
            else None,
        },
    }


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal; a dash for a missing or non-finite value."""
    return f"{100 * value:.1f}" if is_finite(value) else "–"


def _cell(point: dict | None) -> str:
    if not point:
        return "–"
    where = f"step {point['step']}" if point["step"] is not None else point["checkpoint"]
    return f"{pct(point['accuracy'])} ({where})"


def render(result: dict[str, Any] | None, heading: str = "##") -> list[str]:
    """Markdown lines: the table and what its columns are."""
    if not result:
        return []
    with_paper = result["paper_source"] is not None
    header = ["benchmark", *(["paper (reported)"] if with_paper else []), "this run: best", "this run: final"]
    lines = [
        f"{heading} This run beside the paper" if with_paper else f"{heading} Best and final checkpoints",
        "",
    ]
    best_what = (
        "the checkpoint with the best six-benchmark average"
        if result["rule"] == BEST_AVERAGE
        else "each benchmark's best checkpoint"
    )
    text = f"Accuracy in %. `best`: {best_what}; `final`: each benchmark's latest evaluated checkpoint."
    if with_paper:
        text += (
            f" `paper (reported)`: the numbers the paper reports for `{result['paper_setup']}` "
            f"({result['paper_source']}, {result['rule']}) — the paper's, not measured here."
        )
    lines += [text, ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in result["rows"]:
        cells = [
            r["benchmark"],
            *([pct(r["paper"])] if with_paper else []),
            _cell(r["best"]),
            _cell(r["final"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    avg = result["average"]
    if avg["best"] or (with_paper and avg["paper"] is not None):
        cells = [
            "**six-benchmark average**",
            *([pct(avg["paper"])] if with_paper else []),
            _cell(avg["best"]),
            _cell(avg["final"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if result.get("paper_note"):
        lines += ["", f"Note: {result['paper_note']}"]
    return [*lines, ""]


def reference_lines(result: dict[str, Any] | None) -> dict[str, float]:
    """The paper's accuracy per benchmark (fraction) for reference lines on the curve plot."""
    if not result or result["paper_source"] is None:
        return {}
    lines = {r["benchmark"]: r["paper"] for r in result["rows"] if r["paper"] is not None}
    if result["average"]["paper"] is not None:
        lines["average"] = result["average"]["paper"]
    return lines
