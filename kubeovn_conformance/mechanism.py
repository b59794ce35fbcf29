"""Mechanism facts: properties of what decided a cell, so known issues match by mechanism.

A Kube-OVN bug breaks every cell that was decided a certain way, in any case: an admitting
rule whose named port the policy's namespace resolves differently, an ipBlock except beside
the peer that admits, a policy not re-synced after a label change, ... `Mechanism` derives
such properties per direction from the oracle's decisions (oracle.Decision) and the model,
never from case names; the runner writes them into each probe record (`facts`), and
`matches` checks a known-issue entry's `mechanism:` map against a record.

Which directions a cell lists, and how a map matches it:
- an allowed cell lists both directions (the client's egress, the destination's ingress);
  breaking either denies it, so the map must hold for ONE of them;
- a denied cell lists the directions that deny it; a bug must break all of them to let the
  connection through, so the map must hold for EVERY one;
- through a Service, each endpoint's directions are merged: a property holds only when it
  holds for every endpoint.
Within a direction, *rule* properties describe the admitting rules of an allowed, isolated
direction and hold only when every admission (policy, rule, peer, port entry) has them: one
intact admission keeps it allowed. Enumerations give the common value, else "mixed".
*Policy* properties say that Kube-OVN loses a policy's objects: they hold for a denied
direction when every isolating policy has them, and for an allowed one when every
admitting rule's policy has them while another isolating policy does not (else nothing
isolates the pod in Kube-OVN either, and it stays allowed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from kubeovn_conformance.model import NetworkPolicy, Peer, Pod, Scenario
from kubeovn_conformance.oracle import ALLOW, DENY, Admission, Decision, Oracle, Probe

MIXED = "mixed"
BOOL = (True, False)
# name -> allowed values, meaning. Cell properties come from the record itself.
CELL_PROPERTIES: dict[str, tuple[tuple[Any, ...], str]] = {
    "expected": ((ALLOW, DENY), "the oracle's verdict of the cell"),
    "path": (("pod", "service"), "Pod IP, or ClusterIP (judged on the endpoint after DNAT)"),
    "protocol": (("TCP", "UDP", "SCTP"), "the cell's protocol"),
}
PROPERTIES: dict[str, tuple[tuple[Any, ...], str]] = {
    **CELL_PROPERTIES,
    "direction": (("ingress", "egress"), "the destination's ingress or the client's egress"),
    "isolated": (BOOL, "some policy selecting the pod has this policyType"),
    "port": (("any", "number", "range", "named", "protocol", MIXED),
             "rule: how the admitting port entry names the port (no ports, a number, "
             "port..endPort, a name, a protocol alone)"),
    "peer": (("any", "pods", "namespaces", "namespaces-and-pods", "ipblock", MIXED),
             "rule: the kind of peer that admits the other pod (no peers, podSelector alone, "
             "namespaceSelector alone, both in one peer, ipBlock)"),
    "peer_namespace": (("same", "other", MIXED),
                       "the other pod's namespace against the policies' (the pod's own)"),
    "named_port_policy_namespace": (
        ("same", "other", "none", "admits", MIXED),
        "rule: what the first pod of the POLICY's namespace declaring the admitting port name "
        "(any protocol) makes of it, against the cell's port: Kube-OVN resolves names there, "
        "GetNamedPortByNs(np.Namespace) (v1.16.2 pkg/controller/network_policy.go:146, "
        "pod.go:71-99); `admits` on a denied direction: a rule of an isolating policy whose "
        "peers take the other pod names a port that resolves there to the cell's port, which "
        "the destination does not declare under that name"),
    "except_covers_peer": (BOOL, "rule: an ipBlock except of the admitting rule covers the "
                           "other pod's IP, which another peer of the rule (a selector or "
                           "another ipBlock) admits"),
    "several_ipblocks": (BOOL, "rule: admitted through an ipBlock of a rule with two or more"),
    "name_starts_with_digit": (BOOL, "policy: its name does not start with a letter "
                               "(v1.16.2 pkg/controller/network_policy.go:126-130)"),
    "port_group_shadowed": (BOOL, "policy: a policy synced after it has the same OVN name "
                            "(<name>.<namespace>, '-' as '.'; v1.16.2 network_policy.go:135)"),
    "rule0_selects_nothing": (BOOL, "a denied egress whose every isolating policy has an "
                              "egress rule 0 with peers that admit no pod and no ipBlock"),
    "types_omitted": (BOOL, "a policy selecting the pod has rules for this direction that its "
                      "policyTypes leave out, and building them anyway (hasIngressRule/"
                      "hasEgressRule, v1.16.2 network_policy.go:653-669) flips the direction"),
    "relabel": (BOOL, "this step changed the labels of a pod or namespace"),
    "resync_skipped": (BOOL, "with each policy as of its last re-sync the direction goes the "
                       "other way: a label change re-syncs only the policies whose match "
                       "changes (v1.16.2 pkg/controller/pod.go:350-357, namespace.go:64-71)"),
}
_ENUMS = {"direction", "port", "peer", "peer_namespace", "named_port_policy_namespace"}


_FIELDS: tuple[str, ...] = ()  # DirectionFacts' field names, set below


@dataclass(frozen=True)
class DirectionFacts:
    direction: str
    isolated: bool = False
    port: str | None = None
    peer: str | None = None
    peer_namespace: str | None = None
    named_port_policy_namespace: str | None = None
    except_covers_peer: bool = False
    several_ipblocks: bool = False
    name_starts_with_digit: bool = False
    port_group_shadowed: bool = False
    rule0_selects_nothing: bool = False
    types_omitted: bool = False
    relabel: bool = False
    resync_skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Compact: the direction, true flags and set values only."""
        return {name: getattr(self, name) for name in _FIELDS
                if name == "direction" or getattr(self, name) not in (None, False)}

    def merged(self, other: DirectionFacts) -> DirectionFacts:
        values = {}
        for name in _FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            values[name] = (a and b) if isinstance(a, bool) else (a if a == b else MIXED)
        return DirectionFacts(**values)


_FIELDS = tuple(f.name for f in fields(DirectionFacts))


# --------------------------------------------------------------------------- Kube-OVN's re-sync


def _peers(policy: NetworkPolicy) -> Iterator[Peer]:
    for direction in ("Ingress", "Egress"):
        for rule in policy.rules(direction):
            yield from rule.peers or ()


def pod_matches(scenario: Scenario, pod: Pod, policy: NetworkPolicy) -> bool:
    """isPodMatchNetworkPolicy (v1.16.2 pkg/controller/network_policy.go:745-836): selected by
    the policy, or by any selector peer of it."""
    if pod.namespace == policy.namespace and policy.pod_selector.matches(pod.label_map):
        return True
    ns_labels = scenario.namespace(pod.namespace).label_map
    for peer in _peers(policy):
        if peer.ip_block is not None:
            continue
        if peer.namespace_selector is None:
            if pod.namespace != policy.namespace:
                continue
        elif not peer.namespace_selector.matches(ns_labels):
            continue
        if peer.pod_selector is None or peer.pod_selector.matches(pod.label_map):
            return True
    return False


def namespace_matches(labels: Mapping[str, str], policy: NetworkPolicy) -> bool:
    """isNamespaceMatchNetworkPolicy: only peers with a namespaceSelector count."""
    return any(p.namespace_selector is not None and p.namespace_selector.matches(labels)
               for p in _peers(policy))


def resynced_policies(old: Scenario, new: Scenario, synced: Iterable[str] | None = None,
                      add_pods: bool = True) -> set[str]:
    """Keys of the policies of `new` kube-ovn-controller re-syncs for the change old -> new: a
    spec change (or no objects yet: not in `synced`, default every policy of `old`), a pod
    added that it matches (enqueueAddPod; `add_pods`), and for a pod or namespace label change
    only the symmetric difference of the policies matching it before and after (v1.16.2
    pkg/controller/pod.go:350-357, namespace.go:64-71)."""
    old_policies = {p.key: p for p in old.policies}
    synced = set(old_policies) if synced is None else set(synced)
    out = {p.key for p in new.policies if old_policies.get(p.key) != p or p.key not in synced}
    old_pods = {p.key: p for p in old.pods}
    for pod in new.pods:
        before = old_pods.get(pod.key)
        if before is None:
            if add_pods:
                out |= {p.key for p in new.policies if pod_matches(new, pod, p)}
        elif before.labels != pod.labels:
            was = {p.key for p in new.policies if pod_matches(old, before, p)}
            now = {p.key for p in new.policies if pod_matches(new, pod, p)}
            out |= was ^ now
    old_ns = {n.name: n for n in old.namespaces}
    for ns in new.namespaces:
        before_ns = old_ns.get(ns.name)
        if before_ns is None:
            out |= {p.key for p in new.policies if namespace_matches(ns.label_map, p)}
        elif before_ns.labels != ns.labels:
            was = {p.key for p in new.policies if namespace_matches(before_ns.label_map, p)}
            now = {p.key for p in new.policies if namespace_matches(ns.label_map, p)}
            out |= was ^ now
    return out


def ovn_name(policy: NetworkPolicy) -> str:
    """The port group name (v1.16.2 pkg/controller/network_policy.go:126-135)."""
    name = policy.name if policy.name[:1].isalpha() else "np" + policy.name
    return f"{name}.{policy.namespace}".replace("-", ".")


class SyncHistory:
    """Step after step of a case: the state each policy was last re-synced on, the order of
    those syncs (the policy synced last owns a shared port group name), and whether the last
    step changed labels. `advance` gives the facts of the new state."""

    def __init__(self) -> None:
        self.scenario: Scenario | None = None
        self.last: dict[str, Oracle] = {}
        self.order: list[str] = []
        self.relabelled = False

    def advance(self, oracle: Oracle) -> Mechanism:
        new, old = oracle.scenario, self.scenario
        keys = ({p.key for p in new.policies} if old is None
                else resynced_policies(old, new, self.last))
        present = {p.key for p in new.policies}
        self.last = {k: oracle if k in keys else self.last[k] for k in present
                     if k in keys or k in self.last}
        self.order = ([k for k in self.order if k in present and k not in keys]
                      + [p.key for p in new.policies if p.key in keys])
        self.relabelled = old is not None and _relabelled(old, new)
        self.scenario = new
        return Mechanism(oracle, self)


def _relabelled(old: Scenario, new: Scenario) -> bool:
    pods = {p.key: p.labels for p in new.pods}
    namespaces = {n.name: n.labels for n in new.namespaces}
    return (any(pods.get(p.key, p.labels) != p.labels for p in old.pods)
            or any(namespaces.get(n.name, n.labels) != n.labels for n in old.namespaces))


# --------------------------------------------------------------------------- facts


class Mechanism:
    """Facts of the cells of one state. Built by SyncHistory.advance, which knows what
    earlier steps left behind; `Mechanism(oracle)` alone takes the state as freshly synced."""

    def __init__(self, oracle: Oracle, history: SyncHistory | None = None) -> None:
        if history is None:
            history = SyncHistory()
            history.advance(oracle)
        self.oracle, self.history = oracle, history
        self._fresh = all(o is oracle for o in history.last.values())
        scenario = oracle.scenario
        self._pods = {p.key: p for p in scenario.pods}
        self._policies = {p.key: p for p in scenario.policies}
        self._digit = {k for k, p in self._policies.items() if not p.name[:1].isalpha()}
        owner = {ovn_name(self._policies[k]): k for k in history.order if k in self._policies}
        self._shadowed = {k for k, p in self._policies.items() if owner.get(ovn_name(p), k) != k}
        self._rule0 = {k for k, p in self._policies.items() if self._rule0_empty(p)}
        self._named: dict[tuple[str, str], int | None] = {}
        self._done: dict[tuple[str, str, str, int, str], DirectionFacts] = {}

    def _rule0_empty(self, policy: NetworkPolicy) -> bool:
        rules = policy.rules("Egress")
        if not rules or not rules[0].peers or any(p.ip_block for p in rules[0].peers):
            return False
        admitted = self.oracle.admitted(policy.key, "Egress", 0) or ()
        return not any(self._pods[k].ip for peer in admitted for k in peer)

    def _first_named(self, namespace: str, name: str) -> int | None:
        key = (namespace, name)
        if key not in self._named:
            self._named[key] = next((cp.port for p in self.oracle.scenario.pods
                                     if p.namespace == namespace for cp in p.ports if cp.name == name),
                                    None)
        return self._named[key]

    def facts(self, probe: Probe) -> tuple[DirectionFacts, ...]:
        """The deciding directions of a cell (see the module docstring); () if undefined."""
        per_endpoint = []
        for egress, ingress in self.oracle.decisions(probe):
            allowed = egress.allowed and ingress.allowed
            per_endpoint.append({d.direction: self._cached(d) for d in (egress, ingress)
                                 if allowed or not d.allowed})
        if not per_endpoint:
            return ()
        out = []
        for direction in ("Egress", "Ingress"):
            found = [e[direction] for e in per_endpoint if direction in e]
            if len(found) == len(per_endpoint):
                merged = found[0]
                for other in found[1:]:
                    merged = merged.merged(other)
                out.append(merged)
        return tuple(out)

    def _cached(self, d: Decision) -> DirectionFacts:
        key = (d.direction, d.subject, d.peer, d.port, d.protocol)
        hit = self._done.get(key)
        if hit is None:
            hit = self._done[key] = self._direction(d)
        return hit

    def _direction(self, d: Decision) -> DirectionFacts:
        subject, other = self._pods[d.subject], self._pods[d.peer]
        paths = d.admitted_by if d.isolated_by else ()
        rules = [self._admission(a, other, d.port) for a in paths]
        if d.isolated_by and not d.allowed and self._misresolved_admits(d, d.isolated_by, subject, other):
            rules = [("named", None, "admits", False, False)]

        def common(i: int) -> str | None:
            values = {r[i] for r in rules}
            return (values.pop() if len(values) == 1 else MIXED) if values else None

        return DirectionFacts(
            direction=d.direction.lower(),
            isolated=bool(d.isolated_by),
            port=common(0),
            peer=common(1),
            peer_namespace="same" if subject.namespace == other.namespace else "other",
            named_port_policy_namespace=common(2),
            except_covers_peer=bool(rules) and all(r[3] for r in rules),
            several_ipblocks=bool(rules) and all(r[4] for r in rules),
            name_starts_with_digit=_lost(d, self._digit),
            port_group_shadowed=_lost(d, self._shadowed),
            rule0_selects_nothing=(d.direction == "Egress" and not d.allowed
                                   and all(p in self._rule0 for p in d.isolated_by)),
            types_omitted=self._types_omitted(d, other),
            relabel=self.history.relabelled,
            resync_skipped=self._stale(d),
        )

    def _admission(self, a: Admission, other: Pod, port: int) -> tuple[Any, ...]:
        """(port kind, peer kind, named-port resolution, except covers, several ipBlocks)."""
        policy = self._policies[a.policy]
        rule = policy.rules(a.direction)[a.rule]
        entry = None if a.port is None else (rule.ports or ())[a.port]
        if entry is None:
            port_kind, named = "any", None
        elif isinstance(entry.port, str):
            number = self._first_named(policy.namespace, entry.port)
            port_kind = "named"
            named = "none" if number is None else ("same" if number == port else "other")
        else:
            port_kind = "protocol" if entry.port is None else ("range" if entry.end_port else "number")
            named = None
        peer = None if a.peer is None else (rule.peers or ())[a.peer]
        blocks = [p.ip_block for p in rule.peers or () if p.ip_block is not None]
        if peer is None:
            peer_kind = "any"
        elif peer.ip_block is not None:
            peer_kind = "ipblock"
        else:
            peer_kind = "-and-".join(k for k, sel in (("namespaces", peer.namespace_selector),
                                                       ("pods", peer.pod_selector)) if sel is not None)
        covered = peer is not None and bool(other.ip) and any(
            _in_except(str(other.ip), b.excepts) for b in blocks)
        several = peer is not None and peer.ip_block is not None and len(blocks) > 1
        return port_kind, peer_kind, named, covered, several

    def _misresolved_admits(self, d: Decision, policies: tuple[str, ...], subject: Pod, other: Pod) -> bool:
        """Denied, but a named port of an isolating policy's rule that takes the other pod
        resolves in the policy's namespace to this port, under a name the destination does
        not give it: Kube-OVN admits it."""
        dst = other if d.direction == "Egress" else subject
        declared = {(cp.name, cp.port) for cp in dst.ports}
        for key in policies:
            policy = self._policies[key]
            for i, rule in enumerate(policy.rules(d.direction)):
                peers = self.oracle.admitted(key, d.direction, i)
                if peers is not None and not any(other.key in ks for ks in peers):
                    continue
                for entry in rule.ports or ():
                    if (isinstance(entry.port, str) and entry.protocol == d.protocol
                            and self._first_named(policy.namespace, entry.port) == d.port
                            and (entry.port, d.port) not in declared):
                        return True
        return False

    def _types_omitted(self, d: Decision, other: Pod) -> bool:
        """Would building the rules policyTypes leaves out flip this direction? Where the API
        leaves it open, Kube-OVN isolates it and admits only what those rules admit with
        named ports resolved in the policy's namespace (the named-port bug composes)."""
        if not d.ignored_by:
            return False
        if not d.isolated_by:
            subject = self._pods[d.subject]
            return not (any(self._admission(a, other, d.port)[2] in (None, "same")
                            for a in d.ignored_admitted_by)
                        or self._misresolved_admits(d, d.ignored_by, subject, other))
        return not d.allowed and bool(d.ignored_admitted_by)

    def _pod_free(self, a: Admission) -> bool:
        """Does the admitting peer not depend on which pods exist (no peers, an ipBlock)?"""
        rule = self._policies[a.policy].rules(a.direction)[a.rule]
        return a.peer is None or (rule.peers or ())[a.peer].ip_block is not None

    def _stale(self, d: Decision) -> bool:
        """Does the direction go the other way with each policy as of its last re-sync?"""
        if self._fresh:
            return False
        last = self.history.last
        isolated = admitted = False
        for key in self._policies:
            snapshot = last.get(key, self.oracle)
            if snapshot is self.oracle:
                dec = d
            else:
                pods = snapshot.scenario
                keys = {p.key: p for p in pods.pods}
                if d.subject not in keys:
                    continue
                dst = d.subject if d.direction == "Ingress" else d.peer
                if d.peer not in keys or dst not in keys:
                    # A pod that did not exist at that sync: only rules whose peers do not
                    # list pods (none, ipBlocks) admit it; address sets never got it.
                    isolated |= key in _isolating(snapshot, keys[d.subject], d.direction)
                    admitted |= any(a.policy == key and self._pod_free(a) for a in d.admitted_by)
                    continue
                dec = snapshot.decide(d.direction, keys[d.subject], keys[d.peer], keys[dst],
                                      d.port, d.protocol)
            isolated |= key in dec.isolated_by
            admitted |= any(a.policy == key for a in dec.admitted_by)
        return (not isolated or admitted) != d.allowed


def _isolating(oracle: Oracle, subject: Pod, direction: str) -> set[str]:
    return {p.key for p in oracle.scenario.policies if direction in p.types
            and p.namespace == subject.namespace and p.pod_selector.matches(subject.label_map)}


def _in_except(ip: str, excepts: Iterable[str]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_network(e, strict=False) for e in excepts
               if ipaddress.ip_network(e, strict=False).version == addr.version)


def _lost(d: Decision, flagged: set[str]) -> bool:
    """Would losing the flagged policies' objects flip this direction?"""
    if not d.isolated_by or not flagged:
        return False
    if not d.allowed:
        return all(p in flagged for p in d.isolated_by)
    return (all(a.policy in flagged for a in d.admitted_by)
            and any(p not in flagged for p in d.isolated_by))


# --------------------------------------------------------------------------- matching


def matches(mechanism: Mapping[str, tuple[Any, ...]], record: Mapping[str, Any]) -> bool:
    """Does a probe record (with `facts`) have every property of `mechanism` (name -> the
    accepted values)? Undefined cells and records without facts never match."""
    verdict = record.get("verdict")
    facts = record.get("facts")
    if verdict not in (ALLOW, DENY) or not isinstance(facts, list) or not facts:
        return False
    cell = {"expected": verdict, "path": record.get("path"), "protocol": record.get("protocol")}
    if any(cell[k] not in v for k, v in mechanism.items() if k in cell):
        return False
    wanted = [(k, v) for k, v in mechanism.items() if k not in cell]
    hits = [isinstance(d, Mapping) and all(_value(d, k) in v for k, v in wanted) for d in facts]
    return any(hits) if verdict == ALLOW else all(hits)


def _value(facts: Mapping[str, Any], name: str) -> Any:
    return facts.get(name) if name in _ENUMS else bool(facts.get(name, False))


def record_facts(facts: tuple[DirectionFacts, ...]) -> list[dict[str, Any]]:
    """The `facts` field of a probe record."""
    return [f.to_dict() for f in facts]
