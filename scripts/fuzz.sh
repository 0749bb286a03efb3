#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang-14, AddressSanitizer
# and UBSan into build-fuzz, then runs each for its share of a time budget
# (default 60 s in all). Fails when any target finds a crash, a leak, a
# timeout or an OOM, and says where the input is and how to keep it as a
# regression test. Safe to re-run: the working corpus under
# build-fuzz/fuzz/corpus grows from run to run; tests/fuzz is never written.
#
# Usage: scripts/fuzz.sh [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' \
                 "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "fuzz.sh: --seconds must be a positive integer" >&2
  exit 2
fi

BUILD_DIR=build-fuzz
# Target and its weight in the budget: ListFunctions has almost no input to
# explore.
targets=(fuzz_evaluate fuzz_derivative fuzz_jacobian fuzz_softmax_cross_entropy
         fuzz_analyze fuzz_stream fuzz_list_functions fuzz_npy fuzz_wire
         fuzz_model_infer fuzz_rest_infer)
weights=(4 4 4 4 4 4 1 2 4 4 4)

CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DACTSVC_FUZZ=ON \
  -DACTSVC_SANITIZE=address,undefined -DACTSVC_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD_DIR" --target "${targets[@]}" -j2

total_weight=0
for w in "${weights[@]}"; do total_weight=$((total_weight + w)); done

work="$BUILD_DIR/fuzz"
failed=()
summary=()
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  budget=$((seconds * weights[i] / total_weight))
  [ "$budget" -ge 1 ] || budget=1
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t"
  log="$work/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  # Seeds and past crashes join the working corpus (which keeps what earlier
  # runs found).
  cp -p tests/fuzz/corpus/"$t"/* "$corpus"/
  if [ -d tests/fuzz/regressions/"$t" ]; then
    find tests/fuzz/regressions/"$t" -maxdepth 1 -type f ! -name '.*' \
      -exec cp -p {} "$corpus"/ \;
  fi
  echo "fuzz.sh: $t for ${budget}s (log: $log)"
  stamp="$work/logs/$t.start"
  touch "$stamp"
  status=0
  "$BUILD_DIR/tests/fuzz/$t" "$corpus" \
    -max_total_time="$budget" -timeout=10 -rss_limit_mb=2048 \
    -dict=tests/fuzz/actsvc.dict -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([^ ]*\).*/cov \1, ft \2, corpus \3/p' \
        <<<"$done_line")
  summary+=("$(printf '%-28s %10s execs %7s exec/s  %s' "$t" "${execs:-?}" \
               "${rate:-?}" "${cov:-}")")
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "fuzz.sh: $t FAILED (exit $status); the end of $log:" >&2
    grep -E 'ERROR|SUMMARY|fuzz check failed|runtime error|Test unit written' \
      "$log" | head -n 20 >&2 || true
    for a in $(find "$artifacts" -type f -newer "$stamp"); do
      echo "  input: $a" >&2
      echo "  reproduce: $BUILD_DIR/tests/fuzz/$t $a" >&2
      echo "  keep it: fix the bug, then" \
        "cp $a tests/fuzz/regressions/$t/<what-it-was>; commit it: the" \
        "ctest test fuzz.${t#fuzz_} replays it in every build" >&2
    done
  fi
done

echo "fuzz.sh: results (${seconds}s budget)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${#targets[@]} targets"
