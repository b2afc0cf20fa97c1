#!/usr/bin/env bash
# Sampan's cluster vs dockerd's swarm mode, side by side in one run (issue 16, "compare"): the time until 100
# replicas run. dockerd (Debian's docker.io, its managed containerd) runs with a temp data/exec root and socket, as a
# one-node swarm (`docker swarm init --advertise-addr 127.0.0.1`); Sampan runs as `sampan cluster testbed` (etcd,
# one manager, H emulated hosts each with its own engine) for each H in BENCH_TESTBED_HOSTS. Each round times
#   dockerd: `docker service create --replicas R --detach=false busybox sleep 600`
#   Sampan:  `sampan run -d --replicas R --name P busybox sleep 600` against the testbed's manager
# from the command's start until `docker ps` (against dockerd, resp. the manager) lists R running containers of
# that round, and also until the command exits (docker's --detach=false waits 5 s more for the tasks to be
# stable). Rounds alternate which goes first; everything is removed between rounds and waited for.
# Usage (from the repo root, as root, after npm run build):  bash bench/cluster/swarm.sh
# Env: BENCH_REPLICAS (100)  BENCH_ROUNDS (3)  BENCH_TESTBED_HOSTS ("1 3")  BENCH_SAMPAN_FLAGS (extra `sampan run`
#      flags, e.g. "--network none": swarm's tasks here have no network, dockerd running with --bridge=none)
#      BENCH_OUT=FILE also writes the results (markdown) to FILE;  KEEP_LOGS=DIR keeps the logs
# It restores what it changes (iptables FORWARD policy, ip_forward; dockerd's swarm, docker_gwbridge, netns and
# mounts; the testbed's bridge, namespaces and rule) at exit, also on ^C or SIGTERM.
# Results: docs/benchmarks.md ("Cluster: scale", "Side by side with dockerd's swarm mode").
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
cd "$(dirname "$0")/../.."

REPS=${BENCH_REPLICAS:-100}
ROUNDS=${BENCH_ROUNDS:-3}
TB_HOSTS=${BENCH_TESTBED_HOSTS:-1 3}
read -ra SFLAGS <<<"${BENCH_SAMPAN_FLAGS:-}"
OUT=${BENCH_OUT:-}
T=$(mktemp -d /tmp/swcmp.XXXXXX) # short: the testbed's attach sockets live under it
DOCKERD_SOCK=$T/dockerd.sock
DD=(docker -H "unix://$DOCKERD_SOCK")
DOCKERD_PID= TB_PID= TB_SOCK= GWBRIDGE_OURS=0

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  log "cleaning up $T"
  stop_testbed
  stop_swarm_dockerd
  host_net_restore
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# the testbed's own teardown (SIGTERM) removes its containers, engines, etcd, namespaces, bridge and rule
stop_testbed() {
  [ -n "$TB_PID" ] || return 0
  stop_pid "$TB_PID" 180
  [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$T/tb.log" "$KEEP_LOGS/testbed-$TB_N.log" 2>/dev/null
  TB_PID= TB_SOCK=
}

[ -f dist/src/cli/main.js ] || die "build first: npm run build"
command -v dockerd >/dev/null || die "dockerd is not installed (Debian: docker.io)"
command -v etcd >/dev/null || die "etcd is not installed"
# a docker_gwbridge that is not ours (another dockerd in swarm mode) would be taken over and then deleted
ip link show docker_gwbridge >/dev/null 2>&1 && die "docker_gwbridge exists already: another dockerd in swarm mode runs here"
host_net_save

start_testbed() { # $1 hosts: starts it, seeds busybox into every engine
  TB_N=$1
  rm -rf "$T/tb"
  node bin/sampan cluster testbed --hosts "$1" --dir "$T/tb" >"$T/tb.log" 2>&1 &
  TB_PID=$!
  local i
  for ((i = 0; i < 600; i++)); do grep -q '^ready' "$T/tb.log" && break; kill -0 "$TB_PID" 2>/dev/null || break; sleep 0.2; done
  grep -q '^ready' "$T/tb.log" || die "the testbed did not start: $(tail -5 "$T/tb.log")"
  TB_SOCK=$T/tb/cluster.sock
  for s in "$T"/tb/hosts/*/engine.sock; do node bin/sampan image seed --host "unix://$s" >/dev/null || die "seeding $s failed"; done
}

start_dockerd() { # a one-node swarm with busybox loaded from the Sampan engine
  docker -H "unix://$T/tb/hosts/host1/engine.sock" save busybox:latest -o "$T/bb.tar" || die "docker save against Sampan failed"
  dockerd --data-root "$T/dockerd" --exec-root "$T/dockerd-run" --pidfile "$T/dockerd.pid" -H "unix://$DOCKERD_SOCK" \
    --iptables=false --bridge=none >"$T/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  wait_ping "$DOCKERD_SOCK" 60 || { tail -20 "$T/dockerd.log" >&2; die "dockerd did not answer _ping"; }
  "${DD[@]}" load -i "$T/bb.tar" >/dev/null || die "docker load into dockerd failed"
  # the swarm's ports on loopback (a random pair), nothing else listens for it
  local port=$((24000 + RANDOM % 4000))
  GWBRIDGE_OURS=1
  "${DD[@]}" swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$port" --data-path-port $((port + 1)) >/dev/null ||
    die "docker swarm init failed: $(tail -5 "$T/dockerd.log")"
}

running() { # $1 docker CLI socket, $2 name prefix: how many running containers the list shows
  timeout 20 docker -H "unix://$1" ps -q --filter "name=$2" --filter status=running 2>/dev/null | wc -l
}
all_gone() { # $1 socket, $2 prefix, $3 timeout s
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    [ "$(timeout 20 docker -H "unix://$1" ps -aq --filter "name=$2" 2>/dev/null | wc -l)" = 0 ] && return 0
    sleep 0.5
  done
  return 1
}

# timed ENGINE PREFIX: one round; appends "ms-to-running ms-to-exit" to $T/ENGINE-H.times
timed() {
  local e=$1 p=$2 sock cmd t0 t1= t2 pid n alive f="$T/$1-$TB_N.times"
  if [ "$e" = dockerd ]; then
    sock=$DOCKERD_SOCK cmd=("${DD[@]}" service create --replicas "$REPS" --detach=false --name "$p" busybox sleep 600)
  else
    sock=$TB_SOCK cmd=(node bin/sampan -H "unix://$TB_SOCK" run -d --replicas "$REPS" --name "$p" "${SFLAGS[@]}" busybox sleep 600)
  fi
  t0=$(now_us)
  timeout 600 "${cmd[@]}" >"$T/$p.log" 2>&1 &
  pid=$!
  while :; do # the liveness comes before the count: a count after the command exited is its final one
    kill -0 "$pid" 2>/dev/null && alive=1 || alive=0
    n=$(running "$sock" "$p")
    [ "$n" -ge "$REPS" ] && { t1=$(now_us); break; }
    [ $alive = 1 ] || break
    sleep 0.2
  done
  wait "$pid"; local rc=$?
  t2=$(now_us)
  [ -n "$t1" ] || { log "$e $p: only $n of $REPS running (exit $rc): $(tail -3 "$T/$p.log")"; echo "- $(((t2 - t0) / 1000))" >>"$f"; return; }
  [ $rc = 0 ] || log "$e $p: exit $rc: $(tail -3 "$T/$p.log")"
  echo "$(((t1 - t0) / 1000)) $(((t2 - t0) / 1000))" >>"$f"
  log "$e (testbed of $TB_N) $p: $REPS running in $(((t1 - t0) / 1000)) ms, command exited after $(((t2 - t0) / 1000)) ms"
}

remove() { # ENGINE PREFIX
  if [ "$1" = dockerd ]; then
    timeout 120 "${DD[@]}" service rm "$2" >/dev/null
    all_gone "$DOCKERD_SOCK" "$2" 180 || log "dockerd: $2's containers still listed after 180 s"
  else
    local ids; ids=$(timeout 30 docker -H "unix://$TB_SOCK" ps -aq --filter "name=$2")
    [ -n "$ids" ] && timeout 300 docker -H "unix://$TB_SOCK" rm -f $ids >/dev/null
    all_gone "$TB_SOCK" "$2" 180 || log "sampan: $2's containers still listed after 180 s"
  fi
}

med() { # column $2 of file $1: median (ms), "-" when a round failed
  [ -s "$1" ] || { echo -; return; }
  awk -v c="$2" '{print $c}' "$1" | grep -q -- - && { echo -; return; }
  awk -v c="$2" '{print $c}' "$1" | sort -n | awk '{a[NR]=$1} END{ m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.0f\n", m }'
}
all_of() { awk -v c="$2" '{printf "%s%s", (NR>1?", ":""), $c}' "$1"; }

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
LOADS=""
for h in $TB_HOSTS; do
  log "testbed of $h host(s)"
  start_testbed "$h"
  [ -n "$DOCKERD_PID" ] || start_dockerd
  for r in $(seq "$ROUNDS"); do
    order="dockerd sampan"; [ $((r % 2)) = 0 ] && order="sampan dockerd"
    for e in $order; do
      p="sw${h}${e:0:1}${r}"
      timed "$e" "$p"
      remove "$e" "$p"
    done
  done
  LOADS+="$h host(s): $(cut -d' ' -f1-3 /proc/loadavg); "
  stop_testbed
done

{
  echo "| Sampan testbed | dockerd swarm: $REPS running, median ms (rounds) | Sampan: $REPS running, median ms (rounds) | Sampan / dockerd | command exit, dockerd / Sampan, median ms |"
  echo "|---|---:|---:|---:|---:|"
  for h in $TB_HOSTS; do
    d="$T/dockerd-$h.times" s="$T/sampan-$h.times"
    echo "| $h host(s) | $(med "$d" 1) ($(all_of "$d" 1)) | $(med "$s" 1) ($(all_of "$s" 1)) | $(ratio "$(med "$s" 1)" "$(med "$d" 1)") | $(med "$d" 2) / $(med "$s" 2) |"
  done
  echo
  echo "Replicas: $REPS, rounds: $ROUNDS (alternating which goes first); Sampan flags: ${BENCH_SAMPAN_FLAGS:-none}."
  echo "Versions: $(dockerd --version | cut -d, -f1 | sed "s/Docker version/dockerd/"), $(docker --version | cut -d, -f1 | sed 's/Docker version/docker CLI/'), node $(node --version), Sampan $(git rev-parse --short HEAD 2>/dev/null)."
  echo "Load average (1, 5, 15 min) at the end of each testbed: $LOADS"
} | tee "${OUT:-/dev/null}"
