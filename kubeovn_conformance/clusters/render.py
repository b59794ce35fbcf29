"""What the cluster is built from: kind config, Helm values, install.sh settings, the
underlay objects to expect, and the record ConfigMap. Pure and offline."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import yaml

from kubeovn_conformance.clusters.matrix import (
    DEFAULT_SUBNET,
    DEFAULT_VLAN_CIDR,
    KUBE_PROXY_MODE,
    NAMESPACE,
    POD_GATEWAY,
    POD_SUBNET,
    PROVIDER_NAME,
    RECORD_CONFIGMAP,
    SERVICE_SUBNET,
    VLAN_NAME,
    VLAN_NIC,
    ClusterError,
    VersionEntry,
    check_mode,
    check_vlan_id,
    load_chart_keys,
)
from kubeovn_conformance.clusters.network import NetworkFacts


@dataclass(frozen=True)
class UnderlayAddressing:
    cidr: str
    gateway: str
    exclude_ips: tuple[str, ...]
    vlan_id: int



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


# The kubeadm patches Kube-OVN's kind CI applies (yamls/kind.yaml.j2 at each tag, rewritten here,
# not copied): etcd's data directory /tmp/lib/etcd, a /24 per node for the pod CIDR, and from
# v1.14 the OwnerReferencesPermissionEnforcement admission plugin; nodes labelled type=kind.
ETCD_DATA_DIR_PATCH = (
    "kind: ClusterConfiguration\nmetadata:\n  name: config\n"
    "etcd:\n  local:\n    dataDir: /tmp/lib/etcd\n"
)
NODE_CIDR_PATCH = (
    "kind: ClusterConfiguration\ncontrollerManager:\n  extraArgs:\n"
    '    node-cidr-mask-size-ipv4: "24"\n'
)
ADMISSION_PATCH = (
    "kind: ClusterConfiguration\napiServer:\n  extraArgs:\n"
    "    enable-admission-plugins: OwnerReferencesPermissionEnforcement\n"
)
NODE_LABELS = {"type": "kind"}


def _line_at_least(entry: VersionEntry, line: str) -> bool:
    return tuple(int(x) for x in entry.line[1:].split(".")) >= tuple(int(x) for x in line[1:].split("."))


def render_kind_config(entry: VersionEntry) -> dict[str, Any]:
    node = {"image": entry.node_image, "labels": dict(NODE_LABELS)}
    cp_patches = [NODE_CIDR_PATCH]
    if _line_at_least(entry, "v1.14"):
        cp_patches.append(ADMISSION_PATCH)
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
        "kubeadmConfigPatches": [ETCD_DATA_DIR_PATCH],
        "nodes": [
            {"role": "control-plane", **node, "kubeadmConfigPatches": cp_patches},
            {"role": "worker", **node, "labels": dict(NODE_LABELS)},
        ],
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
    if entry.policy_api is not None:
        func["ENABLE_ANP"] = True  # its CRDs are applied first (plan.py policy_api_steps)
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
    if entry.policy_api is not None:
        env["ENABLE_ANP"] = "true"
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
        "data": {"mode": mode, "version": entry.version, "vlan-id": str(vlan_id),
                 "cluster-policies": ",".join(entry.policy_api.kinds) if entry.policy_api else ""},
    }


def dump_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)

