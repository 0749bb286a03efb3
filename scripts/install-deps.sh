#!/usr/bin/env bash
# Installs the Debian 12 packages actsvc needs, only those that are missing.
# Safe to re-run. Uses sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libhwy-dev
  libcivetweb-dev  # the Prometheus endpoint (--metrics_address)
  openssl          # the TLS tests make their certificates at test time
  libdnnl-dev  # bench-only: oneDNN rows of bench/kernels_bench (skipped if absent)
  python3 python3-grpcio python3-protobuf python3-numpy python3-scipy
  python3-matplotlib
  clang-format
  libfuzzer-14-dev clang-14  # fuzzing (scripts/fuzz.sh)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: every package is installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
