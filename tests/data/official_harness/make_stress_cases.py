"""Official-grader evidence, batch 3 (stress, generated after the rewrite, never tuned on): batch 2's random
answer forms and wrappers plus more of both. `python make_stress_cases.py 777 400` prints JSON lines; see
run_harness.py."""

import json
import random
import sys

rng = random.Random(int(sys.argv[1]))
forms = [  # (pred, gold)
    ("\\frac{{{a}}}{{{b}}}", "{a}/{b}"),
    ("{a}.{b}", "{a}.{b}0"),
    ("{a}\\sqrt{{{b}}}", "\\sqrt{{{a2b}}}"),
    ("-{a}", "{a}"),
    ("{a}\\%", "0.{a:02d}"),
    ("({a}, {b})", "({a},{b})"),
    ("({b}, {a})", "({a},{b})"),
    ("[{a}, {b}]", "[{a},{b})"),
    ("\\{{{a}, {b}\\}}", "\\{{{b}, {a}\\}}"),
    ("{a} \\text{{ dollars}}", "{a}"),
    ("\\${a}", "{a}"),
    ("{a}^\\circ", "{a}"),
    ("x={a}", "{a}"),
    ("{a} \\text{{ and }} {b}", "{a}, {b}"),
    ("{a}\\pi", "{a}\\pi"),
    ("\\frac{{{a}\\pi}}{{{b}}}", "\\frac{{{a}}}{{{b}}}\\pi"),
    ("{a}\\cdot 10^{{{b}}}", "{a}e{b}"),
    ("{a},{b:03d}", "{a}{b:03d}"),
    ("{a}\\,{b:03d}", "{a}{b:03d}"),
    ("{a}{{,}}{b:03d}", "{a}{b:03d}"),
    ("\\dfrac{{{a}}}{{{b}}}", "\\tfrac{{{a}}}{{{b}}}"),
    ("{a}+{b}i", "{a}+{b}i"),
    ("{b}i+{a}", "{a}+{b}i"),
    ("y={a}x+{b}", "y = {a}x + {b}"),
    ("{a}x+{b}", "{b}+{a}x"),
    ("x^2+{a}x", "x(x+{a})"),
    ("\\sqrt{{{a}}}", "{a}^{{1/2}}"),
    ("{a}!", "{a}!"),
    ("{a}", "\\text{{{a}}}"),
    ("{a} \\text{{ cm}}^2", "{a}"),
    ("{a}\\text{{ m}}", "{a} \\text{{ m}}"),
    ("{a}:{b:02d}", "{a}:{b:02d}"),
    ("{a}\\frac{{1}}{{{b}}}", "\\frac{{{ab1}}}{{{b}}}"),
    ("\\pm{a}", "\\pm {a}"),
    ("{a}, -{a}", "-{a}, {a}"),
    ("(-\\infty, {a}]", "(-\\infty,{a}]"),
    ("x \\le {a}", "(-\\infty,{a}]"),
    ("\\frac{{\\sqrt{{{a}}}}}{{{b}}}", "\\frac{{1}}{{{b}}}\\sqrt{{{a}}}"),
    ("{a}.5", "\\frac{{{a2p1}}}{{2}}"),
    ("{a}", "{a}.0"),
]
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
    "So the final result is $\\boxed{{{x}}}$.",
    "Therefore, \\boxed{{{x}}}",
    "The answer is ${x}$.",
    "Hence the answer is {x}",
    "Final Answer: The final answer is ${x}$. I hope it is correct.",
    "We conclude that the value equals {x}.",
    "\\[\\boxed{{{x}}}\\]",
    "The final answer is \\(\\boxed{{{x}}}\\).",
]
rows = []
for _ in range(int(sys.argv[2])):
    f = rng.choice(forms)
    w = rng.choice(wrappers)
    a, b = rng.randint(1, 9), rng.randint(2, 12)
    vals = dict(a=a, b=b, a2b=a * a * b, ab1=a * b + 1, a2p1=2 * a + 1, ab=a * b)
    pred, gold = f[0].format(**vals), f[1].format(**vals)
    if rng.random() < 0.5:
        pred, gold = gold, pred
    bench = rng.choice(["math500", "math500", "minerva_math", "olympiadbench", "aime24", "amc23"])
    rows.append(
        {
            "category": "stress",
            "benchmark": bench,
            "response": "Solving step by step.\n\n" + w.format(x=pred),
            "gold": gold,
        }
    )
print("\n".join(json.dumps(r) for r in rows))
