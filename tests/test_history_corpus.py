"""The historical corpus (clusters/kube-ovn-history.yaml) is caught, entry by entry.

For every entry the lab can express: its cases, run on the lab with the entry's history
profile (the newest behaviour with that one fix reverted), fail in exactly the recorded
cells (client, destination, path, port, protocol, expected vs observed), and pass once the
knob is off (`fixed:<fix>`). Open bugs (still in the newest release) fail in exactly their
cells on the newest profile. Runs only each entry's own cases, on one lab, so it stays small.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeovn_conformance.backends.lab.profile import DEFAULT, FIXES_BY_ID, get_profile
from kubeovn_conformance.history import CorpusError, compare, load_corpus
from kubeovn_conformance.runner import Case

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("test_kube_ovn_history.py", "test_service_port_gap.py")
CORPUS = load_corpus()
MODES = os.environ.get("KOC_CORPUS_MODES", "overlay").split()


def suite_cases() -> dict[str, Case]:
    out: dict[str, Case] = {}
    for name in SUITES:
        spec = importlib.util.spec_from_file_location(f"_suite_{name[:-3]}", ROOT / "suites" / name)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out.update({c.id: c for c in module.CASES})
    return out


CASES = suite_cases()

# --------------------------------------------------------------------------- the file itself


def test_every_expressible_entry_has_existing_cases_and_a_knob_or_is_open() -> None:
    for e in CORPUS:
        if not e.expressible:
            assert e.why_not, e.id
            continue
        missing = [c for c in e.cases if c not in CASES]
        assert not missing, f"{e.id}: cases not in suites/: {missing}"
        assert e.fix is not None or e.status == "open", f"{e.id}: a fixed bug needs a lab knob"


def test_history_profiles_differ_from_the_newest_in_exactly_their_knobs() -> None:
    for e in CORPUS:
        if e.fix is None:
            continue
        fix = FIXES_BY_ID[e.fix]
        hist, fixed = get_profile(e.history_profile), get_profile(e.fixed_profile)
        assert getattr(hist, fix.knob) == fix.buggy and getattr(fixed, fix.knob) == fix.fixed
        differ = {k for k, v in hist.knobs().items() if v != getattr(fixed, k)}
        assert differ == {fix.knob}, e.id


def test_corpus_errors_are_one_line_naming_file_and_entry(tmp_path: Path) -> None:
    bad = tmp_path / "h.yaml"
    bad.write_text("entries:\n  - id: x\n    title: t\n    status: maybe\n    affected: '*'\n"
                   "    wrong: w\n    source: s\n")
    with pytest.raises(CorpusError) as e:
        load_corpus(bad)
    assert str(bad) in str(e.value) and "(x)" in str(e.value) and "\n" not in str(e.value)
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(CorpusError, match="not UTF-8"):
        load_corpus(bad)


def test_compare_needs_exactly_the_shape() -> None:
    entry = next(e for e in CORPUS if e.id == "endport-ignored")
    rec = {"case": "history-endport-listener-inside-range", "step": "initial", "client": "y/a",
           "target": "x/a", "path": "pod", "port": 81, "protocol": "TCP", "verdict": "allow",
           "observed": "timeout", "outcome": "fail"}
    other = {**rec, "port": 80, "observed": "connected", "outcome": "pass"}
    assert compare([rec, other], entry).exact
    assert compare([other], entry).exact  # nothing matched the shape: nothing had to fail
    assert not compare([rec, {**other, "outcome": "fail"}], entry).exact  # one too many
    assert not compare([{**rec, "outcome": "pass"}], entry).exact  # one missing


# --------------------------------------------------------------------------- on the lab

NEEDS_LAB = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovn-northd") is None,
                               reason="the OVN lab needs root and ovn-central/ovn-host")


def _plan() -> dict[str, list[str]]:
    """profile -> cases to run on it: each expressible entry's cases with its history
    profile and its fixed profile (open bugs: the newest profile and the fix)."""
    plan: dict[str, list[str]] = {}
    for e in CORPUS:
        if not e.expressible:
            continue
        profiles = [DEFAULT.name if e.status == "open" else e.history_profile]
        if e.fix is not None:
            profiles.append(e.fixed_profile)
        for p in profiles:
            plan.setdefault(p, [])
            plan[p] += [c for c in e.cases if c not in plan[p]]
    return plan


@pytest.fixture(scope="module", params=MODES)
def corpus_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """profile -> the records of its cases, run once per mode on one lab."""
    from kubeovn_conformance.backends.lab.backend import LabBackend
    from kubeovn_conformance.runner import Runner

    backend = LabBackend(mode=request.param, profile=DEFAULT)
    runner = Runner(backend)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for profile, cases in _plan().items():
            backend.set_profile(get_profile(profile))
            records = runs.setdefault(profile, [])
            for case_id in cases:
                report = runner.run_case(CASES[case_id])
                records += [{**c.record(), "case": case_id, "step": s.name}
                            for s in report.steps for c in s.cells]
        yield runs
    finally:
        runner.close()


@pytest.mark.lab
@pytest.mark.slow
@NEEDS_LAB
@pytest.mark.parametrize("entry", [e for e in CORPUS if e.expressible], ids=lambda e: e.id)
def test_entry_is_caught_by_name_and_passes_with_the_fix(entry: Any, corpus_runs: dict) -> None:
    bug_profile = DEFAULT.name if entry.status == "open" else entry.history_profile
    cmp = compare(corpus_runs[bug_profile], entry)
    assert cmp.failing, f"{entry.id}: no cell failed on {bug_profile}"
    assert cmp.exact, (f"{entry.id} on {bug_profile}: unexpected {list(cmp.unexpected)}, "
                       f"missing {list(cmp.missing)}")
    if entry.fix is not None:
        fixed = [r for r in corpus_runs[entry.fixed_profile]
                 if r["case"] in entry.cases and r["outcome"] == "fail"]
        assert not fixed, f"{entry.id} still fails with the fix: {fixed[:3]}"
