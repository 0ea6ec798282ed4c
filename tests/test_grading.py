"""Tests of the grader (the oneshot_trl.grading package and grade_cli).

The case set `tests/data/grading_cases.jsonl` holds realistic (response, gold, expected) triples. A case
applies to the graders named by its "grader" field; "xfail_reason" (a string for every grader, or a
{grader: reason} dict) records a known miss of a grader: the test xfails when that grader still gets
the case wrong, and fails when it gets it right (so that stale records are noticed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from oneshot_trl import grading
from oneshot_trl.cli import main as cli_main
from oneshot_trl.eval import grade_cli
from oneshot_trl.grading import (
    GRADERS,
    GoldParseError,
    Grade,
    answer_anywhere,
    answer_anywhere_batch,
    boxes,
    check_gold,
    grade,
    grade_batch,
    graders,
    last_boxed,
    mathverify,
    official,
    pool,
    workers,
)

CASES_PATH = Path(__file__).parent / "data" / "grading_cases.jsonl"
CASES = [json.loads(line) for line in CASES_PATH.read_text().splitlines() if line.strip()]
REQUIRED_CATEGORIES = {
    "fraction", "radical", "interval", "tuple", "set", "units", "percent", "text", "multiple_choice",
    "multiple_boxed", "nested_boxed", "no_boxed", "truncated", "empty", "negative", "decimal_fraction",
    "scientific", "equation", "pi", "matrix", "close_wrong",
}  # fmt: skip

TOWER = r"Simplifying, we get $\boxed{9^{9^{9^{9^{9}}}}}$."
LONG_EXPRESSION = r"The answer is $\boxed{" + "x+" * 50_000 + "1}$"  # 100k characters
DEEP_BRACES = r"\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}"
PATHOLOGICAL = [TOWER, LONG_EXPRESSION, DEEP_BRACES]
# Soft per-answer budget for the case set: pathological cases only need to prove they stop.
FAST_TIMEOUT_S, CASE_TIMEOUT_S = 1.0, 3.0
# Slack on "it stopped" bounds: generous, so the suite passes on a busy machine (a worker boot alone can
# take seconds there); what a bound tells apart (stopped vs. hung, killed vs. soft-timed-out) is far away.
BUSY_SLACK_S = 10.0


def _applies(case: dict, grader: str) -> bool:
    return case["grader"] in ("both", grader)


def _xfail_reason(case: dict, grader: str) -> str | None:
    reason = case.get("xfail_reason")
    return reason.get(grader) if isinstance(reason, dict) else reason


def _timeout(case: dict) -> float:
    return FAST_TIMEOUT_S if case["category"] == "pathological" else CASE_TIMEOUT_S


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    grading.shutdown_workers()


@pytest.fixture(scope="module")
def serial_grades() -> dict[tuple[str, int], Grade]:
    """In-process grades of every (grader, case): computed once, used by the per-case and batch tests."""
    return {
        (g, i): grade(
            c["response"], c["gold"], grader=g, boxed_only=c.get("boxed_only", False), timeout_s=_timeout(c)
        )
        for g in GRADERS
        for i, c in enumerate(CASES)
        if _applies(c, g)
    }


# --------------------------------------------------------------------------------------------------
# The case set
# --------------------------------------------------------------------------------------------------


def test_case_set_is_well_formed():
    assert len(CASES) >= 150
    for case in CASES:
        assert isinstance(case["response"], str) and isinstance(case["gold"], str)
        assert isinstance(case["expected"], bool)
        assert case["grader"] in ("both", *GRADERS)
        reason = case.get("xfail_reason")
        assert reason is None or isinstance(reason, str) or set(reason) <= set(GRADERS)
    categories = Counter(c["category"] for c in CASES)
    assert REQUIRED_CATEGORIES <= set(categories), REQUIRED_CATEGORIES - set(categories)
    # Both outcomes are well represented, so a grader that always says True/False cannot pass.
    assert sum(c["expected"] for c in CASES) > 60 and sum(not c["expected"] for c in CASES) > 40


@pytest.mark.parametrize("grader", GRADERS)
@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[f"{i}-{c['category']}" for i, c in enumerate(CASES)]
)
def test_case(serial_grades, grader, index):
    case = CASES[index]
    if not _applies(case, grader):
        pytest.skip(f"case is for the {case['grader']} grader only")
    result = serial_grades[(grader, index)]
    reason = _xfail_reason(case, grader)
    if reason is not None:
        if result.correct != case["expected"]:
            pytest.xfail(reason)
        pytest.fail(f"the {grader} grader now gets this case right: remove its xfail_reason ({reason})")
    assert result.correct == case["expected"], (result, case)


def test_grade_batch_equals_serial_grade(serial_grades):
    for grader in GRADERS:
        groups: dict[tuple[bool, float], list[int]] = {}
        for i, case in enumerate(CASES):
            if _applies(case, grader):
                groups.setdefault((case.get("boxed_only", False), _timeout(case)), []).append(i)
        for (boxed_only, timeout_s), indices in groups.items():
            batch = grade_batch(
                [CASES[i]["response"] for i in indices],
                [CASES[i]["gold"] for i in indices],
                grader=grader,
                boxed_only=boxed_only,
                timeout_s=timeout_s,
                num_workers=2,
            )
            for i, result in zip(indices, batch, strict=True):
                assert result == serial_grades[(grader, i)], (grader, CASES[i])


# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"first \boxed{3}, then \boxed{5}.", "5"),
        (r"\boxed{\boxed{7}}", r"\boxed{7}"),  # the box that closes last is the outer one
        (r"\boxed{\frac{\boxed{1}}{2}}", r"\frac{\boxed{1}}{2}"),
        (r"\fbox{9}", "9"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces are not groups
        (r"$\boxed 5$", "5"),
        (r"\boxed{}", ""),
        (r"\boxed{5} but wait \boxed{\frac{3", None),  # truncated: the last box is not closed
        ("no box here", None),
        (r"\boxedfoo{3}", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("4.5e33", r"4.5 \times 10^{33}"),
        ("1.6E-19 C", r"1.6 \times 10^{-19} C"),
        ("2e^{x} + 3e", "2e^{x} + 3e"),  # Euler's e and variables stay
        ("x_2e5", "x_2e5"),  # part of a longer token
        ("0.(3)", r"\frac{3}{9}"),
        (r"0.1\overline{6}", r"\frac{15}{90}"),
        (r"1.\dot{6}", r"\frac{15}{9}"),
        ("f(0.5)", "f(0.5)"),  # a decimal in parentheses is not a repetend
        ("12{,}345", "12345"),
    ],
)
def test_normalise(text, normalised):
    assert mathverify.normalise(text) == normalised


def test_grade_fields():
    g = grade(r"We find $\boxed{\dfrac{3}{4}}$.", "0.75")  # extracted: math-verify's normalised string
    assert g == Grade(correct=True, extracted=r"\frac{3}{4}", boxed=True, error=None)
    g = grade(r"We find $\boxed{\dfrac{3}{4}}$.", "0.75", boxed_only=True)  # extracted: the box content
    assert g == Grade(correct=True, extracted=r"\dfrac{3}{4}", boxed=True, error=None)
    g = grade(r"We find $\boxed{\dfrac{3}{4}}$.", "0.75", grader="official")
    assert g == Grade(correct=True, extracted=r"\frac{3}{4}", boxed=True, error=None)
    # boxed_only: training semantics, no box is wrong even when the text states the answer.
    for grader in GRADERS:
        assert grade("The answer is 42.", "42", grader=grader).correct
        assert grade("The answer is 42.", "42", grader=grader, boxed_only=True) == Grade(False, None, False)


def test_official_extraction_fallbacks():
    assert official.extract_answer("The final answer is $7$. I hope it is correct.") == "7"
    assert official.extract_answer(r"so \boxed{\dfrac{1}{2}} and more") == r"\frac{1}{2}"
    assert official.extract_answer("Thus the answer is 12.") == "12"
    assert official.extract_answer("My final answer is 3.") == "3"
    assert official.extract_answer("We get 1,234 apples and 5 pears") == "5"
    assert official.extract_answer("no numbers") is None
    assert official.strip_string(r"\left( 3, \frac{\pi}{2} \right)") == r"(3,\frac{\pi}{2})"
    assert official.strip_string(r"x = \frac12") == r"\frac{1}{2}"
    assert official.strip_string(r"30^\circ") == "30"
    assert official.strip_string(r"5 \text{ cm}") == "5"
    assert official.strip_string("3/4") == r"\frac{3}{4}"
    assert official.strip_string("1.000") == "1"


@pytest.mark.parametrize(
    "pred, ref, expected",
    [
        ("50", "0.5", True),  # percentage leniency of the harness
        ("3.14159", r"\pi", False),  # the harness' LaTeX parser reads \pi as a symbol, not as the number
        ("(1,2)", "(2,1)", False),
        (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4.0\end{pmatrix}", True),
        ("y=2x+3", "2x-y+3=0", True),  # equations compared as lhs - rhs, either sign
        ("x^2-4", "(x-2)(x+2)", True),
        ("3.1416", r"\frac{355}{113}", True),  # numeric closeness after evaluation (relative 1e-4)
        ("n(n+1)", "n^2+n", False),  # the harness' LaTeX parser reads n(...) as a function call
        ("C", "C", True),
        ("(B)", "B", True),
        (None, "1", False),
    ],
)
def test_official_math_equal(pred, ref, expected):
    assert official.math_equal(pred, ref) is expected


# --------------------------------------------------------------------------------------------------
# The official grader against the real harness
# --------------------------------------------------------------------------------------------------

# (response, gold, benchmark) rows with the verdict of the real Qwen2.5-Math harness (One-Shot-RLVR's
# Qwen2.5-Eval/evaluation, sympy 1.12, antlr4 4.11.1, its latex2sympy2 1.9.0), recorded by running it on
# them (tests/data/official_harness/run_harness.py); harness_pred / harness_gt are its normalised strings.
HARNESS_PATH = Path(__file__).parent / "data" / "official_harness_cases.jsonl"
HARNESS_CASES = [json.loads(line) for line in HARNESS_PATH.read_text().splitlines() if line.strip()]


def test_official_grader_reproduces_the_harness():
    assert len(HARNESS_CASES) >= 300
    assert (
        sum(c["harness_verdict"] for c in HARNESS_CASES) > 100
        and sum(not c["harness_verdict"] for c in HARNESS_CASES) > 100
    )
    by_category: dict[str, list[bool]] = {}
    same_strings = 0
    for case in HARNESS_CASES:
        g = grade(
            case["response"], case["gold"], grader="official", benchmark=case["benchmark"], timeout_s=5.0
        )
        by_category.setdefault(case["category"], []).append(g.correct == case["harness_verdict"])
        same_strings += (g.extracted or "") == case["harness_pred"]
        same_strings += official.gold_answer(case["gold"], case["benchmark"]) == case["harness_gt"]
    agreement = sum(map(sum, by_category.values())) / len(HARNESS_CASES)
    print(f"\nofficial vs harness verdict agreement: {agreement:.3f} on {len(HARNESS_CASES)} cases")
    for category, hits in sorted(by_category.items()):
        print(f"  {category:18s} {sum(hits)}/{len(hits)}")
    assert agreement >= 0.97
    assert all(sum(hits) / len(hits) >= 0.9 for hits in by_category.values()), by_category
    assert same_strings / (2 * len(HARNESS_CASES)) >= 0.97  # the same extraction and normalisation too


def test_official_rules_depend_on_the_benchmark():
    # Minerva keeps units in the harness (skip_unit), MATH/AIME strip them.
    response = r"So the length is $\boxed{10 meters}$."
    assert grade(response, "10", grader="official", benchmark="math500").correct
    assert not grade(response, "10", grader="official", benchmark="minerva_math").correct
    assert grade_batch([response] * 2, ["10"] * 2, grader="official", benchmark=["aime24", "minerva_math"],
                       num_workers=0) == [Grade(True, "10", True), Grade(False, "10meters", True)]  # fmt: skip
    with pytest.raises(ValueError, match="2 benchmarks; they must pair up"):
        grade_batch([response], ["10"], grader="official", benchmark=["aime24", "math500"], num_workers=0)


def test_official_never_executes_model_text():
    # parse_expr would eval these; our stand-in only builds sympy objects from the syntax tree.
    for text in ["__import__('os').system('true')", "().__class__", "lambda: 1", "[x for x in 'ab']"]:
        with pytest.raises(ValueError):
            official._python_literal(text)
    assert official._python_literal("(1, 0.5)") == (1, 0.5)
    assert official._python_literal("{3, 2, 1}") == {1, 2, 3}
    assert not grade(r"\boxed{__import__('os').system('true')}", "0", grader="official").correct


# --------------------------------------------------------------------------------------------------
# Gold answers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gold, stated",
    [
        (r"\boxed{1} and \boxed{-2}", "1, -2"),
        (r"$\boxed{2}$, $\boxed{3}$, $\boxed{5}$", "2, 3, 5"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"First $x = \boxed{3}$ is a guess; solving properly gives $x = \boxed{4}$.", "4"),  # a solution
        (r"\boxed{1} and \boxed{-2", ""),  # an unclosed box: unparseable, never a partial answer
        ("12:00", "12:00"),
    ],
)
def test_gold_text_is_the_answer_it_states(gold, stated):
    assert boxes.gold_text(gold) == stated


def test_list_golds_of_datasets_keep_every_answer():
    from oneshot_trl.grading import gold_string

    assert gold_string([27.0]) == "27"
    assert gold_string(["1", "-2"]) == "1, -2"
    assert grade(r"The roots are $\boxed{-2, 1}$.", gold_string(["1", "-2"])).correct
    assert not grade(r"The root is $\boxed{1}$.", gold_string(["1", "-2"])).correct


@pytest.mark.parametrize("grader", GRADERS)
def test_check_gold(grader):
    for gold in [r"\left( 3, \frac{\pi}{2} \right)", "27.0", r"\text{(C)}", r"[-2, 5)", r"\boxed{12}"]:
        check_gold(gold, grader=grader)
    for gold in [r"\frac{1}{", "", "   ", r"\boxed{"]:
        with pytest.raises(GoldParseError):
            check_gold(gold, grader=grader)
    with pytest.raises(ValueError, match="Unknown grader"):
        check_gold("1", grader="exact-match")


@pytest.mark.parametrize("grader", GRADERS)
def test_unparseable_gold_is_reported_never_correct(grader):
    g = grade(r"\boxed{\frac{1}{}", r"\frac{1}{", grader=grader)
    assert g.correct is False and g.error == "unparseable-gold"
    assert grade(r"So $\boxed{3}$.", "", grader=grader).error == "unparseable-gold"
    assert (
        grade(r"So $\boxed{None}$.", None, grader=grader).error == "unparseable-gold"
    )  # not the text "None"
    batch = grade_batch([r"\boxed{1}", r"\boxed{2}"], [r"\frac{1}{", "2"], grader=grader, num_workers=1)
    assert [(b.correct, b.error) for b in batch] == [(False, "unparseable-gold"), (True, None)]


def test_gold_is_parsed_once():
    gold = r"\frac{123}{457}"
    before = graders._parse_gold.cache_info()
    for response in [r"\boxed{\frac{123}{457}}", r"\boxed{1}", r"\boxed{\frac{246}{914}}"]:
        grade(response, gold)
    after = graders._parse_gold.cache_info()
    assert after.misses - before.misses == 1 and after.hits - before.hits == 2
    # an eval grades with its benchmark's name, then looks for the answer anywhere: still the same entry
    grade(r"\boxed{1}", gold, benchmark="math500")
    answer_anywhere(r"so 123/457", gold)
    assert graders._parse_gold.cache_info().misses == after.misses


# --------------------------------------------------------------------------------------------------
# Time bounds, threads, workers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grader", GRADERS)
@pytest.mark.parametrize("response", PATHOLOGICAL, ids=["tower", "100k-chars", "deep-braces"])
def test_pathological_response_returns_in_bounded_time(grader, response):
    start = time.monotonic()
    g = grade(response, "2", grader=grader, timeout_s=FAST_TIMEOUT_S)  # none of them equals 2
    assert time.monotonic() - start < FAST_TIMEOUT_S + BUSY_SLACK_S
    assert g.correct is False
    assert g.error in (None, "timeout", "unparseable-response") or g.error.startswith("error: ")


def test_deadline_restores_signal_state():
    def handler(signum, frame):  # pragma: no cover - must never fire during this test
        raise AssertionError("the caller's alarm fired")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    try:
        grade(TOWER, "1", timeout_s=0.3)  # times out: our alarm fires, then the caller's is restored
        assert signal.getsignal(signal.SIGALRM) is handler
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 95.0 < remaining <= 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_grade_batch_time_limit_and_order():
    responses = [TOWER, r"$\boxed{4}$", LONG_EXPRESSION, r"$\boxed{\frac{1}{2}}$", DEEP_BRACES]
    golds = ["1", "4", "1", "0.5", "1"]
    start = time.monotonic()
    grades = grade_batch(responses, golds, timeout_s=FAST_TIMEOUT_S, num_workers=2, progress=True)
    # 3 pathological answers over 2 workers: at most 2 rounds of the hard limit, plus scheduling slack.
    assert time.monotonic() - start < 2 * (FAST_TIMEOUT_S + workers.HARD_LIMIT_GRACE_S) + BUSY_SLACK_S
    assert [g.correct for g in grades] == [False, True, False, True, False]
    assert grades[0].error == "timeout" and grades[0].boxed


def test_hard_limit_kills_and_replaces_a_stuck_worker(monkeypatch):
    grade_batch([r"\boxed{1}"], ["1"], num_workers=1)  # warm worker
    old_pid = workers._POOL.workers[0].process.pid
    # Hard limit (6 - 4 = 2 s) before the soft one (6 s): the signal cannot save the worker, the kill must.
    monkeypatch.setattr(workers, "HARD_LIMIT_GRACE_S", -4.0)
    grades = grade_batch([TOWER, r"\boxed{5}"], ["1", "5"], timeout_s=6.0, num_workers=1)
    assert grades[0] == Grade(False, None, True, "timeout")
    assert grades[1].correct
    # A new worker: the kill did it (the soft limit leaves the worker alive), whatever the machine's load.
    assert workers._POOL.workers[0].process.pid != old_pid


def test_worker_killed_while_idle_is_replaced():
    grade_batch([r"\boxed{1}"], ["1"], num_workers=1)
    worker = workers._POOL.workers[0]
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    assert grade_batch([r"\boxed{2}", r"\boxed{3}"], ["2", "4"], num_workers=1) == [
        Grade(True, "2", True),
        Grade(False, "3", True),
    ]
    assert workers._POOL.workers[0].process.pid != worker.process.pid


def test_worker_killed_mid_answer_is_replaced_and_the_answer_retried():
    grade_batch([r"\boxed{1}"], ["1"], num_workers=1)
    out: dict = {}
    thread = threading.Thread(
        target=lambda: out.update(
            grades=grade_batch([TOWER, r"\boxed{5}"], ["1", "5"], timeout_s=1.5, num_workers=1)
        )
    )
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and workers._POOL.workers[0].task != 0:
        time.sleep(0.01)
    killed = workers._POOL.workers[0].process.pid
    os.kill(killed, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    tower, five = out["grades"]
    assert tower.correct is False and tower.error == "timeout"  # retried on a fresh worker, then timed out
    assert five.correct
    assert killed not in [w.process.pid for w in workers._POOL.workers]


# A batch in which answer `STUCK` (the tower) sits in the middle of the first chunk of a single worker
# (40 answers, 1 worker: a first chunk of 10), the others answered right (`\boxed{i}` for gold i).
CHUNKED = [TOWER if i == 5 else rf"\boxed{{{i}}}" for i in range(40)]
CHUNKED_GOLDS = [str(i) for i in range(40)]
STUCK = 5


def _assert_only_stuck_failed(grades: list[Grade], error: str) -> None:
    assert grades[STUCK] == Grade(False, None, True, error)
    others = [g for i, g in enumerate(grades) if i != STUCK]
    assert others == [Grade(True, str(i), True) for i in range(40) if i != STUCK]  # graded, in order


def _record_chunks(monkeypatch) -> list[list[int]]:
    chunks: list[list[int]] = []
    assign = pool._Worker.assign

    def recording_assign(self, indices, chunk):
        chunks.append(list(indices))
        return assign(self, indices, chunk)

    monkeypatch.setattr(pool._Worker, "assign", recording_assign)
    return chunks


class _CountingConnection:
    def __init__(self, conn) -> None:
        self.conn, self.sends = conn, 0

    def send(self, obj) -> None:
        self.sends += 1
        self.conn.send(obj)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_grade_batch_sends_answers_to_a_worker_in_chunks():
    grade_batch([r"\boxed{1}"], ["1"], num_workers=1)
    worker = workers._POOL.workers[0]
    worker.inbox = counting = _CountingConnection(worker.inbox)
    responses = [rf"\boxed{{{i}}}" for i in range(200)]
    golds = [str(i if i % 3 else i + 1) for i in range(200)]
    grades = grade_batch(responses, golds, num_workers=1, progress=True)
    assert grades == [Grade(i % 3 != 0, str(i), True) for i in range(200)]
    assert workers._POOL.workers[0] is worker  # no restart
    # One message per chunk, not per answer (guided chunks: 50, 37, 28, ..., then single answers).
    assert counting.sends < 40


def test_hard_limit_mid_chunk_times_out_that_answer_and_requeues_the_rest(monkeypatch):
    grade_batch([r"\boxed{1}"], ["1"], num_workers=1)  # warm worker
    old_pid = workers._POOL.workers[0].process.pid
    chunks = _record_chunks(monkeypatch)
    # Hard limit (6 - 4 = 2 s) before the soft one (6 s): the signal cannot save the worker, the kill must.
    monkeypatch.setattr(workers, "HARD_LIMIT_GRACE_S", -4.0)
    grades = grade_batch(CHUNKED, CHUNKED_GOLDS, timeout_s=6.0, num_workers=1)
    _assert_only_stuck_failed(grades, "timeout")
    assert workers._POOL.workers[0].process.pid != old_pid  # killed (see above), not soft-timed-out
    # The answers behind the stuck one in its chunk were sent again (to the new worker), it was not.
    first = next(c for c in chunks if STUCK in c)
    behind = first[first.index(STUCK) + 1 :]
    assert behind and sum(STUCK in c for c in chunks) == 1
    assert all(sum(i in c for c in chunks) == 2 for i in behind)


def test_worker_crashes_mid_chunk_fail_only_that_answer(monkeypatch):
    grade_batch([r"\boxed{1}"], ["1"], num_workers=1)
    chunks = _record_chunks(monkeypatch)
    out: dict = {}
    thread = threading.Thread(
        target=lambda: out.update(grades=grade_batch(CHUNKED, CHUNKED_GOLDS, timeout_s=30.0, num_workers=1))
    )
    thread.start()
    killed: list[int] = []
    deadline = time.monotonic() + 60
    while len(killed) < 2 and time.monotonic() < deadline:  # kill the worker on the tower, twice
        worker = workers._POOL.workers[0]
        if worker.task == STUCK and worker.process.pid not in killed:
            killed.append(worker.process.pid)
            os.kill(worker.process.pid, signal.SIGKILL)
        time.sleep(0.01)
    thread.join(60)
    assert not thread.is_alive() and len(killed) == 2
    # Retried once, then failed; the answers queued behind it were not charged for the crashes.
    _assert_only_stuck_failed(out["grades"], "worker-crashed")
    assert sum(STUCK in c for c in chunks) == 2
    assert not set(killed) & {w.process.pid for w in workers._POOL.workers}


class _InterruptingConnection(_CountingConnection):
    """A worker's result pipe that raises KeyboardInterrupt (as Ctrl-C would) in the parent right after the
    result of answer `after`: the worker is then on the next answer, with the rest of its chunk queued."""

    def __init__(self, conn, after: int) -> None:
        super().__init__(conn)
        self.received, self.after = 0, after

    def recv(self):
        message = self.conn.recv()
        self.received += 1
        if self.received == self.after + 1:
            raise KeyboardInterrupt
        return message


def test_interrupted_batch_leaves_no_stale_results():
    grade_batch([r"\boxed{1}"], ["1"], num_workers=1)
    old_pid = workers._POOL.workers[0].process.pid
    # Interrupted from inside the batch, not by a timer: deterministic on a busy machine.
    worker = workers._POOL.workers[0]
    worker.outbox = _InterruptingConnection(worker.outbox, after=STUCK - 1)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while the worker is on the tower
        grade_batch(CHUNKED, ["-1"] * 40, timeout_s=30.0, num_workers=1)
    # The worker that held the rest of the interrupted chunk is gone: its results cannot leak into the
    # next batch, which is graded right.
    assert workers._POOL.workers[0].process.pid != old_pid
    assert grade_batch([r"\boxed{7}", r"\boxed{8}"], ["7", "8"], num_workers=1) == [
        Grade(True, "7", True),
        Grade(True, "8", True),
    ]


def test_grade_off_the_main_thread_uses_the_pool():
    out: dict = {}

    def work():
        out["ok"] = grade(r"So $\boxed{\sqrt{12}}$.", r"2\sqrt{3}")
        start = time.monotonic()
        out["tower"] = grade(TOWER, "1", timeout_s=FAST_TIMEOUT_S)
        out["elapsed"] = time.monotonic() - start
        out["anywhere"] = answer_anywhere("So x = 12.\nThus \\boxed{13}", "12")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert out["ok"].correct and out["anywhere"]
    assert (
        out["tower"].error == "timeout"
        and out["elapsed"] < FAST_TIMEOUT_S + workers.HARD_LIMIT_GRACE_S + BUSY_SLACK_S
    )


def test_grade_batch_argument_errors():
    assert grade_batch([], []) == []
    with pytest.raises(ValueError, match="pair up"):
        grade_batch(["a"], [])
    with pytest.raises(ValueError, match="Unknown grader"):
        grade_batch(["a"], ["b"], grader="nope")
    assert grade_batch([None, r"\boxed{1}"], ["1", "1"], num_workers=0) == [
        Grade(False, None, False),
        Grade(True, "1", True),
    ]


# --------------------------------------------------------------------------------------------------
# answer_anywhere
# --------------------------------------------------------------------------------------------------

ANYWHERE = [
    # (response, gold, anywhere): the first two are graded wrong but hold the right answer.
    (
        "Adding, we get $x = 42$. Double-checking gives a different total, so the answer is $\\boxed{41}$.",
        "42",
        True,
    ),
    (
        "The probability is 1/2, i.e. the answer is 0.5 before rounding. Final: \\boxed{0.6}",
        r"\frac{1}{2}",
        True,
    ),
    ("Step 3: add the two numbers.\nThe sum is 17.", "3", False),  # a step label is not an answer
    ("1. Compute the area.\n2. The area is 24 square units.", "24", True),
    ("We get \\boxed{\\frac{3}{4}}.", "0.75", True),
    ("We get \\boxed{\\frac{3}{4}}.", "0.7", False),
    ("", "1", False),
    ("So the answer is 5.", r"\frac{1}{", False),  # unparseable gold
    ("Options (B) and (D) both look plausible; we pick \\boxed{D}.", "B", True),  # choice letters
    ("Options (B) and (D) both look plausible; we pick \\boxed{D}.", r"\text{(A)}", False),
    ("The bus leaves at 9:05 and arrives at 10:40.", "9:05", True),  # clock times
    ("The bus leaves at 9:05 and arrives at 10:40.", "9:50", False),
]


def test_answer_anywhere():
    for response, gold, expected in ANYWHERE:
        assert answer_anywhere(response, gold) is expected, response
    assert not grade(ANYWHERE[0][0], "42").correct  # the format/reasoning split this measures
    start = time.monotonic()
    assert answer_anywhere(TOWER + "\n" + LONG_EXPRESSION, "2", timeout_s=FAST_TIMEOUT_S) is False
    assert time.monotonic() - start < FAST_TIMEOUT_S + BUSY_SLACK_S


def test_answer_anywhere_batch_equals_serial():
    responses, golds, expected = zip(*ANYWHERE, strict=True)
    assert answer_anywhere_batch(list(responses), list(golds), num_workers=2) == list(expected)


# --------------------------------------------------------------------------------------------------
# The grade CLI
# --------------------------------------------------------------------------------------------------


def _write_rows(path: Path) -> None:
    rows = [
        {"id": 1, "response": r"So $\boxed{42}$.", "gold": "42"},
        {"id": 2, "response": [r"\boxed{\frac{1}{2}}", "The answer is 0.5", "no idea"], "gold": r"\frac12"},
        {"id": 3, "response": r"\boxed{27}", "gold": 27.0},
        {"id": 4, "response": r"\boxed{3}", "gold": r"\frac{1}{"},
        {"id": 5, "response": TOWER, "gold": "1"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_grade_cli_main(tmp_path, capsys):
    src, out = tmp_path / "samples.jsonl", tmp_path / "graded.jsonl"
    _write_rows(src)
    rc = grade_cli.main([str(src), "--output", str(out), "--workers", "2", "--timeout", "1"])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["correct"] is True and rows[0]["extracted"] == "42" and "error" not in rows[0]
    assert rows[1]["correct"] == [True, True, False] and len(rows[1]["extracted"]) == 3
    assert rows[2]["correct"] is True
    assert rows[3]["correct"] is False and rows[3]["error"] == "unparseable-gold"
    assert rows[4]["correct"] is False and rows[4]["error"] == "timeout"
    captured = capsys.readouterr()
    assert "accuracy: 0.5714 (4/7)" in captured.out
    assert "unparseable-gold=1" in captured.out and "timeout=1" in captured.out
    assert "warning: 1 row(s)" in captured.err


def test_grade_cli_help_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        grade_cli.main(["--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for option in [
        "--grader",
        "--response-field",
        "--gold-field",
        "--output",
        "--boxed-only",
        "--workers",
        "--timeout",
    ]:
        assert option in help_text
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"completion": "x", "gold": "1"}) + "\n")
    assert cli_main(["grade", str(src)]) == 2  # one line through oneshot_trl.cli's error path
    assert "has no field 'response'" in capsys.readouterr().err
    src.write_text(json.dumps({"completion": r"\boxed{1}", "answer": "1"}) + "\n")
    assert (
        grade_cli.main(
            [str(src), "--response-field", "completion", "--gold-field", "answer", "--workers", "0"]
        )
        == 0
    )
    graded = tmp_path / "bad.graded.jsonl"  # the default output path
    assert json.loads(graded.read_text())["correct"] is True


def test_grade_cli_subprocess(tmp_path):
    src, out = tmp_path / "samples.jsonl", tmp_path / "graded.jsonl"
    _write_rows(src)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "oneshot_trl.cli",
        "grade",
        str(src),
        "--grader",
        "official",
        "--output",
        str(out),
    ]
    proc = subprocess.run(
        cmd + ["--workers", "1", "--timeout", "1"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "accuracy: 0.5714 (4/7)" in proc.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1]["correct"] == [True, True, False]
    assert rows[1]["extracted"][0] == r"\frac{1}{2}"


def test_start_workers_starts_the_pool_that_grade_batch_then_uses():
    grading.shutdown_workers()
    grading.start_workers(2)  # returns at once; the workers boot (and warm up) in the background
    pool = workers._POOL
    assert pool is not None and len(pool.workers) == 2
    grades = grade_batch([r"\boxed{\frac{1}{2}}", "so it is 3"], ["0.5", "3"], grader="official")
    assert [g.correct for g in grades] == [True, True]
    assert workers._POOL is pool and len(pool.workers) == 2  # the same workers, not a new pool
    grading.shutdown_workers()


# Math-Verify's own realistic cases (issue 26 item 8): the 73 (gold, response, label) rows of its
# tests/test_numina_cases.py, test_open_thoughts.py and test_yujianll.py at 5d148cf, each row naming its source.
MATH_VERIFY_CASES_PATH = Path(__file__).parent / "data" / "math_verify_realistic_cases.jsonl"
MATH_VERIFY_MIN_AGREEMENT = 72
# The one label we do not reach: a gold with doubled backslashes and an unclosed box (`\\boxed{W(n) = 1 ...`),
# answered "W(x)=1orW(x)=-1"; we call that gold unparseable rather than guess.
MATH_VERIFY_KNOWN_MISS = "test_numina_cases[24]"


def test_agrees_with_math_verify_realistic_cases():
    rows = [json.loads(line) for line in MATH_VERIFY_CASES_PATH.read_text().splitlines() if line.strip()]
    assert len(rows) == 73 and all(r["source"].startswith("huggingface/Math-Verify@") for r in rows)
    verdicts = grade_batch(
        [r["response"] for r in rows], [r["gold"] for r in rows], num_workers=0, timeout_s=10.0
    )
    misses = [r["source"] for r, g in zip(rows, verdicts, strict=True) if g.correct != r["correct"]]
    assert len(rows) - len(misses) >= MATH_VERIFY_MIN_AGREEMENT, misses
    assert all(m.endswith(MATH_VERIFY_KNOWN_MISS) for m in misses), misses


@pytest.mark.parametrize(
    ("gold", "response", "correct"),
    [
        (r"\(\boxed{1}\) and \(\boxed{-2}\).", r"$\boxed{-2, 1}$", True),  # boxes between math delimiters
        (r"\boxed{1} papers and \boxed{2} bins", r"$\boxed{1,2}$", True),  # a few words between boxes
        (r"\boxed{1} papers and \boxed{2} bins", r"$\boxed{2}$", False),
        # prose between boxes is a reference solution: its last box is the answer, not a list
        (r"First we find \boxed{1} and then, after more work, \boxed{2}", r"$\boxed{2}$", True),
        (
            r"$x = \frac{1}{2}, x = \frac{-1 \pm \sqrt{13}}{4}$",
            r"$\boxed{x = \frac{1}{2}, x = \frac{-1 \pm \sqrt{13}}{4}}$",
            True,
        ),
        (
            r"$x = \frac{1}{2}, x = \frac{-1 \pm \sqrt{13}}{4}$",
            r"$\boxed{x = \frac{1}{2}, x = \frac{-1 + \sqrt{13}}{4}}$",
            False,
        ),
        (r"\frac{-1 \pm \sqrt{13}}{4}", r"\boxed{\frac{-1 - \sqrt{13}}{4}, \frac{-1 + \sqrt{13}}{4}}", True),
        (r"$12:00$", r"The clock shows $12:00$.", True),
        (r"$12:00$", r"The clock shows $1:00$.", False),
        (r"$\text{E}$", r"$E$", True),  # a symbol, not a choice letter, once the $ are gone
    ],
)
def test_box_lists_plus_minus_and_delimited_golds(gold, response, correct):
    assert grade(response, gold, timeout_s=10.0).correct is correct


def test_the_public_names_load_lazily_and_boxes_needs_no_math_verify():
    assert sorted(grading.__all__) == sorted(grading._HOMES)
    assert all(getattr(grading, name) is not None for name in grading.__all__)
    code = "import sys, oneshot_trl.eval.benchmarks, oneshot_trl.grading.boxes; print('math_verify' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "False"  # the benchmarks read golds with boxes' string functions only
