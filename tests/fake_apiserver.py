"""FakeApiServer: a local stand-in for the small part of the Kubernetes API the kind backend uses.

It speaks real HTTP/1.1 (the official `kubernetes` client talks to it unmodified) and the exec
subresource over a WebSocket (RFC 6455, v4.channel.k8s.io / v5.channel.k8s.io), written here
with the standard library so that the client's framing, masking and channel handling are
exercised for real.

"Pods" are real sockets: each pod gets its own loopback address (127.77.x.y) and the fake
listens on its declared TCP/UDP ports, answering with the pod name as the probe agent does.
Exec runs the requested command locally (the ConfigMap mount /agent/agent.py is mapped to the
repository's agent), so a probe round runs the real agent against real listeners.

What it does NOT do: enforce NetworkPolicy, proxy Services (ClusterIPs get an address but
nothing listens), watch, server-side apply, JSON Patch.

Faults on demand (`exec_faults[ "ns/pod" or "*" ]`): {"drop_status": True} closes without the
error-channel status; {"exit_code": N} reports exit N; {"hang": True} never finishes;
{"stdout": "text"} replaces the command's output. `pod_start_delay` keeps new pods Pending;
`agent_ready_delay` holds back the "ready" log line.

Nodes (`nodes=[fake_node(...)]`, default one untainted node) are listed, and new pods are
"scheduled" like the scheduler would: a required node affinity on kubernetes.io/hostname
picks the node with that label, respecting NoSchedule/NoExecute taints; no matching node
leaves the pod Pending (Unschedulable). `forbidden={"nodes"}` answers 403 to listing them
(and to reading any object of a forbidden resource). Kube-OVN Subnets and the controller's
Deployment (`preload=[fake_subnet(...), fake_controller(...)]`) are there to be read by the
cluster backend's preflight.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

AGENT = Path(__file__).resolve().parent.parent / "kubeovn_conformance" / "agent.py"
AGENT_MOUNT = "/agent/agent.py"  # where the backend mounts the agent ConfigMap in a pod
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
TOKEN = "fake-token"
NS_NAME_LABEL = "kubernetes.io/metadata.name"

# resource path segment -> (apiVersion, kind)
RESOURCES = {
    "namespaces": ("v1", "Namespace"),
    "pods": ("v1", "Pod"),
    "services": ("v1", "Service"),
    "configmaps": ("v1", "ConfigMap"),
    "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy"),
    "nodes": ("v1", "Node"),
    # Cluster-scoped policy kinds (served when their CRD is in `crds`).
    "adminnetworkpolicies": ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy"),
    "baselineadminnetworkpolicies": ("policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy"),
    "clusternetworkpolicies": ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy"),
    # Read by the cluster backend's preflight (`preload=[fake_subnet(...), fake_controller(...)]`).
    "subnets": ("kubeovn.io/v1", "Subnet"),
    "deployments": ("apps/v1", "Deployment"),
}
POLICY_GROUP = "policy.networking.k8s.io"
HOSTNAME = "kubernetes.io/hostname"


def fake_node(name: str, *, hostname: str | None = None, taints: tuple[tuple[str, str], ...] = (),
              unschedulable: bool = False) -> dict[str, Any]:
    """A Node object; `taints` are (key, effect) pairs."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {HOSTNAME: hostname or name, "kubernetes.io/os": "linux"}},
            "spec": {"taints": [{"key": k, "effect": e} for k, e in taints],
                     **({"unschedulable": True} if unschedulable else {})},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def fake_subnet(name: str, *, vlan: str | None = None, cidr: str = "10.16.0.0/16") -> dict[str, Any]:
    """A Kube-OVN Subnet (cluster-scoped); `vlan` makes it underlay."""
    spec: dict[str, Any] = {"cidrBlock": cidr, "protocol": "IPv4", "provider": "ovn"}
    if vlan:
        spec["vlan"] = vlan
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec}


def fake_controller(image: str) -> dict[str, Any]:
    """The Deployment kube-system/kube-ovn-controller running `image`."""
    pod = {"containers": [{"name": "kube-ovn-controller", "image": image}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "kube-ovn-controller", "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"app": "kube-ovn-controller"}},
                     "template": {"metadata": {"labels": {"app": "kube-ovn-controller"}}, "spec": pod}}}


def _required_hostnames(pod: dict[str, Any]) -> list[str] | None:
    """Hostnames a pod's required node affinity allows (only the form the backend writes)."""
    required = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return None
    return [v for term in required["nodeSelectorTerms"] for e in term.get("matchExpressions", [])
            if e["key"] == HOSTNAME and e["operator"] == "In" for v in e["values"]]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
V4, V5 = "v4.channel.k8s.io", "v5.channel.k8s.io"


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


# --------------------------------------------------------------------------- label selectors


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b` -> ['a in (x,y)', 'b']."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    for req in _split_top(selector or ""):
        words = req.split()
        if len(words) >= 3 and words[1] in ("in", "notin"):
            key = words[0]
            values = {v.strip() for v in req.split("(", 1)[1].rstrip(")").split(",")}
            if (words[1] == "in") != (labels.get(key) in values):
                return False
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in req:
            key, value = (s.strip() for s in req.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif req.startswith("!"):
            if req[1:] in labels:
                return False
        elif req not in labels:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386. For the maps the backend patches (labels) strategic merge is the same."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# --------------------------------------------------------------------------- websocket


def ws_accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A server frame: final, unmasked (servers must not mask, RFC 6455 5.1)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def _unmask(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    n = len(data)
    mask = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")


class WsProtocolError(Exception):
    pass


def ws_read_message(rfile: Any) -> tuple[int, bytes] | None:
    """One message (continuations joined); None on EOF. Client frames must be masked."""
    opcode, chunks = None, []
    while True:
        head = rfile.read(2)
        if len(head) < 2:
            return None
        fin, op = head[0] & 0x80, head[0] & 0x0F
        masked, n = head[1] & 0x80, head[1] & 0x7F
        if not masked:
            raise WsProtocolError("client frame not masked")
        if n == 126:
            n = struct.unpack("!H", rfile.read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", rfile.read(8))[0]
        key = rfile.read(4)
        payload = rfile.read(n) if n else b""
        if len(key) < 4 or len(payload) < n:
            return None
        payload = _unmask(payload, key)
        if op >= 0x8:  # control frames may interleave with a fragmented message
            return op, payload
        if op != OP_CONT:
            opcode = op
        chunks.append(payload)
        if fin:
            return (opcode if opcode is not None else OP_BINARY), b"".join(chunks)


# --------------------------------------------------------------------------- the server


class FakeApiServer:
    """Start with `with FakeApiServer() as api:`; `api.kubeconfig(path)` writes a kubeconfig."""

    def __init__(self, *, validate_version: str | None = "1.35.0", ns_delete_delay: float = 0.2,
                 pod_start_delay: float = 0.0, agent_ready_delay: float = 0.0,
                 exec_protocols: tuple[str, ...] = (V5, V4),
                 nodes: list[dict[str, Any]] | None = None, forbidden: set[str] | None = None,
                 crds: set[str] | None = None, preload: list[dict[str, Any]] | None = None) -> None:
        self.validate_version = validate_version
        self.ns_delete_delay = ns_delete_delay
        self.pod_start_delay = pod_start_delay
        self.agent_ready_delay = agent_ready_delay
        self.exec_protocols = exec_protocols
        self.exec_faults: dict[str, dict[str, Any]] = {}
        self.crds = set(crds or ())  # e.g. {"adminnetworkpolicies.policy.networking.k8s.io"}
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name)
        for node in nodes if nodes is not None else [fake_node("fake-node")]:
            self.objects[("nodes", "", node["metadata"]["name"])] = copy.deepcopy(node)
        for obj in preload or ():  # objects that exist before the run (Subnets, the controller)
            resource = next(r for r, kind in RESOURCES.items() if kind == (obj["apiVersion"], obj["kind"]))
            meta = obj["metadata"]
            self.objects[(resource, meta.get("namespace", ""), meta["name"])] = copy.deepcopy(obj)
        self.forbidden = set(forbidden or ())
        self.requests: list[tuple[str, str, str]] = []  # (method, path, content-type)
        self.execs: list[dict[str, Any]] = []
        self._rv = itertools.count(1)
        self._ips = itertools.count(0)
        # A loopback block of its own, so fakes in parallel test processes never share ports.
        self._block = (random.randrange(16, 250), random.randrange(0, 256))
        self._listeners: dict[tuple[str, str], list[socket.socket]] = {}
        self._born: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # ---- life cycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            for key in list(self._listeners):
                self._stop_pod(key)

    def kubeconfig(self, path: Path, context: str = "fake") -> Path:
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": context,
               "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
               "users": [{"name": "fake", "user": {"token": TOKEN}}],
               "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}]}
        path.write_text(json.dumps(cfg))  # JSON is YAML: the client's loader reads it
        return path

    # ---- queries for tests

    def names(self, resource: str, namespace: str = "") -> list[str]:
        with self.lock:
            return sorted(n for (r, ns, n) in self.objects if r == resource and ns == namespace)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def writes(self, resource: str) -> list[tuple[str, str, str]]:
        """Mutating requests on `resource` (exec excluded)."""
        return [r for r in self.requests
                if r[0] in ("POST", "PUT", "PATCH", "DELETE") and f"/{resource}" in r[1]
                and not r[1].endswith("/exec")]

    def request_counts(self) -> dict[str, int]:
        """Requests so far by verb and resource: "create pods", "delete namespaces",
        "list pods", "get namespaces", "log pods", "exec pods", "patch namespaces", ...
        (`make bench-kind` counts a nightly row's API work with them)."""
        verbs = {"POST": "create", "PUT": "replace", "PATCH": "patch", "DELETE": "delete"}
        counts: dict[str, int] = {}
        for method, path, _ in list(self.requests):
            parts = [p for p in path.split("/") if p]
            named = [i for i, p in enumerate(parts) if p in RESOURCES and not (
                p == "namespaces" and len(parts) > i + 2 and parts[i + 2] in RESOURCES)]
            if not named:
                key = f"{method.lower()} {'/'.join(parts[:4])}"  # discovery, CRDs
            else:
                i = named[-1]
                resource, rest = parts[i], parts[i + 1:]
                if rest[1:] in (["exec"], ["log"]):
                    verb = rest[1]
                elif method == "GET":
                    verb = "get" if rest else "list"
                else:
                    verb = verbs.get(method, method.lower())
                key = f"{verb} {resource}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    # ---- object store

    def _meta(self, obj: dict[str, Any], namespace: str) -> None:
        meta = obj.setdefault("metadata", {})
        if namespace:
            meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._rv))
        meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def _validate(self, obj: dict[str, Any]) -> None:
        if not self.validate_version or str(obj.get("apiVersion", "")).startswith(POLICY_GROUP):
            return  # CRD kinds: kubernetes-validate has no schema for them
        import kubernetes_validate  # test dependency; only loaded when validating

        try:
            kubernetes_validate.validate(obj, self.validate_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise ApiError(422, "Invalid", f"{obj.get('kind')} is invalid: {e.message}") from None

    def _namespace_usable(self, namespace: str) -> None:
        ns = self.objects.get(("namespaces", "", namespace))
        if ns is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f"unable to create new content in namespace "
                                             f"{namespace} because it is being terminated")

    def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        api_version, kind = RESOURCES[resource]
        if body.get("kind") != kind or body.get("apiVersion") != api_version:
            raise ApiError(400, "BadRequest", f"expected {api_version} {kind}")
        self._validate(body)
        name = body["metadata"].get("name")
        with self.lock:
            if namespace:
                self._namespace_usable(namespace)
            if (resource, namespace, name) in self.objects:
                raise ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists')
            obj = copy.deepcopy(body)
            self._meta(obj, namespace)
            if resource == "namespaces":
                obj["metadata"].setdefault("labels", {})[NS_NAME_LABEL] = name
                obj["spec"] = {"finalizers": ["kubernetes"]}
                obj["status"] = {"phase": "Active"}
            elif resource == "services":
                ip = self._next_ip()
                obj["spec"]["clusterIP"] = ip
                obj["spec"]["clusterIPs"] = [ip]
                for p in obj["spec"].get("ports", []):
                    p.setdefault("protocol", "TCP")
                    p.setdefault("targetPort", p["port"])
            elif resource == "pods":
                self._schedule(obj)
                self._start_pod(namespace, obj)
            self.objects[(resource, namespace, name)] = obj
            return self._view(resource, obj)

    def _schedule(self, pod: dict[str, Any]) -> None:
        """Set spec.nodeName as the scheduler would; leave it unset when no node fits."""
        if pod["spec"].get("nodeName"):
            return
        wanted = _required_hostnames(pod)
        for (r, _, name), node in sorted(self.objects.items()):
            if r != "nodes" or node["spec"].get("unschedulable"):
                continue
            if any(t["effect"] in ("NoSchedule", "NoExecute") for t in node["spec"].get("taints") or ()):
                continue
            if wanted is None or node["metadata"]["labels"].get(HOSTNAME) in wanted:
                pod["spec"]["nodeName"] = name
                return

    def _next_ip(self) -> str:
        n = next(self._ips)
        second, third = self._block
        return f"127.{second}.{(third + n // 250) % 256}.{n % 250 + 2}"

    def _view(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"], out["kind"] = RESOURCES[resource]
        if resource == "pods":
            out["status"] = self._pod_status(obj)
        return out

    def read(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        if resource in self.forbidden:
            raise ApiError(403, "Forbidden", f'{resource} "{name}" is forbidden')
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            return self._view(resource, obj)

    def list(self, resource: str, namespace: str, selector: str | None) -> dict[str, Any]:
        api_version, kind = RESOURCES[resource]
        if resource in self.forbidden:
            raise ApiError(403, "Forbidden", f'{resource} is forbidden: cannot list resource "{resource}"')
        with self.lock:
            items = [self._view(r, o) for (r, ns, _), o in sorted(self.objects.items())
                     if r == resource and (not namespace or ns == namespace)
                     and selector_matches(selector, o["metadata"].get("labels") or {})]
            rv = str(next(self._rv))
        return {"apiVersion": api_version, "kind": kind + "List",
                "metadata": {"resourceVersion": rv}, "items": items}

    def patch(self, resource: str, namespace: str, name: str, body: Any,
              content_type: str) -> dict[str, Any]:
        if content_type not in ("application/merge-patch+json",
                                "application/strategic-merge-patch+json"):
            raise ApiError(415, "UnsupportedMediaType", f"the fake does not do {content_type}")
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            patched = merge_patch(obj, body)
            if resource == "namespaces":  # the API server owns this label
                patched["metadata"].setdefault("labels", {})[NS_NAME_LABEL] = name
            self._validate(self._view(resource, patched))
            patched["metadata"]["resourceVersion"] = str(next(self._rv))
            self.objects[(resource, namespace, name)] = patched
            return self._view(resource, patched)

    def replace(self, resource: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._validate(body)
        with self.lock:
            old = self.objects.get((resource, namespace, name))
            if old is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            rv = body.get("metadata", {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified")
            obj = copy.deepcopy(body)
            obj["metadata"].update({k: old["metadata"][k] for k in ("uid", "creationTimestamp")})
            obj["metadata"]["namespace"] = namespace
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            self.objects[(resource, namespace, name)] = obj
            return self._view(resource, obj)

    def delete(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            if resource == "namespaces":
                # Like the namespace controller: Terminating first, contents and the namespace
                # itself gone a little later.
                if not obj["metadata"].get("deletionTimestamp"):
                    obj["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ")
                    obj["status"] = {"phase": "Terminating"}
                    timer = threading.Timer(self.ns_delete_delay, self._purge_namespace, [name])
                    timer.daemon = True
                    timer.start()
                return self._view(resource, obj)
            del self.objects[(resource, namespace, name)]
            if resource == "pods":
                self._stop_pod((namespace, name))
            return self._view(resource, obj)

    def _purge_namespace(self, name: str) -> None:
        with self.lock:
            for key in [k for k in self.objects if k[1] == name]:
                if key[0] == "pods":
                    self._stop_pod((name, key[2]))
                del self.objects[key]
            self.objects.pop(("namespaces", "", name), None)

    # ---- pods: real listeners on a loopback address of their own

    def _start_pod(self, namespace: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        wanted = [(p.get("protocol", "TCP"), p["containerPort"])
                  for c in pod["spec"].get("containers", []) for p in c.get("ports", [])
                  if p.get("protocol", "TCP") != "SCTP"]  # SCTP: not served here
        for _ in range(20):  # an address something else on this machine holds: take the next
            ip = self._next_ip()
            socks = []
            try:
                for proto, port in wanted:
                    s = socket.socket(socket.AF_INET,
                                      socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM)
                    socks.append(s)
                    s.bind((ip, port))
                    if proto == "TCP":
                        s.listen(64)
                    s.settimeout(0.2)
                break
            except OSError:
                for s in socks:
                    s.close()
        else:
            raise ApiError(500, "InternalError", "no free loopback address for a pod")
        pod["status"] = {"podIP": ip}
        reply = _served_name(pod).encode()
        for s, (proto, _) in zip(socks, wanted, strict=True):
            threading.Thread(target=self._serve, args=(s, proto, reply), daemon=True).start()
        self._listeners[(namespace, name)] = socks
        self._born[(namespace, name)] = time.monotonic()

    def _serve(self, sock: socket.socket, proto: str, reply: bytes) -> None:
        while not self._stop.is_set() and sock.fileno() != -1:
            try:
                if proto == "TCP":
                    conn, _ = sock.accept()
                    with conn:
                        conn.sendall(reply)
                        conn.shutdown(socket.SHUT_WR)
                else:
                    _, addr = sock.recvfrom(65535)
                    sock.sendto(reply, addr)
            except (TimeoutError, OSError):
                continue

    def _stop_pod(self, key: tuple[str, str]) -> None:
        for s in self._listeners.pop(key, []):
            s.close()
        self._born.pop(key, None)

    def _pod_age(self, namespace: str, name: str) -> float:
        born = self._born.get((namespace, name))
        return -1.0 if born is None else time.monotonic() - born

    def _pod_status(self, pod: dict[str, Any]) -> dict[str, Any]:
        meta = pod["metadata"]
        if not pod["spec"].get("nodeName"):
            return {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
        running = self._pod_age(meta["namespace"], meta["name"]) >= self.pod_start_delay
        if not running:
            return {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}
        ip = pod["status"]["podIP"]
        return {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": c["name"], "ready": True, "restartCount": 0,
                                       "image": c["image"], "imageID": "", "started": True,
                                       "state": {"running": {}}}
                                      for c in pod["spec"]["containers"]]}

    def pod_log(self, namespace: str, name: str) -> str:
        with self.lock:
            if ("pods", namespace, name) not in self.objects:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            age = self._pod_age(namespace, name)
        return "ready\n" if age >= self.pod_start_delay + self.agent_ready_delay else ""

    def fault(self, namespace: str, name: str) -> dict[str, Any]:
        return self.exec_faults.get(f"{namespace}/{name}") or self.exec_faults.get("*") or {}

    # ---- HTTP

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            api = server

        return Handler


def _served_name(pod: dict[str, Any]) -> str:
    """What the probe agent in this pod would answer: its `--name`, as the pod runs it."""
    command = (pod["spec"].get("containers") or [{}])[0].get("command") or []
    if "--name" in command[:-1]:
        return command[command.index("--name") + 1]
    return pod["metadata"]["name"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as urllib3 expects
    api: FakeApiServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows failures, not access logs

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        api = self.api
        api.requests.append((method, url.path, self.headers.get("Content-Type") or ""))
        try:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            parts = [p for p in url.path.split("/") if p]
            if parts[:2] == ["api", "v1"]:
                rest = parts[2:]
            elif parts[:3] in (["apis", "networking.k8s.io", "v1"], ["apis", "kubeovn.io", "v1"],
                               ["apis", "apps", "v1"]):
                rest = parts[3:]
            elif parts[:4] == ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions"]:
                name = parts[4] if len(parts) > 4 else ""
                if method != "GET" or name not in api.crds:
                    raise ApiError(404, "NotFound", f"customresourcedefinitions {name!r} not found")
                self._send(200, {"apiVersion": "apiextensions.k8s.io/v1",
                                 "kind": "CustomResourceDefinition", "metadata": {"name": name}})
                return
            elif parts[:2] == ["apis", POLICY_GROUP] and len(parts) > 3 and \
                    f"{parts[3]}.{POLICY_GROUP}" in api.crds and \
                    RESOURCES.get(parts[3], ("",))[0] == f"{POLICY_GROUP}/{parts[2]}":
                rest = parts[3:]
            else:
                raise ApiError(404, "NotFound", f"no route {url.path}")
            namespace = ""
            if rest[:1] == ["namespaces"] and len(rest) >= 3:  # else: namespaces themselves
                namespace, rest = rest[1], rest[2:]
            if not rest or rest[0] not in RESOURCES:
                raise ApiError(404, "NotFound", f"no route {url.path}")
            resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), rest[2:]
            if sub == ["exec"] and resource == "pods" and name:
                self._exec(namespace, name, query)
                return
            if sub == ["log"] and resource == "pods" and name and method == "GET":
                self._send(200, api.pod_log(namespace, name), "text/plain")
                return
            if sub:
                raise ApiError(404, "NotFound", f"no route {url.path}")
            if name is None:
                if method == "GET":
                    sel = (query.get("labelSelector") or [None])[0]
                    self._send(200, api.list(resource, namespace, sel))
                elif method == "POST":
                    self._send(201, api.create(resource, namespace, self._body()))
                else:
                    raise ApiError(405, "MethodNotAllowed", method)
            elif method == "GET":
                self._send(200, api.read(resource, namespace, name))
            elif method == "PATCH":
                ctype = (self.headers.get("Content-Type") or "").split(";")[0]
                self._send(200, api.patch(resource, namespace, name, self._body(), ctype))
            elif method == "PUT":
                self._send(200, api.replace(resource, namespace, name, self._body()))
            elif method == "DELETE":
                self._body()  # DeleteOptions: read so the connection stays in sync
                self._send(200, api.delete(resource, namespace, name))
            else:
                raise ApiError(405, "MethodNotAllowed", method)
        except ApiError as e:
            self._send(e.code, e.status())
        except Exception as e:  # a bug in the fake: answer like a server would, keep going
            self._send(500, ApiError(500, "InternalError", f"{type(e).__name__}: {e}").status())

    # ---- exec over WebSocket

    def _exec(self, namespace: str, name: str, query: dict[str, list[str]]) -> None:
        api = self.api
        api.read("pods", namespace, name)  # 404 before the upgrade, as the API server does
        if (self.headers.get("Upgrade") or "").lower() != "websocket":
            raise ApiError(400, "BadRequest", "exec needs a websocket upgrade here")
        offered = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        chosen = next((p for p in offered if p in api.exec_protocols), None)
        if chosen is None:
            raise ApiError(400, "BadRequest", f"no supported subprotocol in {offered}")
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept_key(self.headers["Sec-WebSocket-Key"]))
        self.send_header("Sec-WebSocket-Protocol", chosen)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        command = query.get("command", [])
        with api.lock:
            api.execs.append({"pod": f"{namespace}/{name}", "command": command,
                              "protocol": chosen, "thread": threading.get_ident()})
        _ExecSession(self, chosen, command, api.fault(namespace, name)).run()


class _ExecSession:
    """One exec: the command as a local process, its pipes bridged to channels."""

    def __init__(self, handler: _Handler, protocol: str, command: list[str],
                 fault: dict[str, Any]) -> None:
        self.h, self.protocol, self.fault = handler, protocol, fault
        # The pod's view of the world mapped onto this machine: its python3, its agent mount.
        self.argv = [sys.executable if a == "python3" else a.replace(AGENT_MOUNT, str(AGENT))
                     for a in command]
        self.send_lock = threading.Lock()
        self.client_gone = threading.Event()
        self.stdin_closed = threading.Event()

    def send(self, opcode: int, payload: bytes) -> None:
        with self.send_lock:
            try:
                self.h.wfile.write(ws_frame(opcode, payload))
                self.h.wfile.flush()
            except OSError:
                self.client_gone.set()

    def run(self) -> None:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except OSError as e:
            self.finish_status({"metadata": {}, "status": "Failure", "reason": "InternalError",
                                "message": f"exec failed: {e}"})
            return
        reader = threading.Thread(target=self.read_client, args=(proc,), daemon=True)
        reader.start()
        pumps = [threading.Thread(target=self.pump, args=(stream, ch), daemon=True)
                 for stream, ch in ((proc.stdout, 1), (proc.stderr, 2))]
        for t in pumps:
            t.start()
        while proc.poll() is None and not self.client_gone.is_set():
            time.sleep(0.01)
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        for t in pumps:
            t.join(5)
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
        if self.fault.get("hang"):
            self.client_gone.wait(600)  # never answer; the client must give up
            return
        code = self.fault.get("exit_code", code)
        if self.fault.get("drop_status"):
            status = None
        elif code == 0:
            status = {"metadata": {}, "status": "Success"}
        else:
            status = {"metadata": {}, "status": "Failure",
                      "message": f"command terminated with non-zero exit code: exit status {code}",
                      "reason": "NonZeroExitCode",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        self.finish_status(status)

    def finish_status(self, status: dict[str, Any] | None) -> None:
        if status is not None:
            self.send(OP_BINARY, b"\x03" + json.dumps(status).encode())
        self.send(OP_CLOSE, struct.pack("!H", 1000))
        # Let the client answer the close before the TCP connection goes (RFC 6455 7.1.1).
        self.client_gone.wait(2)

    def pump(self, stream: Any, channel: int) -> None:
        override = self.fault.get("stdout") if channel == 1 else None
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                break
            if override is None:
                self.send(OP_BINARY, bytes([channel]) + chunk)
        if override is not None:
            self.send(OP_BINARY, bytes([channel]) + override.encode())

    def read_client(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            while True:
                msg = ws_read_message(self.h.rfile)
                if msg is None:
                    break
                opcode, data = msg
                if opcode == OP_CLOSE:
                    with self.send_lock:
                        try:
                            self.h.wfile.write(ws_frame(OP_CLOSE, data[:2]))
                            self.h.wfile.flush()
                        except OSError:
                            pass
                    break
                if opcode == OP_PING:
                    self.send(OP_PONG, data)
                    continue
                if opcode not in (OP_TEXT, OP_BINARY) or not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel == 255 and self.protocol == V5 and payload[:1] == b"\x00":
                    self._close_stdin(proc)
                elif channel == 0 and not self.stdin_closed.is_set():
                    try:
                        proc.stdin.write(payload)  # type: ignore[union-attr]
                        proc.stdin.flush()  # type: ignore[union-attr]
                    except OSError:
                        pass
        except (WsProtocolError, OSError):
            pass
        finally:
            # v4 has no way to close stdin but ending the stream, as with a real kubelet.
            self._close_stdin(proc)
            self.client_gone.set()

    def _close_stdin(self, proc: subprocess.Popen[bytes]) -> None:
        if not self.stdin_closed.is_set():
            self.stdin_closed.set()
            try:
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass


if __name__ == "__main__":  # manual use: python tests/fake_apiserver.py /tmp/kubeconfig
    with FakeApiServer() as fake:
        print(fake.kubeconfig(Path(sys.argv[1] if len(sys.argv) > 1 else "kubeconfig")), fake.url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    os._exit(0)
