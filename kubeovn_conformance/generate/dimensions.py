"""The dimensions generated cases vary, each value named, and the pairs that cannot combine.

A value's `slug` is what it adds to a case id (empty for the plain default, so ids stay
short); its `text` is what it adds to the description. `exclusions` lists the value pairs
the covering array leaves out, each with its reason; `corpus_seeds` the partial rows
Kube-OVN's bug history needs (clusters/kube-ovn-history.yaml), each under its entry id.
Pure data: nothing here builds a policy (see policies.py and steps.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Value:
    name: str
    slug: str  # part of the case id ("" for a default left out of ids)
    text: str  # part of the description


@dataclass(frozen=True)
class Dimension:
    name: str
    values: tuple[Value, ...]

    def value(self, name: str) -> Value:
        for v in self.values:
            if v.name == name:
                return v
        raise KeyError(f"dimension {self.name} has no value {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.values)


def _dim(name: str, *values: tuple[str, str, str]) -> Dimension:
    return Dimension(name, tuple(Value(*v) for v in values))


# The first value of each dimension is its default: rows take it when nothing else is left
# to cover, so most cases are one-step single-policy cases that pack well.
DIRECTION = _dim(
    "direction",
    ("ingress", "ingress", "ingress rule, policyTypes [Ingress]"),
    ("egress", "egress", "egress rule, policyTypes [Egress]"),
    ("both", "both", "the same rule for ingress and egress, policyTypes [Ingress, Egress]"),
    ("types-ingress-with-egress-rules", "types-ingress-with-egress-rules",
     "policyTypes [Ingress] with the rule on both sides: the egress rules must be ignored"),
    ("types-egress-with-ingress-rules", "types-egress-with-ingress-rules",
     "policyTypes [Egress] with the rule on both sides: the ingress rules must be ignored"),
    ("egress-empty-no-types", "ingress-egress-empty-no-types",
     "ingress rule, `egress: []` and no policyTypes: no egress isolation"),
)
TARGET = _dim(
    "target",
    ("pod", "", "selecting x/a (pod=a)"),
    ("all", "target-all", "selecting every pod of x ({})"),
    ("none", "target-none", "selecting nothing (pod=nobody)"),
)
PEERS = _dim(
    "peers",
    ("any", "peer-any", "peers missing (any peer)"),
    ("empty-list", "peer-empty-list", "an empty peer list `from: []` (any peer)"),
    ("pod", "peer-pod", "podSelector team=blue (the policy's namespace)"),
    ("ns", "peer-ns", "namespaceSelector env=dev"),
    ("ns-and-pod", "peer-ns-and-pod", "one peer: namespaceSelector env=dev AND podSelector team=blue"),
    ("ns-or-pod", "peer-ns-or-pod", "two peers: namespaceSelector env=dev OR podSelector team=blue"),
    ("all-ns", "peer-all-ns", "namespaceSelector {} (every pod)"),
    ("expr-in", "peer-expr-in", "podSelector team In (blue, red) in every namespace"),
    ("expr-notin-absent-key", "peer-expr-notin-absent-key",
     "namespaceSelector env NotIn (prod): also namespaces without env"),
    ("expr-exists", "peer-expr-exists", "podSelector tier Exists in every namespace"),
    ("expr-doesnotexist-absent-key", "peer-expr-doesnotexist-absent-key",
     "namespaceSelector env DoesNotExist"),
    ("ipblock", "peer-ipblock", "ipBlock: the pod subnet"),
    ("ipblock-except", "peer-ipblock-except", "ipBlock: the pod subnet except y/b"),
    ("ipblock-beside-selector", "peer-ipblock-beside-selector",
     "podSelector team=blue OR the pod subnet except x/b (which the selector admits)"),
    ("two-ipblocks", "peer-two-ipblocks", "two ipBlocks: y/a/32 OR z/c/32"),
    ("rule0-selects-nothing", "peer-rule0-selects-nothing",
     "rule 0 admits team=green pods of any namespace (none), rule 1 namespaceSelector env=dev"),
)
PORTS = _dim(
    "ports",
    ("any", "port-any", "any port"),
    ("pod", "port-pod", "the pod port 81 (Service 8081's targetPort)"),
    ("service", "port-service", "the Service port 8081 only (nothing after DNAT)"),
    ("named-target", "port-named-target", "the named port of Service 8080's targetPort"),
    ("endport-inside", "port-endport-inside", "range 79-82: listeners 80, 81 inside"),
    ("endport-bounds", "port-endport-bounds", "range 80-81: listeners at both bounds"),
    ("endport-below", "port-endport-below", "range 82-90: listeners below it"),
    ("endport-above", "port-endport-above", "range 70-79: listeners above it"),
    ("protocol-only", "port-protocol-only", "the protocol, no port"),
    ("several", "port-several", "port 80 and the other protocol's 81"),
    ("undeclared", "port-undeclared", "port 82, which no container declares"),
)
PROTOCOL = _dim(
    "protocol",
    ("TCP", "tcp", "TCP"),
    ("UDP", "udp", "UDP"),
    ("SCTP", "sctp", "SCTP"),
)
POLICIES = _dim(
    "policies",
    ("one", "", "one policy"),
    ("two-overlapping", "policy-two-overlapping", "plus a second policy admitting y/b on 80 (union)"),
    ("with-default-deny", "policy-with-default-deny", "plus a default deny of x"),
    ("same-name-two-ns", "policy-same-name-two-ns", "the same policy also in y, same name"),
    ("digit-name", "policy-digit-name", "named with a leading digit"),
    ("long-dotted-name", "policy-long-dotted-name",
     "a name of more than 150 characters with dashes and dots"),
    ("dot-dash-twins", "policy-dot-dash-twins",
     "plus a default deny whose name differs only in '.' for '-'"),
)
STEPS = _dim(
    "steps",
    ("add", "", "added"),
    ("update", "step-update", "updated from a wider first version"),
    ("delete", "step-delete", "then deleted"),
    ("relabel-peer-in", "step-relabel-peer-in", "then x/c gains team=blue"),
    ("relabel-peer-out", "step-relabel-peer-out", "then x/b loses team=blue"),
    ("relabel-namespace", "step-relabel-namespace", "then namespace z gains env=dev"),
    ("pod-after-policy", "step-pod-after-policy", "then x/late (team=blue) is created"),
    ("service-retarget", "step-service-retarget", "then Service x/s-a swaps its targetPorts"),
)

DIMENSIONS: tuple[Dimension, ...] = (DIRECTION, TARGET, PEERS, PORTS, PROTOCOL, POLICIES, STEPS)
BY_NAME: Mapping[str, Dimension] = {d.name: d for d in DIMENSIONS}

# Pairs left out of the covering array: ((dimension, value), (dimension, value)) -> reason.
EXCLUSIONS: Mapping[tuple[tuple[str, str], tuple[str, str]], str] = {
    (("ports", "any"), ("protocol", "UDP")):
        "a rule without ports names no protocol: on the TCP/UDP workload the UDP case would "
        "be the TCP case again (SCTP has a workload of its own, so any/SCTP stays)",
}

# Beyond pairs: every peers x ports combination once as an ingress rule and once as an
# egress rule. The two directions are built by different code (to-lport ACLs vs from-lport
# ACLs after the load balancer, named ports resolved in the policy's namespace), so a pair
# seen only in one direction says little about the other.
TRIPLES = (("direction", ("ingress", "egress")), ("peers", None), ("ports", None))

# Rows the historical corpus needs, by entry id: the shape each bug shows in (the covering
# array completes the other dimensions). The pure corpus test proves each is caught.
CORPUS_SEEDS: Mapping[str, Mapping[str, str]] = {
    "except-drop-acl": {"direction": "ingress", "target": "pod", "peers": "ipblock-except",
                        "ports": "any", "protocol": "TCP", "policies": "two-overlapping"},
    "egress-except-eq": {"direction": "egress", "target": "pod", "peers": "ipblock-except",
                         "ports": "pod", "protocol": "TCP"},
    "egress-no-clusterips": {"direction": "egress", "target": "pod", "peers": "ns",
                             "ports": "any", "protocol": "TCP"},
    "endport-ignored": {"direction": "ingress", "target": "pod", "ports": "endport-bounds",
                        "protocol": "TCP"},
    "named-port-zero": {"direction": "ingress", "target": "pod", "ports": "named-target",
                        "protocol": "TCP"},
    "egress-before-lb": {"direction": "egress", "target": "pod", "peers": "ns", "ports": "pod",
                         "protocol": "TCP"},
    "late-pod-ignored": {"direction": "ingress", "target": "all", "peers": "ns", "protocol": "TCP",
                         "steps": "pod-after-policy"},
    "resync-delete-then-add": {"direction": "ingress", "target": "pod", "peers": "pod",
                               "ports": "pod", "protocol": "TCP", "policies": "one",
                               "steps": "update"},
    "digit-policy-name": {"direction": "ingress", "target": "all", "peers": "pod",
                          "protocol": "TCP", "policies": "digit-name"},
    "egress-rule0-empty": {"direction": "egress", "target": "pod", "peers": "rule0-selects-nothing",
                           "ports": "pod", "protocol": "TCP", "policies": "one"},
    "except-scope": {"direction": "ingress", "target": "pod", "peers": "ipblock-beside-selector",
                     "ports": "any", "protocol": "TCP"},
    "ipblocks-unparenthesized": {"direction": "ingress", "target": "pod", "peers": "two-ipblocks",
                                 "ports": "any", "protocol": "TCP"},
    "label-resync-by-match-diff": {"direction": "ingress", "target": "all", "peers": "pod",
                                   "ports": "any", "protocol": "TCP", "steps": "relabel-peer-out"},
    "label-resync-namespace": {"direction": "ingress", "target": "pod",
                               "peers": "rule0-selects-nothing", "ports": "any", "protocol": "TCP",
                               "steps": "relabel-namespace"},
    "policy-name-collision": {"direction": "ingress", "target": "pod", "peers": "pod",
                              "protocol": "TCP", "policies": "dot-dash-twins"},
    "named-port-by-policy-namespace": {"direction": "egress", "target": "pod", "peers": "any",
                                       "ports": "named-target", "protocol": "TCP"},
}


# Values that appear only in the seed rows the corpus needs, not in pairs: a known Kube-OVN
# bug decides every cell of such a row, so pairing the value with every other value would
# repeat one failure a dozen times and test nothing else.
SEED_ONLY: Mapping[tuple[str, str], str] = {
    ("policies", "dot-dash-twins"):
        "two policies whose names differ only in '.' for '-' share one Kube-OVN port group and "
        "the one synced last wins (corpus entry policy-name-collision, open): its seed row "
        "catches that; paired with everything it would only fail the same way again",
}


def excluded(a: tuple[str, str], b: tuple[str, str]) -> str | None:
    """The reason the pair (dimension, value) x (dimension, value) is not required, or None."""
    return (EXCLUSIONS.get((a, b)) or EXCLUSIONS.get((b, a)) or SEED_ONLY.get(a)
            or SEED_ONLY.get(b))


def row_exclusion(row: Mapping[str, str]) -> str | None:
    """The reason a (partial) row is invalid: the first excluded pair it holds (seed-only
    values are valid: they are just never required)."""
    items = sorted(row.items())
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            reason = EXCLUSIONS.get((a, b)) or EXCLUSIONS.get((b, a))
            if reason:
                return reason
    return None
