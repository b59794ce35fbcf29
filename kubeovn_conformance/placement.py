"""Node placement: which node each pod of a workload runs on, and what that made each probe.

Same-node and cross-node traffic take different paths through Kube-OVN (overlay: the local
switch pipeline vs the geneve tunnel; underlay: OVS alone vs the physical network), so a
case should probe both. `place(workload, nodes)` decides, deterministically and without a
cluster, a node for every pod so that every destination pod with two or more clients has
at least one client on its own node and one on another node, whenever there are two nodes
and the workload allows it (it cannot with three pods: one of them is always alone).

Policies are not known when the workload is placed (the steps come later and may depend
on pod IPs), so verdict classes are approached through what policies select by: beyond
"all clients of a destination", the clients of each namespace and the clients sharing each
pod label are mixed across same-node and cross-node where possible (lower priority). The
search is a hill climb from a balanced start; the same input always gives the same answer.
With one node every pod is on it and every cell is same-node.

`placement_of(record, node_of, scenario)` labels one probe record `same-node` or
`cross-node` when both ends are known: a Service probe compares the client's node with the
node of the Service's only backend, and says nothing when it has more than one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeovn_conformance import truthtable
from kubeovn_conformance.model import NS_NAME_LABEL, Pod, Scenario

SAME, CROSS = "same-node", "cross-node"
CLASSES = (SAME, CROSS)
NodeOf = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Group:
    """Clients of `destination` that should include one on its node and one elsewhere."""

    destination: str
    clients: frozenset[str]
    why: str  # "all clients", "namespace y", "label pod=b"
    weight: float


def groups(workload: Scenario) -> list[Group]:
    """What the placement tries to mix, most important first. Host-network pods are left out:
    every probe to or from one is implementation-defined."""
    pods = [p for p in workload.pods if not p.host_network]
    backing = {b.key for s in workload.services for b in workload.backends(s)}
    soft: list[Group] = []
    hard: list[Group] = []
    for d in pods:
        clients = [c for c in pods if c.key != d.key]
        if len(clients) < 2:
            continue
        scale = 2.0 if d.key in backing else 1.0  # Services add the DNAT'd path
        hard.append(Group(d.key, frozenset(c.key for c in clients), "all clients", scale))
        by: dict[str, set[str]] = {}
        for c in clients:
            by.setdefault(f"namespace {c.namespace}", set()).add(c.key)
            for k, v in c.labels:
                if k != NS_NAME_LABEL:
                    by.setdefault(f"label {k}={v}", set()).add(c.key)
        for why, keys in sorted(by.items()):
            if len(keys) >= 2 and len(keys) < len(clients):
                soft.append(Group(d.key, frozenset(keys), why,
                                  scale * (2.0 if why.startswith("namespace") else 1.0)))
    # "All clients" outweighs every other group together: it is the promise, the rest a bonus.
    total_soft = sum(g.weight for g in soft) + 1.0
    return [Group(g.destination, g.clients, g.why, g.weight * total_soft) for g in hard] + soft


def _mixed(g: Group, where: Mapping[str, str]) -> bool:
    home = where[g.destination]
    same = cross = False
    for c in g.clients:
        if where[c] == home:
            same = True
        else:
            cross = True
        if same and cross:
            return True
    return False


def _score(gs: Sequence[Group], where: Mapping[str, str]) -> tuple[float, float]:
    balance = -sum(n * n for n in Counter(where.values()).values())
    return sum(g.weight for g in gs if _mixed(g, where)), balance


def place(workload: Scenario, nodes: Iterable[str],
          fixed: Mapping[str, str] | None = None) -> dict[str, str]:
    """Pod key -> node for every pod of `workload`. `fixed` pods (already running, e.g. when a
    step adds pods) keep their nodes; the others are chosen around them. Deterministic: the
    order of `nodes` does not matter. No nodes: an empty placement (let the scheduler decide)."""
    names = sorted(set(nodes))
    keys = [p.key for p in workload.pods]
    fixed = {k: n for k, n in (fixed or {}).items() if k in set(keys)}
    free = [k for k in sorted(keys) if k not in fixed]
    if not names:
        return {}
    if len(names) == 1:
        return {k: fixed.get(k, names[0]) for k in keys}
    gs = groups(workload)
    # Climb from a balanced start on 2, 3, ... nodes (at least two pods on each, so every pod
    # has a neighbour) and keep the best: spreading wider is not always better.
    results = []
    for width in range(2, max(2, min(len(names), len(free) // 2)) + 1):
        start = dict(fixed)
        start.update({k: names[i % width] for i, k in enumerate(free)})
        results.append(_climb(gs, start, free, names))
    where = max(results, key=lambda r: r[0])[1]
    return {k: where[k] for k in keys}


def _climb(gs: Sequence[Group], where: dict[str, str], free: Sequence[str],
           names: Sequence[str]) -> tuple[tuple[float, float], dict[str, str]]:
    """Move or swap free pods while that mixes more (then balances better)."""
    best = _score(gs, where)
    improved = True
    while improved:
        improved = False
        for k in free:  # move one pod
            for n in names:
                if n == where[k]:
                    continue
                old, where[k] = where[k], n
                s = _score(gs, where)
                if s > best:
                    best, improved = s, True
                else:
                    where[k] = old
        for i, a in enumerate(free):  # swap two pods (keeps the balance)
            for b in free[i + 1:]:
                if where[a] == where[b]:
                    continue
                where[a], where[b] = where[b], where[a]
                s = _score(gs, where)
                if s > best:
                    best, improved = s, True
                else:
                    where[a], where[b] = where[b], where[a]
    return best, where


def gaps(workload: Scenario, where: Mapping[str, str]) -> list[Group]:
    """The groups a placement leaves unmixed (all on one side of their destination)."""
    return [g for g in groups(workload) if not _mixed(g, where)]


# --------------------------------------------------------------------------- records


def _service_backend(record: Mapping[str, Any], scenario: Scenario) -> Pod | None:
    svc = next((s for s in scenario.services if s.key == record.get("target")), None)
    if svc is None:
        return None
    port = next((p for p in svc.ports if p.port == record.get("port")
                 and p.protocol == record.get("protocol")), None)
    backends = scenario.backends(svc)
    if port is not None and isinstance(port.target_port, str):  # no such named port: no endpoint
        backends = [b for b in backends if b.named_port(port.target_port, port.protocol) is not None]
    return backends[0] if len(backends) == 1 else None


def placement_of(record: Mapping[str, Any], node_of: NodeOf, scenario: Scenario) -> str | None:
    """`same-node` or `cross-node` for one probe record, None when a node is not known."""
    client = node_of(str(record["client"]))
    if client is None:
        return None
    if record.get("path") == "pod":
        target: str | None = str(record["target"])
    elif record.get("path") == "service":
        backend = _service_backend(record, scenario)
        target = backend.key if backend else None
    else:
        return None
    server = node_of(target) if target else None
    if server is None:
        return None
    return SAME if server == client else CROSS


def with_placement(records: Iterable[dict[str, Any]], node_of: NodeOf,
                   scenario: Scenario) -> Iterator[dict[str, Any]]:
    """The records, each with `placement` where it is known."""
    for r in records:
        where = placement_of(r, node_of, scenario)
        yield {**r, "placement": where} if where else r


def counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int] | None:
    """Probe records per placement class; None when no record has one (e.g. the lab)."""
    seen = Counter(str(r["placement"]) for r in records if r.get("placement") in CLASSES)
    if not seen:
        return None
    return {c: seen.get(c, 0) for c in CLASSES}


def junit_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """`cells_same_node` and `cells_cross_node`, or nothing when placement is unknown."""
    c = counts(records)
    return {} if c is None else {"cells_same_node": c[SAME], "cells_cross_node": c[CROSS]}


def mark(record: Mapping[str, Any]) -> str:
    """Truth-table mark: `s` same node, `c` cross node, `-` unknown."""
    return {SAME: "s", CROSS: "c"}.get(str(record.get("placement")), "-")


def table(records: Iterable[Mapping[str, Any]]) -> str:
    """One truth table of where each client sits relative to each destination (the same for
    every port and step): rows clients, columns destinations, `s`/`c`/`-` as in `mark`."""
    cells: dict[tuple[str, str], str] = {}
    for r in records:
        key = (str(r["client"]), str(r["target"]))
        if cells.get(key, "-") == "-":
            cells[key] = mark(r)
    return truthtable.render("node placement (s = same node, c = cross node, - = not known):", cells)


def describe(records: Sequence[Mapping[str, Any]]) -> str:
    """One line: how many cells each class has, or why there is no class."""
    c = counts(records)
    if c is None:
        return "placement: not known (the backend does not say where pods run)"
    unknown = len(records) - c[SAME] - c[CROSS]
    return (f"placement: {c[SAME]} same-node, {c[CROSS]} cross-node cells"
            + (f", {unknown} unknown (Service with several backends)" if unknown else ""))


# --------------------------------------------------------------------------- Kubernetes

HOSTNAME_LABEL = "kubernetes.io/hostname"
BLOCKING_TAINTS = ("NoSchedule", "NoExecute")  # our pods tolerate nothing


def schedulable(nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Node name -> its `kubernetes.io/hostname` label, for the Linux nodes a pod without
    tolerations can be scheduled on: not cordoned, no NoSchedule or NoExecute taint. A kind
    control plane counts once untainted, as Kube-OVN's CI and scripts/cluster-up leave it."""
    out: dict[str, str] = {}
    for n in nodes:
        meta, spec = n.get("metadata") or {}, n.get("spec") or {}
        labels = meta.get("labels") or {}
        if spec.get("unschedulable") or labels.get("kubernetes.io/os", "linux") != "linux":
            continue
        if any(t.get("effect") in BLOCKING_TAINTS for t in spec.get("taints") or ()):
            continue
        out[str(meta["name"])] = str(labels.get(HOSTNAME_LABEL, meta["name"]))
    return out


def node_affinity(hostname: str) -> dict[str, Any]:
    """A pod spec's `affinity`: required on this node's hostname label (through the scheduler,
    so taints, resources and its events still apply, unlike nodeName)."""
    term = {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [hostname]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}
