#!/usr/bin/env bash
# Engine benchmark, bridge networking: Sampan vs dockerd (Debian docker.io, its own bridge and iptables rules)
# vs podman (runc, netavark), all in one run on this machine, each with its own scratch state under one temp dir:
#   1. latency of `run --rm busybox true` on each engine's DEFAULT bridge network (no --network flag):
#      median, p90 over BENCH_RUNS runs (default 15), interleaved: each round runs every engine once, the order
#      rotating every round, so machine drift hits all alike
#   2. one engine after the other: `network create --subnet ... benchnet`, then the time to start BENCH_DETACHED
#      (default 50) containers on it with `run -d --network benchnet busybox sleep 600`, one after another
#      (total wall time, per-container median/p90); then they are removed and the network with them
#   3. a table with ratios Sampan/dockerd and Sampan/podman and a verdict against the target:
#      Sampan median `run --rm` latency on the default bridge <= 0.7 x dockerd's.
#
# Bridges and subnets (chosen not to clash with each other or with a Sampan engine already on this host):
#   Sampan   default bridge sampanb0 10.91.0.0/16 (SAMPAN_BRIDGE_NAME/SAMPAN_BRIDGE_SUBNET), benchnet 10.92.1.0/24
#   dockerd  docker0 --bip 172.31.255.1/24, --iptables=true (its default),                   benchnet 10.92.2.0/24
#   podman   its default network "podman" (podman0, 10.88.0.0/16, netavark),                   benchnet 10.92.3.0/24
#
# Usage (as root, from the repo root):  bash bench/engine-network.sh
# Env: BENCH_RUNS (15)  BENCH_DETACHED (50)  BENCH_WARMUP (2 untimed runs per engine first)
#      BENCH_STRICT=1 exits 1 when the target is missed;  BENCH_OUT=FILE also writes the table (markdown) to FILE
#      KEEP_LOGS=DIR keeps the engines' logs
# Cleanup (also on error or Ctrl-C): containers, networks, the engines, bridges (sampanb0, Sampan's benchnet
# bridge, docker0 and dockerd's br-*, podman0 and podman's benchnet bridge), network namespaces of this run,
# the iptables rules and chains that appeared during the run and belong to these bridges/subnets (DOCKER*,
# NETAVARK*, rules naming them), the FORWARD policy and ip_forward as they were, the temp dir.
# Results and how to read them: docs/benchmarks.md ("Engine: bridge networking").
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/lib.sh"
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-15}
NDET=${BENCH_DETACHED:-50}
WARMUP=${BENCH_WARMUP:-2}
STRICT=${BENCH_STRICT:-0}
OUT=${BENCH_OUT:-}
ENGINES=(sampan dockerd podman)
S_BRIDGE=sampanb0 S_SUBNET=10.91.0.0/16
D_BIP=172.31.255.1/24
declare -A NET_SUBNET=([sampan]=10.92.1.0/24 [dockerd]=10.92.2.0/24 [podman]=10.92.3.0/24)


[ "$(id -u)" = 0 ] || die "run as root (engines, runc, mounts, bridges, iptables)"
for b in $S_BRIDGE docker0 podman0; do
  ip link show "$b" >/dev/null 2>&1 && die "bridge $b already exists: another engine is using it; stop it first"
done

# ---------- prerequisites ----------
if [ ! -f dist/src/cli/main.js ]; then log "dist/ missing: running scripts/setup.sh"; bash scripts/setup.sh || die "setup failed"; fi
need_pkgs=()
for c in runc conmon curl iptables; do command -v $c >/dev/null || need_pkgs+=($c); done
command -v docker >/dev/null && command -v dockerd >/dev/null || need_pkgs+=(docker.io)
command -v podman >/dev/null || need_pkgs+=(podman)
[ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || die "apt-get install failed"
fi

# ---------- scratch dir, state to restore ----------
T=$(mktemp -d /tmp/sbn.XXXX) || die "mktemp failed"
SAMPAN_SOCK=$T/e.sock
DOCKERD_SOCK=$T/d.sock
FWD_POLICY_LINE=$(iptables -S FORWARD 2>/dev/null | head -1)
host_net_save
for t in filter nat; do iptables-save -t $t >"$T/ipt-before.$t" 2>/dev/null; done
ip netns list 2>/dev/null | awk '{print $1}' | sort >"$T/netns-before"
ip -o link show type bridge | awk -F': ' '{print $2}' | sort >"$T/bridges-before"
SAMPAN_PID="" DOCKERD_PID=""
POD=(podman --root "$T/podroot" --runroot "$T/podrun" --tmpdir "$T/podtmp" --network-config-dir "$T/podnet"
     --runtime runc --cgroup-manager cgroupfs --events-backend file)
# podman asks runc for rlimits from its defaults; they must stay within this host's hard limits (nofile 20000)
POD_RUN=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
mkdir -p "$T/podtmp" "$T/podnet"
: >"$T/sampan.ids"; : >"$T/podman.ids"


# iptables rules that appeared during the run and name our bridges, subnets or the DOCKER/NETAVARK chains;
# then the DOCKER*/NETAVARK* chains that appeared during the run. Rules that were there before are left alone.
# (Sampan's per-container CNI rules carry the container's address, so the subnets catch them; another Sampan
# engine's rules on this host name neither these bridges nor these subnets and are left alone.)
OURS_RE="DOCKER|NETAVARK|docker0|br-[0-9a-f]{12}|podman[0-9]+|$S_BRIDGE([^0-9a-z-]|\$)|10\.91\.|10\.92\.|10\.88\.|172\.31\.255\."
S_NETBRIDGE=""  # the bridge of Sampan's benchnet, once known
ours_re() { if [ -n "$S_NETBRIDGE" ]; then echo "$OURS_RE|$S_NETBRIDGE([^0-9a-z-]|\$)"; else echo "$OURS_RE"; fi; }
ipt_cleanup() {
  local t line c n=0
  for t in nat filter; do
    iptables-save -t $t 2>/dev/null | grep -E '^-A ' | grep -E "$(ours_re)" | grep -vxF -f "$T/ipt-before.$t" |
      while IFS= read -r line; do
        eval "iptables -t $t -D ${line#-A }" 2>/dev/null || echo "could not delete: -t $t $line" >>"$T/ipt-cleanup.log"
      done
    for c in $(iptables-save -t $t 2>/dev/null | grep -E '^:(DOCKER|NETAVARK)' | cut -d' ' -f1 | cut -c2-); do
      grep -q "^:$c " "$T/ipt-before.$t" && continue
      iptables -t $t -F "$c" 2>/dev/null
    done
    for c in $(iptables-save -t $t 2>/dev/null | grep -E '^:(DOCKER|NETAVARK)' | cut -d' ' -f1 | cut -c2-); do
      grep -q "^:$c " "$T/ipt-before.$t" && continue
      iptables -t $t -X "$c" 2>/dev/null || echo "could not delete chain -t $t $c" >>"$T/ipt-cleanup.log"
    done
  done
  # what is still there that was not before (for the log; CNI chains of other engines on this host are theirs)
  for t in nat filter; do
    iptables-save -t $t 2>/dev/null | grep -E '^(-A|:)' | grep -E "$(ours_re)" | grep -vxF -f "$T/ipt-before.$t" | sed "s/^/  $t: /"
  done
}

cleanup() {
  local rc=$? p m id b ns
  trap - EXIT INT TERM
  log "cleaning up $T"
  if [ -n "$SAMPAN_PID" ] && kill -0 "$SAMPAN_PID" 2>/dev/null; then
    ids=$(timeout 30 docker -H "unix://$SAMPAN_SOCK" ps -aq --no-trunc 2>/dev/null); echo "$ids" >>"$T/sampan.ids"
    [ -n "$ids" ] && timeout 120 docker -H "unix://$SAMPAN_SOCK" rm -f $ids >/dev/null 2>&1
    timeout 30 docker -H "unix://$SAMPAN_SOCK" network rm benchnet >/dev/null 2>&1
    stop_pid "$SAMPAN_PID" 20
  fi
  DOCKERD_PID=$(cat "$T/dockerd.pid" 2>/dev/null || echo "$DOCKERD_PID")
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    ids=$(timeout 30 docker -H "unix://$DOCKERD_SOCK" ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 120 docker -H "unix://$DOCKERD_SOCK" rm -f $ids >/dev/null 2>&1
    timeout 30 docker -H "unix://$DOCKERD_SOCK" network rm benchnet >/dev/null 2>&1
    stop_pid "$DOCKERD_PID" 30
  fi
  if [ -d "$T/podroot" ]; then
    timeout 120 "${POD[@]}" rm -af -t 0 >/dev/null 2>&1
    timeout 30 "${POD[@]}" network rm -f benchnet >/dev/null 2>&1
  fi
  # leftovers whose command line mentions $T: monitors and DNS servers first, then daemons
  for p in $(pids_of 'conmon|containerd-shim.*|aardvark-dns|containerd|dockerd|node|podman'); do kill -KILL "$p" 2>/dev/null; done
  runc_leftovers "$T"
  if [ -s "$T/podman.ids" ]; then # podman (rootful) keeps runc state in runc's default root
    while read -r c; do [ -n "$c" ] && runc delete -f "$c" >/dev/null 2>&1; done <"$T/podman.ids"
  fi
  # network namespaces: Sampan's for this run's containers, and any new podman (netns-*) or docker one
  while read -r id; do
    [ -n "$id" ] && [ -e "/run/netns/sampan-${id:0:12}" ] && ip netns delete "sampan-${id:0:12}" 2>/dev/null
  done <"$T/sampan.ids"
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^netns-' | grep -vxF -f "$T/netns-before"); do
    ip netns delete "$ns" 2>/dev/null
  done
  umount_under "$T"
  # bridges created during this run by these engines
  for b in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -vxF -f "$T/bridges-before" |
             grep -E "^($S_BRIDGE|docker0|br-[0-9a-f]{12}|podman[0-9]+${S_NETBRIDGE:+|$S_NETBRIDGE})$"); do
    ip link delete "$b" 2>/dev/null && log "deleted bridge $b"
  done
  left=$(ipt_cleanup)
  [ -n "$left" ] && { log "iptables entries still present that were not there before:"; echo "$left" >&2; }
  [ -s "$T/ipt-cleanup.log" ] && cat "$T/ipt-cleanup.log" >&2
  host_net_restore
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A R   # results: R[engine.metric]


# one timed `run` (no --network: the engine's default bridge unless the args say otherwise);
# appends the wall time in ms to $2 and returns the command's status
timed_run() { # ENGINE FILE ARGS-AFTER-RUN...
  local e=$1 f=$2 t0 t1 rc out CLI extra; shift 2
  cli_of "$e"; mapfile -t extra < <(run_opts "$e")
  t0=$(now_us)
  out=$(timeout 60 "${CLI[@]}" run "${extra[@]}" "$@" 2>>"$T/$e-errors.log"); rc=$?
  t1=$(now_us)
  if [ $rc = 0 ]; then
    awk -v d=$((t1 - t0)) 'BEGIN{print d/1000}' >>"$f"
    [ -n "$out" ] && echo "$out" >>"$T/$e.ids"
  else
    echo "  (exit $rc: run $*)" >>"$T/$e-errors.log"
  fi
  return $rc
}

latency_phase() {
  local e i j n=${#ENGINES[@]}
  log "latency: $WARMUP warm-up + $RUNS timed runs of 'run --rm busybox true' (default bridge) per engine, interleaved"
  for e in "${ENGINES[@]}"; do
    : >"$T/$e-run.ms"; R[$e.run_fail]=0
    for ((i = 0; i < WARMUP; i++)); do timed_run "$e" /dev/null --rm busybox true >/dev/null; done
  done
  for ((i = 0; i < RUNS; i++)); do
    for ((j = 0; j < n; j++)); do
      e=${ENGINES[$(((i + j) % n))]}
      timed_run "$e" "$T/$e-run.ms" --rm busybox true || R[$e.run_fail]=$((R[$e.run_fail] + 1))
    done
  done
  for e in "${ENGINES[@]}"; do
    read -r R[$e.run_med] R[$e.run_p90] < <(stats "$T/$e-run.ms")
    log "$e: run --rm (bridge) median ${R[$e.run_med]} ms p90 ${R[$e.run_p90]} ms (failed ${R[$e.run_fail]})"
  done
}

# a user network, NDET detached containers on it one after another, a reachability check, then remove all
usernet_phase() {
  local e=$1 i T0 T1 CLI ids t0 t1
  cli_of "$e"
  t0=$(now_us)
  timeout 60 "${CLI[@]}" network create --subnet "${NET_SUBNET[$e]}" benchnet >"$T/$e-net.id" 2>>"$T/$e-errors.log" ||
    { log "$e: network create failed"; R[$e.det_fail]=$NDET; return; }
  t1=$(now_us)
  [ "$e" = sampan ] && S_NETBRIDGE=sampan-$(head -c 8 "$T/$e-net.id")
  R[$e.netcreate_ms]=$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.1f", d/1000}')
  log "$e: starting $NDET detached sleep containers on benchnet (${NET_SUBNET[$e]})"
  : >"$T/$e-det.ms"; R[$e.det_fail]=0
  T0=$(now_us)
  for ((i = 0; i < NDET; i++)); do
    timed_run "$e" "$T/$e-det.ms" -d --network benchnet busybox sleep 600 >/dev/null || R[$e.det_fail]=$((R[$e.det_fail] + 1))
  done
  T1=$(now_us)
  R[$e.det_total]=$(awk -v d=$((T1 - T0)) 'BEGIN{printf "%.2f", d/1e6}')
  read -r R[$e.det_med] R[$e.det_p90] < <(stats "$T/$e-det.ms")
  R[$e.running]=$(timeout 60 "${CLI[@]}" ps -q 2>/dev/null | wc -l)
  # sanity: the last container reaches the first by IP on benchnet
  local first last ip
  first=$(head -1 "$T/$e.ids"); last=$(tail -1 "$T/$e.ids")
  ip=$(timeout 20 "${CLI[@]}" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$first" 2>/dev/null)
  # podman's default capabilities leave out NET_RAW, which busybox ping needs: exec --privileged there
  local xp=(); [ "$e" = podman ] && xp=(--privileged)
  if [ -n "$ip" ] && timeout 20 "${CLI[@]}" exec "${xp[@]}" "$last" ping -c1 -W2 "$ip" >/dev/null 2>&1; then R[$e.ping]="yes ($ip)"
  else R[$e.ping]="NO (${ip:-no IP})"; fi
  log "$e: $NDET starts ${R[$e.det_total]} s, median ${R[$e.det_med]} ms (failed ${R[$e.det_fail]}); running ${R[$e.running]}; ping ${R[$e.ping]}"
  log "$e: removing its containers and benchnet"
  if [ "$e" = podman ]; then timeout 300 "${POD[@]}" rm -af -t 0 >/dev/null 2>>"$T/$e-errors.log"
  else
    ids=$(timeout 30 "${CLI[@]}" ps -aq --no-trunc); [ "$e" = sampan ] && echo "$ids" >>"$T/sampan.ids"
    [ -n "$ids" ] && timeout 300 "${CLI[@]}" rm -f $ids >/dev/null 2>>"$T/$e-errors.log"
  fi
  timeout 60 "${CLI[@]}" network rm benchnet >/dev/null 2>>"$T/$e-errors.log" || log "$e: network rm benchnet failed"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN{exit !(l > 0.5*n)}' &&
  log "WARNING: load average $LOAD_START on $(nproc) CPUs before the start: other work on this machine will skew the figures"
log "scratch dir $T; runs=$RUNS detached=$NDET; FORWARD before: $FWD_POLICY_LINE"

# ---------- Sampan (also the source of the busybox image) ----------
SAMPAN_BRIDGE_NAME=$S_BRIDGE SAMPAN_BRIDGE_SUBNET=$S_SUBNET \
  bin/sampan engine --root "$T/root" --exec-root "$T/run" --host "unix://$SAMPAN_SOCK" >"$T/sampan.log" 2>&1 &
SAMPAN_PID=$!
wait_ping "$SAMPAN_SOCK" 30 || { tail -20 "$T/sampan.log" >&2; die "sampan engine did not answer _ping"; }
bin/sampan image seed --host "unix://$SAMPAN_SOCK" >/dev/null || die "sampan image seed failed"
docker -H "unix://$SAMPAN_SOCK" save busybox:latest -o "$T/bb.tar" || die "docker save against sampan failed"

# ---------- dockerd, with its default bridge and iptables ----------
dockerd --data-root "$T/dockerd" --exec-root "$T/dockerd-run" --pidfile "$T/dockerd.pid" -H "unix://$DOCKERD_SOCK" \
  --bip "$D_BIP" --iptables=true >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
wait_ping "$DOCKERD_SOCK" 60 || { tail -20 "$T/dockerd.log" >&2; die "dockerd did not answer _ping"; }
docker -H "unix://$DOCKERD_SOCK" load -i "$T/bb.tar" >/dev/null || die "docker load into dockerd failed"
FWD_AFTER_DOCKERD=$(iptables -S FORWARD | head -1)
log "FORWARD after dockerd start: $FWD_AFTER_DOCKERD"

# ---------- podman ----------
"${POD[@]}" load -i "$T/bb.tar" >/dev/null 2>"$T/podman-load.log" || { cat "$T/podman-load.log" >&2; die "podman load failed"; }

for e in "${ENGINES[@]}"; do : >"$T/$e-errors.log"; done
latency_phase
# the rules the three engines set up for their default bridges, with all three up (for the record)
{ for t in filter nat; do iptables-save -t $t | grep -E '^(-A|:)' | grep -E "$(ours_re)" | grep -vxF -f "$T/ipt-before.$t" | sed "s/^/$t: /"; done; } >"$T/ipt-during.txt"
R[rules_new]=$(wc -l <"$T/ipt-during.txt")
for e in "${ENGINES[@]}"; do usernet_phase "$e"; done
for e in "${ENGINES[@]}"; do
  if [ -s "$T/$e-errors.log" ]; then log "$e: errors (first 10 lines):"; head -10 "$T/$e-errors.log" | sed 's/^/    /' >&2; fi
done

table() {
  local e
  echo "| metric | sampan | dockerd | podman | Sampan/dockerd | Sampan/podman |"
  echo "|---|---:|---:|---:|---:|---:|"
  row() { # label key [noratio]
    local lab=$1 k=$2
    printf '| %s |' "$lab"; for e in "${ENGINES[@]}"; do printf ' %s |' "$(g "$e.$k")"; done
    if [ -n "${3:-}" ]; then echo ' | |'
    else printf ' %s | %s |\n' "$(ratio "$(g sampan.$k)" "$(g dockerd.$k)")" "$(ratio "$(g sampan.$k)" "$(g podman.$k)")"; fi
  }
  row "run --rm true, default bridge: median (ms)" run_med
  row "run --rm true, default bridge: p90 (ms)" run_p90
  row "run --rm: failed runs" run_fail noratio
  row "network create benchnet (ms)" netcreate_ms
  row "$NDET x run -d --network benchnet sleep: total (s)" det_total
  row "run -d on benchnet: per-container median (ms)" det_med
  row "run -d on benchnet: per-container p90 (ms)" det_p90
  row "run -d: failed starts" det_fail noratio
  row "containers running after the loop" running noratio
  row "last container pings the first on benchnet" ping noratio
}
{
  echo
  echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Versions: $(docker --version | cut -d, -f1 | sed 's/Docker version/docker CLI/'); $(dockerd --version 2>/dev/null | cut -d, -f1);" \
       "$(containerd --version 2>/dev/null | awk '{print "containerd "$3}'); $(podman --version 2>/dev/null) (netavark $(/usr/lib/podman/netavark --version 2>/dev/null | awk '{print $2}')); $(runc --version | head -1); node $(node --version)"
  echo "Load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "iptables FORWARD: '$FWD_POLICY_LINE' before, '$FWD_AFTER_DOCKERD' after dockerd started; ${R[rules_new]} new filter/nat entries (chains + rules) for the three default bridges after the latency phase"
  echo "Runs: $RUNS timed (+$WARMUP warm-up) run --rm per engine, interleaved round-robin; $NDET sequential run -d per engine on its benchnet, one engine at a time"
  echo
  table
} | tee "$T/table.md"
[ -n "$OUT" ] && cp "$T/table.md" "$OUT"
[ -n "${KEEP_LOGS:-}" ] && { mkdir -p "$KEEP_LOGS"; cp "$T/ipt-during.txt" "$KEEP_LOGS/"; }

lat_ok=$(awk -v s="$(g sampan.run_med)" -v d="$(g dockerd.run_med)" 'BEGIN{print (s!="-" && d!="-" && s <= 0.7*d) ? "PASS" : "MISS"}')
lim=$(awk -v d="$(g dockerd.run_med)" 'BEGIN{printf "%.1f", 0.7*d}')
echo
echo "VERDICT: bridge run latency $lat_ok (Sampan median $(g sampan.run_med) ms vs target <= 0.7 x dockerd $(g dockerd.run_med) ms = $lim ms;" \
     "ratio $(ratio "$(g sampan.run_med)" "$(g dockerd.run_med)")); $NDET on a user network: Sampan $(g sampan.det_total) s vs dockerd $(g dockerd.det_total) s" \
     "(ratio $(ratio "$(g sampan.det_total)" "$(g dockerd.det_total)"))"
fails=$(( $(g sampan.run_fail) + $(g sampan.det_fail) ))
[ "$fails" -gt 0 ] && echo "NOTE: Sampan had $fails failed commands (see the errors above)"
[ "$STRICT" = 1 ] && [ "$lat_ok" != PASS ] && exit 1
exit 0
