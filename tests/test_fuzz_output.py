"""A finding's file reproduces it on its own: the manifests (with pod IPs) load back to the
same scenario, `expect` judges the cell as the run did, the case built from the file gives
the same verdicts on other pod IPs, and the JUnit file carries seed and count."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from kubeovn_conformance.cli import main as cli_main
from kubeovn_conformance.fuzz import output
from kubeovn_conformance.fuzz.case import CellKey, case_for, direction, rebase, workload_of
from kubeovn_conformance.fuzz.case_file import load_case_file
from kubeovn_conformance.fuzz.draw import draw
from kubeovn_conformance.fuzz.engine import Outcome, failing_cells
from kubeovn_conformance.fuzz.junit import write_junit
from kubeovn_conformance.fuzz.output import Finding, Origin
from kubeovn_conformance.model import ManifestError, Scenario, load_scenario
from kubeovn_conformance.oracle import Oracle
from kubeovn_conformance.report.junit import merge


def _with_blocks() -> Scenario:
    """A drawn scenario whose policies name pod /32s in ipBlocks."""
    for seed in range(50):
        s = draw(seed, 0)
        if any("/32" in json.dumps(p.to_manifest()) for p in s.policies):
            return replace(s, services=tuple(replace(v, cluster_ip=f"10.96.100.{i + 1}")
                                             for i, v in enumerate(s.services)))
    raise AssertionError("no drawn scenario with a pod /32")


SCENARIO = _with_blocks()


def _finding(scenario: Scenario) -> Finding:
    e = next(e for e in Oracle(scenario).expectations() if e.verdict != "undefined")
    p = e.probe
    record = {**e.to_dict(), "observed": "timeout", "outcome": "fail"}
    return Finding(3, 4, 10, CellKey(p.client, p.target, p.path, p.port, p.protocol, e.verdict),
                   scenario, scenario, [record], trials=12, steps=["drop policy x/p1"])


def test_the_file_loads_back_to_the_same_scenario_and_names_its_cell(tmp_path: Path) -> None:
    finding = _finding(SCENARIO)
    origin = Origin("lab", "overlay", "history:endport-ignored")
    path = output.write(tmp_path / "fuzz", finding, origin)
    assert path.name == "3-4.yaml"
    assert load_scenario(path) == SCENARIO  # pod IPs and ClusterIPs included
    meta = output.read_meta(path)
    assert meta is not None and (meta["seed"], meta["scenario"], meta["count"]) == (3, 4, 10)
    assert CellKey.of(meta["cell"]) == finding.cell
    assert output.junit_meta(meta) == [("fuzz_seed", "3"), ("fuzz_scenario", "4"), ("fuzz_count", "10")]
    text = path.read_text()
    cmds = output.commands(path, finding, origin)
    for c in cmds:
        assert f"#   {c}" in text
    assert f"--case-file {path}" in cmds[1] and "--lab-profile history:endport-ignored" in cmds[1]
    assert "--seed 3 --scenario 4" in cmds[2]
    assert "observed timeout" in text and "because " in text


def test_expect_reads_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    finding = _finding(SCENARIO)
    path = output.write(tmp_path, finding, Origin("lab", "overlay"))
    assert cli_main(["expect", str(path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    cell = finding.cell
    row = next(r for r in rows if CellKey.of(r) == cell)
    assert row["verdict"] == cell.verdict


def test_read_meta_of_other_manifests_is_none(tmp_path: Path) -> None:
    assert output.read_meta("examples/underlay-bug/ingress-deny-all.yaml") is None
    bad = tmp_path / "m.yaml"
    bad.write_text(output.META_PREFIX + "{not json\n---\n")
    assert output.read_meta(bad) is None


def _cidrs(policies: tuple) -> list[str]:  # type: ignore[type-arg]
    return [net for pol in policies for r in (*(pol.ingress or ()), *(pol.egress or ()))
            for peer in r.peers or () if peer.ip_block
            for net in (peer.ip_block.cidr, *peer.ip_block.excepts)]


def test_rebase_moves_pod_addresses_only() -> None:
    s = SCENARIO
    old = {p.key: p.ip for p in s.pods}
    rotated = dict(zip(old, [*list(old.values())[1:], next(iter(old.values()))], strict=True))
    moved = rebase(s.policies, old, rotated)
    by_ip = {f"{ip}/32": key for key, ip in old.items()}
    before, after = _cidrs(s.policies), _cidrs(moved)
    assert any(net in by_ip for net in before)
    assert after == [f"{rotated[by_ip[net]]}/32" if net in by_ip else net for net in before]
    assert rebase(moved, rotated, old) == s.policies
    assert rebase(s.policies, old, old) is s.policies


def test_the_case_gives_the_file_s_verdicts_on_other_pod_ips() -> None:
    # A backend that hands out other IPs (kind; the lab after a pod was dropped): the case's
    # step rebases the ipBlocks, so every verdict is the one `expect` gives for the file.
    s = SCENARIO
    case = case_for(s, "fuzz-x")
    assert case.workload == workload_of(s) and all(p.ip is None for p in case.workload.pods)
    ips = [p.ip for p in s.pods]
    live = case.workload.with_pod_ips({p.key: ip for p, ip in zip(s.pods, reversed(ips), strict=True)})
    built = case.steps[0].build(live)
    key = lambda e: (e.probe, e.verdict)  # noqa: E731
    assert sorted(map(key, Oracle(built).expectations()), key=str) == sorted(
        map(key, Oracle(s).expectations()), key=str)
    assert case.direction == direction(s)


def test_a_case_file_is_one_case_with_its_fuzz_properties(tmp_path: Path) -> None:
    path = output.write(tmp_path, _finding(SCENARIO), Origin("lab", "overlay"))
    case, props = load_case_file(path)
    assert case.id == "file-3-4" and len(case.steps) == 1
    assert ("fuzz_seed", "3") in props and ("case_file", str(path)) in props
    one_pod = tmp_path / "one.yaml"
    one_pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\n")
    with pytest.raises(ManifestError, match=r"one.yaml: a case needs at least two pods"):
        load_case_file(one_pod)


def test_failing_cells_prefer_the_pod_path_and_skip_infra_errors() -> None:
    base = {"client": "x/a", "target": "x/b", "port": 80, "protocol": "TCP", "verdict": "allow"}
    recs = [{**base, "target": "x/svc/s", "path": "service", "outcome": "fail"},
            {**base, "path": "pod", "outcome": "fail"},
            {**base, "client": "x/c", "path": "pod", "outcome": "infra-error"}]
    assert [c.path for c in failing_cells(recs)] == ["pod", "service"]


def test_the_junit_file_carries_seed_and_count_and_merges(tmp_path: Path) -> None:
    outcomes = [Outcome(0, "fuzz-3-0", "pass", 40, 0, 2.5),
                Outcome(1, "fuzz-3-1", "fail", 41, 2, 9.0, "x/a -> x/b ...", tmp_path / "3-1.yaml"),
                Outcome(2, "fuzz-3-2", "infra-error", message="agent died")]
    path = tmp_path / "junit.xml"
    write_junit(path, outcomes, {"fuzz_seed": 3, "fuzz_count": 10, "mode": "overlay",
                                 "backend": "lab", "profile": ""})
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("errors") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["overlay-fuzz-3-0", "overlay-fuzz-3-1", "overlay-fuzz-3-2"]
    props = {p.get("name"): p.get("value") for p in cases[1].iter("property")}
    assert props["fuzz_seed"] == "3" and props["fuzz_count"] == "10" and props["fuzz_scenario"] == "1"
    assert props["fuzz_file"].endswith("3-1.yaml") and "profile" not in props
    merged = merge([path], tmp_path / "merged.xml")
    assert sum(1 for s in merged for _ in s) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--count", "0"], "--count 0: give at least 1"),
    (["--scenario", "-1"], "--scenario -1: scenarios are numbered from 0"),
    (["--lab-profile", "v0.9"], "unknown Kube-OVN profile 'v0.9'"),
])
def test_bad_fuzz_arguments_are_one_line_and_status_2(args: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["fuzz", "--backend", "lab", "--seed", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
