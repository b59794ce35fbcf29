"""Cluster-scoped policies: AdminNetworkPolicy, BaselineAdminNetworkPolicy (v1alpha1) and
ClusterNetworkPolicy (v1alpha2), probed through Pods AND Services.

Setup: network-policy-api's conformance ground (cluster_builders.policy_api_ground): houses
gryffindor, slytherin, hufflepuff, ravenclaw, two pods each serving TCP 80 ("web"), 8080,
UDP 53 ("dns"), 5353 (SCTP 9003/9005 in the SCTP cases), each behind a Service s-<pod> whose
ports are the pod's plus 10000; and every file of examples/cluster-policies/ with its
workload (Services 80 -> 8000 and 9100 -> "metrics").
Steps: the upstream conformance scenarios re-expressed (both tiers, ingress and egress,
TCP/UDP/SCTP, named ports, networks peers, priority order, Pass into NetworkPolicy,
NetworkPolicy vs Baseline), their rule swaps as steps, and updates Kube-OVN's controller
handles its own way: a priority swap, a rule rename, a pod relabelled out of a subject.
Success: each probe matches the oracle within the deadline (convergence is recorded).
Failure: expected, observed and diff truth tables with the reason of each wrong cell.
On the lab these need OVN ACL tiers (skipped with the reason on OVN 23.03) and a profile
that has the kind (v1.13+ for ANP/BANP, v1.15+ for CNP).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kubeovn_conformance.builders import peer, policy, rule, select
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
from kubeovn_conformance.cluster_policy import ADMIN, BASELINE, ClusterPolicy, ClusterRule
from kubeovn_conformance.model import Scenario, load_scenario
from kubeovn_conformance.runner import Case, Step

GROUND = policy_api_ground(("TCP", "UDP"))
SCTP_GROUND = policy_api_ground(("SCTP",))
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cluster-policies"
G, S, H, R = (house(h) for h in ("gryffindor", "slytherin", "hufflepuff", "ravenclaw"))


def states(case_id: str, direction: str, description: str, *steps: tuple[str, list[ClusterPolicy]],
           nps: tuple = (), workload: Scenario = GROUND) -> Case:  # type: ignore[type-arg]
    """A case whose steps set the cluster policies (and the given NetworkPolicies)."""
    return Case(f"cluster-{case_id}", direction, workload,
                tuple(Step(name, lambda w, ps=tuple(ps): w.with_policies(nps).with_cluster_policies(ps))
                      for name, ps in steps), description)


def swapped(rules: tuple[ClusterRule, ...], i: int, j: int) -> tuple[ClusterRule, ...]:
    out = list(rules)
    out[i], out[j] = out[j], out[i]
    return tuple(out)


def to_anp(pol: ClusterPolicy) -> ClusterPolicy:
    """The Admin CNP as an AdminNetworkPolicy (Accept is Allow in v1alpha1)."""
    def conv(rules: tuple[ClusterRule, ...]) -> list[ClusterRule]:
        return [replace(r, action="Allow" if r.action == "Accept" else r.action) for r in rules]
    return anp(pol.name, pol.priority or 0, pol.subject, conv(pol.ingress), conv(pol.egress))


def to_banp(pol: ClusterPolicy) -> ClusterPolicy:
    def conv(rules: tuple[ClusterRule, ...]) -> list[ClusterRule]:
        return [replace(r, action="Allow" if r.action == "Accept" else r.action) for r in rules]
    return banp(pol.subject, conv(pol.ingress), conv(pol.egress))


# --------------------------------------------------------------------------- the scenarios


def ingress_rules(tier: str) -> ClusterPolicy:
    """standard-ingress-tcp-rules.yaml: into gryffindor, Accept/Deny/Pass from ravenclaw,
    Deny/Pass slytherin on 80, Accept hufflepuff on 80 and Deny it otherwise (the Baseline
    variant has no Pass rules)."""
    rules = [crule("Accept", peer_ns(R), name="allow-from-ravenclaw-everything"),
             crule("Deny", peer_ns(R), name="deny-from-ravenclaw-everything"),
             crule("Pass", peer_ns(R), name="pass-from-ravenclaw-everything"),
             crule("Deny", peer_ns(S), ports=[tcp(80), udp(53)], name="deny-from-slytherin-at-80"),
             crule("Pass", peer_ns(S), ports=[tcp(80), udp(53)], name="pass-from-slytherin-at-80"),
             crule("Accept", peer_ns(H), ports=[tcp(80), udp(5353)], name="allow-from-hufflepuff-at-80"),
             crule("Deny", peer_ns(H), name="deny-from-hufflepuff-everything-else")]
    if tier == BASELINE:
        return cnp("default", BASELINE, 10, subject(G), [r for r in rules if r.action != "Pass"])
    return cnp("ingress-rules", ADMIN, 3, subject(G), rules)


def rule_order_steps(pol: ClusterPolicy) -> list[tuple[str, list[ClusterPolicy]]]:
    """The conformance test's swaps, as steps: rule reordering (its swaps accumulate)."""
    out = [("initial", [pol])]
    if pol.tier == BASELINE:
        return [*out, ("deny-first", [replace(pol, ingress=swapped(pol.ingress, 0, 1))])]
    deny_first = replace(pol, ingress=swapped(pol.ingress, 0, 1))
    pass_first = replace(deny_first, ingress=swapped(deny_first.ingress, 0, 2))
    pass_port = replace(pass_first, ingress=swapped(pass_first.ingress, 3, 4))
    return [*out, ("deny-first", [deny_first]), ("pass-first", [pass_first]),
            ("pass-before-deny-at-80", [pass_port])]


def gress_rules(tier: str, protocols: str = "tcp-udp") -> ClusterPolicy:
    """standard-gress-rules-combined.yaml: gryffindor's egress and ingress mirrored."""
    few, others = ([tcp(80), udp(53)], [tcp(8080), udp(5353)]) if protocols == "tcp-udp" else \
        ([sctp(9003)], [sctp(9005)])

    def side() -> list[ClusterRule]:
        rules = [crule("Accept", peer_ns(R)), crule("Deny", peer_ns(R)), crule("Pass", peer_ns(R)),
                 crule("Deny", peer_ns(S), ports=few), crule("Pass", peer_ns(S), ports=few),
                 crule("Accept", peer_ns(H), ports=others), crule("Deny", peer_ns(H))]
        return rules if tier == ADMIN else [r for r in rules if r.action != "Pass"]
    if tier == ADMIN:
        return cnp("gress-rules", ADMIN, 15, subject(G), side(), side())
    return cnp("default", BASELINE, 10, subject(G), side(), side())


def gress_steps(pol: ClusterPolicy) -> list[tuple[str, list[ClusterPolicy]]]:
    deny_first = replace(pol, ingress=swapped(pol.ingress, 0, 1), egress=swapped(pol.egress, 0, 1))
    return [("initial", [pol]), ("deny-first", [deny_first])]


def both_ways(name: str, tier: str, priority: int, action: str, peers_of=peer_ns) -> ClusterPolicy:  # type: ignore[no-untyped-def]
    """Gryffindor to and from slytherin, one action each way."""
    return cnp(name, tier, priority, subject(G), [crule(action, peers_of(S))], [crule(action, peers_of(S))])


ALLOW_SLYTHERIN = policy("gryffindor", "allow-gress-from-to-slytherin", select(),
                         ingress=[rule(peer(namespaces=S))], egress=[rule(peer(namespaces=S))],
                         types=["Ingress", "Egress"])


def integration_steps() -> list[Step]:
    """standard-anp-np-banp.yaml: Admin Deny, then Pass (ingress, then egress) to the
    NetworkPolicy allowing slytherin, then without that NetworkPolicy the Baseline Deny."""
    admin, base = both_ways("pass-example", ADMIN, 10, "Deny"), both_ways("default", BASELINE, 10, "Deny")
    pass_in = replace(admin, ingress=(replace(admin.ingress[0], action="Pass"),))
    pass_both = replace(pass_in, egress=(replace(admin.egress[0], action="Pass"),))

    def with_np(*ps: ClusterPolicy):  # type: ignore[no-untyped-def]
        return lambda w: w.with_policies([ALLOW_SLYTHERIN]).with_cluster_policies(ps)
    return [Step("admin-deny", with_np(admin, base)), Step("ingress-pass", with_np(pass_in, base)),
            Step("both-pass", with_np(pass_both, base)),
            Step("networkpolicy-deleted",
                 lambda w: w.with_policies([]).with_cluster_policies([pass_both, base]))]


def networks_steps() -> list[Step]:
    """standard-egress-inline-cidr-rules.yaml: gryffindor may reach slytherin and nothing in
    the pod network; then an Accept of two pods' IPs is inserted as rule 0. The pod
    network's CIDR is taken from a pod IP, so the case means the same in both modes."""
    import ipaddress

    def pol(w: Scenario, first: list[ClusterRule]) -> ClusterPolicy:
        net = str(ipaddress.ip_network(f"{w.pod('gryffindor/harry-0').ip}/16", strict=False))
        return cnp("inline-cidr-as-peers", ADMIN, 85, subject(G, G), egress=[
            *first, crule("Accept", peer_pods(S, S)), crule("Deny", peer_networks(net))])

    def inserted(w: Scenario) -> list[ClusterRule]:
        ips = [f"{w.pod(k).ip}/32" for k in ("ravenclaw/luna-0", "hufflepuff/cedric-0")]
        return [crule("Accept", peer_networks(*ips))]
    return [Step("initial", lambda w: w.with_cluster_policies([pol(w, [])])),
            Step("accept-two-pods-first", lambda w: w.with_cluster_policies([pol(w, inserted(w))]))]


def priority_steps() -> list[Step]:
    """standard-priority-field.yaml: Deny at 50 beats Pass at 60; the Pass moved to 40 hands
    the traffic to the Baseline Accept."""
    deny = both_ways("priority-50", ADMIN, 50, "Deny", lambda h: peer_pods(h, h))
    passing = both_ways("priority-60-then-40", ADMIN, 60, "Pass", lambda h: peer_pods(h, h))
    accept = both_ways("default", BASELINE, 10, "Accept", lambda h: peer_pods(h, h))
    return [Step("deny-at-50-first", lambda w: w.with_cluster_policies([deny, passing, accept])),
            Step("pass-moved-to-40", lambda w: w.with_cluster_policies(
                [deny, replace(passing, priority=40), accept]))]


def priority_swap_steps(kind: str) -> list[Step]:
    """Two Admin policies swap priorities in one update: an Accept of ravenclaw into
    gryffindor at 5 over a Deny of everyone at 6, then the Deny at 5 over the Accept at 6."""
    accept = cnp("accept-ravenclaw", ADMIN, 5, subject(G), [crule("Accept", peer_ns(R))])
    deny = cnp("deny-everyone", ADMIN, 6, subject(G), [crule("Deny", peer_ns())])
    if kind == "anp":
        accept, deny = to_anp(accept), to_anp(deny)
    return [Step("accept-first", lambda w: w.with_cluster_policies([accept, deny])),
            Step("priorities-swapped", lambda w: w.with_cluster_policies(
                [replace(accept, priority=6), replace(deny, priority=5)]))]


def rename_steps() -> list[Step]:
    """A rule renamed, nothing else: the same policy must keep denying."""
    deny = cnp("deny-slytherin", ADMIN, 20, subject(G), [crule("Deny", peer_ns(S), name="first-name")])
    renamed = replace(deny, ingress=(replace(deny.ingress[0], name="second-name"),))
    return [Step("initial", lambda w: w.with_cluster_policies([deny])),
            Step("rule-renamed", lambda w: w.with_cluster_policies([renamed]))]


def relabel_steps() -> list[Step]:
    """gryffindor/harry-1 is relabelled out of an ANP's subject: the Deny must stop applying
    to it (the Service s-harry-1 selects pod=harry-1, which stays)."""
    deny = anp("deny-into-chosen", 30, subject(select(), select(chosen="yes")), [crule("Deny", peer_ns(S))])
    chosen = {"conformance-house": "gryffindor", "pod": "harry-1", "chosen": "yes"}
    plain = {"conformance-house": "gryffindor", "pod": "harry-1"}
    return [Step("chosen", lambda w: w.with_pod_labels("gryffindor/harry-1", chosen)
                 .with_cluster_policies([deny])),
            Step("relabelled-out", lambda w: w.with_pod_labels("gryffindor/harry-1", plain)
                 .with_cluster_policies([deny]))]


def examples() -> list[Case]:
    return [Case.from_scenario(f"cluster-example-{path.stem}", "both",
                               load_scenario(EXAMPLES / "workload.yaml", path),
                               f"examples/cluster-policies/{path.name}")
            for path in sorted(EXAMPLES.glob("*-*.yaml"))]


CASES = [
    states("cnp-admin-ingress-rule-order", "ingress",
           "Admin CNP into gryffindor: Accept/Deny/Pass order, ports, its rules swapped as upstream does",
           *rule_order_steps(ingress_rules(ADMIN))),
    states("anp-admin-ingress-rule-order", "ingress", "the same as an AdminNetworkPolicy",
           *[(n, [to_anp(p) for p in ps]) for n, ps in rule_order_steps(ingress_rules(ADMIN))]),
    states("cnp-baseline-ingress-rule-order", "ingress", "Baseline CNP into gryffindor, rules swapped",
           *rule_order_steps(ingress_rules(BASELINE))),
    states("banp-ingress-rule-order", "ingress", "the same as the BaselineAdminNetworkPolicy",
           *[(n, [to_banp(p) for p in ps]) for n, ps in rule_order_steps(ingress_rules(BASELINE))]),
    states("cnp-admin-gress-rules", "both", "Admin CNP on gryffindor's egress and ingress, TCP and UDP",
           *gress_steps(gress_rules(ADMIN))),
    states("anp-admin-gress-rules", "both", "the same as an AdminNetworkPolicy",
           *[(n, [to_anp(p) for p in ps]) for n, ps in gress_steps(gress_rules(ADMIN))]),
    states("cnp-baseline-gress-rules", "both", "Baseline CNP on gryffindor's egress and ingress",
           *gress_steps(gress_rules(BASELINE))),
    states("banp-gress-rules", "both", "the same as the BaselineAdminNetworkPolicy",
           *[(n, [to_banp(p) for p in ps]) for n, ps in gress_steps(gress_rules(BASELINE))]),
    states("cnp-admin-gress-rules-sctp", "both", "Admin CNP on gryffindor's egress and ingress, SCTP",
           *gress_steps(gress_rules(ADMIN, "sctp")), workload=SCTP_GROUND),
    Case("cluster-cnp-priority-field", "both", GROUND, tuple(priority_steps()),
         "Admin Deny at 50 over Pass at 60; the Pass moved to 40 reaches the Baseline Accept"),
    Case("cluster-cnp-pass-to-networkpolicy-then-baseline", "both", GROUND, tuple(integration_steps()),
         "Admin Deny, then Pass to a NetworkPolicy allowing slytherin, then the Baseline Deny without it"),
    Case("cluster-cnp-egress-networks", "egress", GROUND, tuple(networks_steps()),
         "egress Accept slytherin, Deny the pod network by CIDR; then two pod IPs accepted first"),
    states("anp-named-ports", "ingress", "Deny slytherin on namedPort dns, Allow it on web, Deny the rest",
           ("initial", [anp("named-ports", 12, subject(G), [
               crule("Deny", peer_ns(S), ports=[named("dns")]),
               crule("Allow", peer_ns(S), ports=[named("web")]), crule("Deny", peer_ns(S))])])),
    states("anp-same-priority-disjoint-subjects", "ingress",
           "two ANPs at one priority on disjoint subjects: both apply (network-policy-api#385)",
           ("initial", [anp("deny-into-gryffindor", 40, subject(G), [crule("Deny", peer_ns(S))]),
                        anp("deny-into-ravenclaw", 40, subject(R), [crule("Deny", peer_ns(S))])])),
    states("anp-and-cnp-same-priority-number", "ingress",
           "an ANP at priority 10 and an Admin CNP at priority 10 on other subjects: both apply",
           ("initial", [anp("anp-10", 10, subject(G), [crule("Deny", peer_ns(S))]),
                        cnp("cnp-10", ADMIN, 10, subject(R), [crule("Deny", peer_ns(S))])])),
    states("anp-priority-above-99", "ingress", "an ANP at priority 150 (the API allows up to 1000) denies",
           ("initial", [anp("priority-150", 150, subject(G), [crule("Deny", peer_ns(S))])])),
    Case("cluster-anp-priority-swap", "ingress", GROUND, tuple(priority_swap_steps("anp")),
         "two ANPs swap priorities in one update (the kube-ovn#5936 kind of update)"),
    Case("cluster-cnp-priority-swap", "ingress", GROUND, tuple(priority_swap_steps("cnp")),
         "two Admin CNPs swap priorities in one update"),
    Case("cluster-cnp-rule-renamed", "ingress", GROUND, tuple(rename_steps()),
         "a Deny rule renamed, nothing else changed: it keeps denying"),
    Case("cluster-anp-subject-relabelled-out", "ingress", GROUND, tuple(relabel_steps()),
         "a pod relabelled out of an ANP's subject stops being denied"),
    *examples(),
]


def test_case(case: Case, conformance, request) -> None:  # type: ignore[no-untyped-def]
    conformance.check(case, request.node)
