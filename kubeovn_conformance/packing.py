"""Packing: several cases share one dataplane state, each in namespaces of its own.

NetworkPolicies are namespaced: whether a pod is isolated depends only on the policies of its
own namespace, and what a rule admits only on labels, IPs and ports. So when K cases run on K
copies of their workload, each copy in its own namespaces ("slots": `x` becomes `x-k3`), a
case's own cells (client and destination in its slot) keep the verdicts they have alone,
whatever the other slots hold: an empty namespaceSelector, NotIn or an ipBlock only widens a
peer to other slots' pods, i.e. to cross-slot cells, which are not probed. The oracle runs on
the packed scenario anyway, so even those would be judged right.

One thing couples slots in Kube-OVN itself: a label change re-syncs every policy that matches
the relabelled object, in any namespace (mechanism.resynced_policies), and a pod created in one
slot re-syncs policies of others that match it. So cases whose steps change labels or the
workload run alone (`packable`), as do cases with cluster-scoped policies (`alone`). Tried and
measured: packing pod-creating and Service-changing cases with each other where no slot
selects another's pods gave a single pack in the generated suite (relabel cases, which must
run alone, split the runs), so it was not kept. Names on `kubernetes.io/metadata.name`
selectors are rewritten with their namespaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from kubeovn_conformance.cases import Case, Step
from kubeovn_conformance.model import (
    NS_NAME_LABEL,
    LabelSelector,
    NetworkPolicy,
    Peer,
    Requirement,
    Rule,
    Scenario,
)

SLOT = "k"  # slot names: x-k0, x-k1, ... (a letter, so no slot name reads like a namespace)


def slot_name(namespace: str, slot: int) -> str:
    return f"{namespace}-{SLOT}{slot}"


# --------------------------------------------------------------------------- renaming


def _selector(sel: LabelSelector | None, names: Mapping[str, str]) -> LabelSelector | None:
    if sel is None:
        return None
    labels = tuple((k, names.get(v, v) if k == NS_NAME_LABEL else v) for k, v in sel.match_labels)
    exprs = tuple(Requirement(r.key, r.operator, tuple(names.get(v, v) for v in r.values))
                  if r.key == NS_NAME_LABEL else r for r in sel.match_expressions)
    return LabelSelector(labels, exprs)


def _peer(p: Peer, names: Mapping[str, str]) -> Peer:
    return replace(p, pod_selector=p.pod_selector,
                   namespace_selector=_selector(p.namespace_selector, names))


def _rules(rules: tuple[Rule, ...] | None, names: Mapping[str, str]) -> tuple[Rule, ...] | None:
    if rules is None:
        return None
    return tuple(replace(r, peers=None if r.peers is None else tuple(_peer(p, names) for p in r.peers))
                 for r in rules)


def _policy(pol: NetworkPolicy, names: Mapping[str, str]) -> NetworkPolicy:
    return replace(pol, namespace=names[pol.namespace], ingress=_rules(pol.ingress, names),
                   egress=_rules(pol.egress, names))


def rename(scenario: Scenario, names: Mapping[str, str]) -> Scenario:
    """The scenario with its namespaces renamed (every namespace must be in `names`)."""
    return Scenario(
        tuple(replace(n, name=names[n.name]) for n in scenario.namespaces),
        tuple(replace(p, namespace=names[p.namespace]) for p in scenario.pods),
        tuple(replace(s, namespace=names[s.namespace]) for s in scenario.services),
        tuple(_policy(p, names) for p in scenario.policies))


def rename_key(key: str, names: Mapping[str, str]) -> str:
    """"ns/pod" or "ns/svc/name" with its namespace renamed."""
    ns, rest = key.split("/", 1)
    return f"{names.get(ns, ns)}/{rest}"


# --------------------------------------------------------------------------- which cases pack


def _addressed(workload: Scenario) -> Scenario:
    """The workload with stand-in addresses, for builders that read pod IPs (ipBlocks)."""
    ips = {p.key: f"10.255.{i // 250}.{i % 250 + 1}" for i, p in enumerate(workload.pods)}
    return replace(workload.with_pod_ips(ips), services=tuple(
        replace(s, cluster_ip=s.cluster_ip or f"10.254.{i // 250}.{i % 250 + 1}")
        for i, s in enumerate(workload.services)))


def packable(case: Case) -> bool:
    """Only policies change from step to step: no label, pod or Service change (those re-sync
    policies across namespaces in Kube-OVN, which would couple the slots)."""
    live = _addressed(case.workload)
    return all(step.build(live).with_policies(()) == live.with_policies(()) for step in case.steps)


def alone(case: Case) -> bool:
    """Cluster-scoped policies select across namespaces (subjects and peers): a case with
    them never shares the dataplane with another."""
    live = _addressed(case.workload)
    return any(step.build(live).cluster_policies for step in case.steps)


def groups(cases: Sequence[Case], size: int) -> list[list[Case]]:
    """Consecutive policy-only cases with the same workload, `size` at most per group; every
    other case is a group of its own. Order is kept."""
    out: list[list[Case]] = []
    for case in cases:
        last = out[-1] if out else None
        if (size > 1 and last is not None and len(last) < size
                and last[0].workload == case.workload and _joins(last, case)):
            last.append(case)
        else:
            out.append([case])
    return out


def _joins(group: list[Case], case: Case) -> bool:
    return not alone(case) and not alone(group[0]) and packable(case) and packable(group[0])


# --------------------------------------------------------------------------- the packed case


@dataclass(frozen=True)
class Packed:
    """K cases as one: the workload copied into K slots, step i of the pack = step i of every
    case (a case with fewer steps stays in its last state)."""

    cases: tuple[Case, ...]
    workload: Scenario
    names: tuple[dict[str, str], ...]  # per slot: original namespace -> slot namespace

    @property
    def step_names(self) -> list[str]:
        return [f"pack-step-{i}" for i in range(max(len(c.steps) for c in self.cases))]

    def step_of(self, slot: int, index: int) -> Step:
        steps = self.cases[slot].steps
        return steps[min(index, len(steps) - 1)]

    def view(self, live: Scenario, slot: int) -> Scenario:
        """The slot's part of the running workload under its original names (for a case's
        step builders, which address pods as "x/a")."""
        back = {v: k for k, v in self.names[slot].items()}
        own = Scenario(tuple(n for n in live.namespaces if n.name in back),
                       tuple(p for p in live.pods if p.namespace in back),
                       tuple(s for s in live.services if s.namespace in back),
                       tuple(p for p in live.policies if p.namespace in back))
        return rename(own, back)

    def build(self, live: Scenario, index: int) -> Scenario:
        """The packed scenario of step `index`: every slot's step, renamed into its slot
        (spare slots keep the bare workload)."""
        parts = [rename(self.step_of(slot, index).build(self.view(live, slot)), self.names[slot])
                 if slot < len(self.cases) else rename(self.view(live, slot), self.names[slot])
                 for slot in range(len(self.names))]
        return Scenario(tuple(n for p in parts for n in p.namespaces),
                        tuple(x for p in parts for x in p.pods),
                        tuple(s for p in parts for s in p.services),
                        tuple(x for p in parts for x in p.policies))

    def own_probes(self, live: Scenario, index: int) -> set[tuple[str, str, str, int, str]]:
        """The probes each case would make alone in step `index`, under slot names: a pack
        probes exactly those (ports that only other slots' policies name are not probed)."""
        from kubeovn_conformance.oracle import Oracle

        out: set[tuple[str, str, str, int, str]] = set()
        for slot in range(len(self.cases)):
            alone = self.step_of(slot, index).build(self.view(live, slot))
            names = self.names[slot]
            out |= {(rename_key(p.client, names), rename_key(p.target, names), p.path, p.port,
                     p.protocol) for p in Oracle(alone).probes()}
        return out

    def slot_of(self, key: str) -> int | None:
        ns = key.split("/", 1)[0]
        return next((i for i, names in enumerate(self.names) if ns in names.values()), None)


def pack(cases: Iterable[Case], slots: int = 0) -> Packed:
    """`cases` in one Packed; with `slots` > len(cases) the workload gets spare copies, so
    every pack of one size shares one workload and the runner sets it up once."""
    cases = tuple(cases)
    if not cases or any(c.workload != cases[0].workload for c in cases):
        raise ValueError("only cases with one workload pack together")
    ground = cases[0].workload
    count = max(slots, len(cases))
    names = tuple({n.name: slot_name(n.name, i) for n in ground.namespaces} for i in range(count))
    parts = [rename(ground.with_policies(()), n) for n in names]
    workload = Scenario(tuple(n for p in parts for n in p.namespaces),
                        tuple(x for p in parts for x in p.pods),
                        tuple(s for p in parts for s in p.services))
    return Packed(cases, workload, names)


def unslot_record(record: Mapping[str, object], names: Mapping[str, str]) -> dict[str, object]:
    """A probe record of a slot with the case's own names (records, tables and corpus shapes
    read the same packed or not)."""
    back = {v: k for k, v in names.items()}
    out = dict(record)
    for field in ("client", "target"):
        if isinstance(out.get(field), str):
            out[field] = rename_key(str(out[field]), back)
    reason = out.get("reason")
    if isinstance(reason, str):
        for slot_ns, ns in sorted(back.items(), key=lambda kv: -len(kv[0])):
            reason = reason.replace(slot_ns, ns)
        out["reason"] = reason
    return out

