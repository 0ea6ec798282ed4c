"""Official-grader evidence, batch 2 (held out: generated after the rewrite, never tuned on): random answer
forms x response wrappers x benchmarks. Prints JSON lines; see run_harness.py."""

import json
import random

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
wrappers = [
    "So the final result is $\\boxed{{{x}}}$.",
    "Therefore, \\boxed{{{x}}}",
    "The answer is ${x}$.",
    "Hence the answer is {x}",
    "Final Answer: The final answer is ${x}$. I hope it is correct.",
    "We conclude that the value equals {x}.",
    "\\[\\boxed{{{x}}}\\]",
    "The final answer is \\(\\boxed{{{x}}}\\).",
]


def generate(rng: random.Random, n: int, forms: list, wrappers: list, category: str) -> list[dict]:
    """`n` rows: a random answer form (either side as the prediction) in a random wrapper and benchmark."""
    rows = []
    for _ in range(n):
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
                "category": category,
                "benchmark": bench,
                "response": "Solving step by step.\n\n" + w.format(x=pred),
                "gold": gold,
            }
        )
    return rows


if __name__ == "__main__":
    print("\n".join(json.dumps(r) for r in generate(random.Random(2025), 150, forms, wrappers, "heldout")))
