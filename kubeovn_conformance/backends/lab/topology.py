"""The lab's logical and physical topology, shaped like a Kube-OVN cluster.

Logical (OVN northbound), as kube-ovn-controller builds it:
- router `ovn-cluster`;
- overlay subnet switch `ovn-default` 10.16.0.0/16, connected to the router through the
  router port `ovn-cluster-ovn-default` (10.16.0.1, the pods' gateway);
- underlay subnet switch `underlay-vlan` 172.18.0.0/16 with a localnet port
  `localnet.underlay-vlan` on the provider network (VLAN tag, 0 = untagged). Like a Kube-OVN
  VLAN subnet without logicalGateway/u2o, it has no router port: its gateway 172.18.0.1 is
  a physical router, here a namespace on an access port of `br-provider`;
- load balancers `cluster-{tcp,udp,sctp}-loadbalancer`, one VIP per Service port, attached to
  the subnet switches (the underlay one only when load balancing there is enabled).

Physical: a namespace per pod (`kocl-<lab>-p<N>`) with `eth0`, a veth whose other end sits
in the lab's switch namespace and on br-int with external_ids:iface-id=<logical port>.
Checksum offload is off on both veth ends: the userspace datapath cannot complete partial
checksums, and conntrack would drop those packets as invalid.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubeovn_conformance.backends.lab.daemons import (
    PROVIDER_BRIDGE,
    PROVIDER_NETWORK,
    Lab,
    LabError,
    netns_add,
    netns_delete,
    netns_list,
    run,
)
from kubeovn_conformance.model import Pod, Scenario, Service

ROUTER = "ovn-cluster"
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
FIRST_CLUSTER_IP = ipaddress.ip_address("10.96.100.1")  # below: kubernetes, DNS, ... in kind
LB_NAMES = {"TCP": "cluster-tcp-loadbalancer", "UDP": "cluster-udp-loadbalancer",
            "SCTP": "cluster-sctp-loadbalancer"}
GATEWAY_NETNS_SUFFIX = "gw"
GATEWAY_HOST_IF = "kgw"


@dataclass(frozen=True)
class Subnet:
    name: str
    cidr: str
    gateway: str
    first_pod_ip: str  # addresses below it are excluded (gateway, kind nodes, ...)
    underlay: bool

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen

    def pod_ip(self, index: int) -> str:
        ip = ipaddress.ip_address(self.first_pod_ip) + index
        net = ipaddress.ip_network(self.cidr)
        if ip not in net or ip == net.broadcast_address:
            raise LabError(f"subnet {self.name} has no address for pod #{index}")
        return str(ip)

    @property
    def router_port(self) -> str:
        return f"{ROUTER}-{self.name}"

    @property
    def localnet_port(self) -> str:
        return f"localnet.{self.name}"


OVERLAY = Subnet("ovn-default", "10.16.0.0/16", "10.16.0.1", "10.16.0.10", underlay=False)
# 172.18.0.0/16 is kind's docker network; .1 is its gateway, the low addresses its nodes.
UNDERLAY = Subnet("underlay-vlan", "172.18.0.0/16", "172.18.0.1", "172.18.0.100", underlay=True)
SUBNETS = {"overlay": OVERLAY, "underlay": UNDERLAY}


def mac_for(ip: str) -> str:
    """Deterministic locally administered MAC from an IPv4 address (0a:58 like CNI)."""
    b = ipaddress.ip_address(ip).packed
    return "0a:58:" + ":".join(f"{x:02x}" for x in b)


def lsp_name(pod: Pod) -> str:
    """Logical switch port name as Kube-OVN spells it: <pod>.<namespace>."""
    return f"{pod.name}.{pod.namespace}"


@dataclass(frozen=True)
class PodPort:
    """A wired pod: where it lives physically and logically."""

    key: str
    netns: str
    host_if: str  # veth end in the switch namespace, a port of br-int
    lsp: str
    switch: str
    ip: str
    prefixlen: int
    mac: str
    gateway: str


# --------------------------------------------------------------------------- switches


def build_switches(lab: Lab, vlan_id: int) -> None:
    """Router, overlay and underlay switches and the gateway namespace; idempotent."""
    if not 0 <= vlan_id <= 4094:
        raise LabError(f"VLAN id {vlan_id} is outside 0-4094")
    o, u = OVERLAY, UNDERLAY
    lrp_mac = mac_for(o.gateway)
    lab.nbctl(
        "--may-exist", "lr-add", ROUTER,
        "--", "--may-exist", "lrp-add", ROUTER, o.router_port, lrp_mac,
        f"{o.gateway}/{o.prefixlen}",
        "--", "--may-exist", "ls-add", o.name,
        "--", "set", "logical_switch", o.name, f"other_config:subnet={o.cidr}",
        f"other_config:exclude_ips={o.gateway}",
        "--", "--may-exist", "lsp-add", o.name, f"{o.name}-{ROUTER}",
        "--", "lsp-set-type", f"{o.name}-{ROUTER}", "router",
        "--", "lsp-set-addresses", f"{o.name}-{ROUTER}", "router",
        "--", "lsp-set-options", f"{o.name}-{ROUTER}", f"router-port={o.router_port}",
        "--", "--may-exist", "ls-add", u.name,
        "--", "set", "logical_switch", u.name, f"other_config:subnet={u.cidr}",
        f"other_config:exclude_ips={u.gateway}..{ipaddress.ip_address(u.first_pod_ip) - 1}",
        "--", "--may-exist", "lsp-add", u.name, u.localnet_port,
        "--", "lsp-set-type", u.localnet_port, "localnet",
        "--", "lsp-set-addresses", u.localnet_port, "unknown",
        "--", "lsp-set-options", u.localnet_port, f"network_name={PROVIDER_NETWORK}",
    )
    # The tag may differ from a previous run on an attached lab: always set or clear it.
    if vlan_id:
        lab.nbctl("set", "logical_switch_port", u.localnet_port, f"tag={vlan_id}")
    else:
        lab.nbctl("clear", "logical_switch_port", u.localnet_port, "tag")
    _build_gateway(lab, vlan_id)


def _build_gateway(lab: Lab, vlan_id: int) -> None:
    """The underlay's physical gateway: a namespace routing for 172.18.0.0/16."""
    ns = lab.netns_name(GATEWAY_NETNS_SUFFIX)
    tag = [f"tag={vlan_id}"] if vlan_id else []
    if ns not in netns_list():
        netns_add(ns)
        lab.record_netns(ns)
        run(["ip", "link", "add", GATEWAY_HOST_IF, "netns", lab.switch_netns, "type", "veth",
             "peer", "name", "eth0", "netns", ns])
        gw = UNDERLAY.gateway
        _ip_batch(ns, [f"link set eth0 address {mac_for(gw)}",
                       f"addr add {gw}/{UNDERLAY.prefixlen} dev eth0", "link set eth0 up",
                       # Like a real uplink, drop what it cannot route instead of answering
                       # "network unreachable": no Service VIP must look "refused" here.
                       "route add blackhole default"])
        # Route DNAT'd Service traffic back onto the subnet; no redirects to confuse pods.
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv4.conf.eth0.send_redirects=0"):
            run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", key])
        _offload_off(ns, "eth0")
        _offload_off(lab.switch_netns, GATEWAY_HOST_IF)
        run(["ip", "-n", lab.switch_netns, "link", "set", GATEWAY_HOST_IF, "up"])
        lab.vsctl("--may-exist", "add-port", PROVIDER_BRIDGE, GATEWAY_HOST_IF, *tag)
    elif tag:
        lab.vsctl("set", "port", GATEWAY_HOST_IF, *tag)
    else:
        lab.vsctl("clear", "port", GATEWAY_HOST_IF, "tag")


def _ip_batch(ns: str, commands: Sequence[str]) -> None:
    run(["ip", "-n", ns, "-batch", "-"], input="\n".join(commands) + "\n")


def _offload_off(ns: str, dev: str) -> None:
    # nsenter switches only the network namespace: cheaper than `ip netns exec`.
    run(["nsenter", f"--net=/run/netns/{ns}", "ethtool", "-K", dev, "tx", "off"])


# --------------------------------------------------------------------------- pods


def plan_pods(lab: Lab, pods: Sequence[Pod], subnet: Subnet, first_index: int = 0) -> list[PodPort]:
    """Deterministic addresses and names for the pods, in the given order."""
    ports = []
    for i, pod in enumerate(pods, start=first_index):
        ip = subnet.pod_ip(i)
        ports.append(PodPort(key=pod.key, netns=lab.netns_name(f"p{i}"), host_if=f"kp{i}",
                             lsp=lsp_name(pod), switch=subnet.name, ip=ip,
                             prefixlen=subnet.prefixlen, mac=mac_for(ip), gateway=subnet.gateway))
    return ports


def add_pods(lab: Lab, ports: Sequence[PodPort]) -> None:
    """Create namespaces, veths and logical ports for the pods; one OVSDB transaction each
    for NB and the switch, so the cost is the per-namespace `ip` calls."""
    for p in ports:
        _add_pod_netns(lab, p)
    if not ports:
        return
    nb: list[str] = []
    vs: list[str] = []
    for p in ports:
        namespace, name = p.key.split("/", 1)
        nb += ["--", "--may-exist", "lsp-add", p.switch, p.lsp,
               "--", "lsp-set-addresses", p.lsp, f"{p.mac} {p.ip}",
               "--", "lsp-set-port-security", p.lsp, f"{p.mac} {p.ip}",
               "--", "set", "logical_switch_port", p.lsp, f"external_ids:pod={namespace}/{name}",
               f"external_ids:ls={p.switch}", "external_ids:vendor=kube-ovn"]
        vs += ["--", "--may-exist", "add-port", "br-int", p.host_if,
               "--", "set", "interface", p.host_if, f"external_ids:iface-id={p.lsp}"]
    lab.nbctl(*nb[1:])
    lab.vsctl(*vs[1:])
    _ip_batch(lab.switch_netns, [f"link set {p.host_if} up" for p in ports])


def _add_pod_netns(lab: Lab, p: PodPort) -> None:
    lab.record_netns(p.netns)  # first: a crash right after the add still gets cleaned up
    netns_add(p.netns)
    run(["ip", "link", "add", p.host_if, "netns", lab.switch_netns, "type", "veth",
         "peer", "name", "eth0", "netns", p.netns])
    _ip_batch(p.netns, [f"link set eth0 address {p.mac}",
                        f"addr add {p.ip}/{p.prefixlen} dev eth0",
                        "link set eth0 up",
                        # Default route via the gateway: Service VIPs are off-link, and the
                        # pod must send them to a MAC the switch's load balancer sees.
                        f"route add default via {p.gateway}"])
    _offload_off(p.netns, "eth0")
    _offload_off(lab.switch_netns, p.host_if)


def remove_pods(lab: Lab, ports: Iterable[PodPort]) -> None:
    """Remove logical ports, bridge ports and namespaces (the veth dies with them)."""
    ports = list(ports)
    if not ports:
        return
    nb: list[str] = []
    vs: list[str] = []
    for p in ports:
        nb += ["--", "--if-exists", "lsp-del", p.lsp]
        vs += ["--", "--if-exists", "del-port", "br-int", p.host_if]
    lab.nbctl(*nb[1:])
    lab.vsctl(*vs[1:])
    # Delete the switch ends ourselves: a namespace's veths otherwise go away only when the
    # kernel gets round to dismantling it, and a next setup would meet "File exists".
    run(["ip", "-n", lab.switch_netns, "-force", "-batch", "-"],
        input="".join(f"link del {p.host_if}\n" for p in ports), check=False)
    for p in ports:
        netns_delete(p.netns)
        lab.forget_netns(p.netns)


# --------------------------------------------------------------------------- services


def allocate_cluster_ips(services: Sequence[Service]) -> dict[str, str]:
    """Service key -> ClusterIP: the one given, else the next free from 10.96.100.1."""
    taken = {s.cluster_ip for s in services if s.cluster_ip}
    out: dict[str, str] = {}
    nxt = FIRST_CLUSTER_IP
    for svc in services:
        if svc.cluster_ip:
            out[svc.key] = svc.cluster_ip
            continue
        while str(nxt) in taken:
            nxt += 1
        if nxt not in SERVICE_CIDR:
            raise LabError("the Service CIDR 10.96.0.0/12 is exhausted")
        out[svc.key] = str(nxt)
        taken.add(str(nxt))
    return out


def lb_vips(scenario: Scenario, pod_ips: dict[str, str]) -> dict[str, dict[str, str]]:
    """Protocol -> {"VIP:port": "ip:targetPort,..."} like Kube-OVN's endpoint controller.

    Named targetPorts resolve per backend pod; a pod lacking the name is not an endpoint,
    and a port without endpoints gets no VIP (traffic to it is dropped, nothing answers)."""
    vips: dict[str, dict[str, str]] = {}
    for svc in scenario.services:
        if not _is_ipv4(svc.cluster_ip) or svc.selector is None:
            continue  # headless ("None") or selector-less: no load balancer, as in Kube-OVN
        for sp in svc.ports:
            backends = []
            for pod in scenario.backends(svc):
                if pod.key not in pod_ips:
                    continue
                port = sp.target_port if isinstance(sp.target_port, int) \
                    else pod.named_port(sp.target_port, sp.protocol)
                if port is not None:
                    backends.append(f"{pod_ips[pod.key]}:{port}")
            if backends:
                vips.setdefault(sp.protocol, {})[f"{svc.cluster_ip}:{sp.port}"] = ",".join(sorted(backends))
    return vips


def _is_ipv4(value: str | None) -> bool:
    try:
        return ipaddress.ip_address(value or "").version == 4
    except ValueError:
        return False


def set_load_balancers(lab: Lab, vips: dict[str, dict[str, str]], switches: Sequence[str]) -> None:
    """Replace the cluster load balancers with `vips` and attach them to `switches`."""
    remove_load_balancers(lab)
    args: list[str] = []
    for proto, lb in LB_NAMES.items():
        entries = vips.get(proto)
        if not entries:
            continue
        ref = f"@{proto.lower()}"
        vip_map = ",".join(f'"{vip}"="{backends}"' for vip, backends in sorted(entries.items()))
        args += ["--", f"--id={ref}", "create", "load_balancer", f"name={lb}",
                 f"protocol={proto.lower()}", f"vips={{{vip_map}}}"]
        for sw in switches:
            args += ["--", "add", "logical_switch", sw, "load_balancer", ref]
    if args:
        lab.nbctl(*args[1:])


def remove_load_balancers(lab: Lab) -> None:
    args: list[str] = []
    for lb in LB_NAMES.values():
        args += ["--", "--if-exists", "lb-del", lb]
    lab.nbctl(*args[1:])


def clear_policies(lab: Lab) -> None:
    """Drop every port group and address set (and so every policy ACL): a clean slate."""
    lab.nbctl("--all", "destroy", "Port_Group",
              "--", "--all", "destroy", "Address_Set")
