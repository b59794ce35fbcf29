"""Facts of the kind docker network (`docker network inspect`), and the script that prepares
its bridge for underlay."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeovn_conformance.clusters.matrix import ClusterError
from kubeovn_conformance.textfile import read_text

# Runs inside a privileged host-network container from the Kube-OVN image, as Kube-OVN's
# Makefile does for its kind bridge: hairpin off on the kind bridge ports (an underlay frame
# must not be reflected back to the node that sent it); VLAN 0 means filtering off; a tagged
# VLAN is allowed on every port and on the bridge itself, and the gateway address of the
# tagged subnet lives on a VLAN interface of the bridge (node traffic stays untagged, VLAN 1).
# Arguments: $1 bridge, $2 vlan id, $3 gateway/prefix, $4 vlan interface name.
BRIDGE_SETUP_SCRIPT = (
    'br="$1"; vid="$2"; gw="$3"; vif="$4"; '
    'for p in /sys/class/net/"$br"/brif/*; do echo 0 > "$p/hairpin_mode"; done; '
    'if [ "$vid" = 0 ]; then echo 0 > /sys/class/net/"$br"/bridge/vlan_filtering; exit 0; fi; '
    'echo 1 > /sys/class/net/"$br"/bridge/vlan_filtering; '
    'bridge vlan add vid "$vid" dev "$br" self; '
    'for p in /sys/class/net/"$br"/brif/*; do bridge vlan add vid "$vid" dev "${p##*/}"; done; '
    'ip link show "$vif" >/dev/null 2>&1 || ip link add link "$br" name "$vif" type vlan id "$vid"; '
    'ip addr replace "$gw" dev "$vif"; ip link set "$vif" up'
)

# Tagged pods and the nodes talk across the host (VLAN interface <-> kind bridge). Docker drops
# new connections into its bridges unless DOCKER-USER accepts them, and Docker >= 28 also drops,
# in `raw PREROUTING`, packets for a container IP that arrive on another interface, before
# DOCKER-USER is ever reached. So every accept goes into both tables, as upstream's
# add_docker_iptables_rule does (Makefile v1.16.2 :145-148): idempotent on add (-C before -I),
# complete on delete (-D while -C finds it). Arguments: $1 add|del, $2 vlan cidr, $3 kind subnet.
HOST_RULES_SCRIPT = (
    'act="$1"; vlan="$2"; kind="$3"; '
    'for tc in filter:DOCKER-USER raw:PREROUTING; do t="${tc%%:*}"; c="${tc#*:}"; '
    'for sd in "$vlan,$kind" "$kind,$vlan"; do s="${sd%,*}"; d="${sd#*,}"; '
    'if [ "$act" = add ]; then '
    'iptables -t "$t" -C "$c" -s "$s" -d "$d" -j ACCEPT 2>/dev/null '
    '|| iptables -t "$t" -I "$c" -s "$s" -d "$d" -j ACCEPT; '
    'else while iptables -t "$t" -C "$c" -s "$s" -d "$d" -j ACCEPT 2>/dev/null; do '
    'iptables -t "$t" -D "$c" -s "$s" -d "$d" -j ACCEPT; done; fi; done; done'
)


def host_rules_argv(image: str, action: str, vlan_cidr: str, kind_subnet: str) -> list[str]:
    return ["docker", "run", "--rm", "--privileged", "--network=host", image,
            "bash", "-ec", HOST_RULES_SCRIPT, "host-rules", action, vlan_cidr, kind_subnet]


def vlan_interface(vlan_id: int) -> str:
    # Linux caps interface names at 15 characters: "br-<12 hex>.<id>" would not fit.
    return f"kind-vlan{vlan_id}"



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
        data = json.loads(read_text(path))
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

