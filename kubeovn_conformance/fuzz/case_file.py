"""A manifest file as one case (`pytest suites/test_case_file.py --case-file FILE`).

Any manifest file works (Namespaces, Pods, Services, NetworkPolicies, as `expect` reads
them); a fuzzer finding additionally carries its seed, scenario and count, which become
JUnit properties of the case. The file is one state: the workload, then its policies.
"""

from __future__ import annotations

import re
from pathlib import Path

from kubeovn_conformance.cases import Case
from kubeovn_conformance.fuzz.case import case_for
from kubeovn_conformance.fuzz.output import junit_meta, read_meta
from kubeovn_conformance.model import ManifestError, load_scenario


def case_id(path: str | Path) -> str:
    return "file-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", Path(path).stem).strip("-") or "manifests")


def load_case_file(path: str | Path) -> tuple[Case, list[tuple[str, str]]]:
    """(the case, its JUnit properties). Bad input: ManifestError, one line naming the file."""
    scenario = load_scenario(path)
    if len(scenario.pods) < 2:
        raise ManifestError(f"{path}: a case needs at least two pods (found {len(scenario.pods)})")
    props = [("case_file", str(path)), *junit_meta(read_meta(path))]
    return case_for(scenario, case_id(path), f"the manifests of {path}"), props
