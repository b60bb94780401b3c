#!/usr/bin/env bash
# One vchat call across a lab link (lab.sh), measured from both ends.
#
#   scripts/netlab/run.sh --rate 5mbit --rtt 60 [--loss 1] [--duration 20] \
#       [--step "10:3mbit,20:20mbit"] [--codec h264|jpeg] \
#       [--source camlike|test|FILE.y4m] [--size 1280x720] [--fps 30] \
#       [--noise N] [--psnr] [--voice] --out DIR [--vchat BIN] [--timeline] \
#       [-- EXTRA CALLER ARGS, e.g. --max-bitrate 2000]
#
# Why it is built this way:
# - The caller (namespace A) sends the measured video; the listener (B)
#   sends vchat's own test pattern at 320x240 back (--back-size,
#   --back-source), a light reverse stream like a second camera. The
#   bottleneck is on the caller -> listener direction (--rate-back limits
#   the other one).
# - The listener's latency figures are capture (in the caller) to decoded
#   (in the listener). Both run on this machine, so it is one clock, and
#   they include the link's one-way delay, the queue and decoding.
# - --step times count from the moment the caller logs "connected", which
#   is also where vchat's elapsed_s starts (to within ~0.1 s); the applied
#   times are written to DIR/steps.log.
# - "camlike" makes a one-second 720p y4m of ffmpeg's testsrc2 under
#   temporal noise (vchat loops it): vchat's own pattern compresses to
#   ~0.14 Mbit/s in H.264 and never loads a link. It is cached in
#   $NETLAB_CACHE (default /tmp/vchat-netlab-cache). --noise sets its
#   temporal noise (ffmpeg's alls, default 24: heavy grain that loads the
#   link; 8 is a webcam in ordinary light).
# - --psnr records what the listener decoded and measures it against the
#   clip (examples/recording_psnr.rs, built with cargo if missing) into
#   DIR/psnr.json; the recording (~40 MB a second) is deleted after.
# - --voice: both ends send a tone (caller 440 Hz, listener 880 Hz) and
#   the listener records what it played (DIR/heard.wav); DIR/voice.json
#   then holds the voiced seconds, the longest gap and the gaps over 40 ms.
#   Without it both ends run --no-audio, so video-only figures stay
#   comparable with earlier runs.
# - Everything runs under lab.sh's trap: identities, namespaces and every
#   process started are removed on exit, Ctrl-C or TERM.
#
# Output: DIR/caller.jsonl, DIR/listener.jsonl (stdout of --stats json),
# DIR/caller.log, DIR/listener.log (stderr), DIR/meta.json (the case),
# DIR/steps.log, DIR/forwarder.log, DIR/qdisc.txt; then one summary line
# (summarize.py) on stdout, and the per-second timeline for step runs or
# with --timeline. Exit status: 0 when both ends ended the call
# normally, 1 otherwise (the summary is still printed when it can be).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

rate="" rate_back="" rtt=0 loss="" loss_ab="" loss_ba="" queue_ms=100
duration=20 steps="" codec=h264 source=camlike size=1280x720 fps=30 noise=24 psnr=""
back_source=test back_size=320x240 out="" vchat="${VCHAT:-$repo/target/release/vchat}"
extra=() summary_opts=()
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --rate-back) rate_back=$2; shift 2 ;;
    --rtt) rtt=$2; shift 2 ;;
    --loss) loss=$2; shift 2 ;;
    --loss-ab) loss_ab=$2; shift 2 ;;
    --loss-ba) loss_ba=$2; shift 2 ;;
    --queue-ms) queue_ms=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --step) steps=$2; shift 2 ;;
    --codec) codec=$2; shift 2 ;;
    --source) source=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --fps) fps=$2; shift 2 ;;
    --noise) noise=$2; shift 2 ;;
    --psnr) psnr=1; shift ;;
    --voice) voice=1; shift ;;
    --back-source) back_source=$2; shift 2 ;;
    --back-size) back_size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --vchat) vchat=$2; shift 2 ;;
    --timeline) summary_opts+=(--timeline); shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
done
[ -n "$out" ] || { echo "run.sh: --out DIR is required" >&2; usage; }
[ -x "$vchat" ] || { echo "run.sh: no vchat binary at $vchat (cargo build --release, or --vchat BIN)" >&2; exit 1; }
[[ "$duration" =~ ^[0-9]+$ ]] || { echo "run.sh: --duration takes whole seconds" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -f "$out"/{caller,listener}.{jsonl,log} "$out"/{steps.log,forwarder.log,qdisc.txt,meta.json,psnr.json,received.y4m}
[[ "$noise" =~ ^[0-9]+$ ]] || { echo "run.sh: --noise takes a whole number (ffmpeg's alls)" >&2; exit 2; }
psnr_tool="$repo/target/release/examples/recording_psnr"
if [ -n "$psnr" ] && [ ! -x "$psnr_tool" ]; then
  (cd "$repo" && cargo build --release --quiet --example recording_psnr) ||
    { echo "run.sh: could not build examples/recording_psnr.rs" >&2; exit 1; }
fi

# The source clip, made once and reused.
if [ "$source" = camlike ]; then
  cache="${NETLAB_CACHE:-/tmp/vchat-netlab-cache}"
  mkdir -p "$cache"
  clip="$cache/camlike-${size}-${fps}-n${noise}.y4m"
  if [ ! -s "$clip" ]; then
    command -v ffmpeg >/dev/null || { echo "run.sh: camlike needs ffmpeg" >&2; exit 1; }
    ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi \
      -i "testsrc2=size=${size}:rate=${fps},noise=alls=${noise}:allf=t" \
      -t 1 -pix_fmt yuv420p "$clip.$$.tmp.y4m"
    mv "$clip.$$.tmp.y4m" "$clip" # atomic: parallel runs share the cache
  fi
  source="$clip"
fi

# shellcheck source=lab.sh
source "$here/lab.sh"
lab_opts=(--rtt "$rtt" --queue-ms "$queue_ms")
[ -n "$rate" ] && lab_opts+=(--rate "$rate")
[ -n "$rate_back" ] && lab_opts+=(--rate-back "$rate_back")
[ -n "$loss" ] && lab_opts+=(--loss "$loss")
[ -n "$loss_ab" ] && lab_opts+=(--loss-ab "$loss_ab")
[ -n "$loss_ba" ] && lab_opts+=(--loss-ba "$loss_ba")
LAB_KEEP_LOG="$out/forwarder.log"
lab_up "${lab_opts[@]}"

# Identities that trust each other, thrown away with the lab.
ids="$LAB_RUN_DIR/ids"
mkdir -p "$ids/caller" "$ids/listener"
"$vchat" --dir "$ids/caller" keygen --name Caller >/dev/null 2>&1
"$vchat" --dir "$ids/listener" keygen --name Listener >/dev/null 2>&1
"$vchat" --dir "$ids/caller" trust "$ids/listener/cert.pem" --name listener >/dev/null 2>&1
"$vchat" --dir "$ids/listener" trust "$ids/caller/cert.pem" --name caller >/dev/null 2>&1

python3 - "$out/meta.json" <<EOF
import json, sys
json.dump({"rate": "$rate", "rate_back": "$rate_back", "rtt_ms": float("$rtt"),
           "loss": "$loss", "loss_ab": "$loss_ab", "loss_ba": "$loss_ba",
           "queue_ms": float("$queue_ms"), "duration_s": int("$duration"),
           "steps": "$steps", "codec": "$codec", "source": "$source",
           "size": "$size", "fps": int("$fps"), "noise": int("$noise"),
           "psnr": bool("$psnr"), "extra": "${extra[*]:-}"},
          open(sys.argv[1], "w"), indent=1)
EOF

export RUST_LOG="${RUST_LOG:-info}"
record=()
[ -n "$psnr" ] && record=(--record "$out/received.y4m")
caller_audio=(--no-audio)
listener_audio=(--no-audio)
if [ -n "${voice:-}" ]; then
  caller_audio=(--audio-source tone:440 --speaker none)
  rm -f "$out/heard.wav"
  listener_audio=(--audio-source tone:880 --speaker none --record-audio "$out/heard.wav")
fi
lab_spawn b "$out/listener.jsonl" "$out/listener.log" \
  "$vchat" --dir "$ids/listener" listen --once --bind "$LAB_IP_B:7878" --peer caller \
  --headless --stats json --codec "$codec" --source "$back_source" --size "$back_size" \
  --reconnect 0 "${record[@]}" "${listener_audio[@]}"
listener=$LAB_LAST_PID
lab_wait_line "$out/listener.log" "listening on" 30 "$listener" ||
  { echo "run.sh: the listener did not start:" >&2; cat "$out/listener.log" >&2; exit 1; }

lab_spawn a "$out/caller.jsonl" "$out/caller.log" \
  "$vchat" --dir "$ids/caller" call "$LAB_IP_B:7878" --peer listener \
  --headless --stats json --codec "$codec" --source "$source" --size "$size" --fps "$fps" \
  --duration "$duration" --reconnect 0 "${caller_audio[@]}" "${extra[@]}"
caller=$LAB_LAST_PID
lab_wait_line "$out/caller.log" "connected" 30 "$caller" ||
  { echo "run.sh: the call did not connect:" >&2; cat "$out/caller.log" >&2; exit 1; }
t0=$(date +%s%N)
: >"$out/steps.log"

# Rate steps, at their time from the connection, while the call runs.
if [ -n "$steps" ]; then
  IFS=, read -ra step_list <<<"$steps"
  for step in "${step_list[@]}"; do
    at=${step%%:*}
    step_rate=${step#*:}
    due=$((t0 + at * 1000000000))
    # A schedule, not synchronisation: the call runs on by itself; stop
    # early if it ended.
    while [ "$(date +%s%N)" -lt "$due" ] && kill -0 "$caller" 2>/dev/null; do sleep 0.05; done
    kill -0 "$caller" 2>/dev/null || break
    lab_set_rate "$step_rate"
    now=$(date +%s%N)
    printf '%s %s\n' "$(awk -v n="$((now - t0))" 'BEGIN { printf "%.2f", n / 1e9 }')" "$step_rate" >>"$out/steps.log"
  done
fi

rc=0
lab_wait_pid "$caller" $((duration + 60)) || rc=$?
[ "$rc" = 124 ] && echo "run.sh: the caller did not end within $((duration + 60)) s" >&2
lrc=0
lab_wait_pid "$listener" 30 || lrc=$?
[ "$lrc" = 124 ] && echo "run.sh: the listener did not end within 30 s of the caller" >&2
lab_qdisc_stats >"$out/qdisc.txt" 2>&1 || true
if [ -n "$psnr" ]; then
  if [ -s "$out/received.y4m" ]; then
    "$psnr_tool" "$source" "$out/received.y4m" >"$out/psnr.json" ||
      echo "run.sh: the PSNR measurement failed" >&2
  else
    echo "run.sh: --psnr: the listener recorded nothing" >&2
  fi
  [ -n "${NETLAB_KEEP_RECORDING:-}" ] || rm -f "$out/received.y4m"
fi

if [ -n "${voice:-}" ] && [ -s "$out/heard.wav" ]; then
  # What the listener heard: voiced span, longest quiet run, gaps over 40 ms.
  python3 -B - "$out/heard.wav" >"$out/voice.json" <<'PY' || echo "run.sh: the voice check failed" >&2
import json, struct, sys, wave
w = wave.open(sys.argv[1])
n = w.getnframes()
d = struct.unpack("<%dh" % n, w.readframes(n))
quiet = 328  # 0.01 of full scale, as tests/common/wav.rs
loud = [i for i, s in enumerate(d) if abs(s) > quiet]
gaps, run, longest = [], 0, 0
if loud:
    for s in d[loud[0]:loud[-1] + 1]:
        if abs(s) <= quiet:
            run += 1
        else:
            if run > 1920:
                gaps.append(round(run / 48, 1))
            run = 0
        longest = max(longest, run)
print(json.dumps({
    "recorded_s": round(n / 48000, 2),
    "voiced_s": round((loud[-1] - loud[0]) / 48000, 2) if loud else 0,
    "longest_gap_ms": round(longest / 48, 1),
    "gaps_over_40ms": gaps,
}))
PY
  cat "$out/voice.json"
fi

python3 -B "$here/summarize.py" "$out" "${summary_opts[@]}" || true
[ "$rc" = 0 ] && [ "$lrc" = 0 ]
