#!/usr/bin/env bash
# Installs the Debian 12 packages actsvc needs, only those that are missing.
# Safe to re-run. Uses sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libhwy-dev
  libcivetweb-dev  # the Prometheus endpoint (--metrics_address), KServe REST
  rapidjson-dev    # KServe v2 REST bodies (server/kserve/json.h)
  openssl          # the TLS tests make their certificates at test time
  libdnnl-dev  # bench-only: oneDNN rows of bench/kernels_bench (skipped if absent)
  python3 python3-grpcio python3-protobuf python3-numpy python3-scipy
  python3-matplotlib
  clang-format
  libfuzzer-14-dev clang-14  # fuzzing (scripts/fuzz.sh)
)
# The Node.js client (examples/node) and its tests. Only where node or npm is
# missing: a Node.js already installed (e.g. NodeSource's nodejs, which brings
# npm and conflicts with Debian's npm package) is used as it is.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: every package is installed"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# examples/node's packages, exactly as package-lock.json pins them (pure
# JavaScript: no install scripts are run). npm ci starts from an empty
# node_modules every time, so it runs only when the lockfile differs from the
# one of the last successful install.
node_dir="$(cd "$(dirname "$0")/.." && pwd)/examples/node"
stamp="$node_dir/node_modules/.actsvc-lock.sha256"
lock_sum="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
  echo "install-deps: examples/node packages are installed"
else
  echo "install-deps: npm ci in examples/node"
  (cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund)
  echo "$lock_sum" >"$stamp"
fi
