#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, installs
# actsvc and actsvc-server in /usr/local/bin (cmake --install; sudo when not
# root), starts a server on ${ACTSVC_PORT:-50051}, calls every RPC with the CLI,
# and stops the server again, so that the port is free afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
PORT=${ACTSVC_PORT:-50051}
PIDFILE="$BUILD_DIR/actsvc-server.pid"
LOG="$BUILD_DIR/actsvc-server.log"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO cmake --install "$BUILD_DIR" >/dev/null
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD_DIR/CMakeCache.txt")
echo "demo: installed actsvc and actsvc-server in $prefix/bin"

# Earlier versions of this script left their server running.
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "demo: stopping the previous demo server (pid $(cat "$PIDFILE"))"
  kill -TERM "$(cat "$PIDFILE")"
  for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
fi

"$BUILD_DIR/server/actsvc-server" --address="127.0.0.1:$PORT" >"$LOG" 2>&1 &
server_pid=$!
echo $server_pid >"$PIDFILE"
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || return 0
  wait "$server_pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}
trap stop_server EXIT
cli() {
  echo
  echo "\$ actsvc $*"
  "$BUILD_DIR/client/actsvc" --target="127.0.0.1:$PORT" "$@"
}

cli health --wait_s=15
cli list
cli evaluate --function=gelu --x=-8,-1,0,1,8
cli derivative --function=sigmoid --x=0,6,20
cli derivative --function=tanh --order=2 --dtype=float64 --x=-1,0.5,3
cli derivative --function=gelu --x=-2,0,2 --grad=1,0.5,0.25
cli evaluate --function=softmax --shape=2,3 --x=1,2,3,1,1,1000
cli derivative --function=softmax --shape=1,3 --x=1,2,3 --grad=1,0,0
cli jacobian --function=softmax --x=1,2,3
cli jacobian --function=leaky_relu --alpha=0.1 --x=-1,2 --dense
cli xent --shape=2,3 --x=2,0.5,-1,0,0,0 --labels=0,2 --probs
cli stream --function=silu --x=-1,0,1
cli evaluate --function=sigmoid --shape=2,2 --x=1,2,3 || true
echo
echo "demo: done; stopping the server (its log: $LOG). For the README's examples, run"
echo "demo:   actsvc-server --address=127.0.0.1:50051"
