"""Cluster-scoped policies: AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1) and
ClusterNetworkPolicy (v1alpha2), as kubernetes-sigs/network-policy-api defines them.

The shapes are those Kube-OVN compiles against: v1alpha1 of network-policy-api v0.1.5
(Kube-OVN v1.13/v1.14 go.mod) and v1alpha1 + v1alpha2 of the pseudo-version
v0.1.8-0.20251209142732-3910463a5686 (Kube-OVN v1.15.24 and v1.16.2 go.mod). Validation is
the CRDs' (apis/v1alpha1/*_types.go, apis/v1alpha2/clusternetworkpolicy_types.go at
3910463a5686): priority 0-1000, a subject of exactly one form (namespaces | pods), peers of
exactly one form (ingress: namespaces | pods; egress also nodes | networks), ports of exactly
one form (portNumber | portRange | namedPort), rule and list limits, BANP named "default".
Unknown fields are refused, as `kubectl apply` (strict field validation) refuses them.

Where v0.2.0 (April 2026) differs, and what this loader says about it: rules carry
`protocols` (`tcp|udp|sctp: {destinationPort: {number | range}}`, `destinationNamedPort`)
instead of `ports`; NamespacedPod.namespaceSelector became optional. A manifest in the v0.2.0
shape is refused with one line naming the difference, because the CRD Kube-OVN installs would
refuse (or prune) it too.

Not modelled: `domainNames` peers (they need DNS): refused with the reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeovn_conformance.model import (
    PROTOCOLS,
    LabelSelector,
    ManifestError,
    Pod,
    parse_selector,
)

GROUP = "policy.networking.k8s.io"
ANP, BANP, CNP = "AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy"
KINDS = {ANP: "v1alpha1", BANP: "v1alpha1", CNP: "v1alpha2"}
SHORT = {ANP: "ANP", BANP: "BANP", CNP: "CNP"}
ADMIN, BASELINE = "Admin", "Baseline"
ACTIONS = {ANP: ("Allow", "Deny", "Pass"), BANP: ("Allow", "Deny"), CNP: ("Accept", "Deny", "Pass")}
# What an action does, whatever the kind calls it.
VERDICT = {"Allow": "allow", "Accept": "allow", "Deny": "deny", "Pass": "pass"}
MAX_PRIORITY = 1000
MAX_RULES = {ANP: 100, BANP: 100, CNP: 25}
MAX_ITEMS = {ANP: 100, BANP: 100, CNP: 25}  # peers and ports of one rule
MAX_NETWORKS = 25
MAX_RULE_NAME = 100
PINNED = "3910463a5686"  # network-policy-api pseudo-version of Kube-OVN v1.15/v1.16 go.mod


# --------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class Subject:
    """Who a policy applies to: the pods of the namespaces `namespaces` selects, and with
    `pods` set only those its selector matches (the `pods: {namespaceSelector, podSelector}`
    form). Host-network pods are never selected."""

    namespaces: LabelSelector
    pods: LabelSelector | None = None

    def selects(self, pod: Pod, ns_labels: Mapping[str, str]) -> bool:
        return (not pod.host_network and self.namespaces.matches(ns_labels)
                and (self.pods is None or self.pods.matches(pod.label_map)))

    def describe(self) -> str:
        if self.pods is None:
            return f"namespaces[{self.namespaces.describe()}]"
        return f"namespaces[{self.namespaces.describe()}] and pods[{self.pods.describe()}]"

    def to_manifest(self) -> dict[str, Any]:
        if self.pods is None:
            return {"namespaces": self.namespaces.to_manifest()}
        return {"pods": {"namespaceSelector": self.namespaces.to_manifest(),
                         "podSelector": self.pods.to_manifest()}}


@dataclass(frozen=True)
class ClusterPeer:
    """One element of `from`/`to`: exactly one form. `namespaces` (with `pods` None) and
    `pods` select pods as a Subject does; `nodes` selects node IPs; `networks` CIDRs."""

    form: str  # namespaces | pods | nodes | networks
    namespaces: LabelSelector | None = None
    pods: LabelSelector | None = None
    nodes: LabelSelector | None = None
    networks: tuple[str, ...] = ()

    def selects(self, pod: Pod, ns_labels: Mapping[str, str]) -> bool:
        """Does this peer select `pod` by label (namespaces/pods forms)? nodes and networks
        never select a pod by label (networks match addresses: see `contains_ip`)."""
        if self.form not in ("namespaces", "pods") or pod.host_network:
            return False
        assert self.namespaces is not None
        return self.namespaces.matches(ns_labels) and (
            self.pods is None or self.pods.matches(pod.label_map))

    def contains_ip(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr.version == (n := ipaddress.ip_network(c, strict=False)).version and addr in n
                   for c in self.networks)

    def describe(self) -> str:
        if self.form == "networks":
            return f"networks[{','.join(self.networks)}]"
        if self.form == "nodes":
            assert self.nodes is not None
            return f"nodes[{self.nodes.describe()}]"
        assert self.namespaces is not None
        if self.pods is None:
            return f"namespaces[{self.namespaces.describe()}]"
        return f"namespaces[{self.namespaces.describe()}] and pods[{self.pods.describe()}]"

    def to_manifest(self) -> dict[str, Any]:
        if self.form == "networks":
            return {"networks": list(self.networks)}
        if self.form == "nodes":
            assert self.nodes is not None
            return {"nodes": self.nodes.to_manifest()}
        assert self.namespaces is not None
        if self.pods is None:
            return {"namespaces": self.namespaces.to_manifest()}
        return {"pods": {"namespaceSelector": self.namespaces.to_manifest(),
                         "podSelector": self.pods.to_manifest()}}


@dataclass(frozen=True)
class ClusterPort:
    """portNumber (port), portRange (port..end) or namedPort (name)."""

    protocol: str = "TCP"
    port: int | None = None
    end: int | None = None
    name: str | None = None

    def matches(self, port: int, protocol: str, dst: Pod) -> bool:
        if self.name is not None:
            # A named port resolves on the destination pod, by name and protocol.
            return any(cp.name == self.name and cp.port == port and cp.protocol == protocol
                       for cp in dst.ports)
        if self.protocol != protocol:
            return False
        assert self.port is not None
        return self.port == port if self.end is None else self.port <= port <= self.end

    def describe(self) -> str:
        if self.name is not None:
            return f"named port {self.name}"
        if self.end is not None:
            return f"{self.protocol}/{self.port}-{self.end}"
        return f"{self.protocol}/{self.port}"

    def to_manifest(self) -> dict[str, Any]:
        if self.name is not None:
            return {"namedPort": self.name}
        if self.end is not None:
            return {"portRange": {"protocol": self.protocol, "start": self.port, "end": self.end}}
        return {"portNumber": {"protocol": self.protocol, "port": self.port}}


@dataclass(frozen=True)
class ClusterRule:
    action: str  # as the kind spells it: Allow | Accept | Deny | Pass
    peers: tuple[ClusterPeer, ...]
    ports: tuple[ClusterPort, ...] | None = None  # None: every port and protocol
    name: str = ""

    @property
    def verdict(self) -> str:
        """allow | deny | pass."""
        return VERDICT[self.action]

    def port_matches(self, port: int, protocol: str, dst: Pod) -> bool:
        return self.ports is None or any(p.matches(port, protocol, dst) for p in self.ports)

    def to_manifest(self, peer_key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out["action"] = self.action
        out[peer_key] = [p.to_manifest() for p in self.peers]
        if self.ports is not None:
            out["ports"] = [p.to_manifest() for p in self.ports]
        return out


@dataclass(frozen=True)
class ClusterPolicy:
    """An AdminNetworkPolicy, BaselineAdminNetworkPolicy or ClusterNetworkPolicy."""

    kind: str
    name: str
    tier: str  # Admin | Baseline
    priority: int | None  # None: a BANP (no priority; after every Baseline CNP in Kube-OVN)
    subject: Subject
    ingress: tuple[ClusterRule, ...] = ()
    egress: tuple[ClusterRule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def short(self) -> str:
        return SHORT[self.kind]

    @property
    def label(self) -> str:
        """How reasons name it: `ANP deny-y (priority 10)`, `CNP x (Baseline, priority 3)`."""
        if self.kind == BANP:
            return f"BANP {self.name}"
        if self.kind == CNP:
            return f"CNP {self.name} ({self.tier}, priority {self.priority})"
        return f"ANP {self.name} (priority {self.priority})"

    def rules(self, direction: str) -> tuple[ClusterRule, ...]:
        return self.ingress if direction == "Ingress" else self.egress

    def to_manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.kind == CNP:
            spec["tier"] = self.tier
        if self.priority is not None:
            spec["priority"] = self.priority
        spec["subject"] = self.subject.to_manifest()
        if self.ingress:
            spec["ingress"] = [r.to_manifest("from") for r in self.ingress]
        if self.egress:
            spec["egress"] = [r.to_manifest("to") for r in self.egress]
        return {"apiVersion": f"{GROUP}/{KINDS[self.kind]}", "kind": self.kind,
                "metadata": {"name": self.name}, "spec": spec}


# --------------------------------------------------------------------------- validation


def _fields(raw: Any, where: str, allowed: Sequence[str], what: str = "") -> Mapping[str, Any]:
    """A map with only `allowed` keys (strict field validation)."""
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: {what or 'this'} must be a map")
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        if "protocols" in unknown:
            raise ManifestError(
                f"{where}: 'protocols' is the rule shape of network-policy-api v0.2.0; Kube-OVN "
                f"v1.15/v1.16 serve v1alpha2 as of {PINNED} (2025-12-09), whose rules use "
                "'ports' (portNumber, portRange, namedPort)")
        if "domainNames" in unknown and "domainNames" not in allowed:
            raise ManifestError(f"{where}: domainNames is not a field of this peer")
        raise ManifestError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})")
    return raw


def _selector(raw: Any, where: str) -> LabelSelector:
    if raw is None:
        return LabelSelector()
    _fields(raw, where, ("matchLabels", "matchExpressions"), "a label selector")
    return parse_selector(raw, where)


def _one_of(raw: Mapping[str, Any], where: str, forms: Sequence[str]) -> str:
    present = [f for f in forms if raw.get(f) is not None]
    if len(present) != 1:
        got = "none" if not present else " and ".join(present)
        raise ManifestError(f"{where}: exactly one of {', '.join(forms)} must be set, got {got}")
    return present[0]


def _namespaced_pod(raw: Any, where: str) -> tuple[LabelSelector, LabelSelector]:
    _fields(raw, where, ("namespaceSelector", "podSelector"), "pods")
    for key in ("namespaceSelector", "podSelector"):
        if key not in raw:
            raise ManifestError(f"{where}: {key} is required ({{}} selects all)")
    return _selector(raw["namespaceSelector"], f"{where}.namespaceSelector"), \
        _selector(raw["podSelector"], f"{where}.podSelector")


def _subject(raw: Any, where: str) -> Subject:
    if raw is None:
        raise ManifestError(f"{where}: subject is required")
    _fields(raw, where, ("namespaces", "pods"), "subject")
    form = _one_of(raw, where, ("namespaces", "pods"))
    if form == "namespaces":
        return Subject(_selector(raw["namespaces"], f"{where}.namespaces"))
    return Subject(*_namespaced_pod(raw["pods"], f"{where}.pods"))


def _networks(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_NETWORKS:
        raise ManifestError(f"{where}: networks must list 1 to {MAX_NETWORKS} CIDRs")
    out = []
    for i, cidr in enumerate(raw):
        try:
            ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            raise ManifestError(f"{where}[{i}]: {cidr!r} is not a CIDR") from None
        if "/" not in str(cidr):
            raise ManifestError(f"{where}[{i}]: {cidr!r} is not a CIDR (no prefix length)")
        if str(cidr) in out:
            raise ManifestError(f"{where}[{i}]: {cidr} is listed twice (a set)")
        out.append(str(cidr))
    return tuple(out)


def _peer(raw: Any, where: str, kind: str, egress: bool) -> ClusterPeer:
    forms = ["namespaces", "pods"]
    if egress:
        forms += ["nodes", "networks"]
        if kind != BANP:
            forms.append("domainNames")
    _fields(raw, where, forms, "a peer")
    form = _one_of(raw, where, forms)
    if form == "domainNames":
        raise ManifestError(f"{where}: domainNames peers are not modelled by this suite "
                            "(they need DNS resolution)")
    if form == "namespaces":
        return ClusterPeer(form, namespaces=_selector(raw[form], f"{where}.namespaces"))
    if form == "pods":
        ns, pods = _namespaced_pod(raw[form], f"{where}.pods")
        return ClusterPeer(form, namespaces=ns, pods=pods)
    if form == "nodes":
        return ClusterPeer(form, nodes=_selector(raw[form], f"{where}.nodes"))
    return ClusterPeer(form, networks=_networks(raw[form], f"{where}.networks"))


def _number(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
        raise ManifestError(f"{where}: {raw!r} is not a port number 1-65535")
    return raw


def _protocol(raw: Any, where: str) -> str:
    proto = "TCP" if raw is None else raw
    if proto not in PROTOCOLS:
        raise ManifestError(f"{where}: protocol {raw!r} is not one of {', '.join(PROTOCOLS)}")
    return str(proto)


def _port(raw: Any, where: str) -> ClusterPort:
    _fields(raw, where, ("portNumber", "portRange", "namedPort"), "a port")
    form = _one_of(raw, where, ("portNumber", "portRange", "namedPort"))
    if form == "namedPort":
        name = raw[form]
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{where}.namedPort: must be a non-empty string")
        return ClusterPort(name=name)
    body = _fields(raw[form], f"{where}.{form}",
                   ("protocol", "port") if form == "portNumber" else ("protocol", "start", "end"))
    proto = _protocol(body.get("protocol"), f"{where}.{form}")
    if form == "portNumber":
        return ClusterPort(proto, _number(body.get("port"), f"{where}.portNumber.port"))
    start = _number(body.get("start"), f"{where}.portRange.start")
    end = _number(body.get("end"), f"{where}.portRange.end")
    if start >= end:
        raise ManifestError(f"{where}.portRange: start {start} must be less than end {end}")
    return ClusterPort(proto, start, end)


def _rule(raw: Any, where: str, kind: str, egress: bool) -> ClusterRule:
    peer_key = "to" if egress else "from"
    raw = _fields(raw, where, ("name", "action", peer_key, "ports"), "a rule")
    name = raw.get("name") or ""
    if not isinstance(name, str) or len(name) > MAX_RULE_NAME:
        raise ManifestError(f"{where}.name: at most {MAX_RULE_NAME} characters")
    action = raw.get("action")
    if action not in ACTIONS[kind]:
        raise ManifestError(f"{where}.action: {action!r} is not one of {', '.join(ACTIONS[kind])}")
    peers = raw.get(peer_key)
    if not isinstance(peers, list) or not 1 <= len(peers) <= MAX_ITEMS[kind]:
        raise ManifestError(f"{where}.{peer_key}: must list 1 to {MAX_ITEMS[kind]} peers")
    parsed = tuple(_peer(p, f"{where}.{peer_key}[{j}]", kind, egress) for j, p in enumerate(peers))
    ports = raw.get("ports")
    port_list = None
    if ports is not None:
        if not isinstance(ports, list) or not 1 <= len(ports) <= MAX_ITEMS[kind]:
            raise ManifestError(f"{where}.ports: must list 1 to {MAX_ITEMS[kind]} ports "
                                "(leave it out for every port)")
        port_list = tuple(_port(p, f"{where}.ports[{j}]") for j, p in enumerate(ports))
        # The CRD's CEL rule: nodes and networks have no named ports.
        if egress and any(p.name for p in port_list) and any(
                p.form in ("nodes", "networks") for p in parsed):
            raise ManifestError(f"{where}: networks/nodes peers cannot be used with namedPort "
                                "(they have no named ports)")
    return ClusterRule(str(action), parsed, port_list, name)


def _rules(raw: Any, where: str, kind: str, egress: bool) -> tuple[ClusterRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_RULES[kind]:
        raise ManifestError(f"{where}: must be a list of at most {MAX_RULES[kind]} rules")
    return tuple(_rule(r, f"{where}[{i}]", kind, egress) for i, r in enumerate(raw))


def _priority(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_PRIORITY:
        raise ManifestError(f"{where}: priority {raw!r} is not an integer 0-{MAX_PRIORITY}")
    return raw


def parse_cluster_policy(doc: Mapping[str, Any]) -> ClusterPolicy:
    """One manifest of the three kinds; ManifestError (one line naming the object) if the
    API server would refuse it."""
    kind = str(doc.get("kind"))
    meta = doc.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not name:
        raise ManifestError(f"{kind} without metadata.name")
    where = f"{kind} {name}"
    want = f"{GROUP}/{KINDS[kind]}"
    if doc.get("apiVersion") != want:
        raise ManifestError(f"{where}: apiVersion {doc.get('apiVersion')!r} is not {want!r} "
                            f"(the version Kube-OVN serves {kind} at)")
    if kind == BANP and name != "default":
        raise ManifestError(f"{where}: a BaselineAdminNetworkPolicy must be named \"default\" "
                            "(there is one per cluster)")
    fields = {ANP: ("priority", "subject", "ingress", "egress"),
              BANP: ("subject", "ingress", "egress"),
              CNP: ("tier", "priority", "subject", "ingress", "egress")}[kind]
    spec = _fields(doc.get("spec"), f"{where}: spec", fields, "spec")
    tier = ADMIN if kind == ANP else BASELINE
    if kind == CNP:
        tier = spec.get("tier")
        if tier not in (ADMIN, BASELINE):
            raise ManifestError(f"{where}: spec.tier {tier!r} is not Admin or Baseline")
    priority = None if kind == BANP else _priority(spec.get("priority"), f"{where}: spec.priority")
    return ClusterPolicy(
        kind, str(name), str(tier), priority, _subject(spec.get("subject"), f"{where}: spec.subject"),
        _rules(spec.get("ingress"), f"{where}: spec.ingress", kind, False),
        _rules(spec.get("egress"), f"{where}: spec.egress", kind, True))
