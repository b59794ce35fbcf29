"""Packing must not change any verdict.

Pure part: for every case of every suite, the oracle's verdict of each of its own cells in a
pack (K cases, each in its own slot of namespaces) equals the verdict of the same cell when
the case runs alone on the same addresses. Lab part: a set of cases run packed and unpacked
on real OVN, with the ClusterIPs-in-allow-sets profile, gives the same outcome per cell.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from kubeovn_conformance.cases import Case
from kubeovn_conformance.oracle import Oracle
from kubeovn_conformance.packing import _addressed, alone, groups, pack, packable, unslot_record

ROOT = Path(__file__).resolve().parent.parent


def suite_cases() -> list[Case]:
    out: list[Case] = []
    for path in sorted((ROOT / "suites").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"_pk_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out += list(getattr(module, "CASES", []))
    return out


CASES = suite_cases()


def _verdicts(scenario, own=lambda p: True, names=None) -> dict:  # type: ignore[no-untyped-def]
    oracle = Oracle(scenario)
    out = {}
    for p in oracle.probes():
        if not own(p):
            continue
        rec = oracle.expect(p).to_dict()
        if names is not None:
            rec = unslot_record(rec, names)
        out[(rec["client"], rec["target"], rec["path"], rec["port"], rec["protocol"])] = rec["verdict"]
    return out


def test_packs_keep_every_own_verdict() -> None:
    checked = 0
    for group in groups(CASES, 8):
        if len(group) == 1:
            continue
        packed = pack(group)
        live = _addressed(packed.workload)
        for index in range(len(packed.step_names)):
            scenario = packed.build(live, index)
            wanted = packed.own_probes(live, index)

            def own(p, w=wanted) -> bool:  # type: ignore[no-untyped-def]
                return (p.client, p.target, p.path, p.port, p.protocol) in w

            for slot, case in enumerate(packed.cases):
                alone = packed.step_of(slot, index).build(packed.view(live, slot))
                mine = _verdicts(
                    scenario, lambda p, s=slot, o=own, k=packed: o(p) and k.slot_of(p.client) == s,
                    packed.names[slot])
                assert mine == _verdicts(alone), f"{case.id} step {index} changed when packed"
                checked += len(mine)
    assert checked > 10_000  # the suites hold many packable cases


def test_cases_that_change_labels_or_the_workload_run_alone() -> None:
    """So do cases with cluster-scoped policies (they packed once and changed verdicts)."""
    by_id = {c.id: c for c in CASES}
    assert not packable(by_id["upstream-pod-label-change"])
    assert not packable(by_id["history-pod-created-after-policy"])
    assert not packable(by_id["history-service-target-port-change"])
    assert packable(by_id["upstream-policy-update-delete"])
    assert any(alone(c) for c in CASES)
    for group in groups(CASES, 8):
        assert len(group) == 1 or all(packable(c) and not alone(c) for c in group)
        assert len({c.workload for c in group}) == 1


def test_slot_names_rewrite_metadata_name_selectors() -> None:
    from kubeovn_conformance.builders import expr, peer, policy, rule, select, upstream_ground
    from kubeovn_conformance.model import NS_NAME_LABEL
    from kubeovn_conformance.packing import rename

    ground = upstream_ground(namespaces=("x", "y"), pods=("a",), protocols=("TCP",))
    pol = policy("x", "p", select(), ingress=[rule(peer(namespaces=select(expr(NS_NAME_LABEL, "In", "y"))))])
    out = rename(ground.with_policies([pol]), {"x": "x-k1", "y": "y-k1"})
    req = out.policies[0].ingress[0].peers[0].namespace_selector.match_expressions[0]
    assert out.policies[0].namespace == "x-k1" and req.values == ("y-k1",)


# --------------------------------------------------------------------------- on the lab

NEEDS_LAB = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovn-northd") is None,
                               reason="the OVN lab needs root and ovn-central/ovn-host")


def _packed_vs_alone(cases: list, profile: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    from kubeovn_conformance.backends.lab.backend import LabBackend
    from kubeovn_conformance.backends.lab.profile import get_profile
    from kubeovn_conformance.runner import Runner

    runner = Runner(LabBackend(mode="overlay", profile=get_profile(profile)), probe_timeout=0.5)
    packed = pack(cases)

    def cells(reports) -> dict:  # type: ignore[no-untyped-def]
        out = {}
        for r in reports:
            names = None
            for s in r.steps:
                for c in s.cells:
                    rec = c.record()
                    if names is None:
                        names = next((n for n in packed.names
                                      if rec["client"].split("/")[0] in n.values()), {})
                    rec = unslot_record(rec, names)
                    out[(r.case.id, s.name, rec["client"], rec["target"], rec["path"],
                         rec["port"], rec["protocol"])] = (rec["verdict"], rec["outcome"])
        return out

    try:
        together = cells(runner.run_pack(packed))
        alone_ = {}
        for c in cases:
            for s in runner.run_case(c).steps:
                for cell in s.cells:
                    rec = cell.record()
                    alone_[(c.id, s.name, rec["client"], rec["target"], rec["path"], rec["port"],
                            rec["protocol"])] = (rec["verdict"], rec["outcome"])
    finally:
        runner.close()
    return together, alone_


@pytest.mark.lab
@pytest.mark.slow
@NEEDS_LAB
def test_packed_and_unpacked_runs_agree_cell_by_cell_on_the_lab() -> None:
    """{} / NotIn / ipBlock / named-port / multi-step cases of the upstream ground, with
    ClusterIPs in the allow sets (v1.15.24): packed in one state and run alone."""
    wanted = ["upstream-ingress-allow-all", "upstream-ingress-match-expressions",
              "upstream-ingress-ipblock-except", "upstream-egress-ipblock-except",
              "upstream-ingress-allow-named-port", "upstream-policy-update-delete"]
    by_id = {c.id: c for c in CASES}
    together, alone_ = _packed_vs_alone([by_id[i] for i in wanted], "v1.15.24")
    assert together.keys() == alone_.keys()
    assert together == alone_
    assert all(outcome in ("pass", "undefined") for _, outcome in together.values())
