"""Apply translated policy objects to the northbound database, the way kube-ovn-controller
schedules its work: only the policies it would re-sync, and only what differs.

The controller re-syncs a policy when its spec changes, when a pod is added that the policy
matches, and on a pod or namespace label change only when the set of policies "matching" the
object changes (symmetric difference of the lists before and after; pod.go v1.16.2:350-356,
namespace.go v1.16.2:64-71, network_policy.go v1.16.2:745-836 `isPodMatchNetworkPolicy`,
`isNamespaceMatchNetworkPolicy`). A policy that is not re-synced keeps the objects of its
last sync, stale or not: that is what `Applied` remembers between calls, explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubeovn_conformance.backends.lab.profile import DEFAULT, Profile
from kubeovn_conformance.backends.lab.translate import Acl, OvnPolicyState, policy_state
from kubeovn_conformance.mechanism import resynced_policies
from kubeovn_conformance.model import Scenario


@dataclass(frozen=True)
class Applied:
    """What the controller last wrote: the scenario it saw and each policy's objects."""

    scenario: Scenario
    policies: dict[str, OvnPolicyState] = field(default_factory=dict)  # policy key -> objects

    @property
    def state(self) -> OvnPolicyState:
        out = OvnPolicyState()
        for objs in self.policies.values():
            out = out.merged(objs)
        return out


# --------------------------------------------------------------------------- who re-syncs


def resync_keys(old: Scenario | None, new: Scenario, profile: Profile,
                synced: Iterable[str]) -> set[str]:
    """Keys of the policies of `new` the controller re-syncs for the change old -> new.
    `synced`: policies that have objects from an earlier sync. The triggers themselves live
    in mechanism.py, which known issues' facts share."""
    if old is None or not profile.label_resync_by_match_diff:
        return {p.key for p in new.policies}
    return resynced_policies(old, new, synced, add_pods=not profile.late_pod_ignored)


# --------------------------------------------------------------------------- ovn-nbctl plans


def _q(value: str) -> str:
    """An OVSDB string literal (ovn-nbctl parses column values; JSON quoting is accepted)."""
    return json.dumps(value)


def _set(values: Iterable[str]) -> str:
    return "[" + ",".join(_q(v) for v in sorted(values)) + "]"


def _map_args(column: str, items: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{column}:{_q(k)}={_q(v)}" for k, v in items]


def _idmap(ids: Mapping[str, str]) -> str:
    return "{" + ",".join(f"{_q(k)}={_q(v)}" for k, v in sorted(ids.items())) + "}"


def _create_acl(pg: str, acl: Acl, ref: str) -> list[list[str]]:
    create = [f"--id=@{ref}", "create", "acl", f"direction={acl.direction}",
              f"priority={acl.priority}", f"match={_q(acl.match)}", f"action={acl.action}",
              *_map_args("options", acl.options), *_map_args("external_ids", acl.external_ids)]
    if acl.tier:  # an OVN without ACL tiers has no such column: tier 0 is left out
        create.append(f"tier={acl.tier}")
    return [create, ["add", "port_group", pg, "acls", f"@{ref}"]]


def _address_set_commands(old: OvnPolicyState, new: OvnPolicyState) -> list[list[str]]:
    cmds: list[list[str]] = []
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
    return cmds


def plan_commands(old: OvnPolicyState | None, new: OvnPolicyState) -> list[list[str]]:
    """The ovn-nbctl commands that turn `old` into `new`, touching nothing that is equal."""
    old = old or OvnPolicyState()
    # Address sets first, so every ACL created below finds its sets in the same transaction.
    cmds = _address_set_commands(old, new)
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
            # By its tier where it has one: the same match may exist in another tier.
            tier = [f"--tier={acl.tier}"] if acl.tier else []
            cmds.append(["--type=port-group", *tier, "acl-del", pg, acl.direction,
                         str(acl.priority), acl.match])
        for acl in sorted(after - before):
            ref += 1
            cmds.extend(_create_acl(pg, acl, f"acl{ref}"))

    for pg in sorted(set(old.port_groups) - set(new.port_groups)):
        cmds.append(["--if-exists", "destroy", "port_group", pg])  # its ACLs go with it
    for name in sorted(set(old.address_sets) - set(new.address_sets)):
        cmds.append(["--if-exists", "destroy", "address_set", name])
    return cmds


def join_commands(cmds: Sequence[Sequence[str]]) -> list[str]:
    """One ovn-nbctl argv running all commands in one transaction ('--' separated)."""
    argv: list[str] = []
    for i, cmd in enumerate(cmds):
        if i:
            argv.append("--")
        argv.extend(cmd)
    return argv


# --------------------------------------------------------------------------- reconcile


def next_applied(scenario: Scenario, ports: Mapping[str, str], profile: Profile,
                 applied: Applied | None, gateways: Iterable[str] = (),
                 node_ips: Iterable[str] = ()) -> Applied:
    """What the controller holds after it has seen `scenario` (pure)."""
    gateways, node_ips = list(gateways), list(node_ips)
    old = applied.policies if applied else {}
    keys = resync_keys(applied.scenario if applied else None, scenario, profile, old)
    # Policies that are not re-synced first, re-synced ones after: when two policies share
    # a port group name, the one synced last owns it.
    policies: dict[str, OvnPolicyState] = {}
    for policy in scenario.policies:
        if policy.key in old and policy.key not in keys:
            policies[policy.key] = old[policy.key]
    for policy in scenario.policies:
        if policy.key not in policies:
            policies[policy.key] = policy_state(scenario, policy, ports, profile, gateways, node_ips)
    return Applied(scenario, policies)


def in_tier(state: OvnPolicyState | None, tier: int) -> OvnPolicyState | None:
    """The state with every ACL in OVN ACL tier `tier` (NetworkPolicy ACLs: profile.netpol_tier
    where the NB has tiers, 0 where it has none)."""
    if state is None or not tier:
        return state
    return OvnPolicyState(state.port_groups, state.port_group_ids, state.address_sets,
                          state.address_set_ids,
                          {pg: frozenset(a._replace(tier=tier) for a in acls)
                           for pg, acls in state.acls.items()})


def reconcile_policies(nbctl: Callable[..., str], scenario: Scenario, ports: Mapping[str, str],
                       profile: Profile = DEFAULT, applied: Applied | None = None, *,
                       gateways: Iterable[str] = (), node_ips: Iterable[str] = (),
                       between: Callable[[], None] | None = None, netpol_tier: int = 0,
                       others: tuple[OvnPolicyState, OvnPolicyState] | None = None) -> Applied:
    """Make the northbound policy objects what the controller would hold after `scenario`.

    nbctl(*argv) runs ovn-nbctl and raises on failure. `applied` is what the previous call
    returned (None the first time, or after the database was reset). Normally one
    transaction: a failure leaves the database as it was. With
    profile.resync_delete_then_add, re-synced policies lose their ACLs in a first
    transaction and get the new ones in a second; `between()` runs in that intermediate
    state (the backend waits for the datapath there and lets the runner sample it).
    netpol_tier: the OVN ACL tier of these ACLs. others: (before, after) objects of the
    cluster-scoped policies (cluster_sync.py), changed in the same transaction.
    """
    new = next_applied(scenario, ports, profile, applied, gateways, node_ips)
    before = in_tier(applied.state if applied else None, netpol_tier)
    after = in_tier(new.state, netpol_tier)
    middle = in_tier(_intermediate(applied, new, profile), netpol_tier)
    if others is not None:
        before = (before or OvnPolicyState()).merged(others[0])
        after = after.merged(others[1])  # type: ignore[union-attr]
        middle = middle.merged(others[0]) if middle is not None else None
    if middle is not None:
        cmds = plan_commands(before, middle)
        if cmds:
            nbctl(*join_commands(cmds))
        if between is not None:
            between()
        before = middle
    cmds = plan_commands(before, after)
    if cmds:
        nbctl(*join_commands(cmds))
    return new


def _intermediate(applied: Applied | None, new: Applied, profile: Profile) -> OvnPolicyState | None:
    """The state an old controller passed through while re-syncing changed policies:
    without their ACLs (before 688fd5e21) or without their address sets (before
    095dca268). None when the profile updates in one step or nothing changed."""
    if applied is None or not (profile.resync_delete_then_add or profile.resync_recreates_address_sets):
        return None
    changed = {k for k, v in new.policies.items() if applied.policies.get(k) not in (None, v)}
    if not changed:
        return None
    middle = OvnPolicyState()
    for key, objs in applied.policies.items():
        if key in changed and profile.resync_delete_then_add:
            objs = objs.without_acls()
        if key in changed and profile.resync_recreates_address_sets:
            objs = OvnPolicyState(objs.port_groups, objs.port_group_ids, {}, {}, objs.acls)
        middle = middle.merged(objs)
    return middle
