#!/usr/bin/env bash
# Builds and runs the container deployment for real: the image (built with a
# local dockerd), a container called from outside and stopped mid-request,
# the compose file with its bench profile, and the Kubernetes manifests under
# `podman kube play` (the Deployment, and the KServe InferenceService's
# predictor as the pod KServe makes of it). Every container shares the host's network namespace and
# listens on 127.0.0.1 only; every daemon started here is stopped by its pid.
# When the environment cannot do it (Debian's mirror unreachable, no dockerd),
# it prints why and exits 77, which ctest reports as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=$(realpath -m "${BUILD_DIR:-build}")
WORK="$BUILD_DIR/container"
CLI="$BUILD_DIR/client/actsvc"
IMAGE=actsvc:latest
mkdir -p "$WORK"

say() { echo "container-test: $*"; }
skip() { say "SKIPPED: $*"; exit 77; }
fail() { say "FAILED: $*"; exit 1; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# --- packages (Debian's) --------------------------------------------------
need=()
for p in docker.io debootstrap docker-compose podman runc catatonit; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  $SUDO apt-get update -q >"$WORK/apt.log" 2>&1 \
    || skip "apt-get update failed: Debian's mirror is unreachable"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${need[@]}" >>"$WORK/apt.log" 2>&1 \
    || skip "apt-get install ${need[*]} failed (mirror unreachable?)"
fi
[ -x "$CLI" ] || fail "$CLI is missing: build the project first"

# The mirror debootstrap uses: the one this machine's apt uses.
MIRROR=$({ cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } \
         | grep -E '^(URIs:|deb )' | grep -v security \
         | sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//' | awk '{print $1; exit}' || true)
[ -n "$MIRROR" ] || skip "no Debian mirror in this machine's apt sources"

# --- dockerd, all of its state under $WORK -------------------------------
DOCKERD_PID=""
PODMAN_ROOT="$WORK/podman"
cleanup() {
  set +e
  if [ -n "${DOCKER_HOST:-}" ]; then
    /usr/bin/docker rm -f actsvc-test >/dev/null 2>&1
    [ -f "$WORK/compose.yaml" ] && docker-compose -p actsvctest -f "$WORK/compose.yaml" \
      --profile bench down --timeout 5 >/dev/null 2>&1
  fi
  if command -v podman >/dev/null && [ -d "$PODMAN_ROOT" ]; then
    podman_ kube down "$WORK/kube.yaml" >/dev/null 2>&1
    podman_ pod rm -f -a >/dev/null 2>&1
  fi
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  # dockerd leaves its network namespace mounted under its exec-root.
  for m in "$WORK"/docker-exec/netns/*; do
    mountpoint -q "$m" 2>/dev/null && umount "$m"
  done
}
trap cleanup EXIT

export DOCKER_HOST="unix://$WORK/docker.sock"
export DOCKER_BUILDKIT=1
docker() { /usr/bin/docker "$@"; }  # the preinstalled client has no buildx
rm -f "$WORK/docker.sock"
# No bridge, no NAT: containers use the host's network (loopback only here).
dockerd --data-root "$WORK/docker-data" --exec-root "$WORK/docker-exec" \
  --host "$DOCKER_HOST" --pidfile "$WORK/docker.pid" --bridge=none \
  --iptables=false --ip-masq=false >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
docker info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log"; skip "dockerd did not start here"; }
say "dockerd running (pid $DOCKERD_PID)"

# --- base images: pulled if a registry answers, else made locally ----------
make_base() {  # $1 = tag, $2 = slim (1) or not (0)
  local tag=$1 slim=$2 rootfs="$WORK/rootfs-$2"
  docker image inspect "$tag" >/dev/null 2>&1 && return 0
  if timeout 15 docker pull -q "$tag" >/dev/null 2>&1; then return 0; fi
  local minbase="$WORK/rootfs-0"
  if [ ! -f "$minbase/.complete" ]; then
    rm -rf "$minbase"
    say "debootstrap --variant=minbase bookworm"
    debootstrap --variant=minbase bookworm "$minbase" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || skip "debootstrap from Debian's mirror failed (see $WORK/debootstrap.log)"
    rm -rf "$minbase"/var/cache/apt/archives/*.deb "$minbase"/var/lib/apt/lists/*
    touch "$minbase/.complete"
  fi
  if [ ! -f "$rootfs/.complete" ]; then
    rm -rf "$rootfs"
    cp -a "$minbase" "$rootfs"
    if [ "$slim" = 1 ]; then
      # What debian:bookworm-slim leaves out: documentation and translations.
      rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/usr/share/common-licenses "$rootfs"/var/log/*.log
      printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
        'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/info/*' \
        >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
    fi
    touch "$rootfs/.complete"
  fi
  tar -C "$rootfs" --exclude=./.complete -c . | docker import - "$tag" >/dev/null
  say "made $tag locally"
}
make_base debian:bookworm 0
make_base debian:bookworm-slim 1

# --- the image --------------------------------------------------------------
say "building $IMAGE"
docker build --network host -f docker/Dockerfile -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log"; fail "docker build"; }
SIZE=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "image $IMAGE: $((SIZE / 1000000)) MB"

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_healthy() {  # $1 = container
  for _ in $(seq 150); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$1")" = healthy ] && return 0
    sleep 0.2
  done
  docker logs "$1" | tail -20
  fail "$1 never became healthy"
}
http_get() {  # $1 = URL; the body on stdout (curl is not in every install)
  /usr/bin/python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"
}
expect() {  # $1 = what, $2 = text that must appear, rest = command
  local what=$1 want=$2; shift 2
  local out
  out=$("$@" 2>&1) || { echo "$out"; fail "$what: exit $?"; }
  grep -qF -- "$want" <<<"$out" || { echo "$out"; fail "$what: no '$want'"; }
  say "ok: $what"
}
call_every_rpc() {  # $1 = target
  local t="--target=$1"
  expect health SERVING "$CLI" "$t" health --wait_s=10
  expect list gelu_tanh "$CLI" "$t" list
  expect evaluate "0.5" "$CLI" "$t" evaluate --function=sigmoid --x=0
  expect derivative "2.06115369e-09" "$CLI" "$t" derivative --function=sigmoid --x=20
  expect vjp "0.25" "$CLI" "$t" derivative --function=gelu --x=0 --grad=0.5
  expect jacobian "0.25" "$CLI" "$t" jacobian --function=softmax --x=0,0
  expect xent "grad_logits" "$CLI" "$t" xent --shape=1,2 --x=0,0 --labels=0
  expect stream "[1] derivative" "$CLI" "$t" stream --function=tanh --x=0
  if "$CLI" help 2>&1 | grep -q analyze; then
    expect analyze "sparsity" "$CLI" "$t" analyze --function=relu --x=-1,1
  fi
}

# --- one container, called from outside, stopped mid-request ----------------
PORT=$(free_port)
docker run -d --name actsvc-test --network host \
  -e ACTSVC_HEALTH_TARGET="127.0.0.1:$PORT" "$IMAGE" \
  --address="127.0.0.1:$PORT" --shutdown_grace_s=30 >/dev/null
wait_healthy actsvc-test
call_every_rpc "127.0.0.1:$PORT"
/usr/bin/python3 -c "
import numpy as np
np.save('$WORK/big.npy', np.linspace(-10, 10, 8 << 20, dtype=np.float32))"
rm -f "$WORK/big-out.npy"
"$CLI" --target="127.0.0.1:$PORT" --timeout_s=120 evaluate --function=gelu \
  --x_npy="$WORK/big.npy" --out_npy="$WORK/big-out.npy" >"$WORK/big.log" 2>&1 &
CALL=$!
sleep 0.3
docker stop -t 30 actsvc-test >/dev/null
wait "$CALL" || { cat "$WORK/big.log"; fail "the request in flight at docker stop failed"; }
[ "$(stat -c %s "$WORK/big-out.npy")" -ge $((8 << 20 << 2)) ] || fail "short output"
CODE=$(docker inspect -f '{{.State.ExitCode}}' actsvc-test)
[ "$CODE" = 0 ] || { docker logs actsvc-test | tail; fail "container exit code $CODE"; }
docker logs actsvc-test 2>&1 | grep -q "shut down cleanly" || fail "no clean shutdown in the log"
docker rm actsvc-test >/dev/null
say "ok: docker stop during a 32 MiB request: request completed, exit code 0"

# --- compose, with the bench profile ----------------------------------------
# docker/compose.yaml as written, but in the host's network namespace (no
# bridge here): ports are dropped and the server listens on a free loopback
# port, which the healthcheck and the bench service are pointed at.
export ACTSVC_PORT=$(free_port)
HTTP_PORT=$(free_port)
/usr/bin/python3 - "$ROOT" "$ACTSVC_PORT" "$WORK/compose.yaml" "$HTTP_PORT" <<'PY'
import sys, yaml
root, port, out, http_port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
spec = yaml.safe_load(open(f"{root}/docker/compose.yaml"))
target = f"127.0.0.1:{port}"
for name, service in spec["services"].items():
    service["network_mode"] = "host"
    service.pop("ports", None)
    if "build" in service:
        service["build"]["context"] = root
    env = service.setdefault("environment", {})
    if name == "actsvc":
        service["command"] = [
        f"--address={target}" if a.startswith("--address=")
        else f"--http_address=127.0.0.1:{http_port}" if a.startswith("--http_address=")
        else a
        for a in service["command"]]
        env["ACTSVC_HEALTH_TARGET"] = target
        service["healthcheck"]["test"] = [
            f"--target={target}" if a.startswith("--target=") else a
            for a in service["healthcheck"]["test"]]
    else:
        env["ACTSVC_TARGET"] = target
yaml.safe_dump(spec, open(out, "w"), sort_keys=False)
PY
compose() { docker-compose -p actsvctest -f "$WORK/compose.yaml" "$@"; }
compose up -d --no-build actsvc >"$WORK/compose.log" 2>&1 || { cat "$WORK/compose.log"; fail "compose up"; }
wait_healthy "$(compose ps -q actsvc)"
expect "compose: KServe v2 REST" '"ready":true' http_get "http://127.0.0.1:$HTTP_PORT/v2/health/ready"
compose --profile bench run --rm bench >"$WORK/compose-bench.log" 2>&1 \
  || { cat "$WORK/compose-bench.log"; fail "compose bench"; }
tail -4 "$WORK/compose-bench.log"
compose --profile bench down --timeout 30 >>"$WORK/compose.log" 2>&1 || fail "compose down"
say "ok: compose up, bench profile, down"

# --- the Kubernetes manifests under podman kube play -------------------------
mkdir -p "$PODMAN_ROOT"
cat >"$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
podman_() {
  CONTAINERS_CONF="$WORK/containers.conf" podman --root "$PODMAN_ROOT/root" \
    --runroot "$PODMAN_ROOT/run" "$@"
}
docker save "$IMAGE" -o "$WORK/image.tar"
podman_ load -q -i "$WORK/image.tar" >/dev/null
rm -f "$WORK/image.tar"
KPORT=$(free_port)
KHTTP=$(free_port)
# The Deployment as written, in the host's network namespace: the listening
# address moves to a free loopback port, and container ports (mappings, which
# host networking cannot have) are dropped.
/usr/bin/python3 - "$ROOT/docker/k8s/deployment.yaml" "$KPORT" "$WORK/kube.yaml" "$KHTTP" <<'PY'
import sys, yaml
src, port, out, http_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
spec = yaml.safe_load(open(src))
for c in spec["spec"]["template"]["spec"]["containers"]:
    c.pop("ports", None)
    c["args"] = [
        f"--address=127.0.0.1:{port}" if a.startswith("--address=")
        else f"--http_address=127.0.0.1:{http_port}" if a.startswith("--http_address=")
        else a
        for a in c["args"]]
    for probe in ("readinessProbe", "livenessProbe"):
        if probe in c:
            c[probe]["grpc"]["port"] = port
yaml.safe_dump(spec, open(out, "w"), sort_keys=False)
PY
podman_ kube play --network host "$WORK/kube.yaml" >"$WORK/kube.log" 2>&1 \
  || { cat "$WORK/kube.log"; fail "podman kube play"; }
call_every_rpc "127.0.0.1:$KPORT"
expect "kube: KServe v2 REST" '"name":"gelu"' http_get "http://127.0.0.1:$KHTTP/v2/models/gelu"
podman_ kube down "$WORK/kube.yaml" >>"$WORK/kube.log" 2>&1 || fail "podman kube down"
say "ok: podman kube play docker/k8s/deployment.yaml"

# --- the KServe InferenceService's predictor, as the pod KServe makes of it --
# KServe runs spec.predictor's containers as a pod; that pod under podman kube
# play, in the host's network namespace (its two ports moved to free loopback
# ports, probes with them), answers the Open Inference Protocol on both: the
# readiness probe's path and an inference over REST, ModelInfer over gRPC.
IPORT=$(free_port)
IHTTP=$(free_port)
/usr/bin/python3 - "$ROOT/docker/k8s/inferenceservice.yaml" "$IPORT" "$WORK/isvc-pod.yaml" "$IHTTP" <<'PY'
import sys, yaml
src, port, out, http_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
isvc = yaml.safe_load(open(src))
assert isvc["kind"] == "InferenceService", isvc["kind"]
containers = isvc["spec"]["predictor"]["containers"]
for c in containers:
    ports = {p["name"]: p["containerPort"] for p in c.pop("ports")}
    # KServe's conventional ports for a custom predictor: REST, then gRPC.
    assert ports == {"http1": 8080, "h2c": 8081}, ports
    assert "--http_address=0.0.0.0:8080" in c["args"], c["args"]
    assert "--address=0.0.0.0:8081" in c["args"], c["args"]
    c["args"] = [
        f"--address=127.0.0.1:{port}" if a.startswith("--address=")
        else f"--http_address=127.0.0.1:{http_port}" if a.startswith("--http_address=")
        else a for a in c["args"]]
    c["readinessProbe"]["httpGet"]["port"] = http_port
    c["livenessProbe"]["grpc"]["port"] = port
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": isvc["metadata"]["name"] + "-predictor"},
       "spec": {"containers": containers}}
yaml.safe_dump(pod, open(out, "w"), sort_keys=False)
PY
http_post() {  # $1 = URL, $2 = JSON body; the answer's body on stdout
  /usr/bin/python3 -c 'import sys, urllib.request
r = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),
                           headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(r, timeout=10).read().decode())' "$1" "$2"
}
podman_ kube play --network host "$WORK/isvc-pod.yaml" >"$WORK/isvc.log" 2>&1 \
  || { cat "$WORK/isvc.log"; fail "podman kube play (InferenceService predictor)"; }
expect "isvc: gRPC health" SERVING "$CLI" --target=127.0.0.1:$IPORT health --wait_s=10
expect "isvc: readiness probe path" '"ready":true' http_get "http://127.0.0.1:$IHTTP/v2/health/ready"
expect "isvc: REST infer" '"name":"y"' http_post "http://127.0.0.1:$IHTTP/v2/models/gelu/infer" \
  '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[0,1]}]}'
expect "isvc: gRPC ModelInfer" "kserve ModelInfer" "$CLI" --target=127.0.0.1:$IPORT bench \
  --protocol=kserve --function=gelu --shape=1,1024 --requests=50 --warmup=0 --check_every=1
podman_ kube down "$WORK/isvc-pod.yaml" >>"$WORK/isvc.log" 2>&1 || fail "podman kube down (InferenceService predictor)"
say "ok: podman kube play of docker/k8s/inferenceservice.yaml's predictor"
say "all container checks passed"
