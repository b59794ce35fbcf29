"""Generated cases: a covering array over named dimensions (kubeovn_conformance/generate/).

Setup: namespaces x (env=prod), y (env=dev), z (no env); pods x/a, x/b, x/c, y/a, y/b, z/c
labelled pod=<name> plus team/tier labels that peers select on; each listens on 80 and 81
(named web/alt, swapped in z) of TCP and UDP, or of SCTP; a Service s-<pod> per pod maps
8080 to the named targetPort `web` and 8081 to 81. Every case is probed through the Pod IPs
and through the Services.
Steps: the row's policies in x (target, peers, ports, protocol, direction, companions),
then, per the row, an update, a delete, a relabelled peer or namespace, a late pod, or a
Service whose targetPorts change.
Success: every probe of every step matches the oracle within the deadline.
Failure: the truth tables and the reason of each wrong cell; the id names the row
(`gen-egress-target-all-peer-ns-port-named-target-tcp-step-delete`), and
`-m gen_<dimension>_<value>` selects by one value.
"""

from __future__ import annotations

from kubeovn_conformance.generate import cases
from kubeovn_conformance.runner import Case

CASES = cases()


def test_case(case: Case, conformance, request) -> None:  # type: ignore[no-untyped-def]
    conformance.check(case, request.node)
