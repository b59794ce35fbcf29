"""Known issues: matching, "known" vs "fixed?", validation of the YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeovn_conformance.report import main, matrix
from kubeovn_conformance.report.known import find_known, load_known, version_in_range
from kubeovn_conformance.report.records import ReportError, load_runs

ROOT = Path(__file__).resolve().parents[1]
KNOWN = ROOT / "tests" / "fixtures" / "known-issues.yaml"
LIVE = ROOT / "clusters" / "known-issues.yaml"
NEW = Path(__file__).parent / "fixtures" / "runs" / "new"


@pytest.mark.parametrize(
    ("version", "spec", "inside"),
    [
        ("v1.13.1", ">=v1.13.0,<v1.14.0", True),
        ("v1.13.15", ">=v1.13.0,<v1.14.0", True),
        ("v1.14.0", ">=v1.13.0,<v1.14.0", False),
        ("v1.12.35", ">=v1.13.0,<v1.14.0", False),
        ("lab:v1.16", ">=v1.16.0", True),
        ("lab:v1.16", "<v1.16.0", False),
        ("v1.16.2", "*", True),
        ("v1.16.2", "v1.16.2", True),
        ("v1.16.2", "!=v1.16.2", False),
    ],
)
def test_version_ranges(version: str, spec: str, inside: bool) -> None:
    assert version_in_range(version, spec) is inside


def test_fixture_entry_matches_by_mode_version_and_backend() -> None:
    issues = load_known(KNOWN)
    issue = {i.id: i for i in issues}["kube-ovn-5043"]
    assert find_known(issues, "egress-allow-target-port", "underlay", "v1.13.1", "kind") is issue
    assert find_known(issues, "egress-allow-target-port", "overlay", "v1.13.1", "kind") is None
    assert find_known(issues, "egress-allow-target-port", "underlay", "v1.16.2", "kind") is None
    assert find_known(issues, "ingress-allow-target-port", "underlay", "v1.13.1", "kind") is None


def test_live_file_matches_by_mechanism_and_nothing_broad() -> None:
    # Which cells each entry explains (exactly the corpus shapes, over every suite cell) is
    # tested in tests/test_known_mechanisms.py.
    issues = load_known(LIVE)
    # NetworkPolicy entries match by mechanism only. Cluster-scoped policy entries name their
    # exact cases (no wildcard): mechanism facts do not cover the tiers yet.
    cluster = [i for i in issues if i.cases and all(c.startswith("cluster-") for c in i.cases)]
    assert cluster and all("*" not in c and "?" not in c for i in cluster for c in i.cases)
    assert all(i.mechanism and not i.cases for i in issues if i not in cluster)
    # kube-ovn#5043 is not explained by the source: no glob over every egress case.
    assert find_known(issues, "egress-allow-target-port", "underlay", "v1.13.1", "kind") is None


def test_failing_match_is_known_and_passing_match_is_fixed() -> None:
    m = matrix.build(load_runs([NEW]), load_known(KNOWN))
    known = m.cells[("egress-allow-target-port", ("v1.13.1", "underlay"))]
    assert known.state == "known" and known.issue is not None
    assert known.result.mismatches == 1  # still there to read, not hidden
    fixed = m.cells[("egress-allow-both-ports", ("v1.13.1", "underlay"))]
    assert fixed.state == "pass" and fixed.fixed_hint
    # Outside the range the same failure is a plain failure.
    plain = m.cells[("egress-default-deny", ("v1.16.2", "overlay"))]
    assert plain.state == "fail" and plain.issue is None
    assert m.counts()["known"] == 1 and m.counts()["fail"] == 1


def test_issue_that_explains_nothing_is_listed(tmp_path: Path) -> None:
    f = tmp_path / "k.yaml"
    f.write_text(
        "issues:\n"
        "  - id: never\n    case: 'no-such-case'\n"
        "    url: https://github.com/kubeovn/kube-ovn/issues/1\n    explanation: x\n"
    )
    m = matrix.build(load_runs([NEW]), load_known(f))
    assert [i.id for i in m.unseen_issues()] == ["never"]


def test_backend_restricts_the_match(tmp_path: Path) -> None:
    f = tmp_path / "k.yaml"
    f.write_text(
        "issues:\n"
        "  - id: lab-only\n    case: 'egress-*'\n    backend: lab\n"
        "    url: https://example.org/lab-notes\n    explanation: lab only\n"
    )
    issues = load_known(f)
    assert find_known(issues, "egress-default-deny", "overlay", "lab:v1.16", "lab")
    assert not find_known(issues, "egress-default-deny", "overlay", "v1.16.2", "kind")


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ("case: x\n    url: http://insecure\n    explanation: e", "'url'"),
        ("case: x\n    mode: vlan\n    url: https://a/1\n    explanation: e", "'mode'"),
        ("case: x\n    versions: '>=banana'\n    url: https://a/1\n    explanation: e", "'versions'"),
        ("case: x\n    url: https://a/1", "'explanation'"),
        ("url: https://a/1\n    explanation: e", "'case'"),
        ("case: x\n    url: https://a/1\n    explanation: e\n    severity: high", "'severity'"),
        ("case: x\n    backend: gke\n    url: https://a/1\n    explanation: e", "'backend'"),
    ],
)
def test_bad_entry_is_one_line_naming_file_and_entry(
    tmp_path: Path, entry: str, complaint: str
) -> None:
    f = tmp_path / "known.yaml"
    f.write_text(f"issues:\n  - id: fine\n    case: y\n    url: https://a/2\n    explanation: ok\n"
                 f"  - id: broken\n    {entry}\n")
    with pytest.raises(ReportError) as err:
        load_known(f)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(f) in msg and "entry 2 (broken)" in msg and complaint in msg


def test_bad_yaml_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "known.yaml"
    f.write_text("issues: [\n")
    assert main(["report", str(NEW), "--known", str(f), "--format", "markdown"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(f) in err and "YAML" in err
