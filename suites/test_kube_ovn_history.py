"""Kube-OVN's own NetworkPolicy bug history, one case per shape (clusters/kube-ovn-history.yaml).

Setup: namespaces x and y (labelled ns=<name>), pods a and b in each (labelled pod=<name>),
each serving TCP 80 and 81 (named serve-80-tcp, serve-81-tcp), and a Service s-<pod> per pod
mapping 8080 -> 80 and 8081 -> 81, so every case is probed through the Pod IP and through a
Service whose port differs from the pod's.
Steps: the policy (and label, pod or Service changes) each historical bug needs to show.
Success: on the newest profile every case matches the oracle (two are known issues still in
v1.16.2); on the history profile of its entry (`--lab-profile history:<id>`, the newest
behaviour with that one fix reverted) exactly the entry's recorded cells fail. The corpus
test (tests/test_history_corpus.py) checks both.
Failure: the truth tables and the reason of each wrong cell.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from kubeovn_conformance.builders import (
    block,
    container_port,
    pod,
    policy,
    port,
    rule,
    select,
    service_port,
    upstream_ground,
)
from kubeovn_conformance.builders import peer as sel_peer
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.runner import Case, Step

GROUND = upstream_ground(namespaces=("x", "y"), pods=("a", "b"), protocols=("TCP",),
                         service_offset=8000)
_LATE = pod("x", "late", {"pod": "late"}, (container_port(80, "TCP", "serve-80-tcp"),
                                          container_port(81, "TCP", "serve-81-tcp")))


def _cidr(w: Scenario, prefix: int = 16) -> str:
    """The pod subnet, from a pod IP, so a case works in overlay and underlay alike."""
    return str(ipaddress.ip_network(f"{w.pod('x/a').ip}/{prefix}", strict=False))


def _ip32(w: Scenario, key: str) -> str:
    return f"{w.pod(key).ip}/32"


def one(case_id: str, direction: str, description: str, build) -> Case:  # type: ignore[no-untyped-def]
    return Case(f"history-{case_id}", direction, GROUND, (Step("initial", build),), description)


def steps(case_id: str, direction: str, description: str, *states) -> Case:  # type: ignore[no-untyped-def]
    return Case(f"history-{case_id}", direction, GROUND,
                tuple(Step(name, build) for name, build in states), description)


A = select(pod="a")
DENY_X = policy("x", "deny-all", select(), ingress=[], types=["Ingress"])
FROM_LATE = policy("y", "from-late", A, ingress=[rule(sel_peer(pods=select(pod="late"),
                                                                namespaces=select(ns="x")))])
BLUE = policy("x", "from-blue", select(), ingress=[rule(sel_peer(pods=select(team="blue")))])
TWO_NS_RULES = policy("x", "by-namespace", A, ingress=[
    rule(sel_peer(namespaces=select(ns="y")), ports=[port(80)]),
    rule(sel_peer(namespaces=select(team="blue")), ports=[port(81)])])
FROM_B = policy("x", "from-b", A, ingress=[rule(sel_peer(pods=select(pod="b")))])
FROM_B_80 = policy("x", "from-b", A, ingress=[rule(sel_peer(pods=select(pod="b")), ports=[port(80)])])

CASES = [
    one("overlapping-except", "ingress",
        "P1 admits the pod subnet except y/b, P2 admits y/b: y/b is admitted (union)",
        lambda w: w.with_policies([
            policy("x", "cidr-except-b", A, ingress=[rule(block(_cidr(w), _ip32(w, "y/b")))]),
            policy("x", "from-y-b", A, ingress=[rule(sel_peer(pods=select(pod="b"),
                                                              namespaces=select(ns="y")))])])),
    one("egress-ipblock-except-port", "egress",
        "x/a may reach the pod subnet except y/b, on TCP 80",
        lambda w: w.with_policies([policy("x", "to-cidr-80", A, egress=[
            rule(block(_cidr(w), _ip32(w, "y/b")), ports=[port(80)])], types=["Egress"])])),
    one("egress-namespace-through-service", "egress", "x/a may reach namespace y, any port",
        lambda w: w.with_policies([policy("x", "to-y", A, egress=[
            rule(sel_peer(namespaces=select(ns="y")))], types=["Egress"])])),
    one("endport-listener-inside-range", "ingress", "x/a admits TCP 80-90: 81 is inside",
        lambda w: w.with_policies([policy("x", "range", A, ingress=[
            rule(ports=[port(80, end=90)])])])),
    one("named-port-ingress", "ingress", "x/a admits anyone on the named port serve-81-tcp",
        lambda w: w.with_policies([policy("x", "named", A, ingress=[
            rule(ports=[port("serve-81-tcp")])])])),
    one("egress-port-through-service", "egress",
        "x/a may reach namespace y on TCP 80 only: through s-*:8080 it lands on 80",
        lambda w: w.with_policies([policy("x", "to-y-80", A, egress=[
            rule(sel_peer(namespaces=select(ns="y")), ports=[port(80)])], types=["Egress"])])),
    steps("pod-created-after-policy", "ingress",
          "deny-all in x and y/a admitting x/late; then x/late is created",
          ("policies", lambda w: w.with_policies([DENY_X, FROM_LATE])),
          ("create-pod", lambda w: replace(w.with_policies([DENY_X, FROM_LATE]),
                                           pods=(*w.pods, _LATE)))),
    one("policy-name-starts-with-digit", "ingress", "deny-all ingress in x, named 1-deny-all",
        lambda w: w.with_policies([policy("x", "1-deny-all", select(), ingress=[],
                                          types=["Ingress"])])),
    one("egress-rule0-selects-nothing", "egress",
        "x/a egress: rule 0 to pod=nobody, rule 1 to namespace y on TCP 80",
        lambda w: w.with_policies([policy("x", "rule0-empty", A, egress=[
            rule(sel_peer(pods=select(pod="nobody"))),
            rule(sel_peer(namespaces=select(ns="y")), ports=[port(80)])], types=["Egress"])])),
    one("except-beside-selector", "ingress",
        "one rule: pod=b OR the pod subnet except x/b: x/b is admitted by its selector",
        lambda w: w.with_policies([policy("x", "b-or-cidr", A, ingress=[
            rule(sel_peer(pods=select(pod="b")), block(_cidr(w), _ip32(w, "x/b")))])])),
    one("two-ipblocks-in-one-rule", "ingress", "one rule: ipBlock y/a/32 OR ipBlock y/b/32",
        lambda w: w.with_policies([policy("x", "two-blocks", A, ingress=[
            rule(block(_ip32(w, "y/a")), block(_ip32(w, "y/b")))])])),
    steps("peer-relabelled-out-while-selected", "ingress",
          "every x pod admits team=blue of x; x/b loses team=blue (stays selected by {})",
          ("blue", lambda w: w.with_policies([BLUE]).with_pod_labels("x/b", {"pod": "b", "team": "blue"})),
          ("relabel-out", lambda w: w.with_policies([BLUE]))),
    steps("peer-relabelled-in-while-selected", "ingress",
          "every x pod admits team=blue of x; x/b gains team=blue (already selected by {})",
          ("initial", lambda w: w.with_policies([BLUE])),
          ("relabel-in", lambda w: w.with_policies([BLUE]).with_pod_labels(
              "x/b", {"pod": "b", "team": "blue"}))),
    steps("namespace-relabelled-while-matched", "ingress",
          "x/a admits ns=y on 80 and team=blue on 81; y loses team=blue (still ns=y)",
          ("blue", lambda w: w.with_policies([TWO_NS_RULES]).with_namespace_labels(
              "y", {"ns": "y", "team": "blue"})),
          ("relabel", lambda w: w.with_policies([TWO_NS_RULES]))),
    steps("policy-update-keeps-isolation", "ingress",
          "x/a admits pod=b; updated to pod=b on TCP 80: nobody else may get in meanwhile",
          ("allow-b", lambda w: w.with_policies([FROM_B])),
          ("update", lambda w: w.with_policies([FROM_B_80]))),
    one("policy-names-collide", "ingress",
        "deny-all isolates every x pod; deny.all admits namespace y to x/a: both apply",
        lambda w: w.with_policies([
            DENY_X, policy("x", "deny.all", A, ingress=[rule(sel_peer(namespaces=select(ns="y")))])])),
    steps("service-target-port-change", "ingress",
          "x/a admits TCP 81 only; s-a's 8080 is retargeted from 80 to 81",
          ("initial", lambda w: w.with_policies([policy("x", "only-81", A, ingress=[
              rule(ports=[port(81)])])])),
          ("retarget", lambda w: replace(w.with_policies([policy("x", "only-81", A, ingress=[
              rule(ports=[port(81)])])]), services=tuple(
                  replace(s, ports=(service_port(8080, 81), service_port(8081, 81)))
                  if s.key == "x/svc/s-a" else s for s in w.services)))),
]


def test_case(case: Case, conformance, request) -> None:  # type: ignore[no-untyped-def]
    conformance.check(case, request.node)
