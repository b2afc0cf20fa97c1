#!/usr/bin/env bash
# Engine benchmark: Sampan vs dockerd (Debian docker.io, with its managed containerd) vs podman (runc),
# all in one run on this machine. The three are set up side by side (each with its own scratch state under one
# temp dir), then:
#   1. latency of `run --rm --network none busybox true`  (median, p90 over BENCH_RUNS runs, default 20),
#      interleaved: each round runs every engine once, in a rotating order, so machine drift hits all alike
#   2. one engine after the other: time to start BENCH_DETACHED (default 50) containers with
#      `run -d --network none busybox sleep 600`, one after another (total wall time, per-container
#      median/p90), then with all of them running the RSS (/proc/PID/status VmRSS) of the daemon(s) and, separately, of the per-container monitors
#      (conmon for Sampan and podman, containerd-shim-runc-v2 for dockerd)
#   3. a table with ratios Sampan/dockerd and Sampan/podman and a verdict against the targets:
#      Sampan median run latency <= 0.6 x dockerd's; Sampan engine RSS < dockerd + containerd RSS.
#
# Usage (as root, from the repo root):  bash bench/engine-run.sh
# Env: BENCH_RUNS (20)  BENCH_DETACHED (50)  BENCH_WARMUP (2, untimed runs before the timed ones)
#      BENCH_ENGINES ("sampan dockerd podman")  BENCH_STRICT=1 exits 1 when a target is missed
#      BENCH_OUT=FILE also writes the results table (markdown) to FILE;  KEEP_LOGS=DIR keeps the engines' logs
# Results and how to read them: docs/benchmarks.md
# Sampan and dockerd are driven by the same docker CLI (`docker -H unix://...`); podman by its own CLI.
# Nothing here needs the network: busybox comes from `sampan image seed` and is moved to the others as a tar.
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/lib.sh"
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-20}
NDET=${BENCH_DETACHED:-50}
WARMUP=${BENCH_WARMUP:-2}
ENGINES=${BENCH_ENGINES:-"sampan dockerd podman"}
STRICT=${BENCH_STRICT:-0}
OUT=${BENCH_OUT:-}


[ "$(id -u)" = 0 ] || die "run as root (engines, runc, mounts)"
case " $ENGINES " in *" sampan "*) ;; *) die "BENCH_ENGINES must include sampan (it provides the busybox image)";; esac

# ---------- prerequisites ----------
if [ ! -f dist/src/cli/main.js ]; then log "dist/ missing: running scripts/setup.sh"; bash scripts/setup.sh || die "setup failed"; fi
need_pkgs=()
command -v runc >/dev/null || need_pkgs+=(runc)
command -v conmon >/dev/null || need_pkgs+=(conmon)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v docker >/dev/null || need_pkgs+=(docker.io)
case " $ENGINES " in *" dockerd "*) command -v dockerd >/dev/null || need_pkgs+=(docker.io);; esac
case " $ENGINES " in *" podman "*) command -v podman >/dev/null || need_pkgs+=(podman);; esac
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || die "apt-get install failed"
fi

# ---------- scratch dir, state to restore ----------
T=$(mktemp -d /tmp/sb.XXXX) || die "mktemp failed"
SAMPAN_SOCK=$T/e.sock
DOCKERD_SOCK=$T/d.sock
host_net_save
SAMPAN_PID="" DOCKERD_PID=""
POD=(podman --root "$T/podroot" --runroot "$T/podrun" --tmpdir "$T/podtmp" --network-config-dir "$T/podnet"
     --runtime runc --cgroup-manager cgroupfs --events-backend file)
# podman asks runc for rlimits from its defaults; they must stay within this host's hard limits (nofile 20000)
POD_RUN=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
mkdir -p "$T/podtmp" "$T/podnet"

# PID plus all its descendants
tree_of() {
  local root=$1 p pp changed=1
  local -A in=([$root]=1)
  local pairs
  pairs=$(cat /proc/[0-9]*/stat 2>/dev/null | sed -E 's/^([0-9]+) \(.*\) [A-Za-z] ([0-9]+) .*/\1 \2/')
  while [ $changed = 1 ]; do
    changed=0
    while read -r p pp; do
      [ -n "${in[$pp]:-}" ] && [ -z "${in[$p]:-}" ] && { in[$p]=1; changed=1; }
    done <<<"$pairs"
  done
  echo "${!in[@]}"
}
rss_kb() { local s=0 p v; for p in "$@"; do v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null); s=$((s + ${v:-0})); done; echo $s; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

cleanup() {
  local rc=$? p m
  trap - EXIT INT TERM
  log "cleaning up $T"
  if [ -n "$SAMPAN_PID" ] && kill -0 "$SAMPAN_PID" 2>/dev/null; then
    ids=$(timeout 30 docker -H "unix://$SAMPAN_SOCK" ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 120 docker -H "unix://$SAMPAN_SOCK" rm -f $ids >/dev/null 2>&1
    stop_pid "$SAMPAN_PID" 20
  fi
  DOCKERD_PID=$(cat "$T/dockerd.pid" 2>/dev/null || echo "$DOCKERD_PID")
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    ids=$(timeout 30 docker -H "unix://$DOCKERD_SOCK" ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 120 docker -H "unix://$DOCKERD_SOCK" rm -f $ids >/dev/null 2>&1
    stop_pid "$DOCKERD_PID" 30
  fi
  if [ -d "$T/podroot" ]; then timeout 120 "${POD[@]}" rm -af -t 0 >/dev/null 2>&1; fi
  # leftovers whose command line mentions $T: monitors first, then daemons
  for p in $(pids_of 'conmon|containerd-shim.*|containerd|dockerd|node|podman'); do kill -KILL "$p" 2>/dev/null; done
  # containers that lost their monitor: runc state dirs that belong to this run
  runc_leftovers "$T"
  if [ -s "$T/podman.ids" ]; then # podman (rootful) keeps runc state in runc's default root
    while read -r c; do runc delete -f "$c" >/dev/null 2>&1; done <"$T/podman.ids"
  fi
  # mounts under $T, deepest first
  umount_under "$T"
  host_net_restore
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A R   # results: R[engine.metric]


# one timed `run`; appends the wall time in ms to $2 and returns the command's status
timed_run() { # ENGINE FILE ARGS-AFTER-RUN...
  local e=$1 f=$2 t0 t1 rc out CLI extra; shift 2
  cli_of "$e"; mapfile -t extra < <(run_opts "$e")
  t0=$(now_us)
  out=$(timeout 60 "${CLI[@]}" run --network none "${extra[@]}" "$@" 2>>"$T/$e-errors.log"); rc=$?
  t1=$(now_us)
  if [ $rc = 0 ]; then
    awk -v d=$((t1 - t0)) 'BEGIN{print d/1000}' >>"$f"
    [ "$e" = podman ] && [ -n "$out" ] && echo "$out" >>"$T/podman.ids"
  else
    echo "  (exit $rc: run $*)" >>"$T/$e-errors.log"
  fi
  return $rc
}

# 1. run --rm latency, interleaved: round i runs each engine once, the order rotating every round, so that
#    drift in the machine's load (other work on it, page cache, the previous engine's cleanup) hits all alike
latency_phase() {
  local e i j n=${#ACTIVE[@]}
  log "latency: $WARMUP warm-up + $RUNS timed runs of 'run --rm --network none busybox true' per engine, interleaved"
  for e in "${ACTIVE[@]}"; do
    : >"$T/$e-run.ms"; R[$e.run_fail]=0
    for ((i = 0; i < WARMUP; i++)); do timed_run "$e" /dev/null --rm busybox true >/dev/null; done
  done
  for ((i = 0; i < RUNS; i++)); do
    for ((j = 0; j < n; j++)); do
      e=${ACTIVE[$(((i + j) % n))]}
      timed_run "$e" "$T/$e-run.ms" --rm busybox true || R[$e.run_fail]=$((R[$e.run_fail] + 1))
    done
  done
  # context: the client's own floor (CLI start + one API round trip for docker; CLI start alone for podman)
  local CLI t0 t1
  for e in "${ACTIVE[@]}"; do
    cli_of "$e"; : >"$T/$e-floor.ms"
    for ((i = 0; i < 10; i++)); do
      t0=$(now_us); timeout 30 "${CLI[@]}" version >/dev/null 2>&1; t1=$(now_us)
      awk -v d=$((t1 - t0)) 'BEGIN{print d/1000}' >>"$T/$e-floor.ms"
    done
    read -r R[$e.floor_med] _ < <(stats "$T/$e-floor.ms")
  done
  for e in "${ACTIVE[@]}"; do
    read -r R[$e.run_med] R[$e.run_p90] < <(stats "$T/$e-run.ms")
    log "$e: run --rm median ${R[$e.run_med]} ms p90 ${R[$e.run_p90]} ms (failed ${R[$e.run_fail]})"
  done
}

# 2. NDET detached sleep containers on one engine, then the memory with all of them running, then remove them
detached_phase() {
  local e=$1 i T0 T1 CLI
  cli_of "$e"
  log "$e: starting $NDET detached sleep containers"
  : >"$T/$e-det.ms"; R[$e.det_fail]=0
  T0=$(now_us)
  for ((i = 0; i < NDET; i++)); do
    timed_run "$e" "$T/$e-det.ms" -d busybox sleep 600 >/dev/null || R[$e.det_fail]=$((R[$e.det_fail] + 1))
  done
  T1=$(now_us)
  R[$e.det_total]=$(awk -v d=$((T1 - T0)) 'BEGIN{printf "%.2f", d/1e6}')
  read -r R[$e.det_med] R[$e.det_p90] < <(stats "$T/$e-det.ms")
  sleep 2 # let the monitors and daemons settle before reading memory
  R[$e.running]=$(timeout 60 "${CLI[@]}" ps -q 2>/dev/null | wc -l)

  local daemon_kb=0 mon cd
  case $e in
    sampan)
      daemon_kb=$(rss_kb $(tree_of "$SAMPAN_PID"))   # the node engine (conmon double-forks away from it)
      mon=$(pids_of conmon | while read -r p; do grep -q -- "$T/run/" "/proc/$p/cmdline" 2>/dev/null && echo "$p"; done) ;;
    dockerd)
      cd=$(pids_of containerd)
      R[dockerd.dockerd_mib]=$(mib "$(rss_kb "$DOCKERD_PID")")
      R[dockerd.containerd_mib]=$(mib "$(rss_kb $cd)")
      daemon_kb=$(rss_kb "$DOCKERD_PID" $cd)
      mon=$(pids_of 'containerd-shim.*') ;;
    podman)
      daemon_kb=0
      mon=$(pids_of conmon | while read -r p; do grep -q -- "$T/pod" "/proc/$p/cmdline" 2>/dev/null && echo "$p"; done) ;;
  esac
  R[$e.daemon_mib]=$(mib "$daemon_kb")
  R[$e.mon_n]=$(echo $mon | wc -w)
  R[$e.mon_mib]=$(mib "$(rss_kb $mon)")
  R[$e.mon_each]=$(awk -v k="$(rss_kb $mon)" -v n="${R[$e.mon_n]}" 'BEGIN{ if(n>0) printf "%.2f", k/1024/n; else print "-" }')
  log "$e: $NDET starts ${R[$e.det_total]} s, median ${R[$e.det_med]} ms (failed ${R[$e.det_fail]}); running ${R[$e.running]};" \
      "daemon ${R[$e.daemon_mib]} MiB; monitors ${R[$e.mon_n]} = ${R[$e.mon_mib]} MiB"

  log "$e: removing its containers"
  local ids
  if [ "$e" = podman ]; then timeout 300 "${POD[@]}" rm -af -t 0 >/dev/null 2>>"$T/$e-errors.log"
  else ids=$(timeout 30 "${CLI[@]}" ps -aq); [ -n "$ids" ] && timeout 300 "${CLI[@]}" rm -f $ids >/dev/null 2>>"$T/$e-errors.log"; fi
}

ACTIVE=(sampan)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN{exit !(l > 0.5*n)}' &&
  log "WARNING: load average $LOAD_START on $(nproc) CPUs before the start: other work on this machine will skew the figures"
# ---------- Sampan (also the source of the busybox image) ----------
log "scratch dir $T; runs=$RUNS detached=$NDET engines: $ENGINES"
bin/sampan engine --root "$T/root" --exec-root "$T/run" --host "unix://$SAMPAN_SOCK" >"$T/sampan.log" 2>&1 &
SAMPAN_PID=$!
wait_ping "$SAMPAN_SOCK" 30 || { tail -20 "$T/sampan.log" >&2; die "sampan engine did not answer _ping"; }
bin/sampan image seed --host "unix://$SAMPAN_SOCK" >/dev/null || die "sampan image seed failed"
docker -H "unix://$SAMPAN_SOCK" save busybox:latest -o "$T/bb.tar" || die "docker save against sampan failed"
R[sampan.idle_mib]=$(mib "$(rss_kb $(tree_of "$SAMPAN_PID"))")

# ---------- dockerd ----------
if [[ " $ENGINES " == *" dockerd "* ]]; then
  dockerd --data-root "$T/dockerd" --exec-root "$T/dockerd-run" --pidfile "$T/dockerd.pid" -H "unix://$DOCKERD_SOCK" \
    --iptables=false --bridge=none >"$T/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  wait_ping "$DOCKERD_SOCK" 60 || { tail -20 "$T/dockerd.log" >&2; die "dockerd did not answer _ping"; }
  [ -n "$(pids_of containerd)" ] || log "WARNING: no managed containerd under $T (dockerd using a system containerd?): its RSS is not counted"
  docker -H "unix://$DOCKERD_SOCK" load -i "$T/bb.tar" >/dev/null || die "docker load into dockerd failed"
  R[dockerd.idle_mib]=$(mib "$(rss_kb "$DOCKERD_PID" $(pids_of containerd))")
  ACTIVE+=(dockerd)
fi

# ---------- podman ----------
if [[ " $ENGINES " == *" podman "* ]]; then
  "${POD[@]}" load -i "$T/bb.tar" >/dev/null 2>"$T/podman-load.log" || { cat "$T/podman-load.log" >&2; die "podman load failed"; }
  R[podman.idle_mib]=0.0
  ACTIVE+=(podman)
fi

for e in "${ACTIVE[@]}"; do : >"$T/$e-errors.log"; done
latency_phase
for e in "${ACTIVE[@]}"; do detached_phase "$e"; done
for e in "${ACTIVE[@]}"; do
  if [ -s "$T/$e-errors.log" ]; then log "$e: errors (first 10 lines):"; head -10 "$T/$e-errors.log" | sed 's/^/    /' >&2; fi
done
stop_pid "$SAMPAN_PID" 20; SAMPAN_PID=""
if [ -n "$DOCKERD_PID" ]; then
  stop_pid "$DOCKERD_PID" 30; DOCKERD_PID=""
  for p in $(pids_of containerd); do stop_pid "$p" 10; done
fi

has() { [[ " $ENGINES " == *" $1 "* ]]; }
table() {
  local cols=(sampan) e
  has dockerd && cols+=(dockerd)
  has podman && cols+=(podman)
  printf '| metric |'; for e in "${cols[@]}"; do printf ' %s |' "$e"; done
  has dockerd && printf ' Sampan/dockerd |'; has podman && printf ' Sampan/podman |'; echo
  printf '|---|'; for e in "${cols[@]}"; do printf -- '---:|'; done; has dockerd && printf -- '---:|'; has podman && printf -- '---:|'; echo
  row() { # label key [noratio]
    local lab=$1 k=$2 rd rp
    printf '| %s |' "$lab"; for e in "${cols[@]}"; do printf ' %s |' "$(g "$e.$k")"; done
    if [ -n "${3:-}" ]; then rd=""; rp=""; else rd=$(ratio "$(g sampan.$k)" "$(g dockerd.$k)"); rp=$(ratio "$(g sampan.$k)" "$(g podman.$k)"); fi
    has dockerd && printf ' %s |' "$rd"
    has podman && printf ' %s |' "$rp"
    echo
  }
  row "run --rm true: median (ms)" run_med
  row "run --rm true: p90 (ms)" run_p90
  row "run --rm true: failed runs" run_fail noratio
  row "client floor: \`version\` median (ms)" floor_med
  row "$NDET x run -d sleep: total (s)" det_total
  row "run -d: per-container median (ms)" det_med
  row "run -d: per-container p90 (ms)" det_p90
  row "run -d: failed starts" det_fail noratio
  row "containers running after the loop" running noratio
  row "daemon RSS, idle after image load (MiB)" idle_mib
  row "daemon RSS with $NDET running (MiB)" daemon_mib
  row "monitor processes" mon_n noratio
  row "monitors RSS total (MiB)" mon_mib
  row "monitor RSS each (MiB)" mon_each
}
{
  echo
  echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Versions: $(docker --version | cut -d, -f1 | sed 's/Docker version/docker CLI/'); $(dockerd --version 2>/dev/null | cut -d, -f1);" \
       "$(containerd --version 2>/dev/null | awk '{print "containerd "$3}'); $(podman --version 2>/dev/null); $(runc --version | head -1); $(conmon --version 2>/dev/null | head -1); node $(node --version)"
  echo "Load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "Runs: $RUNS timed (+$WARMUP warm-up) run --rm per engine, interleaved round-robin; $NDET sequential run -d per engine, one engine at a time"
  echo
  table
  has dockerd && echo && echo "dockerd RSS split with $NDET running: dockerd $(g dockerd.dockerd_mib) MiB + containerd $(g dockerd.containerd_mib) MiB"
} | tee "$T/table.md"
[ -n "$OUT" ] && cp "$T/table.md" "$OUT"

if has dockerd; then
  lat_ok=$(awk -v s="$(g sampan.run_med)" -v d="$(g dockerd.run_med)" 'BEGIN{print (s!="-" && d!="-" && s <= 0.6*d) ? "PASS" : "MISS"}')
  mem_ok=$(awk -v s="$(g sampan.daemon_mib)" -v d="$(g dockerd.daemon_mib)" 'BEGIN{print (s+0 < d+0) ? "PASS" : "MISS"}')
  lim=$(awk -v d="$(g dockerd.run_med)" 'BEGIN{printf "%.1f", 0.6*d}')
  echo
  echo "VERDICT: run latency $lat_ok (Sampan median $(g sampan.run_med) ms vs target <= 0.6 x dockerd $(g dockerd.run_med) ms = $lim ms);" \
       "memory $mem_ok (Sampan engine $(g sampan.daemon_mib) MiB vs target < dockerd+containerd $(g dockerd.daemon_mib) MiB, $NDET containers running)"
  fails=$(( $(g sampan.run_fail) + $(g sampan.det_fail) ))
  [ "$fails" -gt 0 ] && echo "NOTE: Sampan had $fails failed commands (see the errors above)"
  if [ "$STRICT" = 1 ] && { [ "$lat_ok" != PASS ] || [ "$mem_ok" != PASS ]; }; then exit 1; fi
fi
exit 0
