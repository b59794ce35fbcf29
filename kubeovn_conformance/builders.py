"""Short constructors for model objects, so cases read like the policies they test.

    policy("x", "allow-8000", select(app="server"),
           ingress=[rule(peer(pods=select(app="client"), namespaces=select(role="client")),
                         ports=[port(8000)])])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from kubeovn_conformance.model import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Requirement,
    Rule,
    Scenario,
    Service,
    ServicePort,
)

PROTOCOLS = ("TCP", "UDP", "SCTP")


def select(*exprs: Requirement, **labels: str) -> LabelSelector:
    return LabelSelector.of(labels, *exprs)


def expr(key: str, operator: str, *values: str) -> Requirement:
    return Requirement(key, operator, tuple(values))


def namespace(name: str, **labels: str) -> Namespace:
    return Namespace(name, tuple(sorted(labels.items())))


def container_port(number: int, protocol: str = "TCP", name: str | None = None) -> ContainerPort:
    return ContainerPort(number, protocol, name)


def pod(ns: str, name: str, labels: dict[str, str] | None = None,
        ports: Iterable[ContainerPort] = (), ip: str | None = None,
        host_network: bool = False) -> Pod:
    return Pod(ns, name, tuple(sorted((labels or {}).items())), tuple(ports), ip, host_network)


def service(ns: str, name: str, selector: dict[str, str] | None, *ports: ServicePort,
            type: str = "ClusterIP") -> Service:
    sel = None if selector is None else tuple(sorted(selector.items()))
    return Service(ns, name, sel, tuple(ports), type)


def service_port(number: int, target: int | str, protocol: str = "TCP",
                 node_port: int | None = None) -> ServicePort:
    return ServicePort(number, target, protocol, None, node_port)


def port(number: int | str | None = None, protocol: str = "TCP", end: int | None = None) -> PolicyPort:
    return PolicyPort(protocol, number, end)


def peer(pods: LabelSelector | None = None, namespaces: LabelSelector | None = None) -> Peer:
    """podSelector and/or namespaceSelector in ONE peer (AND'd)."""
    return Peer(pods, namespaces)


def block(cidr: str, *excepts: str) -> Peer:
    return Peer(ip_block=IPBlock(cidr, tuple(excepts)))


def rule(*peers: Peer, ports: Iterable[PolicyPort] | None = None) -> Rule:
    """No peers: any peer. No ports: any port."""
    return Rule(tuple(peers) or None, None if ports is None else tuple(ports))


def policy(ns: str, name: str, pods: LabelSelector | None = None,
           ingress: Iterable[Rule] | None = None, egress: Iterable[Rule] | None = None,
           types: Iterable[str] | None = None) -> NetworkPolicy:
    return NetworkPolicy(ns, name, pods or LabelSelector(),
                         None if ingress is None else tuple(ingress),
                         None if egress is None else tuple(egress),
                         None if types is None else tuple(types))


def deny_all(ns: str, name: str = "deny-all", types: Iterable[str] = ("Ingress",)) -> NetworkPolicy:
    """Select every pod of `ns` and allow nothing in the given directions."""
    types = tuple(types)
    return policy(ns, name, select(),
                  ingress=[] if "Ingress" in types else None,
                  egress=[] if "Egress" in types else None, types=types)


def upstream_ground(namespaces: Iterable[str] = ("x", "y", "z"), pods: Iterable[str] = ("a", "b", "c"),
                    ports: Iterable[int] = (80, 81), protocols: Iterable[str] = PROTOCOLS,
                    service_offset: int | None = None) -> Scenario:
    """The upstream NetworkPolicy e2e's model: namespaces labelled ns=<name>, pods labelled
    pod=<name>, each serving every port on every protocol with names serve-<port>-<proto>.
    With `service_offset`, a Service s-<pod> per pod maps port+offset to each pod port:
    Service ports unlike pod ports, so every case also tests policy after DNAT."""
    ports, protocols = tuple(ports), tuple(protocols)
    nss = tuple(namespace(n, ns=n) for n in namespaces)
    cports = tuple(container_port(p, proto, f"serve-{p}-{proto.lower()}")
                   for proto in protocols for p in ports)
    all_pods = tuple(pod(n.name, name, {"pod": name}, cports) for n in nss for name in pods)
    services: tuple[Service, ...] = ()
    if service_offset is not None:
        services = tuple(
            service(p.namespace, f"s-{p.name}", {"pod": p.name},
                    *(service_port(n + service_offset, n, proto) for proto in protocols for n in ports))
            for p in all_pods)
    return Scenario(nss, all_pods, services)


def upstream_topology(*keys: str, ports: Iterable[int] = (80,), protocols: Iterable[str] = ("TCP",),
                      service_offset: int = 8000) -> Scenario:
    """One upstream e2e test's own topology: only the pods it names ("x/a", "y/b", ...), on its
    ports and protocols, in the three namespaces x, y, z (upstream creates all three, even
    those without pods), each pod behind its Service s-<pod> (port + offset -> port)."""
    full = upstream_ground(ports=ports, protocols=protocols, service_offset=service_offset)
    unknown = sorted(set(keys) - {p.key for p in full.pods})
    if unknown or len(set(keys)) != len(keys):
        raise ValueError(f"upstream topology {' '.join(keys)}: "
                         + (f"no pod {', '.join(unknown)} in x/y/z x a/b/c" if unknown else "a pod twice"))
    pods = tuple(p for p in full.pods if p.key in keys)
    services = tuple(s for s in full.services if any(s.selects(p) for p in pods))
    return replace(full, pods=pods, services=services)
