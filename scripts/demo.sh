#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, starts the
# server on ${ACTSVC_PORT:-50051} and calls every RPC with the CLI. The server
# keeps running afterwards (its pid is in build/actsvc-server.pid); a re-run
# replaces it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null
BUILD_DIR=${BUILD_DIR:-build}
PORT=${ACTSVC_PORT:-50051}
PIDFILE="$BUILD_DIR/actsvc-server.pid"
LOG="$BUILD_DIR/actsvc-server.log"

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "demo: stopping the previous demo server (pid $(cat "$PIDFILE"))"
  kill -TERM "$(cat "$PIDFILE")"
  for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
fi

"$BUILD_DIR/server/actsvc-server" --address="127.0.0.1:$PORT" >"$LOG" 2>&1 &
echo $! >"$PIDFILE"
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
echo "demo: actsvc-server is running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), log $LOG)."
echo "demo: stop it with: kill $(cat "$PIDFILE")"
