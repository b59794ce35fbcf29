"""NetworkPolicies to OVN northbound objects, the way kube-ovn-controller builds them.

`desired_state` is pure: from the scenario (pods with IPs, Services with ClusterIPs,
policies), the pod -> logical switch port map and a translation `Profile` it computes the
port groups, address sets and ACLs Kube-OVN would create. `reconcile_policies` applies only
the difference to a previously applied state, in one ovn-nbctl transaction.

What is reproduced from Kube-OVN (pkg/controller/network_policy.go, pkg/ovs/ovn-nb-acl.go):
- port group `<policy>.<namespace>` with '-' replaced by '.', "np" prefixed when the policy
  name does not start with a letter (OVN identifiers may hold letters, digits, '_' and '.',
  and may not start with a digit);
- per rule two address sets `<pg>.<ingress|egress>.<allow|except>.IPv4.<index>`; a rule
  without peers allows 0.0.0.0/0; ipBlock cidrs go to the allow set and their excepts to the
  except set of the whole rule (so an except also applies to the rule's selector peers, as in
  Kube-OVN);
- allow-related at 2001 per (rule, port), default drop at 2000; egress ACLs from-lport with
  options:apply-after-lb when the profile says so;
- named ports resolved through one map per namespace (the policy's namespace), where the
  first pod that declares a name fixes its number for every pod; an unknown name matches
  nothing.
Not reproduced: IPv6 and dual stack, ACL logging and meters, the lax mode's extra
exceptions, the separate ipBlock ACLs of Kube-OVN master, and the node port group (node
allow ACLs go onto each policy port group instead, with the same effect for node traffic).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from kubeovn_conformance.backends.lab.profile import DEFAULT, Profile
from kubeovn_conformance.model import NetworkPolicy, Peer, Pod, PolicyPort, Rule, Scenario

# Priorities as Kube-OVN's util package defines them.
NODE_ALLOW_PRIORITY = 3000
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


@dataclass(frozen=True)
class OvnPolicyState:
    """Everything the policy translation owns in the northbound database."""

    port_groups: dict[str, frozenset[str]] = field(default_factory=dict)  # pg -> LSP names
    port_group_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    address_sets: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> IPs/CIDRs
    address_set_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    acls: dict[str, frozenset[Acl]] = field(default_factory=dict)  # pg -> ACLs


# --------------------------------------------------------------------------- naming


def policy_id(policy: NetworkPolicy) -> str:
    """The policy name Kube-OVN uses in OVN: prefixed when it does not start with a letter."""
    return policy.name if policy.name[:1].isalpha() else "np" + policy.name


def port_group_name(policy: NetworkPolicy) -> str:
    return f"{policy_id(policy)}.{policy.namespace}".replace("-", ".")


def address_set_name(policy: NetworkPolicy, direction: str, kind: str, index: int) -> str:
    """direction: "ingress"|"egress"; kind: "allow"|"except"."""
    return f"{port_group_name(policy)}.{direction}.{kind}.IPv4.{index}"


# --------------------------------------------------------------------------- translation


def _is_v4(value: str) -> bool:
    try:
        return ipaddress.ip_network(value, strict=False).version == 4
    except ValueError:
        return False


def _selected_pods(scenario: Scenario, policy: NetworkPolicy) -> list[Pod]:
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


def _rule_addresses(scenario: Scenario, policy: NetworkPolicy, rule: Rule,
                    profile: Profile) -> tuple[set[str], set[str]]:
    if not rule.peers:
        return {"0.0.0.0/0"}, set()
    allow: set[str] = set()
    excepts: set[str] = set()
    for peer in rule.peers:
        if peer.ip_block is not None:
            if _is_v4(peer.ip_block.cidr):
                allow.add(peer.ip_block.cidr)
                excepts.update(e for e in peer.ip_block.excepts if _is_v4(e))
            continue
        for pod in _peer_pods(scenario, policy, peer):
            if pod.ip and _is_v4(pod.ip):
                allow.add(pod.ip)
                if profile.svc_ips_in_allow_sets:
                    # Up to 1.15: ClusterIPs of Services in the pod's namespace selecting it.
                    allow.update(s.cluster_ip for s in scenario.services
                                 if s.cluster_ip and _is_v4(s.cluster_ip) and s.selects(pod))
    return allow, excepts


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


def _port_matches(base: str, ports: Sequence[PolicyPort] | None,
                  named: Mapping[str, int]) -> list[str]:
    if not ports:
        return [base]
    out = []
    for p in ports:
        proto = p.protocol.lower()
        if p.port is None:
            out.append(f"{base} && {proto}")
        elif isinstance(p.port, str):
            number = named.get(p.port)
            if number is not None:  # unknown name: no ACL, the default drop applies
                out.append(f"{base} && {proto}.dst == {number}")
        elif p.end_port is not None:
            out.append(f"{base} && {proto}.dst >= {p.port} && {proto}.dst <= {p.end_port}")
        else:
            out.append(f"{base} && {proto}.dst == {p.port}")
    return out


def _ids(**kv: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kv.items()))


def _direction_acls(scenario: Scenario, policy: NetworkPolicy, profile: Profile, *,
                    kind: str, state: OvnPolicyState, named: Mapping[str, int]) -> set[Acl]:
    """ACLs and address sets of one direction (kind "ingress"|"egress") of one policy."""
    pg = port_group_name(policy)
    ingress = kind == "ingress"
    direction = INGRESS if ingress else EGRESS
    port_dir, ip_key = ("outport", "ip4.src") if ingress else ("inport", "ip4.dst")
    options = AFTER_LB if (not ingress and profile.egress_after_lb) else ()
    np_key = f"{policy.namespace}/{policy_id(policy)}"

    drop_l4 = "(tcp || udp || sctp)" if profile.enforcement == "lax" else "ip"
    acls = {Acl(direction, DEFAULT_DROP_PRIORITY, f"{port_dir} == @{pg} && {drop_l4}", "drop",
                options, _ids(parent=pg, np=np_key, rule=f"{kind}/default"))}
    for idx, rule in enumerate(policy.rules(kind.capitalize())):
        allow_as = address_set_name(policy, kind, "allow", idx)
        except_as = address_set_name(policy, kind, "except", idx)
        allow, excepts = _rule_addresses(scenario, policy, rule, profile)
        for name, addrs in ((allow_as, allow), (except_as, excepts)):
            state.address_sets[name] = frozenset(addrs)
            state.address_set_ids[name] = {"np": f"{np_key}/{kind}"}
        if not allow:  # as Kube-OVN master: no ACL for a rule whose peers select nothing
            continue
        base = f"{port_dir} == @{pg} && ip && {ip_key} == ${allow_as} && {ip_key} != ${except_as}"
        for match in _port_matches(base, rule.ports, named):
            acls.add(Acl(direction, ALLOW_PRIORITY, match, "allow-related", options,
                         _ids(parent=pg, np=np_key, rule=f"{kind}/{idx}")))
    return acls


def desired_state(scenario: Scenario, ports: Mapping[str, str], profile: Profile = DEFAULT,
                  gateways: Iterable[str] = (), node_ips: Iterable[str] = ()) -> OvnPolicyState:
    """The OVN objects Kube-OVN would hold for the scenario's policies.

    ports: pod key "ns/name" -> logical switch port; pods without one are not yet wired and
    stay out of port groups. gateways: subnet gateway IPs (used when profile.gateway_allow).
    node_ips: addresses of the node(s), allowed to reach policy-selected pods at 3000.
    """
    state = OvnPolicyState()
    gateways = [g for g in gateways if _is_v4(g)]
    node_ips = [n for n in node_ips if _is_v4(n)]
    for policy in scenario.policies:
        pg = port_group_name(policy)
        np_key = f"{policy.namespace}/{policy_id(policy)}"
        state.port_groups[pg] = frozenset(ports[p.key] for p in _selected_pods(scenario, policy)
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
                acls |= _direction_acls(scenario, policy, profile, kind=kind, state=state,
                                        named=named)
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
        state.acls[pg] = frozenset(acls)
    return state


# --------------------------------------------------------------------------- reconcile


def _q(value: str) -> str:
    """An OVSDB string literal (ovn-nbctl parses column values; JSON quoting is accepted)."""
    return json.dumps(value)


def _set(values: Iterable[str]) -> str:
    return "[" + ",".join(_q(v) for v in sorted(values)) + "]"


def _map_args(column: str, items: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{column}:{_q(k)}={_q(v)}" for k, v in items]


def _create_acl(pg: str, acl: Acl, ref: str) -> list[list[str]]:
    create = [f"--id=@{ref}", "create", "acl", f"direction={acl.direction}",
              f"priority={acl.priority}", f"match={_q(acl.match)}", f"action={acl.action}",
              *_map_args("options", acl.options), *_map_args("external_ids", acl.external_ids)]
    return [create, ["add", "port_group", pg, "acls", f"@{ref}"]]


def plan_commands(old: OvnPolicyState | None, new: OvnPolicyState) -> list[list[str]]:
    """The ovn-nbctl commands that turn `old` into `new`, touching nothing that is equal."""
    old = old or OvnPolicyState()
    cmds: list[list[str]] = []

    # Address sets first, so every ACL created below finds its sets in the same transaction.
    for name in sorted(new.address_sets):
        addrs, ids = new.address_sets[name], new.address_set_ids.get(name, {})
        if name not in old.address_sets:
            cmds.append(["create", "address_set", f"name={_q(name)}", f"addresses={_set(addrs)}",
                         *_map_args("external_ids", sorted(ids.items()))])
            continue
        before = old.address_sets[name]
        if addrs - before:
            cmds.append(["add", "address_set", name, "addresses",
                         *(_q(a) for a in sorted(addrs - before))])
        if before - addrs:
            cmds.append(["remove", "address_set", name, "addresses",
                         *(_q(a) for a in sorted(before - addrs))])
        if ids != old.address_set_ids.get(name, {}):
            cmds.append(["set", "address_set", name, f"external_ids={_idmap(ids)}"])

    ref = 0
    for pg in sorted(new.port_groups):
        members, ids = new.port_groups[pg], new.port_group_ids.get(pg, {})
        is_new = pg not in old.port_groups
        if is_new:
            cmds.append(["create", "port_group", f"name={_q(pg)}",
                         *_map_args("external_ids", sorted(ids.items()))])
        elif ids != old.port_group_ids.get(pg, {}):
            cmds.append(["set", "port_group", pg, f"external_ids={_idmap(ids)}"])
        if members != (frozenset() if is_new else old.port_groups[pg]):
            # pg-set-ports takes LSP names (the ports column holds UUIDs) and fails loudly
            # on a port that does not exist.
            cmds.append(["pg-set-ports", pg, *sorted(members)] if members
                        else ["clear", "port_group", pg, "ports"])
        before = frozenset() if is_new else old.acls.get(pg, frozenset())
        after = new.acls.get(pg, frozenset())
        for acl in sorted(before - after):
            # Port_Group.acls is a strong reference: removing it garbage-collects the row.
            cmds.append(["--type=port-group", "acl-del", pg, acl.direction, str(acl.priority),
                         acl.match])
        for acl in sorted(after - before):
            ref += 1
            cmds.extend(_create_acl(pg, acl, f"acl{ref}"))

    for pg in sorted(set(old.port_groups) - set(new.port_groups)):
        cmds.append(["--if-exists", "destroy", "port_group", pg])  # its ACLs go with it
    for name in sorted(set(old.address_sets) - set(new.address_sets)):
        cmds.append(["--if-exists", "destroy", "address_set", name])
    return cmds


def _idmap(ids: Mapping[str, str]) -> str:
    return "{" + ",".join(f"{_q(k)}={_q(v)}" for k, v in sorted(ids.items())) + "}"


def join_commands(cmds: Sequence[Sequence[str]]) -> list[str]:
    """One ovn-nbctl argv running all commands in one transaction ('--' separated)."""
    argv: list[str] = []
    for i, cmd in enumerate(cmds):
        if i:
            argv.append("--")
        argv.extend(cmd)
    return argv


def reconcile_policies(nbctl: Callable[..., str], scenario: Scenario, ports: Mapping[str, str],
                       profile: Profile = DEFAULT, state: OvnPolicyState | None = None, *,
                       gateways: Iterable[str] = (), node_ips: Iterable[str] = ()
                       ) -> OvnPolicyState:
    """Make the northbound policy objects match the scenario, applying only differences.

    nbctl(*argv) runs ovn-nbctl and raises on failure. `state` is what the previous call
    returned (None the first time, or after the database was reset). Everything is one
    transaction: a failure leaves the database as it was, and the caller keeps the old state.
    """
    new = desired_state(scenario, ports, profile, gateways, node_ips)
    cmds = plan_commands(state, new)
    if cmds:
        nbctl(*join_commands(cmds))
    return new


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
            lines.append(f"  {acl.direction:>10} {acl.priority:>5} ({acl.match}) "
                         f"{acl.action}{flags}")
    for name in sorted(state.address_sets):
        addrs = ", ".join(sorted(state.address_sets[name])) or "(empty)"
        lines.append(f"address set {name}: {addrs}")
    return "\n".join(lines) if lines else "(no policy objects)"
