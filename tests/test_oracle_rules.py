"""One test per semantic rule of design.md "Expected semantics"; each asserts verdicts."""

from __future__ import annotations

from kubeovn_conformance import builders as b
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.oracle import ALLOW, DENY, UNDEFINED, Oracle, Probe

TCP80 = [b.container_port(80)]


def verdict(s: Scenario, client: str, dst: str, port: int = 80, proto: str = "TCP") -> str:
    o = Oracle(s)
    return o.pod_verdict(o.scenario.pod(client), o.scenario.pod(dst), port, proto)[0]


def reason(s: Scenario, client: str, dst: str, port: int = 80, proto: str = "TCP") -> str:
    o = Oracle(s)
    return o.pod_verdict(o.scenario.pod(client), o.scenario.pod(dst), port, proto)[1]


def two_ns(*policies, pods=None) -> Scenario:
    """x/a, x/b, y/a, y/b; pods labelled pod=<name>, namespaces ns=<name>."""
    pods = pods or tuple(b.pod(ns, n, {"pod": n}, TCP80) for ns in "xy" for n in "ab")
    return Scenario((b.namespace("x", ns="x"), b.namespace("y", ns="y")), tuple(pods), (),
                    tuple(policies))


# --------------------------------------------------------------------------- policyTypes


def test_no_policy_allows_everything():
    s = two_ns()
    assert {verdict(s, c, d) for c in ("x/a", "y/b") for d in ("x/b", "y/a")} == {ALLOW}


def test_policy_without_types_or_rules_is_ingress_deny():
    s = two_ns(b.policy("x", "p"))
    assert s.policies[0].types == ("Ingress",)
    assert verdict(s, "y/a", "x/a") == DENY
    assert verdict(s, "x/a", "y/a") == ALLOW  # egress untouched


def test_egress_rules_without_types_add_egress():
    s = two_ns(b.policy("x", "p", egress=[b.rule(b.peer(pods=b.select(pod="b")))]))
    assert s.policies[0].types == ("Ingress", "Egress")
    assert verdict(s, "x/a", "x/b") == DENY  # ingress to x/b denied (Ingress is always a type)
    assert verdict(s, "x/a", "y/a") == DENY  # egress to y/a: y/a is not pod=b in x
    assert verdict(s, "y/a", "y/b") == ALLOW


def test_empty_egress_list_without_types_is_not_an_egress_policy():
    # Kubernetes defaulting looks at len(egress) != 0, so `egress: []` adds no Egress type.
    s = two_ns(b.policy("x", "p", ingress=[b.rule()], egress=[]))
    assert s.policies[0].types == ("Ingress",)
    assert verdict(s, "x/a", "y/a") == ALLOW


def test_egress_only_type_leaves_ingress_open():
    s = two_ns(b.deny_all("x", types=["Egress"]))
    assert verdict(s, "y/a", "x/a") == ALLOW
    assert verdict(s, "x/a", "y/a") == DENY
    assert verdict(s, "x/a", "x/b") == DENY


def test_explicit_types_ignore_rules_of_the_other_direction():
    # policyTypes [Egress] with ingress rules: the ingress rules do nothing, ingress stays open.
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule()], egress=[], types=["Egress"]))
    assert verdict(s, "y/a", "x/a") == ALLOW
    assert verdict(s, "x/a", "y/a") == DENY


# --------------------------------------------------------------------------- isolation


def test_isolation_is_per_direction_and_per_pod():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[]))
    assert verdict(s, "y/a", "x/a") == DENY
    assert verdict(s, "y/a", "x/b") == ALLOW  # x/b is not selected
    assert verdict(s, "x/a", "y/a") == ALLOW  # x/a egress not isolated


def test_connection_needs_client_egress_and_server_ingress():
    egress_ok = b.policy("y", "eg", b.select(pod="a"), egress=[b.rule(b.peer(namespaces=b.select(ns="x")))])
    ingress_deny = b.policy("x", "in", b.select(pod="a"), ingress=[])
    s = two_ns(egress_ok, ingress_deny)
    assert verdict(s, "y/a", "x/a") == DENY  # egress allows, ingress denies
    assert verdict(s, "y/a", "x/b") == ALLOW  # both allow
    ingress_ok = b.policy("x", "in", b.select(pod="a"), ingress=[b.rule()])
    egress_deny = b.policy("y", "eg", b.select(pod="a"), egress=[], types=["Egress"])
    s = two_ns(ingress_ok, egress_deny)
    assert verdict(s, "y/a", "x/a") == DENY  # ingress allows, egress denies
    assert "y/a egress isolated by y/eg" in reason(s, "y/a", "x/a")


def test_policies_are_a_union():
    only_b = b.policy("x", "from-b", b.select(pod="a"), ingress=[b.rule(b.peer(pods=b.select(pod="b")))])
    from_y = b.policy("x", "from-y", b.select(pod="a"),
                      ingress=[b.rule(b.peer(namespaces=b.select(ns="y"), pods=b.select(pod="a")))])
    s = two_ns(only_b, from_y)
    assert verdict(s, "x/b", "x/a") == ALLOW
    assert verdict(s, "y/a", "x/a") == ALLOW
    assert verdict(s, "y/b", "x/a") == DENY
    # a deny-all next to an allow does not take anything away
    s = two_ns(b.deny_all("x"), only_b)
    assert verdict(s, "x/b", "x/a") == ALLOW
    assert verdict(s, "x/a", "x/b") == DENY


def test_empty_pod_selector_selects_every_pod_of_its_namespace_only():
    s = two_ns(b.policy("x", "all", b.select(), ingress=[]))
    assert verdict(s, "y/a", "x/a") == DENY
    assert verdict(s, "y/a", "x/b") == DENY
    assert verdict(s, "x/a", "y/b") == ALLOW


def test_empty_ingress_list_allows_nothing():
    s = two_ns(b.policy("x", "none", b.select(pod="a"), ingress=[], types=["Ingress"]))
    for c in ("x/b", "y/a", "y/b"):
        assert verdict(s, c, "x/a") == DENY


def test_empty_rule_allows_everything():
    s = two_ns(b.policy("x", "all", b.select(pod="a"), ingress=[b.rule()], egress=[b.rule()]))
    for c, d in (("x/b", "x/a"), ("y/a", "x/a"), ("x/a", "y/b")):
        assert verdict(s, c, d) == ALLOW
    assert verdict(s, "y/a", "x/a", 9999, "UDP") == ALLOW


def test_missing_peers_means_any_peer_with_the_listed_ports():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(ports=[b.port(80)])]))
    assert verdict(s, "y/b", "x/a", 80) == ALLOW
    assert verdict(s, "y/b", "x/a", 81) == DENY


def test_missing_ports_means_any_port_and_protocol_for_the_listed_peers():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(b.peer(pods=b.select(pod="b")))]))
    assert verdict(s, "x/b", "x/a", 12345, "UDP") == ALLOW
    assert verdict(s, "x/b", "x/a", 7, "SCTP") == ALLOW
    assert verdict(s, "y/b", "x/a", 80) == DENY


def test_empty_from_and_empty_ports_lists_mean_any():
    # The API: "If this field is empty or missing, this rule matches all sources / ports".
    from kubeovn_conformance.model import Rule

    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[Rule(peers=(), ports=())]))
    assert verdict(s, "y/b", "x/a", 80) == ALLOW
    assert verdict(s, "x/b", "x/a", 53, "UDP") == ALLOW
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[Rule(peers=(), ports=(b.port(81),))]))
    assert verdict(s, "y/b", "x/a", 81) == ALLOW
    assert verdict(s, "y/b", "x/a", 80) == DENY


# --------------------------------------------------------------------------- peers


def test_namespace_and_pod_selector_in_one_peer_are_anded():
    s = two_ns(b.policy("x", "and", b.select(pod="a"),
                        ingress=[b.rule(b.peer(pods=b.select(pod="b"), namespaces=b.select(ns="y")))]))
    assert verdict(s, "y/b", "x/a") == ALLOW
    assert verdict(s, "y/a", "x/a") == DENY  # namespace matches, pod does not
    assert verdict(s, "x/b", "x/a") == DENY  # pod matches, namespace does not


def test_separate_peers_are_ored():
    s = two_ns(b.policy("x", "or", b.select(pod="a"),
                        ingress=[b.rule(b.peer(pods=b.select(pod="b")),
                                        b.peer(namespaces=b.select(ns="y")))]))
    assert verdict(s, "y/b", "x/a") == ALLOW
    assert verdict(s, "y/a", "x/a") == ALLOW  # by namespace
    assert verdict(s, "x/b", "x/a") == ALLOW  # by pod in the policy's namespace


def test_pod_selector_alone_means_the_policys_namespace():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(b.peer(pods=b.select()))]))
    assert verdict(s, "x/b", "x/a") == ALLOW
    assert verdict(s, "y/a", "x/a") == DENY


def test_empty_namespace_selector_means_all_namespaces():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(b.peer(namespaces=b.select()))]))
    assert verdict(s, "x/b", "x/a") == ALLOW
    assert verdict(s, "y/b", "x/a") == ALLOW


def _expr_scenario(*exprs) -> Scenario:
    pods = (b.pod("x", "srv", {"role": "srv"}, TCP80),
            b.pod("x", "red", {"color": "red"}),
            b.pod("x", "blue", {"color": "blue"}),
            b.pod("x", "plain"))
    pol = b.policy("x", "p", b.select(role="srv"), ingress=[b.rule(b.peer(pods=b.select(*exprs)))])
    return Scenario(pods=pods, policies=(pol,))


def _allowed_clients(s: Scenario) -> set[str]:
    return {c for c in ("x/red", "x/blue", "x/plain") if verdict(s, c, "x/srv") == ALLOW}


def test_match_expressions_in():
    assert _allowed_clients(_expr_scenario(b.expr("color", "In", "red", "green"))) == {"x/red"}


def test_match_expressions_not_in_matches_pods_without_the_key():
    assert _allowed_clients(_expr_scenario(b.expr("color", "NotIn", "red"))) == {"x/blue", "x/plain"}


def test_match_expressions_exists():
    assert _allowed_clients(_expr_scenario(b.expr("color", "Exists"))) == {"x/red", "x/blue"}


def test_match_expressions_does_not_exist():
    assert _allowed_clients(_expr_scenario(b.expr("color", "DoesNotExist"))) == {"x/plain"}


def test_match_labels_and_expressions_are_anded():
    s = _expr_scenario(b.expr("color", "Exists"), b.expr("color", "NotIn", "blue"))
    assert _allowed_clients(s) == {"x/red"}


def test_namespace_selector_by_metadata_name_label():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[
        b.rule(b.peer(namespaces=b.select(**{"kubernetes.io/metadata.name": "y"})))]))
    assert verdict(s, "y/a", "x/a") == ALLOW
    assert verdict(s, "x/b", "x/a") == DENY


# --------------------------------------------------------------------------- ports


def test_named_port_resolves_per_destination_pod():
    # Same name "web", different numbers on two pods; a third pod lacks the name.
    pods = (b.pod("x", "one", {"app": "srv"}, [b.container_port(8080, name="web")]),
            b.pod("x", "two", {"app": "srv"}, [b.container_port(9090, name="web")]),
            b.pod("x", "none", {"app": "srv"}, [b.container_port(8080)]),
            b.pod("y", "c"))
    s = Scenario(pods=pods, policies=(b.policy("x", "p", b.select(app="srv"),
                                               ingress=[b.rule(ports=[b.port("web")])]),))
    assert verdict(s, "y/c", "x/one", 8080) == ALLOW
    assert verdict(s, "y/c", "x/one", 9090) == DENY
    assert verdict(s, "y/c", "x/two", 9090) == ALLOW
    assert verdict(s, "y/c", "x/two", 8080) == DENY
    assert verdict(s, "y/c", "x/none", 8080) == DENY  # no port named web


def test_named_port_resolves_by_protocol_too():
    pods = (b.pod("x", "srv", {"app": "srv"}, [b.container_port(53, "UDP", "dns")]), b.pod("y", "c"))
    tcp = Scenario(pods=pods, policies=(b.policy("x", "p", b.select(app="srv"),
                                                 ingress=[b.rule(ports=[b.port("dns")])]),))
    assert verdict(tcp, "y/c", "x/srv", 53, "TCP") == DENY  # TCP/dns does not exist on the pod
    assert verdict(tcp, "y/c", "x/srv", 53, "UDP") == DENY  # the rule is for TCP only
    udp = Scenario(pods=pods, policies=(b.policy("x", "p", b.select(app="srv"),
                                                 ingress=[b.rule(ports=[b.port("dns", "UDP")])]),))
    assert verdict(udp, "y/c", "x/srv", 53, "UDP") == ALLOW


def test_egress_named_port_resolves_on_the_destination():
    pods = (b.pod("x", "c", {"app": "c"}),
            b.pod("y", "s1", ports=[b.container_port(8080, name="web")]),
            b.pod("y", "s2", ports=[b.container_port(9090, name="web")]))
    s = Scenario(pods=pods, policies=(b.policy("x", "p", b.select(app="c"),
                                               egress=[b.rule(ports=[b.port("web")])]),))
    assert verdict(s, "x/c", "y/s1", 8080) == ALLOW
    assert verdict(s, "x/c", "y/s2", 9090) == ALLOW
    assert verdict(s, "x/c", "y/s2", 8080) == DENY


def test_end_port_range_is_inclusive():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(ports=[b.port(8000, end=8010)])]))
    assert verdict(s, "y/a", "x/a", 7999) == DENY
    assert verdict(s, "y/a", "x/a", 8000) == ALLOW
    assert verdict(s, "y/a", "x/a", 8005) == ALLOW
    assert verdict(s, "y/a", "x/a", 8010) == ALLOW
    assert verdict(s, "y/a", "x/a", 8011) == DENY
    assert verdict(s, "y/a", "x/a", 8005, "UDP") == DENY


def test_protocol_defaults_to_tcp_and_protocols_are_distinct():
    assert b.port(80).protocol == "TCP"
    for proto in ("TCP", "UDP", "SCTP"):
        s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(ports=[b.port(80, proto)])]))
        assert verdict(s, "y/a", "x/a", 80, proto) == ALLOW
        for other in {"TCP", "UDP", "SCTP"} - {proto}:
            assert verdict(s, "y/a", "x/a", 80, other) == DENY, (proto, other)


def test_protocol_only_rule_allows_every_port_of_that_protocol():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(ports=[b.port(protocol="UDP")])]))
    assert verdict(s, "y/a", "x/a", 1, "UDP") == ALLOW
    assert verdict(s, "y/a", "x/a", 65535, "UDP") == ALLOW
    assert verdict(s, "y/a", "x/a", 80, "TCP") == DENY


# --------------------------------------------------------------------------- ipBlock


def _ip_scenario(*policies) -> Scenario:
    pods = (b.pod("x", "srv", {"app": "srv"}, TCP80, ip="10.16.0.10"),
            b.pod("y", "in", ip="10.16.1.5"),
            b.pod("y", "excepted", ip="10.16.2.5"),
            b.pod("y", "out", ip="192.168.0.5"),
            b.pod("y", "noip"))
    return Scenario(pods=pods, policies=tuple(policies))


def test_ip_block_with_except_for_ingress():
    s = _ip_scenario(b.policy("x", "p", b.select(app="srv"),
                              ingress=[b.rule(b.block("10.16.0.0/16", "10.16.2.0/24"))]))
    assert verdict(s, "y/in", "x/srv") == ALLOW
    assert verdict(s, "y/excepted", "x/srv") == DENY
    assert verdict(s, "y/out", "x/srv") == DENY


def test_ip_block_with_except_for_egress():
    s = _ip_scenario(b.policy("x", "p", b.select(app="srv"),
                              egress=[b.rule(b.block("10.16.0.0/16", "10.16.2.0/24"))]))
    assert verdict(s, "x/srv", "y/in") == ALLOW
    assert verdict(s, "x/srv", "y/excepted") == DENY
    assert verdict(s, "x/srv", "y/out") == DENY


def test_ip_block_needs_the_pod_ip_otherwise_undefined():
    s = _ip_scenario(b.policy("x", "p", b.select(app="srv"), ingress=[b.rule(b.block("10.16.0.0/16"))]))
    assert verdict(s, "y/noip", "x/srv") == UNDEFINED
    assert "y/noip" in reason(s, "y/noip", "x/srv")


def test_pod_without_ip_is_decided_when_another_rule_allows_it():
    s = _ip_scenario(b.policy("x", "p", b.select(app="srv"),
                              ingress=[b.rule(b.block("10.16.0.0/16")),
                                       b.rule(b.peer(namespaces=b.select()))]))
    assert verdict(s, "y/noip", "x/srv") == ALLOW


def test_ip_block_does_not_match_other_address_family():
    pods = (b.pod("x", "srv", {"app": "srv"}, TCP80, ip="10.16.0.10"), b.pod("y", "v6", ip="fd00::5"))
    s = Scenario(pods=pods, policies=(b.policy("x", "p", b.select(app="srv"),
                                               ingress=[b.rule(b.block("0.0.0.0/0"))]),))
    assert verdict(s, "y/v6", "x/srv") == DENY


# --------------------------------------------------------------------------- undefined


def test_loopback_is_undefined_and_not_probed():
    s = two_ns(b.deny_all("x"))
    assert verdict(s, "x/a", "x/a") == UNDEFINED
    assert not [p for p in Oracle(s).probes() if p.path == "pod" and p.client == p.target]


def _svc_scenario(*policies, backends=("srv",), extra=()) -> Scenario:
    pods = [b.pod("x", n, {"app": "srv", "name": n}, [b.container_port(8000)]) for n in backends]
    pods += [b.pod("y", "c", {"app": "c"}), *extra]
    svc = b.service("x", "svc", {"app": "srv"}, b.service_port(80, 8000, node_port=30080))
    return Scenario(pods=tuple(pods), services=(svc,), policies=tuple(policies))


def test_hairpin_through_own_service_is_undefined():
    s = _svc_scenario()
    e = Oracle(s).expect(Probe("x/srv", "x/svc/svc", "service", 80, 8000, "TCP"))
    assert e.verdict == UNDEFINED and "hairpin" in e.reason
    assert e.expected_observed is None


def test_node_port_is_undefined():
    s = _svc_scenario()
    o = Oracle(s)
    e = o.expect(Probe("y/c", "x/svc/svc", "nodeport", 30080, 8000, "TCP"))
    assert e.verdict == UNDEFINED and "NodePort" in e.reason
    assert any(p.path == "nodeport" and p.port == 30080 for p in o.probes(include_nodeport=True))
    assert not any(p.path == "nodeport" for p in o.probes())


def test_host_network_peers_are_undefined_both_ways():
    pods = (b.pod("x", "srv", {"app": "srv"}, TCP80), b.pod("x", "host", host_network=True),
            b.pod("y", "c"))
    s = Scenario(pods=pods, policies=(b.deny_all("x"),))
    assert verdict(s, "x/host", "x/srv") == UNDEFINED
    assert verdict(s, "x/srv", "x/host") == UNDEFINED
    assert verdict(s, "y/c", "x/srv") == DENY  # ordinary pods still decided
    assert "host network" in reason(s, "x/host", "x/srv")


def test_service_whose_backends_disagree_is_undefined():
    # Only backend "one" admits y/c: the result depends on the load balancer's pick.
    pol = b.policy("x", "p", b.select(name="two"), ingress=[])
    s = _svc_scenario(pol, backends=("one", "two"))
    e = Oracle(s).expect(Probe("y/c", "x/svc/svc", "service", 80, 8000, "TCP"))
    assert e.verdict == UNDEFINED
    assert "disagree" in e.reason and "x/one:8000 allow" in e.reason and "x/two:8000 deny" in e.reason


def test_service_whose_backends_agree_is_decided():
    s = _svc_scenario(b.deny_all("x"), backends=("one", "two"))
    e = Oracle(s).expect(Probe("y/c", "x/svc/svc", "service", 80, 8000, "TCP"))
    assert e.verdict == DENY
    assert "x/one:8000" in e.reason and "x/two:8000" in e.reason


def test_service_without_endpoints_is_undefined_with_reason():
    s = Scenario(pods=(b.pod("y", "c"),),
                 services=(b.service("x", "svc", {"app": "gone"}, b.service_port(80, 8000)),))
    e = Oracle(s).expect(Probe("y/c", "x/svc/svc", "service", 80, 8000, "TCP"))
    assert e.verdict == UNDEFINED and "no endpoints" in e.reason


def test_service_whose_named_target_port_no_backend_declares_is_undefined():
    s = Scenario(pods=(b.pod("x", "srv", {"app": "srv"}, [b.container_port(8000)]), b.pod("y", "c")),
                 services=(b.service("x", "svc", {"app": "srv"}, b.service_port(80, "http")),))
    e = Oracle(s).expect(Probe("y/c", "x/svc/svc", "service", 80, "http", "TCP"))
    assert e.verdict == UNDEFINED and "no endpoints" in e.reason and "http" in e.reason


def test_service_with_a_backend_that_lacks_the_named_port_uses_only_the_others():
    pods = (b.pod("x", "named", {"app": "srv"}, [b.container_port(8000, name="http")]),
            b.pod("x", "unnamed", {"app": "srv"}, [b.container_port(8000)]),
            b.pod("y", "c"))
    pol = b.policy("x", "p", b.select(), ingress=[b.rule(ports=[b.port("http")])])
    s = Scenario(pods=pods, services=(b.service("x", "svc", {"app": "srv"}, b.service_port(80, "http")),),
                 policies=(pol,))
    e = Oracle(s).expect(Probe("y/c", "x/svc/svc", "service", 80, 8000, "TCP"))
    # x/unnamed is no endpoint, so its (deny) verdict does not make the Service undefined
    assert e.verdict == ALLOW
    assert "x/unnamed" not in e.reason


# --------------------------------------------------------------------------- reasons


def test_deny_reason_names_pod_direction_policy_port_and_peer():
    s = two_ns(b.deny_all("y", "default-deny", types=["Egress"]))
    assert reason(s, "y/a", "x/a", 8000) == (
        "y/a egress isolated by y/default-deny; no rule allows TCP/8000 to x/a")
    s = two_ns(b.deny_all("x", "default-deny"))
    assert reason(s, "y/a", "x/a", 8000) == (
        "x/a ingress isolated by x/default-deny; no rule allows TCP/8000 from y/a")


def test_deny_reason_names_every_isolating_policy_and_both_directions():
    s = two_ns(b.deny_all("x", "in-1"), b.policy("x", "in-2", b.select(pod="a"), ingress=[]),
               b.deny_all("y", "out", types=["Egress"]))
    r = reason(s, "y/a", "x/a")
    assert "y/a egress isolated by y/out" in r
    assert "x/a ingress isolated by x/in-1, x/in-2" in r


def test_allow_reason_names_the_rule_that_allows():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(ports=[b.port(81)]),
                                                             b.rule(b.peer(namespaces=b.select(ns="y")))]))
    r = reason(s, "y/a", "x/a")
    assert "x/a ingress allowed by x/p ingress[1]" in r and "namespaces[ns=y]" in r
    assert "y/a egress not isolated" in r


# --------------------------------------------------------------------------- expected observation


def test_expected_observation_per_verdict_and_listener():
    s = two_ns(b.policy("x", "p", b.select(pod="a"), ingress=[b.rule(ports=[b.port(80), b.port(81)])]))
    o = Oracle(s)
    assert o.expect(Probe("y/a", "x/a", "pod", 80, 80, "TCP")).expected_observed == "connected"
    assert o.expect(Probe("y/a", "x/a", "pod", 81, 81, "TCP")).expected_observed == "refused"
    denied = o.expect(Probe("y/a", "x/a", "pod", 82, 82, "TCP"))
    assert (denied.verdict, denied.expected_observed) == (DENY, "timeout")
    # port 81 is probed although nothing listens: the rule names it
    assert (81, "TCP") in o.probe_ports(s.pod("x/a"))


def test_expected_observation_through_a_service():
    s = _svc_scenario()
    e = Oracle(s).expect(Probe("y/c", "x/svc/svc", "service", 80, 8000, "TCP"))
    assert (e.verdict, e.expected_observed) == (ALLOW, "connected")


def test_probes_cover_each_pair_each_port_and_each_service_port():
    s = _svc_scenario(b.policy("x", "p", b.select(), ingress=[b.rule(ports=[b.port(9000, "UDP")])]))
    probes = Oracle(s).probes()
    pod_probes = {(p.client, p.target, p.port, p.protocol) for p in probes if p.path == "pod"}
    assert ("y/c", "x/srv", 8000, "TCP") in pod_probes
    assert ("y/c", "x/srv", 9000, "UDP") in pod_probes  # allowed by a rule, nobody listens
    svc_probes = [(p.client, p.port, p.target_port) for p in probes if p.path == "service"]
    assert sorted(svc_probes) == [("x/srv", 80, 8000), ("y/c", 80, 8000)]
