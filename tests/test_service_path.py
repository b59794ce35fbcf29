"""The reported Kube-OVN underlay bug, on examples/underlay-bug/*.yaml.

x/server listens on 8000 (named "http"); x/svc/server maps 80 -> 8000 and x/svc/server-named
maps 80 -> "http". y/client is the pod the policies name, y/bystander one they do not. The
policy is on the server (ingress-*) or on the client (egress-*). Kubernetes judges Service
traffic after DNAT, on the pod port, so a policy naming only the Service port 80 denies both
paths and one naming 8000 (or "http") allows both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeovn_conformance.model import load_scenario
from kubeovn_conformance.oracle import ALLOW, DENY, UNDEFINED, Oracle

EXAMPLES = Path(__file__).parent.parent / "examples" / "underlay-bug"

# The three ways a client reaches the server's port 8000.
PATHS = (("x/server", "pod", 8000), ("x/svc/server", "service", 80),
         ("x/svc/server-named", "service", 80))

# policy flavour -> verdict for y/client on all three paths
CLIENT = {
    "allow-service-port": DENY,  # names only 80: never seen after DNAT
    "allow-target-port": ALLOW,
    "allow-both-ports": ALLOW,
    "allow-named-port": ALLOW,
    "deny-all": DENY,
}

CASES = [(direction, flavour) for direction in ("ingress", "egress") for flavour in CLIENT]


def expectations(direction: str, flavour: str) -> dict[tuple[str, str, str, int], object]:
    s = load_scenario(EXAMPLES / f"{direction}-{flavour}.yaml")
    return {(e.probe.client, e.probe.target, e.probe.path, e.probe.port): e
            for e in Oracle(s).expectations()}


@pytest.mark.parametrize(("direction", "flavour"), CASES, ids=[f"{d}-{f}" for d, f in CASES])
def test_client_gets_the_same_verdict_on_pod_and_service_paths(direction, flavour):
    exp = expectations(direction, flavour)
    want = CLIENT[flavour]
    for target, path, port in PATHS:
        e = exp[("y/client", target, path, port)]
        assert e.verdict == want, (target, e.reason)
        assert e.probe.target_port == 8000  # the named targetPort resolves to 8000 too
        assert e.expected_observed == ("connected" if want == ALLOW else "timeout")


@pytest.mark.parametrize(("direction", "flavour"), CASES, ids=[f"{d}-{f}" for d, f in CASES])
def test_bystander_is_denied_wherever_the_policy_isolates_it(direction, flavour):
    exp = expectations(direction, flavour)
    # ingress: the policy isolates the server and admits only y/client, so the bystander is
    # denied; egress: the policy selects only y/client, so the bystander stays open.
    want = DENY if direction == "ingress" else ALLOW
    for target, path, port in PATHS:
        e = exp[("y/bystander", target, path, port)]
        assert e.verdict == want, (target, e.reason)


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_service_port_rule_allows_only_the_unused_pod_port_80(direction):
    # The policy naming 80 does allow the pod's port 80; nothing listens there, so the
    # expected observation is "refused", which tells a policy drop from an empty port.
    e = expectations(direction, "allow-service-port")[("y/client", "x/server", "pod", 80)]
    assert (e.verdict, e.expected_observed) == (ALLOW, "refused")


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_deny_reason_names_the_policy_the_direction_and_the_pod_port(direction):
    exp = expectations(direction, "allow-service-port")
    reason = exp[("y/client", "x/svc/server", "service", 80)].reason
    policy = f"{'x' if direction == 'ingress' else 'y'}/{direction}-service-port"
    isolated = "x/server ingress" if direction == "ingress" else "y/client egress"
    assert f"{isolated} isolated by {policy}" in reason
    assert "TCP/8000" in reason  # judged on the target port, not the Service port
    assert "via x/svc/server:80/TCP -> x/server:8000" in reason


@pytest.mark.parametrize(("direction", "flavour"), CASES, ids=[f"{d}-{f}" for d, f in CASES])
def test_server_reaching_itself_through_its_service_is_undefined(direction, flavour):
    exp = expectations(direction, flavour)
    for target in ("x/svc/server", "x/svc/server-named"):
        assert exp[("x/server", target, "service", 80)].verdict == UNDEFINED


def test_every_example_holds_both_services_and_both_pods():
    for direction, flavour in CASES:
        s = load_scenario(EXAMPLES / f"{direction}-{flavour}.yaml")
        assert {svc.key for svc in s.services} == {"x/svc/server", "x/svc/server-named"}
        assert {p.key for p in s.pods} == {"x/server", "y/client", "y/bystander"}
