#!/usr/bin/env bash
# Measures a lab link with linkcheck.py (RTT from TCP connects, rate from a
# bulk transfer), to check the lab before trusting vchat's figures on it:
#   scripts/netlab/selfcheck.sh --rate 5mbit --rtt 60 [--loss 1] [--seconds 5]
# Any lab.sh option is accepted; prints one linkcheck line, then the
# forwarder's counters (lateness shows whether it added its own delay).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ "${1:-}" != "--inner" ]; then
  seconds=5
  opts=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --seconds) seconds=$2; shift 2 ;;
      *) opts+=("$1"); shift ;;
    esac
  done
  exec "$here/lab.sh" "${opts[@]}" -- "$here/selfcheck.sh" --inner "$seconds" </dev/null
fi

seconds=$2
# shellcheck source=lab.sh
source "$here/lab.sh"
log=$(mktemp)
ip netns exec "$LAB_NS_B" python3 -u "$here/linkcheck.py" serve 5201 >"$log" 2>&1 &
server=$!
lab_wait_line "$log" listening 10 "$server" || { cat "$log" >&2; exit 1; }
rc=0
ip netns exec "$LAB_NS_A" python3 "$here/linkcheck.py" run "$LAB_IP_B" 5201 "$seconds" || rc=$?
lab_wait_pid "$server" 10 || kill "$server" 2>/dev/null || true
ip netns exec "$LAB_NS_M" tc -s qdisc show dev "$LAB_DEV_TO_B" | sed -n '1,3p' >&2
rm -f "$log"
exit "$rc"
