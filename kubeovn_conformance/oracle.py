"""The oracle: what Kubernetes says must happen to every probe of a scenario.

Pure and cluster-free. Semantics follow the networking.k8s.io/v1 API reference and the
NetworkPolicy concept page; design.md "Expected semantics" lists them. Every verdict carries
a reason a person can act on.

Service path: ClusterIP:port is judged on each backend pod at its resolved targetPort with
the client pod as source, because that is what reaches the pod after DNAT. The Service port
never enters the verdict.

Besides the verdict, `decisions(probe)` names what decided it, per direction: the policies
that isolate the pod and every way a rule admits the traffic (policy, rule, peer, port entry).
mechanism.py turns those into the properties known issues match on.

Cluster-scoped policies (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy)
wrap the NetworkPolicy decision of each direction in tiers: Admin, NetworkPolicy, Baseline,
default allow (cluster_oracle.py). Without them every verdict and reason is NetworkPolicy's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeovn_conformance.cluster_oracle import DEFAULT_TIER, NP_TIER, ClusterTiers, Hit, Undetermined
from kubeovn_conformance.cluster_policy import ADMIN, BASELINE
from kubeovn_conformance.model import NetworkPolicy, Pod, PolicyPort, Rule, Scenario, Service

ALLOW, DENY, UNDEFINED = "allow", "deny", "undefined"
DIRECTIONS = ("Ingress", "Egress")


@dataclass(frozen=True)
class Probe:
    """One thing a client can dial. `target` is "ns/pod" (path pod) or "ns/svc/name"."""

    client: str
    target: str
    path: str  # "pod" | "service" | "nodeport"
    port: int
    target_port: int | str
    protocol: str


@dataclass(frozen=True)
class Expectation:
    probe: Probe
    verdict: str
    reason: str
    # What the probe agent should see: "connected" (allowed, something listens), "refused"
    # (allowed, nothing listens), "timeout" (denied: Kube-OVN drops), None (undefined).
    expected_observed: str | None
    # Which tier and policy decided each direction: {"egress": {...}, "ingress": {...}}
    # (the client's egress, the destination's ingress); None when no direction was judged.
    decided_by: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, object]:
        p = self.probe
        return {"client": p.client, "target": p.target, "path": p.path, "port": p.port,
                "target_port": p.target_port, "protocol": p.protocol, "verdict": self.verdict,
                "reason": self.reason, "expected_observed": self.expected_observed}


@dataclass(frozen=True)
class Admission:
    """One way a rule admits a connection: policy key, direction, rule index, the index of the
    peer admitting the other pod and of the matching port entry (None: the rule has none)."""

    policy: str
    direction: str  # "Ingress" | "Egress"
    rule: int
    peer: int | None
    port: int | None

    def describe(self) -> str:
        peer = "" if self.peer is None else f" {'from' if self.direction == 'Ingress' else 'to'}[{self.peer}]"
        port = "" if self.port is None else f" ports[{self.port}]"
        return f"{self.policy} {self.direction.lower()}[{self.rule}]{peer}{port}"


@dataclass(frozen=True)
class Decision:
    """What decided `subject`'s `direction` for a connection with `peer` (port and protocol on
    the destination pod): the isolating policies and every admitting rule. `ignored_by`:
    policies selecting the subject whose rules for this direction their policyTypes leave
    out (the API ignores them); `ignored_admitted_by`: how those rules would admit it."""

    direction: str
    subject: str
    peer: str
    port: int
    protocol: str
    isolated_by: tuple[str, ...]
    admitted_by: tuple[Admission, ...]
    ignored_by: tuple[str, ...] = ()
    ignored_admitted_by: tuple[Admission, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.isolated_by or bool(self.admitted_by)


_Undetermined = Undetermined  # the scenario lacks a fact the verdict needs (a pod IP)


class _CompiledPeer:
    """A peer resolved once against the scenario: the set of pod keys it admits."""

    __slots__ = ("admitted", "block", "description", "unknown_ip")

    def __init__(self, admitted: frozenset[str], unknown_ip: frozenset[str], description: str,
                 block: bool) -> None:
        self.admitted = admitted
        self.unknown_ip = unknown_ip
        self.description = description
        self.block = block


class Oracle:
    """Expected verdicts for one scenario. Selectors are resolved once, verdicts cached."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._pods = {p.key: p for p in scenario.pods}
        self._services = {s.key: s for s in scenario.services}
        ns_labels = {n.name: n.label_map for n in scenario.namespaces}
        self._ns_labels = ns_labels
        # pod key -> direction -> policies that select it and have that type
        self._isolating: dict[tuple[str, str], list[NetworkPolicy]] = {}
        # pod key -> direction -> policies that select it with rules their types leave out
        self._ignoring: dict[tuple[str, str], list[NetworkPolicy]] = {}
        self._peers: dict[tuple[str, str, int], list[_CompiledPeer] | None] = {}
        for pol in scenario.policies:
            selected = [p for p in scenario.pods
                        if p.namespace == pol.namespace and pol.pod_selector.matches(p.label_map)]
            for direction in DIRECTIONS:
                typed = direction in pol.types
                if not typed and not pol.rules(direction):
                    continue
                target = self._isolating if typed else self._ignoring
                for pod in selected:
                    target.setdefault((pod.key, direction), []).append(pol)
                for i, rule in enumerate(pol.rules(direction)):
                    self._peers[(pol.key, direction, i)] = self._compile_peers(pol, rule)
        self._cache: dict[tuple[str, str, int, str], tuple[str, str, dict[str, Any] | None]] = {}
        self._decided: dict[tuple[str, str, str, str, int, str], Decision] = {}
        self._tiers = ClusterTiers(scenario, ns_labels) if scenario.cluster_policies else None
        # (service key, port, protocol) -> (selected pods, endpoints): resolved once, not per client
        self._endpoints: dict[tuple[str, int, str], tuple[list[Pod], list[tuple[Pod, int]]]] = {}

    # ------------------------------------------------------------------ compilation

    def _compile_peers(self, pol: NetworkPolicy, rule: Rule) -> list[_CompiledPeer] | None:
        if not rule.peers:  # missing or empty: every peer
            return None
        out = []
        for peer in rule.peers:
            if peer.ip_block is not None:
                blk = peer.ip_block
                admitted = frozenset(p.key for p in self.scenario.pods if p.ip and blk.contains(p.ip))
                unknown = frozenset(p.key for p in self.scenario.pods if not p.ip)
                out.append(_CompiledPeer(admitted, unknown, peer.describe(), True))
                continue
            admitted = frozenset(
                p.key for p in self.scenario.pods
                if (self._ns_labels_match(peer.namespace_selector, p.namespace)
                    if peer.namespace_selector is not None else p.namespace == pol.namespace)
                and (peer.pod_selector is None or peer.pod_selector.matches(p.label_map))
            )
            out.append(_CompiledPeer(admitted, frozenset(), peer.describe(), False))
        return out

    def _ns_labels_match(self, selector, namespace: str) -> bool:  # type: ignore[no-untyped-def]
        return selector.matches(self._ns_labels.get(namespace, {}))

    # ------------------------------------------------------------------ rules

    @staticmethod
    def _port_matches(ports: tuple[PolicyPort, ...] | None, port: int, protocol: str,
                      dst: Pod) -> bool:
        if not ports:  # missing or empty: every port and protocol
            return True
        for pp in ports:
            if pp.protocol != protocol:
                continue
            if pp.port is None:
                return True
            if isinstance(pp.port, str):
                # Named ports resolve on the destination pod, by name and protocol.
                if dst.named_port(pp.port, protocol) == port:
                    return True
            elif pp.port == port or (pp.end_port is not None and pp.port <= port <= pp.end_port):
                return True
        return False

    def _direction(self, direction: str, subject: Pod, peer: Pod, dst: Pod, port: int,
                   protocol: str) -> tuple[bool, str, dict[str, Any]]:
        """Does `subject`'s `direction` admit traffic with `peer` to dst:port/protocol, by
        NetworkPolicy? Also says which policy decided (tier "default": none isolates)."""
        policies = self._isolating.get((subject.key, direction))
        word = direction.lower()
        if not policies:
            return True, f"{subject.key} {word} not isolated", {"tier": DEFAULT_TIER, "policy": None}
        undetermined = []
        for pol in policies:
            for i, rule in enumerate(pol.rules(direction)):
                if not self._port_matches(rule.ports, port, protocol, dst):
                    continue
                peers = self._peers[(pol.key, direction, i)]
                by = {"tier": NP_TIER, "policy": pol.key, "rule": f"{word}[{i}]"}
                if peers is None:
                    return True, f"{subject.key} {word} allowed by {pol.key} {word}[{i}] (any peer)", by
                for cp in peers:
                    if peer.key in cp.admitted:
                        return True, (f"{subject.key} {word} allowed by {pol.key} {word}[{i}] "
                                      f"({cp.description})"), by
                    if peer.key in cp.unknown_ip:
                        undetermined.append(f"{pol.key} {word}[{i}] needs the IP of {peer.key}")
        if undetermined:
            raise _Undetermined("; ".join(undetermined))
        names = ", ".join(p.key for p in policies)
        other = f"from {peer.key}" if direction == "Ingress" else f"to {peer.key}"
        return False, (f"{subject.key} {word} isolated by {names}; no rule allows "
                       f"{protocol}/{port} {other}"), {"tier": NP_TIER, "policy": names}

    def _decide(self, direction: str, subject: Pod, peer: Pod, dst: Pod, port: int,
                protocol: str) -> tuple[str, str, dict[str, Any]]:
        """One direction through the tiers: Admin, NetworkPolicy, Baseline, default allow.
        (verdict, reason, the decider); without cluster policies, NetworkPolicy's alone."""
        tiers, word = self._tiers, direction.lower()
        args = (direction, subject, peer, dst, port, protocol)
        passed, passed_by = "", {}
        if tiers is not None:
            hit = tiers.decide(ADMIN, *args)
            if hit is not None and hit.verdict != "pass":
                return _tier_verdict(hit, subject, direction, "before any NetworkPolicy")
            if hit is not None:
                passed = f"{subject.key} {word} passed by {hit.where(direction)} to NetworkPolicy; "
                passed_by = {"passed_by": hit.policy.label}
        ok, reason, by = self._direction(*args)
        if tiers is None or by["tier"] != DEFAULT_TIER:
            return (ALLOW if ok else DENY), passed + reason, {**by, **passed_by}
        hit = tiers.decide(BASELINE, *args)
        if hit is not None and hit.verdict != "pass":
            return _tier_verdict(hit, subject, direction, "", passed + reason + "; ")
        if hit is not None:
            reason += f"; passed by {hit.where(direction)}"
        return ALLOW, passed + reason + "; allowed by default", {**by, **passed_by}

    def _admissions(self, policies: list[NetworkPolicy], direction: str, peer: Pod, dst: Pod,
                    port: int, protocol: str) -> tuple[Admission, ...]:
        out = []
        for pol in policies:
            for i, rule in enumerate(pol.rules(direction)):
                entries: list[int | None] = [None] if not rule.ports else [
                    j for j, pp in enumerate(rule.ports) if self._port_matches((pp,), port, protocol, dst)]
                if not entries:
                    continue
                peers = self._peers[(pol.key, direction, i)]
                admitting: list[int | None] = (
                    [None] if peers is None else [j for j, cp in enumerate(peers) if peer.key in cp.admitted])
                out += [Admission(pol.key, direction, i, j, e) for j in admitting for e in entries]
        return tuple(out)

    def decide(self, direction: str, subject: Pod, peer: Pod, dst: Pod, port: int,
               protocol: str) -> Decision:
        """Every isolating policy and every way a rule admits the connection (the verdict
        stops at the first). An ipBlock admits no peer whose IP the scenario lacks."""
        key = (direction, subject.key, peer.key, dst.key, port, protocol)
        hit = self._decided.get(key)
        if hit is None:
            isolating = self._isolating.get((subject.key, direction), [])
            ignoring = self._ignoring.get((subject.key, direction), [])
            hit = Decision(direction, subject.key, peer.key, port, protocol,
                           tuple(p.key for p in isolating),
                           self._admissions(isolating, direction, peer, dst, port, protocol),
                           tuple(p.key for p in ignoring),
                           self._admissions(ignoring, direction, peer, dst, port, protocol))
            self._decided[key] = hit
        return hit

    def admitted(self, policy: str, direction: str, rule: int) -> tuple[frozenset[str], ...] | None:
        """Pod keys each peer of a rule admits (None: the rule has no peers: everyone)."""
        peers = self._peers[(policy, direction, rule)]
        return None if peers is None else tuple(cp.admitted for cp in peers)

    def decisions(self, probe: Probe) -> tuple[tuple[Decision, Decision], ...]:
        """What decided a probe: per destination pod it reaches (one on the pod path, each
        endpoint on the Service path), the client's egress and the destination's ingress.
        Empty when the verdict is undefined (nothing decided it)."""
        if self.expect(probe).verdict == UNDEFINED:
            return ()
        client = self._pods[probe.client]
        if probe.path == "pod":
            assert isinstance(probe.target_port, int)
            endpoints = [(self._pods[probe.target], probe.target_port)]
        else:
            svc = self._service(probe.target)
            sp = next(p for p in svc.ports if p.port == probe.port and p.protocol == probe.protocol)
            endpoints = self._endpoints[(svc.key, sp.port, sp.protocol)][1]
        return tuple((self.decide("Egress", client, dst, dst, port, probe.protocol),
                      self.decide("Ingress", dst, client, dst, port, probe.protocol))
                     for dst, port in endpoints)

    def pod_verdict(self, client: Pod, dst: Pod, port: int, protocol: str) -> tuple[str, str]:
        """Verdict and reason for client -> dst.ip:port/protocol, direct to the pod."""
        return self.pod_decision(client, dst, port, protocol)[:2]  # type: ignore[return-value]

    def pod_decision(self, client: Pod, dst: Pod, port: int, protocol: str
                     ) -> tuple[str, str, dict[str, Any] | None]:
        """pod_verdict and which tier and policy decided each direction."""
        key = (client.key, dst.key, port, protocol)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._pod_verdict(client, dst, port, protocol)
        self._cache[key] = result
        return result

    def _pod_verdict(self, client: Pod, dst: Pod, port: int, protocol: str
                     ) -> tuple[str, str, dict[str, Any] | None]:
        if client.key == dst.key:
            return UNDEFINED, "loopback: a pod reaching itself is not policed (skipped upstream too)", None
        if client.host_network or dst.host_network:
            who = client.key if client.host_network else dst.key
            return UNDEFINED, (f"{who} uses the host network: the API leaves host traffic "
                               "implementation-defined"), None
        try:
            eg, eg_reason, eg_by = self._decide("Egress", client, dst, dst, port, protocol)
            ing, in_reason, in_by = self._decide("Ingress", dst, client, dst, port, protocol)
        except _Undetermined as e:
            return UNDEFINED, f"undetermined: {e}", None
        by = {"egress": eg_by, "ingress": in_by}
        if eg == ing == ALLOW:
            return ALLOW, f"{eg_reason}; {in_reason}", by
        worst = DENY if DENY in (eg, ing) else UNDEFINED
        return worst, "; ".join(r for v, r in ((eg, eg_reason), (ing, in_reason)) if v == worst), by

    # ------------------------------------------------------------------ probes

    def expect(self, probe: Probe) -> Expectation:
        client = self._pods[probe.client]
        if probe.path == "pod":
            dst = self._pods[probe.target]
            assert isinstance(probe.target_port, int)
            verdict, reason, by = self.pod_decision(client, dst, probe.target_port, probe.protocol)
            return Expectation(probe, verdict, reason,
                               _observation(verdict, [dst.listens(probe.target_port, probe.protocol)]),
                               by)
        svc = self._service(probe.target)
        if probe.path == "nodeport":
            return Expectation(probe, UNDEFINED, f"{svc.key} nodePort {probe.port}: NodePort traffic "
                               "may be SNAT'd to the node, so the API leaves it implementation-defined",
                               None)
        return self._service_expectation(probe, client, svc)

    def _service(self, target: str) -> Service:
        return self._services[target]

    def _service_expectation(self, probe: Probe, client: Pod, svc: Service) -> Expectation:
        sp = next(p for p in svc.ports if p.port == probe.port and p.protocol == probe.protocol)
        via = f"via {svc.key}:{sp.port}/{sp.protocol}"
        ident = (svc.key, sp.port, sp.protocol)
        if ident not in self._endpoints:
            chosen = self.scenario.backends(svc)
            self._endpoints[ident] = (chosen, resolve_endpoints(svc, sp.target_port, sp.protocol, chosen))
        selected, endpoints = self._endpoints[ident]
        if not selected:
            return Expectation(probe, UNDEFINED, f"{via}: no endpoints (the selector matches no pod)", None)
        if not endpoints:
            return Expectation(probe, UNDEFINED, f"{via}: no endpoints (no selected pod declares "
                               f"{sp.protocol} port {sp.target_port!r})", None)
        if any(pod.key == client.key for pod, _ in endpoints):
            return Expectation(probe, UNDEFINED, f"{via}: {client.key} reaches itself through its own "
                               "Service (hairpin), implementation-defined", None)
        decisions = [(pod, tp, *self.pod_decision(client, pod, tp, sp.protocol)) for pod, tp in endpoints]
        verdicts = [d[:4] for d in decisions]
        by = _merge_deciders({f"{pod.key}:{tp}": d for pod, tp, _, _, d in decisions})
        kinds = {v for _, _, v, _ in verdicts}
        if len(kinds) > 1:
            parts = ", ".join(f"{pod.key}:{tp} {v}" for pod, tp, v, _ in verdicts)
            return Expectation(probe, UNDEFINED, f"{via}: backends disagree ({parts}); the result "
                               "depends on which backend the load balancer picks", None, by)
        verdict = kinds.pop()
        if verdict == UNDEFINED:
            return Expectation(probe, UNDEFINED, f"{via}: {verdicts[0][3]}", None, by)
        reasons = "; ".join(dict.fromkeys(f"-> {pod.key}:{tp}: {r}" for pod, tp, _, r in verdicts))
        listening = [pod.listens(tp, sp.protocol) for pod, tp, _, _ in verdicts]
        return Expectation(probe, verdict, f"{via} {reasons}", _observation(verdict, listening), by)

    def probe_ports(self, dst: Pod) -> list[tuple[int, str]]:
        """Ports probed on a destination pod: those it declares, plus the numeric ports of the
        rules that can apply to it (ingress rules of policies selecting it, egress rules whose
        peers admit it), so that "allowed, but nothing listens there" is probed too."""
        ports = {(p.port, p.protocol) for p in dst.ports}
        for pol in self.scenario.policies:
            for direction in pol.types:
                if direction == "Ingress" and pol not in self._isolating.get((dst.key, direction), ()):
                    continue
                for i, rule in enumerate(pol.rules(direction)):
                    peers = self._peers[(pol.key, direction, i)]
                    if direction == "Egress" and peers is not None and not any(
                            dst.key in cp.admitted for cp in peers):
                        continue
                    for pp in rule.ports or ():
                        if isinstance(pp.port, int):
                            ports.add((pp.port, pp.protocol))
                            if pp.end_port is not None:
                                ports.add((pp.end_port, pp.protocol))
        if self._tiers is not None:
            ports |= self._tiers.port_numbers(dst)
        return sorted(ports, key=lambda x: (x[1], x[0]))

    def probes(self, include_nodeport: bool = False) -> list[Probe]:
        """Every probe of the matrix: each client to each other pod on each probe port, and to
        each Service port. Loopback (a pod to itself) is not probed, as upstream does."""
        scenario = self.scenario
        port_cache = {p.key: self.probe_ports(p) for p in scenario.pods}
        service_ports = []  # (service key, port, target port, protocol, node port)
        for svc in scenario.services:
            if svc.selector is None:
                continue
            backends = scenario.backends(svc)
            for sp in svc.ports:
                numbers = {n for _, n in resolve_endpoints(svc, sp.target_port, sp.protocol, backends)}
                tp = numbers.pop() if len(numbers) == 1 else sp.target_port
                service_ports.append((svc.key, sp.port, tp, sp.protocol, sp.node_port))
        out = []
        for client in scenario.pods:
            for dst in scenario.pods:
                if dst.key == client.key:
                    continue
                for port, proto in port_cache[dst.key]:
                    out.append(Probe(client.key, dst.key, "pod", port, port, proto))
            for key, port, tp, proto, node_port in service_ports:
                out.append(Probe(client.key, key, "service", port, tp, proto))
                if include_nodeport and node_port:
                    out.append(Probe(client.key, key, "nodeport", node_port, tp, proto))
        return out

    def expectations(self, probes: Iterable[Probe] | None = None) -> list[Expectation]:
        return [self.expect(p) for p in (self.probes() if probes is None else probes)]


def _tier_verdict(hit: Hit, subject: Pod, direction: str, suffix: str, prefix: str = ""
                  ) -> tuple[str, str, dict[str, Any]]:
    """A cluster tier's final decision as (verdict, reason, decider)."""
    word = direction.lower()
    by = {"tier": hit.tier, "policy": hit.policy.label, "rule": f"{word}[{hit.index}]"}
    if hit.verdict == UNDEFINED:
        return UNDEFINED, (f"{prefix}{subject.key} {word}: {hit.tier} policies at one priority "
                           f"disagree ({hit.conflict}); the API lets an implementation apply "
                           "either"), {**by, "policy": hit.conflict}
    done = "allowed" if hit.verdict == ALLOW else "denied"
    tail = f" {suffix}" if suffix else ""
    return hit.verdict, f"{prefix}{subject.key} {word} {done} by {hit.where(direction)}{tail}", by


def _merge_deciders(per_backend: Mapping[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    """The deciders of a Service probe: those of its backends, when they all agree;
    otherwise per backend."""
    values = [v for v in per_backend.values() if v is not None]
    if not values:
        return None
    if all(v == values[0] for v in values):
        return values[0]
    return {direction: {"tier": "mixed", "per_backend": {k: (v or {}).get(direction)
                                                          for k, v in per_backend.items()}}
            for direction in ("egress", "ingress")}


def _observation(verdict: str, listening: list[bool]) -> str | None:
    if verdict == DENY:
        return "timeout"  # Kube-OVN drops denied packets: no RST, no ICMP
    if verdict != ALLOW:
        return None
    if all(listening):
        return "connected"
    return "refused" if not any(listening) else None


def resolve_endpoints(svc: Service, target_port: int | str, protocol: str,
                      pods: Iterable[Pod]) -> list[tuple[Pod, int]]:
    """Backends and the pod port each one receives; a pod without the named port is no endpoint."""
    out = []
    for pod in pods:
        if isinstance(target_port, int):
            out.append((pod, target_port))
        else:
            number = pod.named_port(target_port, protocol)
            if number is not None:
                out.append((pod, number))
    return out


