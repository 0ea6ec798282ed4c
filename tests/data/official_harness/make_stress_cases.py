"""Official-grader evidence, batch 3 (stress, generated after the rewrite, never tuned on): batch 2's random
answer forms and wrappers plus more of both. `python make_stress_cases.py 777 400` prints JSON lines; see
run_harness.py."""

import json
import random
import sys

from make_heldout_cases import forms as heldout_forms
from make_heldout_cases import generate
from make_heldout_cases import wrappers as heldout_wrappers

forms = list(heldout_forms)
forms += [
    ("\\frac{{{a}}}{{\\sqrt{{{b}}}}}", "\\frac{{{a}\\sqrt{{{b}}}}}{{{b}}}"),
    ("{a}^{{{b}}}", "{a}^{b}"),
    ("\\log_{{{a}}} {b}", "\\log_{a}{b}"),
    ("\\sin {a}", "\\sin({a})"),
    ("{a}\\times{b}", "{ab}"),
    ("{a} \\text{{ units}}^2", "{a}"),
    ("{a} \\mbox{{ cm}}", "{a}"),
    ("\\text{{{a} and {b}}}", "{a}, {b}"),
    ("({a},{b}),({b},{a})", "({b},{a}),({a},{b})"),
    ("\\{{{a}\\}}", "{a}"),
    ("x\\in({a},{b})", "({a}, {b})"),
    ("{a}<x<{b}", "({a},{b})"),
    ("\\emptyset", "\\varnothing"),
    ("{a}\\ \\text{{degrees}}", "{a}^\\circ"),
    ("\\frac{{{a}}}{{{b}}}\\%", "\\frac{{{a}}}{{{b}}}"),
    ("-\\infty", "-\\infty"),
    ("{a}\\sqrt{{{b}}}+1", "1+{a}\\sqrt{{{b}}}"),
]
wrappers = [
    "The answer is: {x}",
    "So, the answer is $ {x} $ (rounded).",
    "Answer: {x}",
    "\\boxed{{ {x} }} is our final answer",
    "We find that $x={x}$",
    "Hence $\\boxed{{{x}}}$ and we are done. Actually, the answer is {x}.",
    *heldout_wrappers,
]

if __name__ == "__main__":
    rows = generate(random.Random(int(sys.argv[1])), int(sys.argv[2]), forms, wrappers, "stress")
    print("\n".join(json.dumps(r) for r in rows))
