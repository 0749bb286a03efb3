#!/usr/bin/env bash
# Before/after for a server change: runs bench/service.sh against two
# actsvc-server binaries in turn (A, B, A, B, ...), with the same actsvc
# client, and prints per cell the median QPS of each and the ratio B / A.
# Both run on this machine in one run, so the ratio is the figure to quote.
#
#   bench/compare_servers.sh --a OLD_SERVER --b NEW_SERVER [--reps 3]
#       [--client BUILD/client/actsvc] [service.sh options, e.g.
#        --duration 3s --warmup 1s --functions identity,gelu]
#
# The default (3 repetitions of the 36 cells of service.sh at 3 s) takes
# about 15 minutes. Results stay in a temporary directory (printed).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
a="" b="" reps=3 client="$root/build/client/actsvc"
pass=(--duration 3s --warmup 1s)
source "$root/bench/lib.sh"
parse_args 2,13 "a b reps client" "" "$@"
pass+=(${unparsed[@]+"${unparsed[@]}"})
[[ -x "$a" && -x "$b" && -x "$client" ]] || {
  echo "need --a and --b server binaries and a client ($client); see --help" >&2
  exit 2
}
out="$(mktemp -d /tmp/actsvc-compare.XXXXXX)"
# service.sh also runs the echo baseline: the one beside the client's build.
echo_server="$(dirname "$(readlink -f "$client")")/../bench/actsvc-echo-server"
[[ -x "$echo_server" ]] || {
  echo "need the echo baseline $echo_server (its build's actsvc-echo-server target)" >&2
  exit 2
}
for side in a b; do
  mkdir -p "$out/build-$side/server" "$out/build-$side/client" \
    "$out/build-$side/bench"
  ln -sf "$(readlink -f "$client")" "$out/build-$side/client/actsvc"
  ln -sf "$(readlink -f "$echo_server")" "$out/build-$side/bench/actsvc-echo-server"
done
ln -sf "$(readlink -f "$a")" "$out/build-a/server/actsvc-server"
ln -sf "$(readlink -f "$b")" "$out/build-b/server/actsvc-server"
echo "results in $out" >&2
for ((rep = 1; rep <= reps; rep++)); do
  for side in a b; do
    echo "== repetition $rep, server $side" >&2
    "$root/bench/service.sh" --build "$out/build-$side" \
      --out "$out/$side-$rep" "${pass[@]}" >/dev/null
  done
done

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
python3 - "$out" "$reps" "$cpu" <<'PY'
import csv, glob, os, statistics, sys
out, reps, cpu = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cells = {}
for side in "ab":
    for rep in range(1, reps + 1):
        for path in glob.glob(os.path.join(out, f"{side}-{rep}", "*.csv")):
            for r in csv.DictReader(open(path)):
                key = (r["shape"], int(r["concurrency"]), r["function"])
                cell = cells.setdefault(key, {"a": [], "b": [], "fa": [], "fb": []})
                cell[side].append(float(r["ok_rps"]))
                cell["f" + side].append(float(r["server_minor_faults_per_call"]))
print(f"{reps} repetitions, A and B alternating, on {os.cpu_count()} vCPU ({cpu}); medians.")
print()
print("| shape | conc. | function | A QPS | B QPS | B / A | A faults/call | B faults/call |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
ratios = []
for key in sorted(cells, key=lambda k: (k[0], k[1], k[2])):
    c = cells[key]
    if not c["a"] or not c["b"]:
        continue
    qa, qb = statistics.median(c["a"]), statistics.median(c["b"])
    ratio = qb / qa if qa > 0 else float("nan")
    ratios.append(ratio)
    print(f"| {key[0]} | {key[1]} | {key[2]} | {qa:,.0f} | {qb:,.0f} | {ratio:.3f} | "
          f"{statistics.median(c['fa']):,.0f} | {statistics.median(c['fb']):,.0f} |")
if ratios:
    print()
    print(f"B / A over {len(ratios)} cells: min {min(ratios):.3f}, "
          f"median {statistics.median(ratios):.3f}, max {max(ratios):.3f}")
PY
