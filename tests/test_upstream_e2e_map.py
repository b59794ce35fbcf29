"""suites/test_upstream_e2e.py maps every upstream NetworkPolicy e2e It() to one case: 48 at
kubernetes 008b365 (42 TCP, 3 UDP, 3 SCTP), named after the It() text, each in its own
upstream topology and reachable through a Service whose port differs from the pod's; the
table in docs/upstream-e2e.md is the rendering of that mapping."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _suite():  # type: ignore[no-untyped-def]
    path = ROOT / "suites" / "test_upstream_e2e.py"
    spec = importlib.util.spec_from_file_location("_upstream_e2e_map", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SUITE = _suite()


def test_every_upstream_test_has_exactly_one_case() -> None:
    assert Counter(u.context for u in SUITE.UPSTREAM) == {"TCP": 42, "UDP": 3, "SCTP": 3}
    assert len({(u.context, u.it) for u in SUITE.UPSTREAM}) == 48
    ids = [u.case.id for u in SUITE.UPSTREAM]
    assert len(set(ids)) == 48
    assert sorted(ids) == sorted(c.id for c in SUITE.CASES)


def test_case_ids_are_the_slug_of_the_it_text() -> None:
    assert SUITE.case_id("TCP", "should support a 'default-deny-ingress' policy") == \
        "upstream-e2e-should-support-a-default-deny-ingress-policy"
    assert SUITE.case_id("UDP", "should enforce policy based on Ports") == \
        "upstream-e2e-udp-should-enforce-policy-based-on-ports"
    for u in SUITE.UPSTREAM:
        assert u.case.id == SUITE.case_id(u.context, u.it)


@pytest.mark.parametrize("entry", SUITE.UPSTREAM, ids=lambda u: u.case.id)
def test_own_topology_behind_services_with_other_ports(entry) -> None:  # type: ignore[no-untyped-def]
    w = entry.case.workload
    assert {n.name for n in w.namespaces} == {"x", "y", "z"}
    assert all(p.namespace in "xyz" and p.name in "abc" for p in w.pods)
    for pod in w.pods:
        backs = [s for s in w.services if s.selects(pod)]
        assert len(backs) == 1, f"{pod.key}: one Service of its own"
        svc_ports = {(sp.target_port, sp.protocol): sp.port for sp in backs[0].ports}
        for cp in pod.ports:
            assert svc_ports[(cp.port, cp.protocol)] == cp.port + 8000
        if entry.context != "TCP":
            assert {cp.protocol for cp in pod.ports} == {entry.context}


def test_docs_table_is_the_rendered_mapping() -> None:
    doc = (ROOT / "docs" / "upstream-e2e.md").read_text()
    assert doc == SUITE.render_table(), (
        "docs/upstream-e2e.md is stale: regenerate it with\n  .venv/bin/python -c \"import sys; "
        "sys.path.insert(0, '.'); from suites.test_upstream_e2e import render_table; "
        "open('docs/upstream-e2e.md', 'w').write(render_table())\"")
