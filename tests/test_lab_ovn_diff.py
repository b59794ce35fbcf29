"""The same hand-written cases on the host's OVN and on OVN 25.03 see the same verdicts.

The lab's default OVN moved from the distribution's (23.03 on Debian 12) to 25.03, the line
Kube-OVN v1.15/v1.16 ship. NetworkPolicy semantics must not depend on that: this runs
suites/test_service_port_gap.py through pytest (the real plugin, options and records) once
per OVN and compares every probe cell (report/celldiff.py). Any difference is a finding to
explain, not noise: the failure lists every changed cell.

Modes: KOC_OVN_DIFF_MODES (default "overlay"; `make lab-full` runs both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from kubeovn_conformance.report.celldiff import compare_cells
from kubeovn_conformance.report.records import read_results

ROOT = Path(__file__).resolve().parent.parent
SUITE = "suites/test_service_port_gap.py"
MODES = os.environ.get("KOC_OVN_DIFF_MODES", "overlay").split()
OVNS = ("host", "25.03")

pytestmark = [
    pytest.mark.lab, pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovn-northd") is None,
                       reason="needs root and the host's ovn-central/ovn-host (for --lab-ovn host)"),
]


def _run(tmp: Path, mode: str, ovn: str) -> tuple[Path, float]:
    run_id = f"{ovn}-{mode}"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", SUITE, "--backend", "lab",
                           "--mode", mode, "--lab-ovn", ovn, "--reports-dir", str(tmp),
                           "--run-id", run_id, "-p", "no:cacheprovider", "-q"],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
    # 0: all pass (known issues xfail); 1: some case failed, which the comparison judges.
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    return tmp / run_id, time.monotonic() - started


@pytest.mark.parametrize("mode", MODES)
def test_host_ovn_and_25_03_see_the_same_verdicts(mode: str, tmp_path: Path) -> None:
    runs = {ovn: _run(tmp_path, mode, ovn) for ovn in OVNS}
    records = {ovn: read_results(d / "results.jsonl")[0] for ovn, (d, _) in runs.items()}
    versions = {ovn: {r.get("ovn_version") for r in recs} for ovn, recs in records.items()}
    print(f"\n[{mode}] " + ", ".join(f"{ovn}: OVN {sorted(map(str, versions[ovn]))}, "
                                     f"{len(records[ovn])} probes, {runs[ovn][1]:.1f} s"
                                     for ovn in OVNS))
    # Every record says which OVN it ran on, and the two runs really ran on different ones.
    assert all(len(v) == 1 and None not in v for v in versions.values()), versions
    assert next(iter(versions["25.03"])).startswith("25.03")
    assert versions["host"] != versions["25.03"]
    for ovn, (d, _) in runs.items():
        tree = ElementTree.parse(d / "junit.xml")
        found = {p.get("value") for p in tree.iter("property") if p.get("name") == "ovn_version"}
        assert found == versions[ovn], (ovn, found)
    # Implementation-defined cells (hairpin) may differ; shown, never failed.
    for change in compare_cells(records["host"], records["25.03"], defined=False):
        print(f"  undefined cell differs: {change.describe()}")
    changes = compare_cells(records["host"], records["25.03"])
    assert records["host"] and not changes, (
        f"{len(changes)} cells differ between host OVN and 25.03:\n"
        + "\n".join(c.describe() for c in changes[:40]))
