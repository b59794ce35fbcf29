"""The probe agent against real sockets: loopback here, throwaway namespaces for the cases
that need an address nobody answers (root only)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from kubeovn_conformance import agent

AGENT = agent.agent_path()
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2 for a network namespace")


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def probe(targets: list[dict], timeout: float = 2.0, netns: str | None = None,
          python: str = sys.executable) -> tuple[int, list[dict], str]:
    argv = [python, AGENT, "probe", "--timeout", str(timeout)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    proc = subprocess.run(argv, input=json.dumps(targets), capture_output=True, text=True,
                          timeout=timeout + 30, check=False)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def target(i: object, host: str, port: int, protocol: str = "TCP") -> dict:
    return {"id": str(i), "host": host, "port": port, "protocol": protocol}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, int]]:
    """An agent serving TCP and UDP on one port; yields (open port, closed port)."""
    port, closed = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, AGENT, "serve", "--name", "srv", "--tcp", str(port),
                             "--udp", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield port, closed
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_tcp_connected_with_reply(server: tuple[int, int]) -> None:
    rc, out, _ = probe([target("a", "127.0.0.1", server[0])])
    assert rc == 0
    assert out[0]["id"] == "a"
    assert out[0]["observed"] == "connected"
    assert out[0]["reply"] == "srv"
    assert set(out[0]) == {"id", "observed", "reply", "elapsed_ms", "detail"}


def test_tcp_refused_on_closed_port(server: tuple[int, int]) -> None:
    _, out, _ = probe([target("a", "127.0.0.1", server[1])])
    assert out[0]["observed"] == "refused"


def test_udp_connected_with_reply(server: tuple[int, int]) -> None:
    _, out, _ = probe([target("u", "127.0.0.1", server[0], "UDP")])
    assert (out[0]["observed"], out[0]["reply"]) == ("connected", "srv")


def test_udp_refused_on_closed_port(server: tuple[int, int]) -> None:
    # The kernel answers ICMP port unreachable, which the connected UDP socket reports.
    _, out, _ = probe([target("u", "127.0.0.1", server[1], "UDP")])
    assert out[0]["observed"] == "refused"


def test_results_keep_input_order_and_ids(server: tuple[int, int]) -> None:
    ts = [target(i, "127.0.0.1", server[i % 2], ("TCP", "UDP")[i // 2 % 2]) for i in range(8)]
    _, out, _ = probe(ts)
    assert [o["id"] for o in out] == [t["id"] for t in ts]
    assert [o["observed"] for o in out[:4]] == ["connected", "refused", "connected", "refused"]


def test_server_survives_rude_clients(server: tuple[int, int]) -> None:
    """Resets, half-open connections and junk datagrams must not kill the server."""
    for _ in range(20):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.connect(("127.0.0.1", server[0]))
        s.close()  # linger 0: RST
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"\xff" * 4000, ("127.0.0.1", server[0]))
    _, out, _ = probe([target("a", "127.0.0.1", server[0]), target("b", "127.0.0.1", server[0], "UDP")])
    assert [o["observed"] for o in out] == ["connected", "connected"]


def test_sctp_without_kernel_support_is_an_error() -> None:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
        pytest.skip("this kernel has SCTP")
    except OSError:
        pass
    _, out, _ = probe([target("s", "127.0.0.1", 80, "SCTP")])
    assert (out[0]["observed"], out[0]["detail"]) == ("error", "sctp unsupported")


def test_in_process_api(server: tuple[int, int]) -> None:
    out = agent.run_probes([target("a", "127.0.0.1", server[0])], 2.0)
    assert out[0]["observed"] == "connected"
    assert agent.agent_command() == [sys.executable, AGENT]


def test_empty_batch_is_fine() -> None:
    rc, out, _ = probe([])
    assert (rc, out) == (0, [])


@pytest.mark.parametrize("payload", [
    "not json", "{}", "[1]", '[{"id": "a"}]',
    '[{"id": "a", "host": "127.0.0.1", "port": 0, "protocol": "TCP"}]',
    '[{"id": "a", "host": "127.0.0.1", "port": 80, "protocol": "ICMP"}]',
    '[{"id": "a", "host": "127.0.0.1", "port": "80", "protocol": "TCP"}]',
])
def test_bad_input_exits_2_with_one_line(payload: str) -> None:
    proc = subprocess.run([sys.executable, AGENT, "probe", "--timeout", "1"], input=payload,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_2() -> None:
    for argv in (["probe", "--timeout", "0"], ["serve", "--name", "x", "--tcp", "99999"], ["nope"]):
        proc = subprocess.run([sys.executable, AGENT, *argv], input="[]", capture_output=True,
                              text=True, timeout=30, check=False)
        assert proc.returncode == 2, argv


@pytest.mark.skipif(shutil.which("python3") is None, reason="no python3 on PATH")
def test_runs_as_a_plain_script_without_the_package(tmp_path, server: tuple[int, int]) -> None:
    """It is copied into ConfigMaps: a lone file, run by whatever python3 the image has."""
    lone = tmp_path / "agent.py"
    shutil.copy(AGENT, lone)
    proc = subprocess.run(["python3", "-I", str(lone), "probe", "--timeout", "2"],
                          input=json.dumps([target("a", "127.0.0.1", server[0])]),
                          capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["observed"] == "connected"


# --------------------------------------------------------------------------- namespaces

DROP_ADDR = "10.99.0.2"


@pytest.fixture(scope="module")
def dropping_netns() -> Iterator[str]:
    """A namespace where DROP_ADDR is on-link with a fixed MAC on a veth whose peer has no
    address: every packet to it leaves and is silently discarded. 10.98.0.0/16 has no
    route at all (network unreachable)."""
    ns = f"kocl-agenttest-{uuid.uuid4().hex[:6]}"
    ip = ["ip", "-n", ns]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "set", "lo", "up"],
                    ["link", "add", "ve0", "type", "veth", "peer", "name", "ve1"],
                    ["addr", "add", "10.99.0.1/24", "dev", "ve0"],
                    ["link", "set", "ve0", "up"], ["link", "set", "ve1", "up"],
                    ["neigh", "add", DROP_ADDR, "lladdr", "02:00:00:00:00:99", "dev", "ve0",
                     "nud", "permanent"]):
            subprocess.run([*ip, *cmd], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


@needs_root
def test_timeout_when_packets_are_dropped(dropping_netns: str) -> None:
    rc, out, _ = probe([target("t", DROP_ADDR, 80), target("u", DROP_ADDR, 80, "UDP")],
                       timeout=0.5, netns=dropping_netns)
    assert rc == 0
    assert [o["observed"] for o in out] == ["timeout", "timeout"]
    assert all(450 <= o["elapsed_ms"] <= 1500 for o in out)


@needs_root
def test_unreachable_network_is_an_error(dropping_netns: str) -> None:
    _, out, _ = probe([target("e", "10.98.0.1", 80)], timeout=1, netns=dropping_netns)
    assert out[0]["observed"] == "error"
    assert "ENETUNREACH" in out[0]["detail"]


@needs_root
def test_200_timeouts_take_one_timeout(dropping_netns: str) -> None:
    ts = [target(i, DROP_ADDR, 1000 + i, ("TCP", "UDP")[i % 2]) for i in range(200)]
    start = time.monotonic()
    rc, out, _ = probe(ts, timeout=1.0, netns=dropping_netns)
    took = time.monotonic() - start
    assert rc == 0
    assert len(out) == 200
    assert {o["observed"] for o in out} == {"timeout"}
    assert took < 3.0, f"200 concurrent timeouts took {took:.2f}s"


@needs_root
def test_500_targets_mixed(dropping_netns: str, server: tuple[int, int]) -> None:
    """A big batch: nothing lost, nothing serialised (the netns has no route to 127.0.0.1
    of the test process, so use its own loopback for the refused half)."""
    ts = [target(i, DROP_ADDR if i % 2 else "127.0.0.1", 2000 + i) for i in range(500)]
    start = time.monotonic()
    _, out, _ = probe(ts, timeout=1.0, netns=dropping_netns)
    assert time.monotonic() - start < 3.5
    assert [o["observed"] for o in out] == ["timeout" if i % 2 else "refused" for i in range(500)]


def _old_interpreters() -> list[str]:
    """Python 3.9 (the oldest the agent promises) when the machine has one: on PATH, or
    named by KOCL_PYTHON39."""
    found = [os.environ.get("KOCL_PYTHON39", ""), shutil.which("python3.9") or ""]
    return sorted({p for p in found if p and _is_python39(p)})


def _is_python39(python: str) -> bool:
    # A pyenv shim is on PATH even when it cannot run: ask the interpreter itself.
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError:
        return False
    return out.strip() == "(3, 9)"


@pytest.mark.skipif(not _old_interpreters(), reason="no python3.9 (set KOCL_PYTHON39=/path)")
def test_runs_on_python39(server: tuple[int, int]) -> None:
    for python in _old_interpreters():
        rc, out, err = probe([target("a", "127.0.0.1", server[0]),
                              target("u", "127.0.0.1", server[1], "UDP")], python=python)
        assert rc == 0, err
        assert [o["observed"] for o in out] == ["connected", "refused"]

