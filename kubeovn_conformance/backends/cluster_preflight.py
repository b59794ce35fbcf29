"""What a run on a cluster checks before any case: the Subnet named by `--subnet` exists and its
network type agrees with `--mode`, and the Kube-OVN version when none was given.

Every problem is a PreflightError with one line (what, and where it was read); the pytest
plugin turns it into a usage error, so the run stops before it creates anything.

- Mode: a Subnet with `spec.vlan` set is underlay (its switch gets a localnet port and the
  physical network provides the gateway: kube-ovn v1.16.2 pkg/controller/subnet.go:1556, and
  every overlay-only branch there tests `Spec.Vlan == ""`, e.g. :181, :451); without it, overlay.
- Version: the image tag of the `kube-ovn-controller` container of the Deployment
  kube-system/kube-ovn-controller, as both install.sh and the Helm chart deploy it (v1.16.2
  charts/kube-ovn/templates/controller-deploy.yaml:4 and :73, image
  `<registry>/kube-ovn:<tag>`, tag = `global.images.kubeovn.tag`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

SUBNET_GROUP, SUBNET_VERSION, SUBNET_PLURAL = "kubeovn.io", "v1", "subnets"
CONTROLLER_NAMESPACE = "kube-system"
CONTROLLER_DEPLOYMENT = "kube-ovn-controller"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


class PreflightError(ValueError):
    """One line: what is wrong and where it was read."""


@dataclass(frozen=True)
class Preflight:
    version: str  # the version given, or read from the controller's image
    subnet_mode: str | None  # overlay | underlay of --subnet; None without --subnet


def subnet_mode(subnet: dict[str, Any]) -> str:
    return "underlay" if str((subnet.get("spec") or {}).get("vlan") or "").strip() else "overlay"


def version_from_image(image: str) -> str | None:
    """`docker.io/kubeovn/kube-ovn:v1.16.2` (also `...:v1.16.2-debug`, `...@sha256:...`) ->
    `v1.16.2`; None when the tag is not a version (`latest`, a digest alone)."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    m = _VERSION.match(last.rsplit(":", 1)[1])
    return f"v{m[1]}.{m[2]}.{m[3]}" if m else None


def _api(kubeconfig: str | None, context: str | None) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    try:
        k8s_config.load_kube_config(config_file=kubeconfig, context=context,
                                    client_configuration=cfg, persist_config=False)
    except (k8s_config.ConfigException, OSError) as e:
        raise PreflightError(f"cannot load kubeconfig {kubeconfig or '(default)'}: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    cfg.retries = 1  # an unreachable server is one line after a moment, not minutes of retries
    return k8s.ApiClient(cfg)


def _why(e: Exception) -> str:
    if isinstance(e, ApiException):
        return f"{e.status} {e.reason}"
    text = str(getattr(e, "reason", None) or e)  # urllib3's MaxRetryError wraps the cause
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if errno:
        return errno[0].strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}"[:160]


def read_subnet(api: k8s.ApiClient, name: str) -> dict[str, Any]:
    try:
        return k8s.CustomObjectsApi(api).get_cluster_custom_object(
            SUBNET_GROUP, SUBNET_VERSION, SUBNET_PLURAL, name)  # type: ignore[no-any-return]
    except ApiException as e:
        if e.status == 404:
            raise PreflightError(f"--subnet {name}: no such Subnet (kubeovn.io/v1 subnets) in the "
                                 "cluster; `kubectl get subnets` lists them") from None
        raise PreflightError(f"--subnet {name}: cannot read the Subnet: {_why(e)}") from None
    except Exception as e:  # connection refused, TLS, DNS: one line, no traceback
        raise PreflightError(f"--subnet {name}: cannot reach the API server {api.configuration.host}: "
                             f"{_why(e)}") from None


def read_version(api: k8s.ApiClient) -> str:
    where = f"Deployment {CONTROLLER_NAMESPACE}/{CONTROLLER_DEPLOYMENT}"
    hint = "; pass --kube-ovn-version"
    try:
        dep = k8s.AppsV1Api(api).read_namespaced_deployment(CONTROLLER_DEPLOYMENT, CONTROLLER_NAMESPACE)
    except ApiException as e:
        raise PreflightError(f"cannot read the Kube-OVN version from {where}: {_why(e)}{hint}") from None
    except Exception as e:
        raise PreflightError(f"cannot read the Kube-OVN version: cannot reach the API server "
                             f"{api.configuration.host}: {_why(e)}{hint}") from None
    containers = list((dep.spec.template.spec.containers if dep.spec else None) or ())
    chosen = next((c for c in containers if c.name == CONTROLLER_DEPLOYMENT), None) or \
        (containers[0] if containers else None)
    image = str(chosen.image or "") if chosen else ""
    version = version_from_image(image)
    if version is None:
        raise PreflightError(f"cannot read the Kube-OVN version from {where}: image {image!r} "
                             f"has no version tag{hint}")
    return version


def preflight(kubeconfig: str | None, context: str | None, *, mode: str, subnet: str | None,
              version: str | None, read_version_from_cluster: bool = True) -> Preflight:
    """Check --subnet against --mode and find the version; PreflightError with one line."""
    if not subnet and (version or not read_version_from_cluster):
        return Preflight(version or "unknown", None)
    api = _api(kubeconfig, context)
    try:
        found_mode = None
        if subnet:
            found_mode = subnet_mode(read_subnet(api, subnet))
            if found_mode != mode:
                vlan = "has spec.vlan" if found_mode == "underlay" else "has no spec.vlan"
                raise PreflightError(f"--mode {mode} contradicts --subnet {subnet}: the Subnet "
                                     f"{vlan}, so it is {found_mode}; use --mode {found_mode}")
        if not version and read_version_from_cluster:
            version = read_version(api)
        return Preflight(version or "unknown", found_mode)
    finally:
        api.close()
