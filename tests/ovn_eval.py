"""A small evaluator of the ACLs translate.py builds, the way OVN applies them, for pure tests.

Enough of OVN's match language for what translate emits: terms joined by && and ||, with
parentheses, `{a, b}` sets and `A <= tcp.dst <= B` ranges. Like OVN, it refuses && and ||
mixed without parentheses (kube-ovn#6508), and a reference to a port group or address set
that does not exist, or whose name does not start as an OVN identifier (a letter, '_' or
'.': `@1.deny.all.x` before a4545549d): such an ACL is rejected by ovn-northd and never
reaches the datapath, so it is skipped here (clusters/kube-ovn-history.yaml, entries
ipblocks-unparenthesized and digit-policy-name).

`case_cells` runs a Case through the controller model (sync.next_applied, with a profile)
step by step and judges every probe the oracle makes: pod path, and Service path with the
egress ACLs seeing the ClusterIP and Service port unless they carry apply-after-lb.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from kubeovn_conformance.backends.lab import sync
from kubeovn_conformance.backends.lab.profile import Profile
from kubeovn_conformance.backends.lab.translate import AFTER_LB, EGRESS, INGRESS, OvnPolicyState
from kubeovn_conformance.cases import Case
from kubeovn_conformance.mechanism import SyncHistory, record_facts
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.oracle import ALLOW, DENY, Oracle, Probe, resolve_endpoints


class Rejected(ValueError):
    """A match ovn-northd would not accept: the ACL is not in the datapath."""


def _tokens(match: str) -> list[str]:
    return [t.strip() for t in re.split(r"(\(|\)|&&|\|\|)", match) if t.strip()]


def _name(ref: str, table: Mapping[str, Any], what: str) -> Any:
    name = ref[1:]
    if not (name[:1].isalpha() or name[:1] in "_."):
        raise Rejected(f"{ref}: not an OVN identifier")
    if name not in table:
        raise Rejected(f"{ref}: no such {what}")
    return table[name]


def _in(value: str, field: str, pkt: dict, state: OvnPolicyState) -> bool:
    if value.startswith("$"):
        nets = _name(value, state.address_sets, "address set")
    elif value.startswith("{"):
        nets = {v.strip() for v in value[1:-1].split(",")}
    else:
        nets = {value}
    return any(ipaddress.ip_address(pkt[field]) in ipaddress.ip_network(n) for n in nets)


def _term(term: str, pkt: dict, state: OvnPolicyState) -> bool:
    if term == "ip":
        return True
    if term in ("tcp", "udp", "sctp", "icmp"):
        return pkt["proto"] == term
    parts = term.split()
    if len(parts) == 5:  # A <= tcp.dst <= B
        proto = parts[2].split(".")[0]
        return pkt["proto"] == proto and int(parts[0]) <= pkt["dport"] <= int(parts[4])
    field, op, value = term.split(" ", 2)
    if field in ("outport", "inport"):
        return pkt[field] in _name(value, state.port_groups, "port group")
    if field in ("ip4.src", "ip4.dst"):
        inside = _in(value, field, pkt, state)
        return inside if op == "==" else not inside
    proto, _ = field.split(".")
    return pkt["proto"] == proto and pkt["dport"] == int(value)


def evaluate(match: str, pkt: dict, state: OvnPolicyState) -> bool:
    """Does `match` hold for `pkt`? Raises Rejected for a match OVN would not accept (all
    of it is parsed: OVN rejects a whole match, not the part it did not need)."""
    tokens = _tokens(match)

    def expr(i: int) -> tuple[bool, int]:
        values, ops = [], set()
        while True:
            if tokens[i] == "(":
                v, i = expr(i + 1)
                i += 1  # ")"
            else:
                v, i = _term(tokens[i], pkt, state), i + 1
            values.append(v)
            if i >= len(tokens) or tokens[i] == ")":
                break
            ops.add(tokens[i])
            i += 1
        if len(ops) > 1:
            raise Rejected(f"&& and || must be parenthesized when used together: {match}")
        return (any(values) if ops == {"||"} else all(values)), i

    return expr(0)[0]


def verdict(state: OvnPolicyState, direction: str, pkt: dict,
            views: Mapping[bool, dict] | None = None) -> str:
    """Action of the highest-priority matching ACL over all port groups, "none" if none.
    `views`: per ACL apply-after-lb flag, the packet that ACL sees (egress before or after
    the load balancer); default `pkt` for all."""
    best: tuple[int, str] = (-1, "none")
    for acls in state.acls.values():
        for acl in acls:
            if acl.direction != direction or acl.priority <= best[0]:
                continue
            seen = pkt if views is None else views[AFTER_LB[0] in acl.options]
            try:
                if evaluate(acl.match, seen, state):
                    best = (acl.priority, acl.action)
            except Rejected:
                continue
    return best[1]


def passes(state: OvnPolicyState, to_pod: dict, to_vip: dict | None = None) -> bool:
    """A packet passes the client's egress and the destination's ingress ACLs. `to_pod` is
    the packet as it reaches the pod (after DNAT); `to_vip` as the client sent it to a
    ClusterIP (what egress ACLs without apply-after-lb see)."""
    views = {True: to_pod, False: to_vip or to_pod}
    return (verdict(state, EGRESS, to_pod, views) != "drop"
            and verdict(state, INGRESS, to_pod) != "drop")


# --------------------------------------------------------------------------- whole cases


class Addresses:
    """IPs and ClusterIPs as a backend would hand them out: in order of first appearance,
    kept across steps (a pod a step adds gets the next one)."""

    def __init__(self) -> None:
        self.pods: dict[str, str] = {}
        self.services: dict[str, str] = {}

    def fill(self, scenario: Scenario) -> Scenario:
        for p in scenario.pods:
            self.pods.setdefault(p.key, f"10.16.0.{len(self.pods) + 10}")
        for s in scenario.services:
            self.services.setdefault(s.key, f"10.96.0.{len(self.services) + 10}")
        return replace(scenario.with_pod_ips(self.pods), services=tuple(
            replace(s, cluster_ip=self.services[s.key]) for s in scenario.services))


def lsp(key: str) -> str:
    return key.replace("/", ".")


def _packet(scenario: Scenario, probe: Probe, dst_key: str, dport: int) -> dict:
    client, dst = scenario.pod(probe.client), scenario.pod(dst_key)
    return {"inport": lsp(client.key), "outport": lsp(dst.key), "ip4.src": client.ip,
            "ip4.dst": dst.ip, "proto": probe.protocol.lower(), "dport": dport}


def dataplane(state: OvnPolicyState, scenario: Scenario, probe: Probe) -> str:
    """allow | deny | mixed (Service backends disagree), as the ACLs decide it."""
    if probe.path == "pod":
        assert isinstance(probe.target_port, int)
        return ALLOW if passes(state, _packet(scenario, probe, probe.target, probe.target_port)) else DENY
    svc = next(s for s in scenario.services if s.key == probe.target)
    sp = next(p for p in svc.ports if p.port == probe.port and p.protocol == probe.protocol)
    outcomes = set()
    for pod, tp in resolve_endpoints(svc, sp.target_port, sp.protocol, scenario.backends(svc)):
        to_pod = _packet(scenario, probe, pod.key, tp)
        to_vip = {**to_pod, "ip4.dst": svc.cluster_ip, "dport": sp.port}
        outcomes.add(ALLOW if passes(state, to_pod, to_vip) else DENY)
    return outcomes.pop() if len(outcomes) == 1 else "mixed"


def case_cells(case: Case, profile: Profile) -> Iterator[dict[str, Any]]:
    """Every probe of every step of `case`: the oracle's verdict (`expected`) against what
    the ACLs of `profile` decide (`observed`), also inside the intermediate state an old
    controller passes through (a stable cell seen otherwise there: `leak`)."""
    addresses = Addresses()
    live = addresses.fill(case.workload)
    ports = {}
    applied: sync.Applied | None = None
    before: dict[Probe, str] = {}
    history = SyncHistory()  # what decided each cell, as the runner records it (`facts`)
    for step in case.steps:
        scenario = addresses.fill(step.build(live))
        ports.update({p.key: lsp(p.key) for p in scenario.pods})
        new = sync.next_applied(scenario, ports, profile, applied)
        # The state a policy update passes through before 688fd5e21 / 095dca268 (sync.py).
        middle = sync._intermediate(applied, new, profile)
        oracle = Oracle(scenario)
        mechanism = history.advance(oracle)
        for probe in oracle.probes():
            expected = oracle.expect(probe).verdict
            if expected not in (ALLOW, DENY):
                continue
            observed = dataplane(new.state, scenario, probe)
            if (observed == expected and middle is not None and before.get(probe) == expected
                    and dataplane(middle, scenario, probe) != expected):
                observed = "leak"
            yield {"case": case.id, "step": step.name, "client": probe.client,
                   "target": probe.target, "path": probe.path, "port": probe.port,
                   "target_port": probe.target_port, "protocol": probe.protocol,
                   "expected": expected, "observed": observed, "verdict": expected,
                   "outcome": "pass" if observed == expected else "fail",
                   "facts": record_facts(mechanism.facts(probe))}
            before[probe] = expected
        applied = new
