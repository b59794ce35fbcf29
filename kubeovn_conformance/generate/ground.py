"""The workload every generated case runs on: namespaces, labelled pods, Services.

Namespaces x (env=prod), y (env=dev) and z (no env: selectors on an absent key), each
labelled ns=<name>. Pods, each labelled pod=<name> (what its Service selects) and with the
labels peers select on, which steps may change without touching Service endpoints:

    x/a  pod=a                         (the target of `pod` policies)
    x/b  pod=b team=blue tier=web
    x/c  pod=c
    y/a  pod=a tier=web
    y/b  pod=b team=blue
    z/c  pod=c team=red

Every pod listens on 80 and 81 of each protocol of its workload (TCP and UDP, or SCTP),
named `web`/`alt` (`web-u`/`alt-u` for UDP). In z the names are swapped (web = 81): a named
port resolves on each destination pod, so a rule naming `web` means 80 in x and y but 81 in
z. A Service s-<pod> per pod maps 8080 to the named targetPort `web` and 8081 to the number
81, per protocol: port != targetPort on every Service, one named and one numeric.
"""

from __future__ import annotations

from dataclasses import replace

from kubeovn_conformance.builders import container_port, namespace, pod, service, service_port
from kubeovn_conformance.model import ContainerPort, Pod, Scenario, Service

SERVICE_NAMED, SERVICE_NUMERIC = 8080, 8081
LISTENERS = (80, 81)
NAMES = {"TCP": ("web", "alt"), "UDP": ("web-u", "alt-u"), "SCTP": ("web-s", "alt-s")}
SWAPPED = "z"  # the namespace whose pods give `web` the number 81

NAMESPACES = (namespace("x", ns="x", env="prod"), namespace("y", ns="y", env="dev"),
              namespace("z", ns="z"))
POD_LABELS = {
    "x/a": {"pod": "a"},
    "x/b": {"pod": "b", "team": "blue", "tier": "web"},
    "x/c": {"pod": "c"},
    "y/a": {"pod": "a", "tier": "web"},
    "y/b": {"pod": "b", "team": "blue"},
    "z/c": {"pod": "c", "team": "red"},
}
LATE = "x/late"  # created by the pod-after-policy step
LATE_LABELS = {"pod": "late", "team": "blue"}


def port_name(protocol: str, number: int, ns: str = "x", swapped: str | None = SWAPPED) -> str:
    """The name a pod of `ns` gives its `number`/`protocol` listener."""
    web, alt = NAMES[protocol]
    first = number == LISTENERS[0]
    return (alt if first else web) if ns == swapped else (web if first else alt)


def _ports(ns: str, protocols: tuple[str, ...], swapped: str | None) -> tuple[ContainerPort, ...]:
    return tuple(container_port(n, proto, port_name(proto, n, ns, swapped))
                 for proto in protocols for n in LISTENERS)


def _pod(key: str, labels: dict[str, str], protocols: tuple[str, ...],
         swapped: str | None = SWAPPED) -> Pod:
    ns, name = key.split("/")
    return pod(ns, name, labels, _ports(ns, protocols, swapped))


def _service(p: Pod, protocols: tuple[str, ...]) -> Service:
    return service(p.namespace, f"s-{p.name}", {"pod": p.name},
                   *(sp for proto in protocols for sp in (
                       service_port(SERVICE_NAMED, NAMES[proto][0], proto),
                       service_port(SERVICE_NUMERIC, LISTENERS[1], proto))))


def ground(protocols: tuple[str, ...], swapped: str | None = SWAPPED) -> Scenario:
    """The workload serving `protocols`; `swapped=None` gives every namespace the same port
    names (tests use it to show which verdicts depend on per-namespace names)."""
    pods = tuple(_pod(k, labels, protocols, swapped) for k, labels in POD_LABELS.items())
    return Scenario(NAMESPACES, pods, tuple(_service(p, protocols) for p in pods))


# SCTP has a workload of its own: backends without kernel SCTP skip a case whose workload
# serves SCTP (pytest_plugin.Conformance.skip_reason), and TCP/UDP cases must still run there.
TCP_UDP = ground(("TCP", "UDP"))
SCTP = ground(("SCTP",))


def workload(protocol: str) -> Scenario:
    return SCTP if protocol == "SCTP" else TCP_UDP


def served(w: Scenario) -> tuple[str, ...]:
    """The protocols the workload's pods serve, in a fixed order."""
    return tuple(p for p in ("TCP", "UDP", "SCTP") if any(
        cp.protocol == p for pod_ in w.pods for cp in pod_.ports))


def late_pod(w: Scenario) -> Pod:
    return _pod(LATE, LATE_LABELS, served(w))


def retargeted(svc: Service) -> Service:
    """The Service with its targetPorts swapped: 8080 -> 81 (a number), 8081 -> `web`."""
    return replace(svc, ports=tuple(
        replace(sp, target_port=LISTENERS[1] if sp.port == SERVICE_NAMED else NAMES[sp.protocol][0])
        for sp in svc.ports))
