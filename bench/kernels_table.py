#!/usr/bin/python3
"""Turns kernels_bench --benchmark_format=json output into the Markdown table
of BENCHMARKS.md: function x op x n with actsvc, onednn and scalar
throughput (elements/ns; the median when run with repetitions) and the
ratios actsvc/onednn and actsvc/scalar.

  kernels_table.py results.json > table.md
  kernels_table.py --half results.json > table.md

--half: the actsvc rows of float32, float16 and bfloat16 side by side,
function x op x n, with the ratios float16/float32 and bfloat16/float32.
"""
import json
import sys


def half_table(rows):
    print("| function | op | n | float32 | float16 | bfloat16 | f16/f32 | bf16/f32 |")
    print("|---|---|---|---|---|---|---|---|")
    order = {"fwd": 0, "d1": 1, "d2": 2, "vjp": 3}
    keys = sorted({(fn, op, n) for (fn, op, dtype, n) in rows
                   if dtype in ("f16", "bf16")},
                  key=lambda k: (k[0], order.get(k[1], 9), int(k[2])))
    for (fn, op, n) in keys:
        v = {d: rows.get((fn, op, d, n), {}).get("actsvc")
             for d in ("f32", "f16", "bf16")}
        cell = lambda x: "%.3g" % x if x else "–"
        ratio = lambda p, q: "%.2f×" % (p / q) if p and q else "–"
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            fn, op, n, cell(v["f32"]), cell(v["f16"]), cell(v["bf16"]),
            ratio(v["f16"], v["f32"]), ratio(v["bf16"], v["f32"])))


def main(path, half=False):
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    rate = {}
    for r in runs:
        # With --benchmark_repetitions, use the median aggregate only.
        if r.get("run_type") == "aggregate" and r.get("aggregate_name") != "median":
            continue
        name = r["run_name"] if "run_name" in r else r["name"]
        if r.get("run_type") == "iteration" and name in rate and "median" in rate[name]:
            continue
        key = name
        value = r["items_per_second"] / 1e9
        if r.get("run_type") == "aggregate":
            rate[key] = {"median": value}
        else:
            rate.setdefault(key, {"median": value})
    rows = {}
    for name, v in rate.items():
        impl, op, fn, dtype, n = name.split("/")
        rows.setdefault((fn, op, dtype, n), {})[impl] = v["median"]
    if half:
        return half_table(rows)
    print("| function | op | n | actsvc | onednn | scalar | actsvc/onednn | actsvc/scalar |")
    print("|---|---|---|---|---|---|---|---|")
    order = {"fwd": 0, "d1": 1, "d2": 2, "vjp": 3, "copy": 4}
    for (fn, op, dtype, n) in sorted(rows, key=lambda k: (k[2], k[0], order.get(k[1], 9), int(k[3]))):
        r = rows[(fn, op, dtype, n)]
        a, o, s = r.get("actsvc"), r.get("onednn"), r.get("scalar")
        cell = lambda v: "%.3g" % v if v else "–"
        ratio = lambda p, q: "%.2f×" % (p / q) if p and q else "–"
        if fn == "-":
            print("| memcpy | copy | %s | %s | | | | |" % (n, cell(r.get("memcpy"))))
            continue
        label = fn if dtype == "f32" else "%s (%s)" % (fn, dtype)
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, op, n, cell(a), cell(o), cell(s), ratio(a, o), ratio(a, s)))


if __name__ == "__main__":
    if sys.argv[1] == "--half":
        main(sys.argv[2], half=True)
    else:
        main(sys.argv[1])
