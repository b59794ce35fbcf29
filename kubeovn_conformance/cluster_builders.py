"""Short constructors for cluster-scoped policies, so cases read like the manifests:

    anp("deny-y-egress", 10, subject(ns(ns="x")),
        egress=[crule("Deny", to_ns(ns="y"), ports=[tcp(80)])])
"""

from __future__ import annotations

from collections.abc import Iterable

from kubeovn_conformance.builders import select
from kubeovn_conformance.cluster_policy import (
    ADMIN,
    ANP,
    BANP,
    BASELINE,
    CNP,
    ClusterPeer,
    ClusterPolicy,
    ClusterPort,
    ClusterRule,
    Subject,
)
from kubeovn_conformance.model import LabelSelector


def ns(**labels: str) -> LabelSelector:
    return select(**labels)


def subject(namespaces: LabelSelector | None = None, pods: LabelSelector | None = None) -> Subject:
    """namespaces only: the `namespaces` form; with pods: the `pods` form."""
    return Subject(namespaces or LabelSelector(), pods)


def peer_ns(namespaces: LabelSelector | None = None) -> ClusterPeer:
    return ClusterPeer("namespaces", namespaces=namespaces or LabelSelector())


def peer_pods(namespaces: LabelSelector | None = None, pods: LabelSelector | None = None) -> ClusterPeer:
    return ClusterPeer("pods", namespaces=namespaces or LabelSelector(), pods=pods or LabelSelector())


def peer_networks(*cidrs: str) -> ClusterPeer:
    return ClusterPeer("networks", networks=tuple(cidrs))


def peer_nodes(nodes: LabelSelector | None = None) -> ClusterPeer:
    return ClusterPeer("nodes", nodes=nodes or LabelSelector())


def tcp(port: int, end: int | None = None) -> ClusterPort:
    return ClusterPort("TCP", port, end)


def udp(port: int, end: int | None = None) -> ClusterPort:
    return ClusterPort("UDP", port, end)


def sctp(port: int, end: int | None = None) -> ClusterPort:
    return ClusterPort("SCTP", port, end)


def named(name: str) -> ClusterPort:
    return ClusterPort(name=name)


def crule(action: str, *peers: ClusterPeer, ports: Iterable[ClusterPort] | None = None,
          name: str = "") -> ClusterRule:
    return ClusterRule(action, tuple(peers), None if ports is None else tuple(ports), name)


def anp(name: str, priority: int, subj: Subject, ingress: Iterable[ClusterRule] = (),
        egress: Iterable[ClusterRule] = ()) -> ClusterPolicy:
    return ClusterPolicy(ANP, name, ADMIN, priority, subj, tuple(ingress), tuple(egress))


def banp(subj: Subject, ingress: Iterable[ClusterRule] = (),
         egress: Iterable[ClusterRule] = ()) -> ClusterPolicy:
    return ClusterPolicy(BANP, "default", BASELINE, None, subj, tuple(ingress), tuple(egress))


def cnp(name: str, tier: str, priority: int, subj: Subject, ingress: Iterable[ClusterRule] = (),
        egress: Iterable[ClusterRule] = ()) -> ClusterPolicy:
    return ClusterPolicy(CNP, name, tier, priority, subj, tuple(ingress), tuple(egress))
