# Emulated hosts for bench/p2p/run.sh (sourced, not run): a network namespace per host, each joined to one
# bridge in the root namespace by a veth pair, upload and download capped with tc token buckets.
#
#   spbbr0 (bridge, root namespace, no address)
#     spbv-reg   <-> eth0 in spb-reg    10.231.0.2   the registry            (capped)
#     spbv-sched <-> eth0 in spb-sched  10.231.0.3   the scheduler           (not capped: control plane)
#     spbv-bad   <-> eth0 in spb-bad    10.231.0.4   the corrupt peer        (capped)
#     spbv-hI    <-> eth0 in spb-hI     10.231.1.I   host I: a peer + pulls  (capped)
#     spbv-regK  <-> eth0 in spb-regK   10.231.0.(10+K)  registry K of the parallel direct baseline (capped)
#
# Upload of a host = egress of eth0 inside its namespace; download = egress of its bridge-side veth (what the
# bridge forwards toward it). Both are capped at SPB_RATE (spb_shape). Loopback inside a namespace (runtime <->
# local peer) is not capped, as on a real host.
SPB_BR=spbbr0
SPB_PREFIX=10.231
SPB_NS_RE='^spb-(reg[0-9]*|sched|bad|h[0-9]+)$'
SPB_FWD_RULE=(FORWARD -i "$SPB_BR" -o "$SPB_BR" -m comment --comment spb-bench -j ACCEPT)

# A registry's link queues 500 ms, a host's 50 ms. With 50 ms, 32 pulls starting at once on one registry lose
# their first windows and every retransmission to the flows that got going, and the registry's kernel aborts
# some of those connections (TCPAbortOnTimeout) within seconds; a server's deeper buffer lets every flow start.
SPB_REG_QUEUE_MS=500
spb_reg_ip() { echo "$SPB_PREFIX.0.$((10 + $1))"; }                                  # registry K
spb_host_ip() { echo "$SPB_PREFIX.$((1 + ($1 - 1) / 250)).$((1 + ($1 - 1) % 250))"; } # host I (1-based)

# spb_shape DEV [NETNS] [QUEUE_MS]: cap DEV's egress at SPB_RATE (e.g. 16mbit), with a queue of QUEUE_MS (50).
#   SPB_QDISC=prio (default): HTB at the rate, small packets (IP length < 128: ACKs, SYN/SYN-ACK, FIN, RST) in a
#     class served first, the rest in a FIFO of QUEUE_MS; what a host's default fq_codel does for such sparse flows
#     (this kernel has no fq_codel, sfq, fq or netem; it has htb, tbf, pfifo, bfifo and the u32 classifier)
#   SPB_QDISC=fifo: a plain token bucket (tbf) whose FIFO every flow and every ACK shares
spb_shape() {
  local dev=$1 ns=${2:-} q=${3:-50} n=() limit
  [ -n "$ns" ] && n=(-n "$ns")
  if [ "${SPB_QDISC:-prio}" = fifo ]; then
    tc "${n[@]}" qdisc replace dev "$dev" root tbf rate "$SPB_RATE" burst "$SPB_BURST" latency "${q}ms"
    return
  fi
  limit=$(awk -v b="$SPB_RATE_BPS" -v q="$q" 'BEGIN{l = b * q / 1000; printf "%d", (l < 65536 ? 65536 : l)}')
  tc "${n[@]}" qdisc replace dev "$dev" root handle 1: htb default 20 || return 1
  tc "${n[@]}" class add dev "$dev" parent 1: classid 1:1 htb rate "$SPB_RATE" ceil "$SPB_RATE" burst "$SPB_BURST" cburst "$SPB_BURST" || return 1
  tc "${n[@]}" class add dev "$dev" parent 1:1 classid 1:10 htb rate "$((SPB_RATE_BPS * 8 / 10))bit" ceil "$SPB_RATE" prio 0 || return 1
  tc "${n[@]}" class add dev "$dev" parent 1:1 classid 1:20 htb rate "$((SPB_RATE_BPS * 8 * 9 / 10))bit" ceil "$SPB_RATE" prio 1 || return 1
  tc "${n[@]}" qdisc add dev "$dev" parent 1:10 handle 10: bfifo limit "$limit" || return 1
  tc "${n[@]}" qdisc add dev "$dev" parent 1:20 handle 20: bfifo limit "$limit" || return 1
  tc "${n[@]}" filter add dev "$dev" parent 1: protocol ip prio 1 u32 match u16 0x0000 0xff80 at 2 flowid 1:10 || return 1
  # ARP too: a lost ARP answer behind bulk data stalls a connection for seconds
  tc "${n[@]}" filter add dev "$dev" parent 1: protocol arp prio 2 u32 match u32 0 0 flowid 1:10
}

# spb_ns_add NAME IP VETH SHAPED(0|1) [QUEUE_MS]
spb_ns_add() {
  local ns=$1 addr=$2 v=$3 shaped=$4 q=${5:-50}
  ip netns add "$ns" || return 1
  ip link add "$v" type veth peer name eth0 netns "$ns" || return 1
  ip link set "$v" master "$SPB_BR" up || return 1
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/16" dev eth0
  ip -n "$ns" link set eth0 up
  # SPB_CC: the hosts' TCP congestion control (per route: a namespace may not pick a restricted default)
  if [ -n "${SPB_CC:-}" ]; then ip -n "$ns" route replace "$SPB_PREFIX.0.0/16" dev eth0 proto kernel scope link src "$addr" congctl "$SPB_CC" || return 1; fi
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
  if [ "$shaped" = 1 ]; then
    spb_shape eth0 "$ns" "$q" || return 1 # upload
    spb_shape "$v" "" "$q" || return 1    # download
  fi
}

# The kernel has one neighbour (ARP) table for all namespaces, 1024 entries at most by default: 32 hosts that all
# talk to each other need more, and past the limit new connections fail. Raised while the hosts exist; the old
# limits wait in this file for spb_net_down.
SPB_NEIGH_SAVED=/run/spb-bench.neigh-thresh
spb_neigh_raise() {
  local k v want=(0 4096 8192 16384)
  [ -f "$SPB_NEIGH_SAVED" ] || for k in 1 2 3; do echo "$k $(sysctl -n "net.ipv4.neigh.default.gc_thresh$k")"; done >"$SPB_NEIGH_SAVED"
  for k in 1 2 3; do
    v=$(sysctl -n "net.ipv4.neigh.default.gc_thresh$k")
    [ "$v" -lt "${want[k]}" ] && sysctl -qw "net.ipv4.neigh.default.gc_thresh$k=${want[k]}"
  done
  return 0
}
spb_neigh_restore() {
  local k v
  [ -f "$SPB_NEIGH_SAVED" ] || return 0
  while read -r k v; do sysctl -qw "net.ipv4.neigh.default.gc_thresh$k=$v"; done <"$SPB_NEIGH_SAVED"
  rm -f "$SPB_NEIGH_SAVED"
}

# spb_net_up NHOSTS: bridge, registry/scheduler/corrupt-peer namespaces and NHOSTS hosts
spb_net_up() {
  local n=$1 i
  spb_neigh_raise
  ip link add "$SPB_BR" type bridge || return 1
  ip link set "$SPB_BR" type bridge stp_state 0 mcast_snooping 0 2>/dev/null
  sysctl -qw "net.ipv6.conf.$SPB_BR.disable_ipv6=1" 2>/dev/null
  ip link set "$SPB_BR" up
  # with br_netfilter loaded, bridged frames cross the FORWARD chain: never let another policy drop ours
  iptables -I "${SPB_FWD_RULE[@]}" 2>/dev/null
  spb_ns_add spb-reg "$SPB_PREFIX.0.2" spbv-reg 1 "$SPB_REG_QUEUE_MS" || return 1
  spb_ns_add spb-sched "$SPB_PREFIX.0.3" spbv-sched 0 || return 1
  spb_ns_add spb-bad "$SPB_PREFIX.0.4" spbv-bad 1 || return 1
  for ((i = 1; i <= n; i++)); do spb_ns_add "spb-h$i" "$(spb_host_ip "$i")" "spbv-h$i" 1 || return 1; done
}

spb_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "$SPB_NS_RE"; }

# every process inside our namespaces (and only those), by PID
spb_ns_pids() { local ns; for ns in $(spb_namespaces); do ip netns pids "$ns" 2>/dev/null; done; }

spb_net_down() {
  local ns p i
  for i in 1 2; do
    for p in $(spb_ns_pids); do kill -KILL "$p" 2>/dev/null; done
    [ -z "$(spb_ns_pids)" ] && break
    sleep 0.5
  done
  # the root-side ends first: a namespace outlives `ip netns del` while sockets in it linger (orphaned TCP
  # connections retransmitting), and so would its veth pair
  for i in $(ip -br link 2>/dev/null | awk '$1 ~ /^spbv-/{sub(/@.*/, "", $1); print $1}'); do ip link del "$i" 2>/dev/null; done
  for ns in $(spb_namespaces); do ip netns del "$ns" 2>/dev/null; done
  ip link del "$SPB_BR" 2>/dev/null
  for i in 1 2 3; do iptables -D "${SPB_FWD_RULE[@]}" 2>/dev/null || break; done
  spb_neigh_restore
  return 0
}

# the leftovers spb_net_down should have removed (empty when the host is as it was)
spb_leftovers() {
  spb_namespaces | sed 's/^/netns /'
  ip -br link 2>/dev/null | awk '$1 ~ /^(spbbr0|spbv-)/{print "link " $1}'
  iptables -S FORWARD 2>/dev/null | grep -q spb-bench && echo "iptables FORWARD rule spb-bench"
  [ -f "$SPB_NEIGH_SAVED" ] && echo "neighbour table limits raised (saved in $SPB_NEIGH_SAVED)"
  return 0
}

# spb_tx_bytes NETNS: bytes sent by its eth0 (frames: payload + TCP/IP/Ethernet headers)
spb_tx_bytes() { ip netns exec "$1" cat /sys/class/net/eth0/statistics/tx_bytes; }
