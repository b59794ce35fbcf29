"""The version matrix (clusters/versions.yaml, clusters/chart-keys.yaml) and the constants
every other module of the package shares. Pure and offline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeovn_conformance.textfile import read_text

MODES = ("overlay", "underlay")
REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTERS_DIR = REPO_ROOT / "clusters"
MATRIX_FILE = CLUSTERS_DIR / "versions.yaml"
CHART_KEYS_FILE = CLUSTERS_DIR / "chart-keys.yaml"

# Kube-OVN's own kind CI uses these (kube-ovn-facts.md, yamls/kind.yaml.j2).
POD_SUBNET = "10.16.0.0/16"
POD_GATEWAY = "10.16.0.1"
SERVICE_SUBNET = "10.96.0.0/12"
JOIN_SUBNET = "100.64.0.0/16"
KUBE_PROXY_MODE = "ipvs"
VLAN_NIC = "eth0"
PROVIDER_NAME = "provider"
VLAN_NAME = "ovn-vlan"
DEFAULT_SUBNET = "ovn-default"
DEFAULT_CLUSTER_NAME = "kube-ovn"
DOCKER_NETWORK = "kind"
# A tagged VLAN cannot share the kind network's addresses: the nodes stay untagged on it, so
# tagged pods get their own subnet, routed by the host through a VLAN interface on the bridge.
DEFAULT_VLAN_CIDR = "10.200.0.0/24"
RECORD_CONFIGMAP = "kubeovn-conformance-cluster"
NAMESPACE = "kube-system"
HELM_RELEASE = "kube-ovn"
# Workloads whose rollout means "Kube-OVN is up" (chart v1 and install.sh, 1.12 to 1.16).
ROLLOUTS = (
    "deployment/ovn-central",
    "deployment/kube-ovn-controller",
    "daemonset/ovs-ovn",
    "daemonset/kube-ovn-cni",
    "daemonset/kube-ovn-pinger",
    "deployment/kube-ovn-monitor",
    "deployment/coredns",
)
WAIT_TIMEOUT = "600s"
# The probe agents' image (backends/kind.py DEFAULT_IMAGE): pulled once on the host and loaded
# into the nodes, so Docker Hub's pull limits cannot fail a night.
PROBE_IMAGE = "docker.io/library/python:3.12-alpine"
PY = ("python", "-m", "kubeovn_conformance.clusters")


class ClusterError(Exception):
    """A user or data error: printed as one line, exit status 2."""



POLICY_API_REPO = "https://raw.githubusercontent.com/kubernetes-sigs/network-policy-api"
POLICY_API_KINDS = {  # CRD plural -> kind
    "adminnetworkpolicies": "AdminNetworkPolicy",
    "baselineadminnetworkpolicies": "BaselineAdminNetworkPolicy",
    "clusternetworkpolicies": "ClusterNetworkPolicy",
}


@dataclass(frozen=True)
class PolicyApi:
    """The policy.networking.k8s.io CRDs a release line's controller is built against."""

    module: str  # go.mod version of sigs.k8s.io/network-policy-api
    crds: tuple[tuple[str, str], ...]  # (plural, git ref)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(POLICY_API_KINDS[plural] for plural, _ in self.crds)

    def urls(self) -> list[str]:
        return [f"{POLICY_API_REPO}/{ref}/config/crd/experimental/policy.networking.k8s.io_{plural}.yaml"
                for plural, ref in self.crds]


@dataclass(frozen=True)
class VersionEntry:
    version: str
    profile: str
    kind: str
    node_image: str
    kubectl: str
    chart_version: str
    install: str
    install_sh_url: str = ""
    image_repository: str = "docker.io/kubeovn/kube-ovn"
    policy_api: PolicyApi | None = None  # None: the line has no cluster-scoped policies

    @property
    def line(self) -> str:
        """Release line, e.g. 'v1.16' (the key of clusters/chart-keys.yaml)."""
        return ".".join(self.version.split(".")[:2])

    @property
    def image(self) -> str:
        return f"{self.image_repository}:{self.version}"

    @property
    def k8s_version(self) -> str:
        return self.node_image.split(":", 1)[1].split("@", 1)[0]


@dataclass(frozen=True)
class Matrix:
    default: str
    helm_repo: str
    chart: str
    tools: dict[str, dict[str, str]]
    versions: dict[str, VersionEntry]
    # The history corpus (clusters/kube-ovn-history.yaml when None): its pre-fix and fixed
    # tags are versions too, each derived from its release line's row (clusters/history.py).
    corpus: Path | None = None

    def entry(self, version: str) -> VersionEntry:
        if version in self.versions:
            return self.versions[version]
        from kubeovn_conformance.clusters.history import history_tags

        tags = history_tags(self, self.corpus)
        if version in tags:
            return tags[version]
        known = ", ".join(self.versions)
        raise ClusterError(f"unknown Kube-OVN version {version!r}; known: {known}; "
                           f"history tags: {', '.join(sorted(tags)) or 'none'}")


_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")
_DIGEST_RE = re.compile(r"^kindest/node:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")
_REQUIRED = ("profile", "kind", "node_image", "kubectl", "chart_version", "install")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ClusterError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    return mode


def load_matrix(path: Path | None = None) -> Matrix:
    path = path or MATRIX_FILE
    try:
        data = yaml.safe_load(read_text(path))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ClusterError(f"{path}: cannot read the version matrix: {e}".splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
        raise ClusterError(f"{path}: no 'versions' mapping")
    repo = data.get("image_repository", "docker.io/kubeovn/kube-ovn")
    policy_api = _policy_api(data.get("policy_api") or {}, path)
    versions: dict[str, VersionEntry] = {}
    for ver, row in data["versions"].items():
        where = f"{path}: versions.{ver}"
        if not _VERSION_RE.match(str(ver)):
            raise ClusterError(f"{where}: version must look like v1.16.2")
        if not isinstance(row, dict):
            raise ClusterError(f"{where}: must be a mapping")
        missing = [k for k in _REQUIRED if not row.get(k)]
        if missing:
            raise ClusterError(f"{where}: missing {', '.join(missing)}")
        unknown = set(row) - set(_REQUIRED) - {"install_sh_url"}
        if unknown:
            raise ClusterError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        if row["install"] not in ("helm", "install.sh"):
            raise ClusterError(f"{where}: install must be helm or install.sh")
        if row["install"] == "install.sh" and not row.get("install_sh_url"):
            raise ClusterError(f"{where}: install.sh needs install_sh_url")
        if not _DIGEST_RE.match(row["node_image"]):
            raise ClusterError(f"{where}: node_image must be kindest/node:vX.Y.Z[@sha256:...]")
        line = ".".join(str(ver).split(".")[:2])
        versions[ver] = VersionEntry(version=ver, image_repository=repo,
                                     policy_api=policy_api.get(line), **row)
    default = data.get("default")
    if default not in versions:
        raise ClusterError(f"{path}: default {default!r} is not a listed version")
    return Matrix(
        default=default,
        helm_repo=data.get("helm_repo", ""),
        chart=data.get("chart", "kube-ovn"),
        tools=data.get("tools", {}),
        versions=versions,
    )


def _policy_api(raw: Any, path: Path) -> dict[str, PolicyApi]:
    if not isinstance(raw, dict):
        raise ClusterError(f"{path}: policy_api must be a mapping of release lines")
    out: dict[str, PolicyApi] = {}
    for line, row in raw.items():
        where = f"{path}: policy_api.{line}"
        if not isinstance(row, dict) or not row.get("module") or not isinstance(row.get("crds"), dict):
            raise ClusterError(f"{where}: needs module and a crds mapping")
        unknown = set(row["crds"]) - set(POLICY_API_KINDS)
        if unknown:
            raise ClusterError(f"{where}: unknown CRD {', '.join(sorted(unknown))}; "
                               f"known: {', '.join(POLICY_API_KINDS)}")
        out[str(line)] = PolicyApi(str(row["module"]), tuple((k, str(v)) for k, v in row["crds"].items()))
    return out


def load_chart_keys(path: Path | None = None) -> dict[str, Any]:
    path = path or CHART_KEYS_FILE
    try:
        data = yaml.safe_load(read_text(path))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ClusterError(f"{path}: cannot read the chart keys: {e}".splitlines()[0]) from None
    return {
        "helm": {line: set(v["keys"]) for line, v in data.get("helm", {}).items()},
        "install_sh": {
            line: {"assignments": set(v["assignments"]), "env": set(v["env"])}
            for line, v in data.get("install_sh", {}).items()
        },
    }



def check_vlan_id(vlan_id: int) -> int:
    if not 0 <= vlan_id <= 4094:
        raise ClusterError(f"VLAN id {vlan_id} out of range 0-4094")
    return vlan_id

