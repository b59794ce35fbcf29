"""The upstream NetworkPolicy e2e, complete: every It() of kubernetes/kubernetes
test/e2e/network/netpol/network_policy.go at commit 008b365 (42 in the TCP context "NetworkPolicy
between server and client", 3 "... using UDP", 3 "... using SCTP"), re-expressed as one case each.

Setup: per case, exactly the pods the upstream test creates (its own topology: "x/a x/b y/a"
...; namespaces x, y, z always exist, as upstream), labelled pod=<name>, serving the test's
ports and protocols (container ports named serve-<port>-<proto>), each pod behind a Service
s-<pod> whose ports are the pod's plus 8000 (8080 -> 80, 8081 -> 81), so every case is also
probed through a Service with port != targetPort. Namespace selectors use the API server's
kubernetes.io/metadata.name label, as upstream does.
Steps: one per state the upstream test validates (policy created, updated, deleted; a pod or
namespace relabelled), with the same policy names, so a failing step reads like upstream's.
Success: every probe matches the oracle on both paths. tests/test_oracle_upstream_e2e.py checks
that the oracle's verdicts are exactly the truth tables the upstream test asserts.
Failure: expected, observed and diff truth tables with the reason of each wrong cell.

Case id: `upstream-e2e-[udp-|sctp-]<slug of the It() text>`; `UPSTREAM` maps each It() to its
case (rendered in docs/upstream-e2e.md). All 48 are traffic tests and all are expressible.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

from kubeovn_conformance.builders import (
    block,
    expr,
    peer,
    policy,
    port,
    rule,
    select,
    upstream_topology,
)
from kubeovn_conformance.model import NS_NAME_LABEL, LabelSelector, NetworkPolicy, Rule, Scenario
from kubeovn_conformance.runner import Case, Step

SOURCE = "kubernetes/kubernetes@008b3652959c test/e2e/network/netpol/network_policy.go"
CONTEXTS = {"TCP": "NetworkPolicy between server and client",
            "UDP": "NetworkPolicy between server and client using UDP",
            "SCTP": "NetworkPolicy between server and client using SCTP"}


class Upstream(NamedTuple):
    """One upstream It(): the Context it sits in (by protocol), its text, and our case."""

    context: str  # "TCP" | "UDP" | "SCTP", a key of CONTEXTS
    it: str
    case: Case


def case_id(context: str, it: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", it.lower().replace("'", "")).strip("-")
    return "upstream-e2e-" + ("" if context == "TCP" else f"{context.lower()}-") + words


State = Callable[[Scenario], Scenario] | Iterable[NetworkPolicy]


def _build(state: State) -> Callable[[Scenario], Scenario]:
    if callable(state):
        return state
    policies = tuple(state)
    return lambda w: w.with_policies(policies)


def e2e(context: str, it: str, direction: str, description: str, workload: Scenario,
        *states: tuple[str, State]) -> Upstream:
    steps = tuple(Step(name, _build(state)) for name, state in states)
    return Upstream(context, it, Case(case_id(context, it), direction, workload, steps, description))


# --------------------------------------------------------------------------- vocabulary

def ns_is(name: str) -> LabelSelector:
    return select(**{NS_NAME_LABEL: name})


def ns_expr(operator: str, *names: str) -> LabelSelector:
    return select(expr(NS_NAME_LABEL, operator, *names))


def ingress(ns: str, name: str, target: LabelSelector, *rules: Rule) -> NetworkPolicy:
    """policyTypes [Ingress], as upstream's ingress-rule setter makes them."""
    return policy(ns, name, target, ingress=rules, types=["Ingress"])


def egress(ns: str, name: str, target: LabelSelector, *rules: Rule) -> NetworkPolicy:
    return policy(ns, name, target, egress=rules, types=["Egress"])


def deny_both(ns: str, name: str) -> NetworkPolicy:
    return policy(ns, name, select(), ingress=[], egress=[], types=["Ingress", "Egress"])


ALL, A = select(), select(pod="a")


def topo(pods: str, ports: tuple[int, ...] = (80,), protocols: tuple[str, ...] = ("TCP",)) -> Scenario:
    return upstream_topology(*pods.split(), ports=ports, protocols=protocols)


def _host(w: Scenario, key: str) -> str:
    return f"{w.pod(key).ip}/32"


def _wide(w: Scenario, key: str) -> str:
    """The /4 around a pod's IP: upstream's "large CIDR" for its except tests."""
    return str(ipaddress.ip_network(f"{w.pod(key).ip}/4", strict=False))


def _to_cidr_except_xb(w: Scenario) -> Scenario:
    return w.with_policies([egress("x", "allow-client-a-via-cidr-egress-rule", A,
                                   rule(block(_wide(w, "x/b"), _host(w, "x/b"))))])


def _relabel_pod(key: str, **extra: str) -> Callable[[Scenario], Scenario]:
    """Add labels to a pod (upstream adds; pod=<name> stays, so its Service keeps it)."""
    return lambda w: w.with_pod_labels(key, {**w.pod(key).label_map, **extra})


def _and(*builds: Callable[[Scenario], Scenario]) -> Callable[[Scenario], Scenario]:
    def build(w: Scenario) -> Scenario:
        for b in builds:
            w = b(w)
        return w
    return build


# --------------------------------------------------------------------------- recurring policies

FROM_Y_81 = ingress("x", "allow-client-a-via-ns-selector", A,
                    rule(peer(namespaces=ns_is("y")), ports=[port(81)]))
FROM_Y_80 = ingress("x", "allow-client-a-via-ns-selector-80", A,
                    rule(peer(namespaces=ns_is("y")), ports=[port(80)]))
ALLOW_ALL_MUTATE = "allow-all-mutate-to-deny-all"
FROM_NS2_UPDATED = ingress("x", "allow-client-a-via-ns-selector", A,
                           rule(peer(namespaces=select(ns2="updated"))))
FROM_B_UPDATED = ingress("x", "allow-client-a-via-pod-selector", A,
                         rule(peer(pods=select(pod="b", pod2="updated"))))
DENY_ISOLATED = ingress("x", "deny-ingress-via-label-selector", select(target="isolated"))
EGRESS_80_ONLY = egress("x", "allow-egress-port-80", ALL, rule(ports=[port(80)]))
INGRESS_80_ONLY = ingress("x", "allow-ingress-port-80", ALL, rule(ports=[port(80)]))
EGRESS_FOR_A = egress("x", "allow-egress-for-target", A, rule())


def _from_y_pod_a(protocol: str) -> Upstream:
    return e2e(protocol, "should enforce policy to allow traffic only from a pod in a different "
               "namespace based on PodSelector and NamespaceSelector", "ingress",
               f"x/a admits only y/a (namespace y AND pod=a in one peer), {protocol}",
               topo("x/a x/b y/a y/b z/a" if protocol == "TCP" else "x/a x/b y/a", protocols=(protocol,)),
               ("initial", [ingress("x", "allow-ns-y-pod-a-via-namespace-pod-selector", A,
                                    rule(peer(namespaces=ns_is("y"), pods=select(pod="a"))))]))


def _ports_from_y(protocol: str) -> Upstream:
    tcp = protocol == "TCP"
    return e2e(protocol, "should enforce policy based on Ports", "ingress",
               f"x/a admits namespace y on {protocol} 81 only",
               topo("x/a x/b y/a y/b z/a" if tcp else "x/a x/b y/a z/a", (81,), (protocol,)),
               ("initial", [FROM_Y_81 if tcp else ingress(
                   "x", "allow-ingress-on-port-81-ns-x", A,
                   rule(peer(namespaces=ns_is("y")), ports=[port(81, protocol)]))]))


def _default_deny_ingress(protocol: str) -> Upstream:
    return e2e(protocol, "should support a 'default-deny-ingress' policy", "ingress",
               f"every pod of x isolated for ingress, {protocol}",
               topo("x/a x/b y/a y/b", protocols=(protocol,)),
               ("initial", [ingress("x", "deny-ingress" if protocol == "TCP" else "deny-all", ALL)]))


# --------------------------------------------------------------------------- the 48, in upstream order

UPSTREAM: list[Upstream] = [
    _default_deny_ingress("TCP"),
    e2e("TCP", "should support a 'default-deny-all' policy", "both",
        "x isolated both ways", topo("x/a x/b y/a"), ("initial", [deny_both("x", "deny-all")])),
    e2e("TCP", "should enforce policy to allow traffic from pods within server namespace based on "
        "PodSelector", "ingress", "x/a admits pod=b of its own namespace",
        topo("x/a x/b x/c y/a"),
        ("initial", [ingress("x", "x-a-allows-x-b", A, rule(peer(pods=select(pod="b"))))])),
    e2e("TCP", "should enforce policy to allow ingress traffic for a target", "ingress",
        "x default-deny, plus x/a admitting every pod of every namespace", topo("x/a x/b y/a"),
        ("initial", [ingress("x", "deny-all", ALL),
                     ingress("x", "allow-all-to-a", A, rule(peer(pods=ALL, namespaces=ALL)))])),
    e2e("TCP", "should enforce policy to allow ingress traffic from pods in all namespaces", "ingress",
        "x/a admits namespaceSelector {} (every namespace)", topo("x/a x/b y/a z/a"),
        ("initial", [ingress("x", "allow-from-another-ns", A, rule(peer(namespaces=ALL)))])),
    e2e("TCP", "should enforce policy to allow traffic only from a different namespace, based on "
        "NamespaceSelector", "ingress", "x/a admits namespace y only (name label)",
        topo("x/a x/b y/a z/a"),
        ("initial", [ingress("x", "allow-client-a-via-ns-selector", A,
                             rule(peer(namespaces=ns_is("y"))))])),
    e2e("TCP", "should enforce policy based on PodSelector with MatchExpressions", "ingress",
        "x/a admits pod In (b) of its namespace", topo("x/a x/b y/a"),
        ("initial", [ingress("x", "x-a-allows-x-b", A,
                             rule(peer(pods=select(expr("pod", "In", "b")))))])),
    e2e("TCP", "should enforce policy based on NamespaceSelector with MatchExpressions", "ingress",
        "x/a admits namespaces whose name is In (y)", topo("x/a x/b y/a z/a"),
        ("initial", [ingress("x", "allow-ns-y-match-selector", A,
                             rule(peer(namespaces=ns_expr("In", "y"))))])),
    e2e("TCP", "should enforce policy based on PodSelector or NamespaceSelector", "ingress",
        "two peers: namespace NotIn (x) OR pod=b of x", topo("x/a x/b x/c y/a"),
        ("initial", [ingress("x", "allow-ns-y-match-selector", A,
                             rule(peer(namespaces=ns_expr("NotIn", "x")), peer(pods=select(pod="b"))))])),
    e2e("TCP", "should enforce policy based on PodSelector and NamespaceSelector", "ingress",
        "one peer: namespace NotIn (x) AND pod=b", topo("x/a x/b y/a y/b z/b"),
        ("initial", [ingress("x", "allow-ns-y-podselector-and-nsselector", A,
                             rule(peer(namespaces=ns_expr("NotIn", "x"), pods=select(pod="b"))))])),
    e2e("TCP", "should enforce policy based on Multiple PodSelectors and NamespaceSelectors", "ingress",
        "one peer: namespace NotIn (x) AND pod In (b, c)", topo("x/a x/b y/a y/b y/c"),
        ("initial", [ingress("x", "allow-ns-y-z-pod-b-c", A, rule(peer(
            namespaces=ns_expr("NotIn", "x"), pods=select(expr("pod", "In", "b", "c")))))])),
    e2e("TCP", "should enforce policy based on any PodSelectors", "ingress",
        "two peers of x: pod=b OR pod=c", topo("x/a x/b x/c"),
        ("initial", [ingress("x", "allow-ns-x-pod-b-c", A,
                             rule(peer(pods=select(pod="b")), peer(pods=select(pod="c"))))])),
    _from_y_pod_a("TCP"),
    _ports_from_y("TCP"),
    e2e("TCP", "should enforce multiple, stacked policies with overlapping podSelectors", "ingress",
        "x/a admits y on 81; a second policy adds 80", topo("x/a x/b y/a y/b z/a", (80, 81)),
        ("port-81-only", [FROM_Y_81]), ("add-port-80", [FROM_Y_81, FROM_Y_80])),
    e2e("TCP", "should support allow-all policy", "ingress", "every pod of x admits everything",
        topo("x/a x/b y/a", (80, 81)),
        ("initial", [ingress("x", "allow-all", ALL, rule())])),
    e2e("TCP", "should allow ingress access on one named port", "ingress",
        "every pod of x admits anyone on the named port serve-81-tcp", topo("x/a x/b y/a", (80, 81)),
        ("initial", [ingress("x", "allow-all", ALL, rule(ports=[port("serve-81-tcp")]))])),
    e2e("TCP", "should allow ingress access from namespace on one named port", "ingress",
        "x/a admits namespace y on the named port serve-80-tcp", topo("x/a x/b y/a z/a", (80, 81)),
        ("initial", [ingress("x", "allow-client-a-via-ns-selector-80", A,
                             rule(peer(namespaces=ns_is("y")), ports=[port("serve-80-tcp", "TCP")]))])),
    e2e("TCP", "should allow egress access on one named port", "egress",
        "every pod of x may send to the named port serve-80-tcp only", topo("x/a y/a", (80, 81)),
        ("initial", [egress("x", "allow-egress", ALL, rule(ports=[port("serve-80-tcp")]))])),
    e2e("TCP", "should enforce updated policy", "ingress",
        "allow-all updated in place to allow nothing", topo("x/a y/a", (81,)),
        ("allow-all", [ingress("x", ALLOW_ALL_MUTATE, ALL, rule())]),
        ("updated-to-deny-all", [ingress("x", ALLOW_ALL_MUTATE, ALL)])),
    e2e("TCP", "should allow ingress access from updated namespace", "ingress",
        "x/a admits namespaces labelled ns2=updated; then y gets that label", topo("x/a y/a"),
        ("initial", [FROM_NS2_UPDATED]),
        ("relabel-namespace-y", lambda w: w.with_policies([FROM_NS2_UPDATED]).with_namespace_labels(
            "y", {**dict(w.namespace("y").labels), "ns2": "updated"}))),
    e2e("TCP", "should allow ingress access from updated pod", "ingress",
        "x/a admits pod=b,pod2=updated; then x/b gets pod2=updated", topo("x/a x/b"),
        ("initial", [FROM_B_UPDATED]),
        ("relabel-pod-x-b", _and(_build([FROM_B_UPDATED]), _relabel_pod("x/b", pod2="updated")))),
    e2e("TCP", "should deny ingress from pods on other namespaces", "ingress",
        "every pod of x admits podSelector {} (its own namespace only)", topo("x/a x/b y/a z/a"),
        ("initial", [ingress("x", "deny-empty-policy", ALL, rule(peer(pods=ALL)))])),
    e2e("TCP", "should deny ingress access to updated pod", "ingress",
        "a deny-all selects target=isolated; then x/a gets that label", topo("x/a y/a"),
        ("initial", [DENY_ISOLATED]),
        ("relabel-pod-x-a", _and(_build([DENY_ISOLATED]), _relabel_pod("x/a", target="isolated")))),
    e2e("TCP", "should deny egress from pods based on PodSelector", "egress",
        "x/a may send nothing", topo("x/a x/b y/a"),
        ("initial", [egress("x", "deny-egress-pod-a", A)])),
    e2e("TCP", "should deny egress from all pods in a namespace", "egress",
        "no pod of x may send", topo("x/a x/b y/a"),
        ("initial", [egress("x", "deny-egress-ns-x", ALL)])),
    e2e("TCP", "should work with Ingress, Egress specified together", "both",
        "one policy on x/a: ingress from pod=b, egress to TCP 80", topo("x/a x/b x/c y/a", (80, 81)),
        ("initial", [policy("x", "allow-client-a-via-pod-selector", A,
                            ingress=[rule(peer(pods=select(pod="b")))], egress=[rule(ports=[port(80)])],
                            types=["Egress", "Ingress"])])),
    e2e("TCP", "should support denying of egress traffic on the client side (even if the server "
        "explicitly allows this traffic)", "both",
        "x/a may send to y/a only; y/a and y/b both admit x/a", topo("x/a y/a y/b"),
        ("initial", [
            egress("x", "allow-to-ns-y-pod-a", A, rule(peer(namespaces=ns_is("y"), pods=A))),
            ingress("y", "allow-from-xa-on-ya-match-selector", A, rule(peer(namespaces=ns_is("x"), pods=A))),
            ingress("y", "allow-from-xa-on-yb-match-selector", select(pod="b"),
                    rule(peer(namespaces=ns_is("x"), pods=A)))])),
    e2e("TCP", "should enforce egress policy allowing traffic to a server in a different namespace "
        "based on PodSelector and NamespaceSelector", "egress",
        "x/a may send to namespace y AND pod=a only", topo("x/a y/a y/b"),
        ("initial", [egress("x", "allow-to-ns-y-pod-a", A, rule(peer(namespaces=ns_is("y"), pods=A)))])),
    e2e("TCP", "should enforce ingress policy allowing any port traffic to a server on a specific "
        "protocol", "ingress", "x/a admits TCP on any port, nothing else",
        topo("x/a y/a", protocols=("TCP", "UDP")),
        ("initial", [ingress("x", "allow-ingress-by-proto", A, rule(ports=[port(None, "TCP")]))])),
    e2e("TCP", "should enforce multiple ingress policies with ingress allow-all policy taking "
        "precedence", "ingress", "x admits port 80 only; then a second policy admits everything",
        topo("x/a y/a", (81,)),
        ("port-80-only", [INGRESS_80_ONLY]),
        ("add-allow-all", [INGRESS_80_ONLY, ingress("x", "allow-ingress", ALL, rule())])),
    e2e("TCP", "should enforce multiple egress policies with egress allow-all policy taking "
        "precedence", "egress", "x may send to port 80 only; then a second policy allows everything",
        topo("x/a y/a", (81,)),
        ("port-80-only", [EGRESS_80_ONLY]),
        ("add-allow-all", [EGRESS_80_ONLY, egress("x", "allow-egress", ALL, rule())])),
    e2e("TCP", "should stop enforcing policies after they are deleted", "both",
        "x isolated both ways; then every policy deleted", topo("x/a y/a"),
        ("deny-all", [deny_both("x", "deny-all")]), ("deleted", [])),
    e2e("TCP", "should allow egress access to server in CIDR block", "egress",
        "x/a may send to y/b's IP/32 only", topo("x/a y/a y/b"),
        ("initial", lambda w: w.with_policies([egress(
            "x", "allow-client-a-via-cidr-egress-rule", A, rule(block(_host(w, "y/b"))))]))),
    e2e("TCP", "should enforce except clause while egress access to server in CIDR block", "egress",
        "x/a may send to the /4 around x/b except x/b's IP", topo("x/a x/b x/c"),
        ("initial", _to_cidr_except_xb)),
    e2e("TCP", "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed", "egress",
        "the /4-except-x/b policy, then updated in place to x/b's IP/32 only", topo("x/a x/b x/c"),
        ("cidr-except-x-b", _to_cidr_except_xb),
        ("updated-to-x-b", lambda w: w.with_policies([egress(
            "x", "allow-client-a-via-cidr-egress-rule", A, rule(block(_host(w, "x/b"))))]))),
    e2e("TCP", "should enforce policies to check ingress and egress policies can be controlled "
        "independently based on PodSelector", "both",
        "x/a egress allowed to all; then its ingress denied", topo("x/a x/b y/a"),
        ("allow-egress", [EGRESS_FOR_A]),
        ("add-deny-ingress", [EGRESS_FOR_A, ingress("x", "deny-ingress-via-label-selector", A)])),
    e2e("TCP", "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin "
        "doesn't support SCTP", "ingress", "x default-deny plus SCTP 81 admitted: TCP 81 stays denied",
        topo("x/a y/a", (81,)),
        ("initial", [ingress("x", "deny-ingress", ALL),
                     ingress("x", "allow-only-sctp-ingress-on-port-81", A, rule(ports=[port(81, "SCTP")]))])),
    e2e("TCP", "should properly isolate pods that are selected by a policy allowing SCTP, even if the "
        "plugin doesn't support SCTP", "ingress", "an SCTP-80-only rule isolates x/a for TCP 81",
        topo("x/a y/a", (81,)),
        ("initial", [ingress("x", "allow-only-sctp-ingress-on-port-80", A, rule(ports=[port(80, "SCTP")]))])),
    e2e("TCP", "should not allow access by TCP when a policy specifies only UDP", "ingress",
        "a UDP-81-only rule: TCP 81 denied", topo("x/a y/a", (81,)),
        ("initial", [ingress("x", "allow-only-udp-ingress-on-port-81", A, rule(ports=[port(81, "UDP")]))])),
    e2e("TCP", "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels "
        "using default ns label", "ingress", "x/a admits namespace y by the API server's name label",
        topo("x/a x/b y/a z/a"),
        ("initial", [ingress("x", "allow-client-a-via-ns-selector-for-immutable-ns-label", A,
                             rule(peer(namespaces=ns_is("y"))))])),
    e2e("TCP", "should enforce policy based on NamespaceSelector with MatchExpressions using default "
        "ns label", "egress", "x/a may send to namespaces whose name is NotIn (y)",
        topo("x/a x/b y/a z/a"),
        ("initial", [egress("x", "allow-ns-y-match-selector-for-immutable-ns-label", A,
                            rule(peer(namespaces=ns_expr("NotIn", "y"))))])),
    _default_deny_ingress("UDP"),
    _ports_from_y("UDP"),
    _from_y_pod_a("UDP"),
    _default_deny_ingress("SCTP"),
    _ports_from_y("SCTP"),
    _from_y_pod_a("SCTP"),
]


def _by_workload(entries: list[Upstream]) -> list[Case]:
    """Cases of one workload next to each other (first appearance order), so they pack."""
    first: dict[Scenario, int] = {}
    for i, u in enumerate(entries):
        first.setdefault(u.case.workload, i)
    return [u.case for u in sorted(entries, key=lambda u: first[u.case.workload])]


CASES = _by_workload(UPSTREAM)


def render_table() -> str:
    """docs/upstream-e2e.md: each upstream It() and the case that re-expresses it."""
    lines = ["# The upstream NetworkPolicy e2e, test by test", "",
             f"Source: `{SOURCE}`, every It() in file order.",
             "Generated from `UPSTREAM` in `suites/test_upstream_e2e.py`; `tests/test_upstream_e2e_map.py`",
             "fails when this file and the suite disagree. The truth tables each upstream test asserts",
             "are checked against the oracle, on the pod and the Service path, in",
             "`tests/test_oracle_upstream_e2e.py`. Every case's pods sit behind Services whose ports",
             "are the pod's plus 8000, so the runner probes each case through the Pod IP and through",
             "ClusterIP:port+8000 (DNAT'd to the pod port). SCTP cases are skipped on the lab (no kernel",
             "SCTP there) and run on kind. Not a traffic test, or not expressible: none of the 48.",
             "", "Context (the Ginkgo Context the It() sits in): "
             + "; ".join(f"{k}: \"{v}\"" for k, v in CONTEXTS.items()) + ".", "",
             "| # | context | It() | case id | direction | pods | pod ports | steps |",
             "|---|---|---|---|---|---|---|---|"]
    for i, u in enumerate(UPSTREAM, 1):
        c = u.case
        ports = sorted({(p.port, p.protocol) for pod in c.workload.pods for p in pod.ports},
                       key=lambda x: (x[1], x[0]))
        lines.append(f"| {i} | {u.context} | {u.it} | `{c.id}` | {c.direction} | "
                     f"{' '.join(p.key for p in c.workload.pods)} | "
                     f"{', '.join(f'{n}/{proto}' for n, proto in ports)} | "
                     f"{', '.join(s.name for s in c.steps)} |")
    return "\n".join(lines) + "\n"


def test_case(case: Case, conformance, request) -> None:  # type: ignore[no-untyped-def]
    conformance.check(case, request.node)
