#!/usr/bin/env bash
# P2P distribution on emulated hosts (issue 6). Builds hosts on this one machine (bench/p2p/net.sh: a network
# namespace per host, veth pairs to one bridge, upload and download of every host capped with tc tbf at
# P2P_RATE; the registry in its own namespace with the same cap; the scheduler in one of its own), then for each
# N in P2P_NS:
#   - P2P: N hosts, each with a fresh `sampan p2p peer` (cold piece store), pull one P2P_SIZE_MB MiB blob of
#     random bytes through their peer at the same instant (curl in the host's namespace, the bytes piped into
#     a SHA-256 digest when P2P_VERIFY=1); P2P_RUNS times, a fresh scheduler and fresh peers each time
#   - direct: the same N pulls straight from the registry, P2P_DIRECT_RUNS times, after the fault runs; by
#     default every N at once, each N with a registry (same cap) and hosts of its own
# then, at N = P2P_FAULT_N, the fault runs in P2P_FAULTS:
#   kill-seed    the task's seed is killed (SIGKILL) once it holds 30 % of the pieces and has children
#   kill-parent  the unfinished non-seed peer with the most children is killed once it holds 30 %
#   corrupt      a liar (bench/p2p/liar.mjs, in namespace spb-bad, same cap) announces itself as a finished peer
#                once the seed has reported digests and serves noise for every piece
# Recorded per run: each pull's completion time (from the common start), HTTP status, bytes and digest; what the
# registry sent (payload: its sampan_registry_http_sent_bytes_total; wire: tx_bytes of its veth); the peers'
# P2P metrics; the scheduler's view of the task; CPU idle of the machine (/proc/stat) and CPU used by the
# benchmark's own processes (a cpuacct cgroup). bench/p2p/report.mjs turns that into a markdown table, an SVG
# plot (completion time vs N: P2P, direct, bound) and the verdict against the issue's targets.
#
# Usage (as root, from anywhere):  bash bench/p2p/run.sh
# Env: P2P_NS ("4 8 16 32")  P2P_RUNS (3)  P2P_DIRECT_RUNS (1)  P2P_RATE (12mbit, tc syntax: kbit|mbit|gbit; at 12mbit the 2 CPUs stay over 30 % idle up to N = 16)
#      P2P_SIZE_MB (256)  P2P_FAULT_N (16)  P2P_FAULTS ("kill-seed kill-parent corrupt"; "" for none)
#      P2P_VERIFY (1: sha256 of every pull)  P2P_DIRECT (1; 0 skips the direct baseline)
#      P2P_DIRECT_PARALLEL (1: every N's direct baseline at once, each on a registry of its own; 0: one N after another)
#      P2P_CALIBRATE (1: one lone direct pull first, the goodput a host gets at P2P_RATE)
#      P2P_OUT (raw data, logs and the table; default /tmp/spb-results-DATE)  P2P_SVG (write the plot there,
#      e.g. docs/img/p2p-completion.svg)  P2P_DOCS=FILE (replace the block between <!-- p2p-bench:begin -->
#      and <!-- p2p-bench:end --> in FILE with the table; P2P_DOCS_BLOCK names another block)
#      P2P_PEER_ARGS / P2P_SCHED_ARGS (extra flags)
#      P2P_BURST (tbf burst, 64kb)
# Results and how to read them: docs/benchmarks.md, "P2P distribution on emulated hosts".
# Everything is in namespaces spb-*, the bridge spbbr0 and a tmpfs under a temp dir; all of it goes at exit.
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
# bash reads a script as it runs it: run from a private copy, so that editing bench/p2p meanwhile is harmless
if [ -z "${SPB_SELF_COPY:-}" ]; then
  c=$(mktemp -d /tmp/spb-script.XXXXXX) || exit 1
  mkdir -p "$c/bench/p2p" && cp "$HERE"/*.sh "$HERE"/*.mjs "$c/bench/p2p/" && cp "$HERE/../lib.sh" "$c/bench/" || exit 1
  SPB_SELF_COPY=$c SPB_REPO=$(cd "$HERE/../.." && pwd) exec bash "$c/bench/p2p/run.sh" "$@"
fi
source "$HERE/../lib.sh"
source "$HERE/net.sh"
ROOT=$SPB_REPO
cd "$ROOT" || exit 1

NS_LIST=${P2P_NS-"4 8 16 32"}
RUNS=${P2P_RUNS:-3}
DIRECT_RUNS=${P2P_DIRECT_RUNS:-1}
SPB_RATE=${P2P_RATE:-12mbit}
SPB_BURST=${P2P_BURST:-64kb}
SPB_QDISC=${P2P_QDISC:-prio} # prio: small packets first (like fq_codel for ACKs); fifo: one shared FIFO (see net.sh)
SPB_CC=${P2P_CC-cubic} # TCP congestion control of the emulated hosts ("": this machine's default)
SIZE_MB=${P2P_SIZE_MB:-256}
FAULT_N=${P2P_FAULT_N:-16}
FAULTS=${P2P_FAULTS-"kill-seed kill-parent corrupt"}
VERIFY=${P2P_VERIFY:-1}
DIRECT=${P2P_DIRECT:-1}
DIRECT_PAR=${P2P_DIRECT_PARALLEL:-1}
CALIBRATE=${P2P_CALIBRATE:-1}
OUT=${P2P_OUT:-/tmp/spb-results-$(date +%Y%m%d-%H%M%S)}
SVG=${P2P_SVG:-}
DOCS=${P2P_DOCS:-}
DOCS_BLOCK=${P2P_DOCS_BLOCK:-}
PEER_ARGS=${P2P_PEER_ARGS:-}
PEER_ENV=${P2P_PEER_ENV:-} # e.g. SAMPAN_P2P_PEER_STALL_SECONDS=60 (settings that have no flag)
SCHED_ARGS=${P2P_SCHED_ARGS:-}
KILL_AT=${P2P_KILL_AT:-30} # % of the pieces the victim holds when it is killed
HANG_GRACE=${P2P_HANG_GRACE:-60}

[ "$(id -u)" = 0 ] || die "run as root (namespaces, tc)"
for b in ip tc iptables curl jq node sha256sum; do command -v "$b" >/dev/null || die "$b is missing"; done
[ -f dist/src/cli/main.js ] || die "dist/ missing: build first (npx tsc -p tsconfig.json)"
RATE_BPS=$(awk -v r="$SPB_RATE" 'BEGIN{ if (match(r, /^[0-9.]+/) == 0) exit 1; v = substr(r, 1, RLENGTH); u = substr(r, RLENGTH + 1)
  m = (u == "kbit") ? 1e3 : (u == "mbit") ? 1e6 : (u == "gbit") ? 1e9 : (u == "bit") ? 1 : -1; if (m < 0) exit 1; printf "%.0f", v * m / 8 }') ||
  die "P2P_RATE must be like 25mbit (kbit|mbit|gbit)"
SIZE=$((SIZE_MB * 1048576))
SPB_RATE_BPS=$RATE_BPS
MAXN=1 # hosts to build: the largest N, the fault runs' N, and one for the calibration
for n in $NS_LIST ${FAULTS:+$FAULT_N}; do [ "$n" -gt "$MAXN" ] && MAXN=$n; done
NREG=0 # the parallel direct baseline's extra registries, one per N, each with hosts of its own
if [ "$DIRECT" = 1 ] && [ "$DIRECT_PAR" = 1 ]; then
  n=0
  for i in $NS_LIST; do n=$((n + i)) NREG=$((NREG + 1)); done
  [ "$n" -gt "$MAXN" ] && MAXN=$n
fi
[ -n "$(spb_leftovers)" ] && die "leftovers of another bench/p2p run (another one running?):$(spb_leftovers | tr '\n' ' ')"

T=$(mktemp -d /tmp/spb.XXXXXX) || die "mktemp failed"
FS=$T/fs
mkdir -p "$FS" "$OUT/raw"
CG=/sys/fs/cgroup/cpuacct/spb-bench.$$
CG_HOME=$(awk -F: '$2 ~ /(^|,)cpuacct(,|$)/{print $3; exit}' /proc/self/cgroup)
SAMPLER_PID="" PROG_PID="" REG_PID="" SCHED_PID="" LIAR_PID="" REG_PIDS=()
declare -A PEER_PID
PULLS=()

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  log "cleaning up"
  for i in $SAMPLER_PID $PROG_PID; do kill "$i" 2>/dev/null; done
  # everything else runs inside our namespaces (pulls, peers, scheduler, registry, liar): killed by PID there
  { spb_net_down; for i in $SAMPLER_PID $PROG_PID $REG_PID "${REG_PIDS[@]}" $SCHED_PID $LIAR_PID "${PEER_PID[@]}" "${PULLS[@]}"; do wait "$i"; done; } 2>/dev/null
  if [ -n "$CG" ] && [ -d "$CG" ]; then
    echo $$ >"/sys/fs/cgroup/cpuacct${CG_HOME}/cgroup.procs" 2>/dev/null
    for i in $(seq 1 20); do rmdir "$CG" 2>/dev/null && break; sleep 0.25; done
    [ -d "$CG" ] && log "could not remove cgroup $CG"
  fi
  grep " $T" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$T" "$SPB_SELF_COPY"
  local left
  left=$(spb_leftovers)
  [ -n "$left" ] && log "WARNING: left behind: $left"
  log "raw data, logs and the table: $OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------- the code under test, pinned ----------
# others may rebuild dist/ while this runs (hours): every run must use the same build, so bin/ and dist/ are copied
SNAP=$T/snap
mkdir -p "$SNAP" && cp -r bin dist package.json "$SNAP"/ && ln -s "$ROOT/node_modules" "$SNAP/node_modules" || die "cannot copy the build"
SAMPAN=$SNAP/bin/sampan
BUILD_AT=$(date -u -r dist/src/p2p/peer/task.js '+%Y-%m-%d %H:%M UTC')
STALE=$(for f in src/p2p/*/*.ts src/p2p/*.ts; do j=dist/${f%.ts}.js; [ "$f" -nt "$j" ] && echo "${f#src/p2p/}"; done | tr '\n' ' ')
[ -n "$STALE" ] && log "WARNING: dist/ is older than src/p2p files: $STALE(run npx tsc -p tsconfig.json first?)"

# ---------- scratch space, CPU accounting, the network ----------
# pieces live in memory: the disk must not be what limits 32 peers writing at once
mount -t tmpfs -o size=$(((MAXN + 3) * SIZE_MB + 1024))m spb-bench "$FS" || die "cannot mount a tmpfs"
if mkdir "$CG" 2>/dev/null && echo $$ >"$CG/cgroup.procs"; then :; else log "WARNING: no cpuacct cgroup: the benchmark's own CPU use is not measured"; CG=""; fi
cg_ns() { if [ -n "$CG" ]; then cat "$CG/cpuacct.usage"; else echo 0; fi; }
( while :; do echo "$(cpu_sample) $(cg_ns)"; sleep 0.5; done ) >"$OUT/cpu.log" &
SAMPLER_PID=$!

log "building the network: registry, scheduler, corrupt-peer and $MAXN host namespaces at $SPB_RATE each way"
spb_net_up "$MAXN" || die "could not build the network"
for ((i = 1; i <= NREG; i++)); do spb_ns_add "spb-reg$i" "$(spb_reg_ip "$i")" "spbv-reg$i" 1 "$SPB_REG_QUEUE_MS" || die "could not build the network"; done
REG=$SPB_PREFIX.0.2 SCHED=$SPB_PREFIX.0.3 BAD=$SPB_PREFIX.0.4

# ---------- registry and blob ----------
mkdir -p "$FS/registry" "$OUT/raw/setup"
ip netns exec spb-reg "$SAMPAN" registry --root "$FS/registry" --addr 0.0.0.0:5000 --log-level warn 2>"$OUT/raw/setup/registry.log" &
REG_PID=$!
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
wait_url() { # NS URL SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do in_ns "$1" curl -fs -o /dev/null -m 1 "$2" && return 0; sleep 0.1; done
  return 1
}
wait_url spb-reg http://127.0.0.1:5000/v2/ 30 || die "the registry did not come up: $(tail -5 "$OUT/raw/setup/registry.log")"
log "pushing a $SIZE_MB MiB blob of random bytes"
head -c "$SIZE" /dev/urandom >"$FS/blob"
DIGEST=sha256:$(sha256sum "$FS/blob" | cut -d' ' -f1)
code=$(in_ns spb-reg curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/octet-stream' \
  --data-binary "@$FS/blob" "http://127.0.0.1:5000/v2/bench/p2p/blobs/uploads/?digest=$DIGEST")
[ "$code" = 201 ] || die "push failed: HTTP $code"
rm -f "$FS/blob"
BLOB_PATH=/v2/bench/p2p/blobs/$DIGEST
log "blob $DIGEST ($SIZE bytes)"
reg_sent() { in_ns "${1:-spb-reg}" curl -s -m 5 http://127.0.0.1:5000/metrics | awk '/^sampan_registry_http_sent_bytes_total /{printf "%.0f", $2}'; }
# the parallel direct baseline's registries serve the same storage (read-only from here on)
REG_PIDS=()
for ((i = 1; i <= NREG; i++)); do
  ip netns exec "spb-reg$i" "$SAMPAN" registry --root "$FS/registry" --addr 0.0.0.0:5000 --log-level warn 2>"$OUT/raw/setup/registry$i.log" &
  REG_PIDS+=($!)
done
for ((i = 1; i <= NREG; i++)); do
  wait_url "spb-reg$i" "http://127.0.0.1:5000$BLOB_PATH" 30 || die "registry $i did not come up: $(tail -5 "$OUT/raw/setup/registry$i.log")"
done

# F/u: the bound for every N here, since u_registry = u = d (max(F/u, F/d, N F/((N+1) u)) = F/u)
FU=$(awk -v f="$SIZE" -v u="$RATE_BPS" 'BEGIN{printf "%.2f", f/u}')
cat >"$OUT/params.json" <<EOF
{"size": $SIZE, "sizeMiB": $SIZE_MB, "rate": "$SPB_RATE", "rateBytesPerSec": $RATE_BPS, "burst": "$SPB_BURST", "qdisc": "$SPB_QDISC", "cc": "${SPB_CC:-$(sysctl -n net.ipv4.tcp_congestion_control) (default)}", "runs": $RUNS,
 "directRuns": $DIRECT_RUNS, "ns": [$(echo $NS_LIST | tr ' ' ',')], "faultN": $FAULT_N, "faults": "$FAULTS", "verify": $VERIFY, "regQueueMs": $SPB_REG_QUEUE_MS, "directParallel": $([ "$DIRECT_PAR" = 1 ] && echo true || echo false),
 "digest": "$DIGEST", "date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "cpus": $(nproc),
 "machine": "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)",
 "versions": "node $(node --version), curl $(curl --version | head -1 | cut -d' ' -f2), $(tc -V | sed 's/.*iproute2-/iproute2 /;s/,.*//'), sampan $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/'), dist/ built $BUILD_AT${STALE:+ (older than $STALE)}",
 "peerArgs": "$PEER_ARGS", "peerEnv": "$PEER_ENV", "schedArgs": "$SCHED_ARGS"}
EOF
: >"$OUT/runs.tsv"
: >"$OUT/pulls.tsv"
log "F/u = $FU s at $SPB_RATE; results in $OUT"

# ---------- scheduler, peers, liar ----------
start_sched() { # DIR
  ip netns exec spb-sched "$SAMPAN" p2p scheduler --listen 0.0.0.0:65003 $SCHED_ARGS 2>"$1/scheduler.log" &
  SCHED_PID=$!
  wait_url spb-sched http://127.0.0.1:65003/healthz 30 || die "the scheduler did not come up: $(tail -5 "$1/scheduler.log")"
}
start_peers() { # N DIR
  local n=$1 dir=$2 i ip
  for ((i = 1; i <= n; i++)); do
    rm -rf "$FS/peers/h$i"
    mkdir -p "$FS/peers/h$i"
    ip=$(spb_host_ip "$i")
    env $PEER_ENV ip netns exec "spb-h$i" "$SAMPAN" p2p peer --scheduler "http://$SCHED:65003" --upstream "http://$REG:5000" \
      --root "$FS/peers/h$i" --listen 127.0.0.1:65001 --peer-listen 0.0.0.0:65002 --advertise "http://$ip:65002" \
      --peer-id "h$i" $PEER_ARGS 2>"$dir/h$i.log" &
    PEER_PID[$i]=$!
  done
  for ((i = 1; i <= n; i++)); do
    wait_url "spb-h$i" http://127.0.0.1:65001/healthz 60 || die "peer h$i did not come up: $(tail -5 "$dir/h$i.log")"
  done
}
stop_daemons() { # everything but the registry; their state is thrown away, so no need to be gentle
  local p pids=()
  for p in "${PEER_PID[@]}" $SCHED_PID $LIAR_PID; do kill -KILL "$p" 2>/dev/null && pids+=("$p"); done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  PEER_PID=() SCHED_PID="" LIAR_PID=""
  rm -rf "$FS/peers"
}
# every second while the pulls run: "SECONDS_SINCE_START peer:pieces:children ..." from the scheduler's view
progress_watch() {
  while :; do
    echo "$(awk -v a="$START_US" -v b="$(now_us)" 'BEGIN{printf "%.1f", (b-a)/1e6}') $(task_view | jq -r '[.peers[] | "\(.peerId):\(.pieces):\(.children)\(if .role == "seed" then ":seed" else "" end)\(if .backToSource then ":bts" else "" end)"] | join(" ")' 2>/dev/null)"
    sleep 1
  done
}
task_view() { in_ns spb-sched curl -s -m 3 "http://127.0.0.1:65003/api/v1/tasks/$DIGEST"; }

# CPU over [T0, T1] (us) from cpu.log: "machine idle %, min idle % over any 5 s, benchmark CPU % of all CPUs"
cpu_window() {
  awk -v t0="$1" -v t1="$2" -v ncpu="$(nproc)" '
    $1 >= t0 && $1 <= t1 { n++; t[n]=$1; id[n]=$2; tot[n]=$3; cg[n]=$4 }
    END {
      if (n < 2) { print "- - -"; exit }
      idle = 100*(id[n]-id[1])/(tot[n]-tot[1]); bench = (cg[n]-cg[1])/1e9 / ((t[n]-t[1])/1e6 * ncpu) * 100
      mn = idle; j = 1
      for (i = 1; i <= n; i++) {
        while (j < n && t[j+1] <= t[i] + 5e6) j++
        if (t[j] - t[i] >= 4.5e6 && tot[j] > tot[i]) { v = 100*(id[j]-id[i])/(tot[j]-tot[i]); if (v < mn) mn = v }
      }
      printf "%.1f %.1f %.1f\n", idle, mn, bench
    }' "$OUT/cpu.log"
}

# the peers' counters, summed: peer_in upstream_in served busy_answers fail_digest fail_gone back_to_source
peer_totals() { # N DIR
  local i
  for ((i = 1; i <= $1; i++)); do
    in_ns "spb-h$i" curl -s -m 5 http://127.0.0.1:65001/metrics 2>/dev/null | awk -v h="h$i" '
      /^sampan_p2p_peer_bytes_received_total\{source="peer"\}/{pi=$2} /^sampan_p2p_peer_bytes_received_total\{source="upstream"\}/{ui=$2}
      /^sampan_p2p_peer_bytes_served_total /{so=$2} /^sampan_p2p_peer_busy_answers_total /{bu=$2}
      /^sampan_p2p_peer_piece_failures_total\{reason="digest"\}/{fd=$2} /^sampan_p2p_peer_piece_failures_total\{reason="gone"\}/{fg=$2}
      /^sampan_p2p_peer_back_to_source_total /{bs=$2}
      END{printf "%s %.0f %.0f %.0f %.0f %.0f %.0f %.0f", h, pi, ui, so, bu, fd, fg, bs}'
    # CPU seconds the peer process used (utime + stime), and its peak RSS in MiB
    awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf " %.1f", ($12 + $13) / hz}' "/proc/${PEER_PID[$i]}/stat" 2>/dev/null || printf ' -'
    awk '/^VmHWM:/{printf " %.0f", $2/1024}' "/proc/${PEER_PID[$i]}/status" 2>/dev/null || printf ' -'
    echo
  done >"$2/peers.tsv"
  awk '{for(k=2;k<=8;k++) s[k]+=$k} END{printf "%.0f %.0f %.0f %.0f %.0f %.0f %.0f\n", s[2],s[3],s[4],s[5],s[6],s[7],s[8]}' "$2/peers.tsv"
}

# kill_watch MODE N DIR: SIGKILL the victim (kill-seed: the seed; kill-parent: the unfinished non-seed peer with
# the most children) once it holds KILL_AT % of the pieces and has children; writes "host pieces/total children at_s"
kill_watch() {
  local mode=$1 n=$2 dir=$3 v line id pieces children total sel i
  if [ "$mode" = kill-seed ]; then sel='[.peers[] | select(.role == "seed")]'
  else sel='[.peers[] | select(.role != "seed" and (.finished | not) and .peerId != "liar")] | sort_by(-.children)'; fi
  while :; do
    v=$(task_view)
    line=$(jq -r "($sel | .[0]) as \$p | \"\(.meta.pieces // 0) \(\$p.peerId // \"-\") \(\$p.pieces // 0) \(\$p.children // 0)\"" <<<"$v" 2>/dev/null)
    read -r total id pieces children <<<"$line"
    if [ "${total:-0}" -gt 0 ] && [ "${id:--}" != - ] && [ $((pieces * 100)) -ge $((KILL_AT * total)) ] && [ "$children" -gt 0 ]; then
      i=${id#h}
      kill -KILL "${PEER_PID[$i]}" 2>/dev/null
      echo "$i $pieces/$total $children $(awk -v a="$START_US" -v b="$(now_us)" 'BEGIN{printf "%.1f", (b-a)/1e6}')" >"$dir/victim"
      echo "$v" >"$dir/task-at-kill.json"
      log "  killed $id ($mode) holding $pieces of $total pieces, with $children children"
      return 0
    fi
    for i in "${PULLS[@]}"; do kill -0 "$i" 2>/dev/null && break; done || return 1
    sleep 0.25
  done
}

# Waits for the pulls. A pull whose peer logged "download failed" and that is still running HANG_GRACE s later
# never ends on its own (the peer does not close the stream of a failed download): its curl is killed and the
# host noted in DIR/hung.
watch_pulls() { # N DIR
  local n=$1 dir=$2 i p alive
  local -A failed_at=()
  while :; do
    alive=0
    for ((i = 1; i <= n; i++)); do
      kill -0 "${PULLS[$((i - 1))]}" 2>/dev/null || continue
      alive=1
      [ "$kind" = direct ] && continue
      if [ -z "${failed_at[$i]:-}" ] && grep -q '"msg":"download failed"' "$dir/h$i.log" 2>/dev/null; then failed_at[$i]=$SECONDS; fi
      if [ -n "${failed_at[$i]:-}" ] && [ $((SECONDS - failed_at[$i])) -ge "$HANG_GRACE" ]; then
        for p in $(ip netns pids "spb-h$i" 2>/dev/null); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = curl ] && kill "$p" 2>/dev/null; done
        echo "h$i $(awk -v a="$START_US" -v b="$(now_us)" 'BEGIN{printf "%.0f", (b-a)/1e6}')" >>"$dir/hung"
        log "  h$i: its peer's download failed ${HANG_GRACE}s ago and the pull still hangs: curl killed"
        failed_at[$i]=999999999
      fi
    done
    [ $alive = 0 ] && return 0
    sleep 2
  done
}

# one run: KIND (p2p|direct|kill-seed|kill-parent|corrupt) N RUN
run_one() {
  local kind=$1 n=$2 r=$3 dir i url max t1 rs rt rs1 rt1 totals victim=- lies=-
  dir=$OUT/raw/$kind-n$n-r$r
  mkdir -p "$dir"
  if [ "$kind" != direct ]; then
    start_sched "$dir"
    start_peers "$n" "$dir"
    url=http://127.0.0.1:65001$BLOB_PATH
  else
    url=http://$REG:5000$BLOB_PATH
  fi
  if [ "$kind" = corrupt ]; then
    ip netns exec spb-bad node "$HERE/liar.mjs" --listen 0.0.0.0:65002 --advertise "http://$BAD:65002" --scheduler "http://$SCHED:65003" \
      --task "$DIGEST" --url "http://$REG:5000$BLOB_PATH" 2>"$dir/liar.log" &
    LIAR_PID=$!
  fi
  # a P2P pull slower than 12 F/u misses every target by far (and a hung one would hold the run forever)
  if [ "$kind" = direct ]; then max=$(awk -v n="$n" -v fu="$FU" 'BEGIN{printf "%d", 3*n*fu + 180}')
  else max=$(awk -v fu="$FU" 'BEGIN{printf "%d", 12*fu + 120}'); fi
  rs=$(reg_sent) rt=$(spb_tx_bytes spb-reg)
  START_US=$(($(now_us) + 1500000))
  PULLS=()
  for ((i = 1; i <= n; i++)); do
    ip netns exec "spb-h$i" bash "$HERE/pull.sh" "$START_US" "$url" "$dir/h$i.pull" "$VERIFY" "$max" &
    PULLS+=($!)
  done
  [ "$kind" != direct ] && { progress_watch >"$dir/progress.log" & PROG_PID=$!; }
  case $kind in kill-*) kill_watch "$kind" "$n" "$dir" || log "  $kind: no victim found before the pulls ended";; esac
  watch_pulls "$n" "$dir"
  wait "${PULLS[@]}"
  t1=$(now_us)
  [ -n "$PROG_PID" ] && { kill "$PROG_PID"; wait "$PROG_PID"; } 2>/dev/null
  PROG_PID=""
  sleep 1 # the last sampler tick
  rs1=$(reg_sent) rt1=$(spb_tx_bytes spb-reg)
  if [ "$kind" != direct ]; then
    totals=$(peer_totals "$n" "$dir")
    task_view >"$dir/task.json"
    in_ns spb-sched curl -s -m 3 http://127.0.0.1:65003/metrics >"$dir/scheduler.metrics"
  else
    totals="- - - - - - -"
  fi
  [ -f "$dir/victim" ] && victim=$(tr ' ' ',' <"$dir/victim")
  [ "$kind" = corrupt ] && lies=$(in_ns spb-bad curl -s -m 3 "http://127.0.0.1:65002/stats" | jq -r '.lies' 2>/dev/null)
  stop_daemons
  record_run "$kind" "$n" "$r" "$dir" "$t1" "$((rs1 - rs))" "$((rt1 - rt))" "$totals $victim ${lies:--} $(cat "$dir/hung" 2>/dev/null | wc -l)"
}

# record_run KIND N RUN DIR T1 REG_SENT REG_TX "PEER_TOTALS VICTIM LIES HUNG": the run's rows in pulls.tsv and runs.tsv
record_run() {
  local kind=$1 n=$2 r=$3 dir=$4 t1=$5 sent=$6 tx=$7 rest=$8 cpu i
  cpu=$(cpu_window "$START_US" "$t1")
  for ((i = 1; i <= n; i++)); do
    echo "$kind $n $r $i $START_US $(cat "$dir/h$i.pull" 2>/dev/null || echo "99 0 0 0 0 -")"
  done >>"$OUT/pulls.tsv"
  echo "$kind $n $r $START_US $t1 $sent $tx $cpu $rest" >>"$OUT/runs.tsv"
  awk -v k="$kind" -v n="$n" -v r="$r" -v d="${DIGEST#sha256:}" -v size="$SIZE" -v s="$START_US" -v v="$VERIFY" '
    $1==k && $2==n && $3==r { c=($8-s)/1e6; ok = ($6==0 && $9==200 && $10==size && (v!=1 || $11==d)); if (ok) { m = c > m ? c : m; good++ } else bad++ }
    END { printf "%d ok, %d failed, slowest %.1f s", good, bad, m }' "$OUT/pulls.tsv" >"$dir/summary"
  log "  $kind N=$n run $r: $(cat "$dir/summary"); registry sent $(awk -v a="$sent" -v f="$SIZE" 'BEGIN{printf "%.2f", a/f}') F; CPU idle/min5s/bench % $cpu"
}

# run_direct_all RUN: the direct baseline of every N at once, N on registry spb-regK with hosts of its own. Each N
# has its registry's link to itself, as in a run of its own, and the stage takes the longest N F/u, not their sum.
run_direct_all() {
  local r=$1 k=0 off=0 n i max dir t1
  local -a rs rt group
  START_US=$(($(now_us) + 1500000))
  PULLS=()
  for n in $NS_LIST; do
    k=$((k + 1))
    dir=$OUT/raw/direct-n$n-r$r
    mkdir -p "$dir"
    rs[k]=$(reg_sent "spb-reg$k") rt[k]=$(spb_tx_bytes "spb-reg$k")
    max=$(awk -v n="$n" -v fu="$FU" 'BEGIN{printf "%d", 3*n*fu + 180}') # as in run_one
    for ((i = 1; i <= n; i++)); do
      ip netns exec "spb-h$((off + i))" bash "$HERE/pull.sh" "$START_US" "http://$(spb_reg_ip "$k"):5000$BLOB_PATH" "$dir/h$i.pull" "$VERIFY" "$max" &
      PULLS+=($!)
      group[k]+=" $!"
    done
    off=$((off + n))
  done
  # each N recorded (and reported) as soon as its pulls are done: the small ones do not wait for N = 32
  k=0
  for n in $NS_LIST; do
    k=$((k + 1))
    dir=$OUT/raw/direct-n$n-r$r
    wait ${group[k]}
    sleep 1 # the last sampler tick
    t1=$(cat "$dir"/h*.pull 2>/dev/null | awk 'BEGIN{m=0} $3 > m {m=$3} END{print m}')
    record_run direct "$n" "$r" "$dir" "$t1" "$(($(reg_sent "spb-reg$k") - rs[k]))" "$(($(spb_tx_bytes "spb-reg$k") - rt[k]))" "- - - - - - - - - 0"
    report
  done
}

report() {
  node "$HERE/report.mjs" "$OUT" ${SVG:+--svg "$SVG"} ${DOCS:+--docs "$DOCS"} ${DOCS_BLOCK:+--block "$DOCS_BLOCK"} >"$OUT/table.md" 2>"$OUT/report.err" ||
    log "report failed: $(cat "$OUT/report.err")"
}

# ---------- the runs ----------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at the start: $LOAD_START"
if [ "$CALIBRATE" = 1 ]; then
  log "calibration: one lone direct pull"
  run_one direct 1 1
fi
# P2P first, then the faults, then the direct baseline (long: N F/u each, and light on the CPU)
for n in $NS_LIST; do
  for ((r = 1; r <= RUNS; r++)); do log "P2P N=$n run $r/$RUNS"; run_one p2p "$n" "$r"; done
  report
done
for f in $FAULTS; do
  log "fault $f at N=$FAULT_N"
  run_one "$f" "$FAULT_N" 1
  report
done
if [ "$DIRECT" = 1 ] && [ "$DIRECT_PAR" = 1 ]; then
  for ((r = 1; r <= DIRECT_RUNS; r++)); do
    log "direct N=$(echo $NS_LIST | tr ' ' ',') at once, run $r/$DIRECT_RUNS (about $(awk -v n="$(echo $NS_LIST | tr ' ' '\n' | sort -n | tail -1)" -v fu="$FU" 'BEGIN{printf "%.0f", n*fu}') s)"
    run_direct_all "$r"
  done
elif [ "$DIRECT" = 1 ]; then
  for n in $NS_LIST; do
    for ((r = 1; r <= DIRECT_RUNS; r++)); do
      log "direct N=$n run $r/$DIRECT_RUNS (about $(awk -v n="$n" -v fu="$FU" 'BEGIN{printf "%.0f", n*fu}') s)"
      run_one direct "$n" "$r"
    done
    report
  done
fi
echo "load $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" >"$OUT/load.txt"
report
cat "$OUT/table.md"
