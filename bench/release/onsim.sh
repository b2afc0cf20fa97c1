#!/usr/bin/env bash
# Releases on the cluster issue's simulator (issue 19, "Measure"): the manager's REAL release controller and
# Docker-update path against N simulated engines (bench/cluster/sim.js speaking the node protocol), in one run:
#   etcd + `sampan cluster manager` + one simulator of BENCH_HOSTS engines, each holding app:v1; a service of
#   BENCH_INSTANCES instances of app:v1 (POST /services/create); then
#   1. Docker's update to app:v2 (POST /services/ID/update: parallelism W, delay 0, stop-first)
#   2. smart to app:v3 (POST /sampan/v1/releases: first batch W, window W, pre-pull; confirmed at once)
# each image new to every engine: a start is lognormal (median BENCH_START_MS, sigma 0.5), 1 % of hosts 10 × slower,
# 0.5 % of slots failing their first start (seeded); a pull takes BENCH_PULL_MS × the P2P benchmark's stretch for the
# pulls under way. Per release: total, time to 50/99/100 % of the instances on the new image, the most unavailable
# at once, pulls on the critical path (the task's own pull, not a pre-pull), as the simulator counted; then the
# discrete-event simulation (bench/release/run.js) of the same parameters, its seconds scaled the same way.
# Usage (from the repo root, after npm run build):  bash bench/release/onsim.sh
# Env: BENCH_MODES ("docker smart": the releases to run)  BENCH_HOSTS (2000)  BENCH_INSTANCES (8000)  BENCH_WINDOW (100)  BENCH_START_MS (2000: the DES's 20 s / 10)
#      BENCH_PULL_MS (2150: the DES's 21.5 s / 10)  BENCH_SEED (19)  BENCH_MANAGER_FLAGS  BENCH_TIMEOUT (3600 s a step)
#      BENCH_OUT=FILE also writes the results (markdown);  KEEP_LOGS=DIR keeps the logs
# Results: docs/benchmarks.md ("Release: on the simulator").
set -uo pipefail
[[ "${1:-}" =~ ^(-h|--help)$ ]] && { sed -n '2,/^set -uo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0; }
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
cd "$(dirname "$0")/../.."

H=${BENCH_HOSTS:-2000}
N=${BENCH_INSTANCES:-8000}
W=${BENCH_WINDOW:-100}
START_MS=${BENCH_START_MS:-2000}
PULL_MS=${BENCH_PULL_MS:-2150}
SEED=${BENCH_SEED:-19}
TIMEOUT=${BENCH_TIMEOUT:-3600}
MGR_FLAGS=${BENCH_MANAGER_FLAGS:---pool 10.0.0.0/8 --network-size 9 --block-size 26 --lease-ttl 10}
OUT=${BENCH_OUT:-}
T=$(mktemp -d /tmp/sampan-relsim.XXXXXX)
TOKEN=bench-token-$(head -c8 /dev/urandom | od -An -tx1 | tr -d ' \n')
ETCD_PID= MGR_PID= SIM_PID=
cleanup() {
  stop_pid "$SIM_PID" 5; stop_pid "$MGR_PID" 10; stop_pid "$ETCD_PID" 10
  [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$KEEP_LOGS"/ 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -f dist/bench/release/onsim.js ] || die "build first: npm run build"
command -v etcd >/dev/null || die "etcd is not installed"
ulimit -n "$(ulimit -Hn)"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

PORT=$(free_port); PEER=$(free_port)
etcd --data-dir "$T/etcd" --listen-client-urls http://127.0.0.1:$PORT --advertise-client-urls http://127.0.0.1:$PORT \
  --listen-peer-urls http://127.0.0.1:$PEER --initial-advertise-peer-urls http://127.0.0.1:$PEER \
  --initial-cluster default=http://127.0.0.1:$PEER --quota-backend-bytes $((8 << 30)) >"$T/etcd.log" 2>&1 &
ETCD_PID=$!
for _ in $(seq 50); do curl -s -m1 http://127.0.0.1:$PORT/health | grep -q true && break; sleep 0.2; done
# shellcheck disable=SC2086
node bin/sampan cluster manager ${MGR_FLAGS} --etcd http://127.0.0.1:$PORT --listen "unix://$T/cluster.sock" --node-listen "unix://$T/node.sock" \
  --name relsim --join-token "$TOKEN" >"$T/manager.log" 2>&1 &
MGR_PID=$!
wait_ping "$T/cluster.sock" 30 || die "the manager did not start: $(tail -5 "$T/manager.log")"
node --max-old-space-size=4096 dist/bench/cluster/sim.js --join "unix://$T/node.sock" --token "$TOKEN" --engines "$H" --containers 0 \
  --start-latency "$START_MS" --start-dist lognormal --start-sigma 0.5 --slow-hosts 0.01 --slow-factor 10 --fail-once 0.005 --seed "$SEED" \
  --images app:v1 --pull-ms "$PULL_MS" --docker-api 0 --ctl "$T/ctl.sock" >"$T/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do [ -S "$T/ctl.sock" ] && break; sleep 0.1; done
joined() { curl -s -m 10 --unix-socket "$T/ctl.sock" http://x/count | sed -n 's/.*"joined":\([0-9]*\).*/\1/p'; }
t0=$(now_us)
until [ "$(joined)" = "$H" ]; do [ $(( ($(now_us) - t0) / 1000000 )) -gt 600 ] && die "only $(joined) of $H engines joined"; sleep 0.5; done
log "$H engines joined; load: $(uptime)"
D=(node dist/bench/release/onsim.js --api "$T/cluster.sock" --ctl "$T/ctl.sock" --service app --instances "$N" --window "$W" --timeout "$TIMEOUT")
CREATE=$("${D[@]}" create --image app:v1) || die "create failed"
log "create: $CREATE"
MODES=${BENCH_MODES:-docker smart}
DOCKER= SMART=
if [[ " $MODES " == *" docker "* ]]; then
  DOCKER=$("${D[@]}" release --mode docker --image app:v2) || die "docker update failed: $DOCKER"
  log "docker: $DOCKER"
fi
if [[ " $MODES " == *" smart "* ]]; then
  SMART=$("${D[@]}" release --mode smart --image app:v3) || die "smart release failed: $SMART"
  log "smart: $SMART"
fi
LOAD=$(uptime)
# the discrete-event simulation of the same world, in its own seconds: ×10 ms is the factor to compare
SCALE=$(awk -v m="$START_MS" 'BEGIN{print m/20000}')
LINK=$(awk -v p="$PULL_MS" -v s="$SCALE" 'BEGIN{printf "%.4f", 256*1048576*8/(p/s/1000)/1e6}')
DES=$(node dist/bench/release/run.js --instances "$N" --hosts "$H" --window "$W" --seed "$SEED" --link-mbit "$LINK" --format json)
jget() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$2"; }
des() { # $1 policy name, $2 field: scaled to the run's time
  node -e 'const d=JSON.parse(require("fs").readFileSync(0,"utf8")); const r=d.results.find(x=>x.policy===process.argv[1]); const v=r[process.argv[2]]; console.log(process.argv[2].endsWith("S") ? (v*Number(process.argv[3])).toFixed(1) : v)' "$1" "$2" "$SCALE" <<<"$DES"
}
{
  echo "$N instances on $H simulated hosts, W = $W; start lognormal median $START_MS ms sigma 0.5, 1 % hosts 10 × slower, 0.5 % fail once; pull $PULL_MS ms × P2P stretch; seed $SEED"
  echo "create: $(jget seconds "$CREATE") s to $N running; load at the end: ${LOAD##*load average: }"
  echo
  echo "| release | where | total (s) | 50 % (s) | 99 % (s) | 100 % (s) | max unavailable | pulls on the critical path | pulls | start failures / retries |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for m in docker smart; do
    if [ $m = docker ]; then r=$DOCKER p="Docker's update"; else r=$SMART p="smart + pre-pull"; fi
    [ -n "$r" ] && echo "| $p | manager + simulator | $(jget totalS "$r") | $(jget t50S "$r") | $(jget t99S "$r") | $(jget t100S "$r") | $(jget maxUnavailable "$r") | $(jget criticalPulls "$r") | $(jget pulls "$r") | $(jget startFailures "$r") |"
    echo "| $p | discrete-event (× $SCALE) | $(des "$p" totalS) | $(des "$p" t50S) | $(des "$p" t99S) | $(des "$p" t100S) | $(des "$p" maxUnavailable) | $(des "$p" criticalPulls) | $(des "$p" pulls) | $(des "$p" retries) |"
  done
  echo "| lockstep batches | discrete-event (× $SCALE) | $(des 'lockstep batches' totalS) | $(des 'lockstep batches' t50S) | $(des 'lockstep batches' t99S) | $(des 'lockstep batches' t100S) | $(des 'lockstep batches' maxUnavailable) | $(des 'lockstep batches' criticalPulls) | $(des 'lockstep batches' pulls) | $(des 'lockstep batches' retries) |"
  echo
  echo "- smart: state $(jget state "$SMART"), stragglers $(jget stragglers "$SMART"), pre-pulled hosts $(jget prePulled "$SMART")"
  echo "- discrete-event lockstep total: $(des 'lockstep batches' totalS) s; smart / Docker here: $(ratio "$(jget totalS "$SMART")" "$(jget totalS "$DOCKER")"), there: $(ratio "$(des 'smart + pre-pull' totalS)" "$(des "Docker's update" totalS)")"
} | tee "${OUT:-/dev/null}"
