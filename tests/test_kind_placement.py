"""KindBackend node placement through the real `kubernetes` client against FakeApiServer:
the nodes it lists, the affinity in the pod manifests the API server receives, `node_of`,
and the `placement` field in the records a Runner writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeovn_conformance import builders as b
from kubeovn_conformance.backends.base import InfraError
from kubeovn_conformance.backends.kind import KindBackend
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.placement import CROSS, SAME
from kubeovn_conformance.results import RunInfo, read_jsonl
from kubeovn_conformance.runner import Case, Runner, Step
from tests.fake_apiserver import FakeApiServer, fake_node

CP_TAINT = ("node-role.kubernetes.io/control-plane", "NoSchedule")
WORKLOAD = b.upstream_ground(namespaces=("x", "y"), pods=("a", "b"), ports=(8080,), protocols=("TCP",))


@pytest.fixture
def make_backend(tmp_path: Path):
    made: list[tuple[FakeApiServer, KindBackend]] = []

    def make(nodes: list[dict] | None = None, **fake: object) -> tuple[FakeApiServer, KindBackend]:
        api = FakeApiServer(nodes=nodes, **fake).__enter__()  # type: ignore[arg-type]
        kc = api.kubeconfig(tmp_path / f"kubeconfig-{len(made)}")
        backend = KindBackend(kubeconfig=kc, context="fake", run_id="pl", ready_timeout=15.0,
                              delete_timeout=15.0, exec_grace=5.0)
        made.append((api, backend))
        return api, backend

    yield make
    for api, backend in made:
        try:
            backend.teardown()
        finally:
            api.close()


def stored_pods(api: FakeApiServer, backend: KindBackend, workload: Scenario) -> dict[str, dict]:
    return {p.key: api.get("pods", backend.namespaces[p.namespace], p.name) for p in workload.pods}


def affinity_hosts(pod: dict) -> list[str]:
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return [v for t in terms["nodeSelectorTerms"] for e in t["matchExpressions"] for v in e["values"]]


def test_pods_are_placed_by_hostname_affinity_on_schedulable_nodes_only(make_backend):
    nodes = [fake_node("kind-control-plane"), fake_node("kind-worker", hostname="worker-host"),
             fake_node("kind-worker2", taints=(("dedicated", "NoSchedule"),)),
             fake_node("kind-worker3", unschedulable=True)]
    api, backend = make_backend(nodes)
    backend.setup(WORKLOAD)
    pods = stored_pods(api, backend, WORKLOAD)
    hosts = {k: affinity_hosts(p) for k, p in pods.items()}
    assert all(len(h) == 1 for h in hosts.values())
    # The affinity names the hostname label; node_of names the node the pod runs on.
    assert {h[0] for h in hosts.values()} == {"kind-control-plane", "worker-host"}
    assert {backend.node_of(k) for k in pods} == {"kind-control-plane", "kind-worker"}
    assert all(backend.node_of(k) == p["spec"]["nodeName"] for k, p in pods.items())
    # Every destination has a client on its node and one elsewhere (four pods, two nodes).
    for d in pods:
        placed = {backend.node_of(c) == backend.node_of(d) for c in pods if c != d}
        assert placed == {True, False}, d
    assert backend.node_of("x/nope") is None
    backend.teardown()
    assert backend.node_of("x/a") is None


def test_tainted_control_plane_means_one_node_and_all_same_node(make_backend):
    api, backend = make_backend([fake_node("kind-control-plane", taints=(CP_TAINT,)),
                                 fake_node("kind-worker")])
    backend.setup(WORKLOAD)
    pods = stored_pods(api, backend, WORKLOAD)
    assert {affinity_hosts(p)[0] for p in pods.values()} == {"kind-worker"}
    assert {backend.node_of(k) for k in pods} == {"kind-worker"}


def test_no_schedulable_node_is_an_infra_error_naming_the_cause(make_backend):
    _, backend = make_backend([fake_node("kind-control-plane", taints=(CP_TAINT,))])
    with pytest.raises(InfraError, match="untaint the control plane"):
        backend.setup(WORKLOAD)


def test_without_permission_to_list_nodes_the_scheduler_decides(make_backend):
    api, backend = make_backend([fake_node("n1"), fake_node("n2")], forbidden={"nodes"})
    backend.setup(WORKLOAD)
    pods = stored_pods(api, backend, WORKLOAD)
    assert not any("affinity" in p["spec"] for p in pods.values())
    # Still reported truthfully: where the scheduler put them.
    assert {backend.node_of(k) for k in pods} == {"n1"}


def test_pods_a_step_adds_are_placed_around_the_running_ones(make_backend):
    api, backend = make_backend([fake_node("n1"), fake_node("n2")])
    live = backend.setup(WORKLOAD)
    before = {p.key: backend.node_of(p.key) for p in live.pods}
    late = b.pod("x", "late", {"pod": "late"}, [b.container_port(8080)])
    grown = backend.reconcile(Scenario(live.namespaces, (*live.pods, late)))
    assert {k: backend.node_of(k) for k in before} == before
    stored = api.get("pods", backend.namespaces["x"], "late")
    assert affinity_hosts(stored) == [backend.node_of("x/late")]
    assert {backend.node_of(p.key) for p in grown.pods} == {"n1", "n2"}


def test_runner_records_say_same_node_or_cross_node(make_backend, tmp_path):
    """Pod-path records end to end (the fake proxies no Services; Service records are
    labelled by the same function, see test_placement)."""
    _, backend = make_backend([fake_node("n1"), fake_node("n2")])
    run = RunInfo("r1", "kind", "overlay", "v0", "", tmp_path / "run")
    run.prepare()
    runner = Runner(backend, run, probe_timeout=0.5, deadline=5.0, ready_deadline=10.0)
    try:
        runner.run_case(Case("c", "none", WORKLOAD, (Step("initial", lambda w: w),)))
    finally:
        runner.close()
    records = read_jsonl(run.results_path)
    assert len(records) == 12 and {r["outcome"] for r in records} == {"pass"}
    by_target: dict[str, set[str]] = {}
    for r in records:
        by_target.setdefault(r["target"], set()).add(r["placement"])
    assert by_target == {p.key: {SAME, CROSS} for p in WORKLOAD.pods}
