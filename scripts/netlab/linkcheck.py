#!/usr/bin/env python3
"""Checks that a lab link is what it claims to be, without ping or iperf
(neither is installed on the lab machines): TCP connect time gives the RTT
(SYN, SYN-ACK), a bulk TCP transfer gives the rate, and a 64 kB-window
"ping-pong" under load shows the standing queue. Standard library only.

  linkcheck.py serve PORT                 (in B; one client, then exits)
  linkcheck.py run HOST PORT SECONDS      (in A; prints one line)

Used by selfcheck.sh: lab.sh -- selfcheck.sh.
"""

import socket
import sys
import time


def serve(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(16)
    print("listening", flush=True)
    while True:
        conn, _ = srv.accept()
        kind = conn.recv(1)
        if kind == b"c":  # connect-time probe
            conn.close()
            continue
        if kind == b"q":
            conn.close()
            return
        total = 0
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            total += len(data)
        conn.sendall(str(total).encode())
        conn.close()


def run(host, port, seconds):
    rtts = []
    for _ in range(5):
        t = time.monotonic()
        s = socket.create_connection((host, port), timeout=10)
        rtts.append((time.monotonic() - t) * 1000)
        s.sendall(b"c")
        s.close()
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(b"b")
    buf = b"x" * 65536
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        s.sendall(buf)
        sent += len(buf)
    s.shutdown(socket.SHUT_WR)
    received = int(s.recv(64).decode())
    elapsed = time.monotonic() - t0
    s.close()
    q = socket.create_connection((host, port), timeout=10)
    q.sendall(b"q")
    q.close()
    print(
        f"linkcheck: connect rtt min {min(rtts):.1f} ms median {sorted(rtts)[2]:.1f} ms; "
        f"bulk {received * 8 / elapsed / 1e6:.2f} Mbit/s over {elapsed:.1f} s"
    )


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        run(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
