#!/usr/bin/env python3
"""Probe agent: serve named replies on ports, or dial a batch of targets concurrently.

Standard library only, Python 3.9+: this file is copied into a ConfigMap for kind pods and
run with `python3 agent.py` inside network namespaces in the lab, so it must stand alone.

    agent.py serve --name NAME --tcp 80,81 --udp 80,81
        Answers each TCP connection and each UDP datagram with NAME. Prints "ready" once
        every socket is bound, then runs until killed.

    agent.py probe --timeout SECONDS  < targets.json
        targets.json: [{"id": "...", "host": "10.16.0.5", "port": 80, "protocol": "TCP"}]
        Prints one JSON object per target and line:
        {"id", "observed": connected|refused|timeout|error, "reply", "elapsed_ms", "detail"}
        Exit status 0 when every target was attempted, 2 on bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import selectors
import socket
import sys
import threading
import time

PROTOCOLS = ("TCP", "UDP", "SCTP")
UDP_PAYLOAD = b"probe\n"
MAX_REPLY = 512
EXIT_BAD_INPUT = 2


def agent_path() -> str:
    """Path of this file, to copy it into a pod or run it in a network namespace."""
    return os.path.abspath(__file__)


def agent_command() -> list[str]:
    """argv prefix that runs this agent with the current interpreter."""
    return [sys.executable, agent_path()]


# --------------------------------------------------------------------------- serve


def _parse_ports(text: str) -> list[int]:
    ports = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        port = int(item)
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is outside 1-65535")
        ports.append(port)
    return ports


def _bind(kind: int, port: int, proto: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


def _answer_stream(listener: socket.socket, reply: bytes) -> None:
    try:
        conn, _ = listener.accept()
    except OSError:
        return  # the client gave up between readiness and accept
    try:
        conn.settimeout(1.0)
        conn.sendall(reply)
        # Half-close first so the reply is delivered before the FIN, never reset by close().
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        conn.close()


def _answer_datagram(sock: socket.socket, reply: bytes) -> None:
    try:
        _, addr = sock.recvfrom(65535)
        sock.sendto(reply, addr)
    except OSError:
        pass  # e.g. ICMP error queued from an earlier reply; keep serving


def _control(conn: socket.socket) -> None:
    """One probe batch over the control socket: a JSON line {"timeout": T, "targets": [...]}
    in, one JSON result per line out (as `probe` prints them), then close."""
    try:
        with conn, conn.makefile("rwb") as f:
            request = json.loads(f.readline().decode() or "{}")
            timeout = float(request.get("timeout", 2.0))
            if not timeout > 0:
                raise BadInput("timeout must be positive")
            targets = parse_targets(json.dumps(request.get("targets")))
            for result in run_probes(targets, timeout):
                f.write((json.dumps(result) + "\n").encode())
            f.flush()
    except Exception as e:  # the caller reads "no result" as an infra error
        print(f"control: {e!r}", file=sys.stderr, flush=True)


def serve(name: str, tcp: list[int], udp: list[int], sctp: list[int], control: str = "") -> int:
    reply = name.encode()
    sel = selectors.DefaultSelector()
    if control:
        # Probe batches without a process per batch: the runner connects here (a Unix socket
        # is reachable from any network namespace) and this agent dials from its own.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(control)
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.bind(control)
        ctl.listen(16)
        sel.register(ctl, selectors.EVENT_READ, "control")
    for port in tcp:
        sel.register(_bind(socket.SOCK_STREAM, port), selectors.EVENT_READ, "stream")
    for port in udp:
        sel.register(_bind(socket.SOCK_DGRAM, port), selectors.EVENT_READ, "dgram")
    for port in sctp:
        try:
            sel.register(_bind(socket.SOCK_STREAM, port, socket.IPPROTO_SCTP),
                         selectors.EVENT_READ, "stream")
        except OSError as e:
            # Kernels without SCTP still serve TCP/UDP; probes to this port report the error.
            print(f"sctp port {port} not served: {e}", file=sys.stderr, flush=True)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select(timeout=None if sel.get_map() else 3600):
            try:
                if key.data == "control":
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    threading.Thread(target=_control, args=(conn,), daemon=True).start()
                elif key.data == "stream":
                    _answer_stream(key.fileobj, reply)  # type: ignore[arg-type]
                else:
                    _answer_datagram(key.fileobj, reply)  # type: ignore[arg-type]
            except Exception as e:  # never die on one bad client
                print(f"serve: {e!r}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- probe


class BadInput(ValueError):
    """Targets that are not a list of {id, host, port, protocol}."""


def parse_targets(text: str) -> list[dict]:
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise BadInput(f"targets are not JSON: {e}") from None
    if not isinstance(raw, list):
        raise BadInput("targets must be a JSON list")
    targets = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict):
            raise BadInput(f"target {i} is not an object")
        missing = [k for k in ("id", "host", "port", "protocol") if k not in t]
        if missing:
            raise BadInput(f"target {i} lacks {', '.join(missing)}")
        port = t["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise BadInput(f"target {i}: port {port!r} is outside 1-65535")
        proto = str(t["protocol"]).upper()
        if proto not in PROTOCOLS:
            raise BadInput(f"target {i}: protocol {t['protocol']!r} is not TCP, UDP or SCTP")
        targets.append({"id": str(t["id"]), "host": str(t["host"]), "port": port, "protocol": proto})
    return targets


class _Dial:
    """One target in flight: its socket, phase and (once known) its outcome."""

    def __init__(self, target: dict) -> None:
        self.target = target
        self.sock: socket.socket | None = None
        self.phase = "connect"  # connect -> read -> done
        self.observed = ""
        self.reply = b""
        self.detail = ""
        self.started = time.monotonic()
        self.finished = 0.0

    def finish(self, observed: str, detail: str = "") -> None:
        self.observed, self.detail = observed, detail
        self.phase = "done"
        self.finished = time.monotonic()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def result(self) -> dict:
        return {
            "id": self.target["id"],
            "observed": self.observed,
            "reply": self.reply.decode("utf-8", "replace"),
            "elapsed_ms": round((self.finished - self.started) * 1000.0, 3),
            "detail": self.detail,
        }


def _classify(code: int) -> tuple[str, str]:
    if code == errno.ECONNREFUSED:
        return "refused", ""
    if code in (errno.ETIMEDOUT,):
        return "timeout", os.strerror(code)
    return "error", f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"


def _open(d: _Dial) -> None:
    """Create the socket and start the dial; the outcome may already be known."""
    t = d.target
    family = socket.AF_INET6 if ":" in t["host"] else socket.AF_INET
    try:
        if t["protocol"] == "UDP":
            d.sock = socket.socket(family, socket.SOCK_DGRAM)
        elif t["protocol"] == "SCTP":
            try:
                d.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
            except OSError:
                d.finish("error", "sctp unsupported")
                return
        else:
            d.sock = socket.socket(family, socket.SOCK_STREAM)
        d.sock.setblocking(False)
        code = d.sock.connect_ex((t["host"], t["port"]))
    except OSError as e:
        d.finish("error", f"{type(e).__name__}: {e}")
        return
    if t["protocol"] == "UDP":
        if code != 0:
            d.finish(*_classify(code))
            return
        try:
            d.sock.send(UDP_PAYLOAD)
        except OSError as e:
            d.finish(*_classify(e.errno or 0))
            return
        d.phase = "read"
    elif code == 0:
        d.phase = "read"  # connected at once (loopback)
    elif code not in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
        d.finish(*_classify(code))


def _on_writable(d: _Dial) -> None:
    """A stream socket finished connecting, well or not."""
    assert d.sock is not None
    code = d.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        d.finish(*_classify(code))
    else:
        d.phase = "read"


def _on_readable(d: _Dial) -> None:
    assert d.sock is not None
    stream = d.target["protocol"] != "UDP"
    try:
        data = d.sock.recv(MAX_REPLY)
    except (BlockingIOError, InterruptedError):
        return
    except OSError as e:
        if stream:
            # Connected already; a reset while reading does not undo that.
            d.finish("connected", f"reading reply: {e}")
        else:
            d.finish(*_classify(e.errno or 0))
        return
    if not stream:
        d.reply = data
        d.finish("connected")
        return
    d.reply += data
    if not data or len(d.reply) >= MAX_REPLY:
        d.finish("connected")


def _events(d: _Dial) -> int:
    return selectors.EVENT_WRITE if d.phase == "connect" else selectors.EVENT_READ


def run_probes(targets: list[dict], timeout: float) -> list[dict]:
    """Dial every target at once; return one result dict per target, in input order."""
    _raise_fd_limit(len(targets))
    dials = [_Dial(t) for t in targets]
    sel = selectors.DefaultSelector()
    for d in dials:
        d.started = time.monotonic()
        _open(d)
        if d.phase == "done":
            d.close()
        else:
            sel.register(d.sock, _events(d), d)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while sel.get_map():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for key, _ in sel.select(remaining):
            d = key.data
            before = d.phase
            if d.phase == "connect":
                _on_writable(d)
            else:
                _on_readable(d)
            if d.phase == "done":
                sel.unregister(key.fileobj)  # type: ignore[arg-type]
                d.close()
            elif d.phase != before:
                sel.modify(key.fileobj, _events(d), d)
    for key in list(sel.get_map().values()):
        d = key.data
        sel.unregister(key.fileobj)
        if d.phase == "read" and d.target["protocol"] != "UDP":
            d.finish("connected", "no complete reply before the timeout")
        else:
            d.finish("timeout")
        d.close()
    sel.close()
    return [d.result() for d in dials]


def _raise_fd_limit(needed: int) -> None:
    try:
        import resource  # not on every platform; only needed for large batches

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = needed + 64
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    except (ImportError, ValueError, OSError):
        pass


# --------------------------------------------------------------------------- main


def _fail(message: str) -> int:
    print(f"agent: {message}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="answer on TCP/UDP ports with NAME")
    s.add_argument("--name", required=True)
    s.add_argument("--tcp", default="")
    s.add_argument("--udp", default="")
    s.add_argument("--sctp", default="")
    s.add_argument("--control", default="", help="Unix socket for probe batches (optional)")
    p = sub.add_parser("probe", help="dial the JSON targets on stdin")
    p.add_argument("--timeout", type=float, default=2.0)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_BAD_INPUT if e.code else 0
    if args.command == "serve":
        try:
            tcp, udp, sctp = (_parse_ports(x) for x in (args.tcp, args.udp, args.sctp))
        except ValueError as e:
            return _fail(f"bad port list: {e}")
        try:
            return serve(args.name, tcp, udp, sctp, args.control)
        except OSError as e:
            return _fail(f"cannot bind: {e}")
        except KeyboardInterrupt:
            return 0
    if not args.timeout > 0:
        return _fail("--timeout must be positive")
    try:
        targets = parse_targets(sys.stdin.read())
    except BadInput as e:
        return _fail(str(e))
    for result in run_probes(targets, args.timeout):
        sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
