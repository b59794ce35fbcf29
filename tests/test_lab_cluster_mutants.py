"""On the real lab (OVN 25.03), deliberately wrong translations of cluster-scoped policies
fail named cases, and the right one passes them: the suite can tell `pass` from
allow-related and the Admin tier from the Baseline tier (issue 11). The pure counterpart over
every case is tests/test_lab_translate_cluster.py::test_mutated_translations_fail_named_cases."""

from __future__ import annotations

import os
import shutil

import pytest

from kubeovn_conformance.backends.lab.profile import get_profile
from suites.test_cluster_policies import CASES

NEEDS_LAB = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("debootstrap") is None,
                               reason="the OVN 25.03 lab needs root and debootstrap")
BY_ID = {c.id: c for c in CASES}


def _outcome(case_id: str, profile: str) -> str:
    from kubeovn_conformance.backends.lab.backend import LabBackend
    from kubeovn_conformance.runner import Runner

    runner = Runner(LabBackend(mode="overlay", profile=get_profile(profile)), probe_timeout=0.5)
    try:
        return runner.run_case(BY_ID[case_id]).outcome
    finally:
        runner.close()


@pytest.mark.lab
@NEEDS_LAB
@pytest.mark.parametrize(("profile", "case_id"), [
    ("mutant:pass-as-allow", "cluster-example-admin-pass-to-networkpolicy"),
    ("mutant:tiers-swapped", "cluster-example-admin-deny-beats-networkpolicy"),
])
def test_a_mutated_translation_fails_the_named_case_and_the_right_one_passes(profile: str,
                                                                            case_id: str) -> None:
    assert _outcome(case_id, profile) == "fail"
    assert _outcome(case_id, "v1.16.2") == "pass"
