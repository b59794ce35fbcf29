"""The nightly finds a run by its junit.xml (a night of infra-errors probed nothing, so it has no
results.jsonl) and fails, by name, on a missing row or a row of only infra-errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
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


# ------------------------------------------------------------------ a row cut off by its budget


def _records(run: Path, finished: list[str], running: str | None = None) -> None:
    """What a killed run leaves: case lines of the finished cases, probe lines of those and of
    the case in flight; no summary.json, no junit.xml."""
    meta = {"run_id": run.name, "backend": "kind", "mode": "underlay", "kube_ovn_version": "v1.15.24",
            "profile": ""}
    (run / "cases.jsonl").write_text(
        "".join(json.dumps({"case": c, "outcome": o, "probes": 4, "mismatches": int(o == "fail"),
                            "duration_s": 1.5}) + "\n"
                for c, o in zip(finished, ("pass", "fail", "infra-error"), strict=False)))
    probes = [*finished[:2], *([running] if running else [])]
    (run / "results.jsonl").write_text("".join(
        json.dumps({**meta, "case": c, "client": "x/a", "target": "y/b", "outcome": "pass"}) + "\n"
        for c in probes for _ in range(2)))


def _stage(tmp_path: Path, outcome: str) -> subprocess.CompletedProcess[str]:
    venv = tmp_path / ".venv"
    if not venv.exists():
        venv.symlink_to(ROOT / ".venv")  # the e2e job's venv, made by make e2e
    return subprocess.run([BASH, "-euo", "pipefail", "-c", _step("Stage reports")], cwd=tmp_path,
                          env={**os.environ, "E2E_OUTCOME": outcome}, capture_output=True, text=True,
                          check=False)


def _testcases(junit: Path) -> dict[str, str]:
    out = {}
    for tc in ET.parse(junit).iter("testcase"):
        kinds = [k.tag for k in tc if k.tag in ("failure", "error", "skipped")]
        out[tc.get("name")] = kinds[0] if kinds else "pass"
    return out


def test_a_cut_off_row_is_staged_with_junit_from_its_records_and_named_cut_off(tmp_path):
    """SIGKILL after the budget's grace: records only. Staged by its records, JUnit derived
    (finished cases with their outcomes, the case in flight and the run itself as errors),
    and check-nightly says cut off, not never ran."""
    run = tmp_path / "reports" / "20260101T000000Z-kind-underlay-v1.15.24"
    run.mkdir(parents=True)
    _records(run, ["a", "b", "c"], running="d")
    (tmp_path / "reports" / "cut-off.txt").write_text(
        "make e2e ran out of its 100-minute budget (exit 137)\n")
    r = _stage(tmp_path, "failure")
    assert r.returncode == 0, r.stderr
    art = tmp_path / "artifact"
    assert (art / "cases.jsonl").is_file() and (art / "results.jsonl").is_file()
    assert _testcases(art / "junit.xml") == {
        "test_case[underlay-a-v1.15.24]": "pass", "test_case[underlay-b-v1.15.24]": "failure",
        "test_case[underlay-c-v1.15.24]": "error", "test_case[underlay-d-v1.15.24]": "error",
        "run-cut-off": "error"}
    cut = next(tc for tc in ET.parse(art / "junit.xml").iter("testcase") if tc.get("name") == "run-cut-off")
    assert "100-minute budget" in cut.find("error").get("message")
    # The report job merges it like any other row's JUnit.
    from kubeovn_conformance.report.junit import merge

    assert len(list(merge([art / "junit.xml"], tmp_path / "merged.xml"))) == 1

    m = c.load_matrix()
    reports = tmp_path / "rows"
    for v in m.versions:
        for mode in c.MODES:
            d = reports / artifact_name(v, mode)
            d.mkdir(parents=True)
            (d / "junit.xml").write_text("<testsuites/>")
            (d / "cases.jsonl").write_text(_run(["pass"]))
            (d / "summary.json").write_text("{}")
    shutil.rmtree(reports / artifact_name("v1.15.24", "underlay"))
    shutil.copytree(art, reports / artifact_name("v1.15.24", "underlay"))
    r = _check(reports)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        "::error::v1.15.24 underlay: cut off (make e2e ran out of its 100-minute budget (exit 137)): "
        "3 cases recorded before it ended; see its e2e job"]


def test_a_job_cancelled_after_pytest_wrote_junit_is_marked_cut_off(tmp_path):
    """SIGTERM path: pytest wrote junit.xml and summary.json; the job was cancelled (its
    timeout). The JUnit gets the run-cut-off error, and the row reads cut off."""
    run = tmp_path / "reports" / "20260101T000000Z-kind-overlay-v1.16.2"
    run.mkdir(parents=True)
    _records(run, ["a", "b"])
    (run / "summary.json").write_text("{}")
    (run / "junit.xml").write_text('<testsuites><testsuite name="pytest" tests="1">'
                                   '<testcase classname="suites.x" name="test_case[overlay-a-v1.16.2]"/>'
                                   "</testsuite></testsuites>")
    r = _stage(tmp_path, "cancelled")
    assert r.returncode == 0, r.stderr
    art = tmp_path / "artifact"
    assert (art / "cut-off.txt").read_text().startswith("the job was cancelled")
    assert _testcases(art / "junit.xml") == {"test_case[overlay-a-v1.16.2]": "pass", "run-cut-off": "error"}
    r = _stage(tmp_path, "cancelled")  # staging twice adds nothing twice
    assert list(_testcases(art / "junit.xml")) == ["test_case[overlay-a-v1.16.2]", "run-cut-off"]


def test_a_finished_row_is_staged_as_it_was(tmp_path):
    run = tmp_path / "reports" / "20260101T000000Z-kind-overlay-v1.16.2"
    run.mkdir(parents=True)
    _records(run, ["a"])
    (run / "summary.json").write_text("{}")
    (run / "junit.xml").write_text("<testsuites/>")
    assert _stage(tmp_path, "success").returncode == 0
    art = tmp_path / "artifact"
    assert (art / "junit.xml").read_text() == "<testsuites/>" and not (art / "cut-off.txt").exists()


def test_staging_with_no_reports_at_all_stages_nothing_and_passes(tmp_path):
    r = _stage(tmp_path, "failure")
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "artifact").iterdir()) == []


def _e2e_step(tmp_path: Path, budget: str, make_body: str) -> subprocess.CompletedProcess[str]:
    """The e2e step as Actions runs it, `make` a fake on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    make = bin_dir / "make"
    make.write_text(f"#!/usr/bin/env bash\n{make_body}\n")
    make.chmod(0o755)
    script = _step("Conformance on kind").replace("${{ matrix.mode }}", "underlay") \
        .replace("${{ matrix.version }}", "v1.15.24")
    return subprocess.run([BASH, "-eo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=120,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                               "E2E_BUDGET_MINUTES": budget})


def test_make_e2e_gets_sigterm_when_its_budget_runs_out_and_the_row_is_marked(tmp_path):
    r = _e2e_step(tmp_path, "0.02", 'trap \'echo "$*" > got-term; exit 143\' TERM\nsleep 60 & wait')
    assert r.returncode == 124, r.stdout + r.stderr
    assert (tmp_path / "got-term").read_text().strip() == "e2e MODE=underlay KUBE_OVN_VERSION=v1.15.24"
    assert "budget" in (tmp_path / "reports" / "cut-off.txt").read_text()
    assert "::error::" in r.stdout
    ok = _e2e_step(tmp_path / "reports", "1", "exit 1")  # a plain failure is no cut-off
    assert ok.returncode == 1 and not (tmp_path / "reports" / "reports" / "cut-off.txt").exists()


def test_the_budget_leaves_the_job_time_for_diagnostics_staging_and_upload():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    job = wf["jobs"]["e2e"]
    budget = float(job["env"]["E2E_BUDGET_MINUTES"])
    step = _step("Conformance on kind")
    kill_after = int(re.search(r"--kill-after=(\d+)m", step).group(1))
    diagnostics = next(s for s in job["steps"] if s.get("name") == "Diagnostics")["timeout-minutes"]
    # Checkout, setup-python, staging and upload: 5 minutes at least.
    assert budget + kill_after + diagnostics + 5 <= job["timeout-minutes"]


def test_junit_of_an_interrupted_session_is_completed_from_the_records(tmp_path):
    """pytest wrote junit.xml on the interrupt, but a case recorded as the signal came (or, with
    xdist, one whose report never reached the main process) is missing: complete() adds it with
    its recorded outcome, and the case in flight as cut off; twice adds nothing twice."""
    from kubeovn_conformance.report import junit_records

    run = tmp_path / "20260101T000000Z-kind-underlay-v1.15.24"
    run.mkdir()
    _records(run, ["a", "b"], running="c")
    (run / "junit.xml").write_text('<testsuites><testsuite name="pytest" tests="1">'
                                   '<testcase classname="suites.x" name="test_case[underlay-a-v1.15.24]"/>'
                                   "</testsuite></testsuites>")
    assert junit_records.complete(run) == 2
    assert _testcases(run / "junit.xml") == {"test_case[underlay-a-v1.15.24]": "pass",
                                             "test_case[underlay-b-v1.15.24]": "failure",
                                             "test_case[underlay-c-v1.15.24]": "error"}
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    assert junit_records.complete(run) == 0
