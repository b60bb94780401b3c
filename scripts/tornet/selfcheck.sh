#!/usr/bin/env bash
# End-to-end check of the private Tor network of tornet.sh, and a measure of
# how long each step takes, before vchat's onion-call tests rely on it:
#   scripts/tornet/selfcheck.sh
# 1. brings a network up in a temp dir (tornet.sh up),
# 2. starts a TCP echo server on 127.0.0.1,
# 3. publishes a v3 onion service for it on client b (ADD_ONION over the
#    control port) and waits for 650 HS_DESC UPLOADED,
# 4. connects through client a's SOCKS5 port to <id>.onion:7000, retrying
#    while tor answers 0xF0 (descriptor not found), and checks the echo,
# 5. prints the timings and tears everything down, also on failure.
# Exits 0 only if the echo came back. TORNET_KEEP=1 keeps the temp dir (tor
# logs); it is always kept on failure.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
STEP_TIMEOUT=60 # seconds for each of: echo server, descriptor upload, echo

py() { python3 "$here/tornet.py" "$@"; }
now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
secs() { printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000)); }

command -v python3 >/dev/null 2>&1 || { echo "selfcheck: python3 is not installed" >&2; exit 1; }
tmp=$(mktemp -d /tmp/tornet-selfcheck.XXXXXX)
dir="$tmp/net"
echo_pid=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$echo_pid" ]; then
    kill "$echo_pid" 2>/dev/null || true
    wait "$echo_pid" 2>/dev/null || true
  fi
  "$here/tornet.sh" down "$dir" || true
  if [ "$rc" = 0 ] && [ "${TORNET_KEEP:-0}" != 1 ]; then
    rm -rf "$tmp"
  else
    echo "selfcheck: logs kept in $tmp" >&2
  fi
  [ "$rc" = 0 ] && echo "selfcheck: PASS" || echo "selfcheck: FAIL" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "selfcheck: interrupted" >&2; exit 130' INT
trap 'echo "selfcheck: terminated" >&2; exit 143' TERM

t0=$(now_ms)
"$here/tornet.sh" up "$dir"
t1=$(now_ms)
# shellcheck source=/dev/null
source "$dir/tornet.env"

# $! must be python's own PID: not through py() (a subshell) nor through a
# wrapper such as a pyenv shim, which forks python instead of exec'ing it.
python_bin=$(python3 -c 'import sys; print(sys.executable)')
"$python_bin" "$here/tornet.py" echo-server --parent $$ --max-seconds 300 \
  >"$tmp/echo.port" 2>"$tmp/echo.log" &
echo_pid=$!
limit=$(($(date +%s) + STEP_TIMEOUT))
until [ -s "$tmp/echo.port" ]; do
  kill -0 "$echo_pid" 2>/dev/null || { cat "$tmp/echo.log" >&2; echo "selfcheck: the echo server died" >&2; exit 1; }
  [ "$(date +%s)" -lt "$limit" ] || { echo "selfcheck: the echo server did not start" >&2; exit 1; }
  sleep 0.05
done
echo_port=$(head -n1 "$tmp/echo.port")

t2=$(now_ms)
sid=$(py publish --deadline $(($(date +%s) + STEP_TIMEOUT)) \
  "$TORNET_CONTROL_B" "$TORNET_COOKIE_B" 7000 "127.0.0.1:$echo_port")
t3=$(now_ms)
echo "selfcheck: $sid.onion published on client b (descriptor uploaded)"

py socks-echo --deadline $(($(date +%s) + STEP_TIMEOUT)) "$TORNET_SOCKS_A" "$sid.onion" 7000
t4=$(now_ms)

echo "selfcheck: timings: bootstrap (tornet.sh up) $(secs $((t1 - t0))), descriptor upload $(secs $((t3 - t2))), first echo after upload $(secs $((t4 - t3))), total $(secs $((t4 - t0)))"
