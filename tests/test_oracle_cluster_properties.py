"""Properties of the tiers that must hold for any scenario, on generated ones: Pass never
allows or denies by itself, a Baseline policy never overrides a NetworkPolicy, priority order
decides, list order does not, manifests round-trip."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeovn_conformance import builders as b
from kubeovn_conformance import cluster_builders as cb
from kubeovn_conformance.cluster_policy import ADMIN, BANP, BASELINE, ClusterPolicy
from kubeovn_conformance.model import Scenario, scenario_from_documents
from kubeovn_conformance.oracle import ALLOW, DENY, Oracle, Probe

SETTINGS = settings(derandomize=True, max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMESPACES = ("x", "y", "z")
PROBE_PORTS = ((80, "TCP"), (81, "TCP"), (53, "UDP"))
CONTAINER_PORTS = (b.container_port(80, name="http"), b.container_port(81),
                   b.container_port(53, "UDP", "dns"))

values = st.sampled_from(["a", "b"])
pod_labels = st.fixed_dictionaries({}, optional={"app": values})
selectors = st.one_of(st.just(b.select()), st.builds(lambda v: b.select(app=v), values))
ns_selectors = st.one_of(st.just(b.select()), st.builds(lambda v: b.select(team=v), values),
                         st.builds(lambda n: b.select(**{"kubernetes.io/metadata.name": n}),
                                   st.sampled_from(NAMESPACES)))
subjects = st.one_of(st.builds(cb.subject, ns_selectors),
                     st.builds(cb.subject, ns_selectors, selectors))
selector_peers = st.one_of(st.builds(cb.peer_ns, ns_selectors),
                          st.builds(cb.peer_pods, ns_selectors, selectors))
egress_peers = st.one_of(selector_peers,
                         st.builds(cb.peer_networks, st.sampled_from(["10.0.0.0/25", "10.0.0.128/25"])))
ports = st.sampled_from([cb.tcp(80), cb.tcp(81), cb.udp(53), cb.tcp(80, 81), cb.named("http"),
                         cb.named("dns")])


def _rule(action, peers, pts):  # type: ignore[no-untyped-def]
    if pts and any(p.form == "networks" for p in peers):
        pts = [p for p in pts if p.name is None] or None  # the CRD refuses namedPort there
    return cb.crule(action, *peers, ports=pts)


def rules(actions: tuple[str, ...], egress: bool = False):  # type: ignore[no-untyped-def]
    return st.lists(st.builds(_rule, st.sampled_from(actions),
                              st.lists(egress_peers if egress else selector_peers, min_size=1, max_size=2),
                              st.one_of(st.none(), st.lists(ports, min_size=1, max_size=2))),
                    max_size=3)


@st.composite
def admin_policies(draw, actions: tuple[str, ...] = ("Allow", "Deny", "Pass")) -> list[ClusterPolicy]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            out.append(cb.anp(f"anp{i}", draw(st.integers(0, 4)), draw(subjects),
                              draw(rules(actions)), draw(rules(actions, egress=True))))
        else:
            cnp_actions = tuple("Accept" if a == "Allow" else a for a in actions)
            out.append(cb.cnp(f"cnp{i}", ADMIN, draw(st.integers(0, 16)), draw(subjects),
                              draw(rules(cnp_actions)), draw(rules(cnp_actions, egress=True))))
    return out


@st.composite
def baseline_policies(draw) -> list[ClusterPolicy]:  # type: ignore[no-untyped-def]
    out = []
    if draw(st.booleans()):
        out.append(cb.banp(draw(subjects), draw(rules(("Allow", "Deny"))),
                           draw(rules(("Allow", "Deny"), egress=True))))
    if draw(st.booleans()):
        acts = ("Accept", "Deny", "Pass")
        out.append(cb.cnp("base", BASELINE, draw(st.integers(0, 5)), draw(subjects),
                          draw(rules(acts)), draw(rules(acts, egress=True))))
    return out


np_rules = st.lists(st.builds(lambda ps, pts: b.rule(*ps, ports=pts),
                              st.lists(st.builds(lambda n: b.peer(namespaces=n), ns_selectors), max_size=1),
                              st.one_of(st.none(), st.just([b.port(80)]), st.just([b.port("dns", "UDP")]))),
                    max_size=2)


@st.composite
def scenarios(draw) -> Scenario:  # type: ignore[no-untyped-def]
    nss = tuple(b.namespace(n, **draw(st.fixed_dictionaries({}, optional={"team": values})))
                for n in NAMESPACES)
    pods = tuple(b.pod(draw(st.sampled_from(NAMESPACES)), f"p{i}", draw(pod_labels),
                       draw(st.lists(st.sampled_from(CONTAINER_PORTS), unique=True, max_size=3)),
                       ip=f"10.0.0.{draw(st.sampled_from([5, 70, 130, 200])) + i}")
                 for i in range(draw(st.integers(2, 4))))
    nps = tuple(b.policy(draw(st.sampled_from(NAMESPACES)), f"np{i}", draw(selectors),
                         ingress=draw(st.one_of(st.none(), np_rules)),
                         egress=draw(st.one_of(st.none(), np_rules)))
                for i in range(draw(st.integers(0, 2))))
    services = (b.service("x", "svc", {"app": "a"}, b.service_port(1080, 80)),)
    return Scenario(nss, pods, services, nps, tuple(draw(admin_policies()) + draw(baseline_policies())))


def decisions(s: Scenario) -> dict[tuple, tuple]:
    """(verdict, deciders) of every pod probe on a fixed set, plus Service verdicts."""
    o = Oracle(s)
    out: dict[tuple, tuple] = {}
    for c in s.pods:
        for d in s.pods:
            if c.key != d.key:
                for port, proto in PROBE_PORTS:
                    v, _, by = o.pod_decision(c, d, port, proto)
                    out[(c.key, d.key, port, proto)] = (v, by)
        for svc in s.services:
            for sp in svc.ports:
                e = o.expect(Probe(c.key, svc.key, "service", sp.port, sp.target_port, sp.protocol))
                out[(c.key, svc.key, sp.port, sp.protocol)] = (e.verdict, None)
    return out


def verdicts(s: Scenario) -> dict[tuple, str]:
    return {k: v for k, (v, _) in decisions(s).items()}


def passing(p: ClusterPolicy) -> ClusterPolicy:
    """The policy with every rule's action turned into Pass."""
    return replace(p, ingress=tuple(replace(r, action="Pass") for r in p.ingress),
                   egress=tuple(replace(r, action="Pass") for r in p.egress))


@SETTINGS
@given(scenarios())
def test_pass_never_allows_or_denies_by_itself(s):
    # A tier of Pass rules only decides nothing: the same as no such tier. (Pass does change
    # verdicts when it comes before an Allow or Deny of its tier: that is delegation.)
    for tier in (ADMIN, BASELINE):
        others = [p for p in s.cluster_policies if p.tier != tier]
        mine = [passing(p) for p in s.cluster_policies if p.tier == tier and p.kind != BANP]
        assert verdicts(s.with_cluster_policies(others + mine)) == verdicts(s.with_cluster_policies(others))


@SETTINGS
@given(scenarios())
def test_a_baseline_policy_never_overrides_a_networkpolicy(s):
    admin_only = s.with_cluster_policies([p for p in s.cluster_policies if p.tier == ADMIN])
    before, after = decisions(admin_only), decisions(s)
    for key, (verdict, by) in before.items():
        if by is None:
            continue
        # Where NetworkPolicy (or the Admin tier) decided both directions, the Baseline
        # tier cannot change anything, whatever its rules.
        if all(by[d]["tier"] in ("NetworkPolicy", "Admin") for d in ("egress", "ingress")):
            assert after[key][0] == verdict, key


@SETTINGS
@given(scenarios(), st.sampled_from(["Allow", "Deny"]))
def test_an_admin_decision_beats_networkpolicy_and_baseline(s, action):
    everyone = cb.anp("top", 0, cb.subject(), [cb.crule(action, cb.peer_ns())],
                      [cb.crule(action, cb.peer_ns())])
    got = verdicts(s.with_cluster_policies([everyone, *s.cluster_policies]))
    want = ALLOW if action == "Allow" else DENY
    for (_, target, _, _), v in got.items():
        if "/svc/" not in target:
            assert v == want
        else:
            assert v in (want, "undefined")  # a pod behind its own Service: hairpin


@SETTINGS
@given(scenarios(), st.integers(0, 50), st.integers(0, 50), st.sampled_from(["Ingress", "Egress"]))
def test_the_lower_priority_value_wins(s, first, second, direction):
    if first == second:
        first += 1
    allow, deny = (cb.crule("Allow", cb.peer_ns()),), (cb.crule("Deny", cb.peer_ns()),)
    a = cb.anp("a", first, cb.subject(), *((allow, ()) if direction == "Ingress" else ((), allow)))
    d = cb.anp("d", second, cb.subject(), *((deny, ()) if direction == "Ingress" else ((), deny)))
    winner = a if first < second else d
    for (_, target, _, _), (verdict, by) in decisions(s.with_cluster_policies([d, a])).items():
        if "/svc/" in target or by is None:
            continue
        assert by[direction.lower()] == {"tier": "Admin", "policy": winner.label,
                                         "rule": f"{direction.lower()}[0]"}
        if winner is d:
            assert verdict == DENY


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_list_order_and_monotone_renumbering_change_nothing(s, rnd):
    shuffled = list(s.cluster_policies)
    rnd.shuffle(shuffled)
    base = verdicts(s)
    assert verdicts(s.with_cluster_policies(shuffled)) == base

    # Every priority times 3: ranks keep their order and their ties (ANP p still ties CNP 4p).
    spread = [p if p.priority is None else replace(p, priority=p.priority * 3)
              for p in s.cluster_policies]
    assert verdicts(s.with_cluster_policies(spread)) == base


@SETTINGS
@given(scenarios())
def test_manifests_round_trip(s):
    again = scenario_from_documents(("mem", o.to_manifest()) for o in s.objects())
    assert again.cluster_policies == s.cluster_policies
    assert verdicts(again) == verdicts(s)
