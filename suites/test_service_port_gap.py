"""The reported Kube-OVN underlay bug: Service port 80 -> pod port 8000.

Setup: x/server listens on TCP 8000 (named "http") behind x/server (80 -> 8000) and
x/server-named (80 -> "http"); y/client and y/bystander are clients.
Steps: apply one policy from examples/underlay-bug/ (ingress on the server or egress on the
client, allowing 80 only, 8000 only, both, the named port, or nothing).
Success: every probe, through the Pod IP and through each ClusterIP, matches the oracle:
allowing 80 only denies both paths, allowing 8000 (or "http") allows both.
Failure: the truth tables (expected, observed, diff) and the reason of each wrong cell.
"""

from __future__ import annotations

from pathlib import Path

from kubeovn_conformance.model import load_scenario
from kubeovn_conformance.runner import Case

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "underlay-bug"


def _case(path: Path) -> Case:
    # The second comment line of each example says what its policy allows.
    description = path.read_text().splitlines()[1].lstrip("# ").rstrip(".")
    return Case.from_scenario(path.stem, path.stem.split("-")[0], load_scenario(path), description)


CASES = [_case(p) for p in sorted(EXAMPLES.glob("*.yaml"))]


def test_case(case: Case, conformance, request) -> None:  # type: ignore[no-untyped-def]
    conformance.check(case, request.node)
