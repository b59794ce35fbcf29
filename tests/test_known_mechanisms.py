"""Known issues matched by mechanism (kubeovn_conformance/mechanism.py, report/known.py).

- Over every cell of every suite case, each converted entry of clusters/known-issues.yaml
  matches exactly the cells its corpus entry's recorded shape names (kube-ovn-history.yaml,
  checked on the lab by tests/test_history_corpus.py), and nothing else.
- Per entry, a positive cell and a near-miss negative (same case family, one property
  different), built from scenarios through the real oracle.
- How a map matches: one direction of an allowed cell, every denying direction of a denied
  one, every endpoint of a Service.
- Per cell strictness: failing cells all explained -> known; one unexplained -> fail; a
  matched cell that passed -> "fixed?" (on the lab a failing test); the runner writes the
  facts into results.jsonl and the report applies the file to them.
- Loader errors: one line naming the file and the entry.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kubeovn_conformance import builders as b
from kubeovn_conformance.cases import Case
from kubeovn_conformance.history import cell_key, load_corpus
from kubeovn_conformance.history import matches as shape_matches
from kubeovn_conformance.mechanism import Mechanism, SyncHistory, record_facts
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.oracle import Oracle
from kubeovn_conformance.pytest_plugin import _known_outcome
from kubeovn_conformance.report import matrix
from kubeovn_conformance.report.known import KnownIssue, explain, load_known
from kubeovn_conformance.report.records import ReportError, load_runs

ROOT = Path(__file__).resolve().parent.parent
LIVE = load_known(ROOT / "clusters" / "known-issues.yaml")
ISSUES = {i.id: i for i in LIVE}
NEWEST = "lab:v1.16.2"


def addressed(s: Scenario) -> Scenario:
    """Stand-in pod IPs and ClusterIPs (10.16/16 and 10.96/12, as the clusters use)."""
    ips = {p.key: p.ip or f"10.16.{i // 250}.{i % 250 + 1}" for i, p in enumerate(s.pods)}
    return replace(s.with_pod_ips(ips), services=tuple(
        replace(v, cluster_ip=v.cluster_ip or f"10.96.0.{i + 10}") for i, v in enumerate(s.services)))


def records_of(states: Iterable[tuple[str, Scenario]], case: str = "c") -> list[dict[str, Any]]:
    """What the runner records for these states, step after step (no outcome: nothing ran)."""
    history = SyncHistory()
    out = []
    for step, scenario in states:
        oracle = Oracle(addressed(scenario))
        mechanism = history.advance(oracle)
        for p in oracle.probes():
            out.append({**oracle.expect(p).to_dict(), "case": case, "step": step,
                        "facts": record_facts(mechanism.facts(p))})
    return out


def cell(records: list[dict[str, Any]], client: str, target: str, port: int, step: str | None = None,
         path: str = "pod") -> dict[str, Any]:
    found = [r for r in records if r["client"] == client and r["target"] == target and
             r["port"] == port and r["path"] == path and (step is None or r["step"] == step)]
    assert len(found) == 1, (client, target, port, step, len(found))
    return found[0]


def matched(issue: str, record: dict[str, Any], version: str = NEWEST) -> bool:
    i = ISSUES[issue]
    return i.applies(str(record["case"]), "overlay", version, "lab") and i.matches_cell(record)


# --------------------------------------------------------------------------- the corpus


def _suite_cases() -> list[Case]:
    """The hand-written suites' cases (the generated ones are checked against the ACLs of
    the newest and older profiles in tests/test_generator_corpus.py)."""
    out: list[Case] = []
    for path in sorted((ROOT / "suites").glob("test_*.py")):
        if path.name == "test_generated.py":
            continue
        spec = importlib.util.spec_from_file_location(f"_km_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out += list(getattr(module, "CASES", []))
    return out


@pytest.fixture(scope="module")
def suite_records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for case in _suite_cases():
        live = addressed(case.workload)
        history = SyncHistory()
        history.advance(Oracle(live))
        for step in case.steps:
            oracle = Oracle(addressed(step.build(live)))
            mechanism = history.advance(oracle)
            out += [{**oracle.expect(p).to_dict(), "case": case.id, "step": step.name,
                     "facts": record_facts(mechanism.facts(p))} for p in oracle.probes()]
    return out


# known-issues entry -> corpus entry (its source comments name it), and a tag it affects.
CONVERTED = {
    "named-port-by-policy-namespace": ("named-port-by-policy-namespace", NEWEST),
    "label-change-resync": ("label-resync-by-match-diff", NEWEST),
    "port-group-name-collision": ("policy-name-collision", NEWEST),
    "except-scope": ("except-scope", "v1.15.4"),
    "ipblocks-unparenthesized": ("ipblocks-unparenthesized", "v1.15.6"),
    "egress-rule0-empty-1.12": ("egress-rule0-empty", "v1.12.31"),
    "egress-rule0-empty-1.13": ("egress-rule0-empty", "v1.13.5"),
    "digit-policy-name": ("digit-policy-name", "v1.12.4"),
}


@pytest.mark.parametrize("issue", list(CONVERTED))
def test_entry_matches_exactly_its_corpus_shape_over_every_suite_cell(
        issue: str, suite_records: list[dict[str, Any]]) -> None:
    corpus_id, version = CONVERTED[issue]
    entry = next(e for e in load_corpus() if e.id == corpus_id)
    # The shape says which cells go wrong (observed is how they go wrong: not a property).
    patterns = [{k: v for k, v in p.items() if k != "observed"} for p in entry.shape]
    shape = {cell_key(r) for r in suite_records if r["case"] in entry.cases
             and any(shape_matches(p, r) for p in patterns)}
    hits = {cell_key(r) for r in suite_records if matched(issue, r, version)}
    assert shape, corpus_id
    assert hits == shape, (f"{issue}: extra {sorted(hits - shape, key=str)[:3]}, "
                           f"missing {sorted(shape - hits, key=str)[:3]}")


def test_converted_entries_keep_their_source_and_use_no_case_globs() -> None:
    text = (ROOT / "clusters" / "known-issues.yaml").read_text()
    for issue in CONVERTED:
        i = ISSUES[issue]
        assert i.mechanism and not i.cases, issue
        assert i.url.startswith("https://github.com/kubeovn/kube-ovn/"), issue
    for cited in ("network_policy.go:146", "pod.go:350-357", "network_policy.go:126-135",
                  "network_policy.go:205-245", "ovn-nb-acl.go:1279", "ovn-nb-acl.go:85",
                  "network_policy.go:171-172"):
        assert cited in text, cited


def test_on_the_newest_profile_only_the_open_bugs_match(suite_records: list[dict[str, Any]]) -> None:
    open_cells = {c for e in load_corpus() if e.status == "open" for c in e.cases}
    hits = {r["case"] for r in suite_records for i in LIVE
            if i.applies(r["case"], "overlay", NEWEST, "lab") and i.matches_cell(r)}
    assert hits == open_cells


# --------------------------------------------------------------------------- entry by entry

X, Y = b.namespace("x", ns="x"), b.namespace("y", ns="y")
SERVE = [b.container_port(80, "TCP", "http"), b.container_port(81, "TCP", "alt")]


def ground(*policies, extra=()) -> Scenario:  # type: ignore[no-untyped-def]
    pods = tuple(b.pod(ns, n, {"pod": n}, SERVE) for ns in "xy" for n in "ab") + tuple(extra)
    return Scenario((X, Y), pods, (), tuple(policies))


def one_state(*policies, extra=()) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return records_of([("initial", ground(*policies, extra=extra))])


def test_named_port_resolved_in_the_policys_namespace() -> None:
    bare = (b.pod("y", "c", {"pod": "c"}),
            b.pod("x", "s", {"pod": "s"}, [b.container_port(8000, "TCP", "web")]))
    to_web = b.policy("y", "to-web", b.select(pod="c"), egress=[
        b.rule(b.peer(namespaces=b.select(ns="x")), ports=[b.port("web")])], types=["Egress"])
    hit = cell(records_of([("initial", Scenario((X, Y), bare, (), (to_web,)))]), "y/c", "x/s", 8000)
    assert hit["verdict"] == "allow" and matched("named-port-by-policy-namespace", hit)
    # Near miss: a pod of the policy's namespace declares "web" as 8000 too: Kube-OVN resolves it.
    twin = b.pod("y", "d", {"pod": "d"}, [b.container_port(8000, "TCP", "web")])
    near = cell(records_of([("initial", Scenario((X, Y), (*bare, twin), (), (to_web,)))]), "y/c", "x/s", 8000)
    assert near["verdict"] == "allow" and not matched("named-port-by-policy-namespace", near)
    # ... or it resolves to another number there: broken again.
    other = b.pod("y", "d", {"pod": "d"}, [b.container_port(9000, "UDP", "web")])
    again = cell(records_of([("initial", Scenario((X, Y), (*bare, other), (), (to_web,)))]),
                 "y/c", "x/s", 8000)
    assert matched("named-port-by-policy-namespace", again)
    # Near miss: the same rule with the number instead of the name.
    numeric = replace(to_web, egress=(b.rule(b.peer(namespaces=b.select(ns="x")), ports=[b.port(8000)]),))
    plain = cell(records_of([("initial", Scenario((X, Y), bare, (), (numeric,)))]), "y/c", "x/s", 8000)
    assert not matched("named-port-by-policy-namespace", plain)


def test_label_change_without_resync() -> None:
    blue = b.policy("x", "from-blue", b.select(), ingress=[b.rule(b.peer(pods=b.select(team="blue")))])
    tagged = ground(blue).with_pod_labels("x/b", {"pod": "b", "team": "blue"})
    recs = records_of([("blue", tagged), ("relabel-out", ground(blue))])
    hit = cell(recs, "x/b", "x/a", 80, "relabel-out")
    assert hit["verdict"] == "deny" and matched("label-change-resync", hit)
    assert not matched("label-change-resync", cell(recs, "x/b", "x/a", 80, "blue"))
    # Near miss: the policy selects only x/a, so x/b leaving its peer selector changes the
    # set of policies matching x/b and Kube-OVN re-syncs it.
    only_a = replace(blue, pod_selector=b.select(pod="a"))
    tagged = ground(only_a).with_pod_labels("x/b", {"pod": "b", "team": "blue"})
    near = cell(records_of([("blue", tagged), ("relabel-out", ground(only_a))]), "x/b", "x/a", 80,
                "relabel-out")
    assert near["verdict"] == "deny" and near["facts"][0].get("relabel")
    assert not matched("label-change-resync", near)
    # Relabelled back in a third step: the stale objects are right again, nothing matches.
    recs = records_of([("blue", tagged := ground(blue).with_pod_labels("x/b", {"pod": "b", "team": "blue"})),
                       ("out", ground(blue)), ("back", tagged)])
    assert matched("label-change-resync", cell(recs, "x/b", "x/a", 80, "out"))
    assert not matched("label-change-resync", cell(recs, "x/b", "x/a", 80, "back"))


def test_port_group_names_that_collide() -> None:
    deny = b.deny_all("x")
    admit_y = b.policy("x", "deny.all", b.select(pod="a"),
                       ingress=[b.rule(b.peer(namespaces=b.select(ns="y")))])
    recs = one_state(deny, admit_y)
    lost = cell(recs, "y/a", "x/b", 80)
    assert lost["verdict"] == "deny" and matched("port-group-name-collision", lost)
    assert not matched("port-group-name-collision", cell(recs, "y/a", "x/a", 80))  # deny.all owns it
    # Synced the other way round, the other policy loses: y/a -> x/a rests on deny.all alone.
    swapped = one_state(admit_y, deny)
    assert matched("port-group-name-collision", cell(swapped, "y/a", "x/a", 80))
    assert not matched("port-group-name-collision", cell(swapped, "y/a", "x/b", 80))
    # Near miss: a name that maps to another port group.
    near = one_state(deny, replace(admit_y, name="deny.all2"))
    assert not matched("port-group-name-collision", cell(near, "y/a", "x/b", 80))


def _except_rule(w: Scenario, split: bool) -> Scenario:
    w = addressed(w)
    by_b, cidr = b.peer(pods=b.select(pod="b")), b.block("10.16.0.0/16", f"{w.pod('x/b').ip}/32")
    rules = [b.rule(by_b), b.rule(cidr)] if split else [b.rule(by_b, cidr)]
    return w.with_policies([b.policy("x", "b-or-cidr", b.select(pod="a"), ingress=rules)])


def test_except_beside_a_selector_peer() -> None:
    hit = cell(records_of([("initial", _except_rule(ground(), split=False))]), "x/b", "x/a", 80)
    assert hit["verdict"] == "allow"
    assert matched("except-scope", hit, "v1.15.4") and not matched("except-scope", hit, "v1.15.5")
    # Near miss: the except in a rule of its own.
    near = cell(records_of([("initial", _except_rule(ground(), split=True))]), "x/b", "x/a", 80)
    assert near["verdict"] == "allow" and not matched("except-scope", near, "v1.15.4")


def test_several_ipblocks_in_one_rule() -> None:
    w = addressed(ground())
    ya, yb = (b.block(f"{w.pod(k).ip}/32") for k in ("y/a", "y/b"))
    hit = cell(records_of([("initial", w.with_policies([b.policy("x", "two", b.select(pod="a"), ingress=[
        b.rule(ya, yb)])]))]), "y/a", "x/a", 80)
    assert matched("ipblocks-unparenthesized", hit, "v1.15.6")
    assert not matched("ipblocks-unparenthesized", hit, "v1.15.8")
    near = cell(records_of([("initial", w.with_policies([b.policy("x", "two", b.select(pod="a"), ingress=[
        b.rule(ya), b.rule(yb)])]))]), "y/a", "x/a", 80)
    assert near["verdict"] == "allow" and not matched("ipblocks-unparenthesized", near, "v1.15.6")


def test_egress_rule0_selecting_nothing() -> None:
    def pol(first: str):  # type: ignore[no-untyped-def]
        return b.policy("x", "rule0", b.select(pod="a"), egress=[
            b.rule(b.peer(pods=b.select(pod=first))),
            b.rule(b.peer(namespaces=b.select(ns="y")), ports=[b.port(80)])], types=["Egress"])

    hit = cell(one_state(pol("nobody")), "x/a", "y/a", 81)
    assert hit["verdict"] == "deny" and matched("egress-rule0-empty-1.13", hit, "v1.13.5")
    assert not matched("egress-rule0-empty-1.13", hit, "v1.13.6")
    near = cell(one_state(pol("b")), "x/a", "y/a", 81)
    assert near["verdict"] == "deny" and not matched("egress-rule0-empty-1.13", near, "v1.13.5")


def test_policy_name_starting_with_a_digit() -> None:
    hit = cell(one_state(b.deny_all("x", "1-deny-all")), "y/a", "x/a", 80)
    assert hit["verdict"] == "deny" and matched("digit-policy-name", hit, "v1.12.4")
    assert not matched("digit-policy-name", hit, "v1.12.5")
    near = cell(one_state(b.deny_all("x", "deny-all-1")), "y/a", "x/a", 80)
    assert not matched("digit-policy-name", near, "v1.12.4")


def test_rules_of_a_direction_policy_types_leave_out() -> None:
    pol = b.policy("x", "in-only", b.select(pod="a"), ingress=[b.rule()],
                   egress=[b.rule(b.peer(pods=b.select(pod="b")))], types=["Ingress"])
    recs = one_state(pol)
    hit = cell(recs, "x/a", "y/a", 80)  # the API ignores the egress rules: allowed
    assert hit["verdict"] == "allow" and matched("policy-types-ignored", hit)
    near = cell(recs, "x/a", "x/b", 80)  # the ignored rule would admit it anyway
    assert near["verdict"] == "allow" and not matched("policy-types-ignored", near)
    both = cell(one_state(replace(pol, policy_types=("Ingress", "Egress"))), "x/a", "y/a", 80)
    assert both["verdict"] == "deny" and not matched("policy-types-ignored", both)


# --------------------------------------------------------------------------- how maps match


def test_a_denied_cell_needs_every_denying_direction() -> None:
    digit_in = b.deny_all("x", "1-deny-all")
    egress_y = b.deny_all("y", "deny-egress", types=["Egress"])
    both = cell(one_state(digit_in, egress_y), "y/a", "x/a", 80)
    assert [f["direction"] for f in both["facts"]] == ["egress", "ingress"]
    assert not matched("digit-policy-name", both, "v1.12.4")  # y/a's egress still denies
    assert matched("digit-policy-name", cell(one_state(digit_in), "y/a", "x/a", 80), "v1.12.4")


def test_an_allowed_cell_needs_one_direction_and_a_service_every_endpoint() -> None:
    web = [b.container_port(8000, "TCP", "web")]
    pods = (b.pod("y", "c", {"pod": "c"}), b.pod("x", "s1", {"app": "s"}, web),
            b.pod("x", "s2", {"app": "s"}, web))
    svc = b.service("x", "s", {"app": "s"}, b.service_port(80, "web"))
    named = b.policy("y", "to-web", b.select(pod="c"), egress=[b.rule(ports=[b.port("web")])],
                     types=["Egress"])
    recs = records_of([("initial", Scenario((X, Y), pods, (svc,), (named,)))])
    through = cell(recs, "y/c", "x/svc/s", 80, path="service")
    assert through["verdict"] == "allow" and matched("named-port-by-policy-namespace", through)
    # One endpoint also admitted by number: the Service cell is not the bug's any more.
    by_number = b.policy("x", "s1-8000", b.select(pod="s1"), ingress=[b.rule()])
    extra = b.policy("y", "to-s1", b.select(pod="c"), egress=[
        b.rule(b.peer(pods=b.select(app="s"), namespaces=b.select(ns="x")), ports=[b.port(8000)])],
        types=["Egress"])
    mixed = records_of([("initial", Scenario((X, Y), pods, (svc,), (named, by_number, extra)))])
    assert not matched("named-port-by-policy-namespace", cell(mixed, "y/c", "x/svc/s", 80, path="service"))


def test_records_without_facts_or_undefined_never_match() -> None:
    rec = cell(one_state(b.deny_all("x", "1-deny-all")), "y/a", "x/a", 80)
    assert not matched("digit-policy-name", {k: v for k, v in rec.items() if k != "facts"}, "v1.12.4")
    assert not matched("digit-policy-name", {**rec, "verdict": "undefined"}, "v1.12.4")


# --------------------------------------------------------------------------- per cell, strict


def _with_outcomes(records: list[dict[str, Any]], fails: Callable[[dict[str, Any]], bool]
                   ) -> list[dict[str, Any]]:
    return [{**r, "outcome": "fail" if fails(r) else "pass"} for r in records
            if r["verdict"] != "undefined"]


def test_a_case_is_known_only_when_every_failing_cell_is_explained() -> None:
    recs = one_state(b.deny_all("x", "1-deny-all"))
    lost = _with_outcomes(recs, lambda r: r["verdict"] == "deny")  # the policy never took effect
    ex = explain(LIVE, lost, "gen-anything", "overlay", "v1.12.4", "kind")
    assert ex.known("fail") and [i.id for i in ex.issues()] == ["digit-policy-name"]
    assert not ex.unexplained and not ex.stale
    # Allowed cells failing too: no mechanism explains those, so the case is a plain failure.
    extra = [{**r, "outcome": "fail"} if r["verdict"] == "allow" and r["client"] == "x/a" else r
             for r in lost]
    ex = explain(LIVE, extra, "gen-anything", "overlay", "v1.12.4", "kind")
    assert ex.unexplained and not ex.known("fail")
    # On a fixed tag the entry does not apply: the same cells are plain failures.
    assert not explain(LIVE, lost, "gen-anything", "overlay", "v1.12.5", "kind").known("fail")


def test_a_matched_cell_that_passes_is_stale_and_fails_the_lab_test() -> None:
    recs = one_state(b.deny_all("x", "1-deny-all"))
    fixed = _with_outcomes(recs, lambda r: False)
    ex = explain(LIVE, fixed, "c", "overlay", "v1.12.4", "lab")
    assert [i.id for i in ex.stale_issues("pass")] == ["digit-policy-name"]
    case = Case("c", "ingress", ground(), ())
    with pytest.raises(pytest.fail.Exception, match=r"XPASS\(strict\).*digit-policy-name"):
        _known_outcome(ex, "pass", True, case, "")
    _known_outcome(ex, "pass", False, case, "")  # kind: the report flags "fixed?" instead
    # Some matched cells fail, one passes: still reported on the lab, per cell.
    half = _with_outcomes(recs, lambda r: r["verdict"] == "deny" and r["client"] != "y/b")
    ex = explain(LIVE, half, "c", "overlay", "v1.12.4", "lab")
    assert ex.known("fail") and ex.stale
    with pytest.raises(pytest.fail.Exception, match="passed: initial: y/b -> x/"):
        _known_outcome(ex, "fail", True, case, "tables")
    with pytest.raises(pytest.xfail.Exception, match=r"known: https://github\.com/kubeovn/kube-ovn/pull/3551"):
        _known_outcome(ex, "fail", False, case, "tables")


def _write_run(directory: Path, version: str, records: list[dict[str, Any]]) -> Path:
    from kubeovn_conformance.results import RunInfo

    run = RunInfo("r", "kind", "overlay", version, "", directory)
    run.prepare()
    run.probe_records(records)
    for case in {r["case"] for r in records}:
        mine = [r for r in records if r["case"] == case]
        bad = sum(r["outcome"] == "fail" for r in mine)
        run.case_record(case, direction="ingress", outcome="fail" if bad else "pass",
                        probes=len(mine), mismatches=bad, convergence_ms=1.0, duration_s=1.0,
                        skip_reason=None)
    run.write_summary()
    return directory


def test_the_report_applies_the_file_per_cell(tmp_path: Path) -> None:
    recs = one_state(b.deny_all("x", "1-deny-all"), b.policy("y", "admit-x", ingress=[b.rule()]))
    lost = [{**r, "case": "gen-a"} for r in _with_outcomes(recs, lambda r: r["verdict"] == "deny")]
    fixed = [{**r, "case": "gen-b"} for r in _with_outcomes(recs, lambda r: False)]
    other = [{**r, "case": "gen-c"} for r in _with_outcomes(recs, lambda r: r["verdict"] == "allow")]
    m = matrix.build(load_runs([_write_run(tmp_path / "run", "v1.12.4", lost + fixed + other)]), LIVE)
    col = ("v1.12.4", "overlay")
    assert m.cells[("gen-a", col)].state == "known"
    assert [i.id for i in m.cells[("gen-a", col)].issues] == ["digit-policy-name"]
    assert m.cells[("gen-b", col)].state == "pass" and m.cells[("gen-b", col)].fixed_hint
    assert m.cells[("gen-c", col)].state == "fail" and not m.cells[("gen-c", col)].issues
    from kubeovn_conformance.report import markdown

    text = markdown.render(m)
    assert "Known issue [digit-policy-name]" in text and "fixed? gen-b passed" in text


def test_the_runner_writes_the_facts_the_report_reads(tmp_path: Path) -> None:
    """End to end on the fake API server (real client, real agent, no policy enforcement: a
    stand-in for a Kube-OVN whose policy never took effect)."""
    from kubeovn_conformance.backends.kind import KindBackend
    from kubeovn_conformance.results import RunInfo, read_jsonl
    from kubeovn_conformance.runner import Runner, Step
    from tests.fake_apiserver import FakeApiServer, fake_node

    workload = b.upstream_ground(namespaces=("x", "y"), pods=("a", "b"), ports=(8080,), protocols=("TCP",))
    deny = b.deny_all("x", "1-deny-all")
    case = Case("gen-digit", "ingress", workload, (Step("initial", lambda w: w.with_policies([deny])),))
    with FakeApiServer(nodes=[fake_node("n1")]) as api:
        backend = KindBackend(kubeconfig=api.kubeconfig(tmp_path / "kc"), context="fake", run_id="km",
                              ready_timeout=15.0, delete_timeout=15.0, exec_grace=5.0)
        run = RunInfo("km", "kind", "overlay", "v1.12.4", "", tmp_path / "run")
        run.prepare()
        runner = Runner(backend, run, probe_timeout=0.3, deadline=0.5, ready_deadline=10.0)
        try:
            live = runner.realize(workload)
            report = runner.run_case(case)
        finally:
            runner.close()
    records = read_jsonl(run.results_path)
    mechanism = Mechanism(Oracle(live.with_policies([deny])))
    oracle = mechanism.oracle
    for r in records:
        probe = next(p for p in oracle.probes() if (p.client, p.target, p.port) ==
                     (r["client"], r["target"], r["port"]))
        assert r.get("facts") == (record_facts(mechanism.facts(probe)) or None)
    assert report.outcome == "fail"
    ex = explain(LIVE, records, case.id, "overlay", "v1.12.4", "kind")
    assert ex.known("fail") and not ex.unexplained
    assert not explain(LIVE, records, case.id, "overlay", "v1.12.5", "kind").known("fail")


# --------------------------------------------------------------------------- the file


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ("mechanism: {named_ports: true}", "unknown mechanism property 'named_ports'"),
        ("mechanism: {port: numbered}", "'port' takes"),
        ("mechanism: {resync_skipped: 1}", "'resync_skipped' takes true | false, not 1"),
        ("mechanism: {direction: [ingress, sideways]}", "not 'sideways'"),
        ("mechanism: {expected: []}", "not an empty list"),
        ("mechanism: [port]", "'mechanism' must be a non-empty map"),
        ("mechanism: {}", "'mechanism' must be a non-empty map"),
        ("versions: '*'", "'case' must be a glob"),
    ],
)
def test_bad_mechanism_is_one_line_naming_file_and_entry(tmp_path: Path, entry: str, complaint: str) -> None:
    f = tmp_path / "known.yaml"
    f.write_text("issues:\n  - id: fine\n    mechanism: {port: named}\n    url: https://a/2\n"
                 "    explanation: ok\n"
                 f"  - id: broken\n    {entry}\n    url: https://a/1\n    explanation: e\n")
    with pytest.raises(ReportError) as err:
        load_known(f)
    msg = str(err.value)
    assert "\n" not in msg and str(f) in msg and "entry 2 (broken)" in msg and complaint in msg


def test_case_globs_narrow_a_mechanism_and_still_work_alone() -> None:
    narrowed = KnownIssue("n", ("gen-*",), "any", "*", None, "https://a/1", "e",
                          (("expected", ("deny",)),))
    rec = {**cell(one_state(b.deny_all("x")), "y/a", "x/a", 80), "outcome": "fail"}
    assert explain([narrowed], [rec], "gen-x", "overlay", "v1", "lab").known("fail")
    assert not explain([narrowed], [rec], "upstream-x", "overlay", "v1", "lab").known("fail")
    whole = KnownIssue("w", ("upstream-x",), "any", "*", None, "https://a/1", "e")
    assert explain([whole], [rec], "upstream-x", "overlay", "v1", "lab").known("fail")


def test_packing_keeps_every_cells_facts() -> None:
    """A packed case's own cells have the facts they have alone (slots never share policies,
    and the facts name no namespace), so known issues match the same cells either way."""
    from kubeovn_conformance.packing import _addressed, groups, pack, rename_key

    checked = 0
    for group in groups(_suite_cases(), 8):
        if len(group) == 1:
            continue
        packed = pack(group)
        live = _addressed(packed.workload)
        together, alone_history = SyncHistory(), [SyncHistory() for _ in group]
        together.advance(Oracle(live))
        for slot in range(len(group)):
            alone_history[slot].advance(Oracle(packed.view(live, slot)))
        for index in range(len(packed.step_names)):
            mech = together.advance(Oracle(packed.build(live, index)))
            for slot in range(len(group)):
                alone = alone_history[slot].advance(
                    Oracle(packed.step_of(slot, index).build(packed.view(live, slot))))
                names = packed.names[slot]
                for p in alone.oracle.probes():
                    slotted = replace(p, client=rename_key(p.client, names),
                                      target=rename_key(p.target, names))
                    assert mech.facts(slotted) == alone.facts(p), (group[slot].id, p)
                    checked += 1
    assert checked > 10_000


@pytest.mark.slow
def test_facts_cost_little_next_to_probing() -> None:
    """55k probes (100 pods, 30 policies): the facts of every cell in a few CPU seconds, i.e.
    tens of microseconds a cell, against a probe timeout of a second."""
    import time

    from kubeovn_conformance import bench_oracle

    oracle = Oracle(bench_oracle.scenario(100, 10, 30))
    probes = oracle.probes()
    start = time.process_time()
    mechanism = Mechanism(oracle)
    facts = [mechanism.facts(p) for p in probes]
    spent = time.process_time() - start
    assert len(probes) > 50_000 and sum(1 for f in facts if f) > 40_000
    assert spent < 6.0, spent


SUITE = '''
from kubeovn_conformance import builders as b
from kubeovn_conformance.runner import Case, Step

GROUND = b.upstream_ground(namespaces=("x", "y"), pods=("a",), ports=(8080,), protocols=("TCP",))
CASES = [Case(f"gen-{name}", "ingress", GROUND,
              (Step("initial", lambda w, n=name: w.with_policies([b.deny_all("x", n)])),))
         for name in ("1-deny-all", "deny-all-1")]


def test_case(case, conformance, request):
    conformance.check(case, request.node)
'''


@pytest.mark.slow
def test_pytest_applies_the_live_file_per_cell(tmp_path: Path) -> None:
    """`pytest suites --backend kind` against the fake API server (no enforcement: a Kube-OVN
    whose policies never took effect, as before a4545549d for a name starting with a digit):
    on v1.12.4 the digit case is xfail with the entry's text, the other case still fails;
    JUnit and the report say the same."""
    import subprocess
    import sys
    import xml.etree.ElementTree as ET

    from tests.fake_apiserver import FakeApiServer, fake_node

    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "test_gen.py").write_text(SUITE)
    with FakeApiServer(nodes=[fake_node("n1")]) as api:
        kc = api.kubeconfig(tmp_path / "kc")
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "kubeovn_conformance.pytest_plugin", "-p",
             "no:cacheprovider", "suites/test_gen.py", "--backend", "kind", "--kubeconfig", str(kc),
             "--kube-ovn-version", "v1.12.4", "--run-id", "r", "--reports-dir", "reports",
             "--deadline", "0.5", "--probe-timeout", "0.3", "-rxXf"],
            cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "1 failed" in out and "1 xfailed" in out, out[-3000:]
    assert "XFAIL suites/test_gen.py::test_case[overlay-gen-1-deny-all-v1.12.4]" in out
    assert "known: https://github.com/kubeovn/kube-ovn/pull/3551" in out
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "reports" / "r" / "junit.xml").iter("testcase")}
    digit = cases["test_case[overlay-gen-1-deny-all-v1.12.4]"]
    assert digit.find("skipped") is not None
    props = {p.get("name"): p.get("value") for p in digit.iter("property")}
    assert props["known_issues"] == "digit-policy-name"
    assert cases["test_case[overlay-gen-deny-all-1-v1.12.4]"].find("failure") is not None
    m = matrix.build(load_runs([tmp_path / "reports" / "r"]), LIVE)
    assert m.cells[("gen-1-deny-all", ("v1.12.4", "overlay"))].state == "known"
    assert m.cells[("gen-deny-all-1", ("v1.12.4", "overlay"))].state == "fail"


def test_expect_prints_the_facts_entries_match_on(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from kubeovn_conformance.cli import main as cli

    example = ROOT / "examples" / "underlay-bug" / "egress-allow-named-port.yaml"
    assert cli(["expect", str(example), "--format", "json", "--facts"]) == 0
    records = json.loads(capsys.readouterr().out)
    served = [{**r, "case": "any"} for r in records if r["client"] == "y/client" and r["verdict"] == "allow"]
    assert len(served) == 3 and all(matched("named-port-by-policy-namespace", r) for r in served)
    assert served[0]["facts"][0] == {"direction": "egress", "isolated": True, "port": "named",
                                     "peer": "namespaces-and-pods", "peer_namespace": "other",
                                     "named_port_policy_namespace": "none"}
    assert cli(["expect", str(example), "--format", "json"]) == 0
    assert all("facts" not in r for r in json.loads(capsys.readouterr().out))
