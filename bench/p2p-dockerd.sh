#!/usr/bin/env bash
# A real dockerd pulls through a Sampan P2P peer (issue 6). Everything on loopback, no internet:
#   1. a `sampan registry` gets library/busybox:latest (Sampan's seeded busybox, pushed by a throwaway Sampan
#      engine with the docker CLI)
#   2. a scheduler and a peer whose --upstream is that registry
#   3. a throwaway dockerd (Debian docker.io) with "registry-mirrors": ["http://127.0.0.1:<peer mirror port>"]
#      (dockerd only uses mirrors for docker.io images) pulls busybox:latest, then runs it once
# Without internet, docker.io itself is unreachable: a successful pull can only have come through the mirror.
# The peer's /metrics must show the blob bytes it sent to dockerd (sampan_p2p_peer_client_bytes_total).
# Prints the figures and "ok" or "FAIL"; exits 1 on FAIL.
#
# Usage (as root, from anywhere):  bash bench/p2p-dockerd.sh        KEEP_LOGS=DIR keeps the daemons' logs
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/lib.sh"
cd "$(dirname "$(readlink -f "$0")")/.."

[ "$(id -u)" = 0 ] || die "run as root (engines, mounts)"
for b in dockerd docker curl jq python3; do command -v "$b" >/dev/null || die "$b is missing"; done
[ -f dist/src/cli/main.js ] || die "dist/ missing: build first (npx tsc -p tsconfig.json)"

T=$(mktemp -d /tmp/spd.XXXXXX) || die "mktemp failed"
SAMPAN_SOCK=$T/e.sock
DOCKERD_SOCK=$T/d.sock
host_net_save
SAMPAN_PID="" DOCKERD_PID="" REG_PID="" SCHED_PID="" PEER_PID=""

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  log "cleaning up $T"
  if [ -n "$SAMPAN_PID" ] && kill -0 "$SAMPAN_PID" 2>/dev/null; then stop_pid "$SAMPAN_PID" 20; fi
  DOCKERD_PID=$(cat "$T/dockerd.pid" 2>/dev/null || echo "$DOCKERD_PID")
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    ids=$(timeout 30 docker -H "unix://$DOCKERD_SOCK" ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 60 docker -H "unix://$DOCKERD_SOCK" rm -f $ids >/dev/null 2>&1
    stop_pid "$DOCKERD_PID" 30
  fi
  for p in $PEER_PID $SCHED_PID $REG_PID; do stop_pid "$p" 10; done
  # leftovers whose command line mentions $T (dockerd's containerd and shims, conmon, node)
  for p in $(pids_of 'conmon|containerd-shim.*|containerd|dockerd|node'); do kill -KILL "$p" 2>/dev/null; done
  runc_leftovers "$T"
  umount_under "$T"
  host_net_restore
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$T"/*.json "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_http() { local i; for ((i = 0; i < $2 * 5; i++)); do curl -fs -o /dev/null -m 2 "$1" && return 0; sleep 0.2; done; return 1; }
metric() { curl -s -m 5 "$1" | awk -v m="$2" 'index($0, m) == 1 { s += $NF } END { printf "%.0f", s }'; }

RP=$(free_port) SP=$(free_port) MP=$(free_port) PP=$(free_port)
REGISTRY=127.0.0.1:$RP

# ---------- registry with library/busybox:latest ----------
bin/sampan registry --root "$T/registry" --addr "$REGISTRY" >"$T/registry.log" 2>&1 &
REG_PID=$!
wait_http "http://$REGISTRY/v2/" 30 || die "the registry did not come up: $(tail -5 "$T/registry.log")"
log "pushing Sampan's busybox to $REGISTRY/library/busybox:latest (a throwaway Sampan engine)"
bin/sampan engine --root "$T/root" --exec-root "$T/run" --host "unix://$SAMPAN_SOCK" >"$T/sampan.log" 2>&1 &
SAMPAN_PID=$!
wait_ping "$SAMPAN_SOCK" 30 || die "sampan engine did not answer _ping: $(tail -5 "$T/sampan.log")"
bin/sampan image seed --host "unix://$SAMPAN_SOCK" >/dev/null || die "sampan image seed failed"
docker -H "unix://$SAMPAN_SOCK" tag busybox:latest "$REGISTRY/library/busybox:latest" || die "tag failed"
docker -H "unix://$SAMPAN_SOCK" push "$REGISTRY/library/busybox:latest" >"$T/push.log" 2>&1 || die "push failed: $(tail -5 "$T/push.log")"
stop_pid "$SAMPAN_PID" 20
SAMPAN_PID=""
# what dockerd will need: the manifest's config and layers (linux/amd64 when it is an index)
ACCEPT='application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.index.v1+json'
MANIFEST=$(curl -s -H "Accept: $ACCEPT" "http://$REGISTRY/v2/library/busybox/manifests/latest")
if jq -e '.manifests' >/dev/null 2>&1 <<<"$MANIFEST"; then
  d=$(jq -r '[.manifests[] | select(.platform.architecture == "amd64")][0].digest' <<<"$MANIFEST")
  MANIFEST=$(curl -s -H "Accept: $ACCEPT" "http://$REGISTRY/v2/library/busybox/manifests/$d")
fi
BLOB_BYTES=$(jq '[.config.size] + [.layers[].size] | add' <<<"$MANIFEST")
LAYER_BYTES=$(jq '[.layers[].size] | add' <<<"$MANIFEST")
NBLOBS=$(jq '.layers | length + 1' <<<"$MANIFEST")
log "library/busybox:latest: $NBLOBS blobs, $BLOB_BYTES bytes (layers $LAYER_BYTES)"

# ---------- scheduler and peer ----------
bin/sampan p2p scheduler --listen "127.0.0.1:$SP" >"$T/scheduler.log" 2>&1 &
SCHED_PID=$!
wait_http "http://127.0.0.1:$SP/healthz" 30 || die "the scheduler did not come up: $(tail -5 "$T/scheduler.log")"
bin/sampan p2p peer --scheduler "http://127.0.0.1:$SP" --upstream "http://$REGISTRY" --root "$T/peer" \
  --listen "127.0.0.1:$MP" --peer-listen "127.0.0.1:$PP" --peer-id dockerd-host >"$T/peer.log" 2>&1 &
PEER_PID=$!
wait_http "http://127.0.0.1:$MP/healthz" 30 || die "the peer did not come up: $(tail -5 "$T/peer.log")"

# ---------- dockerd with the peer as its docker.io mirror ----------
echo "{\"registry-mirrors\": [\"http://127.0.0.1:$MP\"]}" >"$T/daemon.json"
dockerd --config-file "$T/daemon.json" --data-root "$T/dockerd" --exec-root "$T/dockerd-run" --pidfile "$T/dockerd.pid" \
  -H "unix://$DOCKERD_SOCK" --iptables=false --bridge=none >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
wait_ping "$DOCKERD_SOCK" 60 || die "dockerd did not answer _ping: $(tail -5 "$T/dockerd.log")"
D=(docker -H "unix://$DOCKERD_SOCK")
log "dockerd $("${D[@]}" version -f '{{.Server.Version}}' 2>/dev/null), mirrors: $("${D[@]}" info -f '{{json .RegistryConfig.Mirrors}}' 2>/dev/null)"

before_client=$(metric "http://127.0.0.1:$MP/metrics" sampan_p2p_peer_client_bytes_total)
before_reg=$(metric "http://$REGISTRY/metrics" sampan_registry_http_sent_bytes_total)
t0=$(now_us)
"${D[@]}" pull busybox:latest >"$T/pull.log" 2>&1
pull_rc=$?
t1=$(now_us)
client=$(( $(metric "http://127.0.0.1:$MP/metrics" sampan_p2p_peer_client_bytes_total) - before_client ))
upstream=$(metric "http://127.0.0.1:$MP/metrics" 'sampan_p2p_peer_bytes_received_total{source="upstream"}')
reg=$(( $(metric "http://$REGISTRY/metrics" sampan_registry_http_sent_bytes_total) - before_reg ))
tasks=$(curl -s "http://127.0.0.1:$SP/metrics" | awk '/^sampan_p2p_scheduler_announces_total/ { s += $NF } END { printf "%.0f", s }')
run_out=$("${D[@]}" run --rm --network none busybox:latest echo via-p2p 2>&1)
image_id=$("${D[@]}" image inspect -f '{{.Id}}' busybox:latest 2>/dev/null)
secs=$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.2f", d/1e6}')

echo
echo "dockerd $(dockerd --version | cut -d, -f1 | awk '{print $3}') pulled busybox:latest through the Sampan peer at 127.0.0.1:$MP (registry-mirrors)"
echo "  docker pull exit code:                 $pull_rc ($secs s)"
sed 's/^/    /' "$T/pull.log"
echo "  image id:                               ${image_id:-none}"
echo "  blobs in the image (config + layers):   $NBLOBS, $BLOB_BYTES bytes"
echo "  peer sent to dockerd (client_bytes):    $client bytes"
echo "  peer got from the registry (upstream):  $upstream bytes"
echo "  registry sent (all response bodies):    $reg bytes"
echo "  scheduler announces (one per blob):     $tasks"
echo "  docker run --rm busybox echo via-p2p:   $run_out"
ok=1
[ "$pull_rc" = 0 ] || { ok=0; echo "FAIL: docker pull failed"; }
[ "$client" -ge "$LAYER_BYTES" ] || { ok=0; echo "FAIL: the peer sent $client bytes, less than the layers' $LAYER_BYTES"; }
[ "$run_out" = via-p2p ] || { ok=0; echo "FAIL: the pulled image did not run"; }
if [ $ok = 1 ]; then echo "ok"; else echo "FAIL"; exit 1; fi
