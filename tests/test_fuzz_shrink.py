"""The shrinker against fake backends (no lab): it keeps the same cell, does not slide to
another bug, ends 1-minimal, asks about no scenario twice, and stops at its trial limit."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kubeovn_conformance.builders import block, container_port, pod, policy, port, rule, select
from kubeovn_conformance.fuzz.case import CellKey
from kubeovn_conformance.fuzz.draw import draw
from kubeovn_conformance.fuzz.shrink import Ran, admissible, isolation, reductions, shrink
from kubeovn_conformance.model import Rule, Scenario
from kubeovn_conformance.oracle import Oracle


def first_port_only(s: Scenario) -> Scenario:
    """The endport-ignored behaviour: a range admits only its first port."""
    def rules(rs: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
        return None if rs is None else tuple(
            replace(r, ports=None if r.ports is None else tuple(replace(p, end_port=None) for p in r.ports))
            for r in rs)
    return s.with_policies(replace(p, ingress=rules(p.ingress), egress=rules(p.egress)) for p in s.policies)


def endport_cells(s: Scenario) -> list[CellKey]:
    wrong = {e.probe: e.verdict for e in Oracle(first_port_only(s)).expectations()}
    return sorted(CellKey(p.client, p.target, p.path, p.port, p.protocol, e.verdict)
                  for e in Oracle(s).expectations() for p in [e.probe]
                  if e.verdict == "allow" and wrong.get(p) == "deny")


def endport_backend(calls: list[Scenario]):  # type: ignore[no-untyped-def]
    """A fake backend with the endPort bug: the cells that ignoring endPort denies fail."""
    def run(candidate: Scenario) -> Ran:
        calls.append(candidate)
        return Ran(candidate, frozenset(endport_cells(candidate)))
    return run


def still_fails(candidate: Scenario, cell: CellKey) -> bool:
    return cell in endport_cells(candidate)


def _exposed(limit: int = 40) -> list[tuple[Scenario, CellKey]]:
    out = []
    for seed in range(limit):
        s = draw(seed, 0)
        cells = endport_cells(s)
        if cells and len(s.pods) >= 4 and len(s.policies) >= 2:
            out.append((s, cells[0]))
    return out


EXPOSED = _exposed()


def test_there_are_big_drawn_scenarios_to_shrink() -> None:
    assert len(EXPOSED) >= 3


@pytest.mark.parametrize("index", range(3))
def test_an_endport_failure_shrinks_to_one_policy_and_at_most_three_pods(index: int) -> None:
    scenario, cell = EXPOSED[index]
    calls: list[Scenario] = []
    kept: list[int] = []
    result = shrink(scenario, cell, frozenset(endport_cells(scenario)), endport_backend(calls),
                    accepted=lambda state: kept.append(len(state.steps)))
    small = result.scenario
    assert not result.exhausted and result.steps and kept == list(range(1, len(result.steps) + 1))
    assert len(small.policies) == 1 and len(small.pods) <= 3, small
    # The shape of the corpus entry: the cell's port is a listener inside a range, above its
    # first port, and the cell is the same one.
    assert cell in endport_cells(small)
    dst = small.pod(cell.target) if cell.path == "pod" else None
    ranges = [p for pol in small.policies for r in (*(pol.ingress or ()), *(pol.egress or ()))
              for p in r.ports or () if p.end_port is not None]
    assert ranges
    if dst is not None:
        assert dst.listens(cell.port, cell.protocol)
        assert any(r.port < cell.port <= r.end_port for r in ranges)  # type: ignore[operator]
    # 1-minimal: no single reduction of the result fails the cell without new failures.
    sides = isolation(scenario, cell)
    assert isolation(small, cell) == sides
    for label, candidate in reductions(small, cell):
        if admissible(candidate, cell, sides) is None and still_fails(candidate, cell):
            assert set(endport_cells(candidate)) - result.failing, label
    assert len(calls) == len(set(calls)) == result.trials  # nothing asked twice


def test_a_predicate_that_never_fails_keeps_the_scenario() -> None:
    scenario, cell = EXPOSED[0]
    calls: list[Scenario] = []
    def never(candidate: Scenario) -> None:
        calls.append(candidate)

    result = shrink(scenario, cell, frozenset({cell}), never)
    assert result.scenario == scenario and not result.steps and not result.exhausted
    sides = isolation(scenario, cell)
    admissible_count = sum(admissible(c, cell, sides) is None for _, c in reductions(scenario, cell))
    assert result.trials == len(calls) == len(set(calls)) == admissible_count > 0


def test_the_trial_limit_stops_shrinking_and_says_so() -> None:
    scenario, cell = EXPOSED[0]
    result = shrink(scenario, cell, frozenset({cell}), lambda c: Ran(c, frozenset({cell})), limit=3)
    assert result.exhausted and result.trials == 3 and len(result.steps) == 3


def test_a_predicate_that_always_fails_still_keeps_the_cell_and_its_verdict() -> None:
    # Everything the screen allows goes; what is left is what the cell needs: its client,
    # its destination, and (expected deny) a policy isolating one of them.
    a = pod("x", "a", {"app": "web"}, [container_port(80)], ip="10.16.0.10")
    b = pod("x", "b", {"app": "db"}, [container_port(80), container_port(81)], ip="10.16.0.11")
    c = pod("y", "c", {"app": "db"}, [container_port(80)], ip="10.16.0.12")
    deny = policy("x", "deny", select(app="db"), ingress=[rule(block("10.16.0.12/32"), ports=[port(81)])])
    other = policy("y", "other", select(), ingress=[])
    s = Scenario(pods=(a, b, c), policies=(deny, other))
    cell = CellKey("x/a", "x/b", "pod", 80, "TCP", "deny")
    result = shrink(s, cell, frozenset({cell}), lambda cand: Ran(cand, frozenset({cell})))
    small = result.scenario
    assert {p.key for p in small.pods} == {"x/a", "x/b"}
    assert len(small.policies) == 1 and small.policies[0].pod_selector.is_empty
    assert small.policies[0].ingress in ((), None)
    assert cell.find(Oracle(small).expectations()).verdict == "deny"  # type: ignore[union-attr]


def test_the_screen_refuses_lost_cells_changed_verdicts_and_dangling_ip_blocks() -> None:
    a = pod("x", "a", {"pod": "a"}, [container_port(80)], ip="10.16.0.10")
    b = pod("x", "b", {"pod": "b"}, [container_port(80)], ip="10.16.0.11")
    c = pod("x", "c", {"pod": "c"}, [container_port(80)], ip="10.16.0.12")
    only_c = policy("x", "only-c", select(pod="b"), ingress=[rule(block("10.16.0.12/32"))])
    s = Scenario(pods=(a, b, c), policies=(only_c,))
    cell = CellKey("x/a", "x/b", "pod", 80, "TCP", "deny")
    assert admissible(s, cell) is None
    assert "no longer probed" in (admissible(replace(s, pods=(b, c)), cell) or "")
    assert "now expected allow" in (admissible(s.with_policies(()), cell) or "")
    assert "names 10.16.0.12/32" in (admissible(replace(s, pods=(a, b)), cell) or "")
    # The side a failure lives on stays isolated: x/a isolated for egress by a second
    # policy is a different cell shape from the one found.
    sides = isolation(s, cell)
    assert sides == (False, frozenset({True}))
    egress = policy("x", "out", select(pod="a"), egress=[rule()], types=["Egress"])
    assert "isolated differently" in (admissible(s.with_policies((only_c, egress)), cell, sides) or "")


def test_it_does_not_slide_to_another_bug() -> None:
    # A backend with two bugs: endPort ignored, and (like a lab without any stateful ACL)
    # every allowed cell fails while no policy has a port range. Dropping the range's policy
    # keeps the cell failing, by the second bug: refused, because other cells fail anew.
    scenario, cell = EXPOSED[0]

    def two_bugs(candidate: Scenario) -> Ran:
        has_range = any(p.end_port is not None for pol in candidate.policies
                        for r in (*(pol.ingress or ()), *(pol.egress or ())) for p in r.ports or ())
        second = set() if has_range else {
            CellKey(e.probe.client, e.probe.target, e.probe.path, e.probe.port, e.probe.protocol, "allow")
            for e in Oracle(candidate).expectations() if e.verdict == "allow"}
        return Ran(candidate, frozenset({*endport_cells(candidate), *second}))

    result = shrink(scenario, cell, two_bugs(scenario).failing, two_bugs)
    small = result.scenario
    assert cell in endport_cells(small) and len(small.policies) == 1
    assert any(p.end_port is not None for pol in small.policies
               for r in (*(pol.ingress or ()), *(pol.egress or ())) for p in r.ports or ())
