"""Patch-level profiles: one test per knob. Each quotes the ACL match Kube-OVN builds from
its source at the tags on both sides of the change, checks the lab builds that match, and
that `get_profile` differs between the last affected and the first fixed tag."""

from __future__ import annotations

import pytest

from kubeovn_conformance.backends.lab.profile import (
    DEFAULT,
    FIXES,
    FIXES_BY_ID,
    get_profile,
    profile_for_tag,
    version_key,
)
from kubeovn_conformance.backends.lab.translate import desired_state
from kubeovn_conformance.model import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Rule,
    Scenario,
)

sel = LabelSelector.of
PODS = (Pod("x", "a", (("app", "a"),), (ContainerPort(8000, "TCP", "http"),), "10.16.0.10"),
        Pod("x", "b", (("app", "b"),), (), "10.16.0.11"),
        Pod("y", "c", (("app", "c"),), (), "10.16.0.20"))
PORTS = {p.key: p.key.replace("/", ".") for p in PODS}


def acl_matches(policy: NetworkPolicy, tag: str) -> set[str]:
    st = desired_state(Scenario((), PODS, (), (policy,)), PORTS, get_profile(tag))
    return {a.match for acls in st.acls.values() for a in acls}


def boundary(fix_id: str, line: str) -> tuple[str, str]:
    """(last affected, first fixed) tag of a fix on a release line."""
    fix = FIXES_BY_ID[fix_id]
    first = next(t for t in (*fix.backports, fix.mainline) if t.startswith(line + "."))
    major, minor, patch = version_key(first)
    return f"v{major}.{minor}.{patch - 1}", first


@pytest.mark.parametrize("fix", FIXES, ids=lambda f: f.id)
def test_every_fix_changes_its_knob_between_the_last_affected_and_first_fixed_tag(fix) -> None:  # type: ignore[no-untyped-def]
    firsts = [t for t in (*fix.backports, fix.mainline or "") if t and version_key(t)[2] > 0]
    for first in firsts:
        major, minor, patch = version_key(first)
        before, after = profile_for_tag(f"v{major}.{minor}.{patch - 1}"), profile_for_tag(first)
        if fix.history_only or (fix.introduced and version_key(fix.introduced) >= version_key(first)):
            continue
        if fix.introduced and version_key(f"v{major}.{minor}.{patch - 1}") < version_key(fix.introduced):
            continue
        assert getattr(before, fix.knob) == fix.buggy and getattr(after, fix.knob) == fix.fixed, first
        assert before != after


def test_except_scope_v1_15_4_vs_v1_15_5() -> None:
    # v1.15.4 pkg/ovs/ovn-nb-acl.go:1150-1160: one ACL, every except in the rule's except set.
    # v1.16.2 pkg/ovs/ovn-nb-acl.go:1293-1335 (newIPBlockACLMatch): the ipBlock gets its own
    # ACL with its excepts inline; the selector ACL keeps the (now always empty) except set.
    pol = NetworkPolicy("x", "p", sel({"app": "a"}), ingress=(Rule((
        Peer(sel({"app": "b"})), Peer(ip_block=IPBlock("10.16.0.0/16", ("10.16.0.11/32",))))),))
    assert boundary("except-scope", "v1.15") == ("v1.15.4", "v1.15.5")
    assert "outport == @p.x && ip && ip4.src == $p.x.ingress.allow.IPv4.0 && " \
           "ip4.src != $p.x.ingress.except.IPv4.0" in acl_matches(pol, "v1.15.4")
    new = acl_matches(pol, "v1.15.5")
    assert "outport == @p.x && ip && (ip4.src == 10.16.0.0/16 && ip4.src != {10.16.0.11/32})" in new
    assert "outport == @p.x && ip && ip4.src == $p.x.ingress.allow.IPv4.0 && " \
           "ip4.src != $p.x.ingress.except.IPv4.0" in new
    st = desired_state(Scenario((), PODS, (), (pol,)), PORTS, get_profile("v1.15.5"))
    assert st.address_sets["p.x.ingress.allow.IPv4.0"] == {"10.16.0.11"}
    assert st.address_sets["p.x.ingress.except.IPv4.0"] == frozenset()
    assert get_profile("v1.14.41").except_scope == "rule" and DEFAULT.except_scope == "block"


def test_ipblocks_parenthesized_from_v1_15_8() -> None:
    # v1.15.7 pkg/ovs/ovn-nb-acl.go:1279 NewAndACLMatch(allIPMatch, ipBlockL3Match), no group:
    #   `outport == @pg && ip && ip4.src == A || ip4.src == B` (OVN rejects it).
    # v1.15.8 (eeafcfdfd) / v1.16.2 :1347 NewGroupACLMatch(ipBlockL3Match).
    pol = NetworkPolicy("x", "p", sel({"app": "a"}), ingress=(Rule((
        Peer(ip_block=IPBlock("10.16.0.20/32")), Peer(ip_block=IPBlock("10.16.0.11/32")))),))
    assert "outport == @p.x && ip && ip4.src == 10.16.0.20/32 || ip4.src == 10.16.0.11/32" \
        in acl_matches(pol, "v1.15.7")
    assert "outport == @p.x && ip && (ip4.src == 10.16.0.20/32 || ip4.src == 10.16.0.11/32)" \
        in acl_matches(pol, "v1.15.8")
    assert not get_profile("v1.15.4").ipblocks_unparenthesized  # no inline ipBlock ACL yet


def test_end_port_range_in_kube_ovn_format() -> None:
    # v1.16.2 pkg/ovs/ovn-nb-acl.go:1255-1261: NewACLMatch(tcpKey, "<=", port, endPort)
    # renders `81 <= tcp.dst <= 90` (pkg/ovs/util.go:300-313).
    pol = NetworkPolicy("x", "r", sel({"app": "a"}), ingress=(Rule(None, (PolicyPort("TCP", 81, 90),)),))
    assert "outport == @r.x && ip && ip4.src == $r.x.ingress.allow.IPv4.0 && " \
           "ip4.src != $r.x.ingress.except.IPv4.0 && 81 <= tcp.dst <= 90" in acl_matches(pol, "v1.16.2")
    assert any(m.endswith("&& tcp.dst == 81") for m in acl_matches(pol, "history:endport-ignored"))


def test_unknown_named_port_acl_until_v1_15_9() -> None:
    # v1.15.8 pkg/ovs/ovn-nb-acl.go:1188-1196: portID stays 0 for an unknown name;
    # v1.16.2 :1226-1236 `continue` (9ca482dfc, b54a61501): no ACL.
    pol = NetworkPolicy("x", "n", sel({"app": "a"}), ingress=(Rule(None, (PolicyPort("TCP", "nope"),)),))
    assert any(m.endswith("&& tcp.dst == 0") for m in acl_matches(pol, "v1.15.8"))
    assert not any("tcp.dst" in m for m in acl_matches(pol, "v1.15.9"))
    assert get_profile("v1.14.41").unknown_named_port_acl  # never changed on 1.12-1.14


def test_digit_names_prefixed_from_v1_12_5() -> None:
    # v1.12.4 pkg/controller/network_policy.go:171-172 pgName = "<name>.<ns>";
    # v1.12.5 :165, v1.16.2 :126-130 npName = "np" + name when it does not start with a letter.
    pol = NetworkPolicy("x", "1-deny", sel({}), ingress=())
    assert acl_matches(pol, "v1.12.4") == {"outport == @1.deny.x && ip"}
    assert acl_matches(pol, "v1.12.5") == {"outport == @np1.deny.x && ip"}
    assert get_profile("v1.13.0").digit_name_unprefixed is False


def test_egress_drop_needs_rule0_addresses_until_the_fix() -> None:
    # v1.13.5 pkg/ovs/ovn-nb-acl.go:85: the egress drop `inport == @pg && ip` comes only with
    # rule 0's `.0` set, and network_policy.go:340-347 skips a rule without addresses.
    # v1.13.6 (62bb1e5aa), v1.14.0 (3310f23dd): the drop is always built.
    pol = NetworkPolicy("x", "e", sel({"app": "a"}), egress=(
        Rule((Peer(sel({"app": "nobody"})),)), Rule((Peer(sel({"app": "b"})),))), policy_types=("Egress",))
    assert "inport == @e.x && ip" not in acl_matches(pol, "v1.13.5")
    assert "inport == @e.x && ip" in acl_matches(pol, "v1.13.6")
    assert "inport == @e.x && ip" not in acl_matches(pol, "v1.12.31")
    assert "inport == @e.x && ip" in acl_matches(pol, "v1.12.32")
    assert "inport == @e.x && ip" in acl_matches(pol, "v1.14.0")


def test_gateway_allow_until_v1_15_0_and_cluster_ips_until_v1_16_0() -> None:
    # v1.14.41 pkg/ovs/ovn-nb-acl.go:209,215: `ip4.src == <gw>` allow-stateless, no port
    # group term; a4c9b09ad (v1.15.0) keeps only icmp6 (IPv6 only).
    # v1.15.24 pkg/controller/network_policy.go:686-694 adds ClusterIPs; 009e0c5a0 (v1.16.0).
    assert get_profile("v1.14.41").gateway_allow and not get_profile("v1.15.0").gateway_allow
    assert get_profile("v1.15.24").svc_ips_in_allow_sets and not get_profile("v1.16.0").svc_ips_in_allow_sets


def test_history_profiles_revert_one_fix_on_the_newest_behaviour() -> None:
    h = get_profile("history:endport-ignored")
    assert h.endport_ignored and h.tag == DEFAULT.tag
    assert {k for k, v in h.knobs().items() if v != getattr(DEFAULT, k)} == {"endport_ignored"}
    assert get_profile("fixed:label-resync-by-match-diff").label_resync_by_match_diff is False
    assert DEFAULT.label_resync_by_match_diff  # an open bug: every tag has it


# --------------------------------------------------------------------------- older knobs


def test_except_as_drop_acl_before_v1_7_1() -> None:
    # v1.7.0 pkg/ovs/ovn-nbctl.go:964: `ip4.src == $<..>.ingress.except.IPv4.<i> && ...` drop at
    # 2002 (const.go:75); v1.7.1 :975-982 folds `ip4.src != $except` into the 2001 allow.
    pol = NetworkPolicy("x", "p", sel({"app": "a"}), ingress=(Rule((
        Peer(ip_block=IPBlock("10.16.0.0/16", ("10.16.0.11/32",))),)),))
    st = desired_state(Scenario((), PODS, (), (pol,)), PORTS, get_profile("history:except-drop-acl"))
    drops = {(a.priority, a.match) for a in st.acls["p.x"] if a.action == "drop"}
    assert (2002, "outport == @p.x && ip && ip4.src == $p.x.ingress.except.IPv4.0") in drops
    assert "outport == @p.x && ip && ip4.src == $p.x.ingress.allow.IPv4.0" in acl_matches(
        pol, "history:except-drop-acl")


def test_egress_except_matched_with_eq_before_v1_8_2() -> None:
    # v1.8.1 pkg/ovs/ovn-nbctl.go:1154: `ip4.dst == $allow && ip4.dst == $except && tcp.dst == 80`;
    # v1.8.2 :1172 `!=` (168a7c976, 7e775fa6a).
    pol = NetworkPolicy("x", "e", sel({"app": "a"}), egress=(Rule((
        Peer(ip_block=IPBlock("10.16.0.0/16", ("10.16.0.11/32",))),), (PolicyPort("TCP", 80),)),),
        policy_types=("Egress",))
    assert ("inport == @e.x && ip && ip4.dst == $e.x.egress.allow.IPv4.0 && "
            "ip4.dst == $e.x.egress.except.IPv4.0 && tcp.dst == 80") in acl_matches(
        pol, "history:egress-except-eq")
    assert not get_profile("v1.8.2").egress_except_eq and get_profile("v1.8.1").egress_except_eq


def test_named_ports_became_port_zero_before_v1_11_2() -> None:
    # v1.11.1 pkg/ovs/ovn-nbctl-legacy.go:1858 `tcp.dst == %d` with port.Port.IntVal (0 for a
    # name); 578b39219 (v1.11.2) resolves names through the namespace map.
    pol = NetworkPolicy("x", "n", sel({"app": "a"}), ingress=(Rule(None, (PolicyPort("TCP", "http"),)),))
    assert any(m.endswith("&& tcp.dst == 0") for m in acl_matches(pol, "v1.11.1"))
    assert any(m.endswith("&& tcp.dst == 8000") for m in acl_matches(pol, "v1.11.2"))


def test_resync_transactions_of_old_controllers() -> None:
    """688fd5e21 / 095dca268: an update used to go through a state without the policy's ACLs
    (or without its address sets); the lab writes that state in its own transaction and
    calls `between` there."""
    from kubeovn_conformance.backends.lab.sync import reconcile_policies

    calls: list[tuple[str, ...]] = []
    seen: list[int] = []
    one = NetworkPolicy("x", "p", sel({"app": "a"}), ingress=(Rule((Peer(sel({"app": "b"})),)),))
    two = NetworkPolicy("x", "p", sel({"app": "a"}), ingress=(Rule((Peer(sel({"app": "b"})),),
                                                                   (PolicyPort("TCP", 80),)),))
    for fix, gone in (("resync-delete-then-add", "acl-del"), ("resync-recreates-address-sets",
                                                              "destroy address_set")):
        calls.clear()
        prof = get_profile(f"history:{fix}")
        first = reconcile_policies(lambda *a: calls.append(a) or "", Scenario((), PODS, (), (one,)),
                                   PORTS, prof)
        reconcile_policies(lambda *a: calls.append(a) or "", Scenario((), PODS, (), (two,)), PORTS,
                           prof, first, between=lambda: seen.append(len(calls)))
        assert len(calls) == 3 and seen[-1] == 2  # create; then the middle state, then the new one
        assert gone in " ".join(calls[1])
        calls.clear()
        fixed = get_profile(f"fixed:{fix}")
        first = reconcile_policies(lambda *a: calls.append(a) or "", Scenario((), PODS, (), (one,)),
                                   PORTS, fixed)
        reconcile_policies(lambda *a: calls.append(a) or "", Scenario((), PODS, (), (two,)), PORTS,
                           fixed, first, between=lambda: seen.append(-1))
        assert len(calls) == 2 and seen[-1] != -1


def test_label_resync_keeps_the_stale_allow_set_unless_fixed() -> None:
    """pod.go v1.16.2:350-357: x/b leaves the peer selector but stays selected by {}: the
    policy is not re-synced and x/b's IP stays in the allow set."""
    from kubeovn_conformance.backends.lab.sync import next_applied

    blue = NetworkPolicy("x", "blue", sel({}), ingress=(Rule((Peer(sel({"team": "blue"})),)),))
    pods = tuple(Pod(p.namespace, p.name, (*p.labels, ("team", "blue")), p.ports, p.ip)
                 if p.key == "x/b" else p for p in PODS)
    before = Scenario((), pods, (), (blue,))
    after = Scenario((), PODS, (), (blue,))
    for name, stale in (("v1.16.2", True), ("fixed:label-resync-by-match-diff", False)):
        prof = get_profile(name)
        applied = next_applied(after, PORTS, prof, next_applied(before, PORTS, prof, None))
        assert ("10.16.0.11" in applied.state.address_sets["blue.x.ingress.allow.IPv4.0"]) is stale


def test_late_pod_left_out_of_the_port_group_before_v1_11_2() -> None:
    from kubeovn_conformance.backends.lab.sync import next_applied

    deny = NetworkPolicy("x", "deny", sel({}), ingress=())
    late = Pod("x", "late", (("app", "late"),), (), "10.16.0.30")
    ports = {**PORTS, "x/late": "x.late"}
    for name, member in (("history:late-pod-ignored", False), ("v1.16.2", True)):
        prof = get_profile(name)
        first = next_applied(Scenario((), PODS, (), (deny,)), ports, prof, None)
        grown = next_applied(Scenario((), (*PODS, late), (), (deny,)), ports, prof, first)
        assert ("x.late" in grown.state.port_groups["deny.x"]) is member
