#!/usr/bin/env bash
# Cluster HA (issue 18, "Measure"): on `sampan cluster testbed --clusters 2 --hosts 1 --managers 2 --etcd-members 3`
# (two clusters of one host and two managers each, a 3-member etcd, the SwarmProxy in front), bench/cluster-ha/ha.ts
# keeps BENCH_RATE requests/s (ps, inspect, create: 4:4:2) going through the proxy with cluster c1's client
# certificate while c1's leader is
#   1. switched gracefully BENCH_SWITCHES times (`sampan cluster switch`): the old leader's last answer to the new
#      one's first (each answer names its manager: X-Sampan-Manager), p50/p99, and the longest time between two
#      answers around each switch next to the load's own longest gap in a quiet window of the same length; requests
#      failed and retried (target: p99 ≤ 50 ms, none failed);
#   2. killed -9 BENCH_CRASHES times (then started again as the standby): the time from the kill to the first
#      create answered after it, p50/p99 (target ≤ 2 s); requests failed and retried; how many crashes the standby
#      took by the fast path (its liveness link ended, a reconnect refused: it revoked the dead leader's lease);
# then every create answered 201 is counted on the engines: each exactly once (target: none lost, none twice); and
#   3. etcd's own election on this machine, the floor: a 3-member etcd of its own (the testbed's flags: etcd's
#      defaults, 100 ms heartbeat, 1 s election timeout), its leader killed -9 BENCH_ETCD_ROUNDS times, the time
#      until a survivor reports a new leader (POST /v3/maintenance/status, what `etcdctl endpoint status` asks).
# Usage (from the repo root, as root, after npm run build):  bash bench/cluster-ha/run.sh
# Env: BENCH_RATE (60)  BENCH_SWITCHES (20)  BENCH_CRASHES (20)  BENCH_ETCD_ROUNDS (20)
#      BENCH_OUT=FILE also writes the table (markdown) to FILE;  KEEP_LOGS=DIR keeps the testbed's logs
#      BENCH_TMP=DIR where the testbed and its etcd data go (/tmp; /dev/shm takes the disk's fsync out)
# Results: docs/benchmarks.md ("Cluster: HA").
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
cd "$(dirname "$0")/../.."

RATE=${BENCH_RATE:-60}
SWITCHES=${BENCH_SWITCHES:-20}
CRASHES=${BENCH_CRASHES:-20}
ETCD_ROUNDS=${BENCH_ETCD_ROUNDS:-20}
OUT=${BENCH_OUT:-}
T=$(mktemp -d "${BENCH_TMP:-/tmp}/chab.XXXXXX") # short: the testbed's attach sockets live under it
TB_PID=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  log "cleaning up $T"
  [ -n "$TB_PID" ] && stop_pid "$TB_PID" 180
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp -r "$T"/*.log "$T"/tb/managers "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -f dist/bench/cluster-ha/ha.js ] || die "build first: npm run build"
command -v etcd >/dev/null || die "etcd is not installed"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $LOAD_BEFORE"
node bin/sampan cluster testbed --clusters 2 --hosts 1 --managers 2 --etcd-members 3 --dir "$T/tb" >"$T/tb.log" 2>&1 &
TB_PID=$!
for ((i = 0; i < 900; i++)); do grep -q '^ready' "$T/tb.log" && break; kill -0 "$TB_PID" 2>/dev/null || break; sleep 0.2; done
grep -q '^ready' "$T/tb.log" || die "the testbed did not start: $(tail -5 "$T/tb.log")"
for s in "$T"/tb/hosts/*/engine.sock; do node bin/sampan image seed --host "unix://$s" >/dev/null || die "seeding $s failed"; done

log "load: $RATE requests/s through the proxy; $SWITCHES switches, $CRASHES crashes, $ETCD_ROUNDS etcd elections"
RES=$(node dist/bench/cluster-ha/ha.js --testbed "$T/tb" --rate "$RATE" --switches "$SWITCHES" --crashes "$CRASHES" --etcd-rounds "$ETCD_ROUNDS" 2>"$T/ha.log") || die "the driver failed: $(tail -5 "$T/ha.log")"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
log "result: $RES"
j() { jq -r "$@" <<<"$RES"; }
{
  echo "| measure | p50 | p99 | max | n | failed / retried requests (of those touched) | target |"
  echo "|---|---|---|---|---|---|---|"
  echo "| graceful switch: the old leader's last answer to the new one's first, ms | $(j .graceful.p50) | $(j .graceful.p99) | $(j .graceful.max) | $(j .graceful.n) | $(j .graceful.failed) / $(j .graceful.retried) (of $(j .graceful.requests)) | p99 ≤ 50 ms, 0 failed |"
  echo "| graceful switch: the longest time between two answers around it, ms | $(j .graceful.gapMs.p50) | $(j .graceful.gapMs.p99) | $(j .graceful.gapMs.max) | $(j .graceful.gapMs.n) | | |"
  echo "| the load's own longest gap, quiet window of the same length, ms | $(j .graceful.quietGapMs.p50) | $(j .graceful.quietGapMs.p99) | $(j .graceful.quietGapMs.max) | $(j .graceful.quietGapMs.n) | | (resolution) |"
  echo "| crash (kill -9 of the leader) to the first write answered, ms | $(j .crash.p50) | $(j .crash.p99) | $(j .crash.max) | $(j .crash.n) | $(j .crash.failed) / $(j .crash.retried) (of $(j .crash.requests)); fast path $(j .crash.fastPath) of $(j .crash.n) | ≤ 2000 ms |"
  echo "| etcd's own election (kill -9 of its leader to a new leader reported), ms | $(j .etcdElectionMs.p50) | $(j .etcdElectionMs.p99) | $(j .etcdElectionMs.max) | $(j .etcdElectionMs.n) | | (the floor) |"
  echo
  echo "- load: $(j .load.requests) requests over $(j .load.seconds) s ($(j .load.perSec)/s: $(j -c .load.byOp)), $(j .load.failed) failed, $(j .load.retried) retried, $(j .load.conflictAfterRetry) creates answered 409 on a retry (their first attempt had landed); latency p50 $(j .load.latencyMs.p50) ms, p99 $(j .load.latencyMs.p99) ms"
  echo "- writes: $(j .writes.created) creates answered 201; on the engines $(j .writes.onEngines) ha-* containers: $(j .writes.lost) lost, $(j .writes.duplicated) twice, $(j .writes.orphans) from requests that failed (target: 0 lost, 0 twice)"
  echo "- load average (1, 5, 15 min): $LOAD_BEFORE before, $LOAD_AFTER after"
} | tee "${OUT:-/dev/null}"
