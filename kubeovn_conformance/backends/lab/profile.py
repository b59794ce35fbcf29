"""How a given Kube-OVN tag translates NetworkPolicies into OVN objects.

The lab backend plays the part of kube-ovn-controller. Every behaviour that changed between
releases in a way that can change a verdict (or the ACLs a unit test compares) is a *knob*,
and every knob is tied to the commit that changed it and the first tag of each release line
that carries the change (`FIXES`). `get_profile(tag)` derives all knobs from the tag, so
v1.15.3, v1.15.6 and v1.15.24 are three different profiles.

Besides tags there are *history* profiles, `history:<fix id>`: the newest behaviour with
that one fix reverted (plus the `context` knobs without which the old bug cannot show, e.g.
ClusterIPs in the allow sets for the egress-before-LB bug). They isolate one bug: "this
bug, reintroduced today", so the historical corpus (clusters/kube-ovn-history.yaml) can
assert exactly the cells each bug breaks, and that they pass with the fix.

Sources are the kubeovn/kube-ovn repository at the tags named in each Fix (read with
`git show TAG:pkg/controller/network_policy.go` and `pkg/ovs/ovn-nb-acl.go`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

ENFORCEMENTS = ("standard", "lax")
# The newest tag of each release line the lab knows (clusters/versions.yaml follows them).
NEWEST = {"v1.12": "v1.12.35", "v1.13": "v1.13.15", "v1.14": "v1.14.41", "v1.15": "v1.15.24",
          "v1.16": "v1.16.2"}
_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class Profile:
    """Translation knobs; the value in each default is the newest release's behaviour."""

    name: str
    # Egress (from-lport) ACLs carry options:apply-after-lb="true": they run after the load
    # balancer's DNAT and see backend pod IP and targetPort. Before, they saw ClusterIP:port.
    egress_after_lb: bool = True
    # ClusterIPs of Services in a peer pod's namespace that select it go into the allow
    # address sets next to the pod IPs.
    svc_ips_in_allow_sets: bool = False
    # Stateless allow ACLs for the subnet gateway (ip4.src/ip4.dst == gateway, 2001) on
    # every policy port group. From 1.15 only `icmp6` is allowed that way (IPv6 and standard
    # enforcement only), which an IPv4 lab never needs.
    gateway_allow: bool = False
    # Where an ipBlock's `except` applies: "rule" (one except set subtracted from every peer
    # of the rule, selector peers included) or "block" (an ACL per rule for its ipBlocks,
    # each block's excepts inline and scoped to that block).
    except_scope: str = "block"
    # "block" scope with several ipBlocks OR'd without parentheses around the disjunction:
    # OVN rejects `a && b || c`, so the whole ipBlock ACL never reaches the datapath.
    ipblocks_unparenthesized: bool = False
    # A named port nobody in the policy's namespace declares: an ACL on port 0 (True) or no
    # ACL at all (False). Both deny; the ACLs differ.
    unknown_named_port_acl: bool = False
    # A policy is re-synced on a pod or namespace label change only when the set of policies
    # "matching" that object (podSelector or any peer) changes. Never fixed.
    label_resync_by_match_diff: bool = True
    # --- behaviours older than the matrix, kept for the historical corpus ---------------
    # Excepts as a separate drop ACL at 2002 instead of a `!= $except` term.
    except_drop_acl: bool = False
    # Egress rules matched excepts with `==` instead of `!=`.
    egress_except_eq: bool = False
    # endPort ignored: a range admits only its first port.
    endport_ignored: bool = False
    # Named ports in rules became port 0.
    named_port_zero: bool = False
    # Policy names starting with a non-letter were not prefixed with "np": OVN rejects the
    # `@1...` port group reference and the policy's ACLs never reach the datapath.
    digit_name_unprefixed: bool = False
    # When egress rule 0 resolves to no address, the egress default drop (built only with
    # rule 0's address set) is missing: the pods lose egress isolation.
    empty_rule0_drops_isolation: bool = False
    # Pods created after a policy are not added to its port group or address sets until the
    # policy itself changes.
    late_pod_ignored: bool = False
    # A policy update deletes its ACLs in one transaction and adds the new ones in another:
    # between the two, selected pods are not isolated.
    resync_delete_then_add: bool = False
    # A policy update deletes its address sets and creates them again: between the two, the
    # allow ACLs name missing sets, OVN skips them, and allowed new connections are dropped.
    resync_recreates_address_sets: bool = False
    # NP_ENFORCEMENT (1.15+): "standard" drops all IP; "lax" drops only TCP/UDP/SCTP.
    enforcement: str = "standard"
    # The OVN ACL tier of NetworkPolicy ACLs: 2 (util.NetpolACLTier) since the tiers that
    # AdminNetworkPolicy needs arrived (v1.13.0), none (0) before. An OVN without tiers
    # (before 23.06, e.g. Debian 12's 23.03) puts every ACL in tier 0 whatever this says:
    # the lab applies it only where the northbound schema has ACL.tier.
    netpol_acl_tier: int = 2
    # Load balancers attached to underlay switches (ENABLE_LB and the subnet's enableLb).
    # False models ENABLE_LB=false: ClusterIP traffic then leaves OVN un-DNAT'd; in a real
    # cluster kube-proxy on the node would DNAT it, in the lab nothing does and it is dropped.
    lb_on_underlay: bool = True

    def __post_init__(self) -> None:
        if self.enforcement not in ENFORCEMENTS:
            raise ValueError(f"profile {self.name}: enforcement {self.enforcement!r} "
                             f"is not one of {', '.join(ENFORCEMENTS)}")
        if self.except_scope not in ("rule", "block"):
            raise ValueError(f"profile {self.name}: except_scope {self.except_scope!r}")

    @property
    def tag(self) -> str:
        """The Kube-OVN tag this profile stands for (a history profile: the fixed tag)."""
        return self.name.split("+")[0].split("-lax")[0]

    def knobs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}


@dataclass(frozen=True)
class Fix:
    """A change of translation behaviour, with where it shipped.

    A tag carries the change when it is at or after `mainline` (the first tag of the first
    release line branched after the change reached master), or on a line listed in
    `backports` at or after that tag. `introduced` limits a regression to tags from there on.
    """

    id: str
    knob: str
    buggy: Any  # the knob's value before the change
    fixed: Any  # and after
    commits: tuple[str, ...]
    mainline: str | None  # None: not fixed in any release (an open bug)
    backports: tuple[str, ...] = ()
    introduced: str | None = None
    source: str = ""  # file:line at a tag, the code that shows the change
    # Only for history profiles: the tag computation gets this knob from another Fix (the
    # same knob changed twice, e.g. ClusterIPs added to the allow sets, later removed).
    history_only: bool = False
    # Knob values of the releases the bug lived in that it needs to be observable.
    context: tuple[tuple[str, Any], ...] = ()

    def carries_fix(self, tag: str) -> bool:
        v = version_key(tag)
        if self.mainline is not None and v >= version_key(self.mainline):
            return True
        return any(v[:2] == version_key(b)[:2] and v >= version_key(b) for b in self.backports)

    def value_at(self, tag: str) -> Any:
        if self.introduced is not None and version_key(tag) < version_key(self.introduced):
            return self.fixed  # not yet broken
        return self.fixed if self.carries_fix(tag) else self.buggy


def version_key(tag: str) -> tuple[int, int, int]:
    m = _TAG.match(tag.strip())
    if not m:
        raise ValueError(f"not a Kube-OVN tag: {tag!r} (want vX.Y.Z)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


FIXES: tuple[Fix, ...] = (
    # Before the matrix (v1.12.0): for the historical corpus and history profiles.
    Fix("except-drop-acl", "except_drop_acl", True, False, ("f4b75bd04", "1e1da5a55"), "v1.8.0",
        backports=("v1.7.1",), context=(("except_scope", "rule"),),
        source="v1.7.0 pkg/ovs/ovn-nbctl.go:964,987 drop at 2002; v1.7.1 :975-982 `!= $except`"),
    Fix("egress-except-eq", "egress_except_eq", True, False, ("168a7c976", "7e775fa6a"), "v1.9.0",
        backports=("v1.8.2",), introduced="v1.7.1", context=(("except_scope", "rule"),),
        source="v1.8.1 pkg/ovs/ovn-nbctl.go:1154 `ip4.dst == $except`; v1.8.2 :1172 `!=`"),
    Fix("egress-no-clusterips", "svc_ips_in_allow_sets", False, True, ("d8e84cf06", "4187a329b"),
        "v1.9.0", backports=("v1.8.2",), history_only=True, context=(("egress_after_lb", False),),
        source="v1.8.2 pkg/controller/network_policy.go:691-718 svcMatchPods"),
    Fix("endport-ignored", "endport_ignored", True, False, ("e52b68976",), "v1.9.0",
        source="v1.8.1 pkg/ovs/ovn-nbctl.go:1133 `tcp.dst == port`; v1.16.2 "
               "pkg/ovs/ovn-nb-acl.go:1255-1261 `port <= tcp.dst <= endPort`"),
    Fix("resync-delete-then-add", "resync_delete_then_add", True, False, ("688fd5e21",), "v1.11.0",
        backports=("v1.8.14", "v1.9.14", "v1.10.7"),
        source="688fd5e21 pkg/controller/network_policy.go: no DeletePortGroup on update"),
    Fix("resync-recreates-address-sets", "resync_recreates_address_sets", True, False,
        ("095dca268",), "v1.12.0", backports=("v1.8.15", "v1.9.25", "v1.11.5"),
        source="095dca268 pkg/controller/network_policy.go: address sets updated, not deleted"),
    Fix("named-port-zero", "named_port_zero", True, False, ("f0d915136", "578b39219"), "v1.12.0",
        backports=("v1.11.2",),
        source="v1.11.1 pkg/ovs/ovn-nbctl-legacy.go:1858 `tcp.dst == port.Port.IntVal` (0)"),
    Fix("egress-before-lb", "egress_after_lb", False, True, ("b33086f74", "578b39219"), "v1.12.0",
        backports=("v1.11.2",), context=(("svc_ips_in_allow_sets", True),),
        source="v1.11.1 pkg/ovs/ovn-nbctl-legacy.go:1885-1891; v1.12.0 pkg/ovs/ovn-nb-acl.go:91,109"),
    Fix("late-pod-ignored", "late_pod_ignored", True, False, ("156d59767", "7db85edd0", "578b39219"),
        "v1.12.0", backports=("v1.11.2",),
        source="v1.11.1 pkg/controller/pod.go: policies re-enqueued only on a PodIP change; "
               "v1.16.2 pod.go:359-369 on the allocated annotation"),
    # Inside the matrix.
    Fix("digit-policy-name", "digit_name_unprefixed", True, False, ("a4545549d", "999dc618c"),
        "v1.13.0", backports=("v1.12.5",),
        source="v1.12.4 pkg/controller/network_policy.go:171-172; v1.16.2 :126-130 \"np\" prefix"),
    Fix("egress-rule0-empty", "empty_rule0_drops_isolation", True, False,
        ("3310f23dd", "0d0d6b832", "62bb1e5aa"), "v1.14.0", backports=("v1.12.32", "v1.13.6"),
        introduced="v1.12.1",
        source="v1.13.5 pkg/ovs/ovn-nb-acl.go:85 drop only with the `.0` set; "
               "v1.13.5 pkg/controller/network_policy.go:340-347 rule skipped when empty"),
    Fix("acl-tiers", "netpol_acl_tier", 0, 2, ("9e928d639",), "v1.13.0",
        source="v1.12.35 pkg/ovs/ovn-nb-acl.go:803 newACL without a tier; v1.13.0 "
               "pkg/util/const.go:161 NetpolACLTier = 2, pkg/ovs/ovn-nb-acl.go:44,63,104,116 "
               "and `Tier: tier` :876; v1.16.2 pkg/util/const.go:201, pkg/ovs/ovn-nb-acl.go:"
               "112,154,216,251 and `Tier: tier` :1022,1056"),
    Fix("gateway-allow", "gateway_allow", True, False, ("a4c9b09ad",), "v1.15.0",
        source="v1.14.41 pkg/ovs/ovn-nb-acl.go:209,215 `ip4.src == <gw>` allow-stateless; "
               "v1.16.2 :303,309 `icmp6` only (IPv6, standard enforcement)"),
    Fix("except-scope", "except_scope", "rule", "block", ("13f996011", "9c89b8e9d"), "v1.16.0",
        backports=("v1.15.5",),
        source="v1.15.4 pkg/controller/network_policy.go:205-245; v1.16.2 :207-263 and "
               "pkg/ovs/ovn-nb-acl.go:1271-1381 newIPBlockACLMatch"),
    Fix("ipblocks-unparenthesized", "ipblocks_unparenthesized", True, False,
        ("b0cf83470", "eeafcfdfd"), "v1.16.0", backports=("v1.15.8",), introduced="v1.15.5",
        source="v1.15.7 pkg/ovs/ovn-nb-acl.go:1279 no group; v1.16.2 :1347 NewGroupACLMatch"),
    Fix("unknown-named-port-acl", "unknown_named_port_acl", True, False, ("b54a61501", "9ca482dfc"),
        "v1.16.0", backports=("v1.15.9",), introduced="v1.12.0",
        source="v1.15.8 pkg/ovs/ovn-nb-acl.go:1188-1196 portID 0; v1.16.2 :1226-1236 continue"),
    Fix("svc-ips-in-allow-sets", "svc_ips_in_allow_sets", True, False, ("009e0c5a0",), "v1.16.0",
        introduced="v1.8.2",
        source="v1.15.24 pkg/controller/network_policy.go:686-694; v1.16.2 :671-743 pod IPs only"),
)
# Bugs no release fixed: every tag has them; `fixed:<id>` shows what a fix would change.
OPEN_BUGS: tuple[Fix, ...] = (
    Fix("label-resync-by-match-diff", "label_resync_by_match_diff", True, False, (), None,
        source="v1.16.2 pkg/controller/pod.go:350-356 and namespace.go:64-71: "
               "DiffStringSlice(oldNp, newNp) of podMatchNetworkPolicies/"
               "namespaceMatchNetworkPolicies (network_policy.go:745-836)"),
)
FIXES_BY_ID = {f.id: f for f in (*FIXES, *OPEN_BUGS)}


def profile_for_tag(tag: str, enforcement: str = "standard") -> Profile:
    """The behaviour of one Kube-OVN tag: every knob from the fixes that tag carries."""
    version_key(tag)
    tag = tag if tag.startswith("v") else f"v{tag}"
    values: dict[str, Any] = {}
    for fix in (*FIXES, *OPEN_BUGS):
        if not fix.history_only:
            values[fix.knob] = fix.value_at(tag)
    if enforcement == "lax" and version_key(tag) < (1, 15, 0):
        raise ValueError(f"NP_ENFORCEMENT=lax needs Kube-OVN v1.15.0 or later, not {tag}")
    name = tag + ("-lax" if enforcement == "lax" else "")
    return Profile(name, enforcement=enforcement, **values)


def history_profile(fix_id: str, fixed: bool = False) -> Profile:
    """The newest behaviour with one fix reverted (`history:<id>`), in the context the bug
    needs; with fixed=True the same context with the fix, i.e. what must pass."""
    fix = FIXES_BY_ID.get(fix_id)
    if fix is None:
        raise ValueError(f"unknown fix {fix_id!r}; known: {', '.join(FIXES_BY_ID)}")
    knobs = {**dict(fix.context), fix.knob: fix.fixed if fixed else fix.buggy}
    name = f"{NEWEST['v1.16']}+{'fixed' if fixed else 'history'}:{fix_id}"
    return replace(profile_for_tag(NEWEST["v1.16"]), name=name, **knobs)


DEFAULT: Profile = profile_for_tag(NEWEST["v1.16"])
ALIASES = {"pre-v1.11.2": "history:egress-before-lb"}  # the name earlier runs used


def get_profile(name: str) -> Profile:
    """A profile by tag ("v1.15.6", "1.15.6"), release line ("v1.15": its newest tag),
    `history:<fix id>`, an alias, and an optional "-lax" suffix for NP_ENFORCEMENT=lax."""
    key = ALIASES.get(name.strip(), name.strip())
    if "+" in key:  # a profile's own name, e.g. "v1.16.2+history:endport-ignored"
        key = key.split("+", 1)[1]
    if key.startswith(("history:", "fixed:")):
        kind, fix_id = key.split(":", 1)
        return history_profile(fix_id, fixed=kind == "fixed")
    enforcement = "standard"
    if key.endswith("-lax"):
        key, enforcement = key[:-4], "lax"
    key = key if key.startswith("v") else f"v{key}"
    if key in NEWEST:
        key = NEWEST[key]
    if not _TAG.match(key) or key.count(".") != 2:
        raise ValueError(f"unknown Kube-OVN profile {name!r}; give a tag (v1.15.6), a line "
                         f"({', '.join(NEWEST)}), history:<fix> ({', '.join(FIXES_BY_ID)}) "
                         f"or {', '.join(ALIASES)}")
    return profile_for_tag(key, enforcement)
