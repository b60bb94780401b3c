#!/usr/bin/env bash
# The benchmark matrix: each link below x each codec, one run.sh call per
# cell, one markdown table at the end (OUT/table.md, also on stdout).
#
#   scripts/netlab/matrix.sh [--out DIR] [--duration 20] [--step-duration 30]
#       [--codecs "h264 jpeg"] [--cases "a b c d e f"] [--vchat BIN]
#       [--noise N] [--psnr] (run.sh's: the clip's grain, PSNR of what arrived)
#       [--table-only]   (rebuild OUT/table.md from the runs already in --out)
#
#   a  20 Mbit/s, 40 ms RTT
#   b  5 Mbit/s, 60 ms RTT
#   c  2 Mbit/s, 100 ms RTT, 1% loss each way
#   d  1.5 Mbit/s, 500 ms RTT (Tor-like)
#   e  20 -> 3 -> 20 Mbit/s, steps at 10 s and 20 s, 40 ms RTT
#   f  as e, steps at 40 s and 50 s of a 60 s call (--long-duration): vchat's
#      rate control climbs 12 %/s from 0.8 Mbit/s, so at 10 s it has not
#      reached 3 Mbit/s yet and e's drop does not bite; f drops it when it
#      is at its 4 Mbit/s ceiling
#
# Camera-like 720p30 from the caller (run.sh's camlike clip); JPEG is the
# round-1 baseline next to H.264. Runs are sequential: on a 2-core machine
# two calls at once would measure each other. Cases run one after the
# other; a failed case is reported in its row and the matrix goes on.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

out="/tmp/vchat-netlab/matrix-$(date +%Y%m%d-%H%M%S)"
duration=20 step_duration=30 long_duration=60 codecs="h264 jpeg" cases="a b c d e f"
vchat="${VCHAT:-$repo/target/release/vchat}"
table_only=0 noise=24 psnr=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --step-duration) step_duration=$2; shift 2 ;;
    --long-duration) long_duration=$2; shift 2 ;;
    --codecs) codecs=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --vchat) vchat=$2; shift 2 ;;
    --noise) noise=$2; shift 2 ;;
    --psnr) psnr=(--psnr); shift ;;
    --table-only) table_only=1; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "matrix.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

link_args() {
  case "$1" in
    a) echo "--rate 20mbit --rtt 40 --duration $duration" ;;
    b) echo "--rate 5mbit --rtt 60 --duration $duration" ;;
    c) echo "--rate 2mbit --rtt 100 --loss 1 --duration $duration" ;;
    d) echo "--rate 1.5mbit --rtt 500 --duration $duration" ;;
    e) echo "--rate 20mbit --rtt 40 --step 10:3mbit,20:20mbit --duration $step_duration" ;;
    f) echo "--rate 20mbit --rtt 40 --step 40:3mbit,50:20mbit --duration $long_duration" ;;
    *) echo "matrix.sh: no case $1" >&2; exit 2 ;;
  esac
}
link_name() {
  case "$1" in
    a) echo "(a) 20 Mbit/s, 40 ms" ;;
    b) echo "(b) 5 Mbit/s, 60 ms" ;;
    c) echo "(c) 2 Mbit/s, 100 ms, 1% loss" ;;
    d) echo "(d) 1.5 Mbit/s, 500 ms" ;;
    e) echo "(e) 20→3→20 Mbit/s, 40 ms" ;;
    f) echo "(f) 20→3→20 Mbit/s at 40/50 s, 40 ms" ;;
  esac
}

if [ "$table_only" = 0 ]; then
  : >"$out/commands.txt"
  # A copy of the binary: a `cargo build --release` during the matrix
  # must not change vchat between cases.
  [ -x "$vchat" ] || { echo "matrix.sh: no vchat binary at $vchat (cargo build --release)" >&2; exit 1; }
  cp "$vchat" "$out/vchat"
  {
    echo "binary: $vchat, copied to $out/vchat"
    echo "sha256: $(sha256sum "$vchat" | cut -d' ' -f1)"
    echo "built: $(date -u -r "$vchat" +%Y-%m-%dT%H:%M:%SZ)"
    echo "repo HEAD: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "machine: $(nproc) cores, $(uname -r), load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  } >"$out/binary.txt"
  vchat="$out/vchat"
fi
for c in $cases; do
  for codec in $codecs; do
    dir="$out/$c-$codec"
    if [ "$table_only" = 1 ]; then
      [ -d "$dir" ] && python3 -B "$here/summarize.py" "$dir" --json >"$dir.json"
      continue
    fi
    # shellcheck disable=SC2046
    cmd=("$here/run.sh" $(link_args "$c") --codec "$codec" --source camlike --noise "$noise" "${psnr[@]}" --size 1280x720 --fps 30 --out "$dir" --vchat "$vchat")
    echo "${cmd[*]}" >>"$out/commands.txt"
    echo "== $(link_name "$c") $codec" >&2
    "${cmd[@]}" >"$dir.txt" 2>"$dir.err" || echo "matrix.sh: case $c $codec did not end cleanly (see $dir.err)" >&2
    cat "$dir.txt" >&2
    python3 -B "$here/summarize.py" "$dir" --json >"$dir.json" || true
  done
done

python3 -B - "$out" "$cases" "$codecs" "$here" >"$out/table.md" <<'EOF'
import json, os, sys
out, cases, codecs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
names = {"a": "(a) 20 Mbit/s, 40 ms RTT", "b": "(b) 5 Mbit/s, 60 ms RTT",
         "c": "(c) 2 Mbit/s, 100 ms RTT, 1% loss", "d": "(d) 1.5 Mbit/s, 500 ms RTT",
         "e": "(e) 20→3→20 Mbit/s at 10/20 s, 40 ms RTT",
         "f": "(f) 20→3→20 Mbit/s at 40/50 s, 40 ms RTT"}
def f(x, d=0):
    return "–" if x is None else f"{x:.{d}f}"
print("| link | codec | latency p50 ms | p99 ms | fps in | Mbit/s in | caller target kbit | PSNR dB decoded / as shown | under 300 ms again after drop | max fps in after rate back (frames over 30/s) | ended | lab: forwarder late max ms (frames > 20 ms late) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
timelines = []
for c in cases:
    for codec in codecs:
        p = os.path.join(out, f"{c}-{codec}.json")
        try:
            r = json.load(open(p))
        except (OSError, ValueError):
            print(f"| {names.get(c, c)} | {codec} | no result | | | | | | | | | |")
            continue
        rec = maxfps = ""
        if "drop_s" in r:
            rec = (f"{r['recovery_s']:.0f} s" if r.get("recovery_s") is not None
                   else f"not within {r.get('recovery_over_s', '?')} s")
            maxfps = f"{f(r.get('max_fps_in_after_up'), 1)} ({f(r.get('frames_over_source_after_up'))})"
            timelines.append((c, codec, r))
        ended = "ok" if r["ok"] else f"**{r.get('end')}**"
        psnr = (f"{f(r['psnr_decoded_db'], 1)} / {f(r['psnr_as_shown_db'], 1)}"
                if r.get("psnr_decoded_db") is not None else "–")
        print(f"| {names.get(c, c)} | {codec} | {f(r['latency_p50_ms'])} | {f(r['latency_p99_ms'])} | "
              f"{f(r['fps_in'], 1)} | {f(r['mbit_in'], 2)} | {f(r['caller_target_kbit']) if codec == 'h264' else '–'} | {psnr} | {rec} | {maxfps} | {ended} | {f(r.get('forwarder_late_max_ms'))} ({r.get('forwarder_late_over_20ms', '–')} of {r.get('forwarder_frames', '–')}) |")
sys.path.insert(0, sys.argv[4])
import summarize
for c, codec, r in timelines:
    print(f"\nTimeline {names.get(c, c)}, {codec} (listener fps_in and latency; caller target and mbit_out):\n")
    print("```")
    print(summarize.timeline_text(r))
    print("```")
EOF
cat "$out/table.md"
echo "matrix.sh: results in $out (table.md, commands.txt, one directory per case)" >&2
