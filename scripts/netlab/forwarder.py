#!/usr/bin/env python3
"""Delay-and-loss forwarder for the vchat network lab (runs in namespace M).

Why this exists: the lab kernel has tbf and htb but no netem, so nothing in
the kernel can add propagation delay or random loss. This process is the
"wire" between M's two veth interfaces: it reads every Ethernet frame that
arrives on one side (AF_PACKET, all ethertypes, so ARP and IPv6 pass too)
and writes it out of the other side after a fixed one-way delay, dropping a
configurable share at random. M has no addresses of its own, so the kernel
in M never forwards or answers anything itself: this process is the only
path between A and B.

Design decisions, and why:
- Delay is constant per direction, so due times leave in arrival order and
  each direction is a FIFO (a deque): O(1) per packet, and no reordering,
  which a real path without jitter does not have either. The event loop
  sleeps in epoll until the earlier of "a frame arrived" and "the head of a
  queue is due", then releases everything that is due. A frame is never
  held longer than its due time because of other frames: the loop drains
  the sockets and the due queues completely on every wake-up. The worst
  lateness (release time minus due time) is measured and printed at exit
  so a run can show the forwarder did not add its own queueing.
- Rate limiting is not done here but by tbf on M's egress interfaces
  (lab.sh). A frame this process writes enters that qdisc, so the order is
  "propagation delay, then bottleneck queue", and the kernel's shaper, not
  Python's timing, decides the rate. Writes are non-blocking with a large
  send buffer: when tbf's queue is full the kernel drops the frame (ENOBUFS),
  which is exactly what a full bottleneck queue does; the drop is counted,
  and never stalls the other direction.
- Frames this process sends itself are seen again on the tap as
  PACKET_OUTGOING; they are ignored (PACKET_IGNORE_OUTGOING where the kernel
  has it, and a pkttype check always) so nothing loops.
- Checksums: the veths must have tx checksum offload, TSO, GSO and GRO off
  (lab.sh runs ethtool), otherwise the tap sees frames with partial
  checksums or 64 kB super-frames that B's kernel would drop.
- Loss uses a seeded PRNG (--seed) so a case can be repeated.

Usage: forwarder.py --a IF_TOWARD_A --b IF_TOWARD_B
                    [--delay-ab MS] [--delay-ba MS] [--loss-ab PCT] [--loss-ba PCT]
                    [--seed N] [--ready FILE]
"a->b" is the direction from A's side toward B's side (caller to listener).
On SIGTERM/SIGINT it prints one line of counters to stderr and exits 0.
"""

import argparse
import collections
import errno
import os
import random
import resource
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
BUF_BYTES = 8 * 1024 * 1024


def open_tap(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, ETH_P_ALL))
    s.setblocking(False)
    for opt, fallback in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, BUF_BYTES)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, fallback, BUF_BYTES)
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass  # older kernel: the pkttype check below still filters
    return s


class Stopped(Exception):
    pass


class Direction:
    def __init__(self, name, rx, tx, delay_ms, loss_pct, rng):
        self.name = name
        self.rx = rx
        self.tx = tx
        self.delay = delay_ms / 1000.0
        self.loss = loss_pct / 100.0
        self.rng = rng
        self.queue = collections.deque()  # (due, frame), due non-decreasing
        self.frames_in = 0
        self.lost = 0
        self.sent = 0
        self.tx_dropped = 0  # tbf queue full (ENOBUFS) or send buffer full
        self.max_late = 0.0
        self.sum_late = 0.0
        self.late_over_5ms = 0
        self.late_over_20ms = 0
        self.max_queued = 0

    def receive(self, now):
        while True:
            try:
                frame, addr = self.rx.recvfrom(65535)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            if addr[2] == PACKET_OUTGOING:
                continue
            self.frames_in += 1
            if self.loss and self.rng.random() < self.loss:
                self.lost += 1
                continue
            self.queue.append((now + self.delay, frame))
            if len(self.queue) > self.max_queued:
                self.max_queued = len(self.queue)

    def release(self, now):
        q = self.queue
        while q and q[0][0] <= now:
            due, frame = q.popleft()
            try:
                self.tx.send(frame)
                self.sent += 1
            except OSError as e:
                if e.errno in (errno.ENOBUFS, errno.EAGAIN, errno.EWOULDBLOCK):
                    self.tx_dropped += 1
                elif e.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    raise SystemExit(0)  # the lab is being torn down
                else:
                    raise
            late = now - due
            self.sum_late += late
            if late > 0.005:
                self.late_over_5ms += 1
                if late > 0.020:
                    self.late_over_20ms += 1
            if late > self.max_late:
                self.max_late = late

    def next_due(self):
        return self.queue[0][0] if self.queue else None

    def report(self):
        released = self.sent + self.tx_dropped
        mean_late = self.sum_late / released if released else 0.0
        return (
            f"{self.name}: in {self.frames_in} lost {self.lost} sent {self.sent} "
            f"tbf_drops {self.tx_dropped} max_queued {self.max_queued} "
            f"late_mean {mean_late * 1000:.2f}ms late_max {self.max_late * 1000:.2f}ms "
            f"late>5ms {self.late_over_5ms} late>20ms {self.late_over_20ms}"
        )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="M's interface toward A")
    p.add_argument("--b", required=True, help="M's interface toward B")
    p.add_argument("--delay-ab", type=float, default=0.0)
    p.add_argument("--delay-ba", type=float, default=0.0)
    p.add_argument("--loss-ab", type=float, default=0.0)
    p.add_argument("--loss-ba", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ready", help="file to create once the sockets are open")
    args = p.parse_args()

    tap_a = open_tap(args.a)
    tap_b = open_tap(args.b)
    rng = random.Random(args.seed)
    ab = Direction("a->b", tap_a, tap_b, args.delay_ab, args.loss_ab, rng)
    ba = Direction("b->a", tap_b, tap_a, args.delay_ba, args.loss_ba, rng)
    by_fd = {tap_a.fileno(): ab, tap_b.fileno(): ba}

    # Raising from the handler is what ends the loop: Python retries an
    # interrupted epoll wait by itself (PEP 475), so a flag would only be
    # seen at the next frame.
    def stop(*_):
        raise Stopped()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    ep = select.epoll()
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)

    if args.ready:
        with open(args.ready + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(args.ready + ".tmp", args.ready)

    clock = time.monotonic
    started = clock()
    try:
        while True:
            dues = [d for d in (ab.next_due(), ba.next_due()) if d is not None]
            timeout = -1
            if dues:
                # epoll waits in whole milliseconds (rounded up): at most
                # ~1 ms late, which the lateness counters show.
                timeout = max(0.0, min(dues) - clock())
            events = ep.poll(timeout)
            now = clock()
            for fd, _ in events:
                by_fd[fd].receive(now)
            now = clock()
            ab.release(now)
            ba.release(now)
    except Stopped:
        pass
    finally:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu = ru.ru_utime + ru.ru_stime
        wall = max(clock() - started, 1e-9)
        print(f"forwarder: {ab.report()}; {ba.report()}; cpu {cpu:.1f} s in {wall:.0f} s ({100 * cpu / wall:.0f}% of a core)",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
