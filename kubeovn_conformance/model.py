"""Plain Kubernetes objects: Namespaces, Pods, Services and NetworkPolicies.

A conformance case is a list of these objects, loaded from manifests or built in Python.
Construction validates what the API server would validate, so an impossible case fails
before it reaches a cluster, with one line that names the file and the object.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from kubeovn_conformance.textfile import read_text

PROTOCOLS = ("TCP", "UDP", "SCTP")
NS_NAME_LABEL = "kubernetes.io/metadata.name"
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class ManifestError(ValueError):
    """Input the API server would reject. The message is one line: where, what, why."""


# --------------------------------------------------------------------------- selectors


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            # Kubernetes: NotIn also matches objects that lack the key.
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist

    def describe(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return self.key if self.operator == "Exists" else f"!{self.key}"
        return f"{self.key} {self.operator.lower()} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A metav1.LabelSelector. The empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def of(cls, labels: Mapping[str, str] | None = None, *exprs: Requirement) -> LabelSelector:
        return cls(tuple(sorted((labels or {}).items())), tuple(exprs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels]
        parts += [r.describe() for r in self.match_expressions]
        return ",".join(parts) if parts else "{}"

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
                for r in self.match_expressions
            ]
        return out


# --------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        # The API server adds this label to every namespace (1.21+); selectors may use it.
        return {**dict(self.labels), NS_NAME_LABEL: self.name}

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": self.name, "labels": dict(self.labels)}}


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    ip: str | None = None
    host_network: bool = False

    @cached_property  # hot in the oracle; fields are frozen
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def named_port(self, name: str, protocol: str) -> int | None:
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None

    def listens(self, port: int, protocol: str) -> bool:
        return any(p.port == port and p.protocol == protocol for p in self.ports)

    def to_manifest(self) -> dict[str, Any]:
        ports = [{"containerPort": p.port, "protocol": p.protocol, **({"name": p.name} if p.name else {})}
                 for p in self.ports]
        out: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": self.namespace, "name": self.name, "labels": dict(self.labels)},
            "spec": {"hostNetwork": self.host_network,
                     "containers": [{"name": "agent", "image": "python:3.12-alpine", "ports": ports}]}}
        if self.ip:
            out["status"] = {"podIP": self.ip}  # the loader reads it back: ipBlock verdicts need it
        return out


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    protocol: str = "TCP"
    name: str | None = None
    node_port: int | None = None


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    selector: tuple[tuple[str, str], ...] | None
    ports: tuple[ServicePort, ...]
    type: str = "ClusterIP"
    cluster_ip: str | None = None

    @cached_property  # hot in the oracle; fields are frozen
    def key(self) -> str:
        return f"{self.namespace}/svc/{self.name}"

    def selects(self, pod: Pod) -> bool:
        # An empty selector is no selector: Kubernetes manages no endpoints for it.
        if not self.selector or pod.namespace != self.namespace:
            return False
        labels = pod.label_map
        return all(labels.get(k) == v for k, v in self.selector)

    def to_manifest(self) -> dict[str, Any]:
        ports = []
        for p in self.ports:
            item: dict[str, Any] = {"port": p.port, "targetPort": p.target_port, "protocol": p.protocol}
            if p.name:
                item["name"] = p.name
            if p.node_port:
                item["nodePort"] = p.node_port
            ports.append(item)
        spec: dict[str, Any] = {"type": self.type, "ports": ports}
        if self.cluster_ip:
            spec["clusterIP"] = self.cluster_ip
        if self.selector is not None:
            spec["selector"] = dict(self.selector)
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": self.namespace, "name": self.name}, "spec": spec}


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None  # None: every port of the protocol
    end_port: int | None = None

    def describe(self) -> str:
        if self.port is None:
            return f"{self.protocol}/*"
        if self.end_port is not None:
            return f"{self.protocol}/{self.port}-{self.end_port}"
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    excepts: tuple[str, ...] = ()

    def contains(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        net = ipaddress.ip_network(self.cidr, strict=False)
        if addr.version != net.version or addr not in net:
            return False
        return not any(addr in ipaddress.ip_network(e, strict=False) for e in self.excepts)

    def describe(self) -> str:
        return self.cidr + (f" except {','.join(self.excepts)}" if self.excepts else "")


@dataclass(frozen=True)
class Peer:
    """One element of `from`/`to`. Selectors in one peer are AND'd; peers are OR'd."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    def describe(self) -> str:
        if self.ip_block:
            return f"ipBlock {self.ip_block.describe()}"
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaces[{self.namespace_selector.describe()}]")
        if self.pod_selector is not None:
            parts.append(f"pods[{self.pod_selector.describe()}]")
        return " and ".join(parts)


@dataclass(frozen=True)
class Rule:
    """An ingress or egress rule. `peers`/`ports` None or empty: every peer / every port."""

    peers: tuple[Peer, ...] | None = None
    ports: tuple[PolicyPort, ...] | None = None


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    ingress: tuple[Rule, ...] | None = None
    egress: tuple[Rule, ...] | None = None
    policy_types: tuple[str, ...] | None = None  # None: defaulted as the API server does

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def types(self) -> tuple[str, ...]:
        if self.policy_types:
            return self.policy_types
        # API defaulting: Ingress always; Egress only when egress rules are present
        # (`egress: []` without policyTypes does not make an egress policy).
        return ("Ingress", "Egress") if self.egress else ("Ingress",)

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return (self.ingress if direction == "Ingress" else self.egress) or ()

    def to_manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"podSelector": self.pod_selector.to_manifest()}
        if self.policy_types is not None:
            spec["policyTypes"] = list(self.policy_types)
        for direction, rules, peer_key in (("ingress", self.ingress, "from"), ("egress", self.egress, "to")):
            if rules is None:
                continue
            spec[direction] = [_rule_manifest(r, peer_key) for r in rules]
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"namespace": self.namespace, "name": self.name}, "spec": spec}


def _rule_manifest(rule: Rule, peer_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.peers is not None:
        peers = []
        for p in rule.peers:
            item: dict[str, Any] = {}
            if p.pod_selector is not None:
                item["podSelector"] = p.pod_selector.to_manifest()
            if p.namespace_selector is not None:
                item["namespaceSelector"] = p.namespace_selector.to_manifest()
            if p.ip_block is not None:
                item["ipBlock"] = {"cidr": p.ip_block.cidr,
                                   **({"except": list(p.ip_block.excepts)} if p.ip_block.excepts else {})}
            peers.append(item)
        out[peer_key] = peers
    if rule.ports is not None:
        ports = []
        for p in rule.ports:
            item = {"protocol": p.protocol}
            if p.port is not None:
                item["port"] = p.port
            if p.end_port is not None:
                item["endPort"] = p.end_port
            ports.append(item)
        out["ports"] = ports
    return out


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Scenario:
    """Everything a case puts into a cluster. Namespaces used but not declared are implied."""

    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    policies: tuple[NetworkPolicy, ...] = ()
    # AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy (cluster_policy.py)
    cluster_policies: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        declared = {n.name for n in self.namespaces}
        implied = []
        for obj in (*self.pods, *self.services, *self.policies):
            if obj.namespace not in declared:
                declared.add(obj.namespace)
                implied.append(Namespace(obj.namespace))
        if implied:
            object.__setattr__(self, "namespaces", self.namespaces + tuple(implied))
        _check_unique(self)

    def namespace(self, name: str) -> Namespace:
        return next(n for n in self.namespaces if n.name == name)

    def pod(self, key: str) -> Pod:
        return next(p for p in self.pods if p.key == key)

    def backends(self, svc: Service) -> list[Pod]:
        return [p for p in self.pods if svc.selects(p)]

    def with_policies(self, policies: Iterable[NetworkPolicy]) -> Scenario:
        return replace(self, policies=tuple(policies))

    def with_cluster_policies(self, policies: Iterable[Any]) -> Scenario:
        return replace(self, cluster_policies=tuple(policies))

    def bare(self) -> Scenario:
        """The workload alone: no NetworkPolicy and no cluster-scoped policy."""
        return replace(self, policies=(), cluster_policies=())

    def with_pod_labels(self, key: str, labels: Mapping[str, str]) -> Scenario:
        return replace(self, pods=tuple(
            replace(p, labels=tuple(sorted(labels.items()))) if p.key == key else p for p in self.pods))

    def with_namespace_labels(self, name: str, labels: Mapping[str, str]) -> Scenario:
        return replace(self, namespaces=tuple(
            replace(n, labels=tuple(sorted(labels.items()))) if n.name == name else n
            for n in self.namespaces))

    def with_pod_ips(self, ips: Mapping[str, str]) -> Scenario:
        return replace(self, pods=tuple(replace(p, ip=ips.get(p.key, p.ip)) for p in self.pods))

    def objects(self) -> Iterator[Any]:
        yield from self.namespaces
        yield from self.pods
        yield from self.services
        yield from self.policies
        yield from self.cluster_policies


def _check_unique(s: Scenario) -> None:
    seen: set[tuple[str, str]] = set()
    for obj in s.objects():
        namespace = getattr(obj, "namespace", None)  # None: cluster-scoped
        name = obj.name if isinstance(obj, Namespace) or namespace is None else f"{namespace}/{obj.name}"
        ident = (getattr(obj, "kind", None) or type(obj).__name__, name)
        if ident in seen:
            raise ManifestError(f"duplicate {ident[0]} {ident[1]}")
        seen.add(ident)


# --------------------------------------------------------------------------- validation


def _port_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ManifestError(f"{where}: port {value!r} is outside 1-65535")
    return value


def _protocol(value: Any, where: str) -> str:
    proto = "TCP" if value is None else value
    if proto not in PROTOCOLS:
        raise ManifestError(f"{where}: protocol {value!r} is not one of TCP, UDP, SCTP")
    return proto


def _port_name(value: str, where: str) -> str:
    # IANA_SVC_NAME: at most 15 characters, lowercase alphanumerics and '-', at least one letter.
    ok = (0 < len(value) <= 15 and all(c.islower() or c.isdigit() or c == "-" for c in value)
          and any(c.isalpha() for c in value) and not value.startswith("-")
          and not value.endswith("-") and "--" not in value)
    if not ok:
        raise ManifestError(f"{where}: {value!r} is not a valid port name")
    return value


def _cidr(value: Any, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ManifestError(f"{where}: {value!r} is not a valid CIDR") from None


def _labels(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ManifestError(f"{where}: labels must be a map")
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))


def parse_selector(raw: Any, where: str) -> LabelSelector:
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: a label selector must be a map")
    exprs = []
    for i, e in enumerate(raw.get("matchExpressions") or ()):
        w = f"{where}.matchExpressions[{i}]"
        op = e.get("operator")
        if op not in SELECTOR_OPERATORS:
            raise ManifestError(f"{w}: operator {op!r} is not one of {', '.join(SELECTOR_OPERATORS)}")
        values = tuple(str(v) for v in e.get("values") or ())
        if op in ("In", "NotIn") and not values:
            raise ManifestError(f"{w}: operator {op} needs at least one value")
        if op in ("Exists", "DoesNotExist") and values:
            raise ManifestError(f"{w}: operator {op} takes no values")
        if not e.get("key"):
            raise ManifestError(f"{w}: key is required")
        exprs.append(Requirement(str(e["key"]), op, values))
    return LabelSelector(_labels(raw.get("matchLabels"), f"{where}.matchLabels"), tuple(exprs))


def _parse_peer(raw: Any, where: str) -> Peer:
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: a peer must be a map")
    pod_sel = parse_selector(raw["podSelector"], f"{where}.podSelector") if "podSelector" in raw else None
    ns_sel = (parse_selector(raw["namespaceSelector"], f"{where}.namespaceSelector")
              if "namespaceSelector" in raw else None)
    block = None
    if raw.get("ipBlock") is not None:
        if pod_sel is not None or ns_sel is not None:
            raise ManifestError(f"{where}: ipBlock may not be combined with podSelector or namespaceSelector")
        b = raw["ipBlock"]
        net = _cidr(b.get("cidr"), f"{where}.ipBlock.cidr")
        excepts = []
        for j, e in enumerate(b.get("except") or ()):
            enet = _cidr(e, f"{where}.ipBlock.except[{j}]")
            if enet.version != net.version or not enet.subnet_of(net) or enet == net:  # type: ignore[arg-type]
                raise ManifestError(f"{where}.ipBlock.except[{j}]: {e} is not strictly within cidr {net}")
            excepts.append(str(e))
        block = IPBlock(str(b["cidr"]), tuple(excepts))
    if pod_sel is None and ns_sel is None and block is None:
        raise ManifestError(f"{where}: a peer must set podSelector, namespaceSelector or ipBlock")
    return Peer(pod_sel, ns_sel, block)


def _parse_policy_port(raw: Any, where: str) -> PolicyPort:
    proto = _protocol(raw.get("protocol"), where)
    port = raw.get("port")
    end = raw.get("endPort")
    if isinstance(port, str) and not port.isdigit():
        _port_name(port, f"{where}.port")
        if end is not None:
            raise ManifestError(f"{where}: endPort may not be used with the named port {port!r}")
    elif port is not None:
        port = _port_number(int(port), f"{where}.port")
    if end is not None:
        if port is None:
            raise ManifestError(f"{where}: endPort needs a numeric port")
        end = _port_number(end, f"{where}.endPort")
        if end < port:
            raise ManifestError(f"{where}: endPort {end} is below port {port}")
    return PolicyPort(proto, port, end)


def _parse_rules(raw: Any, where: str, peer_key: str) -> tuple[Rule, ...] | None:
    if raw is None:
        return None
    rules = []
    for i, r in enumerate(raw):
        w = f"{where}[{i}]"
        r = r or {}
        peers = r.get(peer_key)
        ports = r.get("ports")
        rules.append(Rule(
            None if peers is None
            else tuple(_parse_peer(p, f"{w}.{peer_key}[{j}]") for j, p in enumerate(peers)),
            None if ports is None
            else tuple(_parse_policy_port(p, f"{w}.ports[{j}]") for j, p in enumerate(ports)),
        ))
    return tuple(rules)


def _meta(doc: Mapping[str, Any], kind: str) -> tuple[str, str]:
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ManifestError(f"{kind} without metadata.name")
    return meta.get("namespace") or "default", str(name)


def parse_object(doc: Mapping[str, Any]) -> Any:
    kind = doc.get("kind")
    from kubeovn_conformance import cluster_policy  # it builds on this module

    if kind in cluster_policy.KINDS:
        return cluster_policy.parse_cluster_policy(doc)
    if kind == "Namespace":
        meta = doc.get("metadata") or {}
        if not meta.get("name"):
            raise ManifestError("Namespace without metadata.name")
        return Namespace(str(meta["name"]), _labels(meta.get("labels"), f"Namespace {meta['name']}"))
    ns, name = _meta(doc, str(kind))
    where = f"{kind} {ns}/{name}"
    spec = doc.get("spec") or {}
    if kind == "Pod":
        ports = []
        for c, container in enumerate(spec.get("containers") or ()):
            for i, p in enumerate(container.get("ports") or ()):
                w = f"{where}: spec.containers[{c}].ports[{i}]"
                pname = p.get("name")
                ports.append(ContainerPort(_port_number(p.get("containerPort"), w),
                                           _protocol(p.get("protocol"), w),
                                           _port_name(pname, w) if pname else None))
        status = doc.get("status") or {}
        return Pod(ns, name, _labels((doc.get("metadata") or {}).get("labels"), where), tuple(ports),
                   status.get("podIP"), bool(spec.get("hostNetwork")))
    if kind == "Service":
        ports = []
        for i, p in enumerate(spec.get("ports") or ()):
            w = f"{where}: spec.ports[{i}]"
            port = _port_number(p.get("port"), w)
            target = p.get("targetPort", port)
            if isinstance(target, str) and not target.isdigit():
                _port_name(target, w + ".targetPort")
            else:
                target = _port_number(int(target), w + ".targetPort")
            ports.append(ServicePort(port, target, _protocol(p.get("protocol"), w), p.get("name"),
                                     p.get("nodePort")))
        if not ports:
            raise ManifestError(f"{where}: spec.ports must not be empty")
        sel = spec.get("selector")
        return Service(ns, name, None if sel is None else _labels(sel, where), tuple(ports),
                       spec.get("type") or "ClusterIP", spec.get("clusterIP"))
    if kind == "NetworkPolicy":
        types = spec.get("policyTypes")
        if types is not None:
            for t in types:
                if t not in ("Ingress", "Egress"):
                    raise ManifestError(f"{where}: spec.policyTypes value {t!r} is not Ingress or Egress")
            types = tuple(types) or None
        return NetworkPolicy(
            ns, name,
            parse_selector(spec.get("podSelector", {}), f"{where}: spec.podSelector"),
            _parse_rules(spec.get("ingress"), f"{where}: spec.ingress", "from"),
            _parse_rules(spec.get("egress"), f"{where}: spec.egress", "to"),
            types,
        )
    raise ManifestError(f"unsupported kind {kind!r} (expected Namespace, Pod, Service, "
                        "NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, "
                        "ClusterNetworkPolicy or List)")


def _documents(docs: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ManifestError("a document is not a Kubernetes object")
        if str(doc.get("kind", "")).endswith("List"):
            yield from _documents(doc.get("items") or ())
        else:
            yield doc


def _identify(doc: Any) -> str:
    if not isinstance(doc, Mapping):
        return "a document"
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    kind, name = doc.get("kind", "object"), meta.get("name", "?")
    cluster_scoped = ("Namespace", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy",
                      "ClusterNetworkPolicy")
    if kind in cluster_scoped:
        return f"{kind} {name}"
    return f"{kind} {meta.get('namespace') or 'default'}/{name}"


def scenario_from_documents(docs: Iterable[tuple[str, Any]]) -> Scenario:
    """Build a scenario from (source, document) pairs; errors name the source."""
    from kubeovn_conformance.cluster_policy import ClusterPolicy

    groups: dict[type, list[Any]] = {Namespace: [], Pod: [], Service: [], NetworkPolicy: [],
                                     ClusterPolicy: []}
    sources: list[str] = []
    for source, doc in docs:
        sources.append(source)
        d: Any = doc
        try:
            for d in _documents([doc]):
                obj = parse_object(d)
                groups[type(obj)].append(obj)
        except ManifestError as e:
            raise ManifestError(f"{source}: {e}") from None
        except (AttributeError, TypeError, KeyError) as e:
            # A field of the wrong shape (a list where a map belongs, ...): still one line.
            raise ManifestError(f"{source}: {_identify(d)}: malformed object "
                                f"({type(e).__name__}: {e})") from None
    try:
        return Scenario(*(tuple(groups[t]) for t in (Namespace, Pod, Service, NetworkPolicy,
                                                      ClusterPolicy)))
    except ManifestError as e:
        raise ManifestError(f"{', '.join(dict.fromkeys(sources))}: {e}") from None


def load_scenario(*paths: str | Path) -> Scenario:
    """Load manifests from files (multi-document YAML, Lists allowed) into one scenario."""
    docs: list[tuple[str, Any]] = []
    for path in paths:
        try:
            text = read_text(path)
        except OSError as e:
            raise ManifestError(f"{path}: cannot read: {e.strerror}") from None
        try:
            docs.extend((str(path), d) for d in yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}:" if mark else ""
            raise ManifestError(f"{path}:{line} invalid YAML: {getattr(e, 'problem', e)}") from None
    return scenario_from_documents(docs)
