#!/usr/bin/python3
"""Pictures of load tests and benchmarks (matplotlib, Agg: no display).

    plot_bench.py report REPORT.json [REPORT.json ...] [--out-dir DIR]
    plot_bench.py service [--table FILE] [--out docs/service.png]
    plot_bench.py kernels [--table FILE] [--out docs/kernels.png]

report: an `actsvc bench --json FILE` report (actsvc.bench.v1.Report) ->
  NAME-latency.png   the latency histogram of each level, p50 / p99 / p99.9
                     marked, and every level's percentiles side by side;
  NAME-timeline.png  latency (p50, p99, max) and QPS over the run, per
                     interval of each level (the report's timeline), level
                     after level;
  NAME-sweep.png     QPS and p50 / p99 against concurrency (or offered RPS),
                     when the report has more than one level.
  NAME is the report's file name without .json; DIR defaults to its folder.
service: the service table (`bench/service.sh` writes it; FILE defaults to
  BENCHMARKS.md) -> QPS, p99 and the ratio to identity against concurrency,
  one column per shape.
kernels: the first kernel table of BENCHMARKS.md's "## Kernels" (as
  bench/kernels_table.py writes it) -> elements/ns of actsvc beside oneDNN,
  per function, forward and VJP, at each size.

Each written file is printed with its size in pixels. Needs python3-matplotlib
(Debian: run /usr/bin/python3).
"""

import argparse
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import (FormatStrFormatter, LogLocator,  # noqa: E402
                               NullFormatter, NullLocator)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(REPO, "BENCHMARKS.md")
DPI = 100
# Figure sizes in inches (x DPI = pixels; the tests check them).
LATENCY_WIDTH, LATENCY_ROW = 12, 2.5  # height: 1.5 + LATENCY_ROW per level
TIMELINE_SIZE = (12, 7)
SWEEP_SIZE = (12, 5)
SERVICE_SIZE = (14, 11)
KERNELS_SIZE = (14, 10)

PERCENTILES = [("p50", "p50_ms"), ("p90", "p90_ms"), ("p95", "p95_ms"),
               ("p99", "p99_ms"), ("p99.9", "p999_ms"), ("max", "max_ms")]
MARKED = [("p50", "p50_ms", "-"), ("p99", "p99_ms", "--"),
          ("p99.9", "p999_ms", ":")]


def save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI)
    width, height = fig.canvas.get_width_height()
    plt.close(fig)
    print("wrote %s (%d x %d px)" % (path, width, height))
    return path


def log_y(ax, label=None):
    """A log-scale y axis labelled at 1, 2, 5 x 10^k in plain numbers;
    label "latency (ms" becomes "latency (ms, log scale)"."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if label:
        ax.set_ylabel(label + ", log scale)")


def spans_decades(values, ratio=20.0):
    """True when the positive values span more than `ratio` (log scale)."""
    values = [v for v in values if v > 0]
    return bool(values) and max(values) / min(values) > ratio


# ---------------------------------------------------------------------------
# actsvc bench reports.

def load_report(path):
    with open(path) as f:
        report = json.load(f)
    rows = report.get("rows", [])
    if not rows:
        sys.exit("%s: a report with no rows" % path)
    return report["config"], rows


def describe(config):
    shape = ",".join(str(d) for d in config.get("shape", []))
    what = "%s %s [%s] %s %s" % (config.get("rpc"), config.get("function"),
                                 shape, config.get("dtype"),
                                 config.get("encoding"))
    return "actsvc bench: %s, %s loop, %s" % (what, config.get("mode"),
                                             config.get("target"))


def open_loop(config):
    return config.get("mode") == "open"


def level_label(config, row):
    if open_loop(config):
        return "%g rps" % row.get("target_rps", 0)
    return "c=%d" % row.get("concurrency", 0)


def plot_latency(config, rows, path):
    """One histogram per level with p50 / p99 / p99.9, and the percentile
    ladder of every level in one panel on the right."""
    n = len(rows)
    fig = plt.figure(figsize=(LATENCY_WIDTH, 1.5 + LATENCY_ROW * n),
                     layout="constrained")
    grid = fig.add_gridspec(n, 2, width_ratios=[2.2, 1])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(rows):
        ax = fig.add_subplot(grid[i, 0])
        lat = row.get("latency", {})
        buckets = row.get("histogram", [])
        lower = lat.get("min_ms", 0.0)
        for b in buckets:
            upper = b["upper_ms"]
            count = int(b["count"])
            width = max(upper - lower, 1e-6)
            if count > 0:
                ax.bar(lower, count, width=width, align="edge",
                       color=colors[0], alpha=0.55, edgecolor=colors[0])
            lower = upper
        for label, key, style in MARKED:
            ax.axvline(lat.get(key, 0.0), color="black", linestyle=style,
                       linewidth=1.2,
                       label="%s %.3f ms" % (label, lat.get(key, 0.0)))
        ax.set_yscale("log")
        ax.set_ylabel("calls")
        ax.set_title("%s: %s OK calls in %.1f s, %s buckets min..max"
                     % (level_label(config, row), f"{int(row.get('ok', 0)):,}",
                        row.get("duration_s", 0.0), len(buckets)),
                     fontsize=10, loc="left")
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(True, alpha=0.3)
        if i == n - 1:
            ax.set_xlabel("latency (ms)")
    ax = fig.add_subplot(grid[:, 1])
    xs = range(len(PERCENTILES))
    for i, row in enumerate(rows):
        lat = row.get("latency", {})
        ax.plot(xs, [lat.get(k, float("nan")) for _, k in PERCENTILES],
                marker="o", color=colors[i % len(colors)],
                label=level_label(config, row))
    ax.set_xticks(list(xs), [p for p, _ in PERCENTILES])
    log_y(ax, "latency (ms")
    ax.set_xlabel("percentile")
    ax.set_title("percentiles of each level", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("Latency distribution of OK calls\n" + describe(config),
                 fontsize=11)
    return save(fig, path)


def plot_timeline(config, rows, path):
    """Latency percentiles and QPS over the measured time, level by level:
    per interval from each row's timeline (actsvc bench reports have one),
    else one value per level."""
    fig, (ax, qax) = plt.subplots(2, 1, figsize=TIMELINE_SIZE, sharex=True,
                                  height_ratios=[2, 1], layout="constrained")
    start = 0.0
    styles = {"p50": "-", "p90": "-.", "p99": "--", "p99.9": ":", "max": "-"}
    colors = dict(zip(styles, plt.rcParams["axes.prop_cycle"].by_key()
                      ["color"]))
    seen = set()
    per_interval = all(row.get("timeline") for row in rows)

    def once(label):
        if label in seen:
            return None
        seen.add(label)
        return label

    for i, row in enumerate(rows):
        end = start + row.get("duration_s", 0.0)
        if i % 2:
            for a in (ax, qax):
                a.axvspan(start, end, color="0.93", zorder=0)
        if per_interval:
            timeline = row["timeline"]
            edges = [start + t.get("start_s", 0.0) for t in timeline]
            edges.append(start + timeline[-1].get("start_s", 0.0) +
                         timeline[-1].get("duration_s", 0.0))
            for label, key in (("p50", "p50_ms"), ("p99", "p99_ms"),
                               ("max", "max_ms")):
                values = [t.get(key, 0.0) or float("nan") for t in timeline]
                ax.stairs(values, edges, color=colors[label],
                          linestyle=styles[label], linewidth=1.8,
                          baseline=None, label=once(label))
            qax.stairs([t.get("ok_rps", 0.0) for t in timeline], edges,
                       color="C0", linewidth=1.8, label=once("OK calls/s"))
        else:
            lat = row.get("latency", {})
            for label, key in PERCENTILES:
                if label not in styles:
                    continue
                ax.hlines(lat.get(key, float("nan")), start, end,
                          color=colors[label], linestyle=styles[label],
                          linewidth=2, label=once(label))
            qax.hlines(row.get("ok_rps", 0.0), start, end, color="C0",
                       linewidth=2, label=once("OK calls/s"))
        ax.text((start + end) / 2, 1.01, level_label(config, row),
                transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=9)
        errors = int(row.get("errors", 0))
        if errors:
            qax.hlines(errors / max(row.get("duration_s", 1.0), 1e-9), start,
                       end, color="C3", linewidth=2, label=once("errors/s"))
        start = end
    log_y(ax, "latency (ms")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncol=5)
    how = ("per interval of each level's window" if per_interval else
           "one value per level (the report has no per-interval samples)")
    fig.suptitle("Latency over the run\n" + describe(config) + "\n" + how +
                 "; warmups left out", fontsize=10)
    qax.set_ylabel("calls/s")
    qax.set_ylim(bottom=0)
    qax.set_xlabel("measured time (s)")
    qax.grid(True, alpha=0.3)
    qax.legend(fontsize=8, loc="upper left")
    return save(fig, path)


def plot_sweep(config, rows, path):
    """QPS and p50 / p99 against concurrency (closed) or offered RPS (open)."""
    fig, (qax, lax) = plt.subplots(1, 2, figsize=SWEEP_SIZE,
                                   layout="constrained")
    if open_loop(config):
        x = [r.get("target_rps", 0.0) for r in rows]
        xlabel = "offered load (calls/s, log scale)"
    else:
        x = [r.get("concurrency", 0) for r in rows]
        xlabel = "concurrency (calls outstanding, log scale)"
    qps = [r.get("ok_rps", 0.0) for r in rows]
    qax.plot(x, qps, marker="o", label="OK calls/s")
    if open_loop(config):
        qax.plot(x, x, color="0.6", linestyle=":", label="offered")
    qax.set_ylabel("QPS (OK calls/s)")
    qax.set_ylim(bottom=0)
    qax.legend(fontsize=9)
    lat = [r.get("latency", {}) for r in rows]
    for label, key, style in [("p50", "p50_ms", "-"), ("p99", "p99_ms", "--")]:
        lax.plot(x, [l.get(key, float("nan")) for l in lat], marker="o",
                 linestyle=style, label=label)
    if spans_decades([l.get("p99_ms", 0) for l in lat] +
                     [l.get("p50_ms", 0) for l in lat], 10):
        log_y(lax, "latency (ms")
    else:
        lax.set_ylim(bottom=0)
        lax.set_ylabel("latency (ms)")
    lax.legend(fontsize=9)
    for ax in (qax, lax):
        ax.set_xscale("log")
        ax.set_xticks(x, ["%g" % v for v in x])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Throughput and latency against load\n" + describe(config),
                 fontsize=11)
    return save(fig, path)


def plot_report(path, out_dir=None):
    config, rows = load_report(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    out_dir = out_dir or os.path.dirname(os.path.abspath(path))
    written = [plot_latency(config, rows,
                            os.path.join(out_dir, stem + "-latency.png")),
               plot_timeline(config, rows,
                             os.path.join(out_dir, stem + "-timeline.png"))]
    if len(rows) > 1:
        written.append(plot_sweep(config, rows,
                                  os.path.join(out_dir, stem + "-sweep.png")))
    return written


# ---------------------------------------------------------------------------
# Markdown tables (BENCHMARKS.md, bench/service.sh's table.md).

def number(cell):
    """A table cell as a float: '31,655' -> 31655, '1.45×' -> 1.45, '–' and
    '' -> None."""
    text = cell.strip().replace(",", "").rstrip("×").strip()
    try:
        return float(text)
    except ValueError:
        return None


def find_table(text, columns, start=0):
    """The first Markdown table at or after `start` whose header begins with
    `columns`: a list of {header: cell} rows."""
    lines = text[start:].splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:len(columns)] != columns:
            continue
        rows = []
        for body in lines[i + 2:]:  # past the |---| line
            if not body.startswith("|"):
                break
            values = [c.strip() for c in body.strip().strip("|").split("|")]
            rows.append(dict(zip(cells, values)))
        return rows
    return None


SERVICE_COLUMNS = ["function", "shape", "conc.", "QPS", "p50 ms", "p99 ms"]
KERNEL_COLUMNS = ["function", "op", "n", "actsvc", "onednn"]


def service_rows(text):
    """[{function, shape, concurrency, qps, p50_ms, p99_ms, vs_identity}]."""
    begin = text.find("<!-- service-table:begin -->")
    table = find_table(text, SERVICE_COLUMNS, max(begin, 0))
    if not table:
        sys.exit("no service table (header %s)" % " | ".join(SERVICE_COLUMNS))
    return [{"function": r["function"], "shape": r["shape"],
             "concurrency": int(number(r["conc."])), "qps": number(r["QPS"]),
             "p50_ms": number(r["p50 ms"]), "p99_ms": number(r["p99 ms"]),
             "vs_identity": number(r.get("× identity", ""))} for r in table]


def kernel_rows(text):
    """[{function, op, n, actsvc, onednn}] of the first kernel table after
    '## Kernels' (float32)."""
    section = re.search(r"^## Kernels\n", text, re.M)
    table = find_table(text, KERNEL_COLUMNS, section.end() if section else 0)
    if not table:
        sys.exit("no kernel table (header %s)" % " | ".join(KERNEL_COLUMNS))
    return [{"function": r["function"], "op": r["op"], "n": int(r["n"]),
             "actsvc": number(r["actsvc"]), "onednn": number(r["onednn"]),
             "ratio": number(r.get("actsvc/onednn", ""))}
            for r in table]


def ordered(values):
    """Unique values in order of first appearance."""
    return list(dict.fromkeys(values))


def plot_service(rows, path, source):
    shapes = ordered(r["shape"] for r in rows)
    functions = ordered(r["function"] for r in rows)
    fig, axes = plt.subplots(3, len(shapes), figsize=SERVICE_SIZE,
                             squeeze=False, layout="constrained")
    markers = "osD^v<>p*"
    for col, shape in enumerate(shapes):
        cells = [r for r in rows if r["shape"] == shape]
        levels = sorted(set(r["concurrency"] for r in cells))
        p99 = [r["p99_ms"] for r in cells if r["p99_ms"]]
        for k, function in enumerate(functions):
            mine = sorted((r for r in cells if r["function"] == function),
                          key=lambda r: r["concurrency"])
            if not mine:
                continue
            c = [r["concurrency"] for r in mine]
            style = dict(marker=markers[k % len(markers)], label=function,
                         linewidth=1.5, markersize=5)
            axes[0][col].plot(c, [r["qps"] for r in mine], **style)
            axes[1][col].plot(c, [r["p99_ms"] for r in mine], **style)
            axes[2][col].plot(c, [r["vs_identity"] for r in mine], **style)
        axes[0][col].set_title("shape %s" % shape, fontsize=11)
        axes[0][col].set_ylim(bottom=0)
        if spans_decades(p99, 5):
            log_y(axes[1][col], "p99 latency (ms" if col == 0 else None)
        elif col == 0:
            axes[1][col].set_ylabel("p99 latency (ms)")
        axes[2][col].axhline(1.0, color="0.5", linewidth=1)
        for ax in axes[:, col]:
            ax.set_xscale("log")
            ax.set_xticks(levels, [str(v) for v in levels])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.grid(True, which="both", alpha=0.3)
        axes[2][col].set_xlabel("concurrency (calls outstanding)")
    # One scale for the ratios, so that a 3% difference looks like one.
    ratios = [r["vs_identity"] for r in rows if r["vs_identity"]]
    for ax in axes[2]:
        ax.set_ylim(min(ratios + [0.8]) - 0.05, max(ratios + [1.2]) + 0.05)
    axes[0][0].set_ylabel("QPS (OK calls/s)")
    axes[2][0].set_ylabel("QPS / identity's QPS")
    axes[0][0].legend(fontsize=9, title="function", loc="upper left")
    fig.suptitle("actsvc-server under actsvc bench: float32 raw, closed "
                 "loop, loopback (%s)" % source, fontsize=12)
    return save(fig, path)


def plot_kernels(rows, path, source):
    sizes = sorted(set(r["n"] for r in rows))
    ops = [op for op in ("fwd", "vjp") if any(r["op"] == op for r in rows)]
    functions = ordered(r["function"] for r in rows
                        if r["op"] in ops and r["function"] != "memcpy")
    memcpy = {r["n"]: r["actsvc"] for r in rows if r["function"] == "memcpy"}
    fig, axes = plt.subplots(len(ops), len(sizes), figsize=KERNELS_SIZE,
                             squeeze=False, sharey=True, layout="constrained")
    height = 0.38
    for i, op in enumerate(ops):
        for j, n in enumerate(sizes):
            ax = axes[i][j]
            cell = {r["function"]: r for r in rows
                    if r["op"] == op and r["n"] == n}
            ys = range(len(functions))
            top = max([v for r in cell.values()
                       for v in (r["actsvc"], r["onednn"]) if v] + [1.0])
            for y, function in zip(ys, functions):
                r = cell.get(function)
                if not r:
                    continue
                a, o, ratio = r["actsvc"], r["onednn"], r["ratio"]
                if a:
                    ax.barh(y - height / 2, a, height, color="C0",
                            label="actsvc" if y == 0 else None)
                if o:
                    ax.barh(y + height / 2, o, height, color="C1",
                            label="oneDNN" if y == 0 else None)
                note = "%.2f×" % ratio if ratio else "no oneDNN"
                ax.text(max(a or 0, o or 0) + top * 0.01, y, note,
                        va="center", fontsize=8,
                        color="black" if ratio else "0.45")
            if n in memcpy and memcpy[n]:
                ax.axvline(memcpy[n], color="0.3", linestyle="--",
                           linewidth=1, label="memcpy %.2f" % memcpy[n])
            ax.set_xlim(0, top * 1.18)
            ax.set_yticks(list(ys), functions)
            ax.grid(True, axis="x", alpha=0.3)
            ax.set_title("%s, n = %s (%s)" % (
                {"fwd": "forward f(x)", "vjp": "VJP g·f'(x)"}.get(op, op),
                f"{n:,}", "in cache" if n <= 1 << 20 else "memory-bound"),
                fontsize=11)
            if i == len(ops) - 1:
                ax.set_xlabel("elements per ns (higher is better)")
            if i == 0 and j == len(sizes) - 1:
                ax.legend(fontsize=9, loc="lower right")
            elif n in memcpy and i == 0:
                ax.legend(fontsize=9, loc="lower right")
    axes[0][0].invert_yaxis()  # shared: the first function on top
    fig.suptitle("Kernels, float32, one thread: actsvc beside oneDNN "
                 "(ratio actsvc/oneDNN at each bar; %s)" % source,
                 fontsize=12)
    return save(fig, path)


# ---------------------------------------------------------------------------

def main(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("report", help="PNGs of actsvc bench JSON reports")
    p.add_argument("reports", nargs="+", metavar="REPORT.json")
    p.add_argument("--out-dir", help="default: each report's folder")
    p = sub.add_parser("service", help="docs/service.png from the table")
    p.add_argument("--table", default=BENCHMARKS)
    p.add_argument("--out", default=os.path.join(REPO, "docs", "service.png"))
    p = sub.add_parser("kernels", help="docs/kernels.png from the table")
    p.add_argument("--table", default=BENCHMARKS)
    p.add_argument("--out", default=os.path.join(REPO, "docs", "kernels.png"))
    args = parser.parse_args(argv)

    if args.command == "report":
        for path in args.reports:
            plot_report(path, args.out_dir)
        return
    with open(args.table) as f:
        text = f.read()
    source = "from " + os.path.basename(args.table)
    if args.command == "service":
        plot_service(service_rows(text), args.out, source)
    else:
        plot_kernels(kernel_rows(text), args.out, source)


if __name__ == "__main__":
    main(sys.argv[1:])
