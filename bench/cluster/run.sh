#!/usr/bin/env bash
# Cluster scale benchmark (issue 16, "Scale"): a real etcd, one real manager (`sampan cluster manager`, unchanged)
# and N simulated engines in one process (bench/cluster/sim.ts: the real node protocol over one WebSocket each on
# the manager's unix node socket, answering the manager's commands with BENCH_START_LATENCY ms per start). For each
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
#      BENCH_SHARD (15000): engines per simulator; more engines run as several simulators, each through a node relay
#      BENCH_MANAGER_FLAGS ("--pool 10.0.0.0/8 --network-size 9 --block-size 26 --lease-ttl 10"): extra manager flags
#      BENCH_NETWORK (bridge): the network of the batch and the concurrent creates (cluster: the cluster network)
#      BENCH_MANAGER_NODE_ARGS: node flags for the manager (e.g. --cpu-prof --cpu-prof-dir=DIR)
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
SHARD=${BENCH_SHARD:-15000}
# the default cluster network is a /16 of /24 blocks (256 hosts): thousands of hosts take a larger network and
# smaller blocks; and a 2 s election lease is lost in the join storm of 30,000 engines (findings in docs/benchmarks.md)
MGR_FLAGS=${BENCH_MANAGER_FLAGS:---pool 10.0.0.0/8 --network-size 9 --block-size 26 --lease-ttl 10}
# the batch's and the concurrent creates' network: the engines' local bridge by default (the scale figures' setting);
# BENCH_NETWORK=cluster puts them on the cluster network, where thousands of hosts getting their first block at once
# fan out every host's routes to every host: the run then also reports the manager's RSS peak and when the routes
# settled (docs/benchmarks.md, "Cluster networks: the route fan-out")
NET=${BENCH_NETWORK:-bridge}
NET_ARGS=$([ "$NET" = cluster ] || echo "--network $NET")
ETCD_PID= MGR_PID= SIM_PIDS=() RELAY_PIDS=()
stop_fleet() {
  local p
  for p in "${SIM_PIDS[@]}"; do stop_pid "$p" 5; done
  for p in "${RELAY_PIDS[@]}"; do stop_pid "$p" 5; done
  SIM_PIDS=() RELAY_PIDS=()
}
cleanup() {
  stop_fleet; stop_pid "$MGR_PID" 10; stop_pid "$ETCD_PID" 10
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
counts() { node dist/bench/cluster/count.js "$@" "$T"/ctl-*.sock 2>/dev/null; }
joined() { local j; j=$(counts | sed -n 's/.*"joined":\([0-9]*\).*/\1/p'); echo "${j:-0}"; }
wait_joined() { # $1 count, $2 timeout s (wall clock: a saturated simulator answers slowly); prints seconds taken
  local t0; t0=$(now_us)
  while [ "$(joined)" -lt "$1" ]; do
    [ $(( ($(now_us) - t0) / 1000000 )) -ge "$2" ] && { echo "timeout($(joined) joined)"; return 1; }
    sleep 0.2
  done
  awk -v a="$t0" -v b="$(now_us)" 'BEGIN{printf "%.1f", (b-a)/1e6}'
}
sim_ticks() { local p t=0; for p in "${SIM_PIDS[@]}"; do t=$((t + $(ticks "$p"))); done; echo "$t"; }
cpu_since() { # $1 wall clock (µs) at the start, $2 $3 $4 the manager's, etcd's and the simulator's ticks then: their CPU since
  awk -v w="$1" -v x="$(now_us)" -v a="$2" -v b="$(ticks "$MGR_PID")" -v c="$3" -v d="$(ticks "$ETCD_PID")" -v e="$4" -v f="$(sim_ticks)" -v hz="$HZ" \
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
  # shell words on purpose: BENCH_MANAGER_FLAGS holds several flags
  # shellcheck disable=SC2086
  node ${BENCH_MANAGER_NODE_ARGS:-} bin/sampan cluster manager ${MGR_FLAGS} --etcd http://127.0.0.1:$port --listen "unix://$T/cluster.sock" --node-listen "unix://$T/node.sock" \
    --name "bench$n" --join-token "$TOKEN" --heartbeat "$HB" >"$T/manager-$n.log" 2>&1 &
  MGR_PID=$!
  wait_ping "$T/cluster.sock" 30 || die "the manager did not start: $(tail -5 "$T/manager-$n.log")"
  # a process holds at most 20,000 sockets: past SHARD engines, several simulators, each through a relay of its own
  local shards=$(( (n + SHARD - 1) / SHARD )) i first=0 size join
  R[$n.via]=direct
  [ "$shards" -gt 1 ] && R[$n.via]="$shards relays"
  log "N=$n: etcd $ETCD_PID, manager $MGR_PID; starting $shards simulator(s) (${R[$n.via]})"
  rm -f "$T"/ctl-*.sock
  for i in $(seq "$shards"); do
    size=$(( n / shards + (i <= n % shards ? 1 : 0) )); join="unix://$T/node.sock"
    if [ "$shards" -gt 1 ]; then
      node bin/sampan cluster relay --manager "unix://$T/node.sock" --listen "unix://$T/relay-$i.sock" >"$T/relay-$n-$i.log" 2>&1 &
      RELAY_PIDS+=($!); join="unix://$T/relay-$i.sock"
      for _ in $(seq 100); do [ -S "$T/relay-$i.sock" ] && break; sleep 0.1; done
    fi
    node --max-old-space-size=4096 dist/bench/cluster/sim.js --join "$join" --token "$TOKEN" --engines "$size" --first "$first" --containers "$PER" \
      --start-latency "$LAT" --ctl "$T/ctl-$i.sock" >"$T/sim-$n-$i.log" 2>&1 &
    SIM_PIDS+=($!); first=$((first + size))
    for _ in $(seq 100); do [ -S "$T/ctl-$i.sock" ] && break; sleep 0.1; done
  done
  R[$n.join]=$(wait_joined "$n" "$JOIN_TIMEOUT")
  log "N=$n: all joined in ${R[$n.join]} s; steady state for $STEADY s"
  sleep 5
  R[$n.cpu]=$(cpu_pct "$MGR_PID" "$STEADY"); R[$n.rss]=$(rss_mb "$MGR_PID"); R[$n.fds]=$(fds "$MGR_PID")
  R[$n.etcddb]=$(du -m "$T/etcd/member/snap/db" | cut -f1)
  log "N=$n: cpu ${R[$n.cpu]} % rss ${R[$n.rss]} MB fds ${R[$n.fds]}; batch of $reps"
  local t0; t0="$(now_us) $(ticks "$MGR_PID") $(ticks "$ETCD_PID") $(sim_ticks)"
  local b0 rsspid; b0=$(now_us)
  # the manager's RSS at its peak (0.5 s samples) over the batch and, on the cluster network, its routes settling
  echo 0 >"$T/rsspeak"
  ( m=0; while kill -0 "$MGR_PID" 2>/dev/null; do r=$(rss_mb "$MGR_PID"); [ "${r:-0}" -gt "$m" ] && m=$r && echo "$m" >"$T/rsspeak"; sleep 0.5; done ) &
  rsspid=$!
  R[$n.batch]=$(node dist/bench/cluster/drive.js batch ${NET_ARGS} --api "$T/cluster.sock" --prefix b --replicas "$reps")
  if [ "$NET" = cluster ]; then
    # the route fan-out: settled once the engines were told nothing new for 3 s (600 s at most)
    local last="" pc stable=0
    while [ "$stable" -lt 3 ] && [ $(( ($(now_us) - b0) / 1000000 )) -lt 600 ] && kill -0 "$MGR_PID" 2>/dev/null; do
      sleep 1; pc=$(counts)
      if [ "$(jget peerMsgs "$pc")" = "$last" ]; then stable=$((stable + 1)); else stable=0; last=$(jget peerMsgs "$pc"); fi
    done
    R[$n.routes]="routes settled $(awk -v a="$b0" -v b="$(jget peerLast "$pc")" 'BEGIN{printf "%.1f", (b*1000-a)/1e6}') s after the batch's start; $(jget peerMsgs "$pc") peers messages, $(awk -v b="$(jget peerBytes "$pc")" 'BEGIN{printf "%.0f", b/1048576}') MiB to the engines; sampled engines know $(jget peerSampleMin "$pc")..$(jget peerSampleMax "$pc") holders"
  fi
  kill "$rsspid" 2>/dev/null; wait "$rsspid" 2>/dev/null
  R[$n.rsspeak]=$(cat "$T/rsspeak")
  log "N=$n: manager RSS peak ${R[$n.rsspeak]} MB; ${R[$n.routes]:-}"
  R[$n.batchcpu]=$(cpu_since $t0)
  R[$n.count]=$(counts --prefix b)
  R[$n.reps]=$reps
  R[$n.etcddb2]=$(du -m "$T/etcd/member/snap/db" | cut -f1)
  log "N=$n: batch ${R[$n.batch]} engines ${R[$n.count]}"
  if [ "$CONC" != 0 ]; then
    log "N=$n: $CONC concurrent create+start"
    t0="$(now_us) $(ticks "$MGR_PID") $(ticks "$ETCD_PID") $(sim_ticks)"
    node dist/bench/cluster/drive.js concurrent ${NET_ARGS} --api "$T/cluster.sock" --prefix cc --n "$CONC" >"$T/concurrent.out" 2>&1 &
    R[$n.concfds]=$(peak_fds $!)
    R[$n.conc]=$(tail -1 "$T/concurrent.out")
    R[$n.conccpu]=$(cpu_since $t0)
    R[$n.conccount]=$(counts --prefix cc)
    log "N=$n: concurrent ${R[$n.conc]} engines ${R[$n.conccount]}"
  fi
  log "N=$n: lookups"
  R[$n.lookup]=$(node dist/bench/cluster/drive.js lookup --api "$T/cluster.sock" --n "$LOOKUPS" --engines "$n" --containers "$PER" 2>&1 | tail -1)
  R[$n.incluster]=$(jget containers "$(counts)")
  log "N=$n: lookups ${R[$n.lookup]}; churn"
  local base_rss base_fds base_joined r peak s c; base_rss=$(rss_mb "$MGR_PID"); base_fds=$(fds "$MGR_PID"); base_joined=$(joined)
  R[$n.churn]=""
  for r in $(seq "$ROUNDS"); do
    for i in "$T"/ctl-*.sock; do curl -s -m 5 --unix-socket "$i" -X POST "http://x/churn?fraction=0.1&downMs=5000" >/dev/null; done
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
  stop_fleet; stop_pid "$MGR_PID" 10; stop_pid "$ETCD_PID" 10; MGR_PID= ETCD_PID=
  [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$T"/*-"$n".log "$T"/*-"$n"-*.log "$KEEP_LOGS"/
}

for n in $HOSTS; do run_one "$n"; done

{
  echo "| hosts (engines' connections) | join s | RSS MB | CPU % core | fds | etcd db MB (after batch) | batch replicas | placements/s | replica p50/p99 ms | on engines (distinct, dup, running) | containers | ps p50/p99 ms | inspect p50/p99 ms | manager alive after churn |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for n in $HOSTS; do
    b=${R[$n.batch]}; c=${R[$n.count]}; l=${R[$n.lookup]}
    echo "| $n (${R[$n.via]}) | ${R[$n.join]} | ${R[$n.rss]} | ${R[$n.cpu]} | ${R[$n.fds]} | ${R[$n.etcddb]} (${R[$n.etcddb2]}) | ${R[$n.reps]} (errors $(jget errors "$b")) | $(jget placementsPerSec "$b") | $(jget p50ms "$b") / $(jget p99ms "$b") | $(jget distinct "$c"), $(jget duplicated "$c"), $(jget running "$c") | ${R[$n.incluster]} | $(jget psP50ms "$l") / $(jget psP99ms "$l") | $(jget inspectP50ms "$l") / $(jget inspectP99ms "$l") | ${R[$n.alive]} |"
  done
  echo
  for n in $HOSTS; do echo "- batch at $n hosts: ${R[$n.batchcpu]}; manager RSS peak ${R[$n.rsspeak]} MB${R[$n.routes]:+; ${R[$n.routes]}}"; done
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
