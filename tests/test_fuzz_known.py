"""The fuzzer looks for what nobody reported yet: a failing cell that a known issue explains by
mechanism (clusters/known-issues.yaml) is not shrunk. Without this, `make fuzz` on the newest
profile kept finding the open named-port bug (docs/findings/named-port-by-policy-namespace.md)."""

from __future__ import annotations

from kubeovn_conformance.fuzz.cli import _known_predicate

NAMED_ELSEWHERE = {"verdict": "allow", "path": "pod", "protocol": "TCP", "outcome": "fail",
                   "facts": [{"direction": "egress", "isolated": True, "port": "named",
                              "peer_namespace": "other", "named_port_policy_namespace": "other"}]}


def test_a_known_mechanism_is_not_a_finding_and_anything_else_is() -> None:
    explained = _known_predicate("overlay", "lab:v1.16.2", "lab")
    assert explained(NAMED_ELSEWHERE)
    endport = {**NAMED_ELSEWHERE, "facts": [{"direction": "ingress", "isolated": True, "port": "range"}]}
    assert not explained(endport)  # the endPort bug is fixed since v1.9.0: a finding
    assert not explained({**NAMED_ELSEWHERE, "facts": None})  # no facts, no match


def test_version_ranges_apply() -> None:
    # except-scope is known only before v1.15.5
    cell = {"verdict": "allow", "path": "pod", "protocol": "TCP", "outcome": "fail",
            "facts": [{"direction": "ingress", "isolated": True, "port": "any", "peer": "pods",
                       "except_covers_peer": True}]}
    assert _known_predicate("overlay", "lab:v1.14.41", "lab")(cell)
    assert not _known_predicate("overlay", "lab:v1.16.2", "lab")(cell)
