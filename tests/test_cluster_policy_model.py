"""Loading AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy manifests:
the shapes Kube-OVN serves, the CRDs' validation as one-line errors naming file and object,
and `expect` on them as a user runs it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubeovn_conformance.cluster_policy import ANP, BANP, CNP, ClusterPeer, ClusterPort
from kubeovn_conformance.model import ManifestError, load_scenario, scenario_from_documents

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "cluster-policies"

CNP_DOC = {
    "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
    "metadata": {"name": "c"},
    "spec": {"tier": "Admin", "priority": 5,
             "subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "a"}}}},
             "ingress": [{"name": "r0", "action": "Accept", "from": [{"namespaces": {}}],
                          "ports": [{"portNumber": {"protocol": "UDP", "port": 53}},
                                    {"portRange": {"start": 80, "end": 90}},
                                    {"namedPort": "http"}]}],
             "egress": [{"action": "Deny", "to": [{"networks": ["10.0.0.0/8", "fd00::/8"]}]},
                        {"action": "Pass", "to": [{"nodes": {"matchLabels": {"a": "b"}}}]}]}}
ANP_DOC = {
    "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
    "metadata": {"name": "a"},
    "spec": {"priority": 0, "subject": {"namespaces": {"matchLabels": {"t": "x"}}},
             "egress": [{"action": "Pass", "to": [{"pods": {"namespaceSelector": {}, "podSelector": {}}}]}]}}
BANP_DOC = {
    "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
    "metadata": {"name": "default"},
    "spec": {"subject": {"namespaces": {}},
             "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}}


def load(*docs: dict) -> tuple:
    return scenario_from_documents(("f.yaml", d) for d in docs).cluster_policies


def test_the_three_kinds_load_with_every_form() -> None:
    c, a, b = load(CNP_DOC, ANP_DOC, BANP_DOC)
    assert (c.kind, c.tier, c.priority, c.key) == (CNP, "Admin", 5, "ClusterNetworkPolicy/c")
    assert c.subject.pods is not None and c.subject.pods.match_labels == (("app", "a"),)
    assert c.ingress[0].ports == (ClusterPort("UDP", 53), ClusterPort("TCP", 80, 90),
                                  ClusterPort(name="http"))
    assert c.egress[0].peers == (ClusterPeer("networks", networks=("10.0.0.0/8", "fd00::/8")),)
    assert c.egress[1].peers[0].form == "nodes" and c.egress[1].verdict == "pass"
    assert (a.kind, a.tier, a.priority, a.egress[0].peers[0].form) == (ANP, "Admin", 0, "pods")
    assert (b.kind, b.tier, b.priority, b.label) == (BANP, "Baseline", None, "BANP default")
    assert c.label == "CNP c (Admin, priority 5)" and a.label == "ANP a (priority 0)"


def test_manifests_round_trip() -> None:
    first = load(CNP_DOC, ANP_DOC, BANP_DOC)
    assert load(*(p.to_manifest() for p in first)) == first


def test_examples_load_and_cluster_policies_need_no_namespace() -> None:
    for path in sorted(EXAMPLES.glob("*-*.yaml")):  # every policy file, with the workload
        s = load_scenario(EXAMPLES / "workload.yaml", path)
        assert s.cluster_policies, path
        assert {n.name for n in s.namespaces} == {"shop", "monitoring", "guest"}, path


def mutate(doc: dict, path: str, value: object) -> dict:
    """A copy of doc with the value at a dotted path (list indexes as numbers) replaced;
    the value DELETE removes the key."""
    out = copy.deepcopy(doc)
    node = out
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    if value == "DELETE":
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


BAD = [
    (CNP_DOC, "spec.priority", 1001,
     "ClusterNetworkPolicy c: spec.priority: priority 1001 is not an integer 0-1000"),
    (ANP_DOC, "spec.priority", -1,
     "AdminNetworkPolicy a: spec.priority: priority -1 is not an integer 0-1000"),
    (ANP_DOC, "spec.priority", "DELETE", "spec.priority: priority None is not an integer"),
    (CNP_DOC, "spec.tier", "Middle", "spec.tier 'Middle' is not Admin or Baseline"),
    (CNP_DOC, "apiVersion", "policy.networking.k8s.io/v1alpha1",
     "is not 'policy.networking.k8s.io/v1alpha2'"),
    (BANP_DOC, "metadata.name", "strict", "must be named \"default\""),
    (BANP_DOC, "spec.priority", 3, "spec: unknown field 'priority'"),
    (ANP_DOC, "spec.subject", {"namespaces": {}, "pods": {"namespaceSelector": {}, "podSelector": {}}},
     "spec.subject: exactly one of namespaces, pods must be set, got namespaces and pods"),
    (ANP_DOC, "spec.subject", {}, "spec.subject: exactly one of namespaces, pods must be set, got none"),
    (ANP_DOC, "spec.subject", {"pods": {"podSelector": {}}},
     "spec.subject.pods: namespaceSelector is required"),
    (ANP_DOC, "spec.egress.0.action", "Accept",
     "spec.egress[0].action: 'Accept' is not one of Allow, Deny, Pass"),
    (CNP_DOC, "spec.ingress.0.action", "Allow",
     "spec.ingress[0].action: 'Allow' is not one of Accept, Deny, Pass"),
    (BANP_DOC, "spec.ingress.0.action", "Pass", "spec.ingress[0].action: 'Pass' is not one of Allow, Deny"),
    (BANP_DOC, "spec.ingress.0.from", [], "spec.ingress[0].from: must list 1 to 100 peers"),
    (CNP_DOC, "spec.ingress.0.from.0", {"networks": ["10.0.0.0/8"]},
     "spec.ingress[0].from[0]: unknown field 'networks' (allowed: namespaces, pods)"),
    (CNP_DOC, "spec.egress.0.to.0", {"namespaces": {}, "networks": ["10.0.0.0/8"]},
     "exactly one of namespaces, pods, nodes, networks, domainNames must be set, got namespaces "
     "and networks"),
    (CNP_DOC, "spec.egress.0.to.0.networks", ["10.0.0.0/33"], "networks[0]: '10.0.0.0/33' is not a CIDR"),
    (CNP_DOC, "spec.egress.0.to.0.networks", ["10.0.0.1"], "'10.0.0.1' is not a CIDR (no prefix length)"),
    (CNP_DOC, "spec.egress.0.to.0.networks", [], "networks must list 1 to 25 CIDRs"),
    (CNP_DOC, "spec.egress.0.to.0", {"domainNames": ["example.com"]}, "domainNames peers are not modelled"),
    (CNP_DOC, "spec.ingress.0.ports", [], "spec.ingress[0].ports: must list 1 to 25 ports"),
    (CNP_DOC, "spec.ingress.0.ports.0", {"portNumber": {"port": 53}, "namedPort": "dns"},
     "exactly one of portNumber, portRange, namedPort must be set, got portNumber and namedPort"),
    (CNP_DOC, "spec.ingress.0.ports.0.portNumber.port", 0, "portNumber.port: 0 is not a port number 1-65535"),
    (CNP_DOC, "spec.ingress.0.ports.0.portNumber.protocol", "ICMP",
     "protocol 'ICMP' is not one of TCP, UDP, SCTP"),
    (CNP_DOC, "spec.ingress.0.ports.1.portRange", {"start": 90, "end": 90},
     "portRange: start 90 must be less than end 90"),
    (CNP_DOC, "spec.egress.0.ports", [{"namedPort": "http"}],
     "spec.egress[0]: networks/nodes peers cannot be used with namedPort"),
    (CNP_DOC, "spec.ingress.0.name", "x" * 101, "spec.ingress[0].name: at most 100 characters"),
    (CNP_DOC, "spec.ingress", [{"action": "Deny", "from": [{"namespaces": {}}]}] * 26,
     "spec.ingress: must be a list of at most 25 rules"),
    (CNP_DOC, "spec.ingress.0.from.0.namespaces", {"namespaceSelector": {}},
     "spec.ingress[0].from[0].namespaces: unknown field 'namespaceSelector' (allowed: "
     "matchLabels, matchExpressions)"),
    # network-policy-api v0.2.0's rule shape: refused with what Kube-OVN expects instead.
    (CNP_DOC, "spec.ingress.0", {"action": "Deny", "from": [{"namespaces": {}}],
                                 "protocols": [{"tcp": {"destinationPort": {"number": 80}}}]},
     "'protocols' is the rule shape of network-policy-api v0.2.0; Kube-OVN v1.15/v1.16 serve "
     "v1alpha2 as of 3910463a5686 (2025-12-09), whose rules use 'ports'"),
]


@pytest.mark.parametrize(("doc", "path", "value", "message"), BAD, ids=[b[3][:60] for b in BAD])
def test_invalid_manifests_are_one_line_naming_file_and_object(doc, path, value, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ManifestError) as e:
        load(mutate(doc, path, value))
    text = str(e.value)
    assert message in text and "\n" not in text
    assert text.startswith(f"f.yaml: {doc['kind']} ")


def test_the_v0_1_5_docs_story_1_is_refused_as_its_crd_would() -> None:
    # site-src/user-story-examples/user-story-1.yaml at v0.1.5 nests `namespaceSelector`
    # inside the `namespaces` LabelSelector, a field a LabelSelector does not have.
    doc = {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
           "metadata": {"name": "cluster-wide-deny-example"},
           "spec": {"priority": 10, "subject": {"namespaces": {}},
                    "ingress": [{"action": "Deny", "from": [{"namespaces": {"namespaceSelector": {}}}]}]}}
    with pytest.raises(ManifestError, match="unknown field 'namespaceSelector'"):
        load(doc)


def test_duplicate_names_per_kind() -> None:
    with pytest.raises(ManifestError, match="duplicate AdminNetworkPolicy a"):
        load(ANP_DOC, ANP_DOC)
    other_kind = {**CNP_DOC, "metadata": {"name": "a"}}
    assert len(load(ANP_DOC, other_kind)) == 2  # separate kinds, separate names


# --------------------------------------------------------------------------- expect, as a user runs it


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeovn_conformance.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)


def test_expect_json_names_the_deciding_tier_and_policy_per_direction() -> None:
    r = run("expect", EXAMPLES / "workload.yaml", EXAMPLES / "admin-pass-to-networkpolicy.yaml",
            "--format", "json")
    assert r.returncode == 0, r.stderr
    by = {(x["client"], x["target"], x["port"]): x for x in json.loads(r.stdout)}
    scrape = by[("monitoring/prometheus", "shop/svc/web-metrics", 9100)]
    assert (scrape["verdict"], scrape["target_port"]) == ("allow", 9090)
    assert scrape["ingress"] == {"tier": "NetworkPolicy", "policy": "shop/metrics-from-prometheus",
                                 "rule": "ingress[0]", "passed_by": "ANP shop-ingress (priority 20)"}
    assert scrape["egress"] == {"tier": "default", "policy": None}
    guest = by[("guest/client", "shop/web", 8000)]
    assert guest["verdict"] == "deny"
    assert guest["ingress"] == {"tier": "Admin", "policy": "ANP shop-ingress (priority 20)",
                                "rule": "ingress[1]"}
    assert "denied by ANP shop-ingress (priority 20) ingress[1] \"deny-the-rest\" before any " \
           "NetworkPolicy" in guest["reason"]


def test_expect_table_shows_undefined_for_a_same_priority_conflict() -> None:
    r = run("expect", EXAMPLES / "workload.yaml", EXAMPLES / "admin-same-priority-conflict.yaml", "--reasons")
    assert r.returncode == 0, r.stderr
    assert "guest/client -> shop/web pod 8000/TCP: undefined: shop/web ingress: Admin policies " \
           "at one priority disagree" in r.stdout


def test_expect_bad_cluster_policy_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(mutate(CNP_DOC, "spec.priority", 4000)))
    r = run("expect", EXAMPLES / "workload.yaml", bad)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert f"{bad}: ClusterNetworkPolicy c: spec.priority: priority 4000" in r.stderr
