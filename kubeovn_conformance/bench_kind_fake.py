"""The bench's additions to the fake API server: Services that answer like kube-proxy (the
fake gives a ClusterIP and nothing listens on it, so every case would stop at "servers not
answering before any policy"), and its request counts in the bench's columns."""

from __future__ import annotations

import socket
import struct
import sys
import threading
from typing import Any

# The bench's columns, from the fake's "verb resource" counts (FakeApiServer.request_counts).
POLICY_RESOURCES = ("networkpolicies", "adminnetworkpolicies", "baselineadminnetworkpolicies",
                    "clusternetworkpolicies")


def counts_by_kind(counts: dict[str, int]) -> dict[str, int]:
    """ns+/ns-, pods+/pods-, svc+/svc~/svc-, pol+/pol~/pol- (NetworkPolicies and the
    cluster-scoped kinds), patch (labels), exec, ready (pod lists and agent logs: the wait for
    Ready, and reconcile's one pod list per namespace and step), del-poll (namespace lists and
    reads: the wait for deletion, and reconcile's one list per step), reads (every other GET)."""
    out: dict[str, int] = {}

    def add(key: str, n: int) -> None:
        out[key] = out.get(key, 0) + n

    for key, n in counts.items():
        verb, _, resource = key.partition(" ")
        short = {"namespaces": "ns", "pods": "pods", "services": "svc"}.get(
            resource, "pol" if resource in POLICY_RESOURCES else "")
        if verb in ("exec", "log"):
            add("exec" if verb == "exec" else "ready", n)
        elif verb in ("create", "replace", "delete") and short:
            add(short + {"create": "+", "replace": "~", "delete": "-"}[verb], n)
        elif verb == "patch":
            add("patch", n)
        elif verb in ("list", "get") and resource == "pods":
            add("ready", n)
        elif verb in ("list", "get") and resource == "namespaces":
            add("del-poll", n)
        elif verb in ("create", "replace", "delete"):
            add(f"other {verb}", n)  # ConfigMaps
        else:
            add("reads", n)
    return out


def service_proxy_class(base: type) -> type:
    """`base` (tests/fake_apiserver.FakeApiServer) whose Services answer on their ClusterIP:
    a TCP connection or UDP datagram to a Service port gets the name of the first selected
    pod that serves the target port, as the pod's agent would answer it (no endpoint: the
    connection is reset, the datagram dropped)."""

    class WithServices(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._svc_socks: dict[tuple[str, str], dict[tuple[int, str], socket.socket]] = {}
            # A client that closes its keep-alive connection is no error worth a traceback.
            self.httpd.handle_error = lambda *_a: None

        def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
            out = super().create(resource, namespace, body)
            if resource == "services":
                self._listen(namespace, out["metadata"]["name"])
            return out

        def replace(self, resource: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
            out = super().replace(resource, namespace, name, body)
            if resource == "services":
                self._listen(namespace, name)
            return out

        def delete(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
            out = super().delete(resource, namespace, name)
            if resource == "services":
                self._unlisten((namespace, name))
            return out

        def _purge_namespace(self, name: str) -> None:
            with self.lock:
                for key in [k for k in self._svc_socks if k[0] == name]:
                    self._unlisten(key)
            super()._purge_namespace(name)

        def close(self) -> None:
            super().close()
            with self.lock:
                for key in list(self._svc_socks):
                    self._unlisten(key)

        def _listen(self, namespace: str, name: str) -> None:
            """Listeners for the Service's ports; a port kept across a replace keeps its socket
            (a closed listener stays bound while its thread polls it)."""
            with self.lock:
                svc = self.objects[("services", namespace, name)]
                ip = svc["spec"]["clusterIP"]
                socks = self._svc_socks.setdefault((namespace, name), {})
                wanted = {(p["port"], p.get("protocol", "TCP")) for p in svc["spec"].get("ports") or ()
                          if p.get("protocol", "TCP") in ("TCP", "UDP")}
                for key in set(socks) - wanted:
                    socks.pop(key).close()
                for port, proto in sorted(wanted - set(socks)):
                    kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
                    s = socket.socket(socket.AF_INET, kind)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((ip, port))
                    if proto == "TCP":
                        s.listen(64)
                    s.settimeout(0.2)
                    socks[(port, proto)] = s
                    threading.Thread(target=self._answer, args=(s, proto, namespace, name, port),
                                     daemon=True).start()

        def _unlisten(self, key: tuple[str, str]) -> None:
            for s in self._svc_socks.pop(key, {}).values():
                s.close()

        def _endpoint(self, namespace: str, name: str, port_no: int, proto: str) -> str | None:
            served_name = sys.modules[base.__module__]._served_name
            with self.lock:
                svc = self.objects.get(("services", namespace, name))
                if svc is None:
                    return None
                port = next((p for p in svc["spec"].get("ports") or ()
                             if p["port"] == port_no and p.get("protocol", "TCP") == proto), None)
                selector = svc["spec"].get("selector") or {}
                if port is None or not selector:
                    return None
                target = port.get("targetPort", port["port"])
                for (r, ns, _), pod in sorted(self.objects.items()):
                    labels = pod["metadata"].get("labels") or {}
                    if r != "pods" or ns != namespace or any(labels.get(k) != v for k, v in selector.items()):
                        continue
                    for c in pod["spec"].get("containers") or ():
                        for cp in c.get("ports") or ():
                            if cp.get("protocol", "TCP") == proto and \
                                    target in (cp["containerPort"], cp.get("name")):
                                return str(served_name(pod))
            return None

        def _answer(self, sock: socket.socket, proto: str, namespace: str, name: str,
                    port: int) -> None:
            while not self._stop.is_set() and sock.fileno() != -1:
                try:
                    if proto == "TCP":
                        conn, _ = sock.accept()
                        with conn:
                            reply = self._endpoint(namespace, name, port, proto)
                            if reply is None:  # no endpoint: a reset, as kube-proxy's reject
                                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                                continue
                            conn.sendall(reply.encode())
                            conn.shutdown(socket.SHUT_WR)
                    else:
                        _, addr = sock.recvfrom(65535)
                        reply = self._endpoint(namespace, name, port, proto)
                        if reply is not None:
                            sock.sendto(reply.encode(), addr)
                except (TimeoutError, OSError):
                    continue

    return WithServices
