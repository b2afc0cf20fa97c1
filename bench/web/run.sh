#!/usr/bin/env bash
# The dashboard at scale (issue 20, "Scale"): a real etcd, one real manager with --ui-listen, and BENCH_HOSTS
# (30000) simulated engines (bench/cluster/sim.ts, through node relays of BENCH_SHARD engines each, as
# bench/cluster/run.sh does); an admin browser token from `sampan cluster token --ui`; then headless chromium
# (bench/web/measure.ts) opens the dashboard: first render, the virtualised hosts table, scrolling, search, and
# how many live streams the page opened. The manager's CPU while one page watches is sampled too.
# Usage (from the repo root, as root, after npm run build):  bash bench/web/run.sh
# Env: BENCH_HOSTS (30000)  BENCH_SHARD (15000)  BENCH_CONTAINERS (1 per engine)  BENCH_JOIN_TIMEOUT (900 s)
#      BENCH_SETTLE (30 s after the last join: the manager is still indexing the engines' snapshots then)
#      BENCH_RUNS (3: a fresh browser each; one JSON line each)  BENCH_SHOTS=DIR (screenshots of the first run)
# Results: docs/benchmarks.md ("Dashboard: scale").
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
cd "$(dirname "$0")/../.."

N=${BENCH_HOSTS:-30000}
SHARD=${BENCH_SHARD:-15000}
PER=${BENCH_CONTAINERS:-1}
JOIN_TIMEOUT=${BENCH_JOIN_TIMEOUT:-900}
T=$(mktemp -d /tmp/sampan-webbench.XXXXXX)
TOKEN=bench-token-$(head -c8 /dev/urandom | od -An -tx1 | tr -d ' \n')
PIDS=()
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}" 10; done
  rm -rf "$T"
}
trap cleanup EXIT
[ -f dist/bench/web/measure.js ] && [ -f dist/web/index.html ] || die "build first: npm run build"
[ -x /usr/bin/chromium ] || die "chromium is not installed (scripts/setup.sh)"
ulimit -n "$(ulimit -Hn)"

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
etcd --data-dir "$T/etcd" --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
  --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-cluster "default=http://127.0.0.1:$((port + 1))" --quota-backend-bytes $((8 << 30)) >"$T/etcd.log" 2>&1 &
PIDS+=($!)
uiport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
sleep 2
node bin/sampan cluster manager --pool 10.0.0.0/8 --network-size 9 --block-size 26 --lease-ttl 10 --etcd "http://127.0.0.1:$port" \
  --listen "unix://$T/cluster.sock" --node-listen "unix://$T/node.sock" --ui-listen "127.0.0.1:$uiport" --name web --join-token "$TOKEN" >"$T/manager.log" 2>&1 &
MGR=$!; PIDS+=($MGR)
wait_ping "$T/cluster.sock" 30 || die "the manager did not start: $(tail -5 "$T/manager.log")"
shards=$(( (N + SHARD - 1) / SHARD ))
for ((i = 0; i < shards; i++)); do
  first=$((i * SHARD)); size=$(( N - first < SHARD ? N - first : SHARD ))
  join="unix://$T/node.sock"
  if [ "$shards" -gt 1 ]; then
    node bin/sampan cluster relay --manager "unix://$T/node.sock" --listen "unix://$T/relay-$i.sock" >"$T/relay-$i.log" 2>&1 &
    PIDS+=($!); join="unix://$T/relay-$i.sock"
    for _ in $(seq 100); do [ -S "$T/relay-$i.sock" ] && break; sleep 0.1; done
  fi
  node --max-old-space-size=4096 dist/bench/cluster/sim.js --join "$join" --token "$TOKEN" --engines "$size" --first "$first" --containers "$PER" \
    --start-latency 50 --ctl "$T/sim-$i.sock" >"$T/sim-$i.log" 2>&1 &
  PIDS+=($!)
done
joined() { curl -s --unix-socket "$T/cluster.sock" http://x/sampan/v1/summary | sed -n 's/.*"up":\([0-9]*\).*/\1/p'; }
t0=$(date +%s)
until [ "$(joined)" = "$N" ]; do
  [ $(( $(date +%s) - t0 )) -ge "$JOIN_TIMEOUT" ] && die "only $(joined) of $N engines joined in $JOIN_TIMEOUT s"
  sleep 2
done
log "all $N engines up after $(( $(date +%s) - t0 )) s"
sleep "${BENCH_SETTLE:-30}"
UI_TOKEN=$(bin/sampan cluster token --ui --role admin --etcd "http://127.0.0.1:$port" --name web)
for ((r = 1; r <= ${BENCH_RUNS:-3}; r++)); do
  a=$(awk '{print $14+$15}' "/proc/$MGR/stat")
  ta=$(date +%s.%N)
  RES=$(node dist/bench/web/measure.js "http://127.0.0.1:$uiport/ui/" "$UI_TOKEN" "$N") || die "measure failed"
  b=$(awk '{print $14+$15}' "/proc/$MGR/stat")
  tb=$(date +%s.%N)
  cpu=$(awk -v a="$a" -v b="$b" -v s="$ta" -v e="$tb" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.0f", (b-a)/hz/(e-s)*100}')
  echo "$RES" | sed "s/}\$/,\"run\":$r,\"load1\":$(cut -d' ' -f1 /proc/loadavg),\"managerCpuPctWhileOpen\":$cpu,\"managerRssMb\":$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$MGR/status)}/"
  unset BENCH_SHOTS
done
