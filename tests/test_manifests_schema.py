"""Every manifest KindBackend would send validates against the Kubernetes OpenAPI schema of
each Kubernetes version in the matrix, in strict mode (unknown fields fail).

Kube-OVN objects: KindBackend creates none (Subnets, Vlans and ProviderNetworks for underlay
are made by the cluster scripts), so there is nothing of its own to check against the CRDs.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor

from kubeovn_conformance.backends.kind import RUN_LABEL, KindBackend
from kubeovn_conformance.model import scenario_from_documents

VERSIONS_FILE = Path(__file__).resolve().parent.parent / "clusters" / "versions.yaml"
FALLBACK_VERSIONS = ("1.30.0", "1.33.0", "1.35.0")


def matrix_kubernetes_versions() -> list[str]:
    """Kubernetes minor versions of the matrix's kind node images, as x.y.0."""
    if not VERSIONS_FILE.exists():
        return list(FALLBACK_VERSIONS)
    rows = (yaml.safe_load(VERSIONS_FILE.read_text()) or {}).get("versions") or {}
    found = set()
    for row in rows.values():
        m = re.search(r"kindest/node:v(\d+)\.(\d+)\.", str(row.get("node_image", "")))
        if m:
            found.add(f"{m[1]}.{m[2]}.0")
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


VERSIONS = matrix_kubernetes_versions()

REPRESENTATIVE = """
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {ns: x, team: red}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a, app: web}}
spec:
  containers:
  - name: agent
    image: any
    ports:
    - {containerPort: 80, protocol: TCP, name: http}
    - {containerPort: 8000, protocol: TCP, name: serve-80}
    - {containerPort: 53, protocol: UDP, name: dns}
    - {containerPort: 9000, protocol: SCTP}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: y, labels: {pod: b}}
spec:
  containers:
  - {name: agent, image: any, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: node, namespace: y, labels: {pod: node}}
spec:
  hostNetwork: true
  containers:
  - {name: agent, image: any, ports: [{containerPort: 18080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: x}
spec:
  selector: {pod: a}
  ports:
  - {name: http, port: 80, targetPort: serve-80, protocol: TCP}
  - {name: dns, port: 53, targetPort: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: np, namespace: y}
spec:
  type: NodePort
  selector: {pod: b}
  ports: [{port: 8080, targetPort: 8080, nodePort: 30080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: []
  egress: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: mixed, namespace: x}
spec:
  podSelector:
    matchLabels: {pod: a}
    matchExpressions:
    - {key: app, operator: In, values: [web, api]}
    - {key: tier, operator: DoesNotExist}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: In, values: [y]}
      podSelector:
        matchExpressions:
        - {key: pod, operator: NotIn, values: [c]}
        - {key: pod, operator: Exists}
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}
    - ipBlock: {cidr: 10.16.0.0/16, except: [10.16.1.0/24]}
    ports:
    - {protocol: TCP, port: serve-80}
    - {protocol: TCP, port: 8000, endPort: 8100}
    - {protocol: UDP, port: 53}
    - {protocol: SCTP}
  - {}
  egress:
  - to:
    - ipBlock: {cidr: 0.0.0.0/0, except: [169.254.0.0/16]}
    - namespaceSelector: {}
    ports: [{port: 80}]
"""


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    docs = [("representative", d) for d in yaml.safe_load_all(REPRESENTATIVE)]
    scenario = scenario_from_documents(docs)
    backend = KindBackend(kubeconfig="/nonexistent", run_id="schema-check")
    out = backend.render(scenario)
    assert {m["kind"] for m in out} == {"Namespace", "ConfigMap", "Pod", "Service", "NetworkPolicy"}
    assert len(out) == 2 + 2 + 3 + 2 + 2
    return out


def test_matrix_versions_have_their_own_schemas():
    assert VERSIONS, "no Kubernetes version found in the matrix"
    shipped = {major_minor(v) for v in all_versions()}
    # validate() silently falls back to an older schema: insist on the exact minor.
    assert all(major_minor(v) in shipped for v in VERSIONS), (VERSIONS, sorted(shipped))


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(manifests, version):
    for m in manifests:
        kubernetes_validate.validate(m, version, strict=True)


def test_manifests_are_the_translated_objects(manifests):
    """What is validated is what setup/reconcile send: real names, run labels, rewrites."""
    namespaces = [m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace"]
    assert namespaces == ["kc-schema-check-1-x", "kc-schema-check-1-y"]
    assert all(m["metadata"]["labels"][RUN_LABEL] == "schema-check"
               for m in manifests)
    mixed = next(m for m in manifests if m["metadata"]["name"] == "mixed")
    peers = mixed["spec"]["ingress"][0]["from"]
    assert peers[0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["kc-schema-check-1-y"]
    assert peers[1]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kc-schema-check-1-x"}
    assert mixed["spec"]["ingress"][0]["ports"][1] == {"protocol": "TCP", "port": 8000, "endPort": 8100}
    host = next(m for m in manifests if m["kind"] == "Pod" and m["metadata"]["name"] == "node")
    assert host["spec"]["hostNetwork"] is True and "sysctls" not in host["spec"]["securityContext"]
    ns_y = next(m for m in manifests if m["metadata"]["name"] == "kc-schema-check-1-y")
    assert "pod-security.kubernetes.io/enforce" not in ns_y["metadata"]["labels"]  # hostNetwork


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("kind", "path", "typo"), [
    ("NetworkPolicy", ("spec",), ("podSelector", "podSelctor")),
    ("Pod", ("spec", "containers", 0, "securityContext"), ("runAsNonRoot", "runAsNonroot")),
    ("Service", ("spec", "ports", 0), ("targetPort", "targetport")),
])
def test_a_planted_typo_fails(manifests, version, kind, path, typo):
    """Proof that the check above can fail: strict mode rejects an unknown field."""
    m = copy.deepcopy(next(x for x in manifests if x["kind"] == kind))
    node = m
    for step in path:
        node = node[step]
    good, bad = typo
    node[bad] = node.pop(good)
    with pytest.raises(kubernetes_validate.ValidationError, match=bad):
        kubernetes_validate.validate(m, version, strict=True)
