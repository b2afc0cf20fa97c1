#!/usr/bin/env bash
# Releases for real (issue 19, "Measure"): `docker service update --image` of BENCH_REPLICAS (30) replicas on a
# `sampan cluster testbed --hosts 3 --managers 1 --registry`, side by side in one run with dockerd's own swarm mode
# (Debian's dockerd as a one-node `docker swarm init`, temp data root, like bench/cluster/swarm.sh), same replicas,
# same image pair, same update options; and a smart release on the same testbed.
#   images: busybox (from a testbed engine) as app:v1, and app:v2 = app:v1 + a layer and a label (umoci), pushed
#           to the testbed's registry with skopeo; dockerd pulls them from there (--insecure-registry)
#   a row per parallelism P in BENCH_PARALLELISM ("5 10"): a service of R replicas of app:v1 with
#           --update-parallelism P --update-delay 0s --update-order stop-first --update-failure-action continue,
#           (the task: `sh -c 'trap "exit 0" TERM; sleep 3600 & wait'`, which stops at SIGTERM: a `sleep` as PID 1
#           ignores it and every stop-first batch would wait the 10 s grace period)
#           then BENCH_ROUNDS (3) updates, each to the other image (v1 → v2 → v1 …), timed from the command
#           (`docker service update --detach --no-resolve-image --image …`) until `docker ps` lists R running
#           containers of the service on the new image (converged); rounds alternate which engine goes first
#   smart:  `sampan release start SVC IMAGE --first-batch 2 --window 10` (confirmed by the script as soon as it
#           waits), same rounds, same measure
# The first round of each service pulls the new image on every host (through the testbed's P2P peers for Sampan,
# from the registry for dockerd); later rounds find both images there.
# Usage (from the repo root, as root, after npm run build):  bash bench/release/real.sh
# Env: BENCH_REPLICAS (30)  BENCH_ROUNDS (3)  BENCH_PARALLELISM ("5 10")  BENCH_OUT=FILE (markdown)  KEEP_LOGS=DIR
# It restores what it changes (iptables FORWARD policy, ip_forward; dockerd's swarm, docker_gwbridge, mounts; the
# testbed) at exit, also on ^C or SIGTERM. Results: docs/benchmarks.md ("Release: real, testbed vs dockerd swarm").
set -uo pipefail
[[ "${1:-}" =~ ^(-h|--help)$ ]] && { sed -n '2,/^set -uo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0; }
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
cd "$(dirname "$0")/../.."

REPS=${BENCH_REPLICAS:-30}
ROUNDS=${BENCH_ROUNDS:-3}
PARS=${BENCH_PARALLELISM:-5 10}
OUT=${BENCH_OUT:-}
T=$(mktemp -d /tmp/relreal.XXXXXX)
DOCKERD_SOCK=$T/dockerd.sock
DD=(docker -H "unix://$DOCKERD_SOCK")
DOCKERD_PID= TB_PID= GWBRIDGE_OURS=0
export DOCKER_CLI_HINTS=false

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  log "cleaning up $T"
  [ -n "$TB_PID" ] && stop_pid "$TB_PID" 180
  stop_swarm_dockerd
  host_net_restore
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$T"/*.times "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -f dist/src/cli/main.js ] || die "build first: npm run build"
for c in dockerd etcd skopeo umoci jq; do command -v $c >/dev/null || die "$c is not installed"; done
ip link show docker_gwbridge >/dev/null 2>&1 && die "docker_gwbridge exists already: another dockerd in swarm mode runs here"
host_net_save
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# the testbed: 3 hosts, 1 manager, its registry and P2P peers
node bin/sampan cluster testbed --hosts 3 --managers 1 --registry --dir "$T/tb" >"$T/tb.log" 2>&1 &
TB_PID=$!
for ((i = 0; i < 900; i++)); do grep -q '^ready' "$T/tb.log" && break; kill -0 "$TB_PID" 2>/dev/null || break; sleep 0.2; done
grep -q '^ready' "$T/tb.log" || die "the testbed did not start: $(tail -5 "$T/tb.log")"
TB_SOCK=$T/tb/cluster.sock
SD=(docker -H "unix://$TB_SOCK")
REG=$(jq -r .registry.addr "$T/tb/testbed.json")
H1=$(jq -r '.hosts[0].socket' "$T/tb/testbed.json")
node bin/sampan image seed --host "unix://$H1" >/dev/null || die "seeding host1 failed"
log "testbed up, registry $REG"

# app:v1 (busybox) and app:v2 (one more layer, another label), pushed to the testbed's registry
docker -H "unix://$H1" save busybox:latest -o "$T/bb.tar" || die "docker save failed"
skopeo copy -q "docker-archive:$T/bb.tar" "oci:$T/oci:v1" || die "skopeo to oci failed"
umoci config --image "$T/oci:v1" --tag v2 --config.label app.version=2 || die "umoci config failed"
umoci unpack --image "$T/oci:v2" "$T/bundle" >/dev/null || die "umoci unpack failed"
echo 2 >"$T/bundle/rootfs/app-version"
umoci repack --image "$T/oci:v2" "$T/bundle" || die "umoci repack failed"
rm -rf "$T/bundle"
for v in v1 v2; do skopeo copy -q --dest-tls-verify=false "oci:$T/oci:$v" "docker://$REG/app:$v" || die "skopeo push of $v failed"; done
IMG=("$REG/app:v1" "$REG/app:v2")

# dockerd: a one-node swarm that pulls from the testbed registry
dockerd --data-root "$T/dockerd" --exec-root "$T/dockerd-run" --pidfile "$T/dockerd.pid" -H "unix://$DOCKERD_SOCK" \
  --iptables=false --bridge=none --insecure-registry "$REG" >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
wait_ping "$DOCKERD_SOCK" 60 || { tail -20 "$T/dockerd.log" >&2; die "dockerd did not answer _ping"; }
port=$((24000 + RANDOM % 4000))
GWBRIDGE_OURS=1
"${DD[@]}" swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$port" --data-path-port $((port + 1)) >/dev/null ||
  die "docker swarm init failed: $(tail -5 "$T/dockerd.log")"
log "dockerd swarm up"

cli() { if [ "$1" = dockerd ]; then echo "${DD[@]}"; else echo "${SD[@]}"; fi; }
# on_image ENGINE SVC IMAGE: running containers of the service on that image
on_image() {
  local -a c; read -ra c <<<"$(cli "$1")"
  timeout 20 "${c[@]}" ps --filter "name=$2." --filter status=running --format '{{.Image}}' 2>/dev/null | grep -c -- "^$3\(@.*\)\?$"
}
# converged ENGINE SVC IMAGE T0 LOGFILE: waits until REPS run IMAGE; prints ms since T0 (or "-" after 300 s)
converged() {
  while [ "$(on_image "$1" "$2" "$3")" -lt "$REPS" ]; do
    [ $(( ($(now_us) - $4) / 1000000 )) -gt 300 ] && { echo -; return; }
    sleep 0.1
  done
  echo $(( ($(now_us) - $4) / 1000 ))
}
create() { # ENGINE SVC PAR
  local -a c; read -ra c <<<"$(cli "$1")"
  "${c[@]}" service create --detach --no-resolve-image --name "$2" --replicas "$REPS" --update-parallelism "$3" --update-delay 0s \
    --update-order stop-first --update-failure-action continue "${IMG[0]}" sh -c 'trap "exit 0" TERM; sleep 3600 & wait' >"$T/$2.log" 2>&1 || die "$1: service create $2 failed: $(cat "$T/$2.log")"
  [ "$(converged "$1" "$2" "${IMG[0]}" "$(now_us)")" != - ] || die "$1: $2 did not reach $REPS running"
}
remove() { # ENGINE SVC
  local -a c; read -ra c <<<"$(cli "$1")"
  timeout 120 "${c[@]}" service rm "$2" >/dev/null 2>&1
  for ((i = 0; i < 360; i++)); do [ "$(timeout 20 "${c[@]}" ps -aq --filter "name=$2." | wc -l)" = 0 ] && return; sleep 0.5; done
  log "$1: $2's containers still listed after 180 s"
}
# update ENGINE SVC IMAGE KIND: one timed release to IMAGE (KIND docker: service update; smart: sampan release)
update() {
  local t0 ms
  t0=$(now_us)
  if [ "$4" = smart ]; then
    node bin/sampan -H "unix://$TB_SOCK" release start "$2" "$3" --first-batch 2 --window 10 --format json >>"$T/$2.log" 2>&1 || { log "release start failed: $(tail -2 "$T/$2.log")"; echo -; return; }
    # the owner's confirmation, at once
    for ((i = 0; i < 3000; i++)); do
      st=$(node bin/sampan -H "unix://$TB_SOCK" release status "$2" --no-follow --format json 2>/dev/null | jq -r .state)
      [ "$st" = waiting-confirm ] && { node bin/sampan -H "unix://$TB_SOCK" release confirm "$2" >>"$T/$2.log" 2>&1; break; }
      [ "$st" = done ] && break
      sleep 0.1
    done
  else
    local -a c; read -ra c <<<"$(cli "$1")"
    "${c[@]}" service update --detach --no-resolve-image --image "$3" "$2" >>"$T/$2.log" 2>&1 || { log "$1: update failed: $(tail -2 "$T/$2.log")"; echo -; return; }
  fi
  ms=$(converged "$1" "$2" "$3" "$t0")
  log "$1 $2 ($4) → $3: $ms ms"
  echo "$ms"
}

rows=()
for p in $PARS smart; do
  kind=docker; [ "$p" = smart ] && kind=smart
  engines="dockerd sampan"; [ "$p" = smart ] && engines=sampan
  for e in $engines; do create "$e" "r$e$p" "${p/smart/5}"; done
  for r in $(seq "$ROUNDS"); do
    img=${IMG[$((r % 2))]}
    order=$engines; [ $((r % 2)) = 0 ] && [ "$p" != smart ] && order="sampan dockerd"
    for e in $order; do update "$e" "r$e$p" "$img" "$kind" >>"$T/$e-$p.times"; done
  done
  for e in $engines; do remove "$e" "r$e$p"; done
  rows+=("$p")
done
LOAD=$(uptime)

med() { [ -s "$1" ] || { echo -; return; }; grep -q -- - "$1" && { echo -; return; }; sort -n "$1" | awk '{a[NR]=$1} END{ m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.0f\n", m }'; }
all_of() { [ -s "$1" ] && paste -sd, "$1" | sed 's/,/, /g' || echo -; }
{
  echo "| update | dockerd swarm: converged, p50 ms (rounds) | Sampan testbed: converged, p50 ms (rounds) | Sampan / dockerd |"
  echo "|---|---:|---:|---:|"
  for p in "${rows[@]}"; do
    if [ "$p" = smart ]; then
      echo "| smart: \`sampan release start --first-batch 2 --window 10\`, confirmed at once | – | $(med "$T/sampan-smart.times") ($(all_of "$T/sampan-smart.times")) | – |"
    else
      echo "| \`docker service update --image\`, parallelism $p, delay 0, stop-first | $(med "$T/dockerd-$p.times") ($(all_of "$T/dockerd-$p.times")) | $(med "$T/sampan-$p.times") ($(all_of "$T/sampan-$p.times")) | $(ratio "$(med "$T/sampan-$p.times")" "$(med "$T/dockerd-$p.times")") |"
    fi
  done
  echo
  echo "Replicas: $REPS on 3 testbed hosts (Sampan) / 1 node (dockerd); rounds: $ROUNDS, each to the other image (the first pulls it)."
  echo "Versions: $(dockerd --version | cut -d, -f1 | sed "s/Docker version/dockerd/"), $(docker --version | cut -d, -f1 | sed 's/Docker version/docker CLI/'), node $(node --version), Sampan $(git rev-parse --short HEAD 2>/dev/null)."
  echo "Load at the end: ${LOAD##*load average: }"
} | tee "${OUT:-/dev/null}"
