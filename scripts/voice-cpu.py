#!/usr/bin/env python3
"""What the voice costs in CPU: issue 14's goal of under 3 % of one core.

Two vchat processes on this machine call each other (160x120 test pattern
at 15 fps, so the video is small and steady), once with a tone sent both
ways and once with --no-audio, alternating, ROUNDS times. For each call the
listener's and the caller's CPU time (user + system, from /proc) is read
over the same window of the call, after its start and before its end, so
the handshake and the shutdown are not counted. The voice's cost per side
is the difference between the two kinds of call; the threads that do
nothing but voice (vchat-audio: capture and encode; vchat-playout: decode
and playout; vchat-voice: the datagrams) are also shown on their own.

Usage: scripts/voice-cpu.py [--vchat BIN] [--rounds N] [--seconds S]
The machine should be otherwise idle: the figures are shares of a core.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")
VOICE_THREADS = ("vchat-audio", "vchat-playout", "vchat-voice")
VIDEO = ["--headless", "--source", "test", "--size", "160x120", "--fps", "15", "--stats", "json"]
TONE = ["--speaker", "none", "--audio-source", "tone:440"]


def cpu_ticks(stat_path):
    """utime + stime of a process or thread, in clock ticks (0 if gone)."""
    try:
        with open(stat_path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # After the name: state is field 3, utime 14 and stime 15 (1-based).
    return int(fields[11]) + int(fields[12])


def threads(pid):
    """{thread name: ticks}, summed over threads of the same name."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        out[name] = out.get(name, 0) + cpu_ticks(f"/proc/{pid}/task/{tid}/stat")
    return out


def identities(vchat, root):
    a, b = os.path.join(root, "a"), os.path.join(root, "b")
    for d, name in ((a, "Alice"), (b, "Bob")):
        subprocess.run([vchat, "--dir", d, "keygen", "--name", name], check=True, capture_output=True)
    subprocess.run([vchat, "--dir", a, "trust", os.path.join(b, "cert.pem"), "--name", "b"], check=True, capture_output=True)
    subprocess.run([vchat, "--dir", b, "trust", os.path.join(a, "cert.pem"), "--name", "a"], check=True, capture_output=True)
    return a, b


def one_call(vchat, a, b, extra, seconds, skip, window):
    """CPU (share of a core) of listener and caller over the window, and
    the listener's per-thread shares."""
    duration = str(seconds)
    listener = subprocess.Popen(
        [vchat, "--dir", a, "listen", "--bind", "127.0.0.1:0", "--peer", "b", "--once", *VIDEO, *extra, "--duration", duration],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    addr = None
    for line in listener.stderr:
        if "listening on" in line:
            addr = line.rsplit(" ", 1)[1].strip().split(",")[0]
            break
    if addr is None:
        sys.exit("the listener did not start: " + (listener.stderr.read() or ""))
    caller = subprocess.Popen(
        [vchat, "--dir", b, "call", addr, "--peer", "a", *VIDEO, *extra, "--duration", duration],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(skip)
    start = (cpu_ticks(f"/proc/{listener.pid}/stat"), cpu_ticks(f"/proc/{caller.pid}/stat"), threads(listener.pid))
    time.sleep(window)
    end = (cpu_ticks(f"/proc/{listener.pid}/stat"), cpu_ticks(f"/proc/{caller.pid}/stat"), threads(listener.pid))
    listener.stderr.read()
    for p in (caller, listener):
        if p.wait(timeout=seconds + 60) != 0:
            sys.exit(f"a call ended with exit code {p.returncode}")
    share = lambda ticks: 100.0 * ticks / TICK / window
    per_thread = {name: share(end[2].get(name, 0) - t) for name, t in start[2].items()}
    return share(end[0] - start[0]), share(end[1] - start[1]), per_thread


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vchat", default="target/release/vchat")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    skip = 5.0
    window = args.seconds - 2 * skip
    with tempfile.TemporaryDirectory() as root:
        a, b = identities(args.vchat, root)
        deltas = []
        for n in range(1, args.rounds + 1):
            quiet = one_call(args.vchat, a, b, ["--no-audio"], args.seconds, skip, window)
            voiced = one_call(args.vchat, a, b, TONE, args.seconds, skip, window)
            side = [voiced[0] - quiet[0], voiced[1] - quiet[1]]
            deltas.extend(side)
            voice_threads = sum(voiced[2].get(t, 0.0) for t in VOICE_THREADS)
            detail = ", ".join(f"{t} {voiced[2].get(t, 0.0):.2f}" for t in VOICE_THREADS)
            others = ", ".join(f"{t} {v:.2f}" for t, v in sorted(voiced[2].items()) if t not in VOICE_THREADS and v > 0)
            print(f"round {n}: --no-audio {quiet[0]:.2f} / {quiet[1]:.2f} %, tone both ways {voiced[0]:.2f} / {voiced[1]:.2f} % "
                  f"(listener / caller); voice costs {side[0]:.2f} / {side[1]:.2f} % of a core")
            print(f"  listener's voice threads {voice_threads:.2f} %: {detail}; the rest: {others}")
        deltas.sort()
        median = deltas[len(deltas) // 2] if len(deltas) % 2 else sum(deltas[len(deltas) // 2 - 1:len(deltas) // 2 + 1]) / 2
        print(f"voice per side: median {median:.2f} %, range {deltas[0]:.2f} to {deltas[-1]:.2f} % of a core "
              f"({len(deltas)} sides, {window:.0f} s windows)")


if __name__ == "__main__":
    main()
