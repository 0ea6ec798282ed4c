"""Prompt templates: how a benchmark question becomes the text the model continues.

`qwen25-math-cot` is the exact string of the official harness (One-Shot-RLVR's
`Qwen2.5-Eval/evaluation/utils.py::PROMPT_TEMPLATES`; docs/evaluation.md#protocols). It is rendered as a literal string whatever the tokenizer is, because that is
what the harness does; for Qwen2.5-Math it equals the tokenizer's chat template with its default system prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from oneshot_trl.prompts import TRAIN_PROMPT_SUFFIX

# The instruction DeepScaleR/rllm append to every problem (train and test sets alike): the training suffix.
BOXED_SUFFIX = TRAIN_PROMPT_SUFFIX


@dataclass(frozen=True)
class Template:
    name: str
    text: str | None  # "{input}" is replaced by the question; None = the tokenizer's chat template
    suffix: str = ""  # appended to the question before rendering
    description: str = ""


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "qwen25-math-cot",
            "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
            "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
            description="Official One-Shot-RLVR / Qwen2.5-Math eval prompt (exact string).",
        ),
        Template(
            "deepseek-distill",
            "<｜begin▁of▁sentence｜><｜User｜>{input}<｜Assistant｜><think>\n",
            description="The official harness' `deepseek-distill` prompt type (exact string).",
        ),
        Template(
            "deepseek-distill-boxed",
            "<｜begin▁of▁sentence｜><｜User｜>{input}<｜Assistant｜><think>\n",
            suffix=BOXED_SUFFIX,
            description="deepseek-distill with the DeepScaleR/rllm instruction appended to the question.",
        ),
        Template(
            "chat", None, description="The tokenizer's chat template, one user message, generation prompt."
        ),
        Template(
            "chat-boxed",
            None,
            suffix=BOXED_SUFFIX,
            description="The tokenizer's chat template on question + the training instruction (the train prompt).",
        ),
        Template("plain", "{input}", description="The bare question (no template)."),
    )
}


def get_template(name: str) -> Template:
    """A registered template, or a literal format string containing `{input}`."""
    if name in TEMPLATES:
        return TEMPLATES[name]
    if "{input}" in name:
        return Template("custom", name, description="user-supplied format string")
    raise ValueError(
        f"Unknown template {name!r}. Choose one of {', '.join(TEMPLATES)} or pass a format string containing "
        "'{input}'."
    )


def needs_tokenizer(name: str) -> bool:
    return get_template(name).text is None


def render_prompt(problem: str, template: str, tokenizer=None) -> str:
    """The prompt for `problem` under `template` (a name in TEMPLATES or a string with `{input}`)."""
    spec = get_template(template)
    question = problem + spec.suffix
    if spec.text is None:
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                f"Template {spec.name!r} uses the tokenizer's chat template, but "
                + ("no tokenizer was given." if tokenizer is None else "the tokenizer has none.")
                + " Use --template qwen25-math-cot or plain instead."
            )
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
    # str.replace, not str.format: templates and questions contain literal braces (\boxed{}).
    # `.strip(" ")` as the official `construct_prompt` does.
    return spec.text.replace("{input}", question).strip(" ")
