"""The kind backend applies cluster-scoped policies (issue 11, section 4), against the fake API
server: objects named and labelled after the run, every namespace selector scoped to the run's
namespaces (a scenario's `namespaces: {}` must not take in kube-system), metadata.name
selectors rewritten, replaced on change, deleted when a step drops them and at teardown; a
cluster without the CRD skips the case with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeovn_conformance import cluster_builders as cb
from kubeovn_conformance.backends.kind import RUN_LABEL, KindBackend
from kubeovn_conformance.cases import Case, Step
from kubeovn_conformance.model import NS_NAME_LABEL, LabelSelector
from tests.fake_apiserver import FakeApiServer
from tests.test_kind_backend import WORKLOAD

ANP_CRD = "adminnetworkpolicies.policy.networking.k8s.io"
BANP_CRD = "baselineadminnetworkpolicies.policy.networking.k8s.io"
DENY_FROM_X = cb.anp("deny-from-x", 10, cb.subject(namespaces=LabelSelector.of({"ns": "y"})),
                     ingress=[cb.crule("Deny", cb.peer_ns(LabelSelector.of({NS_NAME_LABEL: "x"})))])
BASELINE = cb.banp(cb.subject(namespaces=LabelSelector()),
                   ingress=[cb.crule("Deny", cb.peer_ns(LabelSelector()))])


@pytest.fixture
def backend(tmp_path: Path):
    with FakeApiServer(crds={ANP_CRD, BANP_CRD}) as api:
        b = KindBackend(kubeconfig=api.kubeconfig(tmp_path / "kc"), context="fake", run_id="cp1",
                        ready_timeout=15.0, delete_timeout=15.0, exec_grace=5.0)
        try:
            yield api, b
        finally:
            b.teardown()


def _objects(api: FakeApiServer, resource: str) -> dict[str, dict]:
    return {name: o for (res, _, name), o in api.objects.items() if res == resource}


def test_cluster_policies_are_scoped_to_the_run_replaced_and_removed(backend) -> None:
    api, b = backend
    live = b.setup(WORKLOAD)
    b.reconcile(live.with_cluster_policies((DENY_FROM_X, BASELINE)))
    anps, banps = _objects(api, "adminnetworkpolicies"), _objects(api, "baselineadminnetworkpolicies")
    assert list(banps) == ["default"] and len(anps) == 1
    (name, obj), = anps.items()
    assert name.startswith("koc-") and name.endswith("-deny-from-x")
    assert obj["metadata"]["labels"][RUN_LABEL] == "cp1"
    real = b.namespaces
    # subject: ns=y AND this run; peer: metadata.name rewritten to x's real name AND this run
    assert obj["spec"]["subject"]["namespaces"]["matchLabels"] == {"ns": "y", RUN_LABEL: "cp1"}
    peer = obj["spec"]["ingress"][0]["from"][0]["namespaces"]["matchLabels"]
    assert peer == {NS_NAME_LABEL: real["x"], RUN_LABEL: "cp1"}
    # `{}` subject and peer of the BANP: only this run's namespaces, never the whole cluster
    spec = banps["default"]["spec"]
    assert spec["subject"]["namespaces"]["matchLabels"] == {RUN_LABEL: "cp1"}
    assert spec["ingress"][0]["from"][0]["namespaces"]["matchLabels"] == {RUN_LABEL: "cp1"}
    version = obj["metadata"]["resourceVersion"]
    # unchanged spec: not rewritten; changed priority: replaced; dropped: deleted
    b.reconcile(live.with_cluster_policies((DENY_FROM_X, BASELINE)))
    assert _objects(api, "adminnetworkpolicies")[name]["metadata"]["resourceVersion"] == version
    moved = cb.anp("deny-from-x", 20, DENY_FROM_X.subject, ingress=DENY_FROM_X.ingress)
    b.reconcile(live.with_cluster_policies((moved,)))
    assert _objects(api, "adminnetworkpolicies")[name]["spec"]["priority"] == 20
    assert not _objects(api, "baselineadminnetworkpolicies")
    b.reconcile(live.with_cluster_policies((moved,)))
    b.teardown()
    assert not _objects(api, "adminnetworkpolicies")


def test_a_cluster_without_the_crd_skips_the_case_with_the_reason(tmp_path: Path) -> None:
    case = Case("cp", "ingress", WORKLOAD,
                (Step("initial", lambda w: w.with_cluster_policies((DENY_FROM_X,))),))
    plain = Case("np", "ingress", WORKLOAD, (Step("initial", lambda w: w),))
    with FakeApiServer(crds={BANP_CRD}) as api:
        b = KindBackend(kubeconfig=api.kubeconfig(tmp_path / "kc"), context="fake", run_id="cp2")
        reason = b.skip_reason(case)
        assert reason and "AdminNetworkPolicy CRD" in reason and "policy_api" in reason
        assert b.skip_reason(plain) is None
    with FakeApiServer(crds={ANP_CRD}) as api:
        b = KindBackend(kubeconfig=api.kubeconfig(tmp_path / "kc2"), context="fake", run_id="cp3")
        assert b.skip_reason(case) is None
