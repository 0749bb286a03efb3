#!/usr/bin/env bash
# The service benchmark of BENCHMARKS.md ("## Service"): starts actsvc-server
# and the echo baseline (bench/echo_server.cc: gRPC alone, answering each
# call with its request) on free loopback ports, runs `actsvc bench` closed
# loop at concurrency 1, 8 and 64 for {echo, identity, sigmoid, gelu,
# softmax} x {[1,1024], [64,1000], [4,1048576]}, float32 raw, and prints the
# service table: QPS, p50, p99, request MB/s, the ratios to echo and to
# identity at the same shape, dtype, encoding and concurrency, and the
# server's minor page faults and CPU time per call. Every figure is the
# median of --reps repetitions; within a repetition the echo and actsvc
# cells of a shape run one after the other (interleaved), so both see the
# same machine.
#
#   bench/service.sh [--build DIR] [--duration 5s] [--warmup 1s] [--reps 3]
#                    [--concurrency 1,8,64] [--functions identity,gelu]
#                    [--shapes '1,1024;64,1000'] [--variants VARIANTS]
#                    [--out DIR] [--write]
#
# --variants: dtype/encoding pairs, e.g. 'float32/raw;float64/raw;
# float32/typed' (default float32/raw); the float32 raw cells make the main
# table, the others a second one. --write replaces the tables of
# "## Service" in BENCHMARKS.md (between its service-table markers; the
# notes around them stay) and renders the main one as docs/service.png.
# Every run leaves the per-cell reports and their pictures
# (bench/plot_bench.py) in the --out directory, with service.png.
# The default run (3 x 45 cells of 1 s warmup + 5 s) takes about 14 minutes.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
duration=5s
warmup=1s
reps=3
concurrency=1,8,64
functions=identity,sigmoid,gelu,softmax
shapes='1,1024;64,1000;4,1048576'
variants='float32/raw'
out=""
write=0
source "$root/bench/lib.sh"
parse_args 2,28 \
  "build duration warmup reps concurrency functions shapes variants out" \
  "write=write=1" "$@"
no_unparsed_args
[[ "$build" = /* ]] || build="$PWD/$build"
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "--reps must be a positive integer" >&2; exit 2; }

cli="$build/client/actsvc"
server_bin="$build/server/actsvc-server"
echo_bin="$build/bench/actsvc-echo-server"
require_bins "the actsvc, actsvc-server and actsvc-echo-server targets (or pass --build DIR)" \
  "$cli" "$server_bin" "$echo_bin"
make_out_dir actsvc-service-bench

target="127.0.0.1:$(free_port)"
echo_target="127.0.0.1:$(free_port)"
"$server_bin" --address="$target" >"$out/server.log" 2>&1 &
server_pid=$!
"$echo_bin" --address="$echo_target" >"$out/echo.log" 2>&1 &
echo_pid=$!
trap 'kill -TERM $server_pid $echo_pid 2>/dev/null; wait $server_pid $echo_pid 2>/dev/null || true' EXIT
"$cli" --target="$target" health --wait_s=15 >/dev/null
"$cli" --target="$echo_target" health --wait_s=15 >/dev/null

echo "actsvc-server pid $server_pid on $target, echo pid $echo_pid on $echo_target; results in $out" >&2
IFS=';' read -r -a shape_list <<<"$shapes"
IFS=',' read -r -a function_list <<<"$functions"
IFS=';' read -r -a variant_list <<<"$variants"
for rep in $(seq 1 "$reps"); do
  for shape in "${shape_list[@]}"; do
    for variant in "${variant_list[@]}"; do
      dtype="${variant%/*}"
      encoding="${variant#*/}"
      for function in echo "${function_list[@]}"; do
        name="${function}__${shape//,/x}__${dtype}__${encoding}__r${rep}"
        echo "== rep $rep: $function [$shape] $dtype $encoding concurrency $concurrency" >&2
        if [[ "$function" == echo ]]; then
          # The identity request, answered by gRPC alone.
          flags=(--target="$echo_target" bench --function=identity
                 --method=/actsvc.bench.v1.Echo/Echo --server_pid="$echo_pid")
        else
          flags=(--target="$target" bench --function="$function"
                 --server_pid="$server_pid")
        fi
        "$cli" "${flags[@]}" --shape="$shape" --dtype="$dtype" \
          --encoding="$encoding" --concurrency="$concurrency" \
          --duration="$duration" --warmup="$warmup" \
          --json "$out/$name.json" --csv "$out/$name.csv" >"$out/$name.txt"
      done
    done
  done
done

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
python3 - "$out" "$shapes" "$functions" "$duration" "$warmup" "$concurrency" \
    "$(nproc)" "$cpu" "$reps" "$variants" >"$out/table.md" <<'PY'
import csv, glob, os, statistics, sys
out, shapes, functions, duration, warmup, conc, ncpu, cpu, reps, variants = sys.argv[1:]
cells = {}  # (function, shape, dtype, encoding, concurrency) -> [csv rows]
for path in glob.glob(os.path.join(out, "*__r*.csv")):
    function, shape, dtype, encoding, _ = os.path.basename(path)[:-4].split("__")
    shape = "[" + shape.replace("x", ",") + "]"
    for r in csv.DictReader(open(path)):
        cells.setdefault((function, shape, dtype, encoding, int(r["concurrency"])), []).append(r)

def median(rows, key):
    return statistics.median(float(r[key]) for r in rows)

def ratio(rows, base):
    if not base or median(base, "ok_rps") <= 0:
        return "-"
    return f"{median(rows, 'ok_rps') / median(base, 'ok_rps'):.2f}"

levels = [int(c) for c in conc.split(",")]
names = ["echo"] + functions.split(",")
variant_list = [tuple(v.split("/")) for v in variants.split(";")]
print(f"`bench/service.sh --duration {duration} --warmup {warmup} --reps {reps}`: "
      f"actsvc-server, the echo baseline (bench/echo_server.cc) and `actsvc bench` on the "
      f"same {ncpu} vCPU ({cpu}), loopback, closed loop, {duration} per cell after a "
      f"{warmup} warmup; each figure the median of {reps} repetitions, echo and actsvc "
      "cells interleaved. MB/s counts request bytes (the response is the same size); "
      "× echo and × identity are QPS ratios to the echo baseline and to identity at the "
      "same shape, dtype, encoding and concurrency; faults and CPU are the server's, per "
      "call, from /proc/PID/stat.")

def table(variants_here, with_variant):
    head = "| function | shape | conc. | QPS | p50 ms | p99 ms | MB/s | × echo | × identity | faults/call | server CPU ms/call | errors |"
    if with_variant:
        head += " dtype | enc. |"
    print()
    print(head)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---|---|" if with_variant else ""))
    for dtype, encoding in variants_here:
        for shape in shapes.split(";"):
            key_shape = "[" + shape + "]"
            for c in levels:
                for f in names:
                    rows = cells.get((f, key_shape, dtype, encoding, c))
                    if not rows:
                        continue
                    echo = cells.get(("echo", key_shape, dtype, encoding, c))
                    identity = cells.get(("identity", key_shape, dtype, encoding, c))
                    line = (f"| {f} | {key_shape} | {c} | {median(rows, 'ok_rps'):,.0f} | "
                            f"{median(rows, 'p50_ms'):.3f} | {median(rows, 'p99_ms'):.3f} | "
                            f"{median(rows, 'request_mb_per_s'):,.0f} | "
                            f"{ratio(rows, echo) if f != 'echo' else '1.00'} | "
                            f"{ratio(rows, identity) if f != 'echo' else '-'} | "
                            f"{median(rows, 'server_minor_faults_per_call'):,.0f} | "
                            f"{median(rows, 'server_cpu_ms_per_call'):.3f} | "
                            f"{sum(int(r['errors']) for r in rows)} |")
                    if with_variant:
                        line += f" {dtype} | {encoding} |"
                    print(line)

main = [v for v in variant_list if v == ("float32", "raw")]
others = [v for v in variant_list if v != ("float32", "raw")]
if main:
    table(main, False)
if others:
    print()
    print("Other dtypes and encodings, same run:")
    table(others, True)
PY
cat "$out/table.md"

# Pictures, by the Python that has matplotlib (Debian's python3-matplotlib).
plot_python="${ACTSVC_PLOT_PYTHON:-/usr/bin/python3}"
plots=0
if "$plot_python" -c 'import matplotlib' 2>/dev/null; then
  plots=1
  "$plot_python" "$root/bench/plot_bench.py" report "$out"/*.json \
    --out-dir "$out/plots" >&2
  "$plot_python" "$root/bench/plot_bench.py" service --table "$out/table.md" \
    --out "$out/service.png" >&2
else
  echo "no matplotlib in $plot_python (apt install python3-matplotlib, or set ACTSVC_PLOT_PYTHON): no pictures" >&2
fi

if [[ "$write" == 1 ]]; then
  python3 - "$root/BENCHMARKS.md" "$out/table.md" <<'PY'
import re, sys
path, table = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open(path).read()
m = re.search(r"^## Service\n", text, re.M)
if not m:
    sys.exit("BENCHMARKS.md has no '## Service' section")
start = m.end()
nxt = re.search(r"^## ", text[start:], re.M)
end = start + nxt.start() if nxt else len(text)
begin, close = "<!-- service-table:begin -->", "<!-- service-table:end -->"
section = text[start:end]
if begin in section and close in section:
    # Only the table between the markers: the notes around it stay.
    i, j = section.index(begin) + len(begin), section.index(close)
    section = section[:i] + "\n" + table + "\n" + section[j:]
else:
    section = "\n" + begin + "\n" + table + "\n" + close + "\n" + ("\n" if nxt else "")
open(path, "w").write(text[:start] + section + text[end:])
PY
  echo "wrote the table into $root/BENCHMARKS.md (## Service)" >&2
  if [[ "$plots" == 1 ]]; then
    cp "$out/service.png" "$root/docs/service.png"
    echo "wrote $root/docs/service.png" >&2
  fi
fi
