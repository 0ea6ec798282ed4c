"""Run the REAL Qwen2.5-Math harness (One-Shot-RLVR Qwen2.5-Eval/evaluation, sympy 1.12, antlr 4.11.1,
bundled latex2sympy2 1.9.0) on rows {response, gold, benchmark}; print rows with harness_verdict added."""
import json, sys
sys.path.insert(0, "/tmp/hsrc/Qwen2.5-Eval/evaluation")
from parser import extract_answer, strip_string, STRIP_EXCEPTIONS
from grader import math_equal
from pebble import ProcessPool
from concurrent.futures import TimeoutError

def gt_of(gold, data):
    if data in ("math500", "math", "minerva_math"):
        gt = extract_answer("\\boxed{" + gold + "}", data)
    else:
        gt = gold
    if data not in STRIP_EXCEPTIONS:
        return strip_string(gt)
    return gt.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")

def pred_of(resp, data):
    return strip_string(extract_answer(resp, data), skip_unit=data in STRIP_EXCEPTIONS)

def judge(p):
    return math_equal(p[0], p[1])

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
params = []
for r in rows:
    r["harness_pred"], r["harness_gt"] = pred_of(r["response"], r["benchmark"]), gt_of(r["gold"], r["benchmark"])
    params.append((r["harness_pred"], r["harness_gt"]))
out = []
with ProcessPool(max_workers=2) as pool:
    it = pool.map(judge, params, timeout=3).result()
    while True:
        try:
            out.append(bool(next(it)))
        except StopIteration:
            break
        except TimeoutError:
            out.append(False)
for r, v in zip(rows, out):
    r["harness_verdict"] = v
    print(json.dumps(r))
