"""The paper's bundled numbers and label errata: what a reproduction keeps and says."""

from __future__ import annotations

import json
import logging
from math import gcd, prod

from oneshot_trl.files import resource_path
from oneshot_trl.paper_results import LABEL_ERRATA, PAPER_RESULTS
from oneshot_trl.select import main as select_main


def _divisors(n: int) -> int:
    exponents, p = [], 2
    while n > 1:
        e = 0
        while n % p == 0:
            n, e = n // p, e + 1
        exponents.append(e)
        p += 1
    return prod(e + 1 for e in exponents)


def test_pi2_label_erratum_is_arithmetic_not_opinion():
    label, answer, _ = LABEL_ERRATA[267]
    row = json.loads(resource_path("train/pi2_r128.jsonl").read_text().splitlines()[0])
    assert row["extra_info"]["index"] == 267 and row["reward_model"]["ground_truth"] == label == "24"
    assert "9240 and 13860" in row["prompt"][0]["content"]
    assert str(_divisors(gcd(9240, 13860))) == answer == "48"
    assert "label 24" in PAPER_RESULTS["qwen2.5-math-1.5b/4-shot"].note


def test_select_says_that_pi2_keeps_the_official_label(tmp_path, caplog):
    out = tmp_path / "pi2.jsonl"
    with caplog.at_level(logging.WARNING, logger="oneshot_trl.select"):
        assert select_main(["--ranks", "2", "--output", str(out), "--repeat", "1"]) == 0
    assert "official label 24, but the problem's answer is 48" in caplog.text
    assert json.loads(out.read_text())["reward_model"]["ground_truth"] == "24"  # kept, as the paper trained
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="oneshot_trl.select"):
        assert select_main(["--ranks", "1", "--output", str(tmp_path / "pi1.jsonl"), "--repeat", "1"]) == 0
    assert "official label" not in caplog.text
