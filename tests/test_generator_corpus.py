"""The generated cases alone catch every corpus entry the lab can express (pure, no lab).

For each entry of clusters/kube-ovn-history.yaml with a lab knob, the generated case built
from its seed row (generate/dimensions.py CORPUS_SEEDS) is run through the controller model
(sync.py) with the entry's history profile and with its fixed profile, and every probe is
judged by the ACLs translate.py builds (tests/ovn_eval.py): at least one cell must differ
from the oracle with the bug and agree with it with the fix. Transient entries are judged in
the intermediate state the old controller held (a stable cell seen otherwise there is a
leak), as the lab holds it while the runner samples. The two open bugs without a knob are
shown on the newest profile, and taken away by changing only what they depend on.

Not expressible purely, nor on the lab (clusters/kube-ovn-history.yaml says why): ClusterIPs
in the allow sets with un-DNAT'd traffic (svc-ips-in-allow-sets, enable-lb-false-egress-
denied: kube-proxy on a node), ICMPv6 (icmp6-stateless-allow), pod phases and IP reuse
(completed-pod-ips-in-allow-sets), the CNI/controller race (new-pod-before-port-group).
What the pure model cannot show for the transient entries is timing: here the intermediate
state is judged as a whole; on the lab the runner must sample inside it, which the lead
verifies with `pytest suites/test_generated.py --backend lab --lab-profile history:<fix> -k <id>`.

On the newest profile, every generated case the ACLs decide differently from the oracle is
explained by one of four mechanisms (three open corpus bugs and one finding of the
generator), each shown by removing only that mechanism, and clusters/known-issues.yaml
explains every such cell by its mechanism, without naming any generated case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any

import pytest

from kubeovn_conformance.backends.lab.profile import DEFAULT, Profile, get_profile
from kubeovn_conformance.cases import Case, Step
from kubeovn_conformance.generate import cases, ground, rows, to_case
from kubeovn_conformance.generate.dimensions import CORPUS_SEEDS
from kubeovn_conformance.generate.policies import TWIN_NAME
from kubeovn_conformance.history import load_corpus
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.pytest_plugin import KNOWN_ISSUES
from kubeovn_conformance.report.known import explain, load_known
from tests.ovn_eval import case_cells

CORPUS = load_corpus()
ROWS = [dict(r) for r in rows()]
CellKey = tuple[str, str, str, str, int, str]

# Entries whose shape another entry's seed row has (one update shows both transients; the
# label-resync bug has a pod and a namespace variant).
SEEDS_FOR = {"resync-recreates-address-sets": ("resync-delete-then-add",),
             "label-resync-by-match-diff": ("label-resync-by-match-diff", "label-resync-namespace")}
# Which generated case catches which entry (checked below, not assumed).
CAUGHT_BY = {
    "except-drop-acl": "gen-ingress-peer-ipblock-except-port-any-tcp-policy-two-overlapping",
    "egress-except-eq": "gen-egress-peer-ipblock-except-port-pod-tcp-step-update",
    "egress-no-clusterips": "gen-egress-peer-ns-port-any-tcp-policy-with-default-deny-step-delete",
    "endport-ignored":
        "gen-ingress-peer-any-port-endport-bounds-tcp-policy-same-name-two-ns-step-relabel-peer-in",
    "named-port-zero":
        "gen-ingress-peer-empty-list-port-named-target-tcp-policy-digit-name-step-relabel-peer-out",
    "egress-before-lb": "gen-egress-peer-ns-port-pod-tcp-policy-long-dotted-name-step-relabel-namespace",
    "late-pod-ignored": "gen-ingress-target-all-peer-ns-port-service-tcp-step-pod-after-policy",
    "resync-delete-then-add": "gen-ingress-peer-pod-port-pod-tcp-step-update",
    "resync-recreates-address-sets": "gen-ingress-peer-pod-port-pod-tcp-step-update",
    "digit-policy-name":
        "gen-ingress-target-all-peer-pod-port-endport-inside-tcp-policy-digit-name-step-service-retarget",
    "egress-rule0-empty": "gen-egress-peer-rule0-selects-nothing-port-pod-tcp-step-service-retarget",
    "except-scope":
        "gen-ingress-peer-ipblock-beside-selector-port-any-tcp-policy-long-dotted-name-step-pod-after-policy",
    "ipblocks-unparenthesized": "gen-ingress-peer-two-ipblocks-port-any-tcp-step-relabel-namespace",
    "label-resync-by-match-diff":
        "gen-ingress-target-all-peer-pod-port-any-tcp-policy-with-default-deny-step-relabel-peer-out",
    "policy-name-collision": "gen-ingress-peer-pod-port-endport-below-tcp-policy-dot-dash-twins-step-delete",
    "named-port-by-policy-namespace":
        "gen-egress-peer-any-port-named-target-tcp-policy-two-overlapping-step-pod-after-policy",
}


def seed_case(seed: str) -> Case:
    want = CORPUS_SEEDS[seed]
    return to_case(next(r for r in ROWS if all(r[k] == v for k, v in want.items())))


def _key(cell: dict[str, Any]) -> CellKey:
    return (cell["step"], cell["client"], cell["target"], cell["path"], cell["port"], cell["protocol"])


@cache
def wrong(case: Case, profile: Profile) -> frozenset[CellKey]:
    return frozenset(_key(c) for c in case_cells(case, profile) if c["observed"] != c["expected"])


def caught(case: Case, bug: Profile, fixed: Profile) -> frozenset[CellKey]:
    """Cells wrong with the bug and right with the fix."""
    return wrong(case, bug) - wrong(case, fixed)


# --------------------------------------------------------------------------- the corpus


def test_every_entry_the_lab_can_express_has_a_seed_row() -> None:
    expressible = {e.id for e in CORPUS if e.expressible}
    seeded = {e for e in expressible if all(s in CORPUS_SEEDS for s in SEEDS_FOR.get(e, (e,)))}
    assert expressible == seeded == set(CAUGHT_BY)


@pytest.mark.parametrize("entry", [e for e in CORPUS if e.expressible and e.fix], ids=lambda e: e.id)
def test_a_generated_case_catches_the_entry_and_passes_with_the_fix(entry: Any) -> None:
    bug = get_profile(DEFAULT.name if entry.status == "open" else entry.history_profile)
    fixed = get_profile(entry.fixed_profile)
    for seed in SEEDS_FOR.get(entry.id, (entry.id,)):
        case = seed_case(seed)
        cells = caught(case, bug, fixed)
        assert cells, f"{entry.id}: {case.id} shows nothing on {bug.name}"
        if entry.transient:  # caught as leaks: a stable cell seen otherwise while held
            assert {c["observed"] for c in case_cells(case, bug) if _key(c) in cells} == {"leak"}
    assert CAUGHT_BY[entry.id] == seed_case(SEEDS_FOR.get(entry.id, (entry.id,))[0]).id


def _without_ignored_rules(case: Case) -> Case:
    """The case with the rules of directions policyTypes leaves out removed (what the API
    says those rules mean: nothing)."""
    def strip(s: Scenario) -> Scenario:
        return s.with_policies(replace(
            p, ingress=p.ingress if "Ingress" in p.types else None,
            egress=p.egress if "Egress" in p.types or p.policy_types is None else None)
            for p in s.policies)
    return _map_steps(case, strip)


def _twin_renamed(case: Case) -> Case:
    return _map_steps(case, lambda s: s.with_policies(
        replace(p, name="gen-twin") if p.name == TWIN_NAME else p for p in s.policies))


def _same_port_names(case: Case) -> Case:
    protocols = ground.served(case.workload)
    return replace(case, workload=ground.ground(protocols, swapped=None))


def _map_steps(case: Case, change: Callable[[Scenario], Scenario]) -> Case:
    return replace(case, steps=tuple(Step(s.name, lambda w, b=s.build: change(b(w))) for s in case.steps))


def test_open_bugs_without_a_knob_are_caught_on_the_newest_profile() -> None:
    # Named ports resolve in the policy's namespace (network_policy.go v1.16.2:146): an egress
    # rule naming `web` gets x's 80, not z/c's 81. Same names everywhere: nothing differs.
    case = seed_case("named-port-by-policy-namespace")
    cells = wrong(case, DEFAULT)
    assert cells and {c[2].split("/")[0] for c in cells} == {ground.SWAPPED}
    assert not wrong(_same_port_names(case), DEFAULT)
    # gen-policy and gen.policy share port group gen.policy.x (network_policy.go v1.16.2:135).
    case = seed_case("policy-name-collision")
    assert wrong(case, DEFAULT) and not wrong(_twin_renamed(case), DEFAULT)
    assert [case.id, seed_case("named-port-by-policy-namespace").id] == [
        CAUGHT_BY["policy-name-collision"], CAUGHT_BY["named-port-by-policy-namespace"]]


# --------------------------------------------------------------------------- newest profile

FIXED_RESYNC = get_profile("fixed:label-resync-by-match-diff")
# mechanism -> how to take it away: (profile, case transformation)
MECHANISMS: dict[str, tuple[Profile, Callable[[Case], Case]]] = {
    "label-change-resync": (FIXED_RESYNC, lambda c: c),
    "policy-types-ignored-rules": (DEFAULT, _without_ignored_rules),
    "named-port-by-policy-namespace": (DEFAULT, _same_port_names),
    "port-group-name-collision": (DEFAULT, _twin_renamed),
}


def _all_but(case: Case, skip: str | None) -> tuple[Case, Profile]:
    profile = DEFAULT
    for name, (prof, change) in MECHANISMS.items():
        if name != skip:
            case = change(case)
            profile = prof if prof != DEFAULT else profile
    return case, profile


def newest_profile_failures() -> dict[str, set[str]]:
    """mechanism -> generated cases that fail on the newest profile because of it."""
    out: dict[str, set[str]] = {m: set() for m in MECHANISMS}
    for case in cases():
        if not wrong(case, DEFAULT):
            continue
        explained, profile = _all_but(case, None)
        assert not wrong(explained, profile), f"{case.id}: a difference no mechanism explains"
        for m in MECHANISMS:
            alone, profile = _all_but(case, m)
            if wrong(alone, profile):
                out[m].add(case.id)
        assert any(case.id in ids for ids in out.values()), case.id
    return out


def _unexplained(case: Case, profile: Profile, version: str) -> tuple[list[dict], list[str]]:
    """Wrong cells of `case` under `profile` that no known-issues.yaml entry explains (by
    mechanism, for `version`), and the ids of the entries that explain the others."""
    cells = [c for c in case_cells(case, profile) if c["observed"] != "leak"]
    got = explain(load_known(KNOWN_ISSUES), cells, case.id, "overlay", version, "lab")
    # Strict per cell, as on the lab: an entry matching a cell that passes fails the case.
    assert not got.stale, (case.id, [(dict(r), i.id) for r, i in got.stale[:1]])
    return list(got.unexplained), [i.id for i in got.issues()]


def test_on_the_newest_profile_known_issues_explain_every_failing_cell() -> None:
    """Every cell the newest profile's ACLs get wrong is explained by a known-issues.yaml
    mechanism (nothing names a generated case), and each of the four mechanisms explains
    some: named port, label resync, port group collision, policyTypes ignored."""
    failing = newest_profile_failures()
    assert all(failing.values()), {m: len(v) for m, v in failing.items()}
    used: set[str] = set()
    for case in cases():
        unexplained, issues = _unexplained(case, DEFAULT, "v1.16.2")
        assert not unexplained, (case.id, unexplained[:2])
        used |= set(issues)
    assert used == {"named-port-by-policy-namespace", "label-change-resync",
                    "port-group-name-collision", "policy-types-ignored"}


def test_before_v1_15_5_the_except_scope_entry_explains_what_the_old_lines_add() -> None:
    """The matrix's older lines (v1.12-v1.14 newest tags, `make lab-full`) have the except-scope
    bug: what they fail beyond the newest profile is explained by the except-scope entry (by
    mechanism), and with except scoped per block they fail only the newest profile's cases."""
    old = get_profile("v1.14.41")
    per_block = replace(old, except_scope="block")
    newest = {c.id for c in cases() if wrong(c, DEFAULT)}
    failing = [c for c in cases() if wrong(c, old)]
    extra = [c for c in failing if c.id not in newest]
    assert extra
    for case in extra:
        unexplained, issues = _unexplained(case, old, "v1.14.41")
        assert not unexplained and issues == ["except-scope"], (case.id, issues, unexplained[:1])
    assert {c.id for c in failing if wrong(c, per_block)} == newest
