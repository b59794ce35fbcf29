"""The suite must catch the bug class it exists for.

Before v1.11.2 Kube-OVN evaluated egress ACLs before the load balancer, on ClusterIP:port.
Run the reported-case suite on the lab with that profile: the egress cases whose verdict
depends on the Service port must fail, by name, on the Service path only; everything else
must still pass. Runs the real suite on the real lab in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the OVN lab needs root"),
    pytest.mark.skipif(shutil.which("ovn-northd") is None, reason="ovn-central is not installed"),
]


def _run(tmp_path: Path, profile: str) -> tuple[int, dict[str, dict], list[dict], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_service_port_gap.py", "--backend", "lab",
         "--mode", "overlay", "--lab-profile", profile, "--reports-dir", str(tmp_path),
         "--run-id", profile, "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    run = tmp_path / profile
    cases = {}
    for line in (run / "cases.jsonl").read_text().splitlines():
        c = json.loads(line)
        cases[c["case"]] = c
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    return proc.returncode, cases, records, proc.stdout


def test_pre_lb_egress_profile_fails_the_egress_through_service_cases(tmp_path: Path) -> None:
    rc, cases, records, out = _run(tmp_path, "pre-v1.11.2")
    failed = {name for name, c in cases.items() if c["outcome"] == "fail"}
    # 80 only: the ACL sees ClusterIP:80 and lets it through (should be denied).
    # 8000 only: the ACL sees port 80 and drops it (should be allowed).
    # (The named-port case already fails for another, known reason on every profile.)
    assert failed - {"egress-allow-named-port"} == {"egress-allow-service-port",
                                                    "egress-allow-target-port"}, out
    assert rc == 1
    wrong = [r for r in records if r["outcome"] == "fail" and r["case"] in failed]
    assert wrong and all(r["path"] == "service" for r in wrong
                         if r["case"] != "egress-allow-named-port")
    assert all(c["outcome"] == "pass" for n, c in cases.items() if n.startswith("ingress-"))
    # The failure text names the cases, so a CI log says what broke.
    assert "FAILED suites/test_service_port_gap.py::test_case[overlay-egress-allow-service-port]" in out
    assert "FAILED suites/test_service_port_gap.py::test_case[overlay-egress-allow-target-port]" in out
