"""Official-grader evidence, batch 1: (response, gold, benchmark, category) pairs across the harness's rule
categories (written before the official grader was rewritten). Prints JSON lines; see run_harness.py."""

import json
import random

rng = random.Random(12)
rows = []


def add(cat, resp, gold, bench="math500"):
    rows.append({"category": cat, "benchmark": bench, "response": resp, "gold": gold})


def boxed(x, pre="Putting it together, the answer is"):
    return f"Let me work through the problem carefully.\n\nAfter simplifying, we get the result.\n\n{pre} $\\boxed{{{x}}}$."


B = ["math500", "aime24", "amc23", "olympiadbench"]
# integers / close wrong
for _ in range(12):
    n = rng.randint(2, 999)
    b = rng.choice(B)
    add("integer", boxed(n), str(n), b)
    add("integer", boxed(n + rng.choice([1, -1, 10])), str(n), b)
# fractions and decimals
for a, b_ in [(1, 2), (3, 4), (5, 8), (7, 12), (2, 3), (11, 16), (9, 20), (1, 3)]:
    add("fraction", boxed(f"\\dfrac{{{a}}}{{{b_}}}"), f"\\frac{{{a}}}{{{b_}}}")
    add("fraction", boxed(f"{a}/{b_}"), f"\\frac{{{a}}}{{{b_}}}")
    add("decimal_fraction", boxed(f"{a / b_:.4f}".rstrip("0")), f"\\frac{{{a}}}{{{b_}}}")
    add("decimal_fraction", boxed(f"{a / b_:.2f}"), f"\\frac{{{a}}}{{{b_}}}")
    add("fraction", boxed(f"\\frac{{{a + 1}}}{{{b_}}}"), f"\\frac{{{a}}}{{{b_}}}")
# mixed numbers
for w, a, b_ in [(2, 1, 2), (4, 2, 3), (1, 3, 4), (3, 1, 5), (5, 5, 6), (7, 1, 8)]:
    imp = f"\\frac{{{w * b_ + a}}}{{{b_}}}"
    add("mixed_number", boxed(f"{w}\\frac{{{a}}}{{{b_}}}"), imp)
    add("mixed_number", boxed(imp), f"{w}\\frac{{{a}}}{{{b_}}}")
    add("mixed_number", boxed(f"{w}\\tfrac{{{a}}}{{{b_}}}"), f"{w}\\frac{{{a}}}{{{b_}}}")
# plus-minus and solution lists
for a in [2, 3, 5, 7, 11]:
    add("pm", boxed(f"\\pm {a}"), f"{a}, -{a}")
    add("pm", boxed(f"{a}, -{a}"), f"\\pm {a}")
    add("pm", boxed(f"\\pm\\sqrt{{{a}}}"), f"\\pm\\sqrt{{{a}}}")
for a, b_ in [(1, -2), (3, 4), (-5, 2), (0, 6), (2, 7)]:
    add("solution_list", boxed(f"{b_}, {a}"), f"{a}, {b_}")
    add("solution_list", boxed(f"{a}, {b_}"), f"{a}, {b_}")
    add("solution_list", boxed(f"{a},{b_}"), f"{a}, {b_}")
    add("solution_list", boxed(f"x = {a} \\text{{ or }} x = {b_}"), f"{a}, {b_}")
# thousands separators
for n in [3600, 12345, 1000000, 45000, 2023, 98765]:
    s = f"{n:,}"
    add("thousands", boxed(s.replace(",", "{,}")), str(n))
    add("thousands", boxed(s.replace(",", "\\,")), str(n))
    add("thousands", boxed(s), str(n))
    add("thousands", f"So the total count is {s}.", str(n))
# e-notation / scientific
for m, e in [(4.5, 33), (6.02, 23), (1.6, -19), (3.0, 8), (2.5, 5), (9.1, -31)]:
    add("scientific", boxed(f"{m} \\times 10^{{{e}}}"), f"{m}e{e}", "minerva_math")
    add("scientific", boxed(f"{m} \\times 10^{{{e}}}"), f"{m} \\times 10^{{{e}}}", "minerva_math")
    add(
        "scientific",
        f"Final Answer: The final answer is ${m}e{e}$. I hope it is correct.",
        f"{m} \\times 10^{{{e}}}",
        "minerva_math",
    )
    add("scientific", boxed(f"{m} \\times 10^{{{e}}} \\text{{ m}}"), f"{m}e{e}", "minerva_math")
# symbolic identities
for p, r in [
    ("n(n+1)", "n^2+n"),
    ("(x+1)^2", "x^2+2x+1"),
    ("2(a+b)", "2a+2b"),
    ("x^2-1", "(x-1)(x+1)"),
    ("\\frac{x+1}{2}", "\\frac{x}{2}+\\frac{1}{2}"),
    ("3x+6", "3(x+2)"),
    ("a^2-b^2", "(a-b)(a+b)"),
    ("\\sin^2 x + \\cos^2 x", "1"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
]:
    add("symbolic", boxed(p), r)
    add("symbolic", boxed(r), p)
# radicals and pi
for p, r in [
    ("2\\sqrt{3}", "2\\sqrt{3}"),
    ("\\sqrt{12}", "2\\sqrt{3}"),
    ("3\\sqrt2", "3\\sqrt{2}"),
    ("4\\pi", "4\\pi"),
    ("12.566", "4\\pi"),
    ("\\frac{\\pi}{2}", "\\frac{\\pi}{2}"),
    ("\\pi/3", "\\frac{\\pi}{3}"),
    ("2\\sqrt{5}", "\\sqrt{5}"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"),
    ("5\\pi", "10\\pi"),
]:
    add("radical_pi", boxed(p), r)
# intervals, tuples, sets
for p, r in [
    ("(2, 5]", "(2,5]"),
    ("[2, 5)", "(2,5]"),
    ("(-\\infty, 3)", "(-\\infty,3)"),
    ("(-\\infty, 3]", "(-\\infty,3)"),
    ("(1, 2)", "(1,2)"),
    ("(2, 1)", "(1,2)"),
    ("(1, \\frac{1}{2})", "(1,0.5)"),
    ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\{1, 2, 3\\}", "\\{1,2,3\\}"),
    ("\\{3, 2, 1\\}", "\\{1,2,3\\}"),
    ("[0, 1]", "[0,1]"),
    ("(0,\\infty)", "(0, \\infty)"),
    ("x \\in [2, 5]", "[2,5]"),
    ("(-\\infty,-1)\\cup(1,\\infty)", "(-\\infty,-1) \\cup (1,\\infty)"),
]:
    add("interval_tuple", boxed(p), r)
# percent
for p, r in [
    ("25\\%", "25"),
    ("25", "25\\%"),
    ("0.25", "25\\%"),
    ("12.5\\%", "12.5"),
    ("40\\%", "0.4"),
    ("30", "0.3"),
    ("35\\%", "30"),
]:
    add("percent", boxed(p), r)
# units
for p, r, b in [
    ("5 \\text{ cm}", "5", "math500"),
    ("12 \\text{ inches}", "12", "math500"),
    ("30^\\circ", "30", "math500"),
    ("30^{\\circ}", "30^\\circ", "math500"),
    ("\\$ 18.90", "18.90", "math500"),
    ("7 \\mbox{ ft}", "7", "math500"),
    ("8 \\text{ m/s}", "8 \\text{ m/s}", "minerva_math"),
    ("8", "8 \\text{ m/s}", "minerva_math"),
    ("3 \\text{ K}", "3", "minerva_math"),
    ("1.5 \\text{ s}", "1.5", "minerva_math"),
    ("450 nm", "450", "minerva_math"),
    ("4 sq units", "4", "math500"),
    ("10 meters", "10", "math500"),
    ("100 \\mathrm{~km}", "100", "minerva_math"),
    ("2.3 \\mathrm{~eV}", "2.3", "minerva_math"),
    ("6 feet", "6", "math500"),
]:
    add("units", boxed(p), r, b)
# text, word numbers, multiple choice
for p, r, b in [
    ("\\text{(C)}", "\\text{(C)}", "math500"),
    ("C", "\\text{(C)}", "math500"),
    ("(B)", "B", "amc23"),
    ("\\textbf{(B) }24", "B", "amc23"),
    ("\\text{Monday}", "\\text{Monday}", "math500"),
    ("Monday", "\\text{Monday}", "math500"),
    ("\\text{even}", "\\text{odd}", "math500"),
    ("five", "5", "math500"),
    ("\\text{five}", "5", "math500"),
    ("D", "E", "amc23"),
    ("\\text{Yes}", "Yes", "olympiadbench"),
    ("No", "Yes", "olympiadbench"),
]:
    add("text_choice", boxed(p), r, b)
for p, r in [
    ("the answer is (B).", "B"),
    ("Thus the answer is (E) 24.", "E"),
    ("So the answer is $\\textbf{(A)}$.", "A"),
    ("Thus the answer is (D).", "C"),
]:
    add("text_choice", "Comparing the options one by one.\n\n" + p, r, "amc23")
# equations
for p, r in [
    ("y = 2x + 3", "y=2x+3"),
    ("2x - y + 3 = 0", "y=2x+3"),
    ("y = 3x - 1", "y=2x+3"),
    ("x + y = 5", "y = 5 - x"),
    ("k = 4", "4"),
    ("x^2 + y^2 = 25", "x^2+y^2=25"),
]:
    add("equation", boxed(p), r)
# matrices
for p, r in [
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"),
    ("\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"),
    ("\\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}", "\\begin{pmatrix} 0 \\\\ 1 \\end{pmatrix}"),
    ("\\begin{pmatrix} 0.5 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} \\frac{1}{2} \\\\ 2 \\end{pmatrix}"),
]:
    add("matrix", boxed(p), r)
# extraction: minerva style, answer is, last number, truncated, no answer, multiple boxes
for n in [7, 42, 1.5, 300]:
    add(
        "extraction",
        f"Thus we compute it.\nFinal Answer: The final answer is ${n}$. I hope it is correct.",
        str(n),
        "minerva_math",
    )
    add("extraction", f"Thus we compute it.\nFinal Answer: The final answer is {n}", str(n), "minerva_math")
    add("extraction", f"Working through it, the answer is {n}.", str(n))
    add("extraction", f"We add 3 and 4 to get 7, then multiply by {n}.", str(n))
    add("extraction", f"First \\boxed{{{n}}} was a guess; after checking, \\boxed{{{n}1}}.", str(n))
    add("extraction", f"So far we have x = {n} and we still need to compute \\boxed{{\\frac{{{n}}}{{", str(n))
    add("extraction", f"Step 1: set up {n} equations. Step 2: the sum of the roots is", str(n))
    add("extraction", "I cannot determine the value.", str(n))
# negatives, complex, infinity, repeating decimals, times
for p, r in [
    ("-3", "-3"),
    ("- 3", "-3"),
    ("-\\frac{1}{2}", "-0.5"),
    ("3 - 4i", "3-4i"),
    ("3-4j", "3-4i"),
    ("4i - 3", "-3+4i"),
    ("\\infty", "\\infty"),
    ("0.\\overline{3}", "\\frac{1}{3}"),
    ("0.(3)", "\\frac{1}{3}"),
    ("12:00", "12:00"),
    ("\\text{12:00 PM}", "12:00"),
    ("1.0", "1"),
    (".5", "0.5"),
    ("0.333", "\\frac{1}{3}"),
    ("0.3333", "\\frac{1}{3}"),
    ("1.00001", "1"),
    ("1.001", "1"),
    ("\\frac{1}{3} + \\frac{1}{3}", "\\frac{2}{3}"),
    ("2^{10}", "1024"),
    ("10!", "3628800"),
    ("\\binom{5}{2}", "10"),
    ("e^{i\\pi}", "-1"),
    ("\\log_2 8", "3"),
    ("\\sqrt[3]{27}", "3"),
]:
    add("misc", boxed(p), r)
# golds with boxes / text / lists
for p, r in [
    ("1, -2", "\\boxed{1} and \\boxed{-2}"),
    ("-2, 1", "\\boxed{1} and \\boxed{-2}"),
    ("7", "\\boxed{7}"),
    ("3", "\\text{3}"),
    ("2, 3, 5", "2, 3, 5"),
    ("2, 5, 3", "2, 3, 5"),
]:
    add("gold_format", boxed(p), r)
print("\n".join(json.dumps(r) for r in rows))
