"""Cluster-scoped policies to OVN northbound objects, the way kube-ovn-controller builds them.

Pure, like translate.py: one policy, the scenario, the pod -> logical switch port map and the
profile give the port group, address sets and ACLs of that policy. Reproduced from Kube-OVN
(identical from v1.13.0 to v1.16.2 unless a line says otherwise; line numbers at v1.16.2):
- names: `getAnpName` (admin_network_policy.go:1093) prefixes "anp" to an ANP or BANP name
  that does not start with a letter, `getCnpName` (cluster_network_policy.go:1121) "cnp" to a
  CNP's; the port group is that name with '-' replaced by '.' (:189, :876). ANPs, BANPs and
  CNPs share the namespace of port group names;
- port group external_ids `anp=<name>`, `banp=<name>` or `cnp=<pg>` (:190, baseline :155,
  cluster :470); members: the subject's pods, host-network pods left out (:618);
- per rule one IPv4 address set `<pg>.<ingress|egress>.<index>.<rule name>.IPv4` with '-' as
  '.' (`getAnpAddressSetName`, :1102-1114), external_ids `<anp|banp|cnp>=<name>/<direction>`
  (:792-814, cluster :594), created even when empty; a name outside `[a-zA-Z_.][a-zA-Z_.0-9]*`
  is refused by CreateAddressSet (ovs/util.go:19, ovn-nb-address_set.go:23) and the whole sync
  of that direction fails;
- peers: namespaces/pods -> pod IPs, nodes -> node InternalIPs (the lab has no nodes: none),
  networks -> the CIDRs (fetchEgressSelectedAddressesCommon :695-751);
- an ACL only when the rule's set has addresses (:254, :348), one per port of the rule or one
  without ports (`newAnpACLMatch`, ovs/ovn-nb-acl.go:1815-1872, `newCnpACLMatch` :1874-1931):
  `inport == @pg && ip && ip4.dst == $as && tcp.dst == 80` (egress; ingress: outport, ip4.src),
  ranges as `80 <= tcp.dst <= 90`; a namedPort gives no match at all ("Do not support
  NamedPort now", :1846), so a rule naming only named ports gets no ACL;
- priority: ANP 30000 - 100*priority - index (:247), BANP 1800 - index (baseline :213), CNP
  30000 - 25*priority - index (cluster :1187); tier: ANP 1, BANP 3, CNP by its tier
  (`UpdateAnpRuleACLOps` :1734-1739, `getCnpACLTier` :1148); action Allow/Accept ->
  allow-related, Deny -> drop, Pass -> pass (:1116-1126, :1134-1145); options
  apply-after-lb=true on both directions and external_ids parent=<pg> (:1706-1725).
Not reproduced: IPv6 sets and ACLs, ACL names and logging, domainNames.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubeovn_conformance.backends.lab.profile import DEFAULT, Profile
from kubeovn_conformance.backends.lab.translate import EGRESS, INGRESS, Acl, OvnPolicyState
from kubeovn_conformance.cluster_policy import ADMIN, ANP, BANP, CNP, ClusterPolicy, ClusterRule
from kubeovn_conformance.model import Scenario

# util/const.go v1.16.2:190-202
ANP_ACL_MAX_PRIORITY = 30000
BANP_ACL_MAX_PRIORITY = 1800
CNP_ACL_MAX_PRIORITY = 30000
CNP_MAX_RULES = 25
ANP_MAX_PRIORITY = 99  # admin_network_policy.go:551 refuses more (the API allows 1000)
CNP_MAX_PRIORITY = 399  # cluster_network_policy.go:1070 refuses more (the API allows 1000)
ANP_MAX_RULES = 100
AFTER_LB = (("apply-after-lb", "true"),)
AS_NAME = re.compile(r"^[a-zA-Z_.][a-zA-Z_.0-9]*$")
ID_KEY = {ANP: "anp", BANP: "banp", CNP: "cnp"}  # controller.go:62-65


class SyncError(Exception):
    """kube-ovn-controller refused or failed the sync; the message says why, as its log."""


# --------------------------------------------------------------------------- naming


def ovn_name(policy: ClusterPolicy) -> str:
    prefix = "cnp" if policy.kind == CNP else "anp"
    return policy.name if policy.name[:1].isalpha() else prefix + policy.name


def port_group_name(policy: ClusterPolicy) -> str:
    return ovn_name(policy).replace("-", ".")


def address_set_name(policy: ClusterPolicy, kind: str, index: int, rule: ClusterRule) -> str:
    """kind: ingress | egress."""
    return f"{port_group_name(policy)}.{kind}.{index}.{rule.name}.IPv4".replace("-", ".")


def acl_priority(policy: ClusterPolicy, index: int) -> int:
    if policy.kind == BANP:
        return BANP_ACL_MAX_PRIORITY - index
    assert policy.priority is not None
    if policy.kind == ANP:
        return ANP_ACL_MAX_PRIORITY - policy.priority * 100 - index
    return CNP_ACL_MAX_PRIORITY - policy.priority * CNP_MAX_RULES - index


def acl_tier(policy: ClusterPolicy, profile: Profile = DEFAULT) -> int:
    admin, baseline = profile.cluster_tiers
    return admin if policy.tier == ADMIN else baseline


def acl_action(rule: ClusterRule, profile: Profile = DEFAULT) -> str:
    return {"allow": "allow-related", "deny": "drop", "pass": profile.cluster_pass_action}[rule.verdict]


# --------------------------------------------------------------------------- translation


def _v4(value: str) -> bool:
    try:
        return ipaddress.ip_network(value, strict=False).version == 4
    except ValueError:
        return False


def rule_addresses(scenario: Scenario, rule: ClusterRule, ports: Mapping[str, str]) -> list[str]:
    """The IPv4 addresses Kube-OVN puts into a rule's set: selected pods that are wired (have
    a port and an IP), CIDRs of networks peers; nodes peers add node IPs, and the lab has no
    Node objects."""
    ns_labels = {n.name: n.label_map for n in scenario.namespaces}
    out: list[str] = []
    for peer in rule.peers:
        if peer.form == "networks":
            out += [c for c in peer.networks if _v4(c)]
            continue
        out += [p.ip for p in scenario.pods
                if p.key in ports and p.ip and _v4(p.ip) and peer.selects(p, ns_labels[p.namespace])]
    return list(dict.fromkeys(out))


def rule_matches(pg: str, as_name: str, kind: str, rule: ClusterRule) -> list[str]:
    ingress = kind == "ingress"
    base = f"{'outport' if ingress else 'inport'} == @{pg} && ip && " \
           f"{'ip4.src' if ingress else 'ip4.dst'} == ${as_name}"
    if rule.ports is None:
        return [base]
    out = []
    for p in rule.ports:
        if p.name is not None:
            continue  # "Do not support NamedPort now": no match for it
        proto = p.protocol.lower()
        out.append(f"{base} && {p.port} <= {proto}.dst <= {p.end}" if p.end is not None
                   else f"{base} && {proto}.dst == {p.port}")
    return out


@dataclass
class DirectionObjects:
    """What one direction of one policy owns: its rules' address sets and its ACLs."""

    address_sets: dict[str, frozenset[str]] = field(default_factory=dict)
    address_set_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    acls: set[Acl] = field(default_factory=set)


def direction_objects(scenario: Scenario, policy: ClusterPolicy, kind: str,
                      ports: Mapping[str, str], profile: Profile = DEFAULT) -> DirectionObjects:
    """The address sets and ACLs of one direction (kind: ingress | egress); SyncError when
    Kube-OVN's sync of it would fail."""
    pg = port_group_name(policy)
    out = DirectionObjects()
    rules = policy.ingress if kind == "ingress" else policy.egress
    for index, rule in enumerate(rules):
        name = address_set_name(policy, kind, index, rule)
        if not AS_NAME.match(name):
            raise SyncError(f"failed to create ovn address set {name} for anp/banp rule "
                            f"{ovn_name(policy)}/{rule.name}: invalid address set name")
        addresses = rule_addresses(scenario, rule, ports)
        out.address_sets[name] = frozenset(addresses)
        out.address_set_ids[name] = {ID_KEY[policy.kind]: f"{ovn_name(policy)}/{kind}"}
        if not addresses:
            continue
        out.acls |= {Acl(INGRESS if kind == "ingress" else EGRESS, acl_priority(policy, index), m,
                         acl_action(rule, profile), AFTER_LB, (("parent", pg),), acl_tier(policy, profile))
                     for m in rule_matches(pg, name, kind, rule)}
    return out


def subject_ports(scenario: Scenario, policy: ClusterPolicy, ports: Mapping[str, str]) -> frozenset[str]:
    ns_labels = {n.name: n.label_map for n in scenario.namespaces}
    return frozenset(ports[p.key] for p in scenario.pods
                     if p.key in ports and policy.subject.selects(p, ns_labels[p.namespace]))


def port_group_ids(policy: ClusterPolicy) -> dict[str, str]:
    return {ID_KEY[policy.kind]: port_group_name(policy) if policy.kind == CNP else ovn_name(policy)}


def policy_state(scenario: Scenario, policy: ClusterPolicy, ports: Mapping[str, str],
                 profile: Profile = DEFAULT) -> OvnPolicyState:
    """Every object of one policy, freshly synced (SyncError if that sync fails)."""
    pg = port_group_name(policy)
    state = OvnPolicyState({pg: subject_ports(scenario, policy, ports)}, {pg: port_group_ids(policy)})
    acls: set[Acl] = set()
    for kind in ("ingress", "egress"):
        objs = direction_objects(scenario, policy, kind, ports, profile)
        state.address_sets.update(objs.address_sets)
        state.address_set_ids.update(objs.address_set_ids)
        acls |= objs.acls
    state.acls[pg] = frozenset(acls)
    return state


def validate(policy: ClusterPolicy, priorities: Mapping[int, str]) -> None:
    """validateAnpConfig (admin_network_policy.go:541-564) and validateCnpConfig
    (cluster_network_policy.go:1020-1077): `priorities` is the controller's map of the
    policy's tier (ANPs and Admin CNPs share one, cluster_network_policy.go:957-966)."""
    if policy.kind == BANP:
        return
    holder = priorities.get(policy.priority)  # type: ignore[arg-type]
    if holder is not None and holder != policy.name:
        raise SyncError(f"can not create {policy.short.lower()} {policy.name} with priority "
                        f"{policy.priority}, {holder} already exists with the same priority")
    limit = ANP_MAX_PRIORITY if policy.kind == ANP else CNP_MAX_PRIORITY
    if policy.priority is not None and policy.priority > limit:
        raise SyncError(f"the priority of {policy.short.lower()} {policy.name} is greater than "
                        f"max value {limit}")
    rules = ANP_MAX_RULES if policy.kind == ANP else CNP_MAX_RULES
    if max(len(policy.ingress), len(policy.egress)) > rules:
        raise SyncError(f"at most {rules} rules in {policy.short.lower()} {policy.name}")


def uses_nodes(policies: Sequence[ClusterPolicy]) -> bool:
    return any(p.form == "nodes" for pol in policies for r in pol.egress for p in r.peers)
