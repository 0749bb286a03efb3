#!/usr/bin/env bash
# KServe v2 beside the own API, on one actsvc-server (BENCHMARKS.md, "KServe
# v2"): gRPC Evaluate against ModelInfer of the same computation (gelu,
# float32, raw), interleaved A B A B ... with `actsvc bench`, at [1,1024]
# concurrency 8 and [4,1048576] concurrency 1, printing each pair's QPS and
# the median ratio (and the server's CPU time per call, which a busy machine
# disturbs less than QPS); then the REST endpoint with the binary tensor data
# extension and with JSON bodies (`actsvc bench --protocol=http`, one
# connection per call, as civetweb closes them).
#
#   bench/kserve.sh [--build DIR] [--reps N] [--duration 5s]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
reps=3
duration=5s
source "$root/bench/lib.sh"
parse_args 2,10 "build reps duration" "" "$@"
no_unparsed_args
server="$build/server/actsvc-server"
cli="$build/client/actsvc"
require_bins "actsvc-server and actsvc" "$server" "$cli"
out=""
make_out_dir actsvc-kserve
port=$(free_port)
http=$(free_port)
"$server" --address=127.0.0.1:$port --http_address=127.0.0.1:$http \
  --log_level=warn >"$out/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
"$cli" --target=127.0.0.1:$port health --wait_s=10 >/dev/null

echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) vCPU, load $(cut -d' ' -f1-3 /proc/loadavg); reports in $out"
for cell in "1,1024 8" "4,1048576 1"; do
  set -- $cell
  ratios=()
  for rep in $(seq "$reps"); do
    line="gRPC gelu [$1] c=$2 rep $rep:"
    qps=()
    for protocol in actsvc kserve; do
      json="$out/${protocol}_$1_$2_$rep.json"
      "$cli" --target=127.0.0.1:$port bench --protocol=$protocol --function=gelu \
        --shape="$1" --concurrency="$2" --duration="$duration" --warmup=1s \
        --server_pid=$server_pid --json "$json" >/dev/null
      read -r q cpu < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["rows"][0]; print("%.1f %.3f" % (r.get("ok_rps", 0), r.get("server_cpu_ms_per_call", 0)))' "$json")
      qps+=("$q")
      line+=" $protocol $q QPS ($cpu server CPU ms/call),"
    done
    ratio=$(python3 -c "print('%.2f' % (${qps[1]} / ${qps[0]}))")
    ratios+=("$ratio")
    echo "$line ModelInfer/Evaluate $ratio"
  done
  echo "gRPC gelu [$1] c=$2: median ModelInfer/Evaluate $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
done

for cell in "1,1024 8" "4,1048576 1"; do
  set -- $cell
  for mode in binary json; do
    json="$out/http_${mode}_$1_$2.json"
    flags=(--protocol=http --http_target=127.0.0.1:$http)
    [[ $mode == json ]] && flags+=(--http_json)
    "$cli" --target=127.0.0.1:$port bench "${flags[@]}" --function=gelu \
      --shape="$1" --concurrency="$2" --duration="$duration" --warmup=1s \
      --server_pid=$server_pid --json "$json" >/dev/null || true
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["rows"][0]; print("REST %s gelu [%s] c=%s: %.1f QPS (%.3f server CPU ms/call), %d errors" % (sys.argv[2], sys.argv[3], sys.argv[4], r.get("ok_rps", 0), r.get("server_cpu_ms_per_call", 0), int(r.get("errors", 0))))' "$json" "$mode" "$1" "$2"
  done
done
