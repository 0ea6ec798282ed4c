"""vLLM server mode: the recipe's seed reaches the server through `trl vllm-serve ... --seed` (TRL 1.16 forwards
every argument it does not know to `vllm serve`), and the documented server command passes it."""

from __future__ import annotations

import re
from pathlib import Path

from trl.scripts.vllm_serve import build_command, make_parser

DOCS = Path(__file__).parents[1] / "docs" / "training.md"


def test_trl_vllm_serve_forwards_seed_to_vllm_serve():
    parser = make_parser(prog="trl vllm-serve")
    script_args, extra = parser.parse_args_and_config(
        args=["--model", "Qwen/Qwen2.5-Math-1.5B", "--data_parallel_size", "4", "--seed", "1"],
        return_remaining_strings=True,
    )
    command = build_command(script_args, extra)
    assert command[command.index("serve") + 1] == "Qwen/Qwen2.5-Math-1.5B"
    assert command[-2:] == ["--seed", "1"]  # handed to `vllm serve` as-is


def test_documented_server_command_passes_the_recipe_seed():
    serve_lines = [line for line in DOCS.read_text().splitlines() if "trl vllm-serve --model" in line]
    assert serve_lines
    assert all(re.search(r"--seed \d+", line) for line in serve_lines)
