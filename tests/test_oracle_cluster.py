"""The oracle on cluster-scoped policies: the user stories of the network-policy-api docs, the
expectations of its conformance tests (both re-expressed here in this suite's model), and the
reasons and deciders it reports.

Sources (read at kubernetes-sigs/network-policy-api 3910463a5686, the pseudo-version Kube-OVN
v1.15/v1.16 pin): site-src/user-story-examples/user-story-{1,2,3,5}.yaml and
conformance/tests/*-standard-*.go with conformance/base/{admin,baseline}_tier/*.yaml. Each test
names the upstream test it re-expresses; the subtests' pokes are the (client, server, port,
protocol, allowed) tuples below, in the order upstream runs them (its rule swaps accumulate).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from kubeovn_conformance.builders import container_port, namespace, peer, pod, policy, port, rule, select
from kubeovn_conformance.cluster_builders import (
    anp,
    banp,
    cnp,
    crule,
    house,
    named,
    peer_networks,
    peer_ns,
    peer_pods,
    policy_api_ground,
    sctp,
    subject,
    tcp,
    udp,
)
from kubeovn_conformance.cluster_policy import ADMIN, BASELINE, ClusterPolicy
from kubeovn_conformance.model import NS_NAME_LABEL, Scenario, scenario_from_documents
from kubeovn_conformance.oracle import ALLOW, DENY, UNDEFINED, Oracle, Probe

GROUND = policy_api_ground(("TCP", "UDP", "SCTP"))
G, S, H, R = "gryffindor", "slytherin", "hufflepuff", "ravenclaw"
WHO = {G: "harry", S: "draco", H: "cedric", R: "luna"}


def p(house_name: str, i: int) -> str:
    return f"{house_name}/{WHO[house_name]}-{i}"


def allowed(s: Scenario, client: str, server: str, port: int, proto: str) -> bool | None:
    verdict = Oracle(s).pod_verdict(s.pod(client), s.pod(server), port, proto)[0]
    return {ALLOW: True, DENY: False}.get(verdict)


def check(s: Scenario, pokes: list[tuple[str, str, int, str, bool]]) -> None:
    got = [(c, d, port, proto, allowed(s, c, d, port, proto)) for c, d, port, proto, _ in pokes]
    assert got == pokes


def with_rules(pol: ClusterPolicy, ingress=None, egress=None) -> ClusterPolicy:  # type: ignore[no-untyped-def]
    return replace(pol, ingress=pol.ingress if ingress is None else tuple(ingress),
                   egress=pol.egress if egress is None else tuple(egress))


def swap(rules, i: int, j: int) -> list:  # type: ignore[no-untyped-def]
    out = list(rules)
    out[i], out[j] = out[j], out[i]
    return out


def as_anp(pol: ClusterPolicy) -> ClusterPolicy:
    """The same Admin-tier policy as a v1alpha1 AdminNetworkPolicy (Accept is Allow there)."""
    def conv(rules):  # type: ignore[no-untyped-def]
        return [replace(r, action="Allow" if r.action == "Accept" else r.action) for r in rules]
    return anp(pol.name, pol.priority or 0, pol.subject, conv(pol.ingress), conv(pol.egress))


def ns_of(h: str):  # type: ignore[no-untyped-def]
    return select(**{NS_NAME_LABEL: h})


# --------------------------------------------------------------------------- conformance: Admin ingress


def ingress_tcp(tier: str) -> ClusterPolicy:
    """conformance/base/{admin,baseline}_tier/standard-ingress-tcp-rules.yaml: subject
    gryffindor; rules in this order (the Baseline one has no Pass rules)."""
    rules = [crule("Accept", peer_ns(ns_of(R)), name="allow-from-ravenclaw-everything"),
             crule("Deny", peer_ns(ns_of(R)), name="deny-from-ravenclaw-everything"),
             crule("Pass", peer_ns(ns_of(R)), name="pass-from-ravenclaw-everything"),
             crule("Deny", peer_ns(ns_of(S)), ports=[tcp(80)], name="deny-from-slytherin-at-port-80"),
             crule("Pass", peer_ns(ns_of(S)), ports=[tcp(80)], name="pass-from-slytherin-at-port-80"),
             crule("Accept", peer_ns(ns_of(H)), ports=[tcp(80)], name="allow-from-hufflepuff-at-port-80"),
             crule("Deny", peer_ns(ns_of(H)), name="deny-from-hufflepuff-everything-else")]
    if tier == BASELINE:
        rules = [r for r in rules if r.action != "Pass"]
        return cnp("default", BASELINE, 10, subject(ns_of(G)), ingress=rules)
    return cnp("ingress-tcp", ADMIN, 3, subject(ns_of(G)), ingress=rules)


@pytest.mark.parametrize("kind", ["CNP", "ANP"])
def test_admin_ingress_tcp_rule_order_and_swaps(kind: str) -> None:
    """CNPAdminTierIngressTCP (admin-network-policy-standard-ingress-tcp-rules.go); the same
    policy as an ANP must behave the same."""
    pol = ingress_tcp(ADMIN)
    conv = as_anp if kind == "ANP" else (lambda x: x)

    def run(pol: ClusterPolicy, pokes) -> None:  # type: ignore[no-untyped-def]
        check(GROUND.with_cluster_policies([conv(pol)]), pokes)

    # rule 0 (Accept) comes before rule 1 (Deny)
    run(pol, [(p(R, 0), p(G, 0), 80, "TCP", True), (p(R, 1), p(G, 0), 8080, "TCP", True)])
    # hufflepuff: rule 5 accepts 80, rule 6 denies the rest
    run(pol, [(p(H, 0), p(G, 1), 80, "TCP", True), (p(H, 1), p(G, 1), 8080, "TCP", False)])
    pol = with_rules(pol, ingress=swap(pol.ingress, 0, 1))  # Deny now first
    run(pol, [(p(R, 0), p(G, 1), 80, "TCP", False), (p(R, 1), p(G, 1), 8080, "TCP", False)])
    # slytherin: rule 3 denies 80; 8080 matches no rule, so the default allows it
    run(pol, [(p(S, 0), p(G, 0), 80, "TCP", False), (p(S, 1), p(G, 0), 8080, "TCP", True)])
    pol = with_rules(pol, ingress=swap(pol.ingress, 0, 2))  # Pass now first
    run(pol, [(p(R, 0), p(G, 0), 80, "TCP", True), (p(R, 1), p(G, 0), 8080, "TCP", True)])
    pol = with_rules(pol, ingress=swap(pol.ingress, 3, 4))  # Pass before Deny for slytherin:80
    run(pol, [(p(S, 0), p(G, 0), 80, "TCP", True), (p(S, 1), p(G, 0), 8080, "TCP", True)])


def test_baseline_ingress_tcp_rule_order() -> None:
    """CNPBaselineTierIngressTCP (baseline-admin-network-policy-standard-ingress-tcp-rules.go)."""
    pol = ingress_tcp(BASELINE)
    check(GROUND.with_cluster_policies([pol]), [
        (p(R, 0), p(G, 0), 80, "TCP", True), (p(R, 1), p(G, 0), 8080, "TCP", True),
        (p(H, 0), p(G, 1), 80, "TCP", True), (p(H, 1), p(G, 1), 8080, "TCP", False)])
    pol = with_rules(pol, ingress=swap(pol.ingress, 0, 1))
    check(GROUND.with_cluster_policies([pol]), [
        (p(R, 0), p(G, 1), 80, "TCP", False), (p(R, 1), p(G, 1), 8080, "TCP", False),
        (p(S, 0), p(G, 0), 80, "TCP", False), (p(S, 1), p(G, 0), 8080, "TCP", True)])


# --------------------------------------------------------------------------- conformance: both directions


def gress_rules(tier: str) -> ClusterPolicy:
    """standard-gress-rules-combined.yaml: subject gryffindor, egress and ingress mirror
    each other over TCP 80/8080, UDP 53/5353, SCTP 9003/9005."""
    def side(peer_of):  # type: ignore[no-untyped-def]
        rules = [crule("Accept", peer_of(R)), crule("Deny", peer_of(R)), crule("Pass", peer_of(R)),
                 crule("Deny", peer_of(S), ports=[tcp(80), udp(53), sctp(9003)]),
                 crule("Pass", peer_of(S), ports=[tcp(80), udp(53), sctp(9003)]),
                 crule("Accept", peer_of(H), ports=[tcp(8080), udp(5353), sctp(9003)]),
                 crule("Deny", peer_of(H))]
        return rules if tier == ADMIN else [r for r in rules if r.action != "Pass"]
    ingress = side(lambda h: peer_ns(ns_of(h)))
    # Upstream's ingress hufflepuff rule accepts TCP 80 (not 8080): kept as upstream has it.
    ingress[5 if tier == ADMIN else 3] = crule("Accept", peer_ns(ns_of(H)),
                                               ports=[tcp(80), udp(5353), sctp(9003)])
    egress = side(lambda h: peer_ns(ns_of(h)))
    if tier == ADMIN:
        return cnp("gress-rules", ADMIN, 15, subject(ns_of(G)), ingress, egress)
    return cnp("default", BASELINE, 10, subject(ns_of(G)), ingress, egress)


def test_admin_gress_rules_across_protocols() -> None:
    """CNPAdminTierGress (admin-network-policy-standard-gress-rules.go), first five subtests:
    egress from gryffindor is checked by poking other houses, ingress by being poked."""
    pol = gress_rules(ADMIN)
    s = GROUND.with_cluster_policies([pol])
    check(s, [(p(G, 0), p(R, 0), 80, "TCP", True), (p(G, 1), p(R, 0), 53, "UDP", True),
              (p(G, 0), p(R, 0), 9003, "SCTP", True), (p(R, 0), p(G, 0), 80, "TCP", True),
              (p(R, 1), p(G, 0), 53, "UDP", True), (p(R, 1), p(G, 0), 9003, "SCTP", True)])
    check(s, [(p(G, 0), p(H, 1), 8080, "TCP", True), (p(G, 1), p(H, 1), 80, "TCP", False),
              (p(G, 0), p(H, 1), 5353, "UDP", True), (p(G, 1), p(H, 1), 53, "UDP", False),
              (p(G, 0), p(H, 1), 9003, "SCTP", True), (p(G, 1), p(H, 1), 9005, "SCTP", False),
              (p(H, 0), p(G, 1), 80, "TCP", True), (p(H, 1), p(G, 1), 8080, "TCP", False),
              (p(H, 0), p(G, 1), 5353, "UDP", True), (p(H, 1), p(G, 1), 53, "UDP", False)])
    pol = with_rules(pol, swap(pol.ingress, 0, 1), swap(pol.egress, 0, 1))
    s = GROUND.with_cluster_policies([pol])
    check(s, [(p(G, 0), p(R, 1), 80, "TCP", False), (p(G, 1), p(R, 1), 53, "UDP", False),
              (p(G, 0), p(R, 1), 9003, "SCTP", False), (p(R, 0), p(G, 1), 80, "TCP", False),
              (p(R, 1), p(G, 1), 53, "UDP", False), (p(R, 1), p(G, 1), 9003, "SCTP", False)])
    check(s, [(p(G, 0), p(S, 0), 80, "TCP", False), (p(G, 1), p(S, 0), 8080, "TCP", True),
              (p(G, 0), p(S, 0), 53, "UDP", False), (p(G, 1), p(S, 0), 5353, "UDP", True),
              (p(G, 0), p(S, 0), 9003, "SCTP", False), (p(G, 1), p(S, 0), 9005, "SCTP", True),
              (p(S, 0), p(G, 0), 80, "TCP", False), (p(S, 1), p(G, 0), 8080, "TCP", True)])
    pol = with_rules(pol, swap(pol.ingress, 0, 2), swap(pol.egress, 0, 2))
    s = GROUND.with_cluster_policies([pol])
    check(s, [(p(G, 0), p(R, 0), 80, "TCP", True), (p(G, 0), p(R, 0), 5353, "UDP", True),
              (p(G, 0), p(R, 0), 9003, "SCTP", True), (p(R, 0), p(G, 0), 80, "TCP", True),
              (p(R, 1), p(G, 0), 53, "UDP", True), (p(R, 1), p(G, 0), 9003, "SCTP", True)])


def test_priority_field_and_its_update() -> None:
    """CNPAdminTierPriorityField (admin-network-policy-standard-priority.go): a Deny at 50
    beats a Pass at 60; moving the Pass to 40 hands the traffic to the Baseline Accept."""
    def gryffindor_vs_slytherin(name: str, tier: str, priority: int, action: str) -> ClusterPolicy:
        both = peer_pods(house(S), house(S))
        return cnp(name, tier, priority, subject(house(G), house(G)),
                   [crule(action, both)], [crule(action, both)])
    deny50 = gryffindor_vs_slytherin("priority-50-example", ADMIN, 50, "Deny")
    pass60 = gryffindor_vs_slytherin("old-priority-60-new-priority-40-example", ADMIN, 60, "Pass")
    accept = gryffindor_vs_slytherin("default", BASELINE, 10, "Accept")
    pokes = [(p(S, 0), p(G, 0), 80, "TCP"), (p(S, 1), p(G, 0), 8080, "TCP"),
             (p(G, 0), p(S, 0), 80, "TCP"), (p(G, 1), p(S, 0), 8080, "TCP")]
    check(GROUND.with_cluster_policies([deny50, pass60, accept]), [(*x, False) for x in pokes])
    moved = replace(pass60, priority=40)
    check(GROUND.with_cluster_policies([deny50, moved, accept]), [(*x, True) for x in pokes])


def test_admin_networkpolicy_baseline_integration() -> None:
    """CNPAdminTierIntegration (admin-network-policy-standard-integration.go): Admin Deny,
    then Pass to a NetworkPolicy that allows slytherin, then with that NetworkPolicy deleted
    the Baseline Deny decides."""
    def both(name: str, tier: str, priority: int, action: str) -> ClusterPolicy:
        return cnp(name, tier, priority, subject(house(G)), [crule(action, peer_ns(house(S)))],
                   [crule(action, peer_ns(house(S)))])
    admin, baseline = both("pass-example", ADMIN, 10, "Deny"), both("default", BASELINE, 10, "Deny")
    np = policy(G, "allow-gress-from-to-slytherin-to-gryffindor", select(),
                ingress=[rule(peer(namespaces=house(S)))], egress=[rule(peer(namespaces=house(S)))],
                types=["Ingress", "Egress"])
    into = [(p(S, 0), p(G, 0), 80, "TCP"), (p(S, 1), p(G, 0), 8080, "TCP")]
    out = [(p(G, 0), p(S, 0), 80, "TCP"), (p(G, 1), p(S, 0), 8080, "TCP")]
    s = GROUND.with_policies([np])
    check(s.with_cluster_policies([admin, baseline]), [(*x, False) for x in into + out])
    admin = replace(admin, ingress=(replace(admin.ingress[0], action="Pass"),))
    check(s.with_cluster_policies([admin, baseline]), [(*x, True) for x in into] + [(*x, False) for x in out])
    admin = replace(admin, egress=(replace(admin.egress[0], action="Pass"),))
    check(s.with_cluster_policies([admin, baseline]), [(*x, True) for x in into + out])
    check(GROUND.with_cluster_policies([admin, baseline]), [(*x, False) for x in into + out])


def test_egress_networks_peer_and_an_inserted_rule() -> None:
    """CNPAdminTierEgressInlineCIDRPeers (admin-network-policy-standard-egress-inline-cidr-
    rules.go): Accept slytherin, Deny 0.0.0.0/0 and ::/0; then an Accept of two pod IPs is
    inserted as rule 0. Networks match pod-to-pod traffic by the pod's IP."""
    ips = {pd.key: f"10.16.0.{i + 10}" for i, pd in enumerate(GROUND.pods)}
    ground = GROUND.with_pod_ips(ips)
    pol = cnp("inline-cidr-as-peers-example", ADMIN, 85, subject(house(G), house(G)), egress=[
        crule("Accept", peer_pods(house(S), house(S))),
        crule("Deny", peer_networks("0.0.0.0/0", "::/0"))])
    denied = [(p(G, 1), p(R, 0), port, proto) for port, proto in ((80, "TCP"), (53, "UDP"), (9003, "SCTP"))]
    denied += [(p(G, 1), p(H, 0), port, proto) for port, proto in ((80, "TCP"), (53, "UDP"), (9003, "SCTP"))]
    ok = [(p(G, 0), p(S, 0), port, proto) for port, proto in ((80, "TCP"), (53, "UDP"), (9003, "SCTP"))]
    check(ground.with_cluster_policies([pol]), [(*x, False) for x in denied] + [(*x, True) for x in ok])
    inserted = crule("Accept", peer_networks(f"{ips[p(R, 0)]}/32", f"{ips[p(H, 0)]}/32"))
    pol = with_rules(pol, egress=[inserted, *pol.egress])
    later = [(p(G, 0), p(R, 1), 80, "TCP"), (p(G, 0), p(H, 1), 53, "UDP")]
    check(ground.with_cluster_policies([pol]), [(*x, True) for x in denied] + [(*x, False) for x in later])


def test_a_networks_peer_without_the_pod_ip_is_undetermined() -> None:
    pol = anp("cidr", 1, subject(house(G)), egress=[crule("Deny", peer_networks("10.0.0.0/8"))])
    s = GROUND.with_cluster_policies([pol])
    verdict, reason = Oracle(s).pod_verdict(s.pod(p(G, 0)), s.pod(p(R, 0)), 80, "TCP")
    assert verdict == UNDEFINED and "needs the IP of ravenclaw/luna-0" in reason


# --------------------------------------------------------------------------- the docs' user stories

WORLD = Scenario(
    (namespace("sensitive-ns"), namespace("monitoring-ns"), namespace("kube-system"),
     namespace("bar-ns-1"), namespace("foo-ns-1")),
    (pod("sensitive-ns", "vault", {"app": "vault"}, [container_port(8200)]),
     pod("monitoring-ns", "prom", {"app": "prom"}),
     pod("kube-system", "dns", {"app": "kube-dns"}, [container_port(53, "UDP")]),
     pod("bar-ns-1", "pub", {"app": "svc-pub"}, [container_port(8080), container_port(9000)]),
     pod("foo-ns-1", "app", {"app": "app"}, [container_port(8080)])))


def story(text: str) -> Scenario:
    docs = [("user-story", d) for d in yaml.safe_load_all(text)]
    return replace(WORLD, cluster_policies=scenario_from_documents(docs).cluster_policies)


def test_story_1_deny_traffic_at_a_cluster_level() -> None:
    """user-story-1.yaml: an Admin Deny from every namespace into sensitive-ns, which no
    NetworkPolicy can undo."""
    s = story("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cluster-wide-deny-example}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: sensitive-ns}}}
  ingress:
  - {action: Deny, name: select-all-deny-all, from: [{namespaces: {matchLabels: {}}}]}
""")
    s = s.with_policies([policy("sensitive-ns", "allow-all", select(), ingress=[rule()])])
    for client in ("monitoring-ns/prom", "foo-ns-1/app", "kube-system/dns"):
        assert allowed(s, client, "sensitive-ns/vault", 8200, "TCP") is False
    assert allowed(s, "sensitive-ns/vault", "foo-ns-1/app", 8080, "TCP") is True  # egress untouched


def test_story_2_allow_traffic_at_a_cluster_level() -> None:
    """user-story-2.yaml: Admin Accepts (monitoring in, kube-dns out) that developers'
    default-deny NetworkPolicies cannot block."""
    s = story("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cluster-wide-allow-example}
spec:
  tier: Admin
  priority: 30
  subject: {namespaces: {}}
  ingress:
  - action: Accept
    name: allow-monitoring-ns-ingress
    from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: monitoring-ns}}}]
  egress:
  - action: Accept
    name: allow-kube-dns-egress
    to:
    - pods:
        namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
        podSelector: {matchLabels: {app: kube-dns}}
""")
    s = s.with_policies([policy("foo-ns-1", "deny-all", select(), ingress=[], egress=[],
                                types=["Ingress", "Egress"])])
    assert allowed(s, "monitoring-ns/prom", "foo-ns-1/app", 8080, "TCP") is True
    assert allowed(s, "foo-ns-1/app", "kube-system/dns", 53, "UDP") is True
    assert allowed(s, "bar-ns-1/pub", "foo-ns-1/app", 8080, "TCP") is False  # the NetworkPolicy
    # kube-dns admits only monitoring-ns by the Admin tier; a deny-all there closes the rest.
    closed = s.with_policies([*s.policies, policy("kube-system", "deny-all", select(), ingress=[])])
    assert allowed(closed, "foo-ns-1/app", "kube-system/dns", 53, "UDP") is False
    assert allowed(closed, "monitoring-ns/prom", "kube-system/dns", 53, "UDP") is True


def test_story_3_delegate_to_networkpolicy() -> None:
    """user-story-3.yaml: egress to svc-pub on TCP 8080 is passed to the NetworkPolicies;
    with none it is allowed, with a deny-all egress NetworkPolicy it is denied; 9000 is not
    passed and a following Admin deny-all would still not see it (there is none)."""
    s = story("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: pub-svc-delegate-example}
spec:
  tier: Admin
  priority: 20
  subject: {namespaces: {}}
  egress:
  - action: Pass
    to:
    - pods:
        namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: bar-ns-1}}
        podSelector: {matchLabels: {app: svc-pub}}
    ports: [{portNumber: {protocol: TCP, port: 8080}}]
""")
    assert allowed(s, "foo-ns-1/app", "bar-ns-1/pub", 8080, "TCP") is True
    closed = s.with_policies([policy("foo-ns-1", "deny-egress", select(), egress=[], types=["Egress"])])
    assert allowed(closed, "foo-ns-1/app", "bar-ns-1/pub", 8080, "TCP") is False
    # With an Admin deny-all behind it, only the passed port is left to the NetworkPolicy.
    guard = anp("guard", 50, subject(), egress=[crule("Deny", peer_ns())])
    guarded = s.with_cluster_policies([*s.cluster_policies, guard])
    assert allowed(guarded, "foo-ns-1/app", "bar-ns-1/pub", 8080, "TCP") is True
    assert allowed(guarded, "foo-ns-1/app", "bar-ns-1/pub", 9000, "TCP") is False


def test_story_5_cluster_wide_default_guardrails() -> None:
    """user-story-5.yaml: a Baseline Deny of all ingress; a NetworkPolicy that selects a pod
    takes it out of the baseline's hands."""
    s = story("""
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}]}
""")
    assert allowed(s, "foo-ns-1/app", "bar-ns-1/pub", 8080, "TCP") is False
    opened = s.with_policies([policy("bar-ns-1", "open", select(app="svc-pub"),
                                     ingress=[rule(ports=[port(8080)])])])
    assert allowed(opened, "foo-ns-1/app", "bar-ns-1/pub", 8080, "TCP") is True
    assert allowed(opened, "foo-ns-1/app", "bar-ns-1/pub", 9000, "TCP") is False  # the NP, not BANP


# --------------------------------------------------------------------------- reasons, ties, deciders


def test_reasons_name_tier_policy_and_rule() -> None:
    s = GROUND.with_cluster_policies([anp("deny-y-egress", 10, subject(house(G)),
                                          egress=[crule("Deny", peer_ns(house(S)))])])
    e = Oracle(s).expect(Probe(p(G, 0), p(S, 0), "pod", 80, 80, "TCP"))
    assert e.verdict == DENY
    assert e.reason == ("gryffindor/harry-0 egress denied by ANP deny-y-egress (priority 10) "
                        "egress[0] before any NetworkPolicy")
    assert e.decided_by == {"egress": {"tier": "Admin", "policy": "ANP deny-y-egress (priority 10)",
                                       "rule": "egress[0]"},
                            "ingress": {"tier": "default", "policy": None}}
    svc = Oracle(s).expect(Probe(p(G, 0), "slytherin/svc/s-draco-0", "service", 10080, 80, "TCP"))
    assert svc.verdict == DENY and svc.decided_by == e.decided_by
    assert svc.reason.startswith("via slytherin/svc/s-draco-0:10080/TCP -> slytherin/draco-0:80: ")


def test_same_priority_admin_policies_that_disagree_are_undefined() -> None:
    allow = anp("a", 7, subject(house(G)), ingress=[crule("Allow", peer_ns(house(S)))])
    deny = anp("b", 7, subject(house(G)), ingress=[crule("Deny", peer_ns())])
    s = GROUND.with_cluster_policies([allow, deny])
    verdict, reason = Oracle(s).pod_verdict(s.pod(p(S, 0)), s.pod(p(G, 0)), 80, "TCP")
    assert verdict == UNDEFINED
    assert "ANP a (priority 7) ingress[0] Allow vs ANP b (priority 7) ingress[0] Deny" in reason
    # Only one of them matches hufflepuff: a real verdict.
    assert allowed(s, p(H, 0), p(G, 0), 80, "TCP") is False
    # Agreeing at one priority is no conflict.
    same = GROUND.with_cluster_policies([allow, replace(deny, ingress=(crule("Allow", peer_ns()),))])
    assert allowed(same, p(S, 0), p(G, 0), 80, "TCP") is True
    # An ANP of priority p ties with a CNP of priority 4p (Kube-OVN's ACL priorities).
    tie = cnp("c", ADMIN, 28, subject(house(G)), ingress=[crule("Deny", peer_ns(house(S)))])
    assert allowed(GROUND.with_cluster_policies([allow, tie]), p(S, 0), p(G, 0), 80, "TCP") is None
    after = replace(tie, priority=29)
    assert allowed(GROUND.with_cluster_policies([allow, after]), p(S, 0), p(G, 0), 80, "TCP") is True
    before = replace(tie, priority=27)
    assert allowed(GROUND.with_cluster_policies([allow, before]), p(S, 0), p(G, 0), 80, "TCP") is False


def test_baseline_cnps_come_before_the_banp() -> None:
    b = banp(subject(), ingress=[crule("Deny", peer_ns())])
    c = cnp("open", BASELINE, 999, subject(house(G)), ingress=[crule("Accept", peer_ns(house(S)))])
    s = GROUND.with_cluster_policies([b, c])
    assert allowed(s, p(S, 0), p(G, 0), 80, "TCP") is True
    assert allowed(s, p(H, 0), p(G, 0), 80, "TCP") is False


def test_named_port_resolves_on_the_destination_pod() -> None:
    pol = anp("named", 1, subject(house(G)), ingress=[
        crule("Deny", peer_ns(), ports=[named("dns")])])
    s = GROUND.with_cluster_policies([pol])
    assert allowed(s, p(S, 0), p(G, 0), 53, "UDP") is False
    assert allowed(s, p(S, 0), p(G, 0), 53, "TCP") is True  # "dns" is UDP on these pods
    assert allowed(s, p(S, 0), p(G, 0), 5353, "UDP") is True


def test_host_network_pods_and_loopback_stay_undefined() -> None:
    pol = anp("deny", 1, subject(), ingress=[crule("Deny", peer_ns())])
    s = GROUND.with_cluster_policies([pol])
    assert allowed(s, p(G, 0), p(G, 0), 80, "TCP") is None
    host = replace(s, pods=tuple(replace(x, host_network=True) if x.key == p(S, 0) else x
                                 for x in s.pods))
    assert allowed(host, p(S, 0), p(G, 0), 80, "TCP") is None


def test_cluster_rule_ports_are_probed_even_where_nothing_listens() -> None:
    pol = anp("odd", 1, subject(house(G)), ingress=[crule("Allow", peer_ns(), ports=[tcp(7000, 7002)])])
    s = GROUND.with_cluster_policies([pol])
    ports = Oracle(s).probe_ports(s.pod(p(G, 0)))
    assert (7000, "TCP") in ports and (7002, "TCP") in ports
    assert (7000, "TCP") not in Oracle(s).probe_ports(s.pod(p(S, 0)))
