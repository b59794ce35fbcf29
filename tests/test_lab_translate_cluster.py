"""Cluster-scoped policies to OVN objects (translate_cluster.py), the controller's scheduling
(cluster_sync.py), and the lab's gates, on the ACL lists they produce: no OVN runs here.

Each object test quotes the Kube-OVN source it reproduces (v1.16.2, same from v1.13.0).
The last part runs every case of suites/test_cluster_policies.py through the controller model
and evaluates the resulting ACLs the way OVN does (tests/ovn_acl_model.py): the verdicts must
be the oracle's, except in the cases where Kube-OVN's source says otherwise, which must differ
(and are in clusters/known-issues.yaml); the mutated profiles must fail named cases.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kubeovn_conformance.backends.lab import cluster_support, cluster_sync
from kubeovn_conformance.backends.lab.profile import DEFAULT, FEATURES, MUTANTS, get_profile
from kubeovn_conformance.backends.lab.sync import in_tier, plan_commands, reconcile_policies
from kubeovn_conformance.backends.lab.sync import next_applied as np_next_applied
from kubeovn_conformance.backends.lab.translate import Acl, OvnPolicyState
from kubeovn_conformance.backends.lab.translate_cluster import (
    SyncError,
    address_set_name,
    policy_state,
    port_group_name,
)
from kubeovn_conformance.builders import namespace, pod, policy, select
from kubeovn_conformance.cluster_builders import (
    anp,
    banp,
    cnp,
    crule,
    named,
    peer_networks,
    peer_ns,
    peer_pods,
    subject,
    tcp,
    udp,
)
from kubeovn_conformance.cluster_policy import ADMIN, BASELINE
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.oracle import Oracle

sys.path.insert(0, str(Path(__file__).parent))
import ovn_acl_model

ROOT = Path(__file__).resolve().parent.parent
NSS = (namespace("x", team="a"), namespace("y", team="b"))
PODS = (pod("x", "a", {"app": "a"}, ip="10.16.0.10"), pod("x", "b", {"app": "b"}, ip="10.16.0.11"),
        pod("y", "c", {"app": "c"}, ip="10.16.0.20"), pod("y", "host", {"app": "h"}, ip="172.18.0.2",
                                                        host_network=True))
PORTS = {p.key: p.key.replace("/", ".") for p in PODS if not p.host_network}
AFTER_LB = (("apply-after-lb", "true"),)


def scenario(*cps) -> Scenario:  # type: ignore[no-untyped-def]
    return Scenario(NSS, PODS, (), (), cps)


# --------------------------------------------------------------------------- objects


def test_anp_objects() -> None:
    # admin_network_policy.go:189 pg = name with '-' as '.', external_ids anp=<name> (:190);
    # :223 sets "<pg>.ingress.<i>.<rule>.IPv4"; :247 priority 30000 - 100*p - i;
    # ovn-nb-acl.go:1706-1739 options apply-after-lb, parent=<pg>, tier 1; :1815-1872 matches.
    pol = anp("deny-y", 10, subject(select(team="a")), ingress=[
        crule("Deny", peer_ns(select(team="b")), ports=[tcp(80), udp(53, 60)], name="from-y"),
        crule("Pass", peer_pods(select(), select(app="b")))])
    st = policy_state(scenario(pol), pol, PORTS)
    pg = "deny.y"
    assert st.port_groups == {pg: frozenset({"x.a", "x.b"})}
    assert st.port_group_ids == {pg: {"anp": "deny-y"}}
    assert st.address_sets == {"deny.y.ingress.0.from.y.IPv4": frozenset({"10.16.0.20"}),
                               "deny.y.ingress.1..IPv4": frozenset({"10.16.0.11"})}
    assert st.address_set_ids["deny.y.ingress.0.from.y.IPv4"] == {"anp": "deny-y/ingress"}
    ids = (("parent", pg),)
    base0 = "outport == @deny.y && ip && ip4.src == $deny.y.ingress.0.from.y.IPv4"
    assert st.acls[pg] == {
        Acl("to-lport", 29000, f"{base0} && tcp.dst == 80", "drop", AFTER_LB, ids, 1),
        Acl("to-lport", 29000, f"{base0} && 53 <= udp.dst <= 60", "drop", AFTER_LB, ids, 1),
        Acl("to-lport", 28999, "outport == @deny.y && ip && ip4.src == $deny.y.ingress.1..IPv4",
            "pass", AFTER_LB, ids, 1)}


def test_banp_and_cnp_objects() -> None:
    # baseline_admin_network_policy.go:213 priority 1800 - i, tier 3 (ovn-nb-acl.go:1736);
    # cluster_network_policy.go:1187 30000 - 25*q - i, :1148 tier by spec.tier, :470
    # external_ids cnp=<pg>, :1134-1145 Accept -> allow-related.
    b = banp(subject(), egress=[crule("Deny", peer_ns()),
                                crule("Allow", peer_networks("10.0.0.0/8", "fd00::/8"))])
    st = policy_state(scenario(b), b, PORTS)
    assert st.port_group_ids == {"default": {"banp": "default"}}
    assert {(a.direction, a.priority, a.action, a.tier) for a in st.acls["default"]} == {
        ("from-lport", 1800, "drop", 3), ("from-lport", 1799, "allow-related", 3)}
    assert st.address_sets["default.egress.1..IPv4"] == {"10.0.0.0/8"}  # IPv6 has its own set
    assert "inport == @default && ip && ip4.dst == $default.egress.0..IPv4" in {
        a.match for a in st.acls["default"]}
    for tier, want in ((ADMIN, 1), (BASELINE, 3)):
        c = cnp("c-1", tier, 4, subject(), ingress=[crule("Accept", peer_ns())])
        st = policy_state(scenario(c), c, PORTS)
        (acl,) = st.acls["c.1"]
        assert (acl.priority, acl.tier, acl.action) == (29900, want, "allow-related")
        assert st.port_group_ids == {"c.1": {"cnp": "c.1"}}


def test_names_not_starting_with_a_letter_are_prefixed() -> None:
    # admin_network_policy.go:1093-1100 "anp" + name; cluster_network_policy.go:1121-1131 "cnp".
    assert port_group_name(anp("1st", 1, subject())) == "anp1st"
    assert port_group_name(cnp("9-x", ADMIN, 1, subject())) == "cnp9.x"
    assert port_group_name(anp("a-b", 1, subject())) == "a.b"


def test_a_rule_name_outside_the_address_set_alphabet_fails_the_sync() -> None:
    # ovs/util.go:19 `^[a-zA-Z_.][a-zA-Z_.0-9]*$`, checked by CreateAddressSet.
    pol = anp("p", 1, subject(), ingress=[crule("Deny", peer_ns(), name="from other tenants")])
    assert address_set_name(pol, "ingress", 0, pol.ingress[0]) == "p.ingress.0.from other tenants.IPv4"
    with pytest.raises(SyncError, match="invalid address set name"):
        policy_state(scenario(pol), pol, PORTS)


def test_named_ports_get_no_match_and_a_rule_of_named_ports_no_acl() -> None:
    # ovn-nb-acl.go:1846-1869: "Do not support NamedPort now" (klog error, no match).
    pol = anp("n", 1, subject(select(team="a")), ingress=[
        crule("Deny", peer_ns(), ports=[named("dns")]),
        crule("Deny", peer_ns(), ports=[named("web"), tcp(81)])])
    acls = policy_state(scenario(pol), pol, PORTS).acls["n"]
    assert {(a.priority, a.match.rsplit("&& ", 1)[1]) for a in acls} == {(29899, "tcp.dst == 81")}


def test_an_empty_peer_set_gets_an_address_set_and_no_acl() -> None:
    # admin_network_policy.go:238-262: the set is created, the ACL only with addresses.
    pol = anp("e", 1, subject(), ingress=[crule("Deny", peer_ns(select(team="none")))])
    st = policy_state(scenario(pol), pol, PORTS)
    assert st.address_sets == {"e.ingress.0..IPv4": frozenset()} and st.acls["e"] == frozenset()


def test_host_network_pods_are_neither_subjects_nor_peers() -> None:
    # admin_network_policy.go:618 `if pod.Spec.HostNetwork { continue }`.
    pol = anp("h", 1, subject(select(**{"kubernetes.io/metadata.name": "y"})),
              ingress=[crule("Deny", peer_pods(select(), select(app="h")))])
    st = policy_state(scenario(pol), pol, PORTS)
    assert st.port_groups["h"] == {"y.c"} and st.address_sets["h.ingress.0..IPv4"] == frozenset()


# --------------------------------------------------------------------------- profiles and gates


def test_features_per_release_line() -> None:
    by = {f.id: f for f in FEATURES}
    assert by["anp"].first == "v1.13.0" and by["cnp"].first == "v1.15.0"
    v12, v13, v14, v15 = (get_profile(t) for t in ("v1.12", "v1.13", "v1.14", "v1.15"))
    assert (v12.anp, v12.cnp, v12.netpol_tier) == (False, False, 0)
    assert (v13.anp, v13.cnp, v13.netpol_tier) == (True, False, 2)
    assert (v14.anp, v14.cnp) == (True, False)
    assert (v15.anp, v15.cnp, DEFAULT.anp, DEFAULT.cnp) == (True, True, True, True)
    assert (DEFAULT.cluster_pass_action, DEFAULT.cluster_tiers) == ("pass", (1, 3))


def test_mutants_are_profiles_the_runner_can_name() -> None:
    allow = get_profile("mutant:pass-as-allow")
    assert allow.name == "v1.16.2+mutant:pass-as-allow" and allow.tag == "v1.16.2"
    assert allow.cluster_pass_action == "allow-related"
    assert get_profile("mutant:tiers-swapped").cluster_tiers == (3, 1)
    assert get_profile(allow.name) == allow
    assert set(MUTANTS) == {"pass-as-allow", "tiers-swapped"}
    with pytest.raises(ValueError, match="unknown mutant 'nope'"):
        get_profile("mutant:nope")
    pol = anp("p", 1, subject(), ingress=[crule("Pass", peer_ns())])
    (acl,) = policy_state(scenario(pol), pol, PORTS, allow).acls["p"]
    assert acl.action == "allow-related"
    (acl,) = policy_state(scenario(pol), pol, PORTS, get_profile("mutant:tiers-swapped")).acls["p"]
    assert acl.tier == 3


def test_nb_schema_tier_check(tmp_path: Path) -> None:
    with_tier = tmp_path / "new.ovsschema"
    with_tier.write_text(json.dumps({"tables": {"ACL": {"columns": {"tier": {}, "match": {}}}}}))
    without = tmp_path / "old.ovsschema"
    without.write_text(json.dumps({"tables": {"ACL": {"columns": {"match": {}}}}}))
    assert cluster_support.nb_schema_has_acl_tiers(with_tier)
    assert not cluster_support.nb_schema_has_acl_tiers(without)
    assert not cluster_support.nb_schema_has_acl_tiers(tmp_path / "missing")


def test_skip_reasons_are_one_line_and_in_order(tmp_path: Path) -> None:
    a, c = anp("a", 1, subject()), cnp("c", ADMIN, 1, subject())
    nodes = anp("n", 1, subject(), egress=[crule("Allow", replace(peer_ns(), form="nodes", namespaces=None,
                                                                    nodes=select()))])
    schema = tmp_path / "nb.ovsschema"
    reason = cluster_support.skip_reason
    assert reason([], DEFAULT, False, schema) is None
    assert reason([a], DEFAULT, True, schema) is None
    assert "need Kube-OVN v1.13.0" in reason([a], get_profile("v1.12"), True, schema)  # type: ignore[operator]
    assert "needs Kube-OVN v1.15.0" in reason([c], get_profile("v1.14"), True, schema)  # type: ignore[operator]
    assert "the lab has no nodes" in reason([nodes], DEFAULT, True, schema)  # type: ignore[operator]
    no_tiers = reason([a], DEFAULT, False, schema)
    assert no_tiers is not None and f"{schema} has no ACL tier column" in no_tiers
    assert all("\n" not in (reason(p, DEFAULT, False, schema) or "") for p in ([a], [nodes]))


# --------------------------------------------------------------------------- into the NB database


def test_acls_carry_their_tier_and_tier_0_stays_out() -> None:
    pol = banp(subject(), ingress=[crule("Deny", peer_ns())])
    cmds = plan_commands(None, policy_state(scenario(pol), pol, PORTS))
    (create,) = [c for c in cmds if c[1:3] == ["create", "acl"]]
    assert "tier=3" in create and "options:\"apply-after-lb\"=\"true\"" in create
    np_only = OvnPolicyState({"p.x": frozenset()}, {}, {}, {},
                             {"p.x": frozenset({Acl("to-lport", 2000, "outport == @p.x && ip", "drop")})})
    assert not any(a.startswith("tier=") for c in plan_commands(None, np_only) for a in c)
    assert {a.tier for a in in_tier(np_only, 2).acls["p.x"]} == {2}  # type: ignore[union-attr]


def test_reconcile_puts_networkpolicy_in_its_tier_beside_the_cluster_objects() -> None:
    calls: list[tuple[str, ...]] = []
    s = scenario().with_policies([policy("x", "deny", select(), ingress=[])])
    pol = banp(subject(), ingress=[crule("Deny", peer_ns())])
    cluster = policy_state(scenario(pol), pol, PORTS)
    reconcile_policies(lambda *argv: calls.append(argv) or "", s, PORTS, netpol_tier=2,
                       others=(OvnPolicyState(), cluster))
    (argv,) = calls
    creates = " ".join(argv)
    assert "priority=2000" in creates and "tier=2" in creates and "priority=1800" in creates
    assert creates.count("tier=") == 2


# --------------------------------------------------------------------------- the controller


def applied_steps(*steps: Scenario) -> list[cluster_sync.ClusterApplied]:
    out, prev = [], None
    for s in steps:
        prev = cluster_sync.next_applied(s, PORTS, DEFAULT, prev)
        out.append(prev)
    return out


def test_a_taken_priority_refuses_the_second_policy_and_shared_numbers_collide() -> None:
    # admin_network_policy.go:541-547; ANPs and Admin CNPs share anpPrioNameMap
    # (cluster_network_policy.go:957-961), keyed by the bare priority number.
    first, second = anp("first", 5, subject()), anp("second", 5, subject(select(team="b")))
    (st,) = applied_steps(scenario(first, second))
    assert list(st.objects) == ["AdminNetworkPolicy/first"]
    assert "first already exists with the same priority" in st.stuck["AdminNetworkPolicy/second"]
    c = cnp("c", ADMIN, 5, subject())
    (st,) = applied_steps(scenario(first, c))
    assert "ClusterNetworkPolicy/c" in st.stuck
    base = cnp("b", BASELINE, 5, subject())
    (st,) = applied_steps(scenario(first, base))
    assert not st.stuck  # the Baseline tier has its own map


def test_limits_kube_ovn_adds_to_the_api() -> None:
    # AnpMaxPriority 99 (:551), CnpMaxPriority 399 (cluster :1070); the API allows 1000.
    (st,) = applied_steps(scenario(anp("high", 150, subject()), cnp("c", ADMIN, 400, subject())))
    assert not st.objects and set(st.stuck) == {"AdminNetworkPolicy/high", "ClusterNetworkPolicy/c"}


def test_a_priority_swap_leaves_both_refused_with_their_old_objects() -> None:
    a = anp("a", 5, subject(), [crule("Allow", peer_ns())])
    d = anp("d", 6, subject(), [crule("Deny", peer_ns())])
    before, after = applied_steps(scenario(a, d), scenario(replace(a, priority=6), replace(d, priority=5)))
    assert set(after.stuck) == {"AdminNetworkPolicy/a", "AdminNetworkPolicy/d"}
    assert after.state(PORTS.values()) == before.state(PORTS.values())
    # Deleting d does not free a: handleDeleteAnp drops the map entry at d's NEW priority (5,
    # held by a) and d's entry at 6 stays, so a is refused until the controller restarts.
    (_, _, last) = applied_steps(scenario(a, d), scenario(replace(a, priority=6), replace(d, priority=5)),
                                 scenario(replace(a, priority=6)))
    assert set(last.stuck) == {"AdminNetworkPolicy/a"}
    assert "d already exists" in last.stuck["AdminNetworkPolicy/a"]
    # Two separate updates (one priority at a time) go through.
    steps = applied_steps(scenario(a, d), scenario(replace(a, priority=7), d),
                          scenario(replace(a, priority=7), replace(d, priority=5)),
                          scenario(replace(a, priority=6), replace(d, priority=5)))
    assert not steps[-1].stuck
    assert {acl.priority for acl in steps[-1].state(PORTS.values()).acls["a"]} == {29400}


def test_a_renamed_rule_keeps_an_acl_naming_a_deleted_set() -> None:
    # enqueueUpdateCnp: no ACL rebuild for a name change (cluster_network_policy.go:920-954);
    # handleUpdateCnp deletes the old set (:329-340) under the ACL that names it.
    pol = cnp("c", ADMIN, 1, subject(), [crule("Deny", peer_ns(), name="one")])
    renamed = replace(pol, ingress=(replace(pol.ingress[0], name="two"),))
    _, after = applied_steps(scenario(pol), scenario(renamed))
    st = after.state(PORTS.values())
    (acl,) = st.acls["c"]
    assert "$c.ingress.0.one.IPv4" in acl.match
    assert "c.ingress.0.one.IPv4" not in st.address_sets and "c.ingress.0.two.IPv4" in st.address_sets


def test_label_events_resync_by_the_new_labels_only() -> None:
    # pod.go:375 updateAnpsByLabelsMatch(nsLabels, newPod.Labels).
    pol = anp("s", 1, subject(select(), select(app="a")), [crule("Deny", peer_ns(select(team="b")))])
    moved = replace(scenario(pol), pods=tuple(replace(p, labels=(("app", "z"),)) if p.key == "x/a" else p
                                              for p in PODS))
    _, after = applied_steps(scenario(pol), moved)
    assert after.state(PORTS.values()).port_groups["s"] == {"x.a"}  # stale: x/a left the subject
    joined = replace(scenario(pol), pods=tuple(replace(p, labels=(("app", "a"),)) if p.key == "x/b" else p
                                               for p in PODS))
    _, after = applied_steps(scenario(pol), joined)
    assert after.state(PORTS.values()).port_groups["s"] == {"x.a", "x.b"}


def test_one_label_event_resyncs_only_the_last_part_it_matches() -> None:
    # admin_network_policy.go:942-968: one `changed` pointer per policy, its field set to
    # subject, then ingress, then egress; the work queue keeps one entry per pointer.
    pol = anp("s", 1, subject(select(), select(app="new")),
              [crule("Deny", peer_pods(select(), select(app="new")))])
    relabelled = replace(scenario(pol), pods=tuple(replace(p, labels=(("app", "new"),)) if p.key == "x/b"
                                                   else p
                                                   for p in PODS))
    _, after = applied_steps(scenario(pol), relabelled)
    st = after.state(PORTS.values())
    assert st.address_sets["s.ingress.0..IPv4"] == {"10.16.0.11"}  # the ingress rule: re-synced
    assert st.port_groups["s"] == frozenset()  # the subject: not


def test_deleting_a_refused_policy_frees_the_holders_priority() -> None:
    # handleDeleteAnp deletes anpPrioNameMap[deleted.Spec.Priority] whoever holds it (:384-386).
    first, second, third = (anp(n, 5, subject()) for n in ("first", "second", "third"))
    *_, last = applied_steps(scenario(first, second), scenario(first), scenario(first, third))
    assert "AdminNetworkPolicy/third" in last.objects and not last.stuck


# --------------------------------------------------------------------------- every case, as OVN would


def _suite_cases():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT))
    try:
        from suites import test_cluster_policies
    finally:
        sys.path.remove(str(ROOT))
    return test_cluster_policies.CASES


SUITE_CASES = _suite_cases()
# Where Kube-OVN's source makes the lab disagree with the oracle (clusters/known-issues.yaml).
KUBE_OVN_DIFFERS = {
    "cluster-anp-named-ports": "namedPort gets no match (ovn-nb-acl.go:1846)",
    "cluster-anp-same-priority-disjoint-subjects": "the second policy at a taken priority is refused",
    "cluster-anp-and-cnp-same-priority-number": "ANPs and Admin CNPs share one priority map",
    "cluster-anp-priority-above-99": "AnpMaxPriority 99",
    "cluster-anp-priority-swap": "both policies refused, old ACLs kept",
    "cluster-cnp-priority-swap": "both policies refused, old ACLs kept",
    "cluster-cnp-rule-renamed": "the ACL names a deleted address set",
    "cluster-anp-subject-relabelled-out": "no re-sync for a pod leaving a subject",
}


def lab_verdicts(case, profile=DEFAULT) -> list[dict[tuple, tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """Per step: (oracle verdict, verdict of the ACLs the lab would hold) of every pod probe
    whose oracle verdict is allow or deny; the lab's controller model runs through the steps."""
    workload = case.workload.with_pod_ips(
        {p.key: f"10.16.0.{10 + i}" for i, p in enumerate(case.workload.pods)})
    lsps = {p.key: f"{p.name}.{p.namespace}" for p in workload.pods}
    np_applied, applied, out = None, None, []
    for step in case.steps:
        s = step.build(workload)
        np_applied = np_next_applied(s, lsps, profile, np_applied)
        applied = cluster_sync.next_applied(s, lsps, profile, applied)
        state = in_tier(np_applied.state, profile.netpol_tier).merged(applied.state(lsps.values()))  # type: ignore[union-attr]
        oracle, got = Oracle(s), {}
        for p in oracle.probes():
            if p.path != "pod":
                continue
            want = oracle.expect(p).verdict
            if want == "undefined":
                continue
            c, d = s.pod(p.client), s.pod(p.target)
            lab = ovn_acl_model.pod_to_pod(state, (lsps[c.key], c.ip), (lsps[d.key], d.ip),
                                           p.port, p.protocol)
            got[(p.client, p.target, p.port, p.protocol)] = (want, lab)
        out.append(got)
    return out


@pytest.mark.parametrize("case", SUITE_CASES, ids=lambda c: c.id)
def test_the_lab_agrees_with_the_oracle_except_where_kube_ovn_differs(case) -> None:  # type: ignore[no-untyped-def]
    wrong = [(step.name, k, v) for step, cells in zip(case.steps, lab_verdicts(case), strict=True)
             for k, v in cells.items() if v[0] != v[1]]
    if case.id in KUBE_OVN_DIFFERS:
        assert wrong, f"{case.id}: expected Kube-OVN to differ ({KUBE_OVN_DIFFERS[case.id]})"
    else:
        assert not wrong, wrong[:5]


@pytest.mark.parametrize(("mutant", "fails"), [
    # Pass as allow-related differs only where the passed traffic meets a deny later.
    ("pass-as-allow", {"cluster-cnp-pass-to-networkpolicy-then-baseline",
                       "cluster-example-admin-pass-to-networkpolicy"}),
    # Admin and Baseline swapped around NetworkPolicy: every case where two tiers meet.
    ("tiers-swapped", {"cluster-cnp-pass-to-networkpolicy-then-baseline", "cluster-cnp-priority-field",
                       "cluster-example-admin-deny-beats-networkpolicy",
                       "cluster-example-baseline-default-deny",
                       "cluster-example-cnp-tiers"}),
])
def test_mutated_translations_fail_named_cases(mutant: str, fails: set[str]) -> None:
    profile = get_profile(f"mutant:{mutant}")
    failing = {case.id for case in SUITE_CASES if case.id not in KUBE_OVN_DIFFERS
               and any(v[0] != v[1] for cells in lab_verdicts(case, profile) for v in cells.values())}
    assert fails <= failing, fails - failing


# --------------------------------------------------------------------------- the backends' gates


def _case(case_id: str):  # type: ignore[no-untyped-def]
    return next(c for c in SUITE_CASES if c.id == case_id)


def test_the_lab_backend_skips_cluster_cases_without_tiers_and_runs_the_rest(tmp_path: Path) -> None:
    from kubeovn_conformance.backends.lab.backend import LabBackend
    from kubeovn_conformance.runner import Case, Step

    old, new = tmp_path / "old.ovsschema", tmp_path / "new.ovsschema"
    old.write_text(json.dumps({"tables": {"ACL": {"columns": {"match": {}}}}}))
    new.write_text(json.dumps({"tables": {"ACL": {"columns": {"match": {}, "tier": {}}}}}))
    cluster = _case("cluster-cnp-priority-field")
    deny = policy("gryffindor", "d", select(), ingress=[])
    plain = Case("np-only", "ingress", cluster.workload,
                 (Step("initial", lambda w: w.with_policies([deny])),))
    lab = LabBackend(profile=DEFAULT, lab_dir=tmp_path, nb_schema=old)
    reason = lab.skip_reason(cluster)
    assert reason is not None and "has no ACL tier column" in reason and "\n" not in reason
    assert lab.skip_reason(plain) is None
    lab = LabBackend(profile=DEFAULT, lab_dir=tmp_path, nb_schema=new)
    assert lab.skip_reason(cluster) is None and lab._netpol_tier() == 2
    lab = LabBackend(profile=get_profile("v1.14"), lab_dir=tmp_path, nb_schema=new)
    assert "ClusterNetworkPolicy needs Kube-OVN v1.15.0" in (lab.skip_reason(cluster) or "")
    assert lab.skip_reason(_case("cluster-anp-priority-swap")) is None  # ANPs exist on 1.14
    lab = LabBackend(profile=get_profile("v1.12"), lab_dir=tmp_path, nb_schema=new)
    assert lab._netpol_tier() == 0  # no tiers in Kube-OVN before v1.13


def test_known_issues_name_exactly_the_cases_where_kube_ovn_differs() -> None:
    from kubeovn_conformance.report.known import find_known, load_known

    issues = load_known(ROOT / "clusters" / "known-issues.yaml")
    known = {c.id for c in SUITE_CASES if find_known(issues, c.id, "overlay", "lab:v1.16.2", "lab")}
    assert known == set(KUBE_OVN_DIFFERS)
