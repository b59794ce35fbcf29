"""The generated cases (kubeovn_conformance/generate/): coverage, determinism, ids, paths.

Coverage is computed here from the declared dimensions, not taken from the builder: every
pair of values of two dimensions is in some row, or is listed with the reason it is not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from itertools import combinations
from pathlib import Path

from kubeovn_conformance.generate import case_id, cases, rows
from kubeovn_conformance.generate.dimensions import (
    BY_NAME,
    CORPUS_SEEDS,
    DIMENSIONS,
    EXCLUSIONS,
    SEED_ONLY,
    TRIPLES,
    excluded,
)
from kubeovn_conformance.generate.rows import marker
from kubeovn_conformance.model import scenario_from_documents
from kubeovn_conformance.oracle import ALLOW, DENY, Oracle
from kubeovn_conformance.packing import _addressed

ROOT = Path(__file__).resolve().parent.parent
ROWS = [dict(r) for r in rows()]
CASES = cases()


def test_every_valid_pair_is_in_a_row_and_every_other_pair_has_a_reason() -> None:
    seen = {(a, b) for r in ROWS for a, b in combinations(sorted(r.items()), 2)}
    missing, left_out = [], {}
    for d1, d2 in combinations(DIMENSIONS, 2):
        for v1 in d1.names:
            for v2 in d2.names:
                pair = tuple(sorted(((d1.name, v1), (d2.name, v2))))
                reason = excluded(*pair)
                if reason:
                    left_out[pair] = reason
                elif pair not in seen:
                    missing.append(pair)
    assert not missing, f"{len(missing)} valid pairs in no row, e.g. {missing[:5]}"
    # The pairs left out are exactly the declared ones, each with a reason.
    assert left_out and all(len(r) > 40 for r in left_out.values())
    for pair in EXCLUSIONS:
        assert tuple(sorted(pair)) in left_out
    # An excluded pair never occurs; a seed-only value occurs only in its seed rows.
    assert not [p for p in EXCLUSIONS if tuple(sorted(p)) in seen]
    for (dim, value) in SEED_ONLY:
        holding = [r for r in ROWS if r[dim] == value]
        assert holding and all(any(all(r[k] == v for k, v in s.items())
                                   for s in CORPUS_SEEDS.values()) for r in holding)


def test_every_peers_by_ports_combination_as_an_ingress_and_as_an_egress_rule() -> None:
    (dim, directions), (d2, _), (d3, _) = TRIPLES
    have = {(r[dim], r[d2], r[d3]) for r in ROWS}
    for direction in directions:
        for peers in BY_NAME[d2].names:
            for ports in BY_NAME[d3].names:
                assert (direction, peers, ports) in have


def test_corpus_seed_rows_are_in_the_rows() -> None:
    for entry, seed in CORPUS_SEEDS.items():
        assert any(all(r[k] == v for k, v in seed.items()) for r in ROWS), entry


def test_at_least_300_cases_with_unique_sentence_ids() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 300 and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"gen(-[a-z0-9]+)+", i) for i in ids)
    # The defaults stay out of ids: the issue's own example reads as it should.
    row = {"direction": "ingress", "target": "pod", "peers": "ns-and-pod", "ports": "named-target",
           "protocol": "TCP", "policies": "one", "steps": "add"}
    assert case_id(row) == "gen-ingress-peer-ns-and-pod-port-named-target-tcp"


def test_same_rows_and_ids_in_a_fresh_interpreter_with_another_hash_seed() -> None:
    code = "from kubeovn_conformance.generate import cases; print('\\n'.join(c.id for c in cases()))"
    outs = []
    for seed in ("1", "4242"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        outs.append(r.stdout.split())
    assert outs[0] == outs[1] == [c.id for c in CASES]


def test_every_step_probes_pods_and_services_with_port_unlike_target_port() -> None:
    for case in CASES:
        w = _addressed(case.workload)
        assert all(sp.port != sp.target_port for s in w.services for sp in s.ports)
        assert any(isinstance(sp.target_port, str) for s in w.services for sp in s.ports)
        for step in case.steps:
            scenario = step.build(w)
            verdicts = {(e.probe.path, e.verdict) for e in Oracle(scenario).expectations()}
            for path in ("pod", "service"):
                assert {(path, ALLOW), (path, DENY)} & verdicts, (case.id, step.name, path)


def test_manifests_are_what_the_api_server_accepts() -> None:
    """Every state of every case, written as manifests and read back through the model's
    validation (the API server's rules: names, ports, selectors, endPort, ipBlock except)."""
    for case in CASES:
        w = _addressed(case.workload)
        for step in case.steps:
            scenario = step.build(w)
            back = scenario_from_documents([(case.id, o.to_manifest()) for o in scenario.objects()])
            assert back.policies == scenario.policies, case.id


def test_markers_select_by_one_dimension_value_under_strict_markers(tmp_path: Path) -> None:
    value = ("peers", "two-ipblocks")
    expected = sum(1 for r in ROWS if r[value[0]] == value[1])
    r = subprocess.run([sys.executable, "-m", "pytest", "suites/test_generated.py", "--collect-only",
                        "-q", "-p", "no:cacheprovider", "--reports-dir", str(tmp_path), "-m", marker(*value)],
                       check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"{expected}/{len(ROWS)} tests collected" in r.stdout
    assert all(marker(d.name, v) == marker(d.name, v).lower() for d in DIMENSIONS for v in d.names)


def test_cases_that_pack_come_first_and_are_exactly_the_policy_only_ones() -> None:
    """packing.groups packs consecutive cases of one workload: the one-step, update and delete
    cases (only policies change) come first, grouped by workload; the rest run alone."""
    from kubeovn_conformance.packing import groups, packable

    flags = [packable(c) for c in CASES]
    first_alone = flags.index(False)
    assert all(flags[:first_alone]) and not any(flags[first_alone:])
    policy_only = {case_id(r) for r in ROWS if r["steps"] in ("add", "update", "delete")}
    assert {c.id for c, f in zip(CASES, flags, strict=True) if f} == policy_only
    # Two workloads (TCP/UDP, SCTP): at most one short pack each, every other pack is full.
    packs = [len(g) for g in groups(CASES[:first_alone], 8)]
    assert sum(1 for n in packs if n < 8) <= 2


def test_packs_are_made_of_the_selected_cases_only(tmp_path: Path) -> None:
    """With -k or -m, the plugin's case order (which packs follow) holds only what was
    selected: a pack must not run (and record) deselected neighbours."""
    (tmp_path / "order_probe.py").write_text(
        "def pytest_collection_finish(session):\n"
        "    print('ORDER', ','.join(c.id for c in session.config._kubeovn_case_order))\n")
    picked = [c.id for c in CASES[:3]]
    r = subprocess.run([sys.executable, "-m", "pytest", "suites/test_generated.py", "--collect-only",
                        "-q", "-p", "no:cacheprovider", "-p", "order_probe", "--reports-dir",
                        str(tmp_path / "reports"), "-k", " or ".join(picked)],
                       check=False, capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("ORDER "))
    assert line.split(" ", 1)[1].split(",") == picked
