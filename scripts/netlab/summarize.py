#!/usr/bin/env python3
"""Summarises one lab run (a run.sh --out DIR): the figures a person or
matrix.sh compares between cases, from the two --stats json files.

  summarize.py DIR            one line; a per-second timeline too for step runs
  summarize.py DIR --json     the same figures as one JSON object
  summarize.py DIR --timeline the timeline even without steps

Why these figures, and where each comes from:
- latency p50/p99: the listener's summary line. Its latency is capture (in
  the caller) to decoded (in the listener) of the caller's frames, so it
  holds the link's delay, the queues and decoding; both processes share the
  machine's clock, so the figure is exact.
- fps in / Mbit/s in: the mean of the listener's per-second lines, the whole
  call (the start-up ramp included: it is part of what a person sees).
- For step runs (--step in meta.json), "recovery": seconds from the rate
  drop until the listener's per-second latency p50 is back under 300 ms for
  the rest of the low-rate phase (a second without any frame counts as not
  recovered; 0 means it never went over); and the highest fps_in of any
  second after the rate comes back, which shows a backlog replayed (> the
  capture rate) instead of dropped.
The caller's and listener's lines are matched by whole elapsed seconds;
each side counts from its own "connected" (within ~0.1 s of the other).
"""

import json
import math
import os
import sys

RECOVERED_MS = 300.0


def load(path):
    stats, summary = [], None
    if not os.path.exists(path):
        return stats, summary
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("event") == "stats":
                stats.append(v)
            elif v.get("event") == "summary":
                summary = v
    return stats, summary


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def rate_bits(r):
    """'5mbit' -> 5e6 (the units tc takes)."""
    r = r.strip().lower()
    for unit, m in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)):
        if r.endswith(unit):
            return float(r[: -len(unit)]) * m
    return float(r)


def steps_of(meta, out):
    """[(seconds, rate_bits)], the applied times from steps.log when there."""
    spec = meta.get("steps") or ""
    planned = []
    for part in filter(None, spec.split(",")):
        at, rate = part.split(":", 1)
        planned.append((float(at), rate_bits(rate)))
    applied = []
    path = os.path.join(out, "steps.log")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                at, rate = line.split()
                applied.append((float(at), rate_bits(rate)))
    return applied if len(applied) == len(planned) else planned


def by_second(stats):
    return {int(round(v.get("elapsed_s", i + 1))): v for i, v in enumerate(stats)}


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:.{digits}f}"


def analyse(out):
    meta = {}
    if os.path.exists(os.path.join(out, "meta.json")):
        with open(os.path.join(out, "meta.json")) as f:
            meta = json.load(f)
    l_stats, l_sum = load(os.path.join(out, "listener.jsonl"))
    c_stats, c_sum = load(os.path.join(out, "caller.jsonl"))
    r = {
        "case": meta,
        "ok": bool(l_sum and l_sum.get("ok") and c_sum and c_sum.get("ok")),
        "end": (c_sum or {}).get("end"),
        "latency_p50_ms": (l_sum or {}).get("latency_p50_ms"),
        "latency_p99_ms": (l_sum or {}).get("latency_p99_ms"),
        "frames_in": (l_sum or {}).get("frames_in"),
        "frames_out": (c_sum or {}).get("frames_out"),
        "fps_in": mean([v.get("fps_in") for v in l_stats]),
        "mbit_in": mean([v.get("mbit_in") for v in l_stats]),
        "caller_target_kbit": mean([v.get("target_kbit") for v in c_stats]),
        "caller_mbit_out": mean([v.get("mbit_out") for v in c_stats]),
        "seconds": len(l_stats),
    }
    for k in ("too_late", "link_busy", "rate_skipped", "dropped_out", "keyframes_out"):
        r["caller_" + k] = (c_sum or {}).get(k)
    lsec, csec = by_second(l_stats), by_second(c_stats)
    timeline = []
    for s in sorted(set(lsec) | set(csec)):
        lv, cv = lsec.get(s, {}), csec.get(s, {})
        timeline.append({
            "t": s,
            "fps_in": lv.get("fps_in"),
            "mbit_in": lv.get("mbit_in"),
            "latency_p50_ms": lv.get("latency_p50_ms"),
            "latency_max_ms": lv.get("latency_max_ms"),
            "target_kbit": cv.get("target_kbit"),
            "mbit_out": cv.get("mbit_out"),
            "fps_out": cv.get("fps_out"),
            "acked_kbit": cv.get("acked_kbit"),
            "rtt_ms": cv.get("rtt_ms"),
        })
    r["timeline"] = timeline
    # The lab's own health: how late the forwarder released frames (its
    # wake-ups on a loaded machine), from its counters at exit.
    fwd = os.path.join(out, "forwarder.log")
    if os.path.exists(fwd):
        import re
        text = open(fwd).read()
        lates = [float(x) for x in re.findall(r"late_max ([0-9.]+)ms", text)]
        over = [int(x) for x in re.findall(r"late>20ms ([0-9]+)", text)]
        sent = [int(x) for x in re.findall(r" sent ([0-9]+)", text)]
        if lates:
            r["forwarder_late_max_ms"] = max(lates)
            r["forwarder_late_over_20ms"] = sum(over)
            r["forwarder_frames"] = sum(sent)

    steps = steps_of(meta, out)
    r["steps"] = steps
    if steps:
        start = rate_bits(meta["rate"]) if meta.get("rate") else math.inf
        prev, drop, up = start, None, None
        for at, bits in steps:
            if drop is None and bits < prev:
                drop = at
            elif drop is not None and up is None and bits > prev:
                up = at
            prev = bits
        r["drop_s"], r["up_s"] = drop, up
        if drop is not None:
            end = up if up is not None else max(lsec) if lsec else drop
            # Second t covers (t-1, t]: the low phase is the seconds that
            # end after the drop and no later than the rate's return.
            low = [(s, lsec.get(s)) for s in range(int(math.floor(drop)) + 1, int(math.floor(end)) + 1)]

            def bad(v):
                return (v is None or not v.get("fps_in") or v.get("latency_p50_ms") is None
                        or v["latency_p50_ms"] >= RECOVERED_MS)

            bad_seconds = [s for s, v in low if bad(v)]
            if not bad_seconds:
                r["recovery_s"] = 0.0
            elif low and bad_seconds[-1] == low[-1][0]:
                r["recovery_s"] = None  # still over at the end of the low phase
                r["recovery_over_s"] = round(low[-1][0] - drop, 1)
            else:
                r["recovery_s"] = round(bad_seconds[-1] - drop, 1)
        if up is not None:
            after = [v.get("fps_in") or 0.0 for s, v in lsec.items() if s > up]
            r["max_fps_in_after_up"] = max(after) if after else None
            # A replayed backlog shows as seconds of frames above the
            # source's rate; a drained bottleneck queue as a few frames.
            fps = float(meta.get("fps") or 30)
            r["frames_over_source_after_up"] = round(sum(max(0.0, x - fps) for x in after))
    p = os.path.join(out, "psnr.json")
    if os.path.exists(p):
        try:
            q = json.load(open(p))
            r["psnr_decoded_db"] = q["decoded"]["mean_db"]
            r["psnr_as_shown_db"] = q["as_shown"]["mean_db"]
            r["psnr_decoded_p10_db"] = q["decoded"]["p10_db"]
        except (ValueError, KeyError, TypeError):
            pass
    return r


def line(r):
    c = r["case"]
    what = (f"{c.get('codec', '?')} rate {c.get('rate') or 'none'} rtt {fmt(c.get('rtt_ms'))} ms"
            f" loss {c.get('loss') or 0}%")
    if c.get("steps"):
        what += f" steps {c['steps']}"
    s = (f"{what} | latency p50 {fmt(r['latency_p50_ms'])} ms p99 {fmt(r['latency_p99_ms'])} ms"
         f" | fps in {fmt(r['fps_in'], 1)} | Mbit/s in {fmt(r['mbit_in'], 2)}"
         f" | frames {r['frames_in']}/{r['frames_out']} | caller target {fmt(r['caller_target_kbit'])} kbit"
         f" out {fmt(r['caller_mbit_out'], 2)} Mbit/s | {'ok' if r['ok'] else 'NOT OK: ' + str(r['end'])}")
    if "drop_s" in r:
        rec = r.get("recovery_s")
        rec = f"{rec:.0f} s" if rec is not None else f"> {r.get('recovery_over_s', '?')} s (not recovered)"
        s += f" | back under {RECOVERED_MS:.0f} ms {rec} after the drop"
        if r.get("max_fps_in_after_up") is not None:
            s += (f" | max fps in after the rate is back {r['max_fps_in_after_up']:.1f}"
                  f" ({r.get('frames_over_source_after_up')} frames over the source's rate)")
    if r.get("psnr_decoded_db") is not None:
        s += (f" | PSNR {r['psnr_decoded_db']:.1f} dB decoded (p10 {r['psnr_decoded_p10_db']:.1f}),"
              f" {r['psnr_as_shown_db']:.1f} dB as shown")
    return s


def timeline_text(r):
    rows = ["   t  fps_in  lat_p50  lat_max  target_kbit  mbit_out     acked_kbit  rtt_ms  rate"]
    steps = r.get("steps") or []
    for v in r["timeline"]:
        mark = " ".join(f"<- {bits / 1e6:g} Mbit/s at {at:.1f} s" for at, bits in steps if v["t"] - 1 < at <= v["t"])
        rows.append(f"{v['t']:4d}  {fmt(v['fps_in'], 1):>6}  {fmt(v['latency_p50_ms']):>7}  "
                    f"{fmt(v['latency_max_ms']):>7}  {fmt(v['target_kbit']):>11}  {fmt(v['mbit_out'], 2):>8}  "
                    f"{fmt(v['acked_kbit']):>13}  {fmt(v['rtt_ms']):>6}  {mark}")
    return "\n".join(rows)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    r = analyse(out)
    if "--json" in sys.argv:
        print(json.dumps(r))
        return
    print(line(r))
    if r.get("steps") or "--timeline" in sys.argv:
        print(timeline_text(r))


if __name__ == "__main__":
    main()
