#!/usr/bin/python3
"""Turns kernels_bench --benchmark_format=json output into the Markdown table
of BENCHMARKS.md: function x op x n with actsvc, onednn and scalar
throughput (elements/ns; the median when run with repetitions) and the
ratios actsvc/onednn and actsvc/scalar.

  kernels_table.py results.json > table.md
  kernels_table.py --half results.json > table.md

--half: the actsvc rows of float32, float16 and bfloat16 side by side,
function x op x n, with the ratios float16/float32 and bfloat16/float32.

  kernels_table.py run1.json run2.json run3.json > table.md

Several files (the same command run as separate processes): oneDNN's speed
can differ from one process to the next (its eltwise VJP by up to 2x on AMD
EPYC, BENCHMARKS.md), so each row gives actsvc's median over the processes,
oneDNN's best and its range, and actsvc against oneDNN's best.

When the results hold rows on normal(0, 1) inputs (dtype f32n) or uniform
[-8, 8] ones (f32u8), the float32 table gets an "inputs" column, and the rows
of each function x op x n sit together.
"""
import json
import sys

# The float32 input sets by dtype segment (bench/kernels.cc's Dist).
DISTS = {"f32": "uniform [-10, 10]", "f32n": "normal(0, 1)",
         "f32u8": "uniform [-8, 8]"}


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


def read_rows(path):
    """{(fn, op, dtype, n): {impl: elements per ns}} of one JSON file."""
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
    return rows


def processes_table(paths):
    runs = [read_rows(p) for p in paths]
    keys = sorted(set().union(*runs), key=lambda k: (
        k[0], {"fwd": 0, "vjp": 3}.get(k[1], 9), int(k[3]), k[2]))
    print("| function | op | n | inputs | actsvc (median of %d) | onednn best "
          "| onednn range | actsvc/onednn best |" % len(paths))
    print("|---|---|---|---|---|---|---|---|")
    for k in keys:
        fn, op, dtype, n = k
        if fn == "-" or dtype not in DISTS:
            continue
        a = sorted(r[k]["actsvc"] for r in runs if "actsvc" in r.get(k, {}))
        o = sorted(r[k]["onednn"] for r in runs if "onednn" in r.get(k, {}))
        if not a or not o:
            continue
        med = a[len(a) // 2] if len(a) % 2 else (a[len(a) // 2 - 1] + a[len(a) // 2]) / 2
        print("| %s | %s | %s | %s | %.3g | %.3g | %.3g–%.3g | %.2f× |" % (
            fn, op, n, DISTS[dtype], med, o[-1], o[0], o[-1], med / o[-1]))


def main(path, half=False):
    rows = read_rows(path)
    if half:
        return half_table(rows)
    dists = DISTS
    with_dist = any(k[2] in ("f32n", "f32u8") for k in rows)
    head = "| function | op | n | %sactsvc | onednn | scalar | actsvc/onednn | actsvc/scalar |"
    print(head % ("inputs | " if with_dist else ""))
    print("|---|---|---|" + ("---|" if with_dist else "") + "---|---|---|---|---|")
    order = {"fwd": 0, "d1": 1, "d2": 2, "vjp": 3, "copy": 4}
    # f32 and f32n together (the float32 table), then f64, f16, bf16.
    group = lambda dtype: "f32" if dtype in dists else dtype
    for (fn, op, dtype, n) in sorted(rows, key=lambda k: (
            group(k[2]), k[0], order.get(k[1], 9), int(k[3]), k[2])):
        r = rows[(fn, op, dtype, n)]
        a, o, s = r.get("actsvc"), r.get("onednn"), r.get("scalar")
        cell = lambda v: "%.3g" % v if v else "–"
        ratio = lambda p, q: "%.2f×" % (p / q) if p and q else "–"
        dist = ""
        if with_dist:
            dist = "%s | " % dists.get(dtype, "uniform [-10, 10]")
        if fn == "-":
            print("| memcpy | copy | %s | %s%s | | | | |" % (n, dist, cell(r.get("memcpy"))))
            continue
        label = fn if dtype in dists else "%s (%s)" % (fn, dtype)
        print("| %s | %s | %s | %s%s | %s | %s | %s | %s |" % (
            label, op, n, dist, cell(a), cell(o), cell(s), ratio(a, o), ratio(a, s)))


if __name__ == "__main__":
    if sys.argv[1] == "--half":
        main(sys.argv[2], half=True)
    elif len(sys.argv) > 2:
        processes_table(sys.argv[1:])
    else:
        main(sys.argv[1])
