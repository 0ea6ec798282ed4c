"""Record the REAL Qwen2.5-Math harness's verdicts for (response, gold, benchmark) rows.

How `tests/data/official_harness_cases.jsonl` was made (the harness cannot share our venv: it needs sympy
1.12 with antlr4 4.11.1, math-verify needs antlr4 4.13.2):

    git -C <One-Shot-RLVR checkout> ...   # ypwang61/One-Shot-RLVR, Qwen2.5-Eval/evaluation
    python3.10 -m venv /tmp/hvenv
    /tmp/hvenv/bin/pip install sympy==1.12 antlr4-python3-runtime==4.11.1 word2number regex pebble numpy
    /tmp/hvenv/bin/pip install --no-deps <checkout>/Qwen2.5-Eval/evaluation/latex2sympy   # its latex2sympy2 1.9.0
    python make_cases.py > cases.jsonl; python make_heldout_cases.py >> cases.jsonl
    HARNESS_DIR=<checkout>/Qwen2.5-Eval/evaluation /tmp/hvenv/bin/python run_harness.py cases.jsonl > out.jsonl

The path is the harness's own (`evaluate.py`): the gold through `parse_ground_truth` (MATH and Minerva
golds are the content of the solution's last box, extracted again with `extract_answer`), the prediction
through `run_execute` (`extract_answer`, then `strip_string` once more), the verdict `math_equal(pred, gt)`
in a pebble process pool with a 3 s timeout (a timeout is wrong). Run it from a directory without a
`gen` module: the harness's latex2sympy2 imports `gen.PSParser`.
"""

import json
import os
import sys
from concurrent.futures import TimeoutError

sys.path.insert(0, os.environ["HARNESS_DIR"])

from grader import math_equal  # noqa: E402  (the harness's modules)
from parser import STRIP_EXCEPTIONS, extract_answer, strip_string  # noqa: E402
from pebble import ProcessPool  # noqa: E402


def harness_gold(gold: str, data_name: str) -> str:
    if data_name in ("math", "math500", "minerva_math"):
        gold = extract_answer("\\boxed{" + gold + "}", data_name)
    if data_name not in STRIP_EXCEPTIONS:
        return strip_string(gold)
    return gold.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")


def harness_prediction(response: str, data_name: str) -> str:
    return strip_string(extract_answer(response, data_name), skip_unit=data_name in STRIP_EXCEPTIONS)


def judge(pair: tuple[str, str]) -> bool:
    return math_equal(pair[0], pair[1])


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    for row in rows:
        row["harness_pred"] = harness_prediction(row["response"], row["benchmark"])
        row["harness_gt"] = harness_gold(row["gold"], row["benchmark"])
    verdicts = []
    with ProcessPool(max_workers=2) as pool:
        results = pool.map(judge, [(r["harness_pred"], r["harness_gt"]) for r in rows], timeout=3).result()
        while True:
            try:
                verdicts.append(bool(next(results)))
            except StopIteration:
                break
            except TimeoutError:
                verdicts.append(False)
    for row, verdict in zip(rows, verdicts, strict=True):
        row["harness_verdict"] = verdict
        print(json.dumps(row))


if __name__ == "__main__":
    main()
