"""Properties of NetworkPolicy semantics that must hold for any scenario, on generated ones."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeovn_conformance import builders as b
from kubeovn_conformance.model import NetworkPolicy, Scenario, scenario_from_documents
from kubeovn_conformance.oracle import ALLOW, DENY, Oracle, Probe

SETTINGS = settings(derandomize=True, max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMESPACES = ("x", "y", "z")
PROBE_PORTS = ((80, "TCP"), (81, "TCP"), (53, "UDP"), (8080, "TCP"))
CONTAINER_PORTS = (b.container_port(80, name="http"), b.container_port(81),
                   b.container_port(53, "UDP", "dns"), b.container_port(8080, name="alt"))

label_values = st.sampled_from(["a", "b"])
pod_labels = st.fixed_dictionaries({}, optional={"app": label_values, "tier": label_values})

requirements = st.one_of(
    st.builds(lambda k, v: b.expr(k, "In", v), st.sampled_from(["app", "tier"]), label_values),
    st.builds(lambda k, v: b.expr(k, "NotIn", v), st.sampled_from(["app", "tier"]), label_values),
    st.builds(lambda k: b.expr(k, "Exists"), st.sampled_from(["app", "tier"])),
    st.builds(lambda k: b.expr(k, "DoesNotExist"), st.sampled_from(["app", "tier"])),
)
pod_selectors = st.builds(lambda labels, exprs: b.select(*exprs, **labels),
                          pod_labels, st.lists(requirements, max_size=1))
ns_selectors = st.one_of(st.just(b.select()),
                         st.builds(lambda v: b.select(team=v), label_values),
                         st.builds(lambda n: b.select(b.expr("kubernetes.io/metadata.name", "In", n)),
                                   st.sampled_from(NAMESPACES)))
peers = st.one_of(
    st.builds(lambda p: b.peer(pods=p), pod_selectors),
    st.builds(lambda n: b.peer(namespaces=n), ns_selectors),
    st.builds(lambda p, n: b.peer(pods=p, namespaces=n), pod_selectors, ns_selectors),
    st.builds(lambda e: b.block("10.0.0.0/24", *e), st.sampled_from([(), ("10.0.0.0/26",)])),
)
policy_ports = st.sampled_from([b.port(80), b.port(81), b.port("http"), b.port("dns", "UDP"),
                                b.port(53, "UDP"), b.port(80, end=81), b.port(protocol="UDP"),
                                b.port(8080, "SCTP"), b.port("alt")])
rules = st.builds(lambda ps, ports: b.rule(*ps, ports=ports),
                  st.lists(peers, max_size=2),
                  st.one_of(st.none(), st.lists(policy_ports, min_size=1, max_size=2)))
rule_lists = st.one_of(st.none(), st.lists(rules, max_size=2))
type_choices = st.sampled_from([None, ("Ingress",), ("Egress",), ("Ingress", "Egress")])


@st.composite
def policy_lists(draw, min_size: int = 0, max_size: int = 4) -> list[NetworkPolicy]:
    n = draw(st.integers(min_size, max_size))
    return [b.policy(draw(st.sampled_from(NAMESPACES)), f"np{i}", draw(pod_selectors),
                     ingress=draw(rule_lists), egress=draw(rule_lists), types=draw(type_choices))
            for i in range(n)]


@st.composite
def scenarios(draw, min_policies: int = 0) -> Scenario:
    nss = tuple(b.namespace(n, **draw(st.fixed_dictionaries({}, optional={"team": label_values})))
                for n in NAMESPACES)
    count = draw(st.integers(2, 5))
    pods = tuple(b.pod(draw(st.sampled_from(NAMESPACES)), f"p{i}", draw(pod_labels),
                       draw(st.lists(st.sampled_from(CONTAINER_PORTS), unique=True, max_size=3)),
                       ip=f"10.0.0.{draw(st.sampled_from([5, 70, 130]))  + i}")
                 for i in range(count))
    services = (b.service("x", "svc", {"app": "a"}, b.service_port(1080, 80),
                          b.service_port(1081, "http")),)
    return Scenario(nss, pods, services, tuple(draw(policy_lists(min_policies))))


def matrix(s: Scenario) -> dict[tuple, str]:
    """Every verdict on a fixed probe set, so scenarios with different policies compare."""
    o = Oracle(s)
    out: dict[tuple, str] = {}
    for c in s.pods:
        for d in s.pods:
            if c.key != d.key:
                for port, proto in PROBE_PORTS:
                    out[(c.key, d.key, port, proto)] = o.pod_verdict(c, d, port, proto)[0]
        for svc in s.services:
            for sp in svc.ports:
                e = o.expect(Probe(c.key, svc.key, "service", sp.port, sp.target_port, sp.protocol))
                out[(c.key, svc.key, sp.port, sp.protocol)] = e.verdict
    return out


def isolated(s: Scenario, pod_key: str, direction: str) -> bool:
    """Written independently of the oracle: some policy selects the pod and has the type."""
    pod = s.pod(pod_key)
    return any(p.namespace == pod.namespace and p.pod_selector.matches(pod.label_map)
               and direction in p.types for p in s.policies)


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_verdicts_do_not_depend_on_policy_order(s, rnd):
    shuffled = list(s.policies)
    rnd.shuffle(shuffled)
    assert matrix(s.with_policies(reversed(s.policies))) == matrix(s)
    assert matrix(s.with_policies(shuffled)) == matrix(s)


@SETTINGS
@given(scenarios(), policy_lists(min_size=1, max_size=2), st.sampled_from(["label", "namespace"]))
def test_a_policy_that_selects_no_pod_changes_nothing(s, extra, how):
    ghosts = []
    for i, pol in enumerate(extra):
        if how == "label":  # a label no generated pod carries
            pol = replace(pol, pod_selector=b.select(ghost="yes"))
        else:  # a namespace without pods
            pol = replace(pol, namespace="empty")
        ghosts.append(replace(pol, name=f"ghost{i}"))
    before = matrix(s)
    after = matrix(s.with_policies([*s.policies, *ghosts]))
    assert after == before


@SETTINGS
@given(scenarios(min_policies=1), st.data())
def test_adding_an_allow_rule_never_turns_allow_into_deny(s, data):
    i = data.draw(st.integers(0, len(s.policies) - 1))
    pol = s.policies[i]
    # Only directions the policy already has: adding the first egress rule to a policy without
    # policyTypes would make it an egress policy, which is not "adding an allow rule".
    direction = data.draw(st.sampled_from(pol.types))
    new_rule = data.draw(rules)
    field = "ingress" if direction == "Ingress" else "egress"
    grown = replace(pol, **{field: (*pol.rules(direction), new_rule)})
    assert grown.types == pol.types
    policies = list(s.policies)
    policies[i] = grown
    before, after = matrix(s), matrix(s.with_policies(policies))
    turned = [k for k, v in before.items() if v == ALLOW and after[k] != ALLOW]
    assert not turned, turned


@SETTINGS
@given(scenarios())
def test_an_unselected_direction_is_never_the_cause_of_a_deny(s):
    o = Oracle(s)
    for c in s.pods:
        for d in s.pods:
            if c.key == d.key:
                continue
            open_egress = not isolated(s, c.key, "Egress")
            open_ingress = not isolated(s, d.key, "Ingress")
            for port, proto in PROBE_PORTS:
                verdict, why = o.pod_verdict(c, d, port, proto)
                if open_egress and open_ingress:
                    assert verdict == ALLOW, why
                if verdict == DENY:
                    if open_egress:
                        assert f"{c.key} egress isolated" not in why
                    if open_ingress:
                        assert f"{d.key} ingress isolated" not in why


@SETTINGS
@given(scenarios())
def test_without_policies_everything_is_allowed(s):
    verdicts = set(matrix(s.with_policies([])).values())
    assert verdicts <= {ALLOW, "undefined"}
    # undefined only for the service: no endpoint or hairpin
    assert all(v == ALLOW for k, v in matrix(s.with_policies([])).items() if "/svc/" not in k[1])


@SETTINGS
@given(scenarios())
def test_service_verdict_equals_the_pod_verdict_of_its_single_backend(s):
    o = Oracle(s)
    (svc,) = s.services
    backends = s.backends(svc)
    if len(backends) != 1:
        return
    (backend,) = backends
    for c in s.pods:
        if c.key == backend.key:
            continue
        e = o.expect(Probe(c.key, svc.key, "service", 1080, 80, "TCP"))
        assert e.verdict == o.pod_verdict(c, backend, 80, "TCP")[0]


@SETTINGS
@given(scenarios())
def test_manifest_round_trip_keeps_the_scenario(s):
    again = scenario_from_documents(("mem", o.to_manifest()) for o in s.objects())
    assert again == s
    assert matrix(again) == matrix(s)
