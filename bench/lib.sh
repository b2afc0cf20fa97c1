# Helpers shared by the bench scripts (sourced, not run).
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="" || b=="" || a=="-" || b=="-" || b+0==0) print "n/a"; else printf "%.2f", a/b }'; }
g() { echo "${R[$1]:-}"; }
# Every process (by PID) whose command line mentions $T and whose argv[0] basename matches $1 (an ERE).
pids_of() {
  local re=$1 p cmd a0
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    [ -n "$cmd" ] || continue
    case "$cmd" in *"$T"*) ;; *) continue;; esac
    a0=${cmd%% *}; a0=${a0##*/}
    [[ $a0 =~ ^($re)$ ]] && echo "$p"
  done
}
# median and p90 (nearest rank) of the numbers in file $1, in the file's unit; "-" when empty
stats() {
  sort -n "$1" | awk '{a[NR]=$1} END{ if(NR==0){print "- -"; exit}
    m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2
    r = int(0.9*NR); if (r < 0.9*NR) r++; if (r<1) r=1
    printf "%.1f %.1f\n", m, a[r] }'
}
stop_pid() { # SIGTERM, wait up to $2 s, then SIGKILL
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < ${2:-20} * 5; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null; sleep 0.2
}
wait_ping() { # $1 socket, $2 seconds
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    [ "$(curl -s -m 2 --unix-socket "$1" http://x/_ping 2>/dev/null)" = OK ] && return 0
    sleep 0.2
  done
  return 1
}
# cli_of ENGINE: sets CLI to the client command for that engine (an array, so that `timeout` can run it)
cli_of() {
  case $1 in
    sampan) CLI=(docker -H "unix://$SAMPAN_SOCK") ;;
    dockerd) CLI=(docker -H "unix://$DOCKERD_SOCK") ;;
    podman) CLI=("${POD[@]}") ;;
  esac
}
run_opts() { [ "$1" = podman ] && printf '%s\n' "${POD_RUN[@]}"; return 0; }
# One CPU sample from /proc/stat: "EPOCH_US IDLE_TICKS TOTAL_TICKS" (idle counts iowait; total is user..steal)
cpu_sample() { local t=$EPOCHREALTIME; awk -v t="${t/./}" '/^cpu /{s=0; for(k=2;k<=9;k++) s+=$k; printf "%s %.0f %.0f\n", t, $5+$6, s; exit}' /proc/stat; }
# Idle % of all CPUs between two cpu_sample lines ("n/a" when no tick passed)
idle_pct() { awk -v a="$1" -v b="$2" 'BEGIN{split(a,x," "); split(b,y," "); d=y[3]-x[3]; if(d<=0){print "n/a"; exit} printf "%.1f\n", 100*(y[2]-x[2])/d}'; }

# dockerd may flip the iptables FORWARD policy and ip_forward even with --iptables=false: a benchmark that starts
# it saves them first (host_net_save) and puts them back at exit (host_net_restore)
host_net_save() {
  FWD_POLICY=$(iptables -S FORWARD 2>/dev/null | head -1 | awk '{print $3}')
  IP_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo "")
}
host_net_restore() {
  if [ -n "${FWD_POLICY:-}" ] && [ "$(iptables -S FORWARD 2>/dev/null | head -1 | awk '{print $3}')" != "$FWD_POLICY" ]; then
    log "restoring iptables FORWARD policy to $FWD_POLICY (was: $(iptables -S FORWARD | head -1))"; iptables -P FORWARD "$FWD_POLICY"
  fi
  if [ -n "${IP_FORWARD:-}" ] && [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$IP_FORWARD" ]; then echo "$IP_FORWARD" >/proc/sys/net/ipv4/ip_forward; fi
  return 0
}
# runc_leftovers DIR: containers that lost their monitor, in the runc state dirs of engines rooted under DIR
runc_leftovers() {
  local r c
  for r in "$1/run/runc" "$1/dockerd-run/runtime-runc/moby"; do
    [ -d "$r" ] || continue
    for c in $(runc --root "$r" list -q 2>/dev/null); do runc --root "$r" delete -f "$c" >/dev/null 2>&1; done
  done
}
# umount_under DIR: every mount under DIR, deepest first
umount_under() {
  grep " $1" /proc/mounts | awk '{print $2}' | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount -l "$m" 2>/dev/null || log "could not unmount $m"; done
}

# The cleanup of a bench's one-node swarm dockerd ($DOCKERD_PID or $T/dockerd.pid, client "${DD[@]}"): leave the
# swarm, remove its containers and, when the bench made it ($GWBRIDGE_OURS=1), docker_gwbridge; then whatever of
# this run's processes, runc state and mounts under $T is left.
stop_swarm_dockerd() {
  local p
  DOCKERD_PID=$(cat "$T/dockerd.pid" 2>/dev/null || echo "$DOCKERD_PID")
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    timeout 60 "${DD[@]}" swarm leave --force >/dev/null 2>&1
    p=$(timeout 30 "${DD[@]}" ps -aq 2>/dev/null)
    [ -n "$p" ] && timeout 120 "${DD[@]}" rm -f $p >/dev/null 2>&1
    [ "$GWBRIDGE_OURS" = 1 ] && timeout 30 "${DD[@]}" network rm docker_gwbridge >/dev/null 2>&1
    stop_pid "$DOCKERD_PID" 30
  fi
  for p in $(pids_of 'containerd-shim.*|containerd|dockerd|node|etcd|conmon'); do kill -KILL "$p" 2>/dev/null; done
  runc_leftovers "$T"
  umount_under "$T"
  # a dockerd killed before it could remove its swarm's bridge leaves it behind
  [ "$GWBRIDGE_OURS" = 1 ] && ip link show docker_gwbridge >/dev/null 2>&1 && ip link del docker_gwbridge
  return 0
}
