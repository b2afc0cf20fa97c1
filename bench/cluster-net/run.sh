#!/usr/bin/env bash
# Cluster networks on the testbed (issue 17, "Measure"), in one run on `sampan cluster testbed --hosts 3`:
# 1. TCP throughput (iperf3, Debian's) for four paths: container→container on one host, across hosts on the default
#    cluster network `cluster` (host-gw), across hosts on a vxlan cluster network, and host→host between the emulated
#    hosts' namespaces (the limit). The containers are busybox (no iperf3 inside): iperf3 runs from the host's
#    filesystem in the container's network namespace (`nsenter --net=/proc/PID/ns/net`), server and client alike,
#    so every path runs the same binary. ROUNDS rounds of SECS seconds per path, the paths' order rotating each
#    round; the median per path, and host-gw/host→host (target ≥ 0.9), vxlan/host→host (target ≥ 0.7).
# 2. Request latency, same four paths: REQS HTTP GETs of a 3-byte file, one after another, each on a new TCP
#    connection (busybox httpd closes it), from curl in the client's namespace (`-w %{time_total}`: connect,
#    request, response) to busybox httpd in the server container (for host→host: the same busybox binary, copied
#    out of a container, in the host's namespace); p50/p99 per path over all rounds.
# 3. Visibility: bench/cluster-net/visibility.ts, run in a prober container's namespace on host3, starts VIS_N
#    containers through the manager (VIS_INFLIGHT at a time, spread over the hosts) while the registry watch is
#    open, and per container: State.StartedAt → its `add` event, and → the first DNS answer for its name from the
#    prober's resolver (asked every 50 ms); p50/p99 (target p99 ≤ 1 s). Then a busybox `nslookup` in the prober
#    checks that the last name answers.
# Usage (from the repo root, as root, after npm run build):  bash bench/cluster-net/run.sh
# Env: BENCH_ROUNDS (5)  BENCH_SECS (5)  BENCH_REQS (500)  BENCH_VIS_N (50)  BENCH_VIS_INFLIGHT (5)
#      BENCH_OUT=FILE also writes the table (markdown) to FILE;  KEEP_LOGS=DIR keeps the logs
# The testbed's own teardown (SIGTERM, at exit, also on ^C) removes its containers, namespaces, bridge and rule.
# Results: docs/benchmarks.md ("Cluster networks: throughput and visibility").
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/../lib.sh"
cd "$(dirname "$0")/../.."

ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECS:-5}
REQS=${BENCH_REQS:-500}
VIS_N=${BENCH_VIS_N:-50}
VIS_INFLIGHT=${BENCH_VIS_INFLIGHT:-5}
OUT=${BENCH_OUT:-}
PATHS="same hostgw vxlan host"
T=$(mktemp -d /tmp/cnb.XXXXXX) # short: the testbed's attach sockets live under it
TB_PID= HTTPD_PID= IPERF_PID=

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  log "cleaning up $T"
  for p in $HTTPD_PID $IPERF_PID; do kill "$p" 2>/dev/null; done
  [ -n "$TB_PID" ] && stop_pid "$TB_PID" 180
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$T"/*.out "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$T" 2>/dev/null || log "could not remove $T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -f dist/bench/cluster-net/visibility.js ] || die "build first: npm run build"
for c in iperf3 etcd jq curl nsenter; do command -v $c >/dev/null || die "$c is not installed (Debian: apt-get install $c)"; done

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
node bin/sampan cluster testbed --hosts 3 --dir "$T/tb" >"$T/tb.log" 2>&1 &
TB_PID=$!
for ((i = 0; i < 900; i++)); do grep -q '^ready' "$T/tb.log" && break; kill -0 "$TB_PID" 2>/dev/null || break; sleep 0.2; done
grep -q '^ready' "$T/tb.log" || die "the testbed did not start: $(tail -5 "$T/tb.log")"
export DOCKER_HOST=unix://$T/tb/cluster.sock
for s in "$T"/tb/hosts/*/engine.sock; do node bin/sampan image seed --host "unix://$s" >/dev/null || die "seeding $s failed"; done
mapfile -t NETNS < <(jq -r '.hosts[].netns' "$T/tb/testbed.json")
mapfile -t HOSTIP < <(jq -r '.hosts[].ip' "$T/tb/testbed.json")

timeout 60 docker network create -d overlay -o com.sampan.routing=vxlan vx >/dev/null || die "creating the vxlan network failed"
HTTPD='mkdir -p /www && echo ok >/www/i && exec httpd -f -p 8080 -h /www'
run_on() { # NAME HOST NETWORK: a busybox serving /www/i on port 8080 on that host and network
  timeout 60 docker run -d --name "$1" --network "$3" -e "constraint:node==$2" busybox sh -c "$HTTPD" >/dev/null || die "docker run $1 on $2 failed"
}
run_on c1 host1 cluster; run_on s1 host1 cluster; run_on s2 host2 cluster; run_on vc1 host1 vx; run_on vs2 host2 vx
pid_of() { docker inspect -f '{{.State.Pid}}' "$1"; }
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
# the host→host server: the containers' own busybox, in host2's namespace
cp "/proc/$(pid_of s1)/root/bin/busybox" "$T/busybox" && mkdir -p "$T/www" && echo ok >"$T/www/i"
ip netns exec "${NETNS[1]}" "$T/busybox" httpd -f -p 8080 -h "$T/www" &
HTTPD_PID=$!
declare -A CLI SRV DST
CLI[same]=/proc/$(pid_of c1)/ns/net SRV[same]=/proc/$(pid_of s1)/ns/net DST[same]=$(ip_of s1)
CLI[hostgw]=${CLI[same]} SRV[hostgw]=/proc/$(pid_of s2)/ns/net DST[hostgw]=$(ip_of s2)
CLI[vxlan]=/proc/$(pid_of vc1)/ns/net SRV[vxlan]=/proc/$(pid_of vs2)/ns/net DST[vxlan]=$(ip_of vs2)
CLI[host]=/run/netns/${NETNS[0]} SRV[host]=/run/netns/${NETNS[1]} DST[host]=${HOSTIP[1]}
for p in $PATHS; do log "path $p: ${CLI[$p]} → ${SRV[$p]} at ${DST[$p]}"; done

# iperf3 PATH: one SECS-second TCP run; appends its received Gbit/s to $T/tput-PATH
iperf() {
  local p=$1 i
  nsenter --net="${SRV[$p]}" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
  IPERF_PID=$!
  for ((i = 0; i < 25; i++)); do # until the server listens (iperf3 -J exits 0 on a refused connection too)
    nsenter --net="${CLI[$p]}" iperf3 -c "${DST[$p]}" -p 5201 -t "$SECS" -J >"$T/iperf.out" 2>&1
    jq -e '.error | test("connect")' "$T/iperf.out" >/dev/null 2>&1 || break
    sleep 0.2
  done
  kill "$IPERF_PID" 2>/dev/null; wait "$IPERF_PID"; IPERF_PID= # it ends by itself after a test (-1), not after a failed one
  jq -r '.end.sum_received.bits_per_second / 1e9' "$T/iperf.out" 2>/dev/null | grep -E '^[0-9.]+' >>"$T/tput-$p" ||
    log "iperf3 $p failed: $(head -c 300 "$T/iperf.out")"
}
# latency PATH: REQS GETs; appends each one's ms to $T/lat-PATH, counts what was not a 200
latency() {
  local p=$1
  nsenter --net="${CLI[$p]}" curl -s -o /dev/null -w '%{stderr}%{http_code} %{time_total}\n' \
    "http://${DST[$p]}:8080/i?[1-$REQS]" 2>"$T/curl.out" >/dev/null
  awk '$1 == 200 {print $2 * 1000}' "$T/curl.out" >>"$T/lat-$p"
  awk '$1 != 200' "$T/curl.out" >>"$T/fail-$p"
}

for r in $(seq "$ROUNDS"); do
  order=$(echo $PATHS | tr ' ' '\n' | awk -v r="$r" '{a[NR]=$0} END{for(i=0;i<NR;i++) print a[(i+r-1)%NR+1]}')
  for p in $order; do iperf "$p"; latency "$p"; done
  log "round $r of $ROUNDS: $(for p in $PATHS; do printf '%s %s Gbit/s; ' "$p" "$(tail -1 "$T/tput-$p" 2>/dev/null)"; done)"
done
LOAD_NET=$(cut -d' ' -f1-3 /proc/loadavg)

# visibility: the prober on host3, where none of the above runs
run_on prober host3 cluster
RESOLVER=$(docker exec prober awk '/^nameserver/{print $2; exit}' /etc/resolv.conf)
nsenter --net="/proc/$(pid_of prober)/ns/net" node dist/bench/cluster-net/visibility.js "$T/tb/cluster.sock" "$RESOLVER" \
  "$VIS_N" "$VIS_INFLIGHT" vis >"$T/vis.out" 2>"$T/vis.log" || log "visibility.js failed: $(tail -3 "$T/vis.log")"
LOAD_VIS=$(cut -d' ' -f1-3 /proc/loadavg)
NSLOOKUP=$(timeout 20 docker exec prober nslookup "vis-$VIS_N" 2>&1 | awk '/^Address: /{print $2}' | tail -1)
SUM=$(grep '"summary"' "$T/vis.out")
vis() { jq -r ".summary.$1 // \"-\"" <<<"$SUM" 2>/dev/null || echo -; }

# med FILE [FORMAT], pctl FILE Q [FORMAT]: the median, the Q-quantile (nearest rank) of the numbers in FILE (%.2f)
med() { [ -s "$1" ] && sort -n "$1" | awk -v f="${2:-%.2f}\n" '{a[NR]=$1} END{m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf f, m}' || echo -; }
pctl() { [ -s "$1" ] && sort -n "$1" | awk -v q="$2" -v f="${3:-%.2f}\n" '{a[NR]=$1} END{r=int(q*NR); if (r<q*NR) r++; if (r<1) r=1; printf f, a[r]}' || echo -; }
all_of() { paste -sd' ' "$1" 2>/dev/null | awk '{for(i=1;i<=NF;i++) printf "%s%.2f", (i>1?", ":""), $i}'; }
declare -A NAME=([same]="container→container, same host" [hostgw]="across hosts, host-gw (\`cluster\`)" [vxlan]="across hosts, vxlan" [host]="host→host (the limit)")
declare -A TARGET=([hostgw]="≥ 0.9" [vxlan]="≥ 0.7")
HOSTMED=$(med "$T/tput-host")
# the load drifts between rounds: a round's paths ran within half a minute, so its own ratios are also shown
for p in $PATHS; do paste "$T/tput-$p" "$T/tput-host" 2>/dev/null | awk '$2 > 0 {print $1 / $2}' >"$T/ratio-$p"; done
# names on the prober's own host are its engine's; the others' are asked of the manager
PROBER_NODE=$(docker inspect -f '{{.Node.Name}}' prober)
jq -r --arg n "$PROBER_NODE" 'select(.name and .dnsMs != null and .node == $n) | .dnsMs' "$T/vis.out" >"$T/dns-local"
jq -r --arg n "$PROBER_NODE" 'select(.name and .dnsMs != null and .node != $n) | .dnsMs' "$T/vis.out" >"$T/dns-remote"
{
  echo "| path | TCP Gbit/s, median (rounds) | / host→host: of the medians (target); median of the rounds' | HTTP GET p50 / p99 ms | failed GETs |"
  echo "|---|---:|---:|---:|---:|"
  for p in $PATHS; do
    echo "| ${NAME[$p]} | $(med "$T/tput-$p") ($(all_of "$T/tput-$p")) | $(ratio "$(med "$T/tput-$p")" "$HOSTMED")${TARGET[$p]:+ (${TARGET[$p]})}; $(med "$T/ratio-$p") | $(med "$T/lat-$p") / $(pctl "$T/lat-$p" 0.99) | $(cat "$T/fail-$p" 2>/dev/null | wc -l) |"
  done
  echo
  echo "| visibility, $(vis n) containers, $(vis inflight) at a time, on $(vis nodes) hosts | p50 ms | p99 ms (target ≤ 1000) | max ms | seen |"
  echo "|---|---:|---:|---:|---:|"
  echo "| StartedAt → the start call returned | $(vis start.p50) | $(vis start.p99) | $(vis start.max) | $(vis start.n) |"
  echo "| StartedAt → registry \`add\` event | $(vis add.p50) | $(vis add.p99) | $(vis add.max) | $(vis add.n) |"
  echo "| StartedAt → DNS answer in another container | $(vis dns.p50) | $(vis dns.p99) | $(vis dns.max) | $(vis dns.n) |"
  echo "| … of a name on the prober's host | $(med "$T/dns-local" %.0f) | $(pctl "$T/dns-local" 0.99 %.0f) | $(sort -n "$T/dns-local" | tail -1) | $(wc -l <"$T/dns-local") |"
  echo "| … of a name on another host (asked of the manager) | $(med "$T/dns-remote" %.0f) | $(pctl "$T/dns-remote" 0.99 %.0f) | $(sort -n "$T/dns-remote" | tail -1) | $(wc -l <"$T/dns-remote") |"
  echo
  echo "Rounds: $ROUNDS × $SECS s of iperf3 and $REQS GETs per path; failed container starts: $(vis failed); busybox nslookup vis-$VIS_N in the prober afterwards: ${NSLOOKUP:-no answer}."
  echo "Versions: $(iperf3 --version | head -1 | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2), node $(node --version), Sampan $(git rev-parse --short HEAD 2>/dev/null); $(nproc) cores."
  echo "Load average (1, 5, 15 min): after the network paths $LOAD_NET, after visibility $LOAD_VIS."
} | tee "${OUT:-/dev/null}"
