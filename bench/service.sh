#!/usr/bin/env bash
# The service benchmark of BENCHMARKS.md ("## Service"): starts actsvc-server
# on a free loopback port, runs `actsvc bench` closed loop at concurrency 1, 8
# and 64 for {identity, sigmoid, gelu, softmax} x {[1,1024], [64,1000],
# [4,1048576]} float32 raw, and prints the service table (QPS, p50, p99,
# request MB/s, the ratio to identity at the same shape and concurrency, and
# the server's minor page faults and CPU time per call).
#
#   bench/service.sh [--build DIR] [--duration 5s] [--warmup 1s]
#                    [--concurrency 1,8,64] [--functions identity,gelu]
#                    [--shapes '1,1024;64,1000'] [--out DIR] [--write]
#
# --write replaces the table of "## Service" in BENCHMARKS.md (between its
# service-table markers; the notes around them stay) and renders it as
# docs/service.png. Every run leaves the per-cell reports and their pictures
# (bench/plot_bench.py: latency distribution, latency over the run, QPS and
# p99 against concurrency) in the --out directory, with service.png.
# The default run (36 cells of 1 s warmup + 5 s) takes about four minutes.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
duration=5s
warmup=1s
concurrency=1,8,64
functions=identity,sigmoid,gelu,softmax
shapes='1,1024;64,1000;4,1048576'
out=""
write=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --functions) functions="$2"; shift 2 ;;
    --shapes) shapes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --write) write=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$build" = /* ]] || build="$PWD/$build"

cli="$build/client/actsvc"
server_bin="$build/server/actsvc-server"
for bin in "$cli" "$server_bin"; do
  [[ -x "$bin" ]] || { echo "missing $bin: build the actsvc and actsvc-server targets (or pass --build DIR)" >&2; exit 2; }
done
if [[ -z "$out" ]]; then out="$(mktemp -d /tmp/actsvc-service-bench.XXXXXX)"; fi
mkdir -p "$out"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
target="127.0.0.1:$port"
"$server_bin" --address="$target" >"$out/server.log" 2>&1 &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null; wait $server_pid 2>/dev/null || true' EXIT
"$cli" --target="$target" health --wait_s=15 >/dev/null

echo "actsvc-server pid $server_pid on $target; results in $out" >&2
IFS=';' read -r -a shape_list <<<"$shapes"
IFS=',' read -r -a function_list <<<"$functions"
for shape in "${shape_list[@]}"; do
  for function in "${function_list[@]}"; do
    name="${function}_${shape//,/x}"
    echo "== $function [$shape] concurrency $concurrency" >&2
    "$cli" --target="$target" bench --function="$function" --shape="$shape" \
      --dtype=float32 --encoding=raw --concurrency="$concurrency" \
      --duration="$duration" --warmup="$warmup" --server_pid="$server_pid" \
      --json "$out/$name.json" --csv "$out/$name.csv" >"$out/$name.txt"
  done
done

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
python3 - "$out" "$shapes" "$functions" "$duration" "$warmup" "$concurrency" \
    "$(nproc)" "$cpu" >"$out/table.md" <<'PY'
import csv, glob, os, sys
out, shapes, functions, duration, warmup, conc, ncpu, cpu = sys.argv[1:]
rows = {}
for path in glob.glob(os.path.join(out, "*.csv")):
    for r in csv.DictReader(open(path)):
        rows[(r["function"], r["shape"], int(r["concurrency"]))] = r
print(f"`bench/service.sh --duration {duration} --warmup {warmup}`: actsvc-server and "
      f"`actsvc bench` on the same {ncpu} vCPU ({cpu}), loopback, float32 raw, closed loop, "
      f"{duration} per cell after a {warmup} warmup. MB/s counts request bytes (the response "
      "is the same size); × identity is the QPS ratio to identity at the same shape and "
      "concurrency; faults and CPU are the server's, per call, from /proc/PID/stat.")
print()
print("| function | shape | conc. | QPS | p50 ms | p99 ms | MB/s | × identity | faults/call | server CPU ms/call | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
levels = [int(c) for c in conc.split(",")]
for shape in shapes.split(";"):
    key_shape = "[" + shape + "]"
    for c in levels:
        for f in functions.split(","):
            r = rows.get((f, key_shape, c))
            if r is None:
                continue
            base = rows.get(("identity", key_shape, c))
            qps = float(r["ok_rps"])
            ratio = f"{qps / float(base['ok_rps']):.2f}" if base and float(base["ok_rps"]) > 0 else "-"
            print(f"| {f} | {key_shape} | {c} | {qps:,.0f} | {float(r['p50_ms']):.3f} | "
                  f"{float(r['p99_ms']):.3f} | {float(r['request_mb_per_s']):,.0f} | {ratio} | "
                  f"{float(r['server_minor_faults_per_call']):,.0f} | "
                  f"{float(r['server_cpu_ms_per_call']):.3f} | {r['errors']} |")
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
