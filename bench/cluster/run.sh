#!/usr/bin/env bash
# Cluster scale benchmark (issue 16, "Scale"): a real etcd, one real manager (`sampan cluster manager`, unchanged)
# and N simulated engines in one process (bench/cluster/sim.ts: the real node protocol over one WebSocket each on
# the manager's unix node socket, a minimal Engine API per engine with BENCH_START_LATENCY ms per start). For each
# N in BENCH_HOSTS:
#   1. join: seconds from the simulator's start until every engine is welcomed
#   2. steady state over BENCH_STEADY s: manager RSS, CPU (% of one core), open fds; etcd's db size
#   3. a batch of BENCH_REPLICAS_<N> replicas (default N*4/5, 8,000 at 10,000): placements/s, p50/p99 of each
#      replica's latency (request → its line in the batch's stream), and, counted on the simulated engines, none
#      lost (every name present and running) nor duplicated
#   3b. BENCH_CONCURRENT (3000; 0 skips it) clients at once, each `POST /containers/create?name=cc-i` then
#      `POST /containers/ID/start`, one keep-alive connection each: placements/s, p50/p99 of each client's
#      create+start (and of its create alone), failures by status; the names counted in the manager's list (and
#      the nodes they went to) and on the simulated engines; the manager's fds at their peak
#   4. `docker ps --filter name=X` and `docker inspect X` (the API requests the CLI makes) p50/p99, one at a time,
#      BENCH_LOOKUPS each, with N*BENCH_CONTAINERS (10 per engine) + the batch's and step 3b's containers in the cluster
#   5. churn, BENCH_CHURN_ROUNDS (3) times: 10 % of the engines drop and rejoin within 10 s (down 5 s); seconds to
#      all rejoined, manager CPU peak (1 s samples), then RSS and fds BENCH_SETTLE s later against the baseline
# Usage (from the repo root, as root, after npm run build):  bash bench/cluster/run.sh
# Env: BENCH_HOSTS ("1000 10000")  BENCH_CONTAINERS (10)  BENCH_START_LATENCY (50)  BENCH_HEARTBEAT (5000, as shipped)
#      BENCH_CONCURRENT (3000)  BENCH_JOIN_TIMEOUT (600 s: past it the run goes on with the engines that joined)  BENCH_STEADY (30)  BENCH_LOOKUPS (200)  BENCH_CHURN_ROUNDS (3)  BENCH_SETTLE (15)  BENCH_REPLICAS_<N>
#      BENCH_OUT=FILE also writes the results table (markdown) to FILE;  KEEP_LOGS=DIR keeps the manager's and sim's logs
# Results and how to read them: docs/benchmarks.md ("Cluster: scale").
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
cd "$(dirname "$0")/../.."

HOSTS=${BENCH_HOSTS:-1000 10000}
PER=${BENCH_CONTAINERS:-10}
LAT=${BENCH_START_LATENCY:-50}
HB=${BENCH_HEARTBEAT:-5000}
JOIN_TIMEOUT=${BENCH_JOIN_TIMEOUT:-600}
STEADY=${BENCH_STEADY:-30}
LOOKUPS=${BENCH_LOOKUPS:-200}
ROUNDS=${BENCH_CHURN_ROUNDS:-3}
SETTLE=${BENCH_SETTLE:-15}
CONC=${BENCH_CONCURRENT:-3000}
OUT=${BENCH_OUT:-}
T=$(mktemp -d /tmp/sampan-clusterbench.XXXXXX)
TOKEN=bench-token-$(head -c8 /dev/urandom | od -An -tx1 | tr -d ' \n')
ETCD_PID= MGR_PID= SIM_PID=
cleanup() {
  stop_pid "$SIM_PID" 5; stop_pid "$MGR_PID" 10; stop_pid "$ETCD_PID" 10
  [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

[ -f dist/bench/cluster/sim.js ] || die "build first: npm run build"
command -v etcd >/dev/null || die "etcd is not installed"
log "nofile: soft $(ulimit -Sn) hard $(ulimit -Hn)"
ulimit -n "$(ulimit -Hn)"

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
HZ=$(getconf CLK_TCK)
cpu_pct() { # $1 pid, $2 seconds: % of one core over that window
  local a b; a=$(ticks "$1"); sleep "$2"; b=$(ticks "$1")
  awk -v a="$a" -v b="$b" -v s="$2" -v hz="$HZ" 'BEGIN{printf "%.1f", (b-a)/hz/s*100}'
}
ctl() { curl -s -m 5 --unix-socket "$T/ctl.sock" "$@"; }
joined() { local j; j=$(ctl http://x/count | sed -n 's/.*"joined":\([0-9]*\).*/\1/p'); echo "${j:-0}"; }
wait_joined() { # $1 count, $2 timeout s (wall clock: a saturated simulator answers slowly); prints seconds taken
  local t0; t0=$(now_us)
  while [ "$(joined)" -lt "$1" ]; do
    [ $(( ($(now_us) - t0) / 1000000 )) -ge "$2" ] && { echo "timeout($(joined) joined)"; return 1; }
    sleep 0.2
  done
  awk -v a="$t0" -v b="$(now_us)" 'BEGIN{printf "%.1f", (b-a)/1e6}'
}
cpu_since() { # $1 wall clock (µs) at the start, $2 $3 $4 the manager's, etcd's and the simulator's ticks then: their CPU since
  awk -v w="$1" -v x="$(now_us)" -v a="$2" -v b="$(ticks "$MGR_PID")" -v c="$3" -v d="$(ticks "$ETCD_PID")" -v e="$4" -v f="$(ticks "$SIM_PID")" -v hz="$HZ" \
    'BEGIN{printf "manager %.1f s CPU (%.0f %% of a core), etcd %.1f s, simulator %.1f s, over %.1f s", (b-a)/hz, (b-a)/hz/((x-w)/1e6)*100, (d-c)/hz, (f-e)/hz, (x-w)/1e6}'
}
peak_fds() { # the manager's most open fds (0.5 s samples) while $1 runs: its client connections show there
  local m=0 f
  while kill -0 "$1" 2>/dev/null; do f=$(fds "$MGR_PID"); [ "$f" -gt "$m" ] && m=$f; sleep 0.5; done
  echo "$m"
}
jget() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$2"; }

declare -A R
run_one() {
  local n=$1 port=$((23000 + RANDOM % 2000)) rv="BENCH_REPLICAS_$1"; local reps=${!rv:-$((n * 4 / 5))}
  rm -rf "$T/etcd"
  etcd --data-dir "$T/etcd" --listen-client-urls http://127.0.0.1:$port --advertise-client-urls http://127.0.0.1:$port \
    --listen-peer-urls http://127.0.0.1:$((port + 1)) --initial-advertise-peer-urls http://127.0.0.1:$((port + 1)) \
    --initial-cluster default=http://127.0.0.1:$((port + 1)) --quota-backend-bytes $((8 << 30)) >"$T/etcd-$n.log" 2>&1 &
  ETCD_PID=$!
  for _ in $(seq 50); do curl -s -m1 http://127.0.0.1:$port/health | grep -q true && break; sleep 0.2; done
  node bin/sampan cluster manager --etcd http://127.0.0.1:$port --listen "unix://$T/cluster.sock" --node-listen "unix://$T/node.sock" \
    --name "bench$n" --join-token "$TOKEN" --heartbeat "$HB" >"$T/manager-$n.log" 2>&1 &
  MGR_PID=$!
  wait_ping "$T/cluster.sock" 30 || die "the manager did not start: $(tail -5 "$T/manager-$n.log")"
  log "N=$n: etcd $ETCD_PID, manager $MGR_PID; starting the simulator"
  node --max-old-space-size=4096 dist/bench/cluster/sim.js --join "unix://$T/node.sock" --token "$TOKEN" --engines "$n" --containers "$PER" \
    --start-latency "$LAT" --port $((port + 2)) --ctl "$T/ctl.sock" >"$T/sim-$n.log" 2>&1 &
  SIM_PID=$!
  for _ in $(seq 100); do [ -S "$T/ctl.sock" ] && break; sleep 0.1; done
  R[$n.join]=$(wait_joined "$n" "$JOIN_TIMEOUT")
  log "N=$n: all joined in ${R[$n.join]} s; steady state for $STEADY s"
  sleep 5
  R[$n.cpu]=$(cpu_pct "$MGR_PID" "$STEADY"); R[$n.rss]=$(rss_mb "$MGR_PID"); R[$n.fds]=$(fds "$MGR_PID")
  R[$n.etcddb]=$(du -m "$T/etcd/member/snap/db" | cut -f1)
  log "N=$n: cpu ${R[$n.cpu]} % rss ${R[$n.rss]} MB fds ${R[$n.fds]}; batch of $reps"
  local t0; t0="$(now_us) $(ticks "$MGR_PID") $(ticks "$ETCD_PID") $(ticks "$SIM_PID")"
  R[$n.batch]=$(node dist/bench/cluster/drive.js batch --api "$T/cluster.sock" --prefix b --replicas "$reps")
  R[$n.batchcpu]=$(cpu_since $t0)
  R[$n.count]=$(ctl "http://x/count?prefix=b")
  R[$n.reps]=$reps
  R[$n.etcddb2]=$(du -m "$T/etcd/member/snap/db" | cut -f1)
  log "N=$n: batch ${R[$n.batch]} engines ${R[$n.count]}"
  if [ "$CONC" != 0 ]; then
    log "N=$n: $CONC concurrent create+start"
    t0="$(now_us) $(ticks "$MGR_PID") $(ticks "$ETCD_PID") $(ticks "$SIM_PID")"
    node dist/bench/cluster/drive.js concurrent --api "$T/cluster.sock" --prefix cc --n "$CONC" >"$T/concurrent.out" 2>&1 &
    R[$n.concfds]=$(peak_fds $!)
    R[$n.conc]=$(tail -1 "$T/concurrent.out")
    R[$n.conccpu]=$(cpu_since $t0)
    R[$n.conccount]=$(ctl "http://x/count?prefix=cc")
    log "N=$n: concurrent ${R[$n.conc]} engines ${R[$n.conccount]}"
  fi
  log "N=$n: lookups"
  R[$n.lookup]=$(node dist/bench/cluster/drive.js lookup --api "$T/cluster.sock" --n "$LOOKUPS" --engines "$n" --containers "$PER" 2>&1 | tail -1)
  R[$n.incluster]=$(jget containers "$(ctl http://x/count)")
  log "N=$n: lookups ${R[$n.lookup]}; churn"
  local base_rss base_fds base_joined r peak s c; base_rss=$(rss_mb "$MGR_PID"); base_fds=$(fds "$MGR_PID"); base_joined=$(joined)
  R[$n.churn]=""
  for r in $(seq "$ROUNDS"); do
    ctl -X POST "http://x/churn?fraction=0.1&downMs=5000" >/dev/null
    peak=0; s=$(now_us)
    sleep 1
    while [ "$(joined)" -lt "$base_joined" ]; do
      c=$(cpu_pct "$MGR_PID" 1); peak=$(awk -v a="$peak" -v b="$c" 'BEGIN{print (b>a)?b:a}')
      [ $(( ($(now_us) - s) / 1000000 )) -gt 120 ] && break
    done
    local took; took=$(awk -v a="$s" -v b="$(now_us)" 'BEGIN{printf "%.1f", (b-a)/1e6}')
    sleep "$SETTLE"
    R[$n.churn]+="round $r: all back in ${took} s, CPU peak ${peak} %, RSS $(rss_mb "$MGR_PID") MB (baseline $base_rss), fds $(fds "$MGR_PID") (baseline $base_fds); "
    log "N=$n churn $r: ${took} s peak $peak rss $(rss_mb "$MGR_PID") fds $(fds "$MGR_PID")"
  done
  kill -0 "$MGR_PID" 2>/dev/null && R[$n.alive]=yes || R[$n.alive]=no
  stop_pid "$SIM_PID" 5; stop_pid "$MGR_PID" 10; stop_pid "$ETCD_PID" 10; SIM_PID= MGR_PID= ETCD_PID=
  [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$T"/*-"$n".log "$KEEP_LOGS"/
}

for n in $HOSTS; do run_one "$n"; done

{
  echo "| hosts | join s | RSS MB | CPU % core | fds | etcd db MB (after batch) | batch replicas | placements/s | replica p50/p99 ms | on engines (distinct, dup, running) | containers | ps p50/p99 ms | inspect p50/p99 ms | manager alive after churn |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for n in $HOSTS; do
    b=${R[$n.batch]}; c=${R[$n.count]}; l=${R[$n.lookup]}
    echo "| $n | ${R[$n.join]} | ${R[$n.rss]} | ${R[$n.cpu]} | ${R[$n.fds]} | ${R[$n.etcddb]} (${R[$n.etcddb2]}) | ${R[$n.reps]} (errors $(jget errors "$b")) | $(jget placementsPerSec "$b") | $(jget p50ms "$b") / $(jget p99ms "$b") | $(jget distinct "$c"), $(jget duplicated "$c"), $(jget running "$c") | ${R[$n.incluster]} | $(jget psP50ms "$l") / $(jget psP99ms "$l") | $(jget inspectP50ms "$l") / $(jget inspectP99ms "$l") | ${R[$n.alive]} |"
  done
  echo
  for n in $HOSTS; do echo "- batch at $n hosts: ${R[$n.batchcpu]}"; done
  for n in $HOSTS; do echo "- churn at $n hosts: ${R[$n.churn]}"; done
  if [ "$CONC" != 0 ]; then
    echo
    echo "| hosts | concurrent clients | ok (failed) | placements/s | create+start p50/p99 ms (create alone) | in the API's list (distinct, missing, dup, running) | on engines (distinct, dup, running) | nodes used (most on one) | failures |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for n in $HOSTS; do
      b=${R[$n.conc]}; c=${R[$n.conccount]}
      if [[ $b != \{* ]]; then echo "| $n | $CONC | failed: $b ||||||"; continue; fi
      echo "| $n | $CONC | $(jget ok "$b") ($(jget failed "$b")) | $(jget placementsPerSec "$b") | $(jget p50ms "$b") / $(jget p99ms "$b") ($(jget createP50ms "$b") / $(jget createP99ms "$b")) | $(jget listed "$b") ($(jget distinct "$b"), $(jget missing "$b"), $(jget duplicated "$b"), $(jget running "$b")) | $(jget distinct "$c"), $(jget duplicated "$c"), $(jget running "$c") | $(jget nodes "$b") ($(jget maxPerNode "$b")) | $(sed -n 's/.*"failures":\(.*\),"seconds".*/\1/p' <<<"$b") |"
    done
    for n in $HOSTS; do echo "- concurrent at $n hosts: ${R[$n.conccpu]}; the manager's fds peaked at ${R[$n.concfds]} (${R[$n.fds]} at steady state)"; done
  fi
  for n in $HOSTS; do [[ ${R[$n.lookup]} == \{* ]] || echo "- lookups at $n hosts failed: ${R[$n.lookup]}"; done
} | tee "${OUT:-/dev/null}"
