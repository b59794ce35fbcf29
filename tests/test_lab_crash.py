"""A dataplane daemon killed mid-run on the lab's default OVN (25.03 root), issue 15: the
case in flight is an infra-error, the lab comes back clean for the next case, the cells
probed on the dead dataplane are infra-errors (never a pass, never a mismatch), and
`lab down` afterwards leaves no process, namespace or mount.

The runner drives the cases as the pytest plugin does (a case that raises InfraError is the
plugin's infra-error; it retries it on a fresh workload). The kill is real (SIGKILL to the
daemon's pid), placed right after a case's policy state was applied, so every probe of
that state meets the dead daemon.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kubeovn_conformance.backends.base import InfraError
from kubeovn_conformance.backends.lab import cli as lab_cli
from kubeovn_conformance.backends.lab.backend import LabBackend
from kubeovn_conformance.backends.lab.daemons import Lab
from kubeovn_conformance.backends.lab.ovnruntime import DEFAULT_OVN
from kubeovn_conformance.results import RunInfo, read_jsonl
from kubeovn_conformance.runner import Runner
from suites.test_service_port_gap import CASES
from tests.test_lab_dataplane import agent_pids, assert_nothing_left, lab_processes, root_links
from tests.test_lab_ovnroot import needs_lab_root

LAB = f"cr{os.getpid()}"
# Cases that pass on a healthy lab (the egress named-port case is a known Kube-OVN issue).
PICKED = [c for c in CASES if c.id.startswith("ingress-")][:4]
CRASHED = 1  # index of the case whose policy state meets the dead daemon


def _down() -> int:
    return lab_cli.down(argparse.Namespace(name=LAB, lab_dir=None))


@needs_lab_root
@pytest.mark.parametrize("daemon", ["ovs-vswitchd", "ovn-controller"])
def test_a_daemon_killed_mid_run_costs_the_case_in_flight_only(daemon: str, tmp_path: Path) -> None:
    started = time.monotonic()
    lab = Lab(LAB, ovn=DEFAULT_OVN)
    lab.stop()
    links = set(root_links())
    backend = LabBackend("underlay", lab_name=LAB, ovn=DEFAULT_OVN)
    run = RunInfo("crash", "lab", "underlay", "lab:test", "", tmp_path / "run")
    run.prepare()
    runner = Runner(backend, run, probe_timeout=backend.probe_timeout, deadline=3.0)
    now = {"case": -1}
    killed: list[int] = []
    agents: set[int] = set()
    real = backend.reconcile

    def reconcile(scenario: Any, between: Any = None) -> Any:
        out = real(scenario, between)
        if now["case"] == CRASHED and scenario.policies and not killed:
            agents.update(agent_pids(lab))
            pid = lab.daemon_pids()[daemon]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return out

    backend.reconcile = reconcile  # type: ignore[method-assign]
    outcomes, errors = [], []
    try:
        for i, case in enumerate(PICKED):
            now["case"] = i
            try:
                outcomes.append(runner.run_case(case).outcome)
            except InfraError as e:
                outcomes.append("infra-error")
                errors.append(str(e))
            agents.update(agent_pids(lab))
    finally:
        runner.close()
    assert killed
    assert outcomes == ["pass", "infra-error", "pass", "pass"], "\n".join([str(outcomes), *errors])
    records = read_jsonl(run.results_path)
    crashed = [r for r in records if r["case"] == PICKED[CRASHED].id]
    # Every cell of the state applied on the dead dataplane: an infra-error, no verdict.
    assert crashed and {r["outcome"] for r in crashed} <= {"infra-error", "undefined"}, \
        sorted({(r["outcome"], r["observed"]) for r in crashed})
    others = {r["outcome"] for r in records if r["case"] != PICKED[CRASHED].id}
    assert "pass" in others and others <= {"pass", "undefined"}, others
    assert [c["outcome"] for c in read_jsonl(run.cases_path)] == ["pass"] * 3
    # Said at once, naming the daemon (not after a 30 s wait for ovn-controller).
    assert len(errors) == 1 and "dataplane down" in errors[0] and daemon in errors[0], errors
    # The teardown after the crash stopped the lab this backend owned; `lab down` finds
    # nothing, and nothing of the lab (daemons, agents, namespaces, mounts) is left.
    assert _down() == 0
    assert_nothing_left(lab, links, sorted(agents))
    print(f"\n{daemon} killed: {time.monotonic() - started:.1f} s")


@needs_lab_root
def test_lab_down_stops_daemons_whose_pidfiles_are_gone() -> None:
    """The issue's `lab down` left two ovsdb-server processes running: a full stop must not
    depend on the pidfiles alone (a crashed start removes or overwrites them)."""
    lab = Lab(LAB, ovn=DEFAULT_OVN)
    lab.stop()
    links = set(root_links())
    lab.start(started_by="test")
    try:
        for db in ("ovnnb", "ovnsb"):
            lab.pidfile(db).unlink()
        assert len([c for c in lab_processes(lab) if "ovsdb-server" in c]) == 3
    finally:
        assert _down() == 0
    assert_nothing_left(lab, links, [])
