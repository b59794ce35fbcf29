"""The upstream Kubernetes NetworkPolicy e2e (kubernetes/kubernetes,
test/e2e/network/netpol/network_policy.go), case by case.

Each test rebuilds the upstream topology (namespaces x, y, z labelled by name; pods labelled
pod=<name>, serving the test's ports and protocols), writes the policies of the upstream case
with our builders, and states the expected truth table as read from the upstream case's
reachability expectations. Rows are clients, columns destinations: "." allowed, "X" denied,
"-" the pod itself (loopback, skipped upstream too).

Every table is checked on the pod path (Pod IP and port) and on the Service path: each pod
also gets a Service whose port 1000+p DNATs to p, and the Service verdict must equal the
pod verdict (design.md: the Service port never enters the verdict).
"""

from __future__ import annotations

import textwrap
from dataclasses import replace

from kubeovn_conformance import builders as b
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.oracle import ALLOW, DENY, Oracle, Probe

NAME = "kubernetes.io/metadata.name"
MARK = {ALLOW: ".", DENY: "X"}


def ground(pods: str, ports=(80,), protocols=("TCP",), ips: dict[str, str] | None = None) -> Scenario:
    """The upstream model restricted to the pods a case names, plus one Service per pod."""
    full = b.upstream_ground(ports=ports, protocols=protocols)
    keep = pods.split()
    chosen = tuple(p for p in full.pods if p.key in keep)
    assert len(chosen) == len(keep)
    services = tuple(
        b.service(p.namespace, f"s-{p.namespace}-{p.name}", {"pod": p.name},
                  *(b.service_port(1000 + port, port, proto) for proto in protocols for port in ports))
        for p in chosen)
    # Upstream namespaces carry only their name label; ours also carry ns=<name>, which no
    # policy here uses.
    s = replace(full, pods=chosen, services=services)
    return s.with_pod_ips(ips) if ips else s


def with_policies(s: Scenario, *policies) -> Scenario:
    return s.with_policies(policies)


def relabel_pod(s: Scenario, key: str, **labels: str) -> Scenario:
    pods = tuple(replace(p, labels=tuple(sorted({**p.label_map, **labels}.items())))
                 if p.key == key else p for p in s.pods)
    return replace(s, pods=pods)


def relabel_namespace(s: Scenario, name: str, **labels: str) -> Scenario:
    nss = tuple(replace(n, labels=tuple(sorted({**dict(n.labels), **labels}.items())))
                if n.name == name else n for n in s.namespaces)
    return replace(s, namespaces=nss)


def check(s: Scenario, expected: str, port: int = 80, proto: str = "TCP") -> None:
    rows = [line.split() for line in textwrap.dedent(expected).strip().splitlines()]
    cols = rows[0]
    assert sorted(cols) == sorted(p.key for p in s.pods), "the table must cover every pod"
    assert [r[0] for r in rows[1:]] == cols
    o = Oracle(s)
    want, got_pod, got_svc = {}, {}, {}
    for client, *marks in rows[1:]:
        assert len(marks) == len(cols)
        for dst, mark in zip(cols, marks, strict=True):
            if mark == "-":
                assert client == dst
                continue
            want[(client, dst)] = mark
            c, d = s.pod(client), s.pod(dst)
            got_pod[(client, dst)] = MARK.get(o.pod_verdict(c, d, port, proto)[0], "?")
            svc = f"{d.namespace}/svc/s-{d.namespace}-{d.name}"
            e = o.expect(Probe(client, svc, "service", 1000 + port, port, proto))
            got_svc[(client, dst)] = MARK.get(e.verdict, "?")
    assert got_pod == want, "pod path:\n" + render(cols, got_pod)
    assert got_svc == want, "service path:\n" + render(cols, got_svc)


def render(cols: list[str], marks: dict[tuple[str, str], str]) -> str:
    lines = ["     " + " ".join(cols)]
    for c in cols:
        lines.append(c + "  " + "   ".join(marks.get((c, d), "-") for d in cols))
    return "\n".join(lines)


def ns_is(name: str):
    return b.select(**{NAME: name})


def ns_expr(op: str, *values: str):
    return b.select(b.expr(NAME, op, *values))


def deny_ingress(ns: str = "x", name: str = "deny-ingress"):
    return b.policy(ns, name, b.select(), ingress=[], types=["Ingress"])


def ingress_to(ns: str, name: str, target: dict, *rules, types=("Ingress",)):
    return b.policy(ns, name, b.select(**target), ingress=list(rules), types=types)


def egress_from(ns: str, name: str, target: dict, *rules):
    return b.policy(ns, name, b.select(**target), egress=list(rules), types=["Egress"])


# --------------------------------------------------------------------------- default deny


def test_default_deny_ingress():
    """should support a 'default-deny-ingress' policy"""
    s = with_policies(ground("x/a x/b y/a y/b"), deny_ingress())
    check(s, """
        x/a x/b y/a y/b
        x/a  -   X   .   .
        x/b  X   -   .   .
        y/a  X   X   -   .
        y/b  X   X   .   -
    """)


def test_default_deny_all():
    """should support a 'default-deny-all' policy"""
    s = with_policies(ground("x/a x/b y/a"),
                      b.policy("x", "deny-all", b.select(), ingress=[], egress=[],
                               types=["Ingress", "Egress"]))
    check(s, """
        x/a x/b y/a
        x/a  -   X   X
        x/b  X   -   X
        y/a  X   X   -
    """)


def test_default_deny_ingress_udp():
    """NetworkPolicy between server and client using UDP: should support a 'default-deny-ingress' policy"""
    s = with_policies(ground("x/a x/b y/a y/b", protocols=("UDP",)), deny_ingress())
    check(s, """
        x/a x/b y/a y/b
        x/a  -   X   .   .
        x/b  X   -   .   .
        y/a  X   X   -   .
        y/b  X   X   .   -
    """, proto="UDP")


def test_default_deny_ingress_sctp():
    """NetworkPolicy between server and client using SCTP: should support a 'default-deny-ingress' policy"""
    s = with_policies(ground("x/a x/b y/a y/b", protocols=("SCTP",)), deny_ingress())
    check(s, """
        x/a x/b y/a y/b
        x/a  -   X   .   .
        x/b  X   -   .   .
        y/a  X   X   -   .
        y/b  X   X   .   -
    """, proto="SCTP")


# --------------------------------------------------------------------------- pod and namespace selectors


def test_allow_from_pods_within_server_namespace_by_pod_selector():
    """should enforce policy to allow traffic from pods within server namespace based on PodSelector"""
    s = with_policies(ground("x/a x/b x/c y/a"),
                      ingress_to("x", "x-a-allows-x-b", {"pod": "a"},
                                 b.rule(b.peer(pods=b.select(pod="b")))))
    check(s, """
        x/a x/b x/c y/a
        x/a  -   .   .   .
        x/b  .   -   .   .
        x/c  X   .   -   .
        y/a  X   .   .   -
    """)


def test_allow_ingress_for_a_target():
    """should enforce policy to allow ingress traffic for a target"""
    s = with_policies(ground("x/a x/b y/a"),
                      b.policy("x", "deny-all", b.select(), ingress=[], types=["Ingress"]),
                      ingress_to("x", "allow-all-to-a", {"pod": "a"},
                                 b.rule(b.peer(pods=b.select(), namespaces=b.select()))))
    check(s, """
        x/a x/b y/a
        x/a  -   X   .
        x/b  .   -   .
        y/a  .   X   -
    """)


def test_allow_ingress_from_all_namespaces():
    """should enforce policy to allow ingress traffic from pods in all namespaces"""
    s = with_policies(ground("x/a x/b y/a z/a"),
                      ingress_to("x", "allow-from-another-ns", {"pod": "a"},
                                 b.rule(b.peer(namespaces=b.select()))))
    check(s, """
        x/a x/b y/a z/a
        x/a  -   .   .   .
        x/b  .   -   .   .
        y/a  .   .   -   .
        z/a  .   .   .   -
    """)


ONLY_Y_TO_XA = """
    x/a x/b y/a z/a
    x/a  -   .   .   .
    x/b  X   -   .   .
    y/a  .   .   -   .
    z/a  X   .   .   -
"""


def test_allow_only_from_a_different_namespace_by_namespace_selector():
    """should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector"""
    s = with_policies(ground("x/a x/b y/a z/a"),
                      ingress_to("x", "allow-client-a-via-ns-selector", {"pod": "a"},
                                 b.rule(b.peer(namespaces=ns_is("y")))))
    check(s, ONLY_Y_TO_XA)


def test_pod_selector_with_match_expressions():
    """should enforce policy based on PodSelector with MatchExpressions"""
    s = with_policies(ground("x/a x/b y/a"),
                      ingress_to("x", "x-a-allows-x-b", {"pod": "a"},
                                 b.rule(b.peer(pods=b.select(b.expr("pod", "In", "b"))))))
    check(s, """
        x/a x/b y/a
        x/a  -   .   .
        x/b  .   -   .
        y/a  X   .   -
    """)


def test_namespace_selector_with_match_expressions():
    """should enforce policy based on NamespaceSelector with MatchExpressions"""
    s = with_policies(ground("x/a x/b y/a z/a"),
                      ingress_to("x", "allow-ns-y-match-selector", {"pod": "a"},
                                 b.rule(b.peer(namespaces=ns_expr("In", "y")))))
    check(s, ONLY_Y_TO_XA)


def test_pod_selector_or_namespace_selector():
    """should enforce policy based on PodSelector or NamespaceSelector"""
    s = with_policies(ground("x/a x/b x/c y/a"),
                      ingress_to("x", "allow-ns-y-match-selector", {"pod": "a"},
                                 b.rule(b.peer(namespaces=ns_expr("NotIn", "x")),
                                        b.peer(pods=b.select(pod="b")))))
    check(s, """
        x/a x/b x/c y/a
        x/a  -   .   .   .
        x/b  .   -   .   .
        x/c  X   .   -   .
        y/a  .   .   .   -
    """)


def test_pod_selector_and_namespace_selector():
    """should enforce policy based on PodSelector and NamespaceSelector"""
    s = with_policies(ground("x/a x/b y/a y/b z/b"),
                      ingress_to("x", "allow-ns-y-podselector-and-nsselector", {"pod": "a"},
                                 b.rule(b.peer(namespaces=ns_expr("NotIn", "x"),
                                               pods=b.select(pod="b")))))
    check(s, """
        x/a x/b y/a y/b z/b
        x/a  -   .   .   .   .
        x/b  X   -   .   .   .
        y/a  X   .   -   .   .
        y/b  .   .   .   -   .
        z/b  .   .   .   .   -
    """)


def test_multiple_pod_selectors_and_namespace_selectors():
    """should enforce policy based on Multiple PodSelectors and NamespaceSelectors"""
    s = with_policies(ground("x/a x/b y/a y/b y/c"),
                      ingress_to("x", "allow-ns-y-z-pod-b-c", {"pod": "a"},
                                 b.rule(b.peer(namespaces=ns_expr("NotIn", "x"),
                                               pods=b.select(b.expr("pod", "In", "b", "c"))))))
    check(s, """
        x/a x/b y/a y/b y/c
        x/a  -   .   .   .   .
        x/b  X   -   .   .   .
        y/a  X   .   -   .   .
        y/b  .   .   .   -   .
        y/c  .   .   .   .   -
    """)


def test_any_pod_selectors():
    """should enforce policy based on any PodSelectors"""
    s = with_policies(ground("x/a x/b x/c y/a"),
                      ingress_to("x", "allow-ns-x-pod-b-c", {"pod": "a"},
                                 b.rule(b.peer(pods=b.select(pod="b")),
                                        b.peer(pods=b.select(pod="c")))))
    # Upstream uses x/a, x/b, x/c only; y/a is added here so the isolation itself shows.
    check(s, """
        x/a x/b x/c y/a
        x/a  -   .   .   .
        x/b  .   -   .   .
        x/c  .   .   -   .
        y/a  X   .   .   -
    """)


def test_only_from_a_pod_in_a_different_namespace():
    """should enforce policy to allow traffic only from a pod in a different namespace based on
    PodSelector and NamespaceSelector"""
    s = with_policies(ground("x/a x/b y/a y/b z/a"),
                      ingress_to("x", "allow-ns-y-pod-a-via-namespace-pod-selector", {"pod": "a"},
                                 b.rule(b.peer(namespaces=ns_is("y"), pods=b.select(pod="a")))))
    check(s, """
        x/a x/b y/a y/b z/a
        x/a  -   .   .   .   .
        x/b  X   -   .   .   .
        y/a  .   .   -   .   .
        y/b  X   .   .   -   .
        z/a  X   .   .   .   -
    """)


def test_only_from_a_pod_in_a_different_namespace_udp_and_sctp():
    """using UDP / using SCTP: should enforce policy to allow traffic only from a pod in a
    different namespace based on PodSelector and NamespaceSelector"""
    for proto in ("UDP", "SCTP"):
        s = with_policies(ground("x/a x/b y/a", protocols=(proto,)),
                          ingress_to("x", "allow-ns-y-pod-a-via-namespace-pod-selector", {"pod": "a"},
                                     b.rule(b.peer(namespaces=ns_is("y"), pods=b.select(pod="a")))))
        check(s, """
            x/a x/b y/a
            x/a  -   .   .
            x/b  X   -   .
            y/a  .   .   -
        """, proto=proto)


def test_namespace_selector_match_labels_with_default_name_label():
    """should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using
    default ns label"""
    # The namespaces carry no explicit name label: the API server's label is what matches.
    s = with_policies(ground("x/a x/b y/a z/a"),
                      ingress_to("x", "allow-client-a-via-ns-selector-for-immutable-ns-label",
                                 {"pod": "a"}, b.rule(b.peer(namespaces=ns_is("y")))))
    assert all(NAME not in dict(n.labels) for n in s.namespaces)
    check(s, ONLY_Y_TO_XA)


def test_namespace_selector_match_expressions_with_default_name_label_egress():
    """should enforce policy based on NamespaceSelector with MatchExpressions using default ns label"""
    s = with_policies(ground("x/a x/b y/a z/a"),
                      egress_from("x", "allow-ns-y-match-selector-for-immutable-ns-label",
                                  {"pod": "a"}, b.rule(b.peer(namespaces=ns_expr("NotIn", "y")))))
    check(s, """
        x/a x/b y/a z/a
        x/a  -   .   X   .
        x/b  .   -   .   .
        y/a  .   .   -   .
        z/a  .   .   .   -
    """)


def test_deny_ingress_from_pods_on_other_namespaces():
    """should deny ingress from pods on other namespaces"""
    s = with_policies(ground("x/a x/b y/a z/a"),
                      b.policy("x", "deny-empty-policy", b.select(),
                               ingress=[b.rule(b.peer(pods=b.select()))]))
    check(s, """
        x/a x/b y/a z/a
        x/a  -   .   .   .
        x/b  .   -   .   .
        y/a  X   X   -   .
        z/a  X   X   .   -
    """)


# --------------------------------------------------------------------------- ports and protocols

PORT_81_FROM_Y = """
    x/a x/b y/a y/b z/a
    x/a  -   .   .   .   .
    x/b  X   -   .   .   .
    y/a  .   .   -   .   .
    y/b  .   .   .   -   .
    z/a  X   .   .   .   -
"""

NOTHING_TO_XA = """
    x/a x/b y/a y/b z/a
    x/a  -   .   .   .   .
    x/b  X   -   .   .   .
    y/a  X   .   -   .   .
    y/b  X   .   .   -   .
    z/a  X   .   .   .   -
"""


def _port_from_y(port: int, proto: str = "TCP", name: str = "allow-client-a-via-ns-selector"):
    return ingress_to("x", name, {"pod": "a"},
                      b.rule(b.peer(namespaces=ns_is("y")), ports=[b.port(port, proto)]))


def test_policy_based_on_ports():
    """should enforce policy based on Ports"""
    s = with_policies(ground("x/a x/b y/a y/b z/a", ports=(81,)), _port_from_y(81))
    check(s, PORT_81_FROM_Y, port=81)


def test_policy_based_on_ports_udp_and_sctp():
    """using UDP / using SCTP: should enforce policy based on Ports"""
    for proto in ("UDP", "SCTP"):
        s = with_policies(ground("x/a x/b y/a z/a", ports=(81,), protocols=(proto,)),
                          _port_from_y(81, proto, "allow-ingress-on-port-81-ns-x"))
        check(s, ONLY_Y_TO_XA, port=81, proto=proto)


def test_multiple_stacked_policies_with_overlapping_pod_selectors():
    """should enforce multiple, stacked policies with overlapping podSelectors"""
    s = with_policies(ground("x/a x/b y/a y/b z/a", ports=(80, 81)), _port_from_y(81))
    check(s, PORT_81_FROM_Y, port=81)
    check(s, NOTHING_TO_XA, port=80)
    s = with_policies(s, *s.policies, _port_from_y(80, name="allow-client-a-via-ns-selector-80"))
    check(s, PORT_81_FROM_Y, port=80)


def test_allow_all_policy():
    """should support allow-all policy"""
    s = with_policies(ground("x/a x/b y/a", ports=(80, 81)),
                      b.policy("x", "allow-all", b.select(), ingress=[b.rule()]))
    for port in (80, 81):
        check(s, """
            x/a x/b y/a
            x/a  -   .   .
            x/b  .   -   .
            y/a  .   .   -
        """, port=port)


def test_allow_ingress_on_one_named_port():
    """should allow ingress access on one named port"""
    s = with_policies(ground("x/a x/b y/a", ports=(80, 81)),
                      b.policy("x", "allow-all", b.select(),
                               ingress=[b.rule(ports=[b.port("serve-81-tcp")])]))
    check(s, """
        x/a x/b y/a
        x/a  -   .   .
        x/b  .   -   .
        y/a  .   .   -
    """, port=81)
    check(s, """
        x/a x/b y/a
        x/a  -   X   .
        x/b  X   -   .
        y/a  X   X   -
    """, port=80)


def test_allow_ingress_from_namespace_on_one_named_port():
    """should allow ingress access from namespace on one named port"""
    s = with_policies(ground("x/a x/b y/a z/a", ports=(80, 81)),
                      ingress_to("x", "allow-client-a-via-ns-selector-80", {"pod": "a"},
                                 b.rule(b.peer(namespaces=ns_is("y")),
                                        ports=[b.port("serve-80-tcp", "TCP")])))
    check(s, ONLY_Y_TO_XA, port=80)
    check(s, """
        x/a x/b y/a z/a
        x/a  -   .   .   .
        x/b  X   -   .   .
        y/a  X   .   -   .
        z/a  X   .   .   -
    """, port=81)


def test_allow_egress_on_one_named_port():
    """should allow egress access on one named port"""
    s = with_policies(ground("x/a y/a", ports=(80, 81)),
                      egress_from("x", "allow-egress", {}, b.rule(ports=[b.port("serve-80-tcp")])))
    check(s, """
        x/a y/a
        x/a  -   .
        y/a  .   -
    """, port=80)
    check(s, """
        x/a y/a
        x/a  -   X
        y/a  .   -
    """, port=81)


def test_ingress_allowing_any_port_on_a_specific_protocol():
    """should enforce ingress policy allowing any port traffic to a server on a specific protocol"""
    s = with_policies(ground("x/a y/a", protocols=("TCP", "UDP")),
                      ingress_to("x", "allow-ingress-by-proto", {"pod": "a"},
                                 b.rule(ports=[b.port(protocol="TCP")])))
    check(s, """
        x/a y/a
        x/a  -   .
        y/a  .   -
    """, proto="TCP")
    check(s, """
        x/a y/a
        x/a  -   .
        y/a  X   -
    """, proto="UDP")


def test_sctp_is_not_mistaken_for_tcp():
    """should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin
    doesn't support SCTP"""
    s = with_policies(ground("x/a y/a", ports=(81,)), deny_ingress(),
                      ingress_to("x", "allow-only-sctp-ingress-on-port-81", {"pod": "a"},
                                 b.rule(ports=[b.port(81, "SCTP")])))
    check(s, """
        x/a y/a
        x/a  -   .
        y/a  X   -
    """, port=81)


def test_sctp_only_policy_still_isolates_for_tcp():
    """should properly isolate pods that are selected by a policy allowing SCTP, even if the
    plugin doesn't support SCTP"""
    s = with_policies(ground("x/a y/a", ports=(81,)),
                      ingress_to("x", "allow-only-sctp-ingress-on-port-80", {"pod": "a"},
                                 b.rule(ports=[b.port(80, "SCTP")])))
    check(s, """
        x/a y/a
        x/a  -   .
        y/a  X   -
    """, port=81)


def test_udp_only_policy_does_not_allow_tcp():
    """should not allow access by TCP when a policy specifies only UDP"""
    s = with_policies(ground("x/a y/a", ports=(81,)),
                      ingress_to("x", "allow-only-udp-ingress-on-port-81", {"pod": "a"},
                                 b.rule(ports=[b.port(81, "UDP")])))
    check(s, """
        x/a y/a
        x/a  -   .
        y/a  X   -
    """, port=81)


# --------------------------------------------------------------------------- multiple policies, updates


def test_multiple_ingress_policies_allow_all_takes_precedence():
    """should enforce multiple ingress policies with ingress allow-all policy taking precedence"""
    only_80 = b.policy("x", "allow-ingress-port-80", b.select(), ingress=[b.rule(ports=[b.port(80)])])
    s = with_policies(ground("x/a y/a", ports=(81,)), only_80)
    check(s, "x/a y/a\n x/a - .\n y/a X -", port=81)
    s = with_policies(s, only_80, b.policy("x", "allow-ingress", b.select(), ingress=[b.rule()]))
    check(s, "x/a y/a\n x/a - .\n y/a . -", port=81)


def test_multiple_egress_policies_allow_all_takes_precedence():
    """should enforce multiple egress policies with egress allow-all policy taking precedence"""
    only_80 = egress_from("x", "allow-egress-port-80", {}, b.rule(ports=[b.port(80)]))
    s = with_policies(ground("x/a y/a", ports=(81,)), only_80)
    check(s, "x/a y/a\n x/a - X\n y/a . -", port=81)
    s = with_policies(s, only_80, egress_from("x", "allow-egress", {}, b.rule()))
    check(s, "x/a y/a\n x/a - .\n y/a . -", port=81)


def test_updated_policy_from_allow_all_to_deny_all():
    """should enforce updated policy"""
    s = with_policies(ground("x/a y/a", ports=(81,)),
                      b.policy("x", "allow-all-mutate-to-deny-all", b.select(), ingress=[b.rule()]))
    check(s, "x/a y/a\n x/a - .\n y/a . -", port=81)
    s = with_policies(s, b.policy("x", "allow-all-mutate-to-deny-all", b.select(), ingress=[]))
    check(s, "x/a y/a\n x/a - .\n y/a X -", port=81)


def test_stop_enforcing_after_delete():
    """should stop enforcing policies after they are deleted"""
    s = with_policies(ground("x/a y/a"),
                      b.policy("x", "deny-all", b.select(), ingress=[], egress=[],
                               types=["Ingress", "Egress"]))
    check(s, "x/a y/a\n x/a - X\n y/a X -")
    check(with_policies(s), "x/a y/a\n x/a - .\n y/a . -")


def test_allow_ingress_from_updated_namespace():
    """should allow ingress access from updated namespace"""
    pol = ingress_to("x", "allow-client-a-via-ns-selector", {"pod": "a"},
                     b.rule(b.peer(namespaces=b.select(ns2="updated"))))
    s = with_policies(ground("x/a y/a"), pol)
    check(s, "x/a y/a\n x/a - .\n y/a X -")
    check(relabel_namespace(s, "y", ns2="updated"), "x/a y/a\n x/a - .\n y/a . -")


def test_allow_ingress_from_updated_pod():
    """should allow ingress access from updated pod"""
    pol = ingress_to("x", "allow-client-a-via-pod-selector", {"pod": "a"},
                     b.rule(b.peer(pods=b.select(pod="b", pod2="updated"))))
    s = with_policies(ground("x/a x/b"), pol)
    check(s, "x/a x/b\n x/a - .\n x/b X -")
    check(relabel_pod(s, "x/b", pod2="updated"), "x/a x/b\n x/a - .\n x/b . -")


def test_deny_ingress_to_updated_pod():
    """should deny ingress access to updated pod"""
    pol = b.policy("x", "deny-ingress-via-label-selector", b.select(target="isolated"), ingress=[],
                   types=["Ingress"])
    s = with_policies(ground("x/a y/a"), pol)
    check(s, "x/a y/a\n x/a - .\n y/a . -")
    check(relabel_pod(s, "x/a", target="isolated"), "x/a y/a\n x/a - .\n y/a X -")


# --------------------------------------------------------------------------- egress


def test_deny_egress_from_pods_by_pod_selector():
    """should deny egress from pods based on PodSelector"""
    s = with_policies(ground("x/a x/b y/a"),
                      b.policy("x", "deny-egress-pod-a", b.select(pod="a"), egress=[], types=["Egress"]))
    check(s, """
        x/a x/b y/a
        x/a  -   X   X
        x/b  .   -   .
        y/a  .   .   -
    """)


def test_deny_egress_from_all_pods_in_a_namespace():
    """should deny egress from all pods in a namespace"""
    s = with_policies(ground("x/a x/b y/a"),
                      b.policy("x", "deny-egress-ns-x", b.select(), egress=[], types=["Egress"]))
    check(s, """
        x/a x/b y/a
        x/a  -   X   X
        x/b  X   -   X
        y/a  .   .   -
    """)


def test_ingress_and_egress_specified_together():
    """should work with Ingress, Egress specified together"""
    pol = b.policy("x", "allow-client-a-via-pod-selector", b.select(pod="a"),
                   ingress=[b.rule(b.peer(pods=b.select(pod="b")))],
                   egress=[b.rule(ports=[b.port(80)])], types=["Egress", "Ingress"])
    s = with_policies(ground("x/a x/b x/c y/a", ports=(80, 81)), pol)
    check(s, """
        x/a x/b x/c y/a
        x/a  -   .   .   .
        x/b  .   -   .   .
        x/c  X   .   -   .
        y/a  X   .   .   -
    """, port=80)
    check(s, """
        x/a x/b x/c y/a
        x/a  -   X   X   X
        x/b  .   -   .   .
        x/c  X   .   -   .
        y/a  X   .   .   -
    """, port=81)


def test_client_side_egress_deny_wins_over_server_ingress_allow():
    """should support denying of egress traffic on the client side (even if the server explicitly
    allows this traffic)"""
    from_xa = b.rule(b.peer(namespaces=ns_is("x"), pods=b.select(pod="a")))
    s = with_policies(ground("x/a y/a y/b"),
                      egress_from("x", "allow-to-ns-y-pod-a", {"pod": "a"},
                                  b.rule(b.peer(namespaces=ns_is("y"), pods=b.select(pod="a")))),
                      ingress_to("y", "allow-from-xa-on-ya-match-selector", {"pod": "a"}, from_xa),
                      ingress_to("y", "allow-from-xa-on-yb-match-selector", {"pod": "b"}, from_xa))
    check(s, """
        x/a y/a y/b
        x/a  -   .   X
        y/a  .   -   X
        y/b  .   X   -
    """)


def test_egress_to_a_server_in_a_different_namespace():
    """should enforce egress policy allowing traffic to a server in a different namespace based on
    PodSelector and NamespaceSelector"""
    s = with_policies(ground("x/a y/a y/b"),
                      egress_from("x", "allow-to-ns-y-pod-a", {"pod": "a"},
                                  b.rule(b.peer(namespaces=ns_is("y"), pods=b.select(pod="a")))))
    check(s, """
        x/a y/a y/b
        x/a  -   .   X
        y/a  .   -   .
        y/b  .   .   -
    """)


def test_ingress_and_egress_controlled_independently():
    """should enforce policies to check ingress and egress policies can be controlled
    independently based on PodSelector"""
    allow_egress = egress_from("x", "allow-egress-for-target", {"pod": "a"}, b.rule())
    s = with_policies(ground("x/a x/b y/a"), allow_egress)
    check(s, """
        x/a x/b y/a
        x/a  -   .   .
        x/b  .   -   .
        y/a  .   .   -
    """)
    # ingress to x/a closes; its egress stays open
    s = with_policies(s, allow_egress,
                      b.policy("x", "deny-ingress-via-label-selector", b.select(pod="a"), ingress=[],
                               types=["Ingress"]))
    check(s, """
        x/a x/b y/a
        x/a  -   .   .
        x/b  X   -   .
        y/a  X   .   -
    """)


# --------------------------------------------------------------------------- ipBlock

IPS = {"x/a": "10.16.0.1", "x/b": "10.16.0.2", "x/c": "10.16.0.3",
       "y/a": "10.16.1.1", "y/b": "10.16.1.2"}


def test_egress_to_server_in_cidr_block():
    """should allow egress access to server in CIDR block"""
    s = with_policies(ground("x/a y/a y/b", ips=IPS),
                      egress_from("x", "allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                                  b.rule(b.block(IPS["y/b"] + "/32"))))
    check(s, """
        x/a y/a y/b
        x/a  -   X   .
        y/a  .   -   .
        y/b  .   .   -
    """)


def test_except_clause_for_egress_cidr_block():
    """should enforce except clause while egress access to server in CIDR block"""
    # upstream widens the pod's IP to its /4 and excepts the pod's /32
    s = with_policies(ground("x/a x/b x/c", ips=IPS),
                      egress_from("x", "allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                                  b.rule(b.block("0.0.0.0/4", IPS["x/b"] + "/32"))))
    check(s, """
        x/a x/b x/c
        x/a  -   X   .
        x/b  .   -   .
        x/c  .   .   -
    """)


def test_ip_in_both_cidr_and_except_is_allowed_by_another_policy():
    """should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed"""
    name = "allow-client-a-via-cidr-egress-rule"
    s = with_policies(ground("x/a x/b x/c", ips=IPS),
                      egress_from("x", name, {"pod": "a"},
                                  b.rule(b.block("0.0.0.0/4", IPS["x/b"] + "/32"))))
    check(s, "x/a x/b x/c\n x/a - X .\n x/b . - .\n x/c . . -")
    # upstream updates the same policy to allow only x/b's /32
    s = with_policies(s, egress_from("x", name, {"pod": "a"}, b.rule(b.block(IPS["x/b"] + "/32"))))
    check(s, "x/a x/b x/c\n x/a - . X\n x/b . - .\n x/c . . -")
    # and both policies side by side: the union allows x/b although the first excepts it
    s = with_policies(s, egress_from("x", "wide", {"pod": "a"},
                                     b.rule(b.block("0.0.0.0/4", IPS["x/b"] + "/32"))),
                      egress_from("x", name, {"pod": "a"}, b.rule(b.block(IPS["x/b"] + "/32"))))
    check(s, "x/a x/b x/c\n x/a - . .\n x/b . - .\n x/c . . -")


def test_ingress_ip_block_with_except():
    """ipBlock with except on ingress (design.md; the upstream ipBlock cases are egress-only):
    the same /4-except-/32 shape, on the server's side."""
    s = with_policies(ground("x/a x/b x/c", ips=IPS),
                      ingress_to("x", "allow-cidr-except-b", {"pod": "a"},
                                 b.rule(b.block("0.0.0.0/4", IPS["x/b"] + "/32"))))
    check(s, "x/a x/b x/c\n x/a - . .\n x/b X - .\n x/c . . -")


def test_deny_all_except_dns_egress():
    """The upstream helper policy "deny-all-tcp-allow-dns" (policies.go, GetDenyAllWithEgressDNS,
    used by the legacy cases): namespace x isolated both ways, egress allowed only to UDP/53."""
    pol = b.policy("x", "deny-all-tcp-allow-dns", b.select(), ingress=[],
                   egress=[b.rule(ports=[b.port(53, "UDP")])], types=["Egress", "Ingress"])
    s = with_policies(ground("x/a x/b y/a", ports=(53, 80), protocols=("TCP", "UDP")), pol)
    check(s, """
        x/a x/b y/a
        x/a  -   X   .
        x/b  X   -   .
        y/a  X   X   -
    """, port=53, proto="UDP")
    for port, proto in ((53, "TCP"), (80, "UDP"), (80, "TCP")):
        check(s, """
            x/a x/b y/a
            x/a  -   X   X
            x/b  X   -   X
            y/a  X   X   -
        """, port=port, proto=proto)
