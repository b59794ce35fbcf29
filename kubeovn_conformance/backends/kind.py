"""The kind backend: a scenario as real objects in a Kubernetes cluster running Kube-OVN.

Every object lives in namespaces of this run: scenario namespace "x" becomes
"<prefix>-<run id>-<setup #>-x" (so runs, xdist workers and consecutive cases never collide),
labelled `kubeovn-conformance/run=<run id>`; teardown deletes by that label. Selectors stay
label based; only `kubernetes.io/metadata.name` values in namespaceSelectors are rewritten to
the real names.

Pods run the project's probe agent (delivered through a ConfigMap) on a stock Python image,
as non-root without privileges. Probes are one exec per client pod per round: the targets go
in on stdin, one JSON line per target comes back on stdout, and the exit status is read from
the exec error channel. No status, a non-zero status or unreadable output is an InfraError,
never a verdict.

Pods are placed on nodes by `placement.place` (required node affinity on the hostname label,
so the scheduler still checks taints and resources): every destination gets clients on its
own node and on another where the workload allows. Nodes with NoSchedule/NoExecute taints or
cordoned are not used; a kind control plane is once untainted, as scripts/cluster-up does.
Without permission to list nodes the scheduler decides. `node_of` reports the node a pod
really runs on (its spec.nodeName), so records are right either way.

`kubernetes.stream.stream` swaps `call_api` on the ApiClient it is given while it runs, so
one ApiClient shared between threads would send other threads' REST calls over a WebSocket:
every thread gets its own ApiClient.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import tenacity
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from kubeovn_conformance import agent as agent_module
from kubeovn_conformance import placement
from kubeovn_conformance.backends import kind_cluster
from kubeovn_conformance.backends.base import (
    Backend,
    InfraError,
    Observation,
    Target,
    parse_observations,
)
from kubeovn_conformance.model import NS_NAME_LABEL, NetworkPolicy, Pod, Scenario, Service

DEFAULT_IMAGE = "docker.io/library/python:3.12-alpine"
RUN_LABEL = "kubeovn-conformance/run"
SCENARIO_NS_LABEL = "kubeovn-conformance/namespace"  # the scenario's name for a namespace
SPEC_ANNOTATION = "kubeovn-conformance/spec-sha256"  # what reconcile compares policies by
AGENT_CONFIGMAP = "probe-agent"
AGENT_DIR = "/agent"
AGENT_PATH = f"{AGENT_DIR}/agent.py"
NOBODY = 65534
# Let the agent, running as nobody, bind ports below 1024 without any capability. A "safe"
# sysctl: allowed by default and by the restricted Pod Security level.
UNPRIVILEGED_PORTS_SYSCTL = {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}
# The probe command reads exactly one line of targets and then runs the agent with it as
# its whole stdin. The v4 exec protocol cannot close stdin without ending the stream (only
# v5 has the close signal), so end-of-input must not depend on it.
PROBE_BOOTSTRAP = (
    "import io,runpy,sys;"
    "sys.stdin=io.StringIO(sys.stdin.readline());"
    "sys.argv=['agent.py']+sys.argv[1:];"
    f"runpy.run_path({AGENT_PATH!r},run_name='__main__')"
)


def _dns_label(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


RUN_ID_MAX = 40  # leaves room in a 63-character namespace name for prefix, setup and namespace
# The xdist worker suffix the pytest plugin appends to the run's id (f"{run_id}-{worker}").
_WORKER_SUFFIX = re.compile(r"^(?P<base>.*?)-(?P<worker>gw\d+)$")


def short_run_id(raw: str, limit: int = RUN_ID_MAX) -> str:
    """The run id as a label value of at most `limit` characters: cut the run's own part
    first (with a hash of what was cut, so long ids stay apart), then append the worker
    suffix, then strip. Cut after the suffix, `-gw0` and `-gw1` became one id, and a cut
    that ended on a `-` (`...-v1-15-24-gw0`) was an invalid label value."""
    m = _WORKER_SUFFIX.match(raw)
    base, worker = (_dns_label(m["base"]), m["worker"]) if m else (_dns_label(raw), "")
    room = limit - (len(worker) + 1 if worker else 0)
    if len(base) > room:
        digest = hashlib.sha256(base.encode()).hexdigest()[:6]
        base = f"{base[:room - len(digest) - 1].rstrip('-')}-{digest}"
    return "-".join(part for part in (base, worker) if part).strip("-")


def _reserved(key: str) -> bool:
    """Labels the backend or the API server own; reconcile never touches them."""
    return key == NS_NAME_LABEL or key.startswith(("kubeovn-conformance/", "pod-security.kubernetes.io/"))


class KindBackend(Backend):
    name = "kind"

    def __init__(self, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None,
                 *, mode: str = "overlay", kube_ovn_version: str = "", run_id: str | None = None,
                 image: str = DEFAULT_IMAGE, namespace_prefix: str = "kc",
                 ready_timeout: float = 300.0, delete_timeout: float = 300.0,
                 exec_grace: float = 30.0, pod_security: bool = True, sctp: bool | None = None,
                 diagnostics_script: str | os.PathLike[str] | None = None,
                 delete_wait: str = "now") -> None:
        self.mode = mode
        if delete_wait not in ("now", "previous"):
            raise ValueError(f"delete_wait {delete_wait!r}: now or previous")
        # "now": teardown waits until the workload's namespaces are gone; "previous": it
        # issues the deletes and waits for those of the workload before (bench_kind.py).
        self.delete_wait = delete_wait
        self._deleting: set[str] = set()  # deleted, not yet waited for ("previous")
        # kind nodes are containers on this machine's kernel: it decides whether SCTP works.
        self.supports_sctp = _host_has_sctp() if sctp is None else sctp
        self.kube_ovn_version = kube_ovn_version
        self.kubeconfig = None if kubeconfig is None else str(kubeconfig)
        self.context = context
        self.run_id = short_run_id(run_id or time.strftime("%m%d%H%M%S") + secrets.token_hex(2))
        if not self.run_id:
            raise ValueError(f"run id {run_id!r} has no usable characters")
        self.image = image
        self.prefix = _dns_label(namespace_prefix) or "kc"
        self.ready_timeout = ready_timeout
        self.delete_timeout = delete_timeout
        self.exec_grace = exec_grace  # beyond the probe timeout: process start, round trips
        self.pod_security = pod_security
        self.diagnostics_script = (Path(diagnostics_script) if diagnostics_script else
                                   Path(__file__).resolve().parents[2] / "scripts" / "collect-diagnostics")
        self._configuration: k8s.Configuration | None = None
        self._config_lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[k8s.ApiClient] = []  # every thread's, to close them at teardown
        self._generation = 0
        self._setups = 0
        self._ns_map: dict[str, str] = {}  # scenario namespace -> real namespace
        self._created_ns: set[str] = set()  # real names, also those of a half-done setup
        self._workload: Scenario | None = None
        self._hostnames: dict[str, str] = {}  # schedulable node -> its hostname label
        self._placed: dict[str, str] = {}  # pod key -> node it is placed on
        self._running_on: dict[str, str] = {}  # pod key -> spec.nodeName once it runs
        self._crds: dict[str, bool] = {}  # CRD name -> present (cluster-scoped policy kinds)
        self._cluster_kinds: set[str] = set()  # cluster-scoped kinds this run has applied

    # ------------------------------------------------------------------ clients

    def _config(self) -> k8s.Configuration:
        with self._config_lock:
            if self._configuration is None:
                cfg = k8s.Configuration()
                try:
                    k8s_config.load_kube_config(config_file=self.kubeconfig, context=self.context,
                                                client_configuration=cfg, persist_config=False)
                except (k8s_config.ConfigException, OSError) as e:
                    where = self.kubeconfig or "(default)"
                    raise InfraError(f"cannot load kubeconfig {where}: {e}") from None
                self._configuration = cfg
            return self._configuration

    def _api(self) -> k8s.ApiClient:
        """This thread's ApiClient (see the module docstring for why never a shared one)."""
        api = getattr(self._local, "api", None)
        if api is None or getattr(self._local, "generation", -1) != self._generation:
            api = k8s.ApiClient(self._config())
            with self._config_lock:
                self._clients.append(api)
            self._local.api, self._local.generation = api, self._generation
        return api

    def close(self) -> None:
        """Close every thread's HTTP connections (teardown does; the backend stays usable)."""
        with self._config_lock:
            clients, self._clients = self._clients, []
            self._generation += 1
        for api in clients:
            with contextlib.suppress(Exception):
                api.close()

    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self._api())

    def networking(self) -> k8s.NetworkingV1Api:
        return k8s.NetworkingV1Api(self._api())

    # ------------------------------------------------------------------ naming

    @property
    def namespaces(self) -> dict[str, str]:
        """Scenario namespace -> real namespace of the live workload."""
        return dict(self._ns_map)

    def _real_name(self, setup: int, ns: str) -> str:
        name = f"{self.prefix}-{self.run_id}-{setup}-{_dns_label(ns) or 'ns'}"
        if len(name) > 63:  # a DNS label; keep it unique with a hash of what was cut
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            name = f"{name[:54].rstrip('-')}-{digest}"
        return name

    def real_ns(self, ns: str) -> str:
        try:
            return self._ns_map[ns]
        except KeyError:
            raise InfraError(f"namespace {ns!r} is not part of the workload set up") from None

    def _scenario_ns(self, real: str) -> str:
        return next(s for s, r in self._ns_map.items() if r == real)

    # ------------------------------------------------------------------ manifests

    def _base_labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id}

    def namespace_manifest(self, ns: str, labels: dict[str, str], host_network: bool) -> dict[str, Any]:
        meta_labels = {k: v for k, v in labels.items() if k != NS_NAME_LABEL}
        meta_labels.update(self._base_labels())
        meta_labels[SCENARIO_NS_LABEL] = _dns_label(ns)[:63]
        if self.pod_security and not host_network:
            # Enforce what we claim: the agent pods pass the "restricted" profile.
            meta_labels["pod-security.kubernetes.io/enforce"] = "restricted"
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": self.real_ns(ns), "labels": meta_labels}}

    def configmap_manifest(self, ns: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": AGENT_CONFIGMAP, "namespace": self.real_ns(ns),
                             "labels": self._base_labels()},
                "data": {"agent.py": Path(agent_module.agent_path()).read_text()}}

    def pod_manifest(self, pod: Pod) -> dict[str, Any]:
        m = pod.to_manifest()
        by_proto: dict[str, list[str]] = {"TCP": [], "UDP": [], "SCTP": []}
        for p in pod.ports:
            by_proto[p.protocol].append(str(p.port))
        command = ["python3", AGENT_PATH, "serve", "--name", pod.key]
        for proto, ports in by_proto.items():
            if ports:
                command += [f"--{proto.lower()}", ",".join(dict.fromkeys(ports))]
        container = m["spec"]["containers"][0]
        container.update({
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "command": command,
            "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                    {"name": "PYTHONUNBUFFERED", "value": "1"}],
            "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                "runAsUser": NOBODY, "runAsGroup": NOBODY,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "volumeMounts": [{"name": "agent", "mountPath": AGENT_DIR, "readOnly": True}],
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                          "limits": {"memory": "128Mi"}},
        })
        if not container["ports"]:
            del container["ports"]
        pod_sc: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": NOBODY, "runAsGroup": NOBODY,
                                  "seccompProfile": {"type": "RuntimeDefault"}}
        # Net sysctls are refused with hostNetwork (they would change the node); such pods
        # can then only serve ports >= 1024.
        if not pod.host_network and any(p.port < 1024 for p in pod.ports):
            pod_sc["sysctls"] = [dict(UNPRIVILEGED_PORTS_SYSCTL)]
        spec = m["spec"]
        if not spec.get("hostNetwork"):
            spec.pop("hostNetwork", None)
        spec.update({
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,  # the agent holds no state; teardown is faster
            "securityContext": pod_sc,
            "volumes": [{"name": "agent",
                         "configMap": {"name": AGENT_CONFIGMAP, "defaultMode": 0o444}}],
        })
        m["metadata"]["namespace"] = self.real_ns(pod.namespace)
        m["metadata"]["labels"] = {**pod.label_map, **self._base_labels()}
        node = self._placed.get(pod.key)
        if node:
            spec["affinity"] = placement.node_affinity(self._hostnames.get(node, node))
        return m

    def service_manifest(self, svc: Service) -> dict[str, Any]:
        m = svc.to_manifest()
        m["metadata"]["namespace"] = self.real_ns(svc.namespace)
        m["metadata"]["labels"] = self._base_labels()
        return m

    def policy_manifest(self, policy: NetworkPolicy) -> dict[str, Any]:
        m = policy.to_manifest()
        spec = m["spec"]
        for direction, peer_key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or ():
                for peer in rule.get(peer_key) or ():
                    if "namespaceSelector" in peer:
                        peer["namespaceSelector"] = self._rewrite_ns_selector(peer["namespaceSelector"])
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        m["metadata"].update({"namespace": self.real_ns(policy.namespace),
                              "labels": self._base_labels(),
                              "annotations": {SPEC_ANNOTATION: digest}})
        return m

    def _rewrite_ns_selector(self, sel: dict[str, Any]) -> dict[str, Any]:
        """Namespace names are the one thing that differs between scenario and cluster."""
        out = copy.deepcopy(sel)
        labels = out.get("matchLabels") or {}
        if NS_NAME_LABEL in labels:
            labels[NS_NAME_LABEL] = self._ns_map.get(labels[NS_NAME_LABEL], labels[NS_NAME_LABEL])
        for expr in out.get("matchExpressions") or ():
            if expr.get("key") == NS_NAME_LABEL and expr.get("values"):
                expr["values"] = [self._ns_map.get(v, v) for v in expr["values"]]
        return out

    def render(self, scenario: Scenario) -> list[dict[str, Any]]:
        """Every object setup and reconcile would send for `scenario`, in order.
        Uses the current namespace mapping, or a fresh one for the next setup."""
        saved = dict(self._ns_map)
        if not all(n.name in self._ns_map for n in scenario.namespaces):
            self._ns_map = {n.name: self._real_name(self._setups + 1, n.name)
                            for n in scenario.namespaces}
        try:
            return self._render(scenario)
        finally:
            self._ns_map = saved

    def _render(self, scenario: Scenario) -> list[dict[str, Any]]:
        hostnet = {p.namespace for p in scenario.pods if p.host_network}
        out = [self.namespace_manifest(n.name, dict(n.labels), n.name in hostnet)
               for n in scenario.namespaces]
        out += [self.configmap_manifest(ns) for ns in sorted({p.namespace for p in scenario.pods})]
        out += [self.pod_manifest(p) for p in scenario.pods]
        out += [self.service_manifest(s) for s in scenario.services]
        out += [self.policy_manifest(p) for p in scenario.policies]
        return out

    # ------------------------------------------------------------------ setup

    @contextlib.contextmanager
    def running(self, workload: Scenario) -> Iterator[Scenario]:
        """`with backend.running(workload) as live:` -- teardown however the block ends,
        KeyboardInterrupt included."""
        try:
            yield self.setup(workload)
        finally:
            self.teardown()

    def setup(self, workload: Scenario) -> Scenario:
        if self._ns_map:
            raise InfraError("setup called twice without teardown")
        self._setups += 1
        self._ns_map = {n.name: self._real_name(self._setups, n.name) for n in workload.namespaces}
        self._workload = workload
        try:
            return self._setup(workload)
        except BaseException:
            # Nothing half-made may outlive a failed or interrupted setup (Ctrl-C included).
            with contextlib.suppress(Exception):
                self.teardown()
            raise

    def _setup(self, workload: Scenario) -> Scenario:
        core = self.core()
        hostnet = {p.namespace for p in workload.pods if p.host_network}
        for n in workload.namespaces:
            body = self.namespace_manifest(n.name, dict(n.labels), n.name in hostnet)
            self._created_ns.add(body["metadata"]["name"])  # before the call: it may half-succeed
            self._call(core.create_namespace, body)
        for ns in sorted({p.namespace for p in workload.pods}):
            self._call(core.create_namespaced_config_map, self.real_ns(ns), self.configmap_manifest(ns))
        self._hostnames, self._placed, self._running_on = self._schedulable_nodes(), {}, {}
        self._place(workload)
        for pod in workload.pods:
            self._call(core.create_namespaced_pod, self.real_ns(pod.namespace), self.pod_manifest(pod))
        cluster_ips: dict[str, str | None] = {}
        for svc in workload.services:
            created = self._call(core.create_namespaced_service, self.real_ns(svc.namespace),
                                 self.service_manifest(svc))
            cluster_ips[svc.key] = created.spec.cluster_ip if created.spec else None
        pod_ips = self._wait_ready(workload)
        live = workload.with_pod_ips(pod_ips)
        return replace(live, services=tuple(replace(s, cluster_ip=cluster_ips.get(s.key, s.cluster_ip))
                                            for s in live.services))

    def _schedulable_nodes(self) -> dict[str, str]:
        """Node -> hostname label of the nodes our pods may use; {} when we may not list nodes
        (e.g. a namespaced account on a shared cluster): the scheduler decides then."""
        try:
            nodes = self.core().list_node()
        except ApiException as e:
            if e.status == 403:
                return {}
            raise InfraError(f"list_node: {e.status} {e.reason}: {_api_message(e)}") from None
        found = placement.schedulable(self._api().sanitize_for_serialization(nodes).get("items") or ())
        if nodes.items and not found:
            raise InfraError(f"none of the {len(nodes.items)} nodes is schedulable (cordoned or "
                             "tainted NoSchedule/NoExecute; untaint the control plane of a kind cluster)")
        return found

    def _place(self, scenario: Scenario) -> None:
        """Nodes for the pods of `scenario` not placed yet; placed pods stay where they are."""
        self._placed = placement.place(scenario, self._hostnames, fixed=self._placed)

    def skip_reason(self, case: Any) -> str | None:
        """Cluster-scoped policy cases need their CRDs (scripts/cluster-up installs those of
        the row's line, with ENABLE_ANP; clusters/versions.yaml `policy_api`)."""
        from kubeovn_conformance.backends.lab.cluster_support import case_cluster_policies

        policies = case_cluster_policies(case)
        if not policies:
            return None
        missing = kind_cluster.missing_kinds(self._has_crd, policies)
        if missing:
            return (f"the cluster has no {', '.join(missing)} CRD (Kube-OVN lines without "
                    "ENABLE_ANP, or a cluster not made by scripts/cluster-up: see "
                    "clusters/versions.yaml policy_api)")
        return None

    def _has_crd(self, name: str) -> bool:
        if name not in self._crds:
            try:
                k8s.ApiextensionsV1Api(self._api()).read_custom_resource_definition(
                    name, _preload_content=False)  # only whether it exists: no parsing
                self._crds[name] = True
            except ApiException as e:
                if e.status != 404:
                    raise InfraError(f"reading CRD {name}: {e.status} {e.reason}") from None
                self._crds[name] = False
        return self._crds[name]

    def _reconcile_cluster_policies(self, scenario: Scenario) -> None:
        """This run's cluster-scoped objects (kind_cluster.py scopes them to the run)."""
        if not scenario.cluster_policies and not self._cluster_kinds:
            return
        label = (RUN_LABEL, self.run_id)
        desired = [kind_cluster.manifest(p, self.run_id, label, self._ns_map, self._base_labels(),
                                         SPEC_ANNOTATION) for p in scenario.cluster_policies]
        self._cluster_kinds |= {b["kind"] for b in desired}
        kind_cluster.reconcile(k8s.CustomObjectsApi(self._api()), desired,
                               f"{RUN_LABEL}={self.run_id}", SPEC_ANNOTATION,
                               self._call, sorted(self._cluster_kinds))

    def node_of(self, pod_key: str) -> str | None:
        return self._running_on.get(pod_key) or self._placed.get(pod_key)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            raise InfraError(f"{fn.__name__}: {e.status} {e.reason}: {_api_message(e)}") from None

    def _wait_ready(self, workload: Scenario) -> dict[str, str]:
        """Pods Running and Ready with an IP, and each agent has logged "ready"."""
        want = {p.key for p in workload.pods}
        state: dict[str, str] = {}  # pod key -> what it is still waiting for
        ips: dict[str, str] = {}
        confirmed: set[str] = set()
        core = self.core()

        def attempt() -> None:
            for ns in sorted({p.namespace for p in workload.pods}):
                pods = self._call(core.list_namespaced_pod, self.real_ns(ns),
                                  label_selector=f"{RUN_LABEL}={self.run_id}")
                for item in pods.items:
                    key = f"{ns}/{item.metadata.name}"
                    if key not in want:
                        continue
                    problem = _pod_problem(item)
                    if problem and problem.startswith("fatal:"):
                        raise InfraError(f"pod {key} cannot start: {problem[6:]}")
                    if problem:
                        state[key] = problem
                        continue
                    ips[key] = item.status.pod_ip
                    node = item.spec.node_name if item.spec else None
                    if node and self._placed.get(key, node) != node:
                        raise InfraError(f"pod {key} runs on {node}, not on {self._placed[key]} "
                                         "where it was placed")
                    if node:
                        self._running_on[key] = node
                    if key not in confirmed:
                        log = self._call(core.read_namespaced_pod_log, item.metadata.name,
                                         self.real_ns(ns), container="agent")
                        if "ready" not in str(log).splitlines():
                            state[key] = "agent has not printed ready"
                            continue
                        confirmed.add(key)
                    state.pop(key, None)
            for key in want - set(ips):
                state.setdefault(key, "not listed")
            if set(state) & want:
                raise _NotYet()

        try:
            tenacity.Retrying(stop=tenacity.stop_after_delay(self.ready_timeout),
                              wait=tenacity.wait_exponential(multiplier=0.1, max=2),
                              retry=tenacity.retry_if_exception_type(_NotYet),
                              reraise=True)(attempt)
        except _NotYet:
            waiting = "; ".join(f"{k}: {v}" for k, v in sorted(state.items()))
            raise InfraError(f"pods not ready after {self.ready_timeout:.0f}s: {waiting}") from None
        return ips

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, scenario: Scenario, between: Any = None) -> Scenario:
        """`between` is the lab's hook into intermediate controller states; a real
        controller's intermediate states cannot be held, so it is not called here."""
        if not self._ns_map:
            raise InfraError("reconcile before setup")
        unknown_ns = {p.namespace for p in scenario.pods} - set(self._ns_map)
        if unknown_ns:
            raise InfraError(f"pods in namespaces not set up: {', '.join(sorted(unknown_ns))}")
        scenario = self._reconcile_workload(scenario)
        self._reconcile_labels_and_policies(scenario)
        self._reconcile_cluster_policies(scenario)
        return scenario

    def _reconcile_workload(self, scenario: Scenario) -> Scenario:
        """Pods a step adds or removes, Services it adds or changes (e.g. a new targetPort):
        created and waited for as in setup, so their addresses are known to the oracle."""
        assert self._workload is not None
        core = self.core()
        selector = f"{RUN_LABEL}={self.run_id}"
        new_pods = []
        for ns in sorted(self._ns_map):
            live = {p.metadata.name for p in self._call(
                core.list_namespaced_pod, self.real_ns(ns), label_selector=selector).items}
            wanted = {p.name: p for p in scenario.pods if p.namespace == ns}
            for name in sorted(live - set(wanted)):
                with contextlib.suppress(_Gone):
                    self._delete(core.delete_namespaced_pod, name, self.real_ns(ns))
            new_pods += [p for n, p in sorted(wanted.items()) if n not in live]
        if new_pods:
            self._place(scenario)
        for pod in new_pods:
            if pod.namespace not in {p.namespace for p in self._workload.pods}:
                self._call(core.create_namespaced_config_map, self.real_ns(pod.namespace),
                           self.configmap_manifest(pod.namespace))
            self._call(core.create_namespaced_pod, self.real_ns(pod.namespace), self.pod_manifest(pod))
        cluster_ips = {s.key: s.cluster_ip for s in scenario.services if s.cluster_ip}
        before = {s.key: s for s in self._workload.services}
        for svc in scenario.services:
            if before.get(svc.key) == svc or (svc.key in before and
                                              replace(before[svc.key], cluster_ip=svc.cluster_ip) == svc):
                continue
            body = self.service_manifest(svc)
            if svc.key in before:
                current = self._call(core.read_namespaced_service, svc.name, self.real_ns(svc.namespace))
                body["metadata"]["resourceVersion"] = current.metadata.resource_version
                body["spec"]["clusterIP"] = current.spec.cluster_ip
                done = self._call(core.replace_namespaced_service, svc.name,
                                  self.real_ns(svc.namespace), body)
            else:
                done = self._call(core.create_namespaced_service, self.real_ns(svc.namespace), body)
            cluster_ips[svc.key] = done.spec.cluster_ip if done.spec else None
        ips = {p.key: p.ip for p in scenario.pods if p.ip}
        if new_pods:
            ips.update(self._wait_ready(Scenario(pods=tuple(new_pods))))
        self._workload = replace(self._workload, pods=scenario.pods, services=scenario.services)
        live_scenario = scenario.with_pod_ips(ips)
        return replace(live_scenario, services=tuple(
            replace(s, cluster_ip=cluster_ips.get(s.key, s.cluster_ip)) for s in live_scenario.services))

    def _reconcile_labels_and_policies(self, scenario: Scenario) -> None:
        core, net = self.core(), self.networking()
        selector = f"{RUN_LABEL}={self.run_id}"
        namespaces = {n.metadata.name: n for n in
                      self._call(core.list_namespace, label_selector=selector).items}
        for n in scenario.namespaces:
            real = self.real_ns(n.name)
            if real not in namespaces:
                raise InfraError(f"namespace {real} ({n.name}) is gone")
            patch = _label_patch(namespaces[real].metadata.labels, dict(n.labels))
            if patch:
                self._call(core.patch_namespace, real, {"metadata": {"labels": patch}},
                           _content_type="application/merge-patch+json")
        for ns in sorted({p.namespace for p in scenario.pods}):
            live = {p.metadata.name: p for p in self._call(
                core.list_namespaced_pod, self.real_ns(ns), label_selector=selector).items}
            for pod in (p for p in scenario.pods if p.namespace == ns):
                if pod.name not in live:
                    raise InfraError(f"pod {pod.key} is not part of the workload set up")
                patch = _label_patch(live[pod.name].metadata.labels, pod.label_map)
                if patch:
                    self._call(core.patch_namespaced_pod, pod.name, self.real_ns(ns),
                               {"metadata": {"labels": patch}},
                               _content_type="application/merge-patch+json")
        desired = {(p.namespace, p.name): self.policy_manifest(p) for p in scenario.policies}
        for ns in sorted(self._ns_map):
            real = self._ns_map[ns]
            live = {p.metadata.name: p for p in self._call(
                net.list_namespaced_network_policy, real, label_selector=selector).items}
            for (pns, name), body in sorted(desired.items()):
                if pns != ns:
                    continue
                current = live.pop(name, None)
                if current is None:
                    self._call(net.create_namespaced_network_policy, real, body)
                elif (current.metadata.annotations or {}).get(SPEC_ANNOTATION) != \
                        body["metadata"]["annotations"][SPEC_ANNOTATION]:
                    body = copy.deepcopy(body)
                    body["metadata"]["resourceVersion"] = current.metadata.resource_version
                    self._call(net.replace_namespaced_network_policy, name, real, body)
            for name in sorted(live):
                with contextlib.suppress(_Gone):
                    self._delete(net.delete_namespaced_network_policy, name, real)
        unknown = {p.namespace for p in scenario.policies} - set(self._ns_map)
        if unknown:
            raise InfraError(f"policies in namespaces not set up: {', '.join(sorted(unknown))}")

    def _delete(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except ApiException as e:
            if e.status == 404:
                raise _Gone() from None
            raise InfraError(f"{fn.__name__}: {e.status} {e.reason}: {_api_message(e)}") from None

    # ------------------------------------------------------------------ probe

    def probe_command(self, timeout: float) -> list[str]:
        return ["python3", "-c", PROBE_BOOTSTRAP, "probe", "--timeout", f"{timeout:g}"]

    def probe(self, client: str, targets: Sequence[Target], timeout: float) -> list[Observation]:
        if not targets:
            return []
        ns, _, name = client.partition("/")
        real = self.real_ns(ns)
        ids = [t.id for t in targets]
        if len(set(ids)) != len(ids):
            raise ValueError("target ids must be unique within a round")
        payload = json.dumps([{"id": t.id, "host": t.host, "port": t.port, "protocol": t.protocol}
                              for t in targets], separators=(",", ":")) + "\n"
        try:
            ws = stream(self.core().connect_get_namespaced_pod_exec, name, real,
                        command=self.probe_command(timeout), container="agent",
                        stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
        except ApiException as e:
            raise InfraError(f"exec in {client}: {e.status} {e.reason}: {_api_message(e)}") from None
        try:
            ws.write_stdin(payload)
            ws.close_channel(0)  # v5: end of stdin; v4 has no such signal (a no-op there)
            ws.run_forever(timeout=timeout + self.exec_grace)
            if ws.is_open():
                raise InfraError(f"exec in {client} did not finish within "
                                 f"{timeout + self.exec_grace:.0f}s")
            out, err = ws.read_channel(1), ws.read_channel(2)
            status = ws.read_channel(3)
        except InfraError:
            raise
        except Exception as e:  # websocket errors: the round failed, not the policy
            raise InfraError(f"exec in {client} broke off: {type(e).__name__}: {e}") from None
        finally:
            # The server closed the stream (and we answered) or we gave up: either way the
            # socket itself must go; websocket-client leaves it open after a server close.
            with contextlib.suppress(Exception):
                if ws.is_open():
                    ws.close(timeout=1)
            with contextlib.suppress(Exception):
                ws.sock.shutdown()
        code = exit_status(status)
        if code is None:
            raise InfraError(f"exec in {client} ended without an exit status "
                             f"(stderr: {err.strip()[-300:]!r})")
        if code != 0:
            raise InfraError(f"probe agent in {client} exited {code}: {err.strip()[-300:]!r}")
        return parse_observations(out, ids)

    # ------------------------------------------------------------------ teardown

    @property
    def setups(self) -> int:
        """Workloads set up so far (each: namespaces, pods, Services, a wait for Ready)."""
        return self._setups

    def teardown(self, wait: bool | None = None) -> None:
        """Delete every namespace of this run and wait until they are gone. Idempotent.
        On an interrupt (Ctrl-C, or SIGTERM turned into one; or `wait=False`) the deletes
        are issued, by the run label, and not waited for: the namespace controller finishes
        them, and a job that is being cut off keeps its minutes for JUnit and the upload.
        With `delete_wait="previous"` (and `wait` not given) it waits only for the namespaces
        of the teardown before, which had a whole case to go; `wait=True` waits for all."""
        if not self._created_ns and not self._ns_map and not (wait and self._deleting):
            return  # nothing of ours can exist (or be left to wait for)
        if wait is None:
            wait = not isinstance(sys.exc_info()[1], KeyboardInterrupt)
            lagging = wait and self.delete_wait == "previous"
        else:
            lagging = False
        core = self.core()
        selector = f"{RUN_LABEL}={self.run_id}"
        if self._cluster_kinds:  # cluster-scoped: namespace deletion does not take them
            kind_cluster.reconcile(k8s.CustomObjectsApi(self._api()), [], selector, SPEC_ANNOTATION,
                                   self._call, sorted(self._cluster_kinds))
            self._cluster_kinds = set()
        try:
            listed = {n.metadata.name for n in core.list_namespace(label_selector=selector).items}
        except ApiException as e:
            raise InfraError(f"teardown: cannot list namespaces: {e.status} {e.reason}") from None
        doomed = (listed - self._deleting) | self._created_ns
        for name in sorted(doomed):
            with contextlib.suppress(_Gone):
                self._delete(core.delete_namespace, name)
        if not wait:
            self._deleting |= doomed
            self._forget()
            return
        if lagging:  # wait for the workload before; this one's deletes run meanwhile
            pending, self._deleting = set(self._deleting), doomed
        else:
            pending, self._deleting = doomed | self._deleting, set()

        def gone() -> None:
            listed_now = {n.metadata.name for n in core.list_namespace(label_selector=selector).items}
            left = (listed_now if not lagging else listed_now & pending)
            left |= {n for n in pending - listed_now if _exists(core, n)}
            if left:
                raise _NotYet(", ".join(sorted(left)))

        try:
            tenacity.Retrying(stop=tenacity.stop_after_delay(self.delete_timeout),
                              wait=tenacity.wait_exponential(multiplier=0.1, max=2),
                              retry=tenacity.retry_if_exception_type(_NotYet),
                              reraise=True)(gone)
        except _NotYet as e:
            raise InfraError(f"namespaces still there after {self.delete_timeout:.0f}s: {e}") from None
        except ApiException as e:
            raise InfraError(f"teardown: {e.status} {e.reason}") from None
        self._forget()

    def _forget(self) -> None:
        """After teardown: no workload, nothing of ours known to exist."""
        self._created_ns.clear()
        self._ns_map = {}
        self._workload = None
        self._placed, self._running_on, self._hostnames = {}, {}, {}
        self.close()

    # ------------------------------------------------------------------ diagnostics

    def collect_diagnostics(self, dest: Path, failing: Sequence[dict]) -> None:
        """While the failing state is still in place: scripts/collect-diagnostics with the
        failing probes and the scenario -> real namespace map (so `kubectl ko trace` gets real
        pod names); the API dump when the script is missing or fails."""
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "failing.json").write_text(json.dumps(list(failing), indent=1, default=str))
        probes = dest / "failing.jsonl"
        probes.write_text("".join(json.dumps(r, default=str) + "\n" for r in failing))
        namespaces = dest / "namespaces.json"
        namespaces.write_text(json.dumps(self._ns_map, indent=1))
        script = self.diagnostics_script
        if not (script.is_file() and os.access(script, os.X_OK)):
            self._dump_objects(dest)
            return
        argv = [str(script), "--out", str(dest), "--probes", str(probes), "--namespaces", str(namespaces),
                "--no-logs"]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        env = {**os.environ, "CONFORMANCE_RUN_ID": self.run_id}
        if self.context:
            env["KUBE_CONTEXT"] = self.context
        try:
            with (dest / "collect-diagnostics.log").open("w") as log:
                rc = subprocess.run(argv, env=env, timeout=600, check=False, stdout=log,
                                    stderr=subprocess.STDOUT).returncode
        except (OSError, subprocess.TimeoutExpired) as e:
            (dest / "collect-diagnostics.error").write_text(str(e))
            rc = -1
        if rc != 0:
            (dest / "collect-diagnostics.error").write_text(f"exit status {rc}; dumped the API objects\n")
            self._dump_objects(dest)

    def _dump_objects(self, dest: Path) -> None:
        """Without the script: what the API knows about our objects, and the agents' logs."""
        core, net, api = self.core(), self.networking(), self._api()
        for ns, real in sorted(self._ns_map.items()):
            d = dest / real
            d.mkdir(exist_ok=True)
            for fname, fn in (("pods.json", core.list_namespaced_pod),
                              ("services.json", core.list_namespaced_service),
                              ("networkpolicies.json", net.list_namespaced_network_policy),
                              ("events.json", core.list_namespaced_event)):
                try:
                    items = api.sanitize_for_serialization(fn(real))
                except ApiException as e:
                    items = {"error": f"{e.status} {e.reason}"}
                (d / fname).write_text(json.dumps(items, indent=1, default=str))
            for pod in (p for p in (self._workload.pods if self._workload else ()) if p.namespace == ns):
                try:
                    log = core.read_namespaced_pod_log(pod.name, real, container="agent")
                except ApiException as e:
                    log = f"cannot read log: {e.status} {e.reason}"
                (d / f"{pod.name}.log").write_text(str(log))


# --------------------------------------------------------------------------- helpers


class _NotYet(Exception):
    """A wait condition is not met yet (tenacity retries on it)."""


class _Gone(Exception):
    """The object to delete is not there: fine for an idempotent delete."""


def _host_has_sctp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except (OSError, AttributeError):
        return False
    return True


def _exists(core: k8s.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def _api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body).get("message", e.body))[:300]
    except (TypeError, ValueError, AttributeError):
        return str(e.body or "")[:300]


def _label_patch(current: dict[str, str] | None, desired: dict[str, str]) -> dict[str, str | None]:
    """A merge patch that turns `current` into `desired`, leaving our own labels alone."""
    current = {k: v for k, v in (current or {}).items() if not _reserved(k)}
    desired = {k: v for k, v in desired.items() if not _reserved(k)}
    patch: dict[str, str | None] = {k: v for k, v in desired.items() if current.get(k) != v}
    patch.update({k: None for k in current if k not in desired})
    return patch


_FATAL_WAITING = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff",
                  "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def _pod_problem(pod: Any) -> str:
    """"" when Ready with an IP; "fatal: ..." when waiting longer cannot help; else why not."""
    status = pod.status
    if status is None:
        return "no status yet"
    if status.phase in ("Failed", "Succeeded"):
        return f"fatal: phase {status.phase}: {status.message or status.reason or ''}"
    for cs in status.container_statuses or ():
        waiting = cs.state.waiting if cs.state else None
        if waiting and waiting.reason in _FATAL_WAITING:
            return f"fatal: {waiting.reason}: {waiting.message or ''}"
    ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or ())
    if not ready:
        return f"phase {status.phase}, not Ready"
    if not status.pod_ip:
        return "Ready but no pod IP"
    return ""


def exit_status(raw: str) -> int | None:
    """Exit code from the exec error channel's metav1.Status; None when there is none."""
    if not raw or not raw.strip():
        return None
    try:
        status = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(status, dict):
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or ():
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return None
    # A Failure without an exit code: the exec itself failed (e.g. container not found).
    raise InfraError(f"exec failed: {status.get('message') or status.get('reason') or raw[:200]}")


__all__ = ["DEFAULT_IMAGE", "RUN_LABEL", "KindBackend", "exit_status", "parse_observations", "short_run_id"]
