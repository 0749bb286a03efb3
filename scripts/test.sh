#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# How long each step took, on stderr (CI's 90-minute limit; keep the whole
# under 45).
t0=$SECONDS
took() {
  echo "test.sh: $1 took $((SECONDS - t0)) s" >&2
  t0=$SECONDS
}
scripts/install-deps.sh
took "install-deps"
scripts/check-format.sh
scripts/fuzz.sh
took "format and fuzz (build and run)"
# The whole suite under AddressSanitizer and UBSan (all but the slow container
# tests, which test the image, not our code) first, so that the plain build's
# ctest summary stays the last line.
BUILD_DIR=build-asan scripts/build.sh -DACTSVC_SANITIZE=address,undefined \
  -DACTSVC_BUILD_BENCH=OFF
took "sanitizer build"
(cd build-asan && ctest --output-on-failure -j2 --timeout 600 -LE container)
took "sanitizer tests"
scripts/build.sh
took "build"
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j2 --timeout 600
