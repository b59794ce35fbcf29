"""The nightly finds a run by its junit.xml (a night of infra-errors probed nothing, so it has no
results.jsonl) and fails, by name, on a missing row or a row of only infra-errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from kubeovn_conformance import clusters as c
from kubeovn_conformance.clusters.nightly import artifact_name

ROOT = Path(__file__).resolve().parent.parent
BASH = shutil.which("bash") or "/bin/bash"


def _step(name: str) -> str:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    for job in wf["jobs"].values():
        for step in job.get("steps", []):
            if step.get("name") == name:
                return step["run"]
    raise AssertionError(f"no step {name!r}")


def _run(cases: list[str]) -> str:
    return "".join(json.dumps({"case": f"c{i}", "outcome": o}) + "\n" for i, o in enumerate(cases))


def test_stage_reports_keeps_a_run_that_never_probed(tmp_path):
    run = tmp_path / "reports" / "20260101T000000Z-kind-underlay-v1.16.2"
    run.mkdir(parents=True)
    (run / "junit.xml").write_text("<testsuites/>")
    (run / "cases.jsonl").write_text(_run(["infra-error", "infra-error"]))
    r = subprocess.run([BASH, "-euo", "pipefail", "-c", _step("Stage reports")], cwd=tmp_path,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "artifact" / "junit.xml").is_file()
    assert (tmp_path / "artifact" / "cases.jsonl").is_file()


def _check(reports: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeovn_conformance.clusters", "check-nightly",
                           str(reports)],
                          capture_output=True, text=True, cwd=ROOT, check=False)


def test_every_row_present_passes_and_a_missing_or_infra_only_row_fails(tmp_path):
    m = c.load_matrix()
    for v in m.versions:
        for mode in c.MODES:
            d = tmp_path / artifact_name(v, mode)
            d.mkdir()
            (d / "junit.xml").write_text("<testsuites/>")
            (d / "cases.jsonl").write_text(_run(["pass", "infra-error", "fail"]))
    assert _check(tmp_path).returncode == 0
    shutil.rmtree(tmp_path / artifact_name("v1.13.15", "overlay"))
    (tmp_path / artifact_name("v1.16.2", "underlay") / "cases.jsonl").write_text(_run(["infra-error"] * 3))
    r = _check(tmp_path)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        "::error::v1.16.2 underlay: all 3 cases are infra-error",
        "::error::v1.13.15 overlay: no junit.xml (the suite never ran; see its e2e job)",
    ]


def test_the_report_job_checks_the_rows_always():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    steps = wf["jobs"]["report"]["steps"]
    row = next(s for s in steps if s.get("name") == "Every row ran")
    assert row.get("if") == "always()" and "check-nightly reports" in row["run"]
    upload = next(s for s in wf["jobs"]["e2e"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["name"] == "reports-${{ matrix.version }}-${{ matrix.mode }}"
