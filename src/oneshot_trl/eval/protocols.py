"""Evaluation protocols: named, versioned presets of everything that changes a benchmark number.

A protocol fixes the prompt template, per-benchmark sampling (samples per problem, temperature, top_p, new
tokens), stop strings and the grader. Its `hash()` (short sha256 of the canonical JSON) is written into every
result, so two numbers obtained under different settings are never silently compared. Any override
(`--grader`, `--max-new-tokens`, `--template`) produces a different hash and is listed under `overrides`.
The facts behind each preset (the official harness's settings, value by value) are in docs/evaluation.md#protocols.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from oneshot_trl.eval.random_calc import identity, is_random_calc, parse_seed
from oneshot_trl.eval.templates import get_template


@dataclass(frozen=True)
class SamplingSpec:
    n: int = field(metadata={"help": "Samples per problem; accuracy is their mean (avg@n)."})
    temperature: float = field(metadata={"help": "0 = greedy."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling; 1.0 = off."})
    max_new_tokens: int = field(default=3072, metadata={"help": "Generation budget per sample."})

    @property
    def metric(self) -> str:
        return "acc" if self.n == 1 else f"avg@{self.n}"

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n ({self.n}) must be >= 1.")
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                f"Greedy decoding (temperature 0) with n={self.n} gives {self.n} identical samples."
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p ({self.top_p}) must be in (0, 1].")


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    template: str  # a name in templates.TEMPLATES (or a format string with "{input}")
    sampling: dict[str, SamplingSpec]  # benchmark -> sampling; "default" for any other benchmark/dataset
    stop: tuple[str, ...]
    grader: str  # "official" or "math-verify" (oneshot_trl.grading.GRADERS)
    boxed_only: bool = False  # True: only the last \boxed{} counts (no "the answer is"/last-number fallbacks)
    grade_timeout_s: float = 3.0  # per comparison, as the official harness' pebble timeout
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    # Generated benchmarks in the run -> their generator identity (version, seed, size): part of the hash, so
    # two seeds or generator versions of `random-calc` never share samples. Empty (and then not hashed) otherwise.
    generated: dict[str, str] = field(default_factory=dict)
    description: str = ""
    notes: tuple[str, ...] = ()  # deviations from the reference implementation

    def sampling_for(self, benchmark: str) -> SamplingSpec:
        return self.sampling.get(benchmark, self.sampling["default"])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        d["notes"] = list(self.notes)
        for spec in d["sampling"].values():
            spec["metric"] = "acc" if spec["n"] == 1 else f"avg@{spec['n']}"
        d["hash"] = self.hash()
        return d

    def hash(self) -> str:
        """12 hex digits of sha256 over every field that can change a number (not description/notes)."""
        d = dataclasses.asdict(self)
        for key in ("description", "notes"):
            d.pop(key)
        if not d["generated"]:
            d.pop("generated")  # the hashes of runs without generated benchmarks stay what they were
        canonical = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def with_generated(self, benchmarks: Iterable[str]) -> Protocol:
        """A copy recording the identity of the generated benchmarks among `benchmarks` (changes the hash)."""
        generated = {name: identity(parse_seed(name)) for name in benchmarks if is_random_calc(name)}
        return dataclasses.replace(self, generated={**self.generated, **generated}) if generated else self

    def with_overrides(
        self,
        *,
        grader: str | None = None,
        template: str | None = None,
        max_new_tokens: int | None = None,
        seed: int | None = None,
        n: int | None = None,
    ) -> Protocol:
        """A copy with some settings changed; the changes are recorded in `overrides` (and change the hash)."""
        changes: dict[str, Any] = {}
        new = self
        if grader is not None and grader != self.grader:
            # imported here: grading loads math-verify (~2 s), and a protocol is read without it
            from oneshot_trl.grading import GRADERS

            if grader not in GRADERS:
                raise ValueError(f"Unknown grader {grader!r}; choose one of {', '.join(GRADERS)}.")
            changes["grader"] = grader
            new = dataclasses.replace(new, grader=grader)
        if template is not None and template != self.template:
            get_template(template)  # validate early
            changes["template"] = template
            new = dataclasses.replace(new, template=template)
        if seed is not None and seed != self.seed:
            changes["seed"] = seed
            new = dataclasses.replace(new, seed=seed)
        if max_new_tokens is not None or n is not None:
            sampling = {}
            for key, spec in new.sampling.items():
                spec = dataclasses.replace(spec, max_new_tokens=max_new_tokens or spec.max_new_tokens)
                if n is not None:  # only meaningful for sampled benchmarks; greedy ones stay at 1
                    spec = dataclasses.replace(spec, n=n if spec.temperature > 0 else 1)
                sampling[key] = spec
            if sampling != new.sampling:
                if max_new_tokens is not None:
                    changes["max_new_tokens"] = max_new_tokens
                if n is not None:
                    changes["n"] = n
                new = dataclasses.replace(new, sampling=sampling)
        if not changes:
            return self
        return dataclasses.replace(new, overrides={**self.overrides, **changes})


_GREEDY_3K = SamplingSpec(n=1, temperature=0.0, top_p=1.0, max_new_tokens=3072)
_AVG8_3K = SamplingSpec(n=8, temperature=0.6, top_p=1.0, max_new_tokens=3072)

ONE_SHOT_RLVR = Protocol(
    name="one-shot-rlvr",
    version=1,
    template="qwen25-math-cot",
    sampling={
        "math500": _GREEDY_3K,
        "minerva_math": _GREEDY_3K,
        "olympiadbench": _GREEDY_3K,
        "aime24": _AVG8_3K,
        "aime25": _AVG8_3K,
        "amc23": _AVG8_3K,
        "default": _GREEDY_3K,
    },
    stop=("</s>", "<|im_end|>", "<|endoftext|>"),
    grader="official",
    description=(
        "The official One-Shot-RLVR evaluation (Qwen2.5-Math harness, sh/eval_all_math.sh): qwen25-math-cot "
        "prompt, zero-shot, greedy for MATH500/Minerva/OlympiadBench, T=0.6 avg@8 for AIME24/AIME25/AMC23, "
        "3072 new tokens, official answer extraction and math_equal grading."
    ),
    notes=(
        "Tool-execution quirk ignored: the harness executes a trailing python block when an output has no "
        "'boxed' and ends with ```; we never execute model text.",
        "avg@8: 8 samples per problem in one request (n=8) instead of the harness' 8x-concatenated files with "
        "one sample each; the same estimator.",
        "Sampling seed: the protocol seed as vLLM's per-request seed (instead of the engine seed), so a resumed "
        "run reproduces the same samples; the transformers backend seeds each generate call (same chunks -> "
        "same samples).",
        "Stops: the stop strings, plus each of them that is a single token of the tokenizer as a stop token "
        "(the harness adds ids 151645/151643 for Qwen2 models).",
        "Grading: the official extraction + math_equal rules reimplemented in oneshot_trl.grading.official "
        "(sympy/math-verify based), not the harness' code.",
    ),
)

_R1_NOTES = (
    "Evaluated upstream with rllm (DeepScaleR), not the Qwen2.5-Math harness; only T=0.6, top_p=0.95, avg@16/"
    "avg@64 and the 8k/32k lengths are documented. Prompt and grader are our best reconstruction.",
    "Prompt: deepseek-distill with the DeepScaleR instruction appended (the DSR data format).",
    "Grading: math-verify on the last \\boxed{} only (rllm's reward is boxed-only).",
    "Sampling seed: a fixed per-request seed (protocol seed).",
)


def _r1_protocol(name: str, max_new_tokens: int) -> Protocol:
    avg16 = SamplingSpec(n=16, temperature=0.6, top_p=0.95, max_new_tokens=max_new_tokens)
    avg64 = SamplingSpec(n=64, temperature=0.6, top_p=0.95, max_new_tokens=max_new_tokens)
    return Protocol(
        name=name,
        version=1,
        template="deepseek-distill-boxed",
        sampling={
            "math500": avg16,
            "minerva_math": avg16,
            "olympiadbench": avg16,
            "aime24": avg64,
            "aime25": avg64,
            "amc23": avg64,
            "default": avg16,
        },
        stop=("<｜end▁of▁sentence｜>",),
        grader="math-verify",
        boxed_only=True,
        description=(
            f"The DeepSeek-R1-Distill-Qwen-1.5B setup of the One-Shot-RLVR README: T=0.6, top_p=0.95, avg@16 "
            f"for MATH500/Minerva/OlympiadBench, avg@64 for AIME24/AIME25/AMC23, {max_new_tokens} new tokens."
        ),
        notes=_R1_NOTES,
    )


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (ONE_SHOT_RLVR, _r1_protocol("r1-distill", 8192), _r1_protocol("r1-distill-32k", 32768))
}


def get_protocol(name: str | Protocol) -> Protocol:
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {name!r}. Choose one of {', '.join(PROTOCOLS)}.")
    return PROTOCOLS[name]
