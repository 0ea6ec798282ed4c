"""`oneshot-trl select`: pick training examples by the historical variance of their training accuracy.

The paper's rule (arXiv 2504.20571 §2, Eqn. 1-2; the official `data/data_selection.py --method std`): train on the
full dataset once, record each example's training accuracy every time it is seen, rank the examples by the standard
deviation of that history (descending; ties keep the history's order), and train on the top one(s). pi_1 is rank 1.

    oneshot-trl select --history official --top 1 --output pi1_r128.jsonl     # the paper's pi_1, 128 rows
    oneshot-trl select --history official --ranks 1,13 --repeat 64 --output pi1_pi13.jsonl
    oneshot-trl select --history runs/dsr-sub --top 4 --json                  # our own run's history
    oneshot-trl select --history user/dsr-sub-run --revision step-000500      # a run pushed to the Hub

Histories (read by `oneshot_trl.histories`): `official` (the bundled `acc_step_500.json` of the paper's 500-step
DSR-sub run), any JSON file in that format (`{"<dsr_sub index>": [acc, acc, ...]}`), a training run's
`accuracy_history.jsonl`, a run dir holding one, or a Hub repo of a run. The selected examples are written in the verl row format of the bundled training files, so
a recipe can train on the output directly (`dataset_name: FILE.jsonl`). Selected examples are in rank order, and
repetition is whole-set blocks like the official script (`pd.concat([df] * repeat)`): `--ranks 1,13 --repeat 64`
gives pi1, pi13, pi1, pi13, ... (128 rows). (The official script keeps dataset order among the selected rows, and
the shipped k-shot files were merged per example, 64 x pi1 then 64 x pi13; with 128 prompts per step every order
gives the same batches.)
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oneshot_trl import cli_args
from oneshot_trl.files import atomic_write_text
from oneshot_trl.histories import OFFICIAL_HISTORY, ExampleHistory, load_history
from oneshot_trl.layout import RUN_INFO_FILE
from oneshot_trl.paper_results import LABEL_ERRATA
from oneshot_trl.prompts import TRAIN_PROMPT_SUFFIX
from oneshot_trl.validate import InputError

logger = logging.getLogger(__name__)


@dataclass
class RankedExample:
    rank: int  # 1-based: rank j is the paper's pi_j
    example: ExampleHistory
    score: float

    def to_dict(self) -> dict:
        accs = self.example.accuracies
        return {
            "rank": self.rank,
            "index": self.example.display_index,
            "example_id": self.example.example_id,
            "score": self.score,
            "mean_accuracy": float(np.mean(accs)),
            "num_points": len(accs),
            "answer": self.example.answer,
        }


# ---------------------------------------------------------------------------------------------------------------
# Scores. Each maps the histories (in their original order) to one float per example; higher ranks first.
# ---------------------------------------------------------------------------------------------------------------


def _lim_scores(histories: Sequence[list[float]]) -> list[float]:
    # LIMR's "learning impact measurement" (Li et al. 2025), as the official script's `--method lim`: how closely an
    # example's curve follows the dataset's average curve, over the epochs every example has.
    length = min(len(h) for h in histories)
    curves = np.array([h[:length] for h in histories], dtype=np.float64)
    average = curves.mean(axis=0)
    ideal = float(np.sum((1.0 - average) ** 2))
    if ideal == 0.0:  # every example always at 100%: no signal, keep the order
        return [0.0] * len(histories)
    return [float(1.0 - np.sum((c - average) ** 2) / ideal) for c in curves]


def _random_scores(histories: Sequence[list[float]], seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in histories]


METHODS: dict[str, str] = {
    "std": "standard deviation of the history (the paper's rule, np.std, population)",
    "var": "variance of the history (Eqn. 1 of the paper; the order of std up to float-rounding ties)",
    "mean-mid": "closeness of the mean accuracy to 50%: -|mean - 0.5|",
    "lim": "LIMR learning-impact score against the average curve (official --method lim)",
    "random": "a random score per example (the paper's random-selection baseline; see --seed)",
}


def score_histories(histories: Sequence[list[float]], method: str = "std", seed: int = 0) -> list[float]:
    """One score per history for `method` (see `METHODS`)."""
    per_example: dict[str, Callable[[list[float]], float]] = {
        "std": lambda h: float(np.std(h)),
        "var": lambda h: float(np.var(h)),
        "mean-mid": lambda h: -abs(float(np.mean(h)) - 0.5),
    }
    if method in per_example:
        return [per_example[method](h) for h in histories]
    if method == "lim":
        return _lim_scores(histories)
    if method == "random":
        return _random_scores(histories, seed)
    raise InputError(f"Unknown selection method {method!r}; choose one of: {', '.join(METHODS)}.")


def rank_examples(
    examples: Sequence[ExampleHistory], method: str = "std", seed: int = 0
) -> list[RankedExample]:
    """Rank examples by `method`, highest score first.

    Python's sort is stable also with `reverse=True`, so examples with equal scores (e.g. the ~100 DSR-sub
    examples that were always right) keep the order of the history, exactly as in the official script's
    `sorted(result.items(), key=..., reverse=True)`. Examples without any recorded accuracy are left out.
    """
    kept = [e for e in examples if e.accuracies]
    if len(kept) < len(examples):
        logger.warning("%d example(s) have an empty history and are not ranked.", len(examples) - len(kept))
    if not kept:
        raise InputError("No example has any recorded accuracy: nothing to rank.")
    scores = score_histories([e.accuracies for e in kept], method=method, seed=seed)
    order = sorted(range(len(kept)), key=lambda i: scores[i], reverse=True)
    return [RankedExample(rank=r, example=kept[i], score=scores[i]) for r, i in enumerate(order, start=1)]


# ---------------------------------------------------------------------------------------------------------------
# Writing the training dataset
# ---------------------------------------------------------------------------------------------------------------


def training_row(example: ExampleHistory) -> dict:
    """The verl-format row recipes train on: the bundled row itself for DSR-sub examples, else a new one."""
    if example.row is not None:
        return example.row
    if example.problem is None or example.answer is None:
        raise InputError(
            f"No problem text/answer for example {example.example_id!r}: the run dir needs its {RUN_INFO_FILE}."
        )
    suffix = TRAIN_PROMPT_SUFFIX
    content = example.problem if example.problem.endswith(suffix) else example.problem + suffix
    source = example.example_id.split(":", 1)[0] if ":" in example.example_id else "custom"
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": content}],
        "ability": "math",
        "reward_model": {"ground_truth": example.answer, "style": "rule"},
        "extra_info": {"index": example.index, "split": "train", "example_id": example.example_id},
    }


def build_training_rows(examples: Sequence[ExampleHistory], repeat: int = 128) -> list[dict]:
    """Whole-set blocks, like the official `pd.concat([df] * repeat)`: [e1, e2, e1, e2, ...]."""
    if repeat < 1:
        raise InputError(f"--repeat must be >= 1, got {repeat}.")
    block = [training_row(e) for e in examples]
    return block * repeat


def check_output(path: str | Path, history: str) -> None:
    """--output is a file path that is not the history it is computed from (checked before any work)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"--output {path} is a directory; give a file path (e.g. {path / 'selected.jsonl'})."
        )
    if any(p.exists() and not p.is_dir() for p in path.parents):
        raise InputError(f"--output {path}: a parent of it is a file, not a folder.")
    if Path(history).expanduser().is_file() and path.exists() and path.samefile(Path(history).expanduser()):
        raise InputError(f"--output {path} is the --history file itself; write the selection elsewhere.")


def write_jsonl(rows: Sequence[dict], path: str | Path) -> None:
    """Write the rows atomically (a temporary file renamed into place: a failed write leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


def parse_ranks(spec: str) -> list[int]:
    """`"1,13"` -> [1, 13]; `"1-4,1209"` -> [1, 2, 3, 4, 1209]. Ranks are 1-based (pi_1 is rank 1)."""
    ranks: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            start, end = int(lo), int(hi or lo)
        except ValueError:
            raise InputError(f"Bad rank {part!r} in --ranks {spec!r}: use e.g. 1,13 or 1-16.") from None
        if start < 1 or end < start:
            raise InputError(f"Bad rank range {part!r} in --ranks {spec!r}: ranks start at 1.")
        ranks.extend(range(start, end + 1))
    return ranks


def _shorten(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(ranking: Sequence[RankedExample], method: str, selected: set[int], limit: int) -> str:
    header = f"{'':1}{'rank':>5}  {'index':>12}  {method:>9}  {'mean acc':>8}  {'points':>6}  {'answer':<14}  problem"
    lines = [header, "-" * len(header)]
    shown = [r for r in ranking if r.rank <= limit or r.rank in selected]  # selected ranks beyond the top too
    for prev, r in zip([None, *shown], shown, strict=False):
        if prev is not None and r.rank != prev.rank + 1:
            lines.append(f"{'...':>6}")
        d = r.to_dict()
        mark = "*" if r.rank in selected else " "
        lines.append(
            f"{mark}{r.rank:>5}  {str(d['index']):>12}  {r.score:>9.4f}  {d['mean_accuracy']:>8.3f}  "
            f"{d['num_points']:>6}  {_shorten(d['answer'], 14):<14}  {_shorten(r.example.problem, 60)}"
        )
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = cli_args.ArgumentParser(
        prog="oneshot-trl select",
        description=(
            "Rank training examples by the historical variance of their training accuracy (the paper's "
            "selection rule) and write the chosen ones as a ready training dataset."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="methods:\n"
        + "\n".join(f"  {k:<9} {v}" for k, v in METHODS.items())
        + "\n\n"
        + (__doc__ or ""),
    )
    parser.add_argument(
        "--history",
        default=OFFICIAL_HISTORY,
        help="'official' (the paper's acc_step_500.json, bundled; default), a history file (that JSON format or "
        "our accuracy_history.jsonl), a training run dir, or a Hub repo id of a run.",
    )
    parser.add_argument(
        "--revision", default=None, help="Hub revision (branch, tag, sha) when --history is a repo."
    )
    parser.add_argument(
        "--method", default="std", choices=list(METHODS), help="Ranking score (default: std)."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed for --method random.")
    parser.add_argument("--top", type=int, default=1, help="Select ranks 1..K (default 1: pi_1).")
    parser.add_argument(
        "--ranks", default=None, help="Select these ranks instead of --top, e.g. '1,13' or '1-16,1209'."
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=128,
        help="Copies of the selected set in the dataset (default 128 = the paper's batch size; whole-set blocks).",
    )
    parser.add_argument(
        "--output", default=None, help="Write the selected examples here (JSONL, verl row format)."
    )
    parser.add_argument(
        "--show", type=int, default=10, help="Rows of the ranking table to print (default 10)."
    )
    parser.add_argument(
        "--json", action="store_true", help="Print the full ranking as JSON lines instead of the table."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Every input checked before the ranking is printed or anything written; an InputError is one line, exit 2
    # (oneshot_trl.cli).
    if args.output:
        check_output(args.output, args.history)
    if args.top < 1:
        raise InputError(f"--top must be >= 1, got {args.top}.")
    examples = load_history(args.history, revision=args.revision)
    ranking = rank_examples(examples, method=args.method, seed=args.seed)
    ranks = parse_ranks(args.ranks) if args.ranks else list(range(1, args.top + 1))
    too_far = [r for r in ranks if r > len(ranking)]
    if too_far or not ranks:
        raise InputError(f"Ranks {too_far or ranks} do not exist: the history ranks {len(ranking)} examples.")
    selected = [ranking[r - 1] for r in ranks]
    for r in selected:  # the official rows keep their labels, as the paper trained on them
        if r.example.index in LABEL_ERRATA and r.example.example_id.startswith("dsr_sub"):
            label, answer, why = LABEL_ERRATA[r.example.index]
            logger.warning(
                "Rank %d (DSR-sub %d) carries the official label %s, but the problem's answer is %s (%s). The paper "
                "trained on %s and the rows written keep it; change it in your copy to train on the true answer.",
                r.rank, r.example.index, label, answer, why, label,
            )  # fmt: skip
    rows = build_training_rows([r.example for r in selected], repeat=args.repeat) if args.output else None

    if args.json:
        for r in ranking:
            print(json.dumps(r.to_dict(), ensure_ascii=False))
    else:
        print(f"{len(ranking)} examples ranked by {args.method} (highest first); * = selected")
        print(format_table(ranking, args.method, set(ranks), limit=args.show))
    if rows is not None:
        write_jsonl(rows, args.output)
        logger.info(
            "Wrote %d rows (%d example(s) x %d) to %s: ranks %s.",
            len(rows),
            len(selected),
            args.repeat,
            args.output,
            ",".join(map(str, ranks)),
        )
    return 0


if __name__ == "__main__":  # as `oneshot-trl select`, through the CLI's one error path
    from oneshot_trl.cli import run_command

    sys.exit(run_command("select", sys.argv[1:]))
