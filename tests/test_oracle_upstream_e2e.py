"""The oracle on the upstream e2e cases gives exactly what each upstream test asserts.

The tables (tests/fixtures/upstream-e2e-truth-tables.yaml) are written from reading the
upstream tests, independently of the oracle; the cases are the suite's own
(suites/test_upstream_e2e.py), so this also proves each case rebuilds its upstream test:
its topology (every table names exactly the case's pods), its policies, its steps.
Every cell is checked on the pod path and on the Service path (s-<pod> at port+8000, DNAT'd to
the port), under two address plans (an overlay pod subnet and a kind docker network, as in
underlay), since the ipBlock cases build their CIDRs from pod IPs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from kubeovn_conformance.oracle import ALLOW, DENY, UNDEFINED, Oracle

ROOT = Path(__file__).resolve().parent.parent
TABLES = yaml.safe_load((ROOT / "tests" / "fixtures" / "upstream-e2e-truth-tables.yaml").read_text())
MARK = {ALLOW: ".", DENY: "X", UNDEFINED: "?"}
OFFSET = 8000  # Service port = pod port + OFFSET (builders.upstream_topology)
PLANS = {"overlay": "10.16.{ns}.{pod}", "underlay": "172.18.{ns}.{pod}"}


def _suite():  # type: ignore[no-untyped-def]
    path = ROOT / "suites" / "test_upstream_e2e.py"
    spec = importlib.util.spec_from_file_location("_upstream_e2e_suite", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = {c.id: c for c in _suite().CASES}


def parse_grid(text: str) -> tuple[list[str], dict[tuple[str, str], str]]:
    lines = [line.split() for line in text.strip().splitlines()]
    cols, cells = lines[0], {}
    assert [row[0] for row in lines[1:]] == cols, "rows and columns must name the same pods in order"
    for client, *marks in lines[1:]:
        assert len(marks) == len(cols), f"row {client}: {len(marks)} marks for {len(cols)} pods"
        for dst, mark in zip(cols, marks, strict=True):
            assert mark in ".X-" and (mark == "-") == (client == dst), f"{client} -> {dst}: {mark!r}"
            cells[(client, dst)] = mark
    return cols, cells


def render(cols: list[str], marks: dict[tuple[str, str], str]) -> str:
    return "\n".join(["     " + " ".join(cols)]
                     + [f"{c}  " + "   ".join(marks.get((c, d), "-") for d in cols) for c in cols])


def with_plan(workload, plan: str):  # type: ignore[no-untyped-def]
    nss = sorted({p.namespace for p in workload.pods})
    return workload.with_pod_ips({p.key: PLANS[plan].format(ns=nss.index(p.namespace) + 1,
                                                           pod=ord(p.name) - ord("a") + 10)
                                  for p in workload.pods})


def test_every_case_has_a_table_for_every_step() -> None:
    assert set(TABLES) == set(CASES)
    for case_id, steps in TABLES.items():
        assert list(steps) == [s.name for s in CASES[case_id].steps], case_id
        assert all(steps.values()), f"{case_id}: a step without a table"


@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize("case_id", sorted(TABLES))
def test_oracle_agrees_with_upstream_on_both_paths(case_id: str, plan: str) -> None:
    case = CASES[case_id]
    workload = with_plan(case.workload, plan)
    for step in case.steps:
        verdicts = {(e.probe.client, e.probe.target, e.probe.path, e.probe.port, e.probe.protocol):
                    e.verdict for e in Oracle(step.build(workload)).expectations()}
        for key, grid in TABLES[case_id][step.name].items():
            number, protocol = key.split("/")
            port = int(number)
            cols, want = parse_grid(grid)
            assert sorted(cols) == sorted(p.key for p in workload.pods), f"{case_id}: topology"
            got_pod: dict[tuple[str, str], str] = {}
            got_svc: dict[tuple[str, str], str] = {}
            for (client, dst), mark in want.items():
                ns, name = dst.split("/")
                svc = (client, f"{ns}/svc/s-{name}", "service", port + OFFSET, protocol)
                if mark == "-":  # loopback: not probed; through its own Service: hairpin
                    assert (client, dst, "pod", port, protocol) not in verdicts
                    assert verdicts[svc] == UNDEFINED
                    continue
                pod = (client, dst, "pod", port, protocol)
                got_pod[(client, dst)] = MARK.get(verdicts.get(pod, ""), "missing")
                got_svc[(client, dst)] = MARK.get(verdicts.get(svc, ""), "missing")
            expected = {k: v for k, v in want.items() if v != "-"}
            where = f"{case_id} step {step.name} {key} ({plan})"
            assert got_pod == expected, f"{where}, pod path:\n{render(cols, got_pod)}"
            assert got_svc == expected, f"{where}, Service path:\n{render(cols, got_svc)}"


def test_a_wrong_cell_fails() -> None:
    """The comparison is not vacuous: flip one cell of a table and the check fails."""
    case_id = "upstream-e2e-should-support-a-default-deny-ingress-policy"
    saved = TABLES[case_id]["initial"]["80/TCP"]
    TABLES[case_id]["initial"]["80/TCP"] = saved.replace("x/b  X   -", "x/b  .   -")
    try:
        with pytest.raises(AssertionError, match="pod path"):
            test_oracle_agrees_with_upstream_on_both_paths(case_id, "overlay")
    finally:
        TABLES[case_id]["initial"]["80/TCP"] = saved
