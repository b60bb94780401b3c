#!/usr/bin/env bash
# vchat network lab: three network namespaces on one machine,
#
#   A (caller) 10.77.0.1 ==veth== M (the "wire") ==veth== B (listener) 10.77.0.2
#
# Why it looks like this:
# - The kernel here has tbf/htb but no netem, so delay and loss come from a
#   user-space forwarder (forwarder.py) in M that moves every Ethernet frame
#   between M's two interfaces. M has no IP addresses: the forwarder is the
#   only path, and A and B share one /24 (an L2 wire, not a router), so ARP
#   crosses the forwarder like any frame. The neighbours are also pinned
#   (static ARP) so random loss never delays a call by an ARP retry.
# - The bottleneck is a tbf qdisc on M's egress toward B (caller -> listener,
#   the direction that carries the measured video) and optionally toward A.
#   The forwarder writes frames at their due time into that qdisc, so a
#   packet sees propagation delay first, then the bottleneck queue (its
#   depth: --queue-ms, default 100 ms at the current rate).
# - Offloads are off on every veth (tx checksum, TSO, GSO, GRO): a frame
#   copied by a raw socket keeps the sender's partial checksum and B drops
#   it; and super-frames would bypass the per-packet shaping.
# - IPv6 is off in all three namespaces, so router solicitations and DAD do
#   not wander over the wire; vchat listens on 10.77.0.2 explicitly.
# - Names carry the PID (vchatlab-PID-a/m/b) so parallel runs never collide,
#   and a run whose owner PID is gone is reaped at the next start. Cleanup
#   is a trap on EXIT/INT/TERM: it kills every process the lab started by
#   PID (and any process still inside its namespaces, listed by
#   `ip netns pids`), then deletes the namespaces (the veths go with them).
#
# Two ways to use it:
#   1. Run a command inside a lab that exists while it runs:
#        lab.sh [--rate 5mbit] [--rate-back R] [--rtt MS] [--loss PCT] \
#               [--loss-ab PCT] [--loss-ba PCT] [--queue-ms 100] -- CMD [ARGS]
#      CMD runs in the root namespace with LAB_NS_A/M/B, LAB_IP_A/B and
#      LAB_DEV_TO_A/B exported; use `ip netns exec "$LAB_NS_A" ...`, and
#      `ip netns exec "$LAB_NS_M" tc qdisc change dev "$LAB_DEV_TO_B" root tbf ...`.
#      e.g.  lab.sh --rate 5mbit --rtt 60 -- bash     (an interactive lab)
#   2. Source it (run.sh does): lab_up OPTIONS, lab_spawn, lab_set_rate;
#      lab_up installs the cleanup trap in the sourcing shell.
# Needs root, iproute2 (ip, tc), ethtool, python3.

LAB_DIR_SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB_PREFIX="vchatlab"
LAB_IP_A="10.77.0.1"
LAB_IP_B="10.77.0.2"
LAB_DEV_TO_A="to-a"   # M's interface toward A
LAB_DEV_TO_B="to-b"   # M's interface toward B
LAB_PIDS=()           # processes to kill at cleanup, by PID
LAB_UP=0
LAB_QUEUE_MS=100

lab_log() { echo "lab: $*" >&2; }
lab_die() { echo "lab: error: $*" >&2; exit 1; }

# Rate like 5mbit, 1.5mbit, 800kbit, 20000000 (bit/s) -> bytes per second.
lab_rate_bytes() {
  awk -v r="$1" 'BEGIN {
    n = r + 0; u = tolower(r); sub(/^[0-9.]+/, "", u)
    if (u == "" || u == "bit") m = 1; else if (u == "kbit") m = 1000;
    else if (u == "mbit") m = 1000000; else if (u == "gbit") m = 1000000000;
    else { print "bad"; exit }
    printf "%d\n", n * m / 8 }'
}

# tbf arguments for a rate: burst of 4 ms of traffic (at least two full
# frames, so hrtimer slack never starves the link) and a queue of
# LAB_QUEUE_MS at that rate.
lab_tbf_args() {
  local bytes burst
  bytes=$(lab_rate_bytes "$1")
  [[ "$bytes" =~ ^[0-9]+$ && "$bytes" -gt 0 ]] || lab_die "bad rate: $1 (use e.g. 5mbit, 800kbit)"
  burst=$((bytes * 4 / 1000))
  ((burst < 3028)) && burst=3028
  echo "rate $1 burst $burst latency ${LAB_QUEUE_MS}ms"
}

lab_check_tools() {
  [ "$(id -u)" -eq 0 ] || lab_die "needs root (network namespaces)"
  local t
  for t in ip tc ethtool python3 awk; do
    command -v "$t" >/dev/null || lab_die "missing $t (scripts/setup.sh installs it)"
  done
}

# Deletes namespaces of earlier runs whose owner process is gone (a run
# killed with SIGKILL cannot clean up after itself).
lab_reap_stale() {
  local ns pid p
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${LAB_PREFIX}-[0-9]*-[amb]$" || true); do
    pid=${ns#"${LAB_PREFIX}"-}
    pid=${pid%-*}
    if ! kill -0 "$pid" 2>/dev/null; then
      lab_log "removing stale namespace $ns (owner $pid is gone)"
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

lab_offloads_off() { # NS IF
  ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 ||
    ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off
}

lab_no_ipv6() { # NS
  ip netns exec "$1" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6;
    echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null || true
}

lab_mac() { # NS IF
  ip -n "$1" -o link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# lab_up [--rate R] [--rate-back R] [--rtt MS] [--delay-ab MS] [--delay-ba MS]
#        [--loss PCT] [--loss-ab PCT] [--loss-ba PCT] [--queue-ms MS] [--seed N]
lab_up() {
  local rate="" rate_back="" rtt=0 delay_ab="" delay_ba="" loss_ab=0 loss_ba=0 seed=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --rate) rate=$2; shift 2 ;;
      --rate-back) rate_back=$2; shift 2 ;;
      --rtt) rtt=$2; shift 2 ;;
      --delay-ab) delay_ab=$2; shift 2 ;;
      --delay-ba) delay_ba=$2; shift 2 ;;
      --loss) loss_ab=$2; loss_ba=$2; shift 2 ;;
      --loss-ab) loss_ab=$2; shift 2 ;;
      --loss-ba) loss_ba=$2; shift 2 ;;
      --queue-ms) LAB_QUEUE_MS=$2; shift 2 ;;
      --seed) seed=$2; shift 2 ;;
      *) lab_die "unknown lab option: $1" ;;
    esac
  done
  # The RTT is split evenly unless a direction is given.
  [ -n "$delay_ab" ] || delay_ab=$(awk -v r="$rtt" 'BEGIN { print r / 2 }')
  [ -n "$delay_ba" ] || delay_ba=$(awk -v r="$rtt" 'BEGIN { print r / 2 }')

  lab_check_tools
  lab_reap_stale

  LAB_ID="${LAB_PREFIX}-$$"
  LAB_NS_A="$LAB_ID-a"
  LAB_NS_M="$LAB_ID-m"
  LAB_NS_B="$LAB_ID-b"
  LAB_RUN_DIR=$(mktemp -d "/tmp/$LAB_ID.XXXXXX")
  export LAB_ID LAB_NS_A LAB_NS_M LAB_NS_B LAB_IP_A LAB_IP_B LAB_DEV_TO_A LAB_DEV_TO_B LAB_RUN_DIR

  trap lab_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  LAB_UP=1

  local ns
  for ns in "$LAB_NS_A" "$LAB_NS_M" "$LAB_NS_B"; do
    ip netns add "$ns"
    lab_no_ipv6 "$ns"
    ip -n "$ns" link set lo up
  done
  # Created inside the namespaces, so interface names never meet in the
  # root namespace of a machine running several labs.
  ip -n "$LAB_NS_A" link add eth0 type veth peer name "$LAB_DEV_TO_A" netns "$LAB_NS_M"
  ip -n "$LAB_NS_B" link add eth0 type veth peer name "$LAB_DEV_TO_B" netns "$LAB_NS_M"
  lab_offloads_off "$LAB_NS_A" eth0
  lab_offloads_off "$LAB_NS_B" eth0
  lab_offloads_off "$LAB_NS_M" "$LAB_DEV_TO_A"
  lab_offloads_off "$LAB_NS_M" "$LAB_DEV_TO_B"
  ip -n "$LAB_NS_A" addr add "$LAB_IP_A/24" dev eth0
  ip -n "$LAB_NS_B" addr add "$LAB_IP_B/24" dev eth0
  for ns in "$LAB_NS_A" "$LAB_NS_B"; do ip -n "$ns" link set eth0 up; done
  ip -n "$LAB_NS_M" link set "$LAB_DEV_TO_A" up promisc on
  ip -n "$LAB_NS_M" link set "$LAB_DEV_TO_B" up promisc on
  ip -n "$LAB_NS_A" neigh replace "$LAB_IP_B" lladdr "$(lab_mac "$LAB_NS_B" eth0)" dev eth0 nud permanent
  ip -n "$LAB_NS_B" neigh replace "$LAB_IP_A" lladdr "$(lab_mac "$LAB_NS_A" eth0)" dev eth0 nud permanent

  if [ -n "$rate" ]; then
    # shellcheck disable=SC2046
    ip netns exec "$LAB_NS_M" tc qdisc add dev "$LAB_DEV_TO_B" root tbf $(lab_tbf_args "$rate")
  fi
  if [ -n "$rate_back" ]; then
    # shellcheck disable=SC2046
    ip netns exec "$LAB_NS_M" tc qdisc add dev "$LAB_DEV_TO_A" root tbf $(lab_tbf_args "$rate_back")
  fi

  local ready="$LAB_RUN_DIR/forwarder.ready"
  # Real-time priority where allowed: on a 2-core machine the two vchat
  # encoders would otherwise delay the forwarder's wake-ups by tens of ms,
  # which would show up as link jitter that the configured link has not.
  local prio=()
  if command -v chrt >/dev/null && chrt -f 10 true 2>/dev/null; then prio=(chrt -f 10); fi
  ip netns exec "$LAB_NS_M" "${prio[@]}" python3 -u "${LAB_FORWARDER:-$LAB_DIR_SELF/forwarder.py}" \
    --a "$LAB_DEV_TO_A" --b "$LAB_DEV_TO_B" \
    --delay-ab "$delay_ab" --delay-ba "$delay_ba" \
    --loss-ab "$loss_ab" --loss-ba "$loss_ba" --seed "$seed" \
    --ready "$ready" 2>"$LAB_RUN_DIR/forwarder.log" &
  LAB_FORWARDER_PID=$!
  LAB_PIDS+=("$LAB_FORWARDER_PID")
  lab_wait_file "$ready" 10 "$LAB_FORWARDER_PID" ||
    lab_die "forwarder did not start: $(cat "$LAB_RUN_DIR/forwarder.log")"
  lab_log "up: $LAB_ID rate ${rate:-none} (back ${rate_back:-none}) delay ${delay_ab}/${delay_ba} ms" \
    "loss ${loss_ab}/${loss_ba} % queue ${LAB_QUEUE_MS} ms"
}

# lab_wait_file FILE TIMEOUT_S [PID]: waits until FILE exists; fails early
# if PID exits first.
lab_wait_file() {
  local file=$1 limit=$2 pid=${3:-} deadline
  deadline=$(($(date +%s%N) + limit * 1000000000))
  while [ ! -e "$file" ]; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

# lab_wait_line FILE PATTERN TIMEOUT_S [PID]: waits until FILE has a line
# matching PATTERN (grep -E).
lab_wait_line() {
  local file=$1 pattern=$2 limit=$3 pid=${4:-} deadline
  deadline=$(($(date +%s%N) + limit * 1000000000))
  until grep -qE -- "$pattern" "$file" 2>/dev/null; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      grep -qE -- "$pattern" "$file" 2>/dev/null && return 0
      return 1
    fi
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

# lab_wait_pid PID TIMEOUT_S: waits for a child of this shell to exit;
# returns its status, or 124 on timeout (the process is left running).
lab_wait_pid() {
  local pid=$1 limit=$2 deadline
  deadline=$(($(date +%s%N) + limit * 1000000000))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 124
    sleep 0.1
  done
  local rc=0 kept=() p
  wait "$pid" 2>/dev/null || rc=$?
  # Reaped: forget it, so cleanup never signals a recycled PID.
  for p in "${LAB_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  LAB_PIDS=("${kept[@]}")
  return "$rc"
}

# lab_spawn a|b|m STDOUT STDERR CMD [ARGS]: starts CMD in a namespace in
# the background; its PID is in LAB_LAST_PID and is killed at cleanup.
lab_spawn() {
  local ns
  case "$1" in a) ns=$LAB_NS_A ;; b) ns=$LAB_NS_B ;; m) ns=$LAB_NS_M ;; *) lab_die "no namespace $1" ;; esac
  local out=$2 err=$3
  shift 3
  ip netns exec "$ns" "$@" >"$out" 2>"$err" </dev/null &
  LAB_LAST_PID=$!
  LAB_PIDS+=("$LAB_LAST_PID")
}

# lab_set_rate RATE [to-b|to-a]: changes the bottleneck's rate (tbf).
lab_set_rate() {
  local dev=${2:-$LAB_DEV_TO_B}
  case "$dev" in to-b) dev=$LAB_DEV_TO_B ;; to-a) dev=$LAB_DEV_TO_A ;; esac
  # shellcheck disable=SC2046
  ip netns exec "$LAB_NS_M" tc qdisc change dev "$dev" root tbf $(lab_tbf_args "$1")
}

# Counters of the bottleneck qdisc (sent, dropped, overlimits, backlog).
lab_qdisc_stats() {
  ip netns exec "$LAB_NS_M" tc -s qdisc show dev "${1:-$LAB_DEV_TO_B}"
}

lab_cleanup() {
  local rc=$?
  [ "$LAB_UP" = 1 ] || return "$rc"
  LAB_UP=0
  trap - INT TERM
  local pid ns left i
  # Ask politely (vchat hangs up, the forwarder prints its counters)...
  for pid in "${LAB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    left=0
    for pid in "${LAB_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  # ...then not.
  for pid in "${LAB_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${LAB_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "$LAB_NS_A" "$LAB_NS_M" "$LAB_NS_B"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -s "$LAB_RUN_DIR/forwarder.log" ]; then
    cat "$LAB_RUN_DIR/forwarder.log" >&2
    [ -n "${LAB_KEEP_LOG:-}" ] && cp "$LAB_RUN_DIR/forwarder.log" "$LAB_KEEP_LOG"
  fi
  rm -rf "$LAB_RUN_DIR"
  lab_log "down: $LAB_ID"
  return "$rc"
}

# Run as a command: lab.sh [lab options] -- CMD [ARGS]
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  opts=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
  [ "${1:-}" = "--" ] || lab_die "usage: lab.sh [--rate R] [--rate-back R] [--rtt MS] [--loss PCT] [--queue-ms MS] -- CMD [ARGS]"
  shift
  [ $# -gt 0 ] || lab_die "no command after --"
  lab_up "${opts[@]}"
  rc=0
  if [ -t 0 ]; then
    "$@" || rc=$? # interactive (e.g. a shell): keep the terminal
  else
    # In the background so a TERM to lab.sh is handled at once (the trap
    # kills the command by PID) instead of after the command ends.
    "$@" &
    cmd_pid=$!
    LAB_PIDS+=("$cmd_pid")
    wait "$cmd_pid" || rc=$?
  fi
  exit "$rc"
fi
