"""Shrinking: the smallest scenario that still fails in the same cell.

Delta debugging, one element at a time: drop a policy, a namespace, a pod, a Service, an
ingress/egress section, a rule, a peer, a port, a selector term, an except, a container
port, a Service port, a port name, a label; keep the candidate when the backend still fails
the same cell (client, destination, path, port, protocol, expected verdict: `CellKey`) and
no cell that passed before starts failing: a reduction that makes new cells fail has most
likely swapped the bug for another one ("slippage"), and the result must show the bug that
was found.
Passes repeat until one changes nothing, so the result is 1-minimal: removing any single
element listed above makes the failure go away (or the trial limit was reached first,
which the result says).

Candidates are screened without a backend first (`admissible`): the cell must still exist
with the same expected verdict and the same isolation (is the client isolated for egress,
is the destination isolated for ingress: a bug in the policy translation needs the side it
lives on; without this, seed 1 on the newest profile slid from the named-port bug, on an
isolated client, to a lab artefact on an unisolated one), every verdict must have one
expected observation (draw.malformed), and no ipBlock may name the /32 of a pod that is gone. The backend is
asked only about the rest; answers are remembered, so no scenario runs twice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

from kubeovn_conformance.fuzz.case import CellKey
from kubeovn_conformance.fuzz.draw import malformed
from kubeovn_conformance.model import (
    LabelSelector,
    NetworkPolicy,
    Peer,
    Pod,
    Rule,
    Scenario,
)
from kubeovn_conformance.oracle import Oracle

T = TypeVar("T")


@dataclass(frozen=True)
class Ran:
    """The backend's answer for a candidate: the scenario as it ran (live addresses) and
    the cells that failed there."""

    scenario: Scenario
    failing: frozenset[CellKey]


Predicate = Callable[[Scenario], "Ran | None"]  # None: the candidate could not be judged


@dataclass
class Shrunk:
    scenario: Scenario
    failing: frozenset[CellKey]  # the cells that fail in `scenario`
    trials: int = 0  # candidates run on the backend
    steps: list[str] = field(default_factory=list)  # the reductions kept, in order
    exhausted: bool = False  # stopped by the trial limit, not at a fixpoint


def shrink(scenario: Scenario, cell: CellKey, failing: frozenset[CellKey], run: Predicate, *,
           limit: int = 300, log: Callable[[str], None] = lambda _m: None,
           accepted: Callable[[Shrunk], None] = lambda _s: None) -> Shrunk:
    """Reduce `scenario` (whose failing cells are `failing`, `cell` among them) while
    `run(candidate)` fails `cell` and nothing else anew. `accepted` is called after every
    kept reduction (the caller writes the file: Ctrl-C keeps it)."""
    result = Shrunk(scenario, failing)
    answers: dict[Scenario, bool] = {}
    sides = isolation(scenario, cell)
    changed = True
    while changed:
        changed = False
        index = 0
        while True:
            options = list(reductions(result.scenario, cell))
            if index >= len(options):
                break
            label, candidate = options[index]
            if candidate in answers or admissible(candidate, cell, sides) is not None:
                index += 1
                continue
            if result.trials >= limit:
                result.exhausted = True
                return result
            result.trials += 1
            ran = run(candidate)
            why = _refused(ran, cell, result.failing)
            answers[candidate] = why is None
            if ran is None or why is not None:
                log(f"trial {result.trials}: {label}: {why}, not taken")
                index += 1  # the option at `index` is the next one once this is kept
                continue
            result.scenario, result.failing = ran.scenario, ran.failing
            result.steps.append(label)
            changed = True
            log(f"trial {result.trials}: {label}: still fails -> {size(ran.scenario)}")
            accepted(result)
    return result


def _refused(ran: Ran | None, cell: CellKey, failing: frozenset[CellKey]) -> str | None:
    if ran is None:
        return "not judged"
    if cell not in ran.failing:
        return "the cell passes"
    new = ran.failing - failing
    if new:
        return f"{len(new)} other cell(s) fail anew (first: {min(new).describe()})"
    return None


def size(s: Scenario) -> str:
    return (f"{len(s.namespaces)} ns, {len(s.pods)} pods, {len(s.services)} svc, "
            f"{len(s.policies)} policies")


def isolation(s: Scenario, cell: CellKey) -> tuple[bool, frozenset[bool]]:
    """(is the cell's client isolated for egress, are its destination pods isolated for
    ingress): which sides of the cell policies decide. A Service's destinations are its
    backends."""
    def isolated(pod: Pod, direction: str) -> bool:
        return any(pol.namespace == pod.namespace and direction in pol.types
                   and pol.pod_selector.matches(pod.label_map) for pol in s.policies)

    pods = {p.key: p for p in s.pods}
    if cell.path == "pod":
        targets = [pods[cell.target]] if cell.target in pods else []
    else:
        svc = next((v for v in s.services if v.key == cell.target), None)
        targets = s.backends(svc) if svc else []
    client = pods.get(cell.client)
    return (client is not None and isolated(client, "Egress"),
            frozenset(isolated(t, "Ingress") for t in targets))


def admissible(s: Scenario, cell: CellKey,
               sides: tuple[bool, frozenset[bool]] | None = None) -> str | None:
    """Why `s` cannot show the same failing cell (None: it can; ask the backend). `sides`:
    the isolation the cell must keep (see `isolation`)."""
    ips = {f"{p.ip}/32" for p in s.pods if p.ip}
    for pol in s.policies:
        for rules in (pol.ingress or (), pol.egress or ()):
            for rule in rules:
                for peer in rule.peers or ():
                    b = peer.ip_block
                    for net in (b.cidr, *b.excepts) if b else ():
                        if ipaddress.ip_network(net).prefixlen == 32 and net not in ips:
                            return f"{pol.key} names {net}, no pod's address"
    expectation = cell.find(Oracle(s).expectations())
    if expectation is None:
        return "the cell is no longer probed"
    if expectation.verdict != cell.verdict:
        return f"the cell is now expected {expectation.verdict}"
    if sides is not None and isolation(s, cell) != sides:
        return "the cell's sides are isolated differently"
    return malformed(s)


# --------------------------------------------------------------------------- reductions


def _without(items: tuple[T, ...], i: int) -> tuple[T, ...]:
    return items[:i] + items[i + 1:]


def _put(items: tuple[T, ...], i: int, item: T) -> tuple[T, ...]:
    return (*items[:i], item, *items[i + 1:])


def reductions(s: Scenario, cell: CellKey) -> Iterator[tuple[str, Scenario]]:
    """Every one-element reduction of `s`, biggest first (policies, namespaces, pods, ...):
    early big steps make every later trial cheaper."""
    keep_pods = {cell.client} | ({cell.target} if cell.path == "pod" else set())
    keep_ns = {k.split("/")[0] for k in (cell.client, cell.target)}
    for i, pol in enumerate(s.policies):
        yield f"drop policy {pol.key}", s.with_policies(_without(s.policies, i))
    for ns in s.namespaces:
        if ns.name not in keep_ns:
            yield f"drop namespace {ns.name}", replace(
                s, namespaces=tuple(n for n in s.namespaces if n.name != ns.name),
                pods=tuple(p for p in s.pods if p.namespace != ns.name),
                services=tuple(v for v in s.services if v.namespace != ns.name),
                policies=tuple(p for p in s.policies if p.namespace != ns.name))
    for i, pod in enumerate(s.pods):
        if pod.key not in keep_pods:
            yield f"drop pod {pod.key}", replace(s, pods=_without(s.pods, i))
    for i, svc in enumerate(s.services):
        if svc.key != cell.target:
            yield f"drop service {svc.key}", replace(s, services=_without(s.services, i))
    for i, pol in enumerate(s.policies):
        for label, smaller in _policy_reductions(pol):
            yield f"{pol.key}: {label}", s.with_policies(_put(s.policies, i, smaller))
    yield from _workload_reductions(s)


def _policy_reductions(pol: NetworkPolicy) -> Iterator[tuple[str, NetworkPolicy]]:
    if pol.policy_types is not None:
        yield "default policyTypes", replace(pol, policy_types=None)
    for attr, word in (("ingress", "from"), ("egress", "to")):
        rules: tuple[Rule, ...] | None = getattr(pol, attr)
        if rules is None:
            continue
        yield f"drop {attr}", replace(pol, **{attr: None})
        for j, rule in enumerate(rules):
            yield f"drop {attr}[{j}]", replace(pol, **{attr: _without(rules, j)})
            for label, smaller in _rule_reductions(rule, word):
                yield f"{attr}[{j}] {label}", replace(pol, **{attr: _put(rules, j, smaller)})
    for label, sel in _selector_reductions(pol.pod_selector):
        yield f"podSelector {label}", replace(pol, pod_selector=sel)


def _rule_reductions(rule: Rule, word: str) -> Iterator[tuple[str, Rule]]:
    if rule.peers is not None:
        yield f"drop {word}", replace(rule, peers=None)
        for k, peer in enumerate(rule.peers):
            if len(rule.peers) > 1:
                yield f"drop {word}[{k}]", replace(rule, peers=_without(rule.peers, k))
            for label, smaller in _peer_reductions(peer):
                yield f"{word}[{k}] {label}", replace(rule, peers=_put(rule.peers, k, smaller))
    if rule.ports is not None:
        yield "drop ports", replace(rule, ports=None)
        if len(rule.ports) > 1:
            for k, port in enumerate(rule.ports):
                yield f"drop port {port.describe()}", replace(rule, ports=_without(rule.ports, k))


def _peer_reductions(peer: Peer) -> Iterator[tuple[str, Peer]]:
    if peer.ip_block is not None:
        b = peer.ip_block
        for k, e in enumerate(b.excepts):
            yield f"drop except {e}", replace(peer, ip_block=replace(b, excepts=_without(b.excepts, k)))
        return
    if peer.pod_selector is not None and peer.namespace_selector is not None:
        yield "drop podSelector", replace(peer, pod_selector=None)
        yield "drop namespaceSelector", replace(peer, namespace_selector=None)
    if peer.pod_selector is not None:
        for label, sel in _selector_reductions(peer.pod_selector):
            yield f"podSelector {label}", replace(peer, pod_selector=sel)
    if peer.namespace_selector is not None:
        for label, sel in _selector_reductions(peer.namespace_selector):
            yield f"namespaceSelector {label}", replace(peer, namespace_selector=sel)


def _selector_reductions(sel: LabelSelector) -> Iterator[tuple[str, LabelSelector]]:
    for k, (key, value) in enumerate(sel.match_labels):
        yield f"drop {key}={value}", replace(sel, match_labels=_without(sel.match_labels, k))
    for k, req in enumerate(sel.match_expressions):
        yield f"drop {req.describe()}", replace(sel, match_expressions=_without(sel.match_expressions, k))


def _workload_reductions(s: Scenario) -> Iterator[tuple[str, Scenario]]:
    for i, pod in enumerate(s.pods):
        for k, cp in enumerate(pod.ports):
            if len(pod.ports) > 1:
                yield (f"{pod.key}: drop port {cp.port}/{cp.protocol}",
                       replace(s, pods=_put(s.pods, i, replace(pod, ports=_without(pod.ports, k)))))
            if cp.name:
                unnamed = _put(pod.ports, k, replace(cp, name=None))
                yield (f"{pod.key}: unname port {cp.port}/{cp.protocol}",
                       replace(s, pods=_put(s.pods, i, replace(pod, ports=unnamed))))
    for i, svc in enumerate(s.services):
        if len(svc.ports) > 1:
            for k, sp in enumerate(svc.ports):
                yield (f"{svc.key}: drop port {sp.port}/{sp.protocol}",
                       replace(s, services=_put(s.services, i, replace(svc, ports=_without(svc.ports, k)))))
    for i, pod in enumerate(s.pods):
        for k, (key, _) in enumerate(pod.labels):
            yield (f"{pod.key}: drop label {key}",
                   replace(s, pods=_put(s.pods, i, replace(pod, labels=_without(pod.labels, k)))))
    for i, ns in enumerate(s.namespaces):
        for k, (key, _) in enumerate(ns.labels):
            yield (f"namespace {ns.name}: drop label {key}",
                   replace(s, namespaces=_put(s.namespaces, i, replace(ns, labels=_without(ns.labels, k)))))
