"""NetworkPolicies to OVN northbound objects, the way kube-ovn-controller builds them.

`desired_state` is pure: from the scenario (pods with IPs, Services with ClusterIPs,
policies), the pod -> logical switch port map and a translation `Profile` it computes the
port groups, address sets and ACLs the profile's Kube-OVN tag would create. `sync.py`
applies them (only the differences, and only for the policies the controller would
re-sync).

Reproduced from Kube-OVN (pkg/controller/network_policy.go UpdateNp, pkg/ovs/ovn-nb-acl.go;
line numbers at v1.16.2 unless said otherwise):
- port group `<policy>.<namespace>` with '-' replaced by '.', "np" prefixed when the policy
  name does not start with a letter (network_policy.go:127-135);
- per rule two address sets `<pg>.<ingress|egress>.<allow|except>.IPv4.<index>`; a rule
  without peers allows 0.0.0.0/0 (:209-214);
- ipBlock excepts, by profile.except_scope: "block" (v1.15.5+, v1.16.0+): selector peers in
  the allow set with an empty except set, and one more ACL per rule for its ipBlocks with
  each block's excepts inline (ovn-nb-acl.go:1271-1381, `newIPBlockACLMatch`); "rule"
  (before): cidrs in the allow set and every except in the except set, so an except also
  removes a selector peer of the same rule;
- allow-related at 2001 per (rule, port), default drop at 2000; egress ACLs from-lport with
  options:apply-after-lb when the profile says so; matches in Kube-OVN's own format
  (`outport == @pg && ip && ip4.src == $allow && ip4.src != $except && 81 <= tcp.dst <= 90`,
  ovs/util.go:213-340);
- named ports resolved through one map per namespace (the policy's namespace,
  `GetNamedPortByNs(np.Namespace)`, :146), where the first pod that declares a name fixes its
  number for every pod; an unknown name gets no ACL (or a port-0 ACL before v1.15.8).
Not reproduced: IPv6 and dual stack, ACL logging and meters, the lax mode's extra
exceptions, and the node port group (node allow ACLs go onto each policy port group
instead, with the same effect for node traffic).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from kubeovn_conformance.backends.lab.profile import DEFAULT, Profile
from kubeovn_conformance.model import IPBlock, NetworkPolicy, Peer, Pod, PolicyPort, Rule, Scenario

# Priorities as Kube-OVN's util package defines them.
NODE_ALLOW_PRIORITY = 3000
EXCEPT_DROP_PRIORITY = 2002  # before f4b75bd04 (v1.7.1) only
ALLOW_PRIORITY = 2001
DEFAULT_DROP_PRIORITY = 2000

INGRESS, EGRESS = "to-lport", "from-lport"
AFTER_LB = (("apply-after-lb", "true"),)


class Acl(NamedTuple):
    """One ACL row; hashable so a port group's ACLs are a set and diffs are set algebra."""

    direction: str
    priority: int
    match: str
    action: str
    options: tuple[tuple[str, str], ...] = ()
    external_ids: tuple[tuple[str, str], ...] = ()
    tier: int = 0  # OVN ACL tier (OVN 23.06+); 0 is also where an OVN without tiers puts it


@dataclass(frozen=True)
class OvnPolicyState:
    """Everything the policy translation owns in the northbound database."""

    port_groups: dict[str, frozenset[str]] = field(default_factory=dict)  # pg -> LSP names
    port_group_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    address_sets: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> IPs/CIDRs
    address_set_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    acls: dict[str, frozenset[Acl]] = field(default_factory=dict)  # pg -> ACLs

    def merged(self, other: OvnPolicyState) -> OvnPolicyState:
        return OvnPolicyState({**self.port_groups, **other.port_groups},
                              {**self.port_group_ids, **other.port_group_ids},
                              {**self.address_sets, **other.address_sets},
                              {**self.address_set_ids, **other.address_set_ids},
                              {**self.acls, **other.acls})

    def without_acls(self) -> OvnPolicyState:
        return OvnPolicyState(dict(self.port_groups), dict(self.port_group_ids),
                              dict(self.address_sets), dict(self.address_set_ids),
                              {pg: frozenset() for pg in self.acls})


# --------------------------------------------------------------------------- naming


def policy_id(policy: NetworkPolicy, profile: Profile = DEFAULT) -> str:
    """The policy name Kube-OVN uses in OVN: prefixed when it does not start with a letter
    (a4545549d; before it the name went into OVN as it was)."""
    if policy.name[:1].isalpha() or profile.digit_name_unprefixed:
        return policy.name
    return "np" + policy.name


def port_group_name(policy: NetworkPolicy, profile: Profile = DEFAULT) -> str:
    return f"{policy_id(policy, profile)}.{policy.namespace}".replace("-", ".")


def address_set_name(policy: NetworkPolicy, direction: str, kind: str, index: int,
                     profile: Profile = DEFAULT) -> str:
    """direction: "ingress"|"egress"; kind: "allow"|"except"."""
    return f"{port_group_name(policy, profile)}.{direction}.{kind}.IPv4.{index}"


# --------------------------------------------------------------------------- translation


def _is_v4(value: str) -> bool:
    try:
        return ipaddress.ip_network(value, strict=False).version == 4
    except ValueError:
        return False


def selected_pods(scenario: Scenario, policy: NetworkPolicy) -> list[Pod]:
    return [p for p in scenario.pods
            if p.namespace == policy.namespace and not p.host_network
            and policy.pod_selector.matches(p.label_map)]


def _peer_pods(scenario: Scenario, policy: NetworkPolicy, peer: Peer) -> list[Pod]:
    # A podSelector alone means the policy's namespace; in one peer both selectors AND.
    if peer.namespace_selector is None:
        namespaces = {policy.namespace}
    else:
        namespaces = {n.name for n in scenario.namespaces
                      if peer.namespace_selector.matches(n.label_map)}
    return [p for p in scenario.pods
            if p.namespace in namespaces
            and (peer.pod_selector is None or peer.pod_selector.matches(p.label_map))]


def _selector_addresses(scenario: Scenario, policy: NetworkPolicy, peer: Peer,
                        profile: Profile) -> set[str]:
    out: set[str] = set()
    for pod in _peer_pods(scenario, policy, peer):
        if pod.ip and _is_v4(pod.ip):
            out.add(pod.ip)
            if profile.svc_ips_in_allow_sets:
                # v1.8.2 to v1.15: ClusterIPs of Services in the pod's namespace selecting it.
                out.update(s.cluster_ip for s in scenario.services
                           if s.cluster_ip and _is_v4(s.cluster_ip) and s.selects(pod))
    return out


def _rule_addresses(scenario: Scenario, policy: NetworkPolicy, rule: Rule, profile: Profile
                    ) -> tuple[set[str], set[str], list[IPBlock]]:
    """(allow set, except set, ipBlocks that get their own ACL) of one rule."""
    if not rule.peers:
        return {"0.0.0.0/0"}, set(), []
    allow: set[str] = set()
    excepts: set[str] = set()
    blocks: list[IPBlock] = []
    for peer in rule.peers:
        if peer.ip_block is not None:
            if not _is_v4(peer.ip_block.cidr):
                continue
            if profile.except_scope == "block":
                blocks.append(peer.ip_block)
            else:
                allow.add(peer.ip_block.cidr)
                excepts.update(e for e in peer.ip_block.excepts if _is_v4(e))
            continue
        allow |= _selector_addresses(scenario, policy, peer, profile)
    return allow, excepts, blocks


def named_port_map(scenario: Scenario, namespace: str) -> dict[str, int]:
    """Kube-OVN's per-namespace named port map: the first pod declaring a name wins.

    Protocol is not part of the key; a later pod using the same name for another number is
    ignored (Kube-OVN logs a warning), so per-pod resolution differences are lost.
    """
    out: dict[str, int] = {}
    for pod in scenario.pods:
        if pod.namespace != namespace:
            continue
        for cp in pod.ports:
            if cp.name and cp.name not in out:
                out[cp.name] = cp.port
    return out


def _port_matches(base: str, ports: Sequence[PolicyPort] | None, named: Mapping[str, int],
                  profile: Profile) -> list[str]:
    """One match per policy port, as ovn-nb-acl.go newNetworkPolicyACLMatch (:1171) builds."""
    if not ports:
        return [base]
    out = []
    for p in ports:
        proto = p.protocol.lower()
        if p.port is None:
            out.append(f"{base} && {proto}")
        elif isinstance(p.port, str):
            number = 0 if profile.named_port_zero else named.get(p.port)
            if number is None and profile.unknown_named_port_acl:
                number = 0  # up to v1.15.7: an ACL on port 0
            if number is not None:  # v1.15.8+: unknown name, no ACL; the default drop applies
                out.append(f"{base} && {proto}.dst == {number}")
        elif p.end_port is not None and not profile.endport_ignored:
            out.append(f"{base} && {p.port} <= {proto}.dst <= {p.end_port}")
        else:
            out.append(f"{base} && {proto}.dst == {p.port}")
    return out


def _block_match(ip_key: str, blocks: Sequence[IPBlock], profile: Profile) -> str:
    """The inline L3 part of the ipBlock ACL (ovn-nb-acl.go:1290-1347). Excepts outside their
    block are skipped, as Kube-OVN does."""
    parts = []
    for b in blocks:
        net = ipaddress.ip_network(b.cidr, strict=False)
        ex = [e for e in b.excepts if _is_v4(e)
              and ipaddress.ip_network(e, strict=False).subnet_of(net)]  # type: ignore[arg-type]
        term = f"{ip_key} == {b.cidr}"
        parts.append(f"{term} && {ip_key} != {{{', '.join(ex)}}}" if ex else term)
    if len(parts) == 1:
        return f"({parts[0]})"
    ored = " || ".join(f"({p})" if "&&" in p else p for p in parts)
    # v1.15.5-v1.15.7 left out the parentheses around the disjunction (kube-ovn#6508).
    return ored if profile.ipblocks_unparenthesized else f"({ored})"


def _ids(**kv: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kv.items()))


@dataclass(frozen=True)
class _Dir:
    kind: str  # ingress | egress
    pg: str
    np_key: str
    direction: str
    port_dir: str
    ip_key: str
    options: tuple[tuple[str, str], ...]


def _rule_acls(scenario: Scenario, policy: NetworkPolicy, rule: Rule, idx: int, d: _Dir,
               profile: Profile, state: OvnPolicyState, named: Mapping[str, int]) -> set[Acl]:
    allow_as = address_set_name(policy, d.kind, "allow", idx, profile)
    except_as = address_set_name(policy, d.kind, "except", idx, profile)
    allow, excepts, blocks = _rule_addresses(scenario, policy, rule, profile)
    for name, addrs in ((allow_as, allow), (except_as, excepts)):
        state.address_sets[name] = frozenset(addrs)
        state.address_set_ids[name] = {"np": f"{d.np_key}/{d.kind}"}
    ids = _ids(parent=d.pg, np=d.np_key, rule=f"{d.kind}/{idx}")
    acls: set[Acl] = set()
    head = f"{d.port_dir} == @{d.pg} && ip"
    if allow:  # no ACL for a rule whose selector peers select nothing
        op = "==" if (profile.egress_except_eq and d.kind == "egress") else "!="
        base = f"{head} && {d.ip_key} == ${allow_as}"
        if not profile.except_drop_acl:
            base += f" && {d.ip_key} {op} ${except_as}"
        elif excepts:  # before v1.7.1: excepts dropped ahead of every allow of the port group
            acls.add(Acl(d.direction, EXCEPT_DROP_PRIORITY, f"{head} && {d.ip_key} == ${except_as}",
                         "drop", d.options, ids))
        acls |= {Acl(d.direction, ALLOW_PRIORITY, m, "allow-related", d.options, ids)
                 for m in _port_matches(base, rule.ports, named, profile)}
    if blocks:
        base = f"{head} && {_block_match(d.ip_key, blocks, profile)}"
        block_ids = _ids(parent=d.pg, np=d.np_key, rule=f"{d.kind}/{idx}/ipBlock")
        acls |= {Acl(d.direction, ALLOW_PRIORITY, m, "allow-related", d.options, block_ids)
                 for m in _port_matches(base, rule.ports, named, profile)}
    return acls


def _direction_acls(scenario: Scenario, policy: NetworkPolicy, profile: Profile, *,
                    kind: str, state: OvnPolicyState, named: Mapping[str, int]) -> set[Acl]:
    """ACLs and address sets of one direction (kind "ingress"|"egress") of one policy."""
    ingress = kind == "ingress"
    d = _Dir(kind, port_group_name(policy, profile), f"{policy.namespace}/{policy_id(policy, profile)}",
             INGRESS if ingress else EGRESS, "outport" if ingress else "inport",
             "ip4.src" if ingress else "ip4.dst",
             AFTER_LB if (not ingress and profile.egress_after_lb) else ())
    rules = policy.rules(kind.capitalize())
    acls: set[Acl] = set()
    for idx, rule in enumerate(rules):
        acls |= _rule_acls(scenario, policy, rule, idx, d, profile, state, named)
    if (not ingress and profile.empty_rule0_drops_isolation and rules
            and not state.address_sets[address_set_name(policy, kind, "allow", 0, profile)]
            and not state.address_sets[address_set_name(policy, kind, "except", 0, profile)]):
        # v1.12.1 to 3310f23dd: the egress drop was created only by the call for rule 0's
        # set, and that call was skipped for a rule without addresses (v1.13.5
        # pkg/ovs/ovn-nb-acl.go:85, pkg/controller/network_policy.go:340-347).
        return acls
    drop_l4 = "(tcp || udp || sctp)" if profile.enforcement == "lax" else "ip"
    acls.add(Acl(d.direction, DEFAULT_DROP_PRIORITY, f"{d.port_dir} == @{d.pg} && {drop_l4}", "drop",
                 d.options, _ids(parent=d.pg, np=d.np_key, rule=f"{kind}/default")))
    return acls


def policy_state(scenario: Scenario, policy: NetworkPolicy, ports: Mapping[str, str],
                 profile: Profile = DEFAULT, gateways: Iterable[str] = (),
                 node_ips: Iterable[str] = (), acl_tiers: bool = False) -> OvnPolicyState:
    """The OVN objects of one policy. acl_tiers: the OVN has ACL tiers (then the ACLs go in
    profile.netpol_acl_tier, as Kube-OVN puts them; else in tier 0)."""
    state = OvnPolicyState()
    pg = port_group_name(policy, profile)
    np_key = f"{policy.namespace}/{policy_id(policy, profile)}"
    state.port_groups[pg] = frozenset(ports[p.key] for p in selected_pods(scenario, policy)
                                      if p.key in ports)
    state.port_group_ids[pg] = {"np": np_key}
    named = named_port_map(scenario, policy.namespace)
    acls: set[Acl] = set()
    egress_opts = AFTER_LB if profile.egress_after_lb else ()
    for kind in ("ingress", "egress"):
        # Kube-OVN (hasIngressRule/hasEgressRule) also builds a direction whose rules are
        # present when policyTypes leaves it out; the API would ignore those rules.
        # Empty lists do not count: the API server does not keep them.
        if kind.capitalize() in policy.types or policy.rules(kind.capitalize()):
            acls |= _direction_acls(scenario, policy, profile, kind=kind, state=state, named=named)
    if profile.gateway_allow:
        # 1.12-1.14: stateless, and without a port group term: Kube-OVN's exact match.
        for gw in gateways:
            acls.add(Acl(INGRESS, ALLOW_PRIORITY, f"ip4.src == {gw}", "allow-stateless",
                         (), _ids(parent=pg, np=np_key, rule="gateway")))
            acls.add(Acl(EGRESS, ALLOW_PRIORITY, f"ip4.dst == {gw}", "allow-stateless",
                         egress_opts, _ids(parent=pg, np=np_key, rule="gateway")))
    for ip in node_ips:
        acls.add(Acl(INGRESS, NODE_ALLOW_PRIORITY, f"outport == @{pg} && ip4.src == {ip}",
                     "allow-related", (), _ids(parent=pg, np=np_key, rule="node")))
        acls.add(Acl(EGRESS, NODE_ALLOW_PRIORITY, f"inport == @{pg} && ip4.dst == {ip}",
                     "allow-related", egress_opts, _ids(parent=pg, np=np_key, rule="node")))
    tier = profile.netpol_acl_tier if acl_tiers else 0
    state.acls[pg] = frozenset(a._replace(tier=tier) for a in acls)
    return state


def desired_state(scenario: Scenario, ports: Mapping[str, str], profile: Profile = DEFAULT,
                  gateways: Iterable[str] = (), node_ips: Iterable[str] = (),
                  acl_tiers: bool = False) -> OvnPolicyState:
    """The OVN objects Kube-OVN would hold for the scenario's policies, all freshly synced.

    ports: pod key "ns/name" -> logical switch port; pods without one are not yet wired and
    stay out of port groups. gateways: subnet gateway IPs (used when profile.gateway_allow).
    node_ips: addresses of the node(s), allowed to reach policy-selected pods at 3000.
    """
    gateways = [g for g in gateways if _is_v4(g)]
    node_ips = [n for n in node_ips if _is_v4(n)]
    state = OvnPolicyState()
    for policy in scenario.policies:
        # Two policies whose names map to one port group (`a-b` and `a.b`, or `allow` in
        # `team-a` and `allow.team` in `a`) overwrite each other: the later one wins, as the
        # later sync does in Kube-OVN (network_policy.go:135, DeleteAclsOps by port group).
        state = state.merged(policy_state(scenario, policy, ports, profile, gateways, node_ips,
                                          acl_tiers))
    return state


# --------------------------------------------------------------------------- diagnostics


def _acl_sort_key(acl: Acl) -> tuple[int, int, str]:
    # acl-list order: from-lport before to-lport, then priority high to low.
    return (0 if acl.direction == EGRESS else 1, -acl.priority, acl.match)


def describe_state(state: OvnPolicyState) -> str:
    """A readable dump in the style of `ovn-nbctl acl-list`, for failure reports."""
    lines: list[str] = []
    for pg in sorted(state.port_groups):
        ids = ",".join(f"{k}={v}" for k, v in sorted(state.port_group_ids.get(pg, {}).items()))
        members = ", ".join(sorted(state.port_groups[pg])) or "(no ports)"
        lines.append(f"port group {pg} [{ids}]: {members}")
        for acl in sorted(state.acls.get(pg, ()), key=_acl_sort_key):
            flags = " [after-lb]" if ("apply-after-lb", "true") in acl.options else ""
            flags += f" [tier {acl.tier}]" if acl.tier else ""
            lines.append(f"  {acl.direction:>10} {acl.priority:>5} ({acl.match}) "
                         f"{acl.action}{flags}")
    for name in sorted(state.address_sets):
        addrs = ", ".join(sorted(state.address_sets[name])) or "(empty)"
        lines.append(f"address set {name}: {addrs}")
    return "\n".join(lines) if lines else "(no policy objects)"
