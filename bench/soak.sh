#!/usr/bin/env bash
# The soak test (BENCHMARKS.md, "## Soak"; the ctest soak.short runs it for
# 20 s): starts actsvc-server on a free loopback port with explicit limits,
# runs actsvc-soak against it for --duration (a closed loop of 64 calls of
# every RPC, valid and invalid, each status and answer checked; see
# bench/soak_main.cc), samples the server's RSS (VmRSS) every second, and fails on
#   - an unexpected status or a wrong answer (the driver's verdict),
#   - the server dying, or not exiting 0 after SIGTERM,
#   - RSS growth above --max_rss_growth_mb: the median of the last 5 samples
#     minus the median of the 5 taken right after the warm-up (the first 25%
#     of the run, 3 to 60 s, while the allocator's pools fill up).
#
#   bench/soak.sh [--build DIR] [--duration 5m] [--concurrency 64]
#                 [--max_rss_growth_mb 20] [--no_rss_check] [--seed 1]
#                 [--out DIR]
#
# --no_rss_check: report RSS but do not judge it (sanitized builds, whose
# allocator quarantines freed memory). Durations: 20s, 5m, 1h or seconds.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
duration=5m
concurrency=64
max_rss_growth_mb=20
rss_check=1
seed=1
out=""
source "$root/bench/lib.sh"
parse_args 2,19 "build duration concurrency max_rss_growth_mb seed out" \
  "no_rss_check=rss_check=0" "$@"
no_unparsed_args
[[ "$build" = /* ]] || build="$PWD/$build"

case "$duration" in
  *h) seconds=$(( ${duration%h} * 3600 )) ;;
  *m) seconds=$(( ${duration%m} * 60 )) ;;
  *s) seconds=$(( ${duration%s} )) ;;
  *) seconds=$(( duration )) ;;
esac
if (( seconds < 4 )); then
  echo "--duration=$duration: at least 4 s (warm-up, then the measured part)" >&2
  exit 2
fi
warmup=$(( seconds / 4 ))
(( warmup < 3 )) && warmup=3
(( warmup > 60 )) && warmup=60

server_bin="$build/server/actsvc-server"
cli="$build/client/actsvc"
driver="$build/bench/actsvc-soak"
require_bins "the actsvc-server, actsvc and actsvc-soak targets (or pass --build DIR)" \
  "$server_bin" "$cli" "$driver"
make_out_dir actsvc-soak
: >"$out/rss.tsv"

# The limits the driver's table assumes (it is told the same ones). Calls
# in flight stay far below --max_concurrent_calls: the soak is about bad
# input, not about load shedding.
max_elements=262144
max_message_mb=16
port="$(free_port)"
target="127.0.0.1:$port"
"$server_bin" --address="$target" --max_elements="$max_elements" \
  --max_message_mb="$max_message_mb" --max_concurrent_calls=1024 \
  --parallel_threshold_elements=131072 --shutdown_grace_s=10 \
  --log_level=error >"$out/server.log" 2>&1 &
server_pid=$!
sampler_pid=""
cleanup() {
  [[ -n "$sampler_pid" ]] && kill "$sampler_pid" 2>/dev/null || true
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if ! "$cli" --target="$target" health --wait_s=30 >/dev/null; then
  echo "FAIL: actsvc-server did not become healthy; its log:" >&2
  tail -20 "$out/server.log" >&2
  exit 1
fi

# One VmRSS sample (kB) per second, with the second it was taken in.
(
  start=$SECONDS
  while rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null) && [[ -n "$rss" ]]; do
    echo "$(( SECONDS - start )) $rss" >>"$out/rss.tsv"
    sleep 1
  done
) &
sampler_pid=$!

echo "actsvc-soak: server pid $server_pid on $target, ${seconds} s at concurrency $concurrency (warm-up ${warmup} s), output in $out" >&2
driver_status=0
"$driver" --target="$target" --duration="${seconds}s" \
  --concurrency="$concurrency" --seed="$seed" \
  --max_elements="$max_elements" --max_message_mb="$max_message_mb" \
  >"$out/soak.txt" || driver_status=$?

failed=0
if ! kill -0 "$server_pid" 2>/dev/null; then
  server_status=0
  wait "$server_pid" || server_status=$?
  echo "FAIL: actsvc-server died during the soak (exit status $server_status); its log:" >&2
  tail -20 "$out/server.log" >&2
  failed=1
else
  sleep 1  # one more sample at rest
  kill -TERM "$server_pid"
  server_status=0
  wait "$server_pid" || server_status=$?
  if (( server_status != 0 )); then
    echo "FAIL: actsvc-server exited with status $server_status after SIGTERM; its log:" >&2
    tail -20 "$out/server.log" >&2
    failed=1
  fi
fi
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""

# Medians of 5 samples, so that one sample taken while a few large requests
# are in flight does not decide; a leak moves both the end and the peak.
read -r baseline peak end samples < <(awk -v w="$warmup" '
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++)
      for (j = i + 1; j <= n; j++)
        if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? a[int((n + 1) / 2)] : 0
  }
  $1 >= w && nb < 5 { b[++nb] = $2 }
  $1 >= w && $2 > peak { peak = $2 }
  { all[++n] = $2 }
  END {
    for (i = n - 4; i <= n; i++) if (i >= 1) e[++ne] = all[i]
    printf "%d %d %d %d\n", median(b, nb), peak, median(e, ne), n
  }' "$out/rss.tsv")
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
growth_kb=$(( end - baseline ))

echo "== actsvc-soak summary (${seconds} s, concurrency $concurrency, seed $seed)"
sed -n '/^by class/,$p' "$out/soak.txt"
echo "server RSS: baseline $(mb "$baseline") MB (after the ${warmup} s warm-up), peak $(mb "$peak") MB, end $(mb "$end") MB, growth $(mb "$growth_kb") MB (limit ${max_rss_growth_mb} MB$( ((rss_check)) || echo ', not checked')), $samples samples"
if (( samples < warmup + 5 || baseline == 0 )); then
  echo "FAIL: too few RSS samples ($samples)" >&2
  failed=1
elif (( rss_check && growth_kb > max_rss_growth_mb * 1024 )); then
  echo "FAIL: server RSS grew by $(mb "$growth_kb") MB after warm-up (limit ${max_rss_growth_mb} MB); samples in $out/rss.tsv" >&2
  failed=1
fi
if (( driver_status != 0 )); then
  echo "FAIL: actsvc-soak exited with status $driver_status (full report in $out/soak.txt)" >&2
  failed=1
fi
if (( failed )); then
  echo "soak: FAIL"
  exit 1
fi
echo "soak: PASS"
