"""Kind clusters with Kube-OVN: the version matrix, rendered configs, and the cluster-up plan.

Facts come from clusters/versions.yaml (which Kube-OVN release runs on which kind and node
image, installed how) and clusters/chart-keys.yaml (which values keys each chart line has).
Everything here is pure and offline except `run_up`, which executes a plan with argument
lists (never a shell), and `network-facts`, which reads `docker network inspect`.

CLI (the scripts in scripts/ call it; see `python -m kubeovn_conformance.clusters -h`):

    up MODE VERSION [--name N] [--vlan-id N] [--vlan-cidr C] [--dry-run [--network-json F]]
    plan MODE VERSION ...                 same as `up --dry-run`
    render-kind MODE VERSION [-o FILE]
    render-values MODE VERSION [--network-json F | --docker-network NAME] [--vlan-id N]
    render-install-sh MODE VERSION --script FILE -o FILE [...]
    render-objects underlay VERSION --network-json F [--vlan-id N]
    render-record MODE VERSION [-o FILE]
    network-facts NAME -o FILE            save `docker network inspect NAME`
    fetch-tool VERSION TOOL / tool-path VERSION TOOL
    matrix                                {"include": [...]} for a GitHub Actions matrix
    default / tools VERSION / image VERSION / failing-probes RESULTS.jsonl

Errors are one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MODES = ("overlay", "underlay")
REPO_ROOT = Path(__file__).resolve().parent.parent
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
PY = ("python", "-m", "kubeovn_conformance.clusters")

# Runs inside a privileged host-network container from the Kube-OVN image, as Kube-OVN's
# Makefile does for its kind bridge: hairpin off on the kind bridge ports (an underlay frame
# must not be reflected back to the node that sent it); VLAN 0 means filtering off; a tagged
# VLAN is allowed on every port and on the bridge itself, and the gateway address of the
# tagged subnet lives on a VLAN interface of the bridge (node traffic stays untagged, VLAN 1).
# DOCKER-USER accepts let tagged pods open connections to the nodes (docker drops new
# connections into its bridges otherwise). Arguments: $1 bridge, $2 vlan id, $3 gateway/prefix,
# $4 vlan interface name.
BRIDGE_SETUP_SCRIPT = (
    'br="$1"; vid="$2"; gw="$3"; vif="$4"; '
    'for p in /sys/class/net/"$br"/brif/*; do echo 0 > "$p/hairpin_mode"; done; '
    'if [ "$vid" = 0 ]; then echo 0 > /sys/class/net/"$br"/bridge/vlan_filtering; exit 0; fi; '
    'echo 1 > /sys/class/net/"$br"/bridge/vlan_filtering; '
    'bridge vlan add vid "$vid" dev "$br" self; '
    'for p in /sys/class/net/"$br"/brif/*; do bridge vlan add vid "$vid" dev "${p##*/}"; done; '
    'ip link show "$vif" >/dev/null 2>&1 || ip link add link "$br" name "$vif" type vlan id "$vid"; '
    'ip addr replace "$gw" dev "$vif"; ip link set "$vif" up; '
    'for d in -i -o; do iptables -C DOCKER-USER "$d" "$vif" -j ACCEPT 2>/dev/null '
    '|| iptables -I DOCKER-USER "$d" "$vif" -j ACCEPT; done'
)


class ClusterError(Exception):
    """A user or data error: printed as one line, exit status 2."""


# ---------------------------------------------------------------- matrix


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

    def entry(self, version: str) -> VersionEntry:
        try:
            return self.versions[version]
        except KeyError:
            known = ", ".join(self.versions)
            raise ClusterError(f"unknown Kube-OVN version {version!r}; known: {known}") from None


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
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ClusterError(f"{path}: cannot read the version matrix: {e}".splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
        raise ClusterError(f"{path}: no 'versions' mapping")
    repo = data.get("image_repository", "docker.io/kubeovn/kube-ovn")
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
        versions[ver] = VersionEntry(version=ver, image_repository=repo, **row)
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


def load_chart_keys(path: Path | None = None) -> dict[str, Any]:
    path = path or CHART_KEYS_FILE
    data = yaml.safe_load(path.read_text())
    return {
        "helm": {line: set(v["keys"]) for line, v in data.get("helm", {}).items()},
        "install_sh": {
            line: {"assignments": set(v["assignments"]), "env": set(v["env"])}
            for line, v in data.get("install_sh", {}).items()
        },
    }


def tool_urls(matrix: Matrix, entry: VersionEntry, arch: str) -> dict[str, tuple[str, str, str]]:
    """name -> (version, url, checksum url) for kind, kubectl and helm of this row."""
    if arch not in ("amd64", "arm64"):
        raise ClusterError(f"unsupported architecture {arch!r}; known: amd64, arm64")
    versions = {
        "kind": entry.kind,
        "kubectl": entry.kubectl,
        "helm": matrix.tools.get("helm", {}).get("version", ""),
    }
    out = {}
    for name, ver in versions.items():
        spec = matrix.tools.get(name)
        if not spec or not ver:
            raise ClusterError(f"versions.yaml: tools.{name} is incomplete")
        out[name] = (
            ver,
            spec["url"].format(version=ver, arch=arch),
            spec["checksum_url"].format(version=ver, arch=arch),
        )
    return out


KUBECTL_KO_URL = "https://raw.githubusercontent.com/kubeovn/kube-ovn/{version}/dist/images/kubectl-ko"


def host_arch() -> str:
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        raise ClusterError(f"unsupported machine {machine!r}; kind, kubectl and helm: amd64, arm64")
    return arch


def default_bin_dir() -> Path:
    return Path(os.environ.get("KOC_BIN_DIR") or REPO_ROOT / ".bin").resolve()


def tool_path(bin_dir: Path, name: str, version: str) -> Path:
    # One directory per tool version: rows of the matrix need different kind/kubectl versions.
    return bin_dir / f"{name}-{version}" / name


def _download(url: str, dest: Path) -> None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=120) as r, dest.open("wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as e:
        raise ClusterError(f"download failed: {url}: {e}") from None


def fetch_tool(name: str, version: str, url: str, checksum_url: str | None, dest: Path) -> None:
    """Download a tool and check it against the checksum file published next to it (kind:
    .sha256sum, kubectl: .sha256, helm: <tarball>.sha256sum; first field is the hex digest)."""
    import hashlib
    import tarfile
    import tempfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        art = Path(tmp) / url.rsplit("/", 1)[1]
        _download(url, art)
        if checksum_url:
            sums = Path(tmp) / "checksum"
            _download(checksum_url, sums)
            fields = sums.read_text().split()
            want = fields[0].lower() if fields else ""
            got = hashlib.sha256(art.read_bytes()).hexdigest()
            if not re.fullmatch(r"[0-9a-f]{64}", want) or got != want:
                raise ClusterError(f"{name} {version}: sha256 {got} does not match {checksum_url}")
        if art.name.endswith(".tar.gz"):
            with tarfile.open(art) as tar:
                member = next(
                    (m for m in tar.getmembers() if m.isfile() and m.name.rsplit("/", 1)[-1] == name), None
                )
                if member is None:
                    raise ClusterError(f"{url}: no {name} inside")
                src = tar.extractfile(member)
                assert src is not None
                art = Path(tmp) / f"{name}.bin"
                art.write_bytes(src.read())
        art.chmod(0o755)
        art.replace(dest)


def tool_steps(matrix: Matrix, entry: VersionEntry, arch: str, bin_dir: Path) -> list[Step]:
    """Fetch steps for the tools of this row that are not in bin_dir yet."""
    steps = []
    for name, (ver, url, sums) in tool_urls(matrix, entry, arch).items():
        dest = tool_path(bin_dir, name, ver)
        if dest.is_file() and os.access(dest, os.X_OK):
            continue
        steps.append(
            Step(
                [*PY, "fetch-tool", entry.version, name, "--arch", arch, "--bin-dir", _rel(bin_dir)],
                action=lambda n=name, v=ver, u=url, c=sums, d=dest: fetch_tool(n, v, u, c, d),
            )
        )
    return steps


def tool_dirs(matrix: Matrix, entry: VersionEntry, arch: str, bin_dir: Path) -> list[Path]:
    return [tool_path(bin_dir, n, v).parent for n, (v, _, _) in tool_urls(matrix, entry, arch).items()]


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- docker network facts


@dataclass(frozen=True)
class NetworkFacts:
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    container_ips: tuple[str, ...]
    bridge: str


def parse_docker_network(data: Any, source: str = "docker network inspect") -> NetworkFacts:
    """Facts of the kind network from `docker network inspect` JSON (a list of one object)."""
    if isinstance(data, list):
        if len(data) != 1:
            raise ClusterError(f"{source}: expected one network, got {len(data)}")
        data = data[0]
    if not isinstance(data, dict):
        raise ClusterError(f"{source}: not a docker network object")
    configs = (data.get("IPAM") or {}).get("Config") or []
    v4 = [c for c in configs if ":" not in c.get("Subnet", ":")]
    if not v4:
        raise ClusterError(f"{source}: network {data.get('Name')!r} has no IPv4 subnet")
    try:
        subnet = ipaddress.IPv4Network(v4[0]["Subnet"])
        gateway = ipaddress.IPv4Address(v4[0]["Gateway"]) if v4[0].get("Gateway") else subnet[1]
    except (ValueError, KeyError) as e:
        raise ClusterError(f"{source}: bad IPAM config: {e}") from None
    ips = []
    for c in (data.get("Containers") or {}).values():
        addr = (c or {}).get("IPv4Address", "")
        if addr:
            ips.append(addr.split("/", 1)[0])
    ips.sort(key=ipaddress.IPv4Address)
    options = data.get("Options") or {}
    if options.get("com.docker.network.bridge.default_bridge") == "true":
        bridge = "docker0"
    else:
        bridge = options.get("com.docker.network.bridge.name") or f"br-{data.get('Id', '')[:12]}"
    return NetworkFacts(
        name=data.get("Name", ""),
        subnet=subnet,
        gateway=gateway,
        container_ips=tuple(ips),
        bridge=bridge,
    )


def load_network_json(path: Path) -> NetworkFacts:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ClusterError(f"{path}: cannot read docker network JSON: {e}") from None
    return parse_docker_network(data, str(path))


def inspect_docker_network(name: str) -> Any:
    try:
        out = subprocess.run(
            ["docker", "network", "inspect", name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except FileNotFoundError:
        raise ClusterError("docker not found in PATH") from None
    except subprocess.CalledProcessError as e:
        msg = (e.stderr or "").strip().splitlines()
        raise ClusterError(
            f"docker network inspect {name} failed: {msg[0] if msg else e.returncode}"
        ) from None
    return json.loads(out)


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True)
class UnderlayAddressing:
    cidr: str
    gateway: str
    exclude_ips: tuple[str, ...]
    vlan_id: int


def check_vlan_id(vlan_id: int) -> int:
    if not 0 <= vlan_id <= 4094:
        raise ClusterError(f"VLAN id {vlan_id} out of range 0-4094")
    return vlan_id


def vlan_interface(vlan_id: int) -> str:
    # Linux caps interface names at 15 characters: "br-<12 hex>.<id>" would not fit.
    return f"kind-vlan{vlan_id}"


def underlay_addressing(
    net: NetworkFacts, vlan_id: int = 0, vlan_cidr: str = DEFAULT_VLAN_CIDR
) -> UnderlayAddressing:
    """Untagged: the kind network is the physical one (its subnet, its gateway, and every
    container's IP excluded so pods never take a node's address). Tagged: a subnet of its own."""
    check_vlan_id(vlan_id)
    if vlan_id == 0:
        return UnderlayAddressing(str(net.subnet), str(net.gateway), net.container_ips, 0)
    try:
        cidr = ipaddress.IPv4Network(vlan_cidr)
    except ValueError as e:
        raise ClusterError(f"bad --vlan-cidr {vlan_cidr!r}: {e}") from None
    for other in (net.subnet, ipaddress.IPv4Network(POD_SUBNET), ipaddress.IPv4Network(SERVICE_SUBNET)):
        if cidr.overlaps(other):
            raise ClusterError(f"--vlan-cidr {cidr} overlaps {other}")
    return UnderlayAddressing(str(cidr), str(cidr[1]), (), vlan_id)


def render_kind_config(entry: VersionEntry) -> dict[str, Any]:
    node = {"image": entry.node_image}
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {
            # Kube-OVN is the CNI: kind's kindnet must not be installed.
            "disableDefaultCNI": True,
            "kubeProxyMode": KUBE_PROXY_MODE,
            "ipFamily": "ipv4",
            "podSubnet": POD_SUBNET,
            "serviceSubnet": SERVICE_SUBNET,
        },
        "nodes": [{"role": "control-plane", **node}, {"role": "worker", **node}],
    }


def _has_np_enforcement(keys: set[str]) -> bool:
    return "func.NP_ENFORCEMENT" in keys


def render_values(
    mode: str,
    entry: VersionEntry,
    net: NetworkFacts | None = None,
    *,
    vlan_id: int = 0,
    vlan_cidr: str = DEFAULT_VLAN_CIDR,
    chart_keys: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Helm values (chart kube-ovn, v1) for MODE on this row."""
    check_mode(mode)
    keys = (chart_keys or load_chart_keys())["helm"].get(entry.line, set())
    func: dict[str, Any] = {"ENABLE_LB": True, "ENABLE_NP": True}
    if _has_np_enforcement(keys):
        func["NP_ENFORCEMENT"] = "standard"
    values: dict[str, Any] = {
        "MASTER_NODES_LABEL": "kube-ovn/role=master",
        "networking": {"NET_STACK": "ipv4", "NETWORK_TYPE": "geneve"},
        "func": func,
        "ipv4": {"POD_CIDR": POD_SUBNET, "POD_GATEWAY": POD_GATEWAY, "SVC_CIDR": SERVICE_SUBNET},
    }
    if mode == "underlay":
        if net is None:
            raise ClusterError("underlay values need the docker network facts (--network-json)")
        a = underlay_addressing(net, vlan_id, vlan_cidr)
        values["networking"] = {
            "NET_STACK": "ipv4",
            "NETWORK_TYPE": "vlan",
            "EXCLUDE_IPS": ",".join(a.exclude_ips),
            "vlan": {
                "PROVIDER_NAME": PROVIDER_NAME,
                "VLAN_INTERFACE_NAME": VLAN_NIC,
                "VLAN_NAME": VLAN_NAME,
                # The chart's default is a string ("100").
                "VLAN_ID": str(a.vlan_id),
            },
        }
        values["ipv4"] = {"POD_CIDR": a.cidr, "POD_GATEWAY": a.gateway, "SVC_CIDR": SERVICE_SUBNET}
    return values


def render_install_sh_settings(
    mode: str,
    entry: VersionEntry,
    net: NetworkFacts | None = None,
    *,
    vlan_id: int = 0,
    vlan_cidr: str = DEFAULT_VLAN_CIDR,
) -> dict[str, dict[str, str]]:
    """install.sh rows: plain assignments to rewrite in the script, and environment."""
    check_mode(mode)
    env = {"ENABLE_LB": "true", "ENABLE_NP": "true"}
    assignments: dict[str, str] = {}
    if mode == "underlay":
        if net is None:
            raise ClusterError("underlay settings need the docker network facts (--network-json)")
        a = underlay_addressing(net, vlan_id, vlan_cidr)
        assignments = {
            "POD_CIDR": a.cidr,
            "POD_GATEWAY": a.gateway,
            "EXCLUDE_IPS": ",".join(a.exclude_ips),
            "VLAN_ID": str(a.vlan_id),
        }
        env |= {"ENABLE_VLAN": "true", "VLAN_NIC": VLAN_NIC}
    return {"assignments": assignments, "env": env}


def patch_install_sh(text: str, assignments: dict[str, str], ko_path: str | None = None) -> str:
    """Rewrite `NAME=...` assignment lines; every name must be found. With ko_path, the
    kubectl-ko plugin the script writes goes there instead of /usr/local/bin (root only)."""
    if ko_path:
        text = text.replace("/usr/local/bin/kubectl-ko", ko_path)
    for name, value in assignments.items():
        pattern = re.compile(rf"^(\s*){re.escape(name)}=.*$", re.MULTILINE)
        text, n = pattern.subn(lambda m, v=value, k=name: f'{m.group(1)}{k}="{v}"', text)
        if n == 0:
            raise ClusterError(f"install.sh has no assignment {name}=: the script changed")
    return text


def underlay_objects(
    entry: VersionEntry, net: NetworkFacts, *, vlan_id: int = 0, vlan_cidr: str = DEFAULT_VLAN_CIDR
) -> list[dict[str, Any]]:
    """The ProviderNetwork, Vlan and default Subnet the install creates for underlay: the
    controller makes them from the values; we render them to check the install against."""
    a = underlay_addressing(net, vlan_id, vlan_cidr)
    meta = lambda name: {"name": name}  # noqa: E731
    subnet_spec: dict[str, Any] = {
        "cidrBlock": a.cidr,
        "gateway": a.gateway,
        "protocol": "IPv4",
        "vlan": VLAN_NAME,
        "enableLb": True,
        "default": True,
    }
    if a.exclude_ips:
        subnet_spec["excludeIps"] = list(a.exclude_ips)
    return [
        {
            "apiVersion": "kubeovn.io/v1",
            "kind": "ProviderNetwork",
            "metadata": meta(PROVIDER_NAME),
            "spec": {"defaultInterface": VLAN_NIC},
        },
        {
            "apiVersion": "kubeovn.io/v1",
            "kind": "Vlan",
            "metadata": meta(VLAN_NAME),
            "spec": {"id": a.vlan_id, "provider": PROVIDER_NAME},
        },
        {
            "apiVersion": "kubeovn.io/v1",
            "kind": "Subnet",
            "metadata": meta(DEFAULT_SUBNET),
            "spec": subnet_spec,
        },
    ]


def flatten_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in values.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten_keys(v, path + ".")
        else:
            out.add(path)
    return out


def record_manifest(mode: str, entry: VersionEntry, vlan_id: int) -> dict[str, Any]:
    """ConfigMap that tells a later cluster-up what this cluster was built as."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": RECORD_CONFIGMAP, "namespace": NAMESPACE},
        "data": {"mode": mode, "version": entry.version, "vlan-id": str(vlan_id)},
    }


def dump_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------- plan


@dataclass
class Step:
    """One command. `action`, when set, is done in-process instead of running argv (argv is
    then the equivalent CLI call, which is what --dry-run prints)."""

    argv: list[str]
    allow_fail: bool = False
    action: Callable[[], None] | None = field(default=None, repr=False)

    def display(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class Options:
    mode: str
    version: str
    name: str = DEFAULT_CLUSTER_NAME
    vlan_id: int = 0
    vlan_cidr: str = DEFAULT_VLAN_CIDR
    bin_dir: Path = field(default_factory=default_bin_dir)

    @property
    def workdir(self) -> str:
        # Relative to the repository root, where every step runs: printed plans stay readable.
        return f".cache/kind/{self.name}"

    @property
    def kubeconfig(self) -> str:
        return f"{self.workdir}/kubeconfig"


def _write(path: str, text: str) -> Callable[[], None]:
    def act() -> None:
        p = REPO_ROOT / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return act


def _vlan_args(o: Options) -> list[str]:
    if o.vlan_id == 0:
        return []
    return ["--vlan-id", str(o.vlan_id), "--vlan-cidr", o.vlan_cidr]


def create_steps(matrix: Matrix, o: Options) -> list[Step]:
    """Cluster creation up to the loaded image: needs no network facts."""
    entry = matrix.entry(o.version)
    kc = o.kubeconfig
    cfg = f"{o.workdir}/kind-config.yaml"
    cp = "node-role.kubernetes.io/control-plane"
    return [
        Step(
            [*PY, "render-kind", o.mode, o.version, "-o", cfg],
            action=_write(cfg, dump_yaml(render_kind_config(entry))),
        ),
        # No --wait: nodes stay NotReady until a CNI runs, so kind would wait forever.
        Step(["kind", "create", "cluster", "--name", o.name, "--config", cfg, "--kubeconfig", kc]),
        Step(
            ["kubectl", "--kubeconfig", kc, "label", "nodes", "-l", cp, "kube-ovn/role=master", "--overwrite"]
        ),
        # Kube-OVN's CI untaints the control plane so test pods land on both nodes; the
        # taint may already be gone (kubectl then fails with "not found"), hence allow_fail.
        Step(
            ["kubectl", "--kubeconfig", kc, "taint", "nodes", "-l", cp, f"{cp}:NoSchedule-"], allow_fail=True
        ),
        Step(["docker", "pull", entry.image]),
        Step(["kind", "load", "docker-image", "--name", o.name, entry.image]),
    ]


def _ready_checks(kc: str, timeout: str) -> tuple[list[str], list[str]]:
    """What "healthy" means, for the install's waits and for reusing a cluster alike:
    every node Ready, and Kube-OVN's default subnet Ready."""
    wait = ["kubectl", "--kubeconfig", kc, "wait", "--for=condition=Ready"]
    return ([*wait, "nodes", "--all", f"--timeout={timeout}"],
            [*wait, f"subnet/{DEFAULT_SUBNET}", f"--timeout={timeout}"])


def install_steps(
    matrix: Matrix, o: Options, net: NetworkFacts | None, chart_keys: dict[str, Any] | None = None
) -> list[Step]:
    """From network facts to a ready, recorded cluster."""
    entry = matrix.entry(o.version)
    kc = o.kubeconfig
    netjson = f"{o.workdir}/network.json"
    steps: list[Step] = []
    if o.mode == "underlay":
        if net is None:
            raise ClusterError("underlay needs the docker network facts")
        steps.append(Step([*PY, "network-facts", DOCKER_NETWORK, "-o", netjson]))
        a = underlay_addressing(net, o.vlan_id, o.vlan_cidr)
        prefix = ipaddress.IPv4Network(a.cidr).prefixlen
        steps.append(
            Step(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--privileged",
                    "--network=host",
                    entry.image,
                    "bash",
                    "-ec",
                    BRIDGE_SETUP_SCRIPT,
                    "bridge-setup",
                    net.bridge,
                    str(o.vlan_id),
                    f"{a.gateway}/{prefix}",
                    vlan_interface(o.vlan_id),
                ]
            )
        )
    net_args = ["--network-json", netjson] if o.mode == "underlay" else []
    if entry.install == "helm":
        vals = f"{o.workdir}/values.yaml"
        values = render_values(
            o.mode, entry, net, vlan_id=o.vlan_id, vlan_cidr=o.vlan_cidr, chart_keys=chart_keys
        )
        steps += [
            Step(
                [*PY, "render-values", o.mode, o.version, *net_args, *_vlan_args(o), "-o", vals],
                action=_write(vals, dump_yaml(values)),
            ),
            # upgrade --install: a half-installed release from an interrupted run is fixed,
            # not an error. No --wait: we wait on the workloads ourselves, with clear names.
            Step(
                [
                    "helm",
                    "upgrade",
                    "--install",
                    HELM_RELEASE,
                    matrix.chart,
                    "--repo",
                    matrix.helm_repo,
                    "--version",
                    entry.chart_version,
                    "--namespace",
                    NAMESPACE,
                    "--kubeconfig",
                    kc,
                    "-f",
                    vals,
                ]
            ),
        ]
    else:
        script = f"{o.workdir}/install.sh"
        patched = f"{o.workdir}/install-patched.sh"
        settings = render_install_sh_settings(o.mode, entry, net, vlan_id=o.vlan_id, vlan_cidr=o.vlan_cidr)

        ko = tool_path(o.bin_dir, "kubectl-ko", entry.version)

        def patch() -> None:
            text = (REPO_ROOT / script).read_text()
            ko.parent.mkdir(parents=True, exist_ok=True)
            _write(patched, patch_install_sh(text, settings["assignments"], str(ko.resolve())))()

        env = [f"{k}={v}" for k, v in sorted(settings["env"].items())]
        steps += [
            Step(["curl", "-fsSL", "--retry", "3", "-o", script, entry.install_sh_url]),
            Step(
                [
                    *PY,
                    "render-install-sh",
                    o.mode,
                    o.version,
                    *net_args,
                    *_vlan_args(o),
                    "--script",
                    script,
                    "--bin-dir",
                    _rel(o.bin_dir),
                    "-o",
                    patched,
                ],
                action=patch,
            ),
            # Absolute: the script may change directory; kubectl-ko must be found on PATH.
            Step(["env", *env, f"KUBECONFIG={REPO_ROOT / kc}", "bash", patched]),
        ]
    nodes_ready, subnet_ready = _ready_checks(kc, WAIT_TIMEOUT)
    steps.append(Step(nodes_ready))
    steps += [
        Step(["kubectl", "--kubeconfig", kc, "-n", NAMESPACE, "rollout", "status", w,
              f"--timeout={WAIT_TIMEOUT}"])
        for w in ROLLOUTS
    ]
    steps.append(Step(subnet_ready))
    rec = f"{o.workdir}/cluster-record.yaml"
    steps += [
        Step(
            [*PY, "render-record", o.mode, o.version, *_vlan_args(o), "-o", rec],
            action=_write(rec, dump_yaml(record_manifest(o.mode, entry, o.vlan_id))),
        ),
        Step(["kubectl", "--kubeconfig", kc, "apply", "-f", rec]),
    ]
    return steps


def plan(matrix: Matrix, o: Options, net: NetworkFacts | None) -> list[Step]:
    _check_options(matrix, o)
    return create_steps(matrix, o) + install_steps(matrix, o, net)


# ---------------------------------------------------------------- execution


def _run(step: Step) -> None:
    print(f"+ {step.display()}", file=sys.stderr, flush=True)
    if step.action is not None:
        step.action()
        return
    try:
        rc = subprocess.run(step.argv, cwd=REPO_ROOT, check=False).returncode
    except FileNotFoundError:
        raise ClusterError(f"{step.argv[0]}: command not found (run scripts/cluster-up)") from None
    if rc != 0 and not step.allow_fail:
        raise ClusterError(f"command failed with status {rc}: {step.display()}")


def _quiet(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def existing_cluster_state(o: Options) -> str:
    """'absent', 'match' (healthy, same mode/version/vlan), or a reason to recreate."""
    try:
        names = _quiet(["kind", "get", "clusters"]).stdout.split()
    except FileNotFoundError:
        raise ClusterError("kind: command not found (run scripts/cluster-up)") from None
    if o.name not in names:
        return "absent"
    kc = o.kubeconfig
    (REPO_ROOT / o.workdir).mkdir(parents=True, exist_ok=True)
    if _quiet(["kind", "export", "kubeconfig", "--name", o.name, "--kubeconfig", kc]).returncode:
        return "cannot export its kubeconfig"
    got = _quiet(
        ["kubectl", "--kubeconfig", kc, "-n", NAMESPACE, "get", "configmap", RECORD_CONFIGMAP, "-o", "json"]
    )
    if got.returncode:
        return "it has no record of mode and version (never finished an install)"
    try:
        data = json.loads(got.stdout).get("data") or {}
    except (ValueError, AttributeError):
        return "its record is unreadable"
    want = {"mode": o.mode, "version": o.version, "vlan-id": str(o.vlan_id)}
    if {k: data.get(k) for k in want} != want:
        return f"it was built as {data}, not {want}"
    for check in _ready_checks(kc, "60s"):
        if _quiet(check).returncode:
            return "it is not healthy (" + " ".join(check[3:5]) + ")"
    return "match"


def _check_options(matrix: Matrix, o: Options) -> None:
    check_mode(o.mode)
    matrix.entry(o.version)
    check_vlan_id(o.vlan_id)
    if o.mode == "overlay" and o.vlan_id:
        raise ClusterError("--vlan-id applies to underlay only")


def run_up(
    matrix: Matrix,
    o: Options,
    *,
    dry_run: bool,
    network_json: Path | None,
    bin_dir: Path | None = None,
    arch: str | None = None,
) -> int:
    _check_options(matrix, o)
    entry = matrix.entry(o.version)
    bin_dir = bin_dir or o.bin_dir
    arch = arch or host_arch()
    fetch = tool_steps(matrix, entry, arch, bin_dir)
    if dry_run:
        # The plan of a fresh create; whether an existing cluster is reused is decided at run
        # time (see existing_cluster_state), which a dry run does not ask.
        net = _dry_facts(network_json) if o.mode == "underlay" else None
        for step in fetch + plan(matrix, o, net):
            print(step.display())
        return 0
    if network_json is not None:
        raise ClusterError("--network-json is for --dry-run only: a real run reads the live network")
    for step in fetch:
        _run(step)
    # The row's kind/kubectl and helm come first on PATH for every step (install.sh included).
    dirs = [str(d) for d in tool_dirs(matrix, entry, arch, bin_dir)]
    dirs.append(str(tool_path(bin_dir, "kubectl-ko", entry.version).parent))  # install.sh's plugin
    os.environ["PATH"] = os.pathsep.join([*dirs, os.environ.get("PATH", "")])
    state = existing_cluster_state(o)
    if state == "match":
        print(f"reusing healthy cluster {o.name!r} ({o.mode}, {o.version})", file=sys.stderr)
        return 0
    if state != "absent":
        print(f"recreating cluster {o.name!r}: {state}", file=sys.stderr)
        _run(Step(["kind", "delete", "cluster", "--name", o.name]))
    for step in create_steps(matrix, o):
        _run(step)
    net = None
    if o.mode == "underlay":
        raw = inspect_docker_network(DOCKER_NETWORK)
        (REPO_ROOT / o.workdir / "network.json").write_text(json.dumps(raw, indent=1))
        net = parse_docker_network(raw)
    for step in install_steps(matrix, o, net):
        if step.argv[len(PY) : len(PY) + 1] == ["network-facts"]:
            continue  # done just above: these steps were built from those facts
        _run(step)
    print(f"cluster {o.name!r} ready: KUBECONFIG={REPO_ROOT / o.kubeconfig}", file=sys.stderr)
    return 0


def _dry_facts(network_json: Path | None) -> NetworkFacts:
    if network_json is not None:
        return load_network_json(network_json)
    # Reading the network changes nothing; it exists only if some kind cluster ran before.
    try:
        return parse_docker_network(inspect_docker_network(DOCKER_NETWORK))
    except ClusterError as e:
        raise ClusterError(
            f"underlay --dry-run needs the kind network ({e}): pass --network-json FILE"
        ) from None


# ---------------------------------------------------------------- diagnostics


def failing_probes(path: Path, limit: int = 20) -> list[tuple[str, str, str, str]]:
    """(client, target, port, protocol) of failed probes in a results.jsonl, deduplicated and
    capped: one `kubectl ko trace` each takes seconds. Bad lines are skipped, not fatal."""
    seen: dict[tuple[str, str, str, str], None] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise ClusterError(f"{path}: {e.strerror}") from None
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or rec.get("outcome") not in ("fail", "infra-error"):
            continue
        try:
            key = (
                str(rec["client"]),
                str(rec["target"]),
                str(int(rec["port"])),
                str(rec.get("protocol", "TCP")).lower(),
            )
        except (KeyError, TypeError, ValueError):
            continue
        seen.setdefault(key, None)
        if len(seen) >= limit:
            break
    return list(seen)


# ---------------------------------------------------------------- CLI


def _facts_from_args(args: argparse.Namespace) -> NetworkFacts | None:
    if getattr(args, "network_json", None):
        return load_network_json(args.network_json)
    if getattr(args, "docker_network", None):
        return parse_docker_network(inspect_docker_network(args.docker_network))
    return None


def _emit(text: str, out: str | None) -> None:
    if out:
        p = Path(out)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    else:
        sys.stdout.write(text)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        mode=check_mode(args.mode),
        version=args.version,
        name=getattr(args, "name", None) or DEFAULT_CLUSTER_NAME,
        vlan_id=check_vlan_id(getattr(args, "vlan_id", 0) or 0),
        vlan_cidr=getattr(args, "vlan_cidr", None) or DEFAULT_VLAN_CIDR,
        bin_dir=getattr(args, "bin_dir", None) or default_bin_dir(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m kubeovn_conformance.clusters",
        description="Kind clusters with Kube-OVN for the conformance suite.",
    )
    p.add_argument("--matrix", type=Path, default=None, help="version matrix (clusters/versions.yaml)")
    sub = p.add_subparsers(dest="cmd", required=True)

    def mv(sp: argparse.ArgumentParser, net: bool = False, vlan: bool = False) -> None:
        sp.add_argument("mode")
        sp.add_argument("version")
        if net:
            g = sp.add_mutually_exclusive_group()
            g.add_argument("--network-json", type=Path, help="saved `docker network inspect kind`")
            g.add_argument("--docker-network", help="docker network to inspect (e.g. kind)")
        if vlan:
            sp.add_argument("--vlan-id", type=int, default=0, help="0 = untagged (default)")
            sp.add_argument(
                "--vlan-cidr", default=DEFAULT_VLAN_CIDR, help="subnet of a tagged VLAN, gateway on the host"
            )

    sp = sub.add_parser("render-kind", help="kind cluster config")
    mv(sp)
    sp.add_argument("-o", "--output")
    sp = sub.add_parser("render-values", help="Kube-OVN Helm values")
    mv(sp, net=True, vlan=True)
    sp.add_argument("-o", "--output")
    sp = sub.add_parser("render-install-sh", help="patched install.sh (install.sh rows)")
    mv(sp, net=True, vlan=True)
    sp.add_argument("--script", type=Path, required=True)
    sp.add_argument("--bin-dir", type=Path, default=None, help="where kubectl-ko goes (.bin)")
    sp.add_argument("-o", "--output", required=True)
    sp = sub.add_parser("render-objects", help="underlay ProviderNetwork/Vlan/Subnet expected")
    mv(sp, net=True, vlan=True)
    sp = sub.add_parser("render-record", help="ConfigMap recording mode and version")
    mv(sp, vlan=True)
    sp.add_argument("-o", "--output")
    sp = sub.add_parser("network-facts", help="save `docker network inspect NAME` as JSON")
    sp.add_argument("network")
    sp.add_argument("-o", "--output", required=True)
    for name in ("plan", "up"):
        sp = sub.add_parser(
            name, help="print the cluster-up plan" if name == "plan" else "create (or reuse) the cluster"
        )
        mv(sp, vlan=True)
        sp.add_argument("--name", default=DEFAULT_CLUSTER_NAME)
        sp.add_argument("--network-json", type=Path, help="dry-run: docker network facts")
        sp.add_argument("--bin-dir", type=Path, default=None, help="tool cache (.bin)")
        sp.add_argument("--arch", default=None, help="amd64 or arm64 (default: this machine)")
        if name == "up":
            sp.add_argument("--dry-run", action="store_true")
    sp = sub.add_parser("matrix", help="versions x modes (JSON for CI)")
    sp.add_argument("--format", choices=("json", "lines"), default="json")
    sp = sub.add_parser("tools", help="kind/kubectl/helm: name version url checksum-url")
    sp.add_argument("version")
    sp.add_argument("--arch", default="amd64")
    sp = sub.add_parser("fetch-tool", help="download a pinned tool into the bin dir, checked")
    sp.add_argument("version")
    sp.add_argument("tool", choices=("kind", "kubectl", "helm", "kubectl-ko"))
    sp.add_argument("--arch", default=None)
    sp.add_argument("--bin-dir", type=Path, default=None)
    sp = sub.add_parser("tool-path", help="where fetch-tool puts TOOL for VERSION")
    sp.add_argument("version")
    sp.add_argument("tool", choices=("kind", "kubectl", "helm", "kubectl-ko"))
    sp.add_argument("--bin-dir", type=Path, default=None)
    sp = sub.add_parser("failing-probes", help="client, target, port, protocol of failed probes")
    sp.add_argument("results", type=Path)
    sp.add_argument("--limit", type=int, default=20)
    sub.add_parser("default", help="the default Kube-OVN version of the matrix")
    sp = sub.add_parser("image", help="the Kube-OVN image of VERSION")
    sp.add_argument("version")

    args = p.parse_args(argv)
    try:
        matrix = load_matrix(args.matrix)
        return _dispatch(args, matrix)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file we write, a disk full: still one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, matrix: Matrix) -> int:
    cmd = args.cmd
    if cmd == "matrix":
        rows = [
            {"version": v, "mode": m, "profile": e.profile} for v, e in matrix.versions.items() for m in MODES
        ]
        if args.format == "json":
            # Only `include`: every key at the top level would become a matrix dimension.
            print(json.dumps({"include": rows}, separators=(",", ":")))
        else:
            for r in rows:
                print(r["version"], r["mode"])
        return 0
    if cmd == "tools":
        entry = matrix.entry(args.version)
        for name, (ver, url, sums) in tool_urls(matrix, entry, args.arch).items():
            print(name, ver, url, sums)
        return 0
    if cmd == "default":
        print(matrix.default)
        return 0
    if cmd == "image":
        print(matrix.entry(args.version).image)
        return 0
    if cmd == "failing-probes":
        for row in failing_probes(args.results, args.limit):
            print("\t".join(row))
        return 0
    if cmd in ("fetch-tool", "tool-path"):
        entry = matrix.entry(args.version)
        bin_dir = args.bin_dir or default_bin_dir()
        if args.tool == "kubectl-ko":
            # Not a release artifact: no checksum is published; the tag pins the content.
            ver, url, sums = entry.version, KUBECTL_KO_URL.format(version=entry.version), None
        else:
            arch = getattr(args, "arch", None) or host_arch()
            ver, url, sums = tool_urls(matrix, entry, arch)[args.tool]
        dest = tool_path(bin_dir, args.tool, ver)
        if cmd == "tool-path":
            print(dest)
        elif not dest.is_file():
            fetch_tool(args.tool, ver, url, sums, dest)
        return 0
    if cmd == "network-facts":
        raw = inspect_docker_network(args.network)
        parse_docker_network(raw)  # refuse to save something we cannot use
        _emit(json.dumps(raw, indent=1) + "\n", args.output)
        return 0
    entry = matrix.entry(args.version)
    check_mode(args.mode)
    if cmd == "render-kind":
        _emit(dump_yaml(render_kind_config(entry)), args.output)
        return 0
    if cmd == "render-record":
        _emit(dump_yaml(record_manifest(args.mode, entry, check_vlan_id(args.vlan_id))), args.output)
        return 0
    if cmd in ("render-values", "render-install-sh", "render-objects"):
        net = _facts_from_args(args)
        vid = check_vlan_id(args.vlan_id)
        if cmd == "render-values":
            if entry.install != "helm":
                raise ClusterError(f"{entry.version} installs with install.sh: use render-install-sh")
            _emit(
                dump_yaml(render_values(args.mode, entry, net, vlan_id=vid, vlan_cidr=args.vlan_cidr)),
                args.output,
            )
        elif cmd == "render-install-sh":
            s = render_install_sh_settings(args.mode, entry, net, vlan_id=vid, vlan_cidr=args.vlan_cidr)
            try:
                text = args.script.read_text()
            except OSError as e:
                raise ClusterError(f"{args.script}: {e.strerror}") from None
            ko = tool_path(args.bin_dir or default_bin_dir(), "kubectl-ko", entry.version)
            _emit(patch_install_sh(text, s["assignments"], str(ko.resolve())), args.output)
        else:
            if args.mode != "underlay" or net is None:
                raise ClusterError("render-objects is for underlay, with --network-json or --docker-network")
            _emit(
                yaml.safe_dump_all(
                    underlay_objects(entry, net, vlan_id=vid, vlan_cidr=args.vlan_cidr), sort_keys=False
                ),
                None,
            )
        return 0
    o = _options(args)
    if cmd in ("plan", "up"):
        return run_up(
            matrix,
            o,
            dry_run=cmd == "plan" or args.dry_run,
            network_json=args.network_json,
            bin_dir=args.bin_dir,
            arch=args.arch,
        )
    raise ClusterError(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main())
