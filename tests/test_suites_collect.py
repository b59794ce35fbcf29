"""The suites as pytest collects them: readable, unique ids on every backend, and every case
valid before it reaches a cluster (its manifests build, its oracle runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubeovn_conformance.oracle import Oracle

ROOT = Path(__file__).resolve().parent.parent


def _collect(*args: str, where: str = "suites") -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", where, "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::test_case[" in line]


def test_lab_ids_say_mode_and_case(tmp_path: Path) -> None:
    ids = _collect("--backend", "lab", "--mode", "underlay", "--reports-dir", str(tmp_path))
    assert "suites/test_service_port_gap.py::test_case[underlay-egress-allow-target-port]" in ids
    assert len(ids) == len(set(ids)) >= 30


@pytest.mark.parametrize("backend", ["lab", "kind"])
def test_the_upstream_e2e_suite_collects_all_48_in_each_mode(backend: str, tmp_path: Path) -> None:
    for mode in ("overlay", "underlay"):
        ids = _collect("--backend", backend, "--mode", mode, "--kube-ovn-version", "v1.16.2",
                       "--reports-dir", str(tmp_path), where="suites/test_upstream_e2e.py")
        suffix = "" if backend == "lab" else "-v1.16.2"
        assert len(ids) == len(set(ids)) == 48
        assert f"suites/test_upstream_e2e.py::test_case[{mode}-upstream-e2e-should-enforce-updated-policy" \
               f"{suffix}]" in ids
        assert sum("-upstream-e2e-udp-" in i for i in ids) == 3
        assert sum("-upstream-e2e-sctp-" in i for i in ids) == 3


def test_kind_ids_carry_the_version_for_unique_junit_names(tmp_path: Path) -> None:
    ids = _collect("--backend", "kind", "--mode", "overlay", "--kube-ovn-version", "v1.13.15",
                   "--reports-dir", str(tmp_path))
    assert "suites/test_service_port_gap.py::test_case[overlay-ingress-deny-all-v1.13.15]" in ids


def test_an_unknown_lab_profile_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q",
                           "--lab-profile", "v0.9", "--reports-dir", str(tmp_path),
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 4  # pytest's usage error
    assert "unknown Kube-OVN profile 'v0.9'" in proc.stderr
    assert "Traceback" not in proc.stderr


def _all_cases() -> list:  # type: ignore[type-arg]
    sys.path.insert(0, str(ROOT))
    try:
        from suites import (
            test_cluster_policies,
            test_service_port_gap,
            test_upstream_e2e,
            test_upstream_ground,
        )
    finally:
        sys.path.remove(str(ROOT))
    return [*test_service_port_gap.CASES, *test_upstream_ground.CASES, *test_upstream_e2e.CASES,
            *test_cluster_policies.CASES]


def test_case_ids_are_unique_across_suites() -> None:
    # Results, the diff and known issues key on the case id: a clash would merge two cases.
    ids = [c.id for c in _all_cases()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", _all_cases(), ids=lambda c: c.id)
def test_every_step_has_expectations_with_reasons(case) -> None:  # type: ignore[no-untyped-def]
    # Pod IPs as a backend would assign them, so ipBlock steps can be built.
    workload = case.workload.with_pod_ips(
        {p.key: f"10.16.0.{10 + i}" for i, p in enumerate(case.workload.pods)})
    for step in case.steps:
        expectations = Oracle(step.build(workload)).expectations()
        assert expectations, f"{case.id}/{step.name} has no probes"
        assert all(e.reason for e in expectations)
        assert {e.probe.path for e in expectations} == {"pod", "service"}


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the lab says it needs root first")
@pytest.mark.parametrize(("ovn", "package"), [("host", "ovn-central"), ("25.03", "iproute2")])
def test_lab_without_its_packages_is_one_clear_line(tmp_path: Path, ovn: str, package: str) -> None:
    # host: OVN's own packages; 25.03: OVN comes from the root, the host's plumbing is missing.
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
                           "--reports-dir", str(tmp_path), "--lab-ovn", ovn], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": str(empty)})
    assert proc.returncode == 4
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and "apt-get install" in lines[0] and package in lines[0]
    assert f"--lab-ovn {ovn}" in lines[0]
