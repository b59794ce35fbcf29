"""The upstream NetworkPolicy e2e's ground, probed through Pods AND Services.

Setup: namespaces x, y, z (labelled ns=<name>), pods a, b, c in each (labelled pod=<name>),
each serving 80 and 81 on TCP and UDP (names serve-<port>-<proto>), and a Service s-<pod>
per pod whose ports differ from the pod's on purpose (8080 -> 80, 8081 -> 81), so every
case also checks that policies are enforced after the load balancer's DNAT.
Steps: one or more policy/label states per case (updates and deletes included).
Success: each probe matches the oracle (`.` allowed, `X` denied) within the deadline.
Failure: expected, observed and diff truth tables with the reason of each wrong cell.
"""

from __future__ import annotations

from kubeovn_conformance.builders import (
    block,
    deny_all,
    expr,
    peer,
    policy,
    port,
    rule,
    select,
    upstream_ground,
)
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.runner import Case, Step

GROUND = upstream_ground(protocols=("TCP", "UDP"), service_offset=8000)
SCTP_GROUND = upstream_ground(protocols=("SCTP",), service_offset=8000)


# Case ids carry "upstream-" so they never clash with the other suites' ids in one run.
def one(case_id: str, direction: str, description: str, *policies, workload: Scenario = GROUND) -> Case:  # type: ignore[no-untyped-def]
    return Case(f"upstream-{case_id}", direction, workload,
                (Step("initial", lambda w: w.with_policies(policies)),), description)


def steps(case_id: str, direction: str, description: str, *states) -> Case:  # type: ignore[no-untyped-def]
    return Case(f"upstream-{case_id}", direction, GROUND,
                tuple(Step(name, build) for name, build in states), description)


def _cidr_of(w: Scenario, key: str, prefix: int) -> str:
    import ipaddress

    return str(ipaddress.ip_network(f"{w.pod(key).ip}/{prefix}", strict=False))


def _ipblock_ingress(w: Scenario) -> Scenario:
    # Allow the whole pod subnet except y/b: the subnet comes from a pod IP, so the case works
    # in overlay and underlay alike.
    return w.with_policies([policy("x", "ipblock-except", select(pod="a"), ingress=[
        rule(block(_cidr_of(w, "y/a", 16), f"{w.pod('y/b').ip}/32"))])])


def _ipblock_egress(w: Scenario) -> Scenario:
    return w.with_policies([policy("x", "ipblock-egress", select(pod="a"), egress=[
        rule(block(_cidr_of(w, "y/a", 16), f"{w.pod('y/b').ip}/32"), ports=[port(80)])],
        types=["Egress"])])


ALLOW_B = policy("x", "allow-from-b", select(pod="a"), ingress=[rule(peer(pods=select(pod="b")))])
ALLOW_BLUE = policy("x", "allow-blue", select(pod="a"),
                    ingress=[rule(peer(pods=select(team="blue"), namespaces=select()))])
ALLOW_C = policy("x", "allow-from-b", select(pod="a"), ingress=[rule(peer(pods=select(pod="c")))])

CASES = [
    one("default-deny-ingress", "ingress", "deny all ingress to namespace x", deny_all("x")),
    one("default-deny-egress", "egress", "deny all egress from namespace x",
        deny_all("x", types=["Egress"])),
    one("default-deny-all", "both", "deny ingress and egress in namespace x",
        deny_all("x", types=["Ingress", "Egress"])),
    one("ingress-allow-all", "ingress", "an empty rule {} allows everything",
        policy("x", "allow-all", select(), ingress=[rule()])),
    one("ingress-allow-pod-label", "ingress", "x/a admits pods labelled pod=b of its namespace",
        ALLOW_B),
    one("ingress-allow-namespace", "ingress", "x/a admits every pod of namespace y",
        policy("x", "allow-ns-y", select(pod="a"), ingress=[rule(peer(namespaces=select(ns="y")))])),
    one("ingress-namespace-and-pod", "ingress", "one peer: namespace y AND pod=b",
        policy("x", "and", select(pod="a"),
               ingress=[rule(peer(pods=select(pod="b"), namespaces=select(ns="y")))])),
    one("ingress-namespace-or-pod", "ingress", "two peers: namespace y OR pod=b (of x)",
        policy("x", "or", select(pod="a"),
               ingress=[rule(peer(namespaces=select(ns="y")), peer(pods=select(pod="b")))])),
    one("ingress-match-expressions", "ingress", "namespaces NotIn (x), pods In (b, c)",
        policy("x", "exprs", select(pod="a"), ingress=[rule(peer(
            pods=select(expr("pod", "In", "b", "c")), namespaces=select(expr("ns", "NotIn", "x"))))])),
    one("ingress-allow-port-81", "ingress", "x/a admits anyone on TCP 81 only",
        policy("x", "port-81", select(pod="a"), ingress=[rule(ports=[port(81)])])),
    one("ingress-allow-named-port", "ingress", "x/a admits anyone on the named port serve-81-tcp",
        policy("x", "named", select(pod="a"), ingress=[rule(ports=[port("serve-81-tcp")])])),
    one("ingress-allow-end-port", "ingress", "x/a admits TCP 81-90 (endPort)",
        policy("x", "range", select(pod="a"), ingress=[rule(ports=[port(81, end=90)])])),
    one("ingress-allow-udp-only", "ingress", "a protocol-only rule: UDP on any port",
        policy("x", "udp", select(pod="a"), ingress=[rule(ports=[port(None, "UDP")])])),
    one("ingress-multiple-policies", "ingress", "two policies on x/a: union of pod=b:80 and ns=z:81",
        policy("x", "from-b-80", select(pod="a"), ingress=[rule(peer(pods=select(pod="b")),
                                                                ports=[port(80)])]),
        policy("x", "from-z-81", select(pod="a"), ingress=[rule(peer(namespaces=select(ns="z")),
                                                                ports=[port(81)])])),
    one("egress-allow-namespace", "egress", "x/a may reach namespace y only",
        policy("x", "to-y", select(pod="a"), egress=[rule(peer(namespaces=select(ns="y")))])),
    one("egress-allow-pod-port", "egress", "x/a may reach pod=b pods of any namespace on TCP 80",
        policy("x", "to-b-80", select(pod="a"),
               egress=[rule(peer(pods=select(pod="b"), namespaces=select()), ports=[port(80)])])),
    one("egress-allow-named-port", "egress", "x/a may reach anyone on serve-80-udp",
        policy("x", "to-named", select(pod="a"), egress=[rule(ports=[port("serve-80-udp", "UDP")])])),
    one("egress-deny-all-ingress-open", "egress", "x/a egress denied, its ingress unaffected",
        policy("x", "egress-only", select(pod="a"), egress=[], types=["Egress"])),
    one("both-directions", "both", "x/a egress to ns y, y/b ingress from ns x on 80",
        policy("x", "to-y", select(pod="a"), egress=[rule(peer(namespaces=select(ns="y")))]),
        policy("y", "from-x-80", select(pod="b"),
               ingress=[rule(peer(namespaces=select(ns="x")), ports=[port(80)])])),
    Case("upstream-ingress-ipblock-except", "ingress", GROUND, (Step("initial", _ipblock_ingress),),
         "x/a admits the pod subnet except y/b's IP"),
    Case("upstream-egress-ipblock-except", "egress", GROUND, (Step("initial", _ipblock_egress),),
         "x/a may reach the pod subnet except y/b's IP, on TCP 80"),
    steps("policy-update-delete", "ingress", "allow from pod=b, update to pod=c, delete",
          ("allow-b", lambda w: w.with_policies([ALLOW_B])),
          ("update-to-c", lambda w: w.with_policies([ALLOW_C])),
          ("delete", lambda w: w.with_policies([]))),
    # Services select pod=<name>, so the relabelling adds a label and keeps pod=: the case
    # changes who the policy admits, not which pods back a Service.
    steps("pod-label-change", "ingress", "x/a admits team=blue; then x/c gets team=blue",
          ("initial", lambda w: w.with_policies([ALLOW_BLUE])),
          ("relabel", lambda w: w.with_policies([ALLOW_BLUE]).with_pod_labels(
              "x/c", {"pod": "c", "team": "blue"}))),
    steps("namespace-label-change", "ingress", "x/a admits ns=y; then z is relabelled ns=y",
          ("initial", lambda w: w.with_policies([
              policy("x", "ns-y", select(pod="a"), ingress=[rule(peer(namespaces=select(ns="y")))])])),
          ("relabel", lambda w: w.with_policies([
              policy("x", "ns-y", select(pod="a"), ingress=[rule(peer(namespaces=select(ns="y")))])
          ]).with_namespace_labels("z", {"ns": "y"}))),
    one("sctp-allow-port", "ingress", "x/a admits SCTP 80 only", policy(
        "x", "sctp-80", select(pod="a"), ingress=[rule(ports=[port(80, "SCTP")])]),
        workload=SCTP_GROUND),
]


def test_case(case: Case, conformance, request) -> None:  # type: ignore[no-untyped-def]
    conformance.check(case, request.node)
