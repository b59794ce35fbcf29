"""One manifest file as one case: `pytest suites/test_case_file.py --case-file FILE`.

Setup: the file's Namespaces, Pods (each serving its declared ports) and Services; pod IPs
the file carries (`status.podIP`) are facts its ipBlocks refer to, and when the backend
hands out other IPs the ipBlocks follow their pods (kubeovn_conformance/fuzz/case.py).
Step: the file's NetworkPolicies, in one state.
Success: every probe matches what `kubeovn-conformance expect FILE` prints.
Failure: the truth tables and the reason of every wrong cell.
Not collected without --case-file. The fuzzer's findings print this line ready to run.
"""

from __future__ import annotations

from kubeovn_conformance.runner import Case

CASE_FILE = True  # the pytest plugin fills the parameter from --case-file
CASES: list[Case] = []


def test_case(case: Case, conformance, request) -> None:  # type: ignore[no-untyped-def]
    conformance.check(case, request.node)
