#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/check-format.sh
scripts/fuzz.sh
# The whole suite under AddressSanitizer and UBSan (all but the slow container
# tests, which test the image, not our code) first, so that the plain build's
# ctest summary stays the last line.
BUILD_DIR=build-asan scripts/build.sh -DACTSVC_SANITIZE=address,undefined \
  -DACTSVC_BUILD_BENCH=OFF
(cd build-asan && ctest --output-on-failure -j2 --timeout 600 -LE container)
scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j2 --timeout 600
