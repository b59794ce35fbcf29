"""SIGTERM stops a run as Ctrl-C does (issue 15): CI cancellation, `timeout` and container
stops send it. On the lab: no daemon, probe agent, namespace or mount left, JUnit written
with the cases that finished, the records kept. On the kind backend (against the fake API
server): the same, and the run's namespaces deleted. `kubeovn-conformance lab up` cut off
by SIGTERM while it starts leaves nothing either. A second signal during the cleanup does
not cut it short.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kubeovn_conformance.backends.lab.daemons import Lab
from kubeovn_conformance.results import read_jsonl
from kubeovn_conformance.signals import interrupts, shielded
from tests.test_lab_dataplane import agent_pids, assert_nothing_left, lab_processes, root_links
from tests.test_lab_ovnroot import needs_lab_root

ROOT = Path(__file__).resolve().parent.parent
LAB = f"sg{os.getpid()}"  # a lab of its own (KOCL_LAB_NAME): never a `lab up` lab's names


@pytest.fixture
def own_lab() -> object:
    """The test's lab; whatever a failing test left of it is removed afterwards (the test
    itself asserts that nothing was left)."""
    yield Lab(LAB)
    if Lab(LAB).exists():
        Lab(LAB).stop()


def _wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


def _pytest(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                            cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _sigterm_after(proc: subprocess.Popen, cases: Path, finished: int, timeout: float) -> str:
    """SIGTERM once `finished` case records exist, then twice more while it cleans up (a
    cancelled CI job and an impatient user both do); returns the output."""
    _wait_for(lambda: _lines(cases) >= finished or proc.poll() is not None, timeout, "cases")
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    return out


def _junit_cases(run_dir: Path) -> set[str]:
    return {c.get("name", "") for c in ET.parse(run_dir / "junit.xml").iter("testcase")}


@needs_lab_root
def test_sigterm_on_a_lab_run_cleans_up_and_writes_junit(tmp_path: Path, own_lab: Lab) -> None:
    started = time.monotonic()
    lab = own_lab
    lab.stop()
    links = set(root_links())
    run_dir = tmp_path / "reports" / "sig"
    proc = _pytest(["suites/test_service_port_gap.py", "--backend", "lab", "--mode", "underlay",
                    "--pack", "1", "-k", "ingress", "--reports-dir", str(tmp_path / "reports"),
                    "--run-id", "sig"], env={"KOCL_LAB_NAME": LAB})
    agents: set[int] = set()
    try:
        _wait_for(lambda: _lines(run_dir / "cases.jsonl") >= 2 or proc.poll() is not None, 120,
                  "two cases")
        agents.update(agent_pids(lab))
        assert agents and lab_processes(lab)  # it runs: daemons and agents up
        out = _sigterm_after(proc, run_dir / "cases.jsonl", 2, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
            lab.stop()
    assert proc.returncode == 2, out[-3000:]  # pytest's "interrupted"
    assert "SIGTERM: stopping as on Ctrl-C" in out
    finished = [c["case"] for c in read_jsonl(run_dir / "cases.jsonl")]
    assert 2 <= len(finished) < 5 and read_jsonl(run_dir / "results.jsonl")  # cut off
    names = _junit_cases(run_dir)
    assert {f"test_case[underlay-{c}]" for c in finished} <= names, (finished, names)
    assert_nothing_left(lab, links, sorted(agents))
    print(f"\nlab SIGTERM test: {time.monotonic() - started:.1f} s")


@needs_lab_root
def test_sigterm_while_lab_up_starts_leaves_nothing(own_lab: Lab) -> None:
    lab = own_lab
    lab.stop()
    links = set(root_links())
    proc = subprocess.Popen([sys.executable, "-m", "kubeovn_conformance.cli", "lab", "up",
                             "--name", LAB], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # The databases run, the switch or OVN not yet (or just): cut it off there.
        _wait_for(lambda: lab.pidfile("ovsdb-server").exists() or proc.poll() is not None, 60,
                  "ovsdb-server")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if proc.returncode != 130:
            lab.stop()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert_nothing_left(lab, links, [])


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_kind_run_cut_off_by_sigterm_keeps_records_junit_and_deletes_namespaces(
        tmp_path: Path, workers: list[str]) -> None:
    """With xdist the signal reaches the main process only (as `docker stop` sends it):
    it passes it on to the workers, each of which deletes its own namespaces."""
    from tests.fake_apiserver import FakeApiServer

    started = time.monotonic()
    run_dir = tmp_path / "reports" / "k"
    with FakeApiServer() as api:
        kc = api.kubeconfig(tmp_path / "kc")
        proc = _pytest(["suites/test_service_port_gap.py", "--backend", "kind", "--kubeconfig",
                        str(kc), "--kube-ovn-version", "v1.16.2", "--reports-dir",
                        str(tmp_path / "reports"), "--run-id", "k", "--pack", "1",
                        "--deadline", "0.5", "--probe-timeout", "0.3", *workers])
        try:
            out = _sigterm_after(proc, run_dir / "cases.jsonl", 1, 180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        deleted = {p.split("/")[-1] for v, p, *_ in api.requests
                   if v == "DELETE" and p.startswith("/api/v1/namespaces/") and p.count("/") == 4}
        _wait_for(lambda: api.names("namespaces") == [], 5, "the namespaces to go")
    assert proc.returncode == 2, out[-3000:]
    assert "SIGTERM: stopping as on Ctrl-C" in out
    finished = [c["case"] for c in read_jsonl(run_dir / "cases.jsonl")]
    assert len(finished) >= 1 and read_jsonl(run_dir / "results.jsonl")
    assert len(finished) < 10  # cut off, not finished
    names = _junit_cases(run_dir)  # written, and readable
    # Every recorded case is in it, also one recorded as the signal came, before pytest (or,
    # with xdist, the main process) had its report: the plugin completes JUnit from the records.
    assert {f"test_case[overlay-{c}-v1.16.2]" for c in finished} <= names, (finished, names)
    assert deleted  # the teardown on the interrupt issued the deletes; none is left
    print(f"\nkind SIGTERM test {workers}: {time.monotonic() - started:.1f} s")


def test_a_second_signal_during_cleanup_is_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    """The first SIGTERM raises KeyboardInterrupt; one during the cleanup that follows does
    not interrupt it."""
    before = signal.getsignal(signal.SIGTERM)
    handlers = interrupts("t")
    cleaned = []
    try:
        with pytest.raises(KeyboardInterrupt):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the signal arrives here
            finally:
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                cleaned.append(True)
    finally:
        handlers.restore()
    assert cleaned == [True]
    err = capsys.readouterr().err
    assert "t: SIGTERM: stopping as on Ctrl-C" in err
    assert err.count("ignored, the cleanup goes on") == 2
    assert signal.getsignal(signal.SIGTERM) is before  # put back as it was



@pytest.mark.slow
def test_fuzz_cut_off_by_sigterm_keeps_junit_and_deletes_namespaces(tmp_path: Path) -> None:
    """`kubeovn-conformance fuzz` (on kind against the fake API server) treats SIGTERM as
    Ctrl-C: exit 130, the workload's namespaces deleted (cut off while its first scenario
    runs: before, SIGTERM ended Python at once and they stayed)."""
    from tests.fake_apiserver import FakeApiServer

    started = time.monotonic()
    with FakeApiServer() as api:
        kc = api.kubeconfig(tmp_path / "kc")
        proc = subprocess.Popen([sys.executable, "-m", "kubeovn_conformance.cli", "fuzz",
                                 "--backend", "kind", "--kubeconfig", str(kc),
                                 "--kube-ovn-version", "v1.16.2", "--seed", "1", "--count", "50",
                                 "--deadline", "0.5", "--probe-timeout", "0.3",
                                 "--shrink-limit", "0", "--keep-going",
                                 "--reports-dir", str(tmp_path), "--run-id", "f"],
                                cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: api.names("namespaces") or proc.poll() is not None, 60, "a workload")
            assert proc.poll() is None, "the fuzzer ended before it could be interrupted"
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        _wait_for(lambda: api.names("namespaces") == [], 5, "the namespaces to go")
    assert proc.returncode == 130, out[-3000:]
    assert "SIGTERM: stopping as on Ctrl-C" in out and "interrupted" in out
    print(f"\nfuzz SIGTERM test: {time.monotonic() - started:.1f} s")


def test_a_signal_during_a_shielded_cleanup_is_raised_after_it() -> None:
    """Lab.stop and the lab teardown run shielded: Ctrl-C or SIGTERM landing in them is
    raised once they are done, never half way through."""
    handlers = interrupts("t", announce=False)
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with shielded():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the signal arrives here: held
                steps.append("cleanup finished")
            steps.append("not reached")
    finally:
        handlers.restore()
    assert steps == ["cleanup finished"]
