#!/usr/bin/env python3
"""The peer's voice packets as the listener received them in a lab run, for
examples/playout_replay.rs: one line per packet, `seq,capture_us,arrival_us`
(microseconds on the machine's clock, which both ends of a lab call share).

  voice-arrivals.py DIR        writes DIR/voice-arrivals.csv

The run must have been made with the voice path's trace on, e.g.
  RUST_LOG=info,vchat::call::voice_path=trace scripts/netlab/run.sh ... --voice --out DIR
whose "voice packet by datagram" lines (first copies only) give each packet's
number and transit; the line's own timestamp is its arrival.
"""

import calendar
import re
import sys

STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z")
PACKET = re.compile(r"seq=(\d+) transit_us=(-?\d+)")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = sys.argv[1]
    rows = []
    try:
        log = open(f"{run}/listener.log", encoding="utf-8", errors="replace")
    except OSError as e:
        sys.exit(f"cannot read {run}/listener.log ({e}): give the --out DIR of a lab run")
    with log:
        for line in log:
            if "voice packet by datagram" not in line:
                continue
            stamp, packet = STAMP.search(line), PACKET.search(line)
            if not stamp or not packet:
                continue
            fraction = ((stamp.group(7) or "") + "000000")[:6]
            seconds = calendar.timegm(tuple(int(stamp.group(i)) for i in range(1, 7)))
            arrival = seconds * 1_000_000 + int(fraction)
            seq, transit = int(packet.group(1)), int(packet.group(2))
            rows.append(f"{seq},{arrival - transit},{arrival}\n")
    if not rows:
        sys.exit(f"no 'voice packet by datagram' lines in {run}/listener.log: "
                 "run the lab with RUST_LOG=info,vchat::call::voice_path=trace")
    with open(f"{run}/voice-arrivals.csv", "w") as out:
        out.writelines(rows)
    print(f"{run}/voice-arrivals.csv: {len(rows)} packets")


if __name__ == "__main__":
    main()
