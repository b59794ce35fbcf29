"""JUnit merge across a matrix, and the testcase properties helper for the runner."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from junitparser import JUnitXml

from kubeovn_conformance.report import main
from kubeovn_conformance.report.junit import (
    add_junit_properties,
    junit_properties,
    qualified_name,
)

NEW = Path(__file__).parent / "fixtures" / "runs" / "new"


def names(path: Path) -> list[str]:
    return [case.name for suite in JUnitXml.fromfile(str(path)) for case in suite]


def bare_run(root: Path, version: str, mode: str, with_summary: bool = True) -> Path:
    """A junit.xml whose testcase names carry neither mode nor version."""
    root.mkdir(parents=True)
    if with_summary:
        (root / "summary.json").write_text(
            json.dumps({"run_id": root.name, "kube_ovn_version": version, "mode": mode, "cases": {}})
        )
    (root / "junit.xml").write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="2">'
        '<testcase classname="suites.test_cases" name="egress-deny" time="1"/>'
        '<testcase classname="suites.test_cases" name="ingress-allow" time="1">'
        '<failure message="m">t</failure></testcase></testsuite></testsuites>'
    )
    return root / "junit.xml"


def test_matrix_merge_keeps_every_case_and_unique_names(tmp_path: Path) -> None:
    files = sorted(NEW.glob("*/junit.xml"))
    out = tmp_path / "all.xml"
    assert main(["junit-merge", "-o", str(out), *map(str, files)]) == 0
    merged = names(out)
    assert len(merged) == sum(len(names(f)) for f in files) == 36
    assert len(set(merged)) == len(merged)
    # Names that already say mode and version are left alone.
    assert "underlay-egress-allow-target-port[v1.13.1]" in merged
    xml = JUnitXml.fromfile(str(out))
    assert xml.failures == 2 and xml.errors == 1


def test_bare_names_get_mode_and_version(tmp_path: Path) -> None:
    files = [
        bare_run(tmp_path / f"run-{v}-{m}", v, m)
        for v in ("v1.15.24", "v1.16.2") for m in ("overlay", "underlay")
    ]
    out = tmp_path / "merged.xml"
    assert main(["junit-merge", "-o", str(out), *map(str, files)]) == 0
    merged = names(out)
    assert len(merged) == 8 == len(set(merged))
    assert "underlay-egress-deny[v1.15.24]" in merged
    assert "overlay-ingress-allow[v1.16.2]" in merged


def test_same_file_twice_stays_unique(tmp_path: Path) -> None:
    f = bare_run(tmp_path / "r", "v1.16.2", "overlay", with_summary=False)
    out = tmp_path / "merged.xml"
    assert main(["junit-merge", "-o", str(out), str(f), str(f)]) == 0
    merged = names(out)
    assert len(merged) == 4 == len(set(merged))


def test_properties_from_testcase_used_when_no_summary(tmp_path: Path) -> None:
    f = tmp_path / "junit.xml"
    f.write_text(
        '<?xml version="1.0"?><testsuite name="pytest" tests="1">'
        '<testcase classname="c" name="egress-deny"><properties>'
        '<property name="kube_ovn_version" value="v1.14.41"/>'
        '<property name="mode" value="underlay"/></properties></testcase></testsuite>'
    )
    out = tmp_path / "o.xml"
    assert main(["junit-merge", "-o", str(out), str(f)]) == 0
    assert names(out) == ["underlay-egress-deny[v1.14.41]"]


def test_bad_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "junit.xml"
    bad.write_text("<testsuite")
    assert main(["junit-merge", "-o", str(tmp_path / "o.xml"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("underlay-egress-x[v1.16.2]", "underlay-egress-x[v1.16.2]"),
        ("egress-x", "underlay-egress-x[v1.16.2]"),
        ("egress-x[v1.16.2]", "underlay-egress-x[v1.16.2]"),
        # "overlay" inside "underlay" must not count as saying the mode.
        ("test_case[underlay-egress-x]", "test_case[underlay-egress-x][v1.16.2]"),
    ],
)
def test_qualified_name(name: str, expected: str) -> None:
    assert qualified_name(name, "v1.16.2", "underlay") == expected
    assert "overlay-" in qualified_name("underlay-x", "v1", "overlay")


def test_junit_properties_from_summary_case_and_record() -> None:
    run = {"run_id": "r", "backend": "lab", "mode": "underlay", "kube_ovn_version": "lab:v1.16",
           "profile": "lab:v1.16"}
    case = {"outcome": "pass", "probes": 12, "mismatches": 0, "convergence_ms": 812.345}
    props = dict(junit_properties(case, run))
    assert props == {
        "kube_ovn_version": "lab:v1.16", "mode": "underlay", "backend": "lab",
        "profile": "lab:v1.16", "convergence_ms": "812.3", "probes": "12", "mismatches": "0",
    }
    rec = {"kube_ovn_version": "v1.16.2", "mode": "overlay", "backend": "kind",
           "convergence_ms": None}
    assert dict(junit_properties(rec)) == {
        "kube_ovn_version": "v1.16.2", "mode": "overlay", "backend": "kind",
    }
    node = SimpleNamespace(user_properties=[])
    add_junit_properties(node, case, run)
    assert ("mode", "underlay") in node.user_properties
