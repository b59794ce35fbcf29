"""deploy/rbac.yaml: valid for every Kubernetes version of the matrix (kubernetes-validate,
strict), and enough: every request the cluster backend sends to FakeApiServer during a run
that uses every kind of object (preflight, setup, NetworkPolicies, cluster-scoped policies,
relabelling, a retargeted Service, a removed pod, probes, the diagnostics dump, teardown) is
allowed by its rules, checked the way RBAC authorizes a request (API group, resource and
subresource, verb, resourceNames; a Role only in its namespace)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kubeovn_conformance import cluster_builders as cb
from kubeovn_conformance.backends.base import Target
from kubeovn_conformance.backends.cluster import ClusterBackend
from kubeovn_conformance.backends.cluster_preflight import preflight
from kubeovn_conformance.cases import Case, Step
from kubeovn_conformance.model import (
    NS_NAME_LABEL,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    Scenario,
    Service,
    ServicePort,
)
from tests.fake_apiserver import FakeApiServer, fake_controller, fake_node, fake_subnet
from tests.test_kind_backend import ALLOW_X, DENY_Y, EGRESS_X, WORKLOAD
from tests.test_manifests_schema import VERSIONS

RBAC = Path(__file__).resolve().parent.parent / "deploy" / "rbac.yaml"
GROUP = "policy.networking.k8s.io"
CRDS = {f"{plural}.{GROUP}" for plural in
        ("adminnetworkpolicies", "baselineadminnetworkpolicies", "clusternetworkpolicies")}


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


@pytest.mark.parametrize("version", VERSIONS)
def test_rbac_manifest_validates_strictly(version: str) -> None:
    docs = documents()
    assert [d["kind"] for d in docs] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                         "Role", "RoleBinding"]
    for d in docs:
        kubernetes_validate.validate(d, version, strict=True)


@dataclass(frozen=True)
class Request:
    group: str
    resource: str  # with "/subresource"
    verb: str
    namespace: str
    name: str


def request_attributes(method: str, path: str) -> list[Request]:
    """What RBAC checks for an HTTP request (a WebSocket exec is checked as get and, on
    newer API servers, as create: both)."""
    parts = [p for p in path.split("/") if p]
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else "")
    if len(rest) > 2:
        resource += "/" + rest[2]
    verbs = {"POST": ["create"], "PUT": ["update"], "PATCH": ["patch"],
             "DELETE": ["delete" if name else "deletecollection"],
             "GET": ["get" if name else "list"]}[method]
    if resource == "pods/exec":
        verbs = ["get", "create"]
    return [Request(group, resource, v, namespace, name) for v in verbs]


def allowed(docs: list[dict[str, Any]], req: Request) -> bool:
    roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("ClusterRole", "Role")}
    for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        scope = binding["metadata"].get("namespace", "")
        if binding["kind"] == "RoleBinding" and req.namespace != scope:
            continue
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], scope if ref["kind"] == "Role" else "", ref["name"]))
        for rule in (role or {}).get("rules", ()):
            if req.group in rule.get("apiGroups", ()) and req.resource in rule.get("resources", ()) \
                    and req.verb in rule.get("verbs", ()) \
                    and (not rule.get("resourceNames") or req.name in rule["resourceNames"]):
                return True
    return False


def uncovered(docs: list[dict[str, Any]], requests: list[tuple[str, str, str]]) -> list[Request]:
    out = []
    for method, path, _ in requests:
        out += [r for r in request_attributes(method, path) if not allowed(docs, r)]
    return sorted(set(out), key=str)


def bindings_name_the_service_account(docs: list[dict[str, Any]]) -> bool:
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]
    return all(b["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
               for b in docs if b["kind"].endswith("Binding"))


@pytest.fixture(scope="module")
def run_requests(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """Every request of a run that touches every kind of object the backend handles."""
    tmp = tmp_path_factory.mktemp("rbac")
    preload = [fake_subnet("tenant-vlan", vlan="vlan100"), fake_controller("kubeovn/kube-ovn:v1.16.2")]
    with FakeApiServer(nodes=[fake_node("n1"), fake_node("n2")], crds=CRDS, preload=preload) as api:
        kc = api.kubeconfig(tmp / "kc")
        found = preflight(str(kc), None, mode="underlay", subnet="tenant-vlan", version=None)
        assert found.version == "v1.16.2"
        backend = ClusterBackend(kubeconfig=kc, mode="underlay", run_id="rbac", subnet="tenant-vlan",
                                 ready_timeout=15.0, delete_timeout=15.0, exec_grace=5.0,
                                 diagnostics_script=tmp / "no-such-script")
        try:
            anp = cb.anp("deny", 10, cb.subject(namespaces=LabelSelector.of({"ns": "y"})),
                         ingress=[cb.crule("Deny", cb.peer_ns(LabelSelector.of({NS_NAME_LABEL: "x"})))])
            case = Case("cp", "ingress", WORKLOAD,
                        (Step("initial", lambda w: w.with_cluster_policies((anp,))),))
            assert backend.skip_reason(case) is None  # reads the CRD
            live = backend.setup(WORKLOAD)
            policies = live.with_policies([DENY_Y, ALLOW_X, EGRESS_X])
            baseline = cb.banp(cb.subject(namespaces=LabelSelector()),
                               ingress=[cb.crule("Deny", cb.peer_ns(LabelSelector()))])
            cnp = cb.cnp("admin", "Admin", 5, cb.subject(namespaces=LabelSelector.of({"ns": "y"})),
                         ingress=[cb.crule("Deny", cb.peer_ns(LabelSelector.of({"ns": "x"})))])
            backend.reconcile(policies.with_cluster_policies((anp, baseline, cnp)))
            moved = cb.anp("deny", 20, anp.subject, ingress=anp.ingress)
            backend.reconcile(policies.with_cluster_policies((moved,)))  # replace one, delete two
            narrower = NetworkPolicy("y", DENY_Y.name, LabelSelector.of({"pod": "c"}), ingress=())
            backend.reconcile(live.with_policies([narrower]))  # replace one, delete two, and the ANP
            web = live.services[0]
            changed = Scenario(
                (Namespace("x", (("team", "red"),)), live.namespaces[1]),
                (*(Pod(p.namespace, p.name, (*p.labels, ("role", "db")), p.ports, p.ip)
                   for p in live.pods if p.key != "x/b"), Pod("y", "d", (("pod", "d"),))),
                (Service(web.namespace, web.name, web.selector, (ServicePort(80, 8001),),
                         cluster_ip=web.cluster_ip),))
            out = backend.reconcile(changed)
            c = out.pod("y/c")
            assert backend.probe("x/a", [Target("t", c.ip, 8000, "TCP")], 1.0)[0].observed == "connected"
            backend.collect_diagnostics(tmp / "diag", [{"client": "x/a", "target": "y/c"}])
        finally:
            backend.teardown()
        assert not api.names("namespaces") and not api.names("adminnetworkpolicies")
        return list(api.requests)


def test_every_request_of_a_run_is_allowed(run_requests: list[tuple[str, str, str]]) -> None:
    docs = documents()
    assert bindings_name_the_service_account(docs)
    seen = {(r.group, r.resource, r.verb) for m, p, _ in run_requests for r in request_attributes(m, p)}
    # The run really did all of this (else the check below would prove little).
    for needed in [("", "namespaces", "create"), ("", "namespaces", "patch"), ("", "pods", "delete"),
                   ("", "pods/exec", "create"), ("", "pods/log", "get"), ("", "services", "update"),
                   ("", "events", "list"), ("networking.k8s.io", "networkpolicies", "update"),
                   (GROUP, "adminnetworkpolicies", "update"), (GROUP, "clusternetworkpolicies", "delete"),
                   ("kubeovn.io", "subnets", "get"), ("apps", "deployments", "get"), ("", "nodes", "list"),
                   ("apiextensions.k8s.io", "customresourcedefinitions", "get")]:
        assert needed in seen, needed
    assert uncovered(docs, run_requests) == []


def test_the_check_finds_what_a_manifest_lacks(run_requests: list[tuple[str, str, str]]) -> None:
    docs = documents()
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    cluster_role["rules"] = [r for r in cluster_role["rules"] if "pods/exec" not in r["resources"]]
    role = next(d for d in docs if d["kind"] == "Role")
    role["metadata"]["namespace"] = "default"  # the controller is read in kube-system
    missing = {(r.resource, r.verb) for r in uncovered(docs, run_requests)}
    assert missing == {("pods/exec", "get"), ("pods/exec", "create"), ("deployments", "get")}


def test_nothing_is_granted_that_a_run_does_not_use(run_requests: list[tuple[str, str, str]]) -> None:
    """Least privilege: every granted verb is one the run sent, except `update` on the two
    cluster policy kinds the run above created but did not change (the same reconcile code
    replaces every kind: backends/kind_cluster.py)."""
    seen = {(r.group, r.resource, r.verb) for m, p, _ in run_requests for r in request_attributes(m, p)}
    granted = {(g, res, v) for d in documents() for rule in d.get("rules", ())
               for g in rule["apiGroups"] for res in rule["resources"] for v in rule["verbs"]}
    assert granted - seen == {(GROUP, "baselineadminnetworkpolicies", "update"),
                              (GROUP, "clusternetworkpolicies", "update")}
