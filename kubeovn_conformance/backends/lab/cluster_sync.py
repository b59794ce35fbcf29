"""How kube-ovn-controller schedules its work on cluster-scoped policies, as a pure function
from what it held and what it now sees to what it holds after (sync.py does the same for
NetworkPolicies). Line numbers at v1.16.2; the same logic from v1.13.0 on.

- Add path (a new policy, or a change of priority, tier, rule count, a rule's action or
  ports; `enqueueUpdateAnp` admin_network_policy.go:74-101, `shouldRecreateCnpACLs`
  cluster_network_policy.go:920-954): validate against the controller's priority map, then
  rebuild every object. ANPs and Admin CNPs share one map keyed by name (:957-966), so an
  ANP and a CNP at the same priority number collide, and a policy refused for a taken
  priority is retried forever (controller.go:1571-1573) without ever touching its old objects.
  Two policies that swap priorities in one step therefore both stay refused.
- Update path (only the subject or a rule's peers or name changed; :103-147,
  cluster_network_policy.go:56-80): the port group, or the address sets of the changed rules
  under their new names; the ACLs are not rebuilt. A renamed rule's old set is deleted when
  only its name changed (ANP/BANP) or whenever it was renamed (CNP, :884-917), and its ACL
  keeps naming the deleted set, which OVN then skips.
- Label changes and new pods or namespaces re-sync the policies whose subject or peers match
  the NEW labels only (`updateAnpsByLabelsMatch(nsLabels, newPod.Labels)`, pod.go:375,
  namespace.go:75): a pod or namespace relabelled out of a policy is never re-synced. And of
  subject, ingress and egress only the last that matches is re-synced (`_event_field`).
- Delete: the port group and the policy's address sets go, and the priority map loses the
  entry at the deleted policy's priority, whoever holds it (:384-386).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from kubeovn_conformance.backends.lab.profile import DEFAULT, Profile
from kubeovn_conformance.backends.lab.translate import OvnPolicyState
from kubeovn_conformance.backends.lab.translate_cluster import (
    ID_KEY,
    DirectionObjects,
    SyncError,
    address_set_name,
    direction_objects,
    ovn_name,
    port_group_ids,
    port_group_name,
    rule_addresses,
    subject_ports,
    validate,
)
from kubeovn_conformance.cluster_policy import ADMIN, BANP, CNP, ClusterPolicy
from kubeovn_conformance.model import LabelSelector, Scenario

KINDS = ("ingress", "egress")


@dataclass(frozen=True)
class PolicyObjects:
    """What one policy owns in the northbound database."""

    pg: str
    members: frozenset[str]
    pg_ids: dict[str, str]
    gress: dict[str, DirectionObjects]  # ingress | egress

    def state(self, ports: Iterable[str]) -> OvnPolicyState:
        live = set(ports)  # Port_Group.ports is a weak reference: deleted ports drop out
        out = OvnPolicyState({self.pg: frozenset(m for m in self.members if m in live)},
                             {self.pg: dict(self.pg_ids)})
        acls = set()
        for objs in self.gress.values():
            out.address_sets.update(objs.address_sets)
            out.address_set_ids.update(objs.address_set_ids)
            acls |= objs.acls
        out.acls[self.pg] = frozenset(acls)
        return out


@dataclass(frozen=True)
class ClusterApplied:
    """What the controller holds: the policies it last saw, each policy's objects (in sync
    order: the last synced owns a shared port group name), its priority maps, and the
    policies whose add sync keeps failing (with the error it logs)."""

    scenario: Scenario | None = None
    objects: dict[str, PolicyObjects] = field(default_factory=dict)
    priorities: dict[str, dict[int, str]] = field(default_factory=lambda: {ADMIN: {}, "Baseline": {}})
    stuck: dict[str, str] = field(default_factory=dict)

    def state(self, ports: Iterable[str]) -> OvnPolicyState:
        ports = list(ports)
        out = OvnPolicyState()
        for objs in self.objects.values():
            out = out.merged(objs.state(ports))
        return out


def _recreates(old: ClusterPolicy, new: ClusterPolicy) -> bool:
    if (old.priority, old.tier, len(old.ingress), len(old.egress)) != \
            (new.priority, new.tier, len(new.ingress), len(new.egress)):
        return True
    return any(o.action != n.action or o.ports != n.ports
               for kind in ("Ingress", "Egress") for o, n in zip(old.rules(kind), new.rules(kind),
                                                                  strict=True))


def _changed_rules(old: ClusterPolicy, new: ClusterPolicy) -> dict[str, dict[int, str | None]]:
    """Per direction: index -> the old name whose set is deleted (None: none) for each rule
    the update path re-syncs (enqueueUpdateAnp/Banp :115-147, getCnpAddressSetsToUpdate)."""
    out: dict[str, dict[int, str | None]] = {}
    for kind, direction in (("ingress", "Ingress"), ("egress", "Egress")):
        changes: dict[int, str | None] = {}
        for i, (o, n) in enumerate(zip(old.rules(direction), new.rules(direction), strict=True)):
            renamed, moved = o.name != n.name, o.peers != n.peers
            if new.kind == CNP:
                if renamed or moved:
                    changes[i] = o.name if renamed and o.name else None
            elif moved:
                changes[i] = None  # the peer change overwrites the rename: old set kept
            elif renamed:
                changes[i] = o.name or None
        out[kind] = changes
    return out


def _labels_match(namespaces: LabelSelector | None, pods: LabelSelector | None,
                  ns_labels: Mapping[str, str], pod_labels: Mapping[str, str]) -> bool:
    """isLabelsMatch (admin_network_policy.go:1000-1018) with the labels of one event."""
    if namespaces is None:
        return False
    return namespaces.matches(ns_labels) and (pods is None or pods.matches(pod_labels))


class _Controller:
    def __init__(self, scenario: Scenario, ports: Mapping[str, str], profile: Profile,
                 prev: ClusterApplied) -> None:
        self.scenario, self.ports, self.profile = scenario, ports, profile
        self.objects = dict(prev.objects)
        self.priorities = {k: dict(v) for k, v in prev.priorities.items()}
        self.stuck = dict(prev.stuck)

    # ---- handlers

    def delete(self, pol: ClusterPolicy) -> None:
        self.objects.pop(pol.key, None)
        self.stuck.pop(pol.key, None)
        if pol.kind != BANP:
            self.priorities[pol.tier].pop(pol.priority, None)  # type: ignore[arg-type]

    def add(self, pol: ClusterPolicy) -> None:
        """handleAddAnp/Banp/Cnp: SyncError leaves the policy stuck (retried)."""
        if pol.kind != BANP:
            table = self.priorities[pol.tier]
            validate(pol, table)
            for tier in self.priorities:  # a CNP may have changed tier; an ANP its priority
                for prio, name in list(self.priorities[tier].items()):
                    if name == pol.name and (tier != pol.tier or prio != pol.priority):
                        del self.priorities[tier][prio]
            table[pol.priority] = pol.name  # type: ignore[index]
        old = self.objects.get(pol.key)
        gress = dict(old.gress) if old else {k: DirectionObjects() for k in KINDS}
        self.objects[pol.key] = self._objects(pol, gress)  # the port group first
        try:
            for kind in KINDS:  # ingress ACLs are committed before egress is built
                gress[kind] = direction_objects(self.scenario, pol, kind, self.ports, self.profile)
                self.objects[pol.key] = self._objects(pol, gress)
        finally:
            self._move_last(pol.key)

    def update(self, pol: ClusterPolicy, subject: bool, rules: Mapping[str, Mapping[int, str | None]]
               ) -> None:
        """handleUpdateAnp/Banp/Cnp: the port group, or some rules' address sets."""
        objs = self.objects.get(pol.key)
        if objs is None:
            return  # never synced: "port-group for anp does not exist", nothing done
        gress = {k: DirectionObjects(dict(v.address_sets), dict(v.address_set_ids), set(v.acls))
                 for k, v in objs.gress.items()}
        for kind, changes in rules.items():
            for index, old_name in changes.items():
                rule = pol.rules(kind.capitalize())[index]
                name = address_set_name(pol, kind, index, rule)
                gress[kind].address_sets[name] = frozenset(rule_addresses(self.scenario, rule, self.ports))
                gress[kind].address_set_ids[name] = {ID_KEY[pol.kind]: f"{ovn_name(pol)}/{kind}"}
                if old_name is not None:
                    stale = address_set_name(pol, kind, index, replace(rule, name=old_name))
                    if stale != name:
                        gress[kind].address_sets.pop(stale, None)
                        gress[kind].address_set_ids.pop(stale, None)
        members = subject_ports(self.scenario, pol, self.ports) if subject else objs.members
        self.objects[pol.key] = PolicyObjects(objs.pg, members, objs.pg_ids, gress)

    def _objects(self, pol: ClusterPolicy, gress: dict[str, DirectionObjects]) -> PolicyObjects:
        return PolicyObjects(port_group_name(pol), subject_ports(self.scenario, pol, self.ports),
                             port_group_ids(pol), dict(gress))

    def _move_last(self, key: str) -> None:
        self.objects[key] = self.objects.pop(key)

    # ---- one round of events

    def run(self, prev: ClusterApplied) -> None:
        now = {p.key: p for p in self.scenario.cluster_policies}
        before = {p.key: p for p in (prev.scenario.cluster_policies if prev.scenario else ())}
        for key, pol in before.items():
            if key not in now:
                self.delete(pol)
        adds = [p for k, p in now.items()
                if k not in before or k in self.stuck or _recreates(before[k], p)]
        updates: dict[str, tuple[bool, dict[str, dict[int, str | None]]]] = {}
        for key, pol in now.items():
            old = before.get(key)
            if old is not None and pol not in adds and old != pol:
                updates[key] = (old.subject != pol.subject, _changed_rules(old, pol))
        for key, (subject, rules) in self._label_events(prev).items():
            if now[key] in adds:
                continue
            was_subject, was_rules = updates.get(key, (False, {"ingress": {}, "egress": {}}))
            merged = {k: {**rules.get(k, {}), **was_rules.get(k, {})} for k in KINDS}
            updates[key] = (was_subject or subject, merged)
        self._add_until_settled(adds)
        for key, (subject, rules) in updates.items():
            self.update(now[key], subject, rules)

    def _add_until_settled(self, adds: list[ClusterPolicy]) -> None:
        """The add queue with its retries: until a whole round makes no progress."""
        pending = list(adds)
        while pending:
            failed = []
            for pol in pending:
                try:
                    self.add(pol)
                    self.stuck.pop(pol.key, None)
                except SyncError as e:
                    self.stuck[pol.key] = str(e)
                    failed.append(pol)
            if len(failed) == len(pending):
                return
            pending = failed

    def _label_events(self, prev: ClusterApplied) -> dict[str, tuple[bool, dict[str, dict[int, str | None]]]]:
        """Policies the label events of this round re-sync, and which parts."""
        if prev.scenario is None:
            return {}
        old_pods = {p.key: p for p in prev.scenario.pods}
        old_ns = {n.name: n for n in prev.scenario.namespaces}
        ns_labels = {n.name: n.label_map for n in self.scenario.namespaces}
        events: list[tuple[Mapping[str, str], Mapping[str, str]]] = []
        for ns in self.scenario.namespaces:
            if ns.name not in old_ns or old_ns[ns.name].labels != ns.labels:
                events.append((ns.label_map, {}))  # namespace.go:53,75: pod labels nil
        for pod in self.scenario.pods:
            old = old_pods.get(pod.key)
            if old is None or old.labels != pod.labels:  # pod.go:375,383 (labels, allocation)
                events.append((ns_labels[pod.namespace], pod.label_map))
        for key, pod in old_pods.items():
            if key not in {p.key for p in self.scenario.pods} and pod.namespace in ns_labels:
                events.append((ns_labels[pod.namespace], pod.label_map))  # pod.go:297, delete
        out: dict[str, tuple[bool, dict[str, dict[int, str | None]]]] = {}
        for pol in self.scenario.cluster_policies:
            subject, rules = False, {k: {} for k in KINDS}
            for n, p in events:
                field, indices = self._event_field(pol, n, p)
                if field == "subject":
                    subject = True
                elif field is not None:
                    rules[field].update(indices)
            if subject or any(rules.values()):
                out[pol.key] = (subject, rules)
        return out

    @staticmethod
    def _event_field(pol: ClusterPolicy, ns_labels: Mapping[str, str], pod_labels: Mapping[str, str]
                     ) -> tuple[str | None, dict[int, str | None]]:
        """updateAnpsByLabelsMatch / updateCnpsByLabelsMatch (admin_network_policy.go:942-998,
        cluster_network_policy.go:807-836) queue ONE `changed` pointer per policy and set its
        field to subject, then ingress, then egress as each matches; the work queue keeps one
        entry per pointer, so the handler sees only the last field that matched. The rules
        re-synced are the matching ones and, since an unmatched rule's name "" equals an
        unnamed rule's, every unnamed rule."""
        field: str | None = None
        indices: dict[int, str | None] = {}
        if _labels_match(pol.subject.namespaces, pol.subject.pods, ns_labels, pod_labels):
            field = "subject"
        for kind in KINDS:
            rules = pol.rules(kind.capitalize())
            hit = {i for i, r in enumerate(rules)
                   if any(_labels_match(peer.namespaces, peer.pods, ns_labels, pod_labels)
                          for peer in r.peers)}
            if hit:
                field = kind
                indices = {i: None for i, r in enumerate(rules) if i in hit or not r.name}
        return field, indices


def next_applied(scenario: Scenario, ports: Mapping[str, str], profile: Profile = DEFAULT,
                 prev: ClusterApplied | None = None) -> ClusterApplied:
    """What the controller holds after it has seen `scenario` (pure)."""
    prev = prev or ClusterApplied()
    controller = _Controller(scenario, ports, profile, prev)
    controller.run(prev)
    return ClusterApplied(scenario, controller.objects, controller.priorities, controller.stuck)
