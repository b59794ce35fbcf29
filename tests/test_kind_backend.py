"""KindBackend through the real `kubernetes` client against FakeApiServer.

The fake speaks HTTP and the exec WebSocket protocols; its pods are real sockets on loopback
addresses and its exec runs the real probe agent, so these tests drive the same code paths
as a run against a cluster. What it cannot show: Kube-OVN enforcing anything.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kubeovn_conformance.agent import agent_path
from kubeovn_conformance.backends.base import InfraError, Target
from kubeovn_conformance.backends.kind import RUN_LABEL, SPEC_ANNOTATION, KindBackend, exit_status
from kubeovn_conformance.model import (
    NS_NAME_LABEL,
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Requirement,
    Rule,
    Scenario,
    Service,
    ServicePort,
)
from tests.fake_apiserver import V4, V5, FakeApiServer, ws_accept_key, ws_frame

WORKLOAD = Scenario(
    namespaces=(Namespace("x", (("ns", "x"),)), Namespace("y", (("ns", "y"),))),
    pods=(
        Pod("x", "a", (("pod", "a"),), (ContainerPort(8080), ContainerPort(8081, "UDP"))),
        Pod("x", "b", (("pod", "b"),), (ContainerPort(8080, name="http"),)),
        Pod("y", "c", (("pod", "c"),), (ContainerPort(8000, name="web"), ContainerPort(8001))),
    ),
    services=(Service("y", "web", (("pod", "c"),), (ServicePort(80, "web"),)),),
)

DENY_Y = NetworkPolicy("y", "deny-all", LabelSelector(), ingress=())
ALLOW_X = NetworkPolicy(
    "y", "allow-x", LabelSelector.of({"pod": "c"}),
    ingress=(Rule(peers=(Peer(namespace_selector=LabelSelector(
        match_expressions=(Requirement(NS_NAME_LABEL, "In", ("x",)),))),),
        ports=(PolicyPort("TCP", "web"),)),),
)
EGRESS_X = NetworkPolicy(
    "x", "egress", LabelSelector.of({"pod": "a"}), policy_types=("Egress",),
    egress=(Rule(peers=(Peer(ip_block=IPBlock("127.0.0.0/8", ("127.1.0.0/16",))),),
                 ports=(PolicyPort("TCP", 8000, 8001),)),),
)


@pytest.fixture
def make_backend(tmp_path: Path):
    """FakeApiServer(**fake) plus a KindBackend on its kubeconfig; both torn down after."""
    made: list[tuple[FakeApiServer, KindBackend]] = []

    def make(run_id: str = "t1", backend_kw: dict | None = None, **fake: object):
        api = FakeApiServer(**fake).__enter__()  # type: ignore[arg-type]
        kc = api.kubeconfig(tmp_path / f"kubeconfig-{len(made)}")
        kw = {"ready_timeout": 15.0, "delete_timeout": 15.0, "exec_grace": 5.0, **(backend_kw or {})}
        backend = KindBackend(kubeconfig=kc, context="fake", run_id=run_id, **kw)
        made.append((api, backend))
        return api, backend

    yield make
    for api, backend in made:
        try:
            backend.teardown()
        finally:
            api.close()


@pytest.fixture
def live(make_backend):
    api, backend = make_backend()
    return api, backend, backend.setup(WORKLOAD)


# --------------------------------------------------------------------------- setup


def test_setup_creates_run_labelled_namespaces_and_maps_names_back(live):
    api, backend, scenario = live
    real = backend.namespaces
    assert set(real) == {"x", "y"}
    assert all(r.startswith("kc-t1-") and r.endswith(s) and r != s for s, r in real.items())
    assert api.names("namespaces") == sorted(real.values())
    for s, r in real.items():
        labels = api.get("namespaces", "", r)["metadata"]["labels"]
        assert labels[RUN_LABEL] == "t1"
        assert labels["ns"] == s
        assert labels[NS_NAME_LABEL] == r  # set by the API server, not by us
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # Returned in scenario terms, with what the API server assigned.
    for pod in scenario.pods:
        stored = api.get("pods", real[pod.namespace], pod.name)
        assert pod.ip and pod.ip == stored["status"]["podIP"]
    svc = scenario.services[0]
    assert svc.key == "y/svc/web"
    assert svc.cluster_ip == api.get("services", real["y"], "web")["spec"]["clusterIP"]


def test_agent_is_delivered_by_configmap_and_pods_run_unprivileged(live):
    api, backend, _ = live
    real = backend.namespaces
    for ns in ("x", "y"):
        cm = api.get("configmaps", real[ns], "probe-agent")
        assert cm["data"]["agent.py"] == Path(agent_path()).read_text()
        assert cm["metadata"]["labels"][RUN_LABEL] == "t1"
    pod = api.get("pods", real["y"], "c")
    assert pod["metadata"]["labels"] == {"pod": "c", RUN_LABEL: "t1"}
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["command"][:5] == ["python3", "/agent/agent.py", "serve", "--name", "y/c"]
    assert container["command"][5:] == ["--tcp", "8000,8001"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert container["volumeMounts"] == [{"name": "agent", "mountPath": "/agent", "readOnly": True}]
    assert spec["volumes"][0]["configMap"]["name"] == "probe-agent"
    # Ports >= 1024 need no sysctl; the sysctl appears only where a port is privileged.
    assert "sysctls" not in spec["securityContext"]
    low = backend.pod_manifest(Pod("x", "low", ports=(ContainerPort(80),)))
    assert low["spec"]["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]


def test_setup_waits_for_pods_and_agent_ready(make_backend):
    api, backend = make_backend(pod_start_delay=1.0, agent_ready_delay=0.7)
    start = time.monotonic()
    scenario = backend.setup(WORKLOAD)
    took = time.monotonic() - start
    assert took >= 1.7
    assert all(p.ip for p in scenario.pods)
    pod_lists = [r for r in api.requests if r[0] == "GET" and r[1].endswith("/pods")]
    assert len(pod_lists) > 2  # it polled, not one lucky look
    assert any(r[1].endswith("/log") for r in api.requests)


def test_setup_that_never_gets_ready_is_an_infra_error_and_leaves_nothing(make_backend):
    api, backend = make_backend(pod_start_delay=600, backend_kw={"ready_timeout": 1.0})
    with pytest.raises(InfraError, match=r"pods not ready after 1s: x/a: phase Pending"):
        backend.setup(WORKLOAD)
    assert api.names("namespaces") == []


def test_keyboard_interrupt_during_setup_removes_what_was_created(make_backend):
    api, backend = make_backend(pod_start_delay=600)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = threading.Event()

    def ctrl_c_while_waiting() -> None:
        # A real SIGINT, as Ctrl-C sends, once setup polls for ready pods.
        while not stop.wait(0.05):
            if any(r[0] == "GET" and r[1].endswith("/pods") for r in list(api.requests)):
                os.kill(os.getpid(), signal.SIGINT)
                return

    watcher = threading.Thread(target=ctrl_c_while_waiting)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            backend.setup(WORKLOAD)
    finally:
        stop.set()
        watcher.join()
        signal.signal(signal.SIGINT, previous)
    assert any(r[0] == "POST" and r[1].endswith("/pods") for r in api.requests)  # it got that far
    assert_deleted_without_waiting(api)


def test_running_context_tears_down_on_interrupt(make_backend):
    api, backend = make_backend()
    with pytest.raises(KeyboardInterrupt), backend.running(WORKLOAD) as scenario:
        assert len(api.names("namespaces")) == 2 and scenario.pods[0].ip
        raise KeyboardInterrupt
    assert_deleted_without_waiting(api)


def assert_deleted_without_waiting(api: FakeApiServer) -> None:
    """On an interrupt teardown deletes every namespace and returns at once: they are all
    Terminating (the fake's namespace controller removes them 0.2 s later)."""
    left = [api.get("namespaces", "", n) for n in api.names("namespaces")]
    assert left and all(n["metadata"].get("deletionTimestamp") for n in left)
    deadline = time.monotonic() + 5
    while api.names("namespaces") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.names("namespaces") == []


# --------------------------------------------------------------------------- reconcile


def test_reconcile_creates_updates_and_deletes_only_what_differs(live):
    api, backend, scenario = live
    real = backend.namespaces
    backend.reconcile(scenario.with_policies([DENY_Y, ALLOW_X, EGRESS_X]))
    assert api.names("networkpolicies", real["y"]) == ["allow-x", "deny-all"]
    assert api.names("networkpolicies", real["x"]) == ["egress"]
    assert len(api.writes("networkpolicies")) == 3
    stored = api.get("networkpolicies", real["y"], "allow-x")
    assert stored["metadata"]["labels"][RUN_LABEL] == "t1"
    assert stored["spec"]["ingress"][0]["from"][0]["namespaceSelector"] == {"matchExpressions": [
        {"key": NS_NAME_LABEL, "operator": "In", "values": [real["x"]]}]}
    assert stored["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": "web"}]

    before = len(api.requests)
    backend.reconcile(scenario.with_policies([DENY_Y, ALLOW_X, EGRESS_X]))
    assert [r for r in api.requests[before:] if r[0] != "GET"] == []  # nothing to do

    changed = NetworkPolicy("y", "allow-x", LabelSelector.of({"pod": "c"}), ingress=(Rule(),))
    before = len(api.requests)
    backend.reconcile(scenario.with_policies([changed, EGRESS_X]))
    writes = [r[:2] for r in api.requests[before:] if r[0] != "GET"]
    assert writes == [
        ("PUT", f"/apis/networking.k8s.io/v1/namespaces/{real['y']}/networkpolicies/allow-x"),
        ("DELETE", f"/apis/networking.k8s.io/v1/namespaces/{real['y']}/networkpolicies/deny-all"),
    ]
    stored = api.get("networkpolicies", real["y"], "allow-x")
    assert stored["spec"]["ingress"] == [{}]
    assert stored["metadata"]["annotations"][SPEC_ANNOTATION] == \
        backend.policy_manifest(changed)["metadata"]["annotations"][SPEC_ANNOTATION]

    backend.reconcile(scenario.with_policies([]))
    assert api.names("networkpolicies", real["x"]) == api.names("networkpolicies", real["y"]) == []


def test_reconcile_patches_only_changed_labels(live):
    api, backend, scenario = live
    real = backend.namespaces
    relabelled = Scenario(
        namespaces=(Namespace("x", (("ns", "x"),)), Namespace("y", (("team", "blue"),))),
        pods=tuple(Pod(p.namespace, p.name, (("pod", "a"), ("role", "db")) if p.name == "a"
                       else p.labels, p.ports, p.ip) for p in scenario.pods),
        services=scenario.services)
    before = len(api.requests)
    backend.reconcile(relabelled)
    patches = [r for r in api.requests[before:] if r[0] == "PATCH"]
    assert [r[1] for r in patches] == [f"/api/v1/namespaces/{real['y']}",
                                       f"/api/v1/namespaces/{real['x']}/pods/a"]
    assert {r[2] for r in patches} == {"application/merge-patch+json"}
    y_labels = api.get("namespaces", "", real["y"])["metadata"]["labels"]
    assert y_labels["team"] == "blue" and "ns" not in y_labels
    assert y_labels[RUN_LABEL] == "t1" and y_labels[NS_NAME_LABEL] == real["y"]  # kept
    assert api.get("pods", real["x"], "a")["metadata"]["labels"] == {
        "pod": "a", "role": "db", RUN_LABEL: "t1"}
    before = len(api.requests)
    backend.reconcile(relabelled)
    assert [r for r in api.requests[before:] if r[0] == "PATCH"] == []


def test_reconcile_refuses_objects_outside_the_workload(live):
    _, backend, scenario = live
    with pytest.raises(InfraError, match="namespace 'z' is not part"):
        backend.reconcile(scenario.with_policies([NetworkPolicy("z", "p")]))


# --------------------------------------------------------------------------- probe


def _targets(scenario: Scenario) -> list[Target]:
    b, c = scenario.pod("x/b"), scenario.pod("y/c")
    a = scenario.pod("x/a")
    return [Target("b-8080", b.ip, 8080, "TCP"), Target("c-8000", c.ip, 8000, "TCP"),
            Target("c-8001", c.ip, 8001, "TCP"), Target("c-9999", c.ip, 9999, "TCP"),
            Target("a-udp", a.ip, 8081, "UDP")]


@pytest.mark.parametrize("protocol", [V5, V4])
def test_probe_is_one_exec_per_round_with_every_target(make_backend, protocol):
    api, backend = make_backend(exec_protocols=(protocol,))
    scenario = backend.setup(WORKLOAD)
    targets = _targets(scenario)
    got = backend.probe("x/a", targets, timeout=1.0)
    assert len(api.execs) == 1
    (ex,) = api.execs
    assert ex["pod"] == f"{backend.namespaces['x']}/a" and ex["protocol"] == protocol
    assert ex["command"] == backend.probe_command(1.0)
    assert [(o.id, o.observed, o.reply) for o in got] == [
        ("b-8080", "connected", "x/b"), ("c-8000", "connected", "y/c"),
        ("c-8001", "connected", "y/c"), ("c-9999", "refused", ""), ("a-udp", "connected", "x/a")]
    backend.probe("y/c", targets[:1], timeout=1.0)
    assert [e["pod"] for e in api.execs] == [f"{backend.namespaces['x']}/a",
                                             f"{backend.namespaces['y']}/c"]


def test_probe_with_no_targets_sends_nothing(live):
    api, backend, _ = live
    assert backend.probe("x/a", [], timeout=1.0) == []
    assert api.execs == []


@pytest.mark.parametrize(("fault", "message"), [
    ({"drop_status": True}, "ended without an exit status"),
    ({"exit_code": 3}, "exited 3"),
    ({"stdout": "not json\n"}, "unreadable line"),
    ({"stdout": ""}, "no result for 5 targets"),
])
def test_a_broken_round_is_an_infra_error_never_a_verdict(live, fault, message):
    api, backend, scenario = live
    api.exec_faults["*"] = fault
    with pytest.raises(InfraError, match=message):
        backend.probe("x/a", _targets(scenario), timeout=1.0)


def test_an_exec_that_never_ends_is_an_infra_error(make_backend):
    api, backend = make_backend(backend_kw={"exec_grace": 1.0})
    scenario = backend.setup(WORKLOAD)
    api.exec_faults["*"] = {"hang": True}
    start = time.monotonic()
    with pytest.raises(InfraError, match="did not finish"):
        backend.probe("x/a", _targets(scenario), timeout=0.5)
    assert time.monotonic() - start < 5


def test_exec_into_a_missing_pod_is_an_infra_error(live):
    _, backend, scenario = live
    with pytest.raises(InfraError, match="404"):
        backend.probe("x/nope", _targets(scenario), timeout=1.0)


def test_probes_from_many_threads_each_with_its_own_client(live):
    api, backend, scenario = live
    targets = _targets(scenario)
    clients: set[int] = set()
    lock = threading.Lock()

    backend.reconcile(scenario.with_policies([DENY_Y]))

    def round_from(client: str) -> list[str]:
        with lock:
            clients.add(id(backend._api()))
        # REST calls in the same threads while other threads stream: a shared ApiClient
        # would send these over a WebSocket.
        backend.reconcile(scenario.with_policies([DENY_Y]))
        return [o.observed for o in backend.probe(client, targets, timeout=1.0)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(round_from, ["x/a", "x/b", "y/c"] * 4))
    assert all(r == ["connected", "connected", "connected", "refused", "connected"] for r in results)
    assert len(clients) == 6
    assert len(api.execs) == 12
    assert len({e["thread"] for e in api.execs}) > 1  # the fake served them concurrently


# --------------------------------------------------------------------------- teardown


def test_teardown_waits_until_namespaces_are_gone_and_is_idempotent(make_backend):
    api, backend = make_backend(ns_delete_delay=1.0)
    backend.setup(WORKLOAD)
    start = time.monotonic()
    backend.teardown()
    assert time.monotonic() - start >= 0.9  # waited for the namespace controller
    assert api.names("namespaces") == [] and api.names("pods", "") == []
    before = len(api.requests)
    backend.teardown()
    assert api.requests[before:] == []
    # Usable again: a second case gets fresh namespaces, never the terminating ones.
    backend.setup(WORKLOAD)
    assert all("-2-" in r for r in backend.namespaces.values())


def test_teardown_finds_namespaces_by_run_label(make_backend):
    """A fresh backend with the same run id (say, after a crash) cleans up the old run's."""
    api, backend = make_backend(run_id="crashed")
    backend.setup(WORKLOAD)
    api.create("namespaces", "", {"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": "someone-else"}})
    again = KindBackend(kubeconfig=backend.kubeconfig, run_id="crashed", delete_timeout=10)
    again._created_ns.add("kc-crashed-1-x")  # it knows nothing but the run id and one name
    again.teardown()
    assert api.names("namespaces") == ["someone-else"]


def test_collect_diagnostics_without_script_dumps_objects_and_logs(live, tmp_path):
    _, backend, _ = live
    backend.diagnostics_script = tmp_path / "absent"
    backend.collect_diagnostics(tmp_path / "diag", [{"client": "x/a"}])
    real_y = backend.namespaces["y"]
    pods = json.loads((tmp_path / "diag" / real_y / "pods.json").read_text())
    assert [p["metadata"]["name"] for p in pods["items"]] == ["c"]
    assert (tmp_path / "diag" / real_y / "c.log").read_text() == "ready\n"
    assert json.loads((tmp_path / "diag" / "failing.json").read_text()) == [{"client": "x/a"}]


# --------------------------------------------------------------------------- protocol pieces


def test_exit_status_from_the_error_channel():
    assert exit_status('{"metadata":{},"status":"Success"}') == 0
    failure = {"status": "Failure", "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}
    assert exit_status(json.dumps(failure)) == 2
    assert exit_status("") is None
    with pytest.raises(InfraError, match="container not found"):
        exit_status('{"status":"Failure","message":"container not found"}')


def test_fake_websocket_handshake_and_framing_follow_rfc_6455():
    # The example of RFC 6455 section 1.3.
    assert ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert ws_frame(0x2, b"\x01hi") == b"\x82\x03\x01hi"
    long = ws_frame(0x2, b"x" * 300)
    assert long[:4] == b"\x82\x7e\x01\x2c" and len(long) == 304
    assert base64.b64decode(ws_accept_key("x" * 24))  # well-formed base64


# --------------------------------------------------------------------------- workload steps


def test_a_step_retargets_a_service_and_removes_a_pod(live):
    """Steps may change the workload (Backend contract): a Service's targetPort changes in
    place (same ClusterIP), a pod the step drops is deleted, and the returned scenario
    carries the addresses."""
    api, backend, scenario = live
    web = scenario.services[0]
    retargeted = Service(web.namespace, web.name, web.selector, (ServicePort(80, 8001),),
                         cluster_ip=web.cluster_ip)
    step = Scenario(scenario.namespaces, tuple(p for p in scenario.pods if p.key != "x/b"),
                    (retargeted,))
    out = backend.reconcile(step)
    stored = api.get("services", backend.namespaces["y"], "web")
    assert stored["spec"]["ports"][0]["targetPort"] == 8001
    assert stored["spec"]["clusterIP"] == web.cluster_ip
    assert out.services[0].cluster_ip == web.cluster_ip
    assert api.get("pods", backend.namespaces["x"], "b") is None
    assert {p.key for p in out.pods} == {"x/a", "y/c"} and all(p.ip for p in out.pods)
    # Back to the workload: the pod is created again and the Service restored.
    back = backend.reconcile(scenario)
    assert api.get("pods", backend.namespaces["x"], "b") is not None
    assert api.get("services", backend.namespaces["y"], "web")["spec"]["ports"][0]["targetPort"] == "web"
    assert back.pod("x/b").ip
