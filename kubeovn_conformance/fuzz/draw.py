"""Random single-state scenarios from a seed: the fuzzer's vocabulary.

`draw(seed, index, mode)` is a pure function: the same arguments give the same scenario on
every machine (the generator is seeded with a string, which Python hashes with SHA-512).
Scenario `index` of a seed does not depend on the scenarios before it, so any one of them
can be repeated alone (`fuzz --seed S --scenario N`).

What a scenario holds:
- 1-3 namespaces (x, y, z) labelled ns=<name>, some team=blue|red;
- 2-5 pods labelled pod=<name>, app=web|db, some tier=front|back, each serving 1-3 ports
  from a small pool (TCP 80-88, UDP 53/80/81 when UDP is drawn), often named; names are
  shared between pods on purpose (http on 80 here, on 81 there), since named ports resolve
  per destination pod;
- 0-2 Services, port != targetPort, numeric targetPorts only where every backend declares
  them (otherwise whether a probe is refused would depend on the backend the load
  balancer picks) and named targetPorts;
- 1-3 NetworkPolicies: podSelector {} / matchLabels / matchExpressions (In, NotIn, Exists,
  DoesNotExist); ingress, egress or both, policyTypes given or defaulted (rarely one that
  leaves out a direction whose rules are present), `ingress: []`; peers podSelector,
  namespaceSelector, both in one peer, ipBlock with and without except; ports numeric,
  named, endPort ranges (drawn around declared ports, so a listener often sits inside a
  range above its first port), protocol only; missing `from`/`to`/`ports`.

Pods carry the IPs the lab gives them in that order (topology.SUBNETS), so the drawn
scenario is complete (ipBlocks name real pod addresses) and `expect` can judge it as is;
a backend that hands out other IPs gets the ipBlocks rebased (fuzz/case.py).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence

from kubeovn_conformance.backends.lab.topology import SUBNETS
from kubeovn_conformance.model import (
    NS_NAME_LABEL,
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
from kubeovn_conformance.oracle import UNDEFINED, Oracle

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c", "d", "e")
TCP_PORTS = (80, 81, 82, 84, 88)
UDP_PORTS = (53, 80, 81)
PORT_NAMES = ("http", "alt", "serve")
APPS = ("web", "db")
TIERS = ("front", "back")
TEAMS = ("blue", "red")
SERVICE_OFFSET = 8000  # Service port = targetPort + offset: never equal to the pod's port


def draw(seed: int, index: int, mode: str = "overlay",
         protocols: Sequence[str] = ("TCP", "UDP")) -> Scenario:
    """Scenario `index` of `seed`: deterministic, and well-formed (see `malformed`)."""
    rng = random.Random(f"kubeovn-fuzz:{seed}:{index}")
    for _ in range(100):
        scenario = _Drawer(rng, mode, tuple(protocols)).scenario()
        if not malformed(scenario):
            return scenario
    raise RuntimeError(f"seed {seed} scenario {index}: no well-formed draw in 100 tries")


def malformed(scenario: Scenario) -> str | None:
    """Why probing `scenario` could not give a clean verdict, or None. An allowed Service
    probe whose backends differ in listening on the target port has no single expected
    observation (refused or connected depends on the backend the load balancer picks):
    the runner could never agree on it, which is not a policy failure."""
    for e in Oracle(scenario).expectations():
        if e.verdict != UNDEFINED and e.expected_observed is None:
            p = e.probe
            return f"{p.client} -> {p.target}:{p.port}/{p.protocol}: backends differ in listening"
    return None


class _Drawer:
    def __init__(self, rng: random.Random, mode: str, protocols: tuple[str, ...]) -> None:
        self.rng = rng
        self.subnet = SUBNETS[mode]
        self.protocols = protocols
        self.namespaces: list[Namespace] = []
        self.pods: list[Pod] = []

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def scenario(self) -> Scenario:
        rng = self.rng
        names = NAMESPACES[:rng.choice((1, 2, 2, 3, 3))]
        self.namespaces = [Namespace(n, tuple(sorted(
            {"ns": n, **({"team": rng.choice(TEAMS)} if self.chance(0.5) else {})}.items())))
            for n in names]
        count = rng.randint(max(2, len(names)), 5)
        homes = list(names) + [rng.choice(names) for _ in range(count - len(names))]
        self.pods = [self._pod(homes[i], POD_NAMES[i], i) for i in range(count)]
        services = [s for s in (self._service(i) for i in range(rng.choice((0, 1, 1, 2)))) if s]
        policies = [self._policy(i) for i in range(rng.choice((1, 1, 2, 2, 3)))]
        return Scenario(tuple(self.namespaces), tuple(self.pods), tuple(services), tuple(policies))

    # ------------------------------------------------------------------ workload

    def _pod(self, namespace: str, name: str, index: int) -> Pod:
        rng = self.rng
        labels = {"pod": name, "app": rng.choice(APPS)}
        if self.chance(0.5):
            labels["tier"] = rng.choice(TIERS)
        ports: list[ContainerPort] = []
        used_names: set[str] = set()
        for number in sorted(rng.sample(TCP_PORTS, rng.choice((1, 2, 2, 3)))):
            ports.append(ContainerPort(number, "TCP", self._port_name(used_names)))
        if "UDP" in self.protocols and self.chance(0.25):
            ports.append(ContainerPort(rng.choice(UDP_PORTS), "UDP", self._port_name(used_names)))
        return Pod(namespace, name, tuple(sorted(labels.items())), tuple(ports),
                   self.subnet.pod_ip(index))

    def _port_name(self, used: set[str]) -> str | None:
        free = [n for n in PORT_NAMES if n not in used]
        if not free or not self.chance(0.6):
            return None
        name = self.rng.choice(free)
        used.add(name)
        return name

    def _service(self, index: int) -> Service | None:
        rng = self.rng
        home = rng.choice([n.name for n in self.namespaces if any(p.namespace == n.name for p in self.pods)])
        local = [p for p in self.pods if p.namespace == home]
        key, value = rng.choice([("pod", rng.choice(local).name),
                                 ("app", rng.choice(local).label_map["app"])])
        backends = [p for p in local if p.label_map.get(key) == value]
        common = set.intersection(*({(c.port, c.protocol) for c in p.ports} for p in backends))
        named = sorted({(c.name, c.protocol) for p in backends for c in p.ports if c.name})
        targets: list[tuple[int | str, str]] = [*sorted(common), *named]
        ports: list[ServicePort] = []
        for target, proto in rng.sample(targets, min(len(targets), rng.choice((1, 2)))):
            number = target if isinstance(target, int) else 100 + PORT_NAMES.index(target)
            if any(sp.port == SERVICE_OFFSET + number and sp.protocol == proto for sp in ports):
                continue
            ports.append(ServicePort(SERVICE_OFFSET + number, target, proto))
        if not ports:
            return None
        return Service(home, f"s{index}", ((key, value),), tuple(ports))

    # ------------------------------------------------------------------ policies

    def _policy(self, index: int) -> NetworkPolicy:
        rng = self.rng
        home = rng.choice(sorted({p.namespace for p in self.pods}))
        kinds = rng.choices((("Ingress",), ("Egress",), ("Ingress", "Egress")), (5, 3, 3))[0]
        ingress = self._rules("Ingress") if "Ingress" in kinds else None
        egress = self._rules("Egress") if "Egress" in kinds else None
        types: tuple[str, ...] | None = kinds if self.chance(0.5) else None
        if types is None and kinds == ("Egress",):
            types = ("Egress",)  # defaulting would add Ingress: say what was drawn
        if self.chance(0.06) and len(kinds) == 2:
            types = (rng.choice(kinds),)  # policyTypes leaving out a direction that has rules
        name = f"{index}-deny" if self.chance(0.05) else f"p{index}"
        return NetworkPolicy(home, name, self._pod_selector(home, allow_empty=True),
                             ingress, egress, types)

    def _rules(self, direction: str) -> tuple[Rule, ...]:
        if self.chance(0.12):
            return ()  # `ingress: []`: isolated, nothing allowed
        return tuple(self._rule() for _ in range(self.rng.choice((1, 1, 2))))

    def _rule(self) -> Rule:
        rng = self.rng
        peers = None if self.chance(0.25) else tuple(self._peer() for _ in range(rng.choice((1, 1, 2))))
        ports = (None if self.chance(0.25)
                 else tuple(self._policy_port() for _ in range(rng.choice((1, 1, 2)))))
        return Rule(peers, ports)

    def _peer(self) -> Peer:
        kind = self.rng.choices(("pods", "namespaces", "both", "block"), (3, 2, 2, 2))[0]
        if kind == "block":
            return Peer(ip_block=self._block())
        ns = self._namespace_selector() if kind in ("namespaces", "both") else None
        pods = self._pod_selector(None, allow_empty=kind == "both") if kind in ("pods", "both") else None
        return Peer(pods, ns)

    def _block(self) -> IPBlock:
        rng = self.rng
        ips = [p.ip for p in self.pods if p.ip]
        form = rng.choice(("pod", "subnet-except", "any-except"))
        if form == "pod":
            return IPBlock(f"{rng.choice(ips)}/32")
        excepts = tuple(sorted(f"{ip}/32" for ip in rng.sample(ips, rng.choice((1, 1, 2)))))
        cidr = str(ipaddress.ip_network(self.subnet.cidr)) if form == "subnet-except" else "0.0.0.0/0"
        return IPBlock(cidr, excepts)

    def _pod_selector(self, namespace: str | None, allow_empty: bool) -> LabelSelector:
        rng = self.rng
        pods = [p for p in self.pods if namespace is None or p.namespace == namespace]
        if allow_empty and self.chance(0.3):
            return LabelSelector()
        pod = rng.choice(pods)
        form = rng.choice(("name", "app", "in", "notin", "exists", "absent"))
        if form == "name":
            return LabelSelector.of({"pod": pod.name})
        if form == "app":
            return LabelSelector.of({"app": pod.label_map["app"]})
        if form == "in":
            return LabelSelector.of(None, Requirement("app", "In", (rng.choice(APPS),)))
        if form == "notin":
            return LabelSelector.of(None, Requirement(rng.choice(("app", "tier")), "NotIn",
                                                      (rng.choice(APPS + TIERS),)))
        return LabelSelector.of(None, Requirement("tier", "Exists" if form == "exists" else "DoesNotExist"))

    def _namespace_selector(self) -> LabelSelector:
        rng = self.rng
        form = rng.choice(("all", "ns", "name", "team", "no-team"))
        target = rng.choice(self.namespaces).name
        if form == "all":
            return LabelSelector()
        if form == "ns":
            return LabelSelector.of({"ns": target})
        if form == "name":
            return LabelSelector.of({NS_NAME_LABEL: target})
        if form == "team":
            return LabelSelector.of(None, Requirement("team", "In", (rng.choice(TEAMS),)))
        return LabelSelector.of(None, Requirement("team", "DoesNotExist"))

    def _policy_port(self) -> PolicyPort:
        rng = self.rng
        declared = sorted({(c.port, c.protocol) for p in self.pods for c in p.ports})
        form = rng.choices(("number", "range", "named", "protocol"), (3, 4, 2, 1))[0]
        if form == "protocol":
            return PolicyPort(rng.choice(sorted({proto for _, proto in declared})), None)
        if form == "named":
            names = sorted({(c.name, c.protocol) for p in self.pods for c in p.ports if c.name})
            if names:
                name, proto = rng.choice(names)
                return PolicyPort(proto, name)
        number, proto = rng.choice(declared)
        if form != "range":
            return PolicyPort(proto, number)
        # A range around a declared port; its first port is usually below it, so a listener
        # sits inside the range, above the first port.
        low = number - rng.choice((0, 1, 1, 2, 4))
        high = number + rng.choice((0, 1, 2, 6)) if low < number else number + rng.choice((1, 2, 6))
        return PolicyPort(proto, low, high)
