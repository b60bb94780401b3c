#!/usr/bin/env python3
"""Helpers for tornet.sh and selfcheck.sh (a private Tor network on 127.0.0.1).

Why this file exists: the shell scripts need to talk three small protocols
that bash cannot speak reliably: tor's control protocol (cookie
authentication, GETINFO, SETCONF, ADD_ONION and the HS_DESC events), plain
HTTP to the authorities' DirPorts (to see what consensus they serve), and
SOCKS5 with tor's extended error codes. Standard library only, so nothing
needs installing besides tor. Every wait takes an absolute deadline (epoch
seconds) so that the caller can bound a whole sequence of steps with one
timeout, and optionally a pids file, to fail fast when a tor has died
instead of waiting out the deadline.

Subcommands (all print errors to stderr and exit non-zero on failure):
  ports N                         N free TCP ports on 127.0.0.1, one per line
  wait-consensus --auth A ...     until every authority serves a consensus
                                  that lists all --router names, each with
                                  the required flags
  setconf CTRL COOKIE KEY=VALUE   SETCONF over the control port
  wait-bootstrap CTRL COOKIE ...  until every client reports PROGRESS=100
  bootstrap CTRL COOKIE           print the client's bootstrap progress
  publish CTRL COOKIE VPORT TARGET
                                  ADD_ONION (Detach) and wait for the first
                                  650 HS_DESC UPLOADED; prints the service id
  echo-server                     TCP echo server on 127.0.0.1:<free>; prints
                                  the port, then serves until killed, until
                                  --parent PID is gone or --max-seconds
  socks-echo SOCKS HOST PORT      SOCKS5 (ATYP 3) to HOST:PORT, retrying on
                                  0xF0; sends a line and checks the echo
"""

import argparse
import http.client
import os
import socket
import struct
import sys
import threading
import time

POLL = 0.25  # seconds between polls of a condition


class Fail(Exception):
    """A failure with a message meant for the person running the script."""


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


def remaining(deadline):
    left = deadline - time.time()
    if left <= 0:
        raise TimeoutError
    return left


def check_pids(pids_file):
    """Raise Fail if a tor listed in pids_file ("name pid" lines) has exited."""
    if not pids_file:
        return
    with open(pids_file) as f:
        for line in f:
            if not line.strip():
                continue
            name, pid = line.split()
            try:
                with open(f"/proc/{pid}/stat") as st:
                    state = st.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                state = "gone"
            if state in ("gone", "Z", "X"):
                raise Fail(f"tor '{name}' (pid {pid}) has exited; see its log "
                           f"in {os.path.dirname(pids_file)}/{name}/")


# --------------------------------------------------------------- control port

class Control:
    """A minimal tor control-port client with cookie authentication.

    Replies are read line by line from our own buffer (no socket.makefile:
    a file object is unusable after a read timeout). Asynchronous events
    (code 650) that arrive while waiting for a reply are queued.
    """

    def __init__(self, addr, cookie_path, deadline):
        self.buf = b""
        self.events = []
        self.sock = None
        last = None
        # The control port and the cookie file appear a moment after tor
        # starts: retry until the deadline.
        while True:
            try:
                with open(cookie_path, "rb") as f:
                    cookie = f.read()
                if len(cookie) != 32:
                    raise OSError(f"cookie file {cookie_path} is not 32 bytes yet")
                self.sock = socket.create_connection(
                    split_addr(addr), timeout=min(5, remaining(deadline)))
                break
            except OSError as e:  # includes timeouts
                last = e
            if time.time() + POLL >= deadline:
                raise Fail(f"cannot reach the control port {addr}: {last}")
            time.sleep(POLL)
        self.deadline = deadline
        self.command("AUTHENTICATE " + cookie.hex())

    def close(self):
        if self.sock:
            self.sock.close()

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            self.sock.settimeout(remaining(deadline))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError
            if not chunk:
                raise Fail("tor closed the control connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def _message(self, deadline):
        """One complete reply or event: (code, [lines])."""
        lines = []
        while True:
            line = self._line(deadline)
            code, sep, rest = line[:3], line[3:4], line[4:]
            if sep == "+":  # data block, ends with a line holding "."
                data = []
                while True:
                    d = self._line(deadline)
                    if d == ".":
                        break
                    data.append(d[1:] if d.startswith("..") else d)
                lines.append(rest + "\n" + "\n".join(data))
            else:
                lines.append(rest)
            if sep == " ":
                return code, lines

    def command(self, cmd, deadline=None):
        deadline = deadline or self.deadline
        self.sock.sendall(cmd.encode() + b"\r\n")
        while True:
            code, lines = self._message(deadline)
            if code == "650":
                self.events.append(lines)
                continue
            if code != "250":
                verb = cmd.split()[0]
                raise Fail(f"tor refused {verb}: {code} {' '.join(lines)}")
            return lines

    def next_event(self, deadline):
        if self.events:
            return self.events.pop(0)
        while True:
            code, lines = self._message(deadline)
            if code == "650":
                return lines

    def bootstrap_phase(self):
        # -> 'NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"'
        return self.command("GETINFO status/bootstrap-phase")[0].split("=", 1)[1]


def progress_of(phase):
    for word in phase.split():
        if word.startswith("PROGRESS="):
            return int(word.split("=")[1])
    return -1


# ------------------------------------------------------------------- commands

def cmd_ports(args):
    socks = []
    try:
        for _ in range(args.n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print("\n".join(str(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()


def http_get(addr, path, timeout):
    """Body of a plain HTTP GET to a DirPort (no proxy, whatever the env says)."""
    host, port = split_addr(addr)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
    finally:
        conn.close()
    if resp.status != 200:
        raise OSError(f"HTTP {resp.status}")
    return body


def consensus_problem(addr, routers, flags, guards, timeout):
    """None if the authority at addr serves a microdesc consensus that lists
    every router with the flags, and serves all of its microdescriptors;
    else why not. (The microdesc flavour is the one clients download, from
    the authorities, which are their only directory guards here.)"""
    body = http_get(addr, "/tor/status-vote/current/consensus-microdesc", timeout)
    listed = {}
    digests = []
    name = None
    for line in body.splitlines():
        if line.startswith("r "):
            name = line.split()[1]
            listed[name] = set()
        elif line.startswith("s ") and name:
            listed[name] = set(line.split()[1:])
        elif line.startswith("m ") and name:
            digests.append(line.split()[1])
    missing = [r for r in routers if r not in listed]
    if missing:
        return f"{len(listed)}/{len(routers)} routers listed, missing {','.join(missing)}"
    for r in routers:
        need = set(flags) | ({"Guard"} if r in guards else set())
        lacking = need - listed[r]
        if lacking:
            return f"{r} lacks {','.join(sorted(lacking))}"
    # A client that gets the consensus before the microdescriptors stalls at
    # "Loading relay descriptors" until the next consensus.
    mds = http_get(addr, "/tor/micro/d/" + "-".join(digests), timeout)
    have = sum(1 for line in mds.splitlines() if line.startswith("ntor-onion-key "))
    if have < len(digests):
        return f"serves {have}/{len(digests)} microdescriptors"
    return None


def cmd_wait_consensus(args):
    flags = [f for f in args.flags.split(",") if f]
    guards = set(g for g in args.guards.split(",") if g)
    why = {a: "no answer yet" for a in args.auth}
    try:
        while True:
            check_pids(args.pids)
            for a in args.auth:
                if why[a] is None:
                    continue
                try:
                    why[a] = consensus_problem(a, args.router, flags, guards,
                                               min(5, remaining(args.deadline)))
                except OSError as e:
                    why[a] = f"no consensus yet ({e})"
            if all(w is None for w in why.values()):
                return
            time.sleep(POLL)
            remaining(args.deadline)
    except TimeoutError:
        detail = "; ".join(f"{a}: {w}" for a, w in why.items() if w)
        raise Fail(f"timed out waiting for a complete consensus ({detail})")


def cmd_setconf(args):
    ctl = Control(args.control, args.cookie, args.deadline)
    try:
        ctl.command("SETCONF " + " ".join(args.setting))
    finally:
        ctl.close()


def cmd_wait_bootstrap(args):
    pairs = list(zip(args.pairs[0::2], args.pairs[1::2]))
    phase = {ctrl: "not connected" for ctrl, _ in pairs}
    conns = {}
    try:
        for ctrl, cookie in pairs:
            conns[ctrl] = Control(ctrl, cookie, args.deadline)
        while True:
            check_pids(args.pids)
            for ctrl, c in conns.items():
                phase[ctrl] = c.bootstrap_phase()
            if all(progress_of(p) == 100 for p in phase.values()):
                return
            time.sleep(POLL)
            remaining(args.deadline)
    except TimeoutError:
        detail = "; ".join(f"{c}: {p}" for c, p in phase.items())
        raise Fail(f"timed out waiting for clients to bootstrap ({detail})")
    finally:
        for c in conns.values():
            c.close()


def cmd_bootstrap(args):
    ctl = Control(args.control, args.cookie, time.time() + args.timeout)
    try:
        print(ctl.bootstrap_phase())
    finally:
        ctl.close()


def cmd_publish(args):
    ctl = Control(args.control, args.cookie, args.deadline)
    try:
        ctl.command("SETEVENTS HS_DESC")
        reply = ctl.command(f"ADD_ONION NEW:ED25519-V3 Flags=Detach,DiscardPK "
                            f"Port={args.vport},{args.target}")
        sid = next(l.split("=", 1)[1] for l in reply if l.startswith("ServiceID="))
        # 650 HS_DESC UPLOADED <address> UNKNOWN <hsdir> ...: one HSDir has it.
        failed = 0
        while True:
            ev = ctl.next_event(args.deadline)[0].split()
            if len(ev) >= 3 and ev[0] == "HS_DESC" and ev[2] == sid:
                if ev[1] == "UPLOADED":
                    break
                if ev[1] == "FAILED":
                    failed += 1
        print(sid)
        if failed:
            print(f"tornet: {failed} descriptor upload(s) failed before the first "
                  f"success", file=sys.stderr)
    except TimeoutError:
        raise Fail("timed out waiting for 650 HS_DESC UPLOADED")
    finally:
        ctl.close()


def cmd_echo_server(args):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(1)
    print(srv.getsockname()[1], flush=True)
    # Bounded even if whoever started us dies without killing us: exit when
    # the --parent process is gone or after --max-seconds.
    end = time.time() + args.max_seconds

    def serve(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    while time.time() < end:
        if args.parent and not os.path.exists(f"/proc/{args.parent}"):
            return
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        conn.settimeout(None)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


SOCKS_ERRORS = {
    1: "general failure", 2: "not allowed by ruleset", 3: "network unreachable",
    4: "host unreachable", 5: "connection refused", 6: "TTL expired",
    7: "command not supported", 8: "address type not supported",
    0xF0: "onion service descriptor not found",
    0xF1: "onion service descriptor invalid",
    0xF2: "onion service introduction failed",
    0xF3: "onion service rendezvous failed",
    0xF4: "onion service missing client authorization",
    0xF5: "onion service wrong client authorization",
    0xF6: "onion address invalid",
    0xF7: "onion service introduction timed out",
}


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise Fail("the SOCKS proxy closed the connection")
        data += chunk
    return data


def socks5_connect(proxy, host, port, deadline):
    """A connected socket, or the SOCKS5 reply code (int) on refusal."""
    sock = socket.create_connection(split_addr(proxy), timeout=remaining(deadline))
    try:
        sock.settimeout(remaining(deadline))
        sock.sendall(b"\x05\x01\x00")  # version 5, one method: no auth
        if recv_exact(sock, 2) != b"\x05\x00":
            raise Fail("the SOCKS proxy refused 'no authentication'")
        name = host.encode()
        # CONNECT with ATYP 3 (domain name): tor resolves the onion itself.
        sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name
                     + struct.pack(">H", port))
        ver, rep, _, atyp = recv_exact(sock, 4)
        if ver != 5:
            raise Fail(f"bad SOCKS reply version {ver}")
        if atyp == 1:
            recv_exact(sock, 4 + 2)
        elif atyp == 4:
            recv_exact(sock, 16 + 2)
        elif atyp == 3:
            recv_exact(sock, recv_exact(sock, 1)[0] + 2)
        if rep != 0:
            sock.close()
            return rep
        return sock
    except BaseException:
        sock.close()
        raise


def cmd_socks_echo(args):
    tries = 0
    try:
        while True:
            tries += 1
            got = socks5_connect(args.socks, args.host, args.port, args.deadline)
            if isinstance(got, socket.socket):
                break
            what = SOCKS_ERRORS.get(got, "unknown")
            if got != 0xF0:
                raise Fail(f"SOCKS CONNECT to {args.host}:{args.port} failed: "
                           f"0x{got:02X} ({what})")
            print(f"tornet: attempt {tries}: 0x{got:02X} ({what}), retrying",
                  file=sys.stderr)
            time.sleep(args.retry_delay)
            remaining(args.deadline)
        with got:
            payload = f"vchat-tornet-echo {os.getpid()} {time.time()}\n".encode()
            got.settimeout(remaining(args.deadline))
            got.sendall(payload)
            echo = recv_exact(got, len(payload))
        if echo != payload:
            raise Fail(f"echo mismatch: sent {payload!r}, got {echo!r}")
        print(f"echo ok after {tries} attempt(s)")
    except (TimeoutError, socket.timeout):
        raise Fail(f"timed out connecting to {args.host}:{args.port} through "
                   f"{args.socks} ({tries} attempt(s))")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def with_deadline(sp):
        sp.add_argument("--deadline", type=float, required=True,
                        help="absolute time (epoch seconds) to give up at")
        sp.add_argument("--pids", help="tornet pids file: fail fast if a tor died")
        return sp

    s = sub.add_parser("ports")
    s.add_argument("n", type=int)
    s.set_defaults(fn=cmd_ports)

    s = with_deadline(sub.add_parser("wait-consensus"))
    s.add_argument("--auth", action="append", required=True, help="DirPort host:port")
    s.add_argument("--router", action="append", required=True, help="nickname")
    s.add_argument("--flags", default="Running,Valid")
    s.add_argument("--guards", default="", help="nicknames that must have Guard")
    s.set_defaults(fn=cmd_wait_consensus)

    s = with_deadline(sub.add_parser("setconf"))
    s.add_argument("control")
    s.add_argument("cookie")
    s.add_argument("setting", nargs="+")
    s.set_defaults(fn=cmd_setconf)

    s = with_deadline(sub.add_parser("wait-bootstrap"))
    s.add_argument("pairs", nargs="+", help="CONTROL COOKIE [CONTROL COOKIE ...]")
    s.set_defaults(fn=cmd_wait_bootstrap)

    s = sub.add_parser("bootstrap")
    s.add_argument("control")
    s.add_argument("cookie")
    s.add_argument("--timeout", type=float, default=5)
    s.set_defaults(fn=cmd_bootstrap)

    s = with_deadline(sub.add_parser("publish"))
    s.add_argument("control")
    s.add_argument("cookie")
    s.add_argument("vport", type=int)
    s.add_argument("target", help="host:port the onion service forwards to")
    s.set_defaults(fn=cmd_publish)

    s = sub.add_parser("echo-server")
    s.add_argument("--parent", type=int, help="exit when this PID is gone")
    s.add_argument("--max-seconds", type=float, default=600)
    s.set_defaults(fn=cmd_echo_server)

    s = with_deadline(sub.add_parser("socks-echo"))
    s.add_argument("socks")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--retry-delay", type=float, default=0.5)
    s.set_defaults(fn=cmd_socks_echo)

    args = p.parse_args()
    if getattr(args, "cmd", "") == "wait-bootstrap" and len(args.pairs) % 2:
        p.error("wait-bootstrap takes CONTROL COOKIE pairs")
    try:
        args.fn(args)
    except TimeoutError:
        print(f"tornet: {args.cmd}: timed out", file=sys.stderr)
        sys.exit(1)
    except Fail as e:
        print(f"tornet: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
