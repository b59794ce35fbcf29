"""Short constructors for cluster-scoped policies, so cases read like the manifests:

    anp("deny-y-egress", 10, subject(ns(ns="x")),
        egress=[crule("Deny", to_ns(ns="y"), ports=[tcp(80)])])
"""

from __future__ import annotations

from collections.abc import Iterable

from kubeovn_conformance.builders import container_port, namespace, pod, select, service, service_port
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
from kubeovn_conformance.model import LabelSelector, Scenario


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


# --------------------------------------------------------------------------- the policy-api ground

HOUSES = {"gryffindor": "harry", "slytherin": "draco", "hufflepuff": "cedric", "ravenclaw": "luna"}
HOUSE_LABEL = "conformance-house"
# The ports network-policy-api's conformance pods serve (conformance/base/manifests.yaml):
# TCP 80 named "web", TCP 8080, UDP 53 named "dns", UDP 5353, SCTP 9003 and 9005.
POLICY_API_PORTS = ((80, "TCP", "web"), (8080, "TCP", None), (53, "UDP", "dns"),
                    (5353, "UDP", None), (9003, "SCTP", None), (9005, "SCTP", None))
SERVICE_OFFSET = 10000  # Service port = pod port + 10000: never the pod's own port


def policy_api_ground(protocols: Iterable[str] = ("TCP", "UDP")) -> Scenario:
    """network-policy-api's conformance model in this suite's terms: namespaces gryffindor,
    slytherin, hufflepuff, ravenclaw (labelled conformance-house=<house>), two pods each
    (harry-0, harry-1, draco-0, ...; labelled conformance-house=<house>), serving the ports of
    POLICY_API_PORTS of `protocols`; and a Service s-<pod> per pod whose ports are the pod's
    plus 10000, so every case is also probed after the load balancer's DNAT. (Upstream probes
    Pod IPs only.)"""
    wanted = tuple(protocols)
    cports = tuple(container_port(p, proto, name) for p, proto, name in POLICY_API_PORTS
                   if proto in wanted)
    nss = tuple(namespace(h, **{HOUSE_LABEL: h}) for h in HOUSES)
    pods = tuple(pod(h, f"{who}-{i}", {HOUSE_LABEL: h, "pod": f"{who}-{i}"}, cports)
                 for h, who in HOUSES.items() for i in (0, 1))
    services = tuple(service(p.namespace, f"s-{p.name}", {"pod": p.name},
                             *(service_port(cp.port + SERVICE_OFFSET, cp.port, cp.protocol)
                               for cp in cports))
                     for p in pods)
    return Scenario(nss, pods, services)


def house(name: str) -> LabelSelector:
    """The namespace (or pods) of one house, by the conformance-house label."""
    return select(**{HOUSE_LABEL: name})
