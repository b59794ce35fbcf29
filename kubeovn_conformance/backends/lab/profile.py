"""How a given Kube-OVN release line translates NetworkPolicies into OVN objects.

The lab backend plays the part of kube-ovn-controller. Where releases differ in a way that
can change a verdict, the difference is a knob here, so the lab can reproduce each line.
Sources: kubeovn/kube-ovn pkg/controller/network_policy.go and pkg/ovs/ovn-nb-acl.go on the
release branches, and docs/kube-ovn-facts.md of this project.
"""

from __future__ import annotations

from dataclasses import dataclass

ENFORCEMENTS = ("standard", "lax")


@dataclass(frozen=True)
class Profile:
    """Translation knobs. Every field names the release that changed it."""

    name: str
    # Egress (from-lport) ACLs carry options:apply-after-lb="true" (v1.11.2 / v1.12.0 on):
    # they run after the load balancer's DNAT and see backend pod IP and targetPort.
    # Before that, egress ACLs ran before the LB and saw ClusterIP:port.
    egress_after_lb: bool = True
    # ClusterIPs of Services that select a peer pod (Services in the peer's namespace) go
    # into the allow address sets next to the pod IPs. Up to 1.15; removed in 1.16.
    svc_ips_in_allow_sets: bool = False
    # Stateless allow ACLs for the subnet gateway (ip4.src/ip4.dst == gateway, priority
    # 2001) on every policy port group. 1.12 to 1.14 (and earlier); from 1.15 only ICMPv6
    # neighbour discovery is allowed that way, which IPv4 never needs.
    gateway_allow: bool = False
    # NP_ENFORCEMENT (1.15+): "standard" drops all IP by default; "lax" drops only
    # TCP/UDP/SCTP. Releases before 1.15 only know "standard".
    enforcement: str = "standard"
    # Load balancers attached to underlay (VLAN) switches, i.e. ENABLE_LB and the subnet's
    # enableLb true. Consumed by the dataplane, not by the ACL translation. False models
    # ENABLE_LB=false, where underlay pods reach Services through kube-proxy on the node.
    lb_on_underlay: bool = True

    def __post_init__(self) -> None:
        if self.enforcement not in ENFORCEMENTS:
            raise ValueError(f"profile {self.name}: enforcement {self.enforcement!r} "
                             f"is not one of {', '.join(ENFORCEMENTS)}")


_V116 = Profile("v1.16")
_V115 = Profile("v1.15", svc_ips_in_allow_sets=True)
_V114 = Profile("v1.14", svc_ips_in_allow_sets=True, gateway_allow=True)

PROFILES: dict[str, Profile] = {
    "v1.16": _V116,
    "v1.16-lax": Profile("v1.16-lax", enforcement="lax"),
    "v1.15": _V115,
    "v1.15-lax": Profile("v1.15-lax", svc_ips_in_allow_sets=True, enforcement="lax"),
    "v1.14": _V114,
    "v1.13": Profile("v1.13", svc_ips_in_allow_sets=True, gateway_allow=True),
    "v1.12": Profile("v1.12", svc_ips_in_allow_sets=True, gateway_allow=True),
    # v1.11.0 and v1.11.1 (and older): egress ACLs before the LB, on the Service address.
    "pre-v1.11.2": Profile("pre-v1.11.2", egress_after_lb=False, svc_ips_in_allow_sets=True,
                           gateway_allow=True),
}

DEFAULT: Profile = _V116


def get_profile(name: str) -> Profile:
    """A named profile. Accepts a release line ("v1.15") or a tag ("v1.15.24", "1.15.3")."""
    key = name if name.startswith(("v", "pre-")) else f"v{name}"
    if key in PROFILES:
        return PROFILES[key]
    parts = key[1:].split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        major, minor, patch = (int(p) for p in parts)
        if (major, minor, patch) < (1, 11, 2):
            return PROFILES["pre-v1.11.2"]
        line = f"v{major}.{minor}"
        if line in PROFILES:
            return PROFILES[line]
    raise ValueError(f"unknown Kube-OVN profile {name!r}; known: {', '.join(PROFILES)}")
