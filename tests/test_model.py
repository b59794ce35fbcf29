"""The model: loading manifests, implied namespaces, validation errors, manifest round trip."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kubeovn_conformance import builders as b
from kubeovn_conformance.model import (
    NS_NAME_LABEL,
    ContainerPort,
    IPBlock,
    ManifestError,
    Namespace,
    NetworkPolicy,
    PolicyPort,
    Scenario,
    load_scenario,
    scenario_from_documents,
)

FIXTURES = Path(__file__).parent / "fixtures" / "manifests"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- loading


def test_loads_multi_document_yaml_and_lists_from_several_files():
    s = load_scenario(FIXTURES / "workload.yaml", FIXTURES / "policy.yaml")
    assert {n.name for n in s.namespaces} == {"x", "y", "z"}
    assert [p.key for p in s.pods] == ["x/server", "y/client", "z/other"]
    assert [svc.key for svc in s.services] == ["x/svc/server"]
    assert [p.key for p in s.policies] == ["x/allow-http"]

    server = s.pod("x/server")
    assert server.ip == "10.16.0.10"
    # protocol defaults to TCP; the named port keeps its name
    assert server.ports == (ContainerPort(8000, "TCP", "http"), ContainerPort(53, "UDP", None))
    assert s.services[0].ports[0].target_port == "http"

    pol = s.policies[0]
    assert pol.types == ("Ingress",)
    first, second = pol.ingress
    assert first.ports == (PolicyPort("TCP", "http"), PolicyPort("UDP", 50, 60))
    (p,) = first.peers
    assert p.namespace_selector.match_labels == ((NS_NAME_LABEL, "y"),)
    assert p.pod_selector.match_expressions[0].values == ("client",)
    assert second.peers[0].ip_block == IPBlock("10.16.0.0/16", ("10.16.1.0/24",))
    assert second.ports is None  # missing: any port


def test_namespace_used_but_not_declared_is_implied_without_labels():
    s = load_scenario(FIXTURES / "workload.yaml")
    assert s.namespace("z") == Namespace("z")
    assert s.namespace("x").labels == (("team", "red"),)


def test_every_namespace_carries_its_metadata_name_label():
    s = load_scenario(FIXTURES / "workload.yaml")
    assert s.namespace("x").label_map == {"team": "red", NS_NAME_LABEL: "x"}
    assert s.namespace("z").label_map == {NS_NAME_LABEL: "z"}


def test_metadata_name_label_cannot_be_overridden_by_a_declared_label():
    # The API server sets it to the name whatever the manifest says.
    ns = Namespace("x", ((NS_NAME_LABEL, "not-x"),))
    assert ns.label_map[NS_NAME_LABEL] == "x"


def test_object_without_namespace_lands_in_default():
    s = scenario_from_documents([("f.yaml", {"kind": "Pod", "metadata": {"name": "p"}})])
    assert s.pods[0].key == "default/p"
    assert s.namespace("default")


def test_egress_empty_list_without_policy_types_is_ingress_only(tmp_path):
    path = _write(tmp_path, "np.yaml", """\
        kind: NetworkPolicy
        metadata: {namespace: x, name: np}
        spec:
          podSelector: {}
          egress: []
        """)
    (pol,) = load_scenario(path).policies
    assert pol.egress == ()
    assert pol.types == ("Ingress",)


def test_empty_policy_types_list_is_defaulted(tmp_path):
    path = _write(tmp_path, "np.yaml", """\
        kind: NetworkPolicy
        metadata: {namespace: x, name: np}
        spec:
          podSelector: {}
          policyTypes: []
          egress: [{}]
        """)
    assert load_scenario(path).policies[0].types == ("Ingress", "Egress")


def test_service_whose_named_target_port_no_pod_declares_is_valid(tmp_path):
    path = _write(tmp_path, "svc.yaml", """\
        kind: Service
        metadata: {namespace: x, name: svc}
        spec:
          selector: {app: nothing}
          ports: [{port: 80, targetPort: nobody-has-it}]
        """)
    (svc,) = load_scenario(path).services
    assert svc.ports[0].target_port == "nobody-has-it"


def test_service_with_empty_selector_selects_no_pod():
    # Kubernetes: an empty selector means endpoints are managed outside, not "every pod".
    s = Scenario(pods=(b.pod("x", "a", {"app": "a"}),),
                 services=(b.service("x", "svc", {}, b.service_port(80, 8000)),))
    assert s.backends(s.services[0]) == []


# --------------------------------------------------------------------------- rejections

_NP = """\
kind: NetworkPolicy
metadata: {namespace: x, name: np}
spec:
  podSelector: {}
"""

INVALID = {
    "endport-with-named-port": (_NP + "  ingress:\n  - ports: [{port: http, endPort: 90}]\n",
                                "NetworkPolicy x/np", "endPort"),
    "endport-below-port": (_NP + "  ingress:\n  - ports: [{port: 90, endPort: 80}]\n",
                           "NetworkPolicy x/np", "endPort 80 is below port 90"),
    "endport-without-port": (_NP + "  ingress:\n  - ports: [{endPort: 80}]\n",
                             "NetworkPolicy x/np", "endPort"),
    "except-outside-cidr": (_NP + "  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/16, "
                            "except: [10.1.0.0/24]}}]\n", "NetworkPolicy x/np", "10.1.0.0/24"),
    "except-equal-to-cidr": (_NP + "  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/16, "
                             "except: [10.0.0.0/16]}}]\n", "NetworkPolicy x/np", "except"),
    "ipblock-beside-selector": (_NP + "  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8}, "
                                "podSelector: {}}]\n", "NetworkPolicy x/np", "ipBlock"),
    "bad-cidr": (_NP + "  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.300/8}}]\n",
                 "NetworkPolicy x/np", "CIDR"),
    "policy-protocol-icmp": (_NP + "  ingress:\n  - ports: [{protocol: ICMP, port: 80}]\n",
                             "NetworkPolicy x/np", "ICMP"),
    "policy-protocol-lowercase": (_NP + "  ingress:\n  - ports: [{protocol: tcp, port: 80}]\n",
                                  "NetworkPolicy x/np", "tcp"),
    "policy-port-0": (_NP + "  ingress:\n  - ports: [{port: 0}]\n", "NetworkPolicy x/np", "1-65535"),
    "policy-port-65536": (_NP + "  ingress:\n  - ports: [{port: 65536}]\n",
                          "NetworkPolicy x/np", "1-65535"),
    "policy-endport-65536": (_NP + "  ingress:\n  - ports: [{port: 80, endPort: 65536}]\n",
                             "NetworkPolicy x/np", "1-65535"),
    "empty-peer": (_NP + "  ingress:\n  - from: [{}]\n", "NetworkPolicy x/np", "peer"),
    "bad-policy-type": (_NP + "  policyTypes: [Both]\n", "NetworkPolicy x/np", "Both"),
    "selector-bad-operator": (_NP + "  ingress:\n  - from: [{podSelector: {matchExpressions: "
                              "[{key: a, operator: Equals, values: [b]}]}}]\n",
                              "NetworkPolicy x/np", "Equals"),
    "selector-in-without-values": (_NP + "  ingress:\n  - from: [{podSelector: {matchExpressions: "
                                   "[{key: a, operator: In}]}}]\n", "NetworkPolicy x/np", "In"),
    "malformed-ports-list": (_NP + "  ingress:\n  - ports: [80]\n", "NetworkPolicy x/np", ""),
    "malformed-ingress-map": (_NP + "  ingress: {from: []}\n", "NetworkPolicy x/np", ""),
    "pod-port-0": ("kind: Pod\nmetadata: {namespace: x, name: p}\nspec:\n  containers:\n"
                   "  - {name: c, ports: [{containerPort: 0}]}\n", "Pod x/p", "1-65535"),
    "pod-port-65536": ("kind: Pod\nmetadata: {namespace: x, name: p}\nspec:\n  containers:\n"
                       "  - {name: c, ports: [{containerPort: 65536}]}\n", "Pod x/p", "1-65535"),
    "pod-protocol-icmp": ("kind: Pod\nmetadata: {namespace: x, name: p}\nspec:\n  containers:\n"
                          "  - {name: c, ports: [{containerPort: 80, protocol: ICMP}]}\n",
                          "Pod x/p", "ICMP"),
    "pod-bad-port-name": ("kind: Pod\nmetadata: {namespace: x, name: p}\nspec:\n  containers:\n"
                          "  - {name: c, ports: [{containerPort: 80, name: Web_Port}]}\n",
                          "Pod x/p", "Web_Port"),
    "service-port-0": ("kind: Service\nmetadata: {namespace: x, name: s}\nspec:\n"
                       "  ports: [{port: 0, targetPort: 80}]\n", "Service x/s", "1-65535"),
    "service-port-65536": ("kind: Service\nmetadata: {namespace: x, name: s}\nspec:\n"
                           "  ports: [{port: 65536}]\n", "Service x/s", "1-65535"),
    "service-target-port-0": ("kind: Service\nmetadata: {namespace: x, name: s}\nspec:\n"
                              "  ports: [{port: 80, targetPort: 0}]\n", "Service x/s", "1-65535"),
    "service-target-port-65536": ("kind: Service\nmetadata: {namespace: x, name: s}\nspec:\n"
                                  "  ports: [{port: 80, targetPort: 65536}]\n", "Service x/s",
                                  "1-65535"),
    "service-protocol-icmp": ("kind: Service\nmetadata: {namespace: x, name: s}\nspec:\n"
                              "  ports: [{port: 80, protocol: ICMP}]\n", "Service x/s", "ICMP"),
    "service-without-ports": ("kind: Service\nmetadata: {namespace: x, name: s}\nspec:\n"
                              "  selector: {app: a}\n", "Service x/s", "ports"),
    "duplicate-pod": ("kind: Pod\nmetadata: {namespace: x, name: p}\n---\n"
                      "kind: Pod\nmetadata: {namespace: x, name: p}\n", "Pod x/p", "duplicate"),
    "duplicate-policy": (_NP + "---\n" + _NP, "NetworkPolicy x/np", "duplicate"),
    "unknown-kind": ("kind: Deployment\nmetadata: {namespace: x, name: d}\n", "Deployment",
                     "unsupported kind"),
    "pod-without-name": ("kind: Pod\nmetadata: {namespace: x}\n", "Pod", "metadata.name"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_manifest_is_rejected_with_one_line_naming_file_and_object(tmp_path, case):
    text, obj, why = INVALID[case]
    path = _write(tmp_path, f"{case}.yaml", text)
    with pytest.raises(ManifestError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{case}.yaml" in msg
    assert obj in msg
    assert why in msg


def test_bad_yaml_is_rejected_with_file_and_line(tmp_path):
    path = _write(tmp_path, "broken.yaml", "kind: Pod\nmetadata: {name: [unclosed\n")
    with pytest.raises(ManifestError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert "broken.yaml" in msg and "invalid YAML" in msg and "\n" not in msg
    assert "line " in msg


def test_document_that_is_not_an_object_is_rejected(tmp_path):
    path = _write(tmp_path, "scalar.yaml", "just a string\n")
    with pytest.raises(ManifestError, match=r"scalar\.yaml"):
        load_scenario(path)


def test_missing_file_is_rejected_with_its_name(tmp_path):
    with pytest.raises(ManifestError, match=r"nope\.yaml: cannot read"):
        load_scenario(tmp_path / "nope.yaml")


def test_duplicate_across_two_files_names_the_files(tmp_path):
    one = _write(tmp_path, "one.yaml", _NP)
    two = _write(tmp_path, "two.yaml", _NP)
    with pytest.raises(ManifestError) as err:
        load_scenario(one, two)
    assert "one.yaml" in str(err.value) and "two.yaml" in str(err.value)
    assert "duplicate NetworkPolicy x/np" in str(err.value)


def test_same_name_in_two_namespaces_or_two_kinds_is_not_a_duplicate():
    s = Scenario(pods=(b.pod("x", "a"), b.pod("y", "a")),
                 services=(b.service("x", "a", {"pod": "a"}, b.service_port(80, 80)),))
    assert len(s.pods) == 2


def test_duplicate_built_in_python_is_rejected():
    with pytest.raises(ManifestError, match="duplicate Pod x/a"):
        Scenario(pods=(b.pod("x", "a"), b.pod("x", "a")))


def test_builders_make_the_same_objects_as_yaml(tmp_path):
    path = _write(tmp_path, "np.yaml", """\
        kind: NetworkPolicy
        metadata: {namespace: x, name: np}
        spec:
          podSelector: {matchLabels: {app: server}}
          policyTypes: [Ingress]
          ingress:
          - from:
            - podSelector: {matchLabels: {app: client}}
              namespaceSelector: {matchLabels: {role: client}}
            ports: [{port: 8000}]
        """)
    built = b.policy("x", "np", b.select(app="server"),
                     ingress=[b.rule(b.peer(pods=b.select(app="client"),
                                            namespaces=b.select(role="client")),
                                     ports=[b.port(8000)])],
                     types=["Ingress"])
    assert load_scenario(path).policies == (built,)


# --------------------------------------------------------------------------- round trip


def _roundtrip(s: Scenario) -> Scenario:
    return scenario_from_documents(("mem", obj.to_manifest()) for obj in s.objects())


def _rich_scenario() -> Scenario:
    pods = (
        b.pod("x", "server", {"app": "server"},
              [b.container_port(8000, name="http"), b.container_port(53, "UDP"),
               b.container_port(9000, "SCTP", "sig")], ip="10.16.0.10"),
        b.pod("y", "client", {"app": "client", "tier": "web"}, ip="10.16.0.20"),
        b.pod("y", "host", host_network=True),
    )
    services = (
        b.service("x", "server", {"app": "server"}, b.service_port(80, 8000),
                  b.service_port(81, "http", node_port=30081)),
        b.service("x", "external", None, b.service_port(443, 443)),
    )
    policies = (
        b.policy("x", "mixed", b.select(b.expr("app", "In", "server", "db")),
                 ingress=[b.rule(b.peer(pods=b.select(b.expr("tier", "Exists")),
                                        namespaces=b.select(b.expr("team", "NotIn", "red"))),
                                 b.block("10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"),
                                 ports=[b.port("http"), b.port(50, "UDP", end=60),
                                        b.port(protocol="SCTP")]),
                          b.rule()],
                 egress=[b.rule(b.peer(namespaces=b.select()), ports=[]),
                         b.rule(b.peer(pods=b.select(b.expr("x", "DoesNotExist"))))],
                 types=["Ingress", "Egress"]),
        b.policy("x", "deny-in", ingress=[]),
        b.policy("y", "empty-egress", egress=[]),
        b.deny_all("y", "deny-both", types=["Ingress", "Egress"]),
    )
    nss = (b.namespace("x", team="blue"), b.namespace("y"))
    return Scenario(nss, pods, services, policies)


def test_to_manifest_round_trip_gives_equal_objects():
    s = _rich_scenario()
    again = _roundtrip(s)
    assert again.namespaces == s.namespaces
    assert again.pods == s.pods
    assert again.services == s.services
    assert again.policies == s.policies
    assert again == s


def test_round_trip_through_yaml_text(tmp_path):
    import yaml

    s = _rich_scenario()
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all([o.to_manifest() for o in s.objects()]))
    assert load_scenario(path) == s


def test_round_trip_keeps_empty_versus_missing():
    # `ingress: []` (allow nothing) and missing ingress are different policies.
    s = Scenario(policies=(b.policy("x", "a", ingress=[]), b.policy("x", "b"),
                           b.policy("x", "c", ingress=[b.rule(ports=[])])))
    a, bb, c = _roundtrip(s).policies
    assert a.ingress == () and bb.ingress is None
    assert c.ingress[0].ports == () and c.ingress[0].peers is None


def test_examples_load():
    for path in sorted((Path(__file__).parent.parent / "examples" / "underlay-bug").glob("*.yaml")):
        s = load_scenario(path)
        assert len(s.policies) == 1, path
        assert isinstance(s.policies[0], NetworkPolicy)
