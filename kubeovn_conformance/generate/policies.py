"""A row's NetworkPolicies, built from the running workload (ipBlocks need pod IPs).

The row's policy lives in namespace x; its rule (peers x ports x protocol) goes where the
direction says. The `policies` value adds the policies around it. See dimensions.py for the
values and ground.py for the labels and ports they refer to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace

from kubeovn_conformance.builders import expr, select
from kubeovn_conformance.generate.ground import NAMES, SERVICE_NUMERIC
from kubeovn_conformance.model import IPBlock, NetworkPolicy, Peer, PolicyPort, Rule, Scenario

NAME = "gen-policy"
DIGIT_NAME = "7-gen-policy"
# A DNS subdomain of more than 150 characters: dot-separated labels with dashes, as tools
# generate them (Kube-OVN derives port group and address set names from it).
LONG_NAME = ".".join(["gen-policy", "with-a-long-name", "made-of-dashes-and-dots",
                      "as-generated-names-are", "v1-2-3", "team-blue.allow-web-traffic",
                      "from-the-dev-namespaces-x", "long-names-reach-ovn-names"])
TWIN_NAME = "gen.policy"  # Kube-OVN maps "gen-policy" and "gen.policy" to one port group
BLUE, RED = "blue", "red"


def _subnet(w: Scenario) -> str:
    """The pod subnet (/16) from a pod IP, so a case works in overlay and underlay alike."""
    return str(ipaddress.ip_network(f"{w.pod('x/a').ip}/16", strict=False))


def _ip32(w: Scenario, key: str) -> str:
    return f"{w.pod(key).ip}/32"


def _block(cidr: str, *excepts: str) -> Peer:
    return Peer(ip_block=IPBlock(cidr, tuple(excepts)))


def ports(row: Mapping[str, str]) -> tuple[PolicyPort, ...] | None:
    proto, value = row["protocol"], row["ports"]
    other = "UDP" if proto == "TCP" else "TCP"
    return {
        "any": None,
        "pod": (PolicyPort(proto, 81),),
        "service": (PolicyPort(proto, SERVICE_NUMERIC),),
        "named-target": (PolicyPort(proto, NAMES[proto][0]),),
        "endport-inside": (PolicyPort(proto, 79, 82),),
        "endport-bounds": (PolicyPort(proto, 80, 81),),
        "endport-below": (PolicyPort(proto, 82, 90),),
        "endport-above": (PolicyPort(proto, 70, 79),),
        "protocol-only": (PolicyPort(proto),),
        "several": (PolicyPort(proto, 80), PolicyPort(other, 81)),
        "undeclared": (PolicyPort(proto, 82),),
    }[value]


def rules(row: Mapping[str, str], w: Scenario) -> tuple[Rule, ...]:
    """The row's rules (one, or two for rule0-selects-nothing)."""
    pp = ports(row)
    blue, dev, every = select(team=BLUE), select(env="dev"), select()
    peers: dict[str, tuple[Peer, ...] | None] = {
        "any": None,
        "empty-list": (),
        "pod": (Peer(blue),),
        "ns": (Peer(namespace_selector=dev),),
        "ns-and-pod": (Peer(blue, dev),),
        "ns-or-pod": (Peer(namespace_selector=dev), Peer(blue)),
        "all-ns": (Peer(namespace_selector=every),),
        "expr-in": (Peer(select(expr("team", "In", BLUE, RED)), every),),
        "expr-notin-absent-key": (Peer(namespace_selector=select(expr("env", "NotIn", "prod"))),),
        "expr-exists": (Peer(select(expr("tier", "Exists")), every),),
        "expr-doesnotexist-absent-key": (
            Peer(namespace_selector=select(expr("env", "DoesNotExist"))),),
    }
    value = row["peers"]
    if value in peers:
        return (Rule(peers[value], pp),)
    if value == "rule0-selects-nothing":
        # Rule 0's peer names every namespace (so it "matches" every namespace, as Kube-OVN
        # counts it) but no pod has team=green: it resolves to no address.
        return (Rule((Peer(select(team="green"), every),), pp), Rule((Peer(namespace_selector=dev),), pp))
    subnet = _subnet(w)
    blocks = {
        "ipblock": (_block(subnet),),
        "ipblock-except": (_block(subnet, _ip32(w, "y/b")),),
        "ipblock-beside-selector": (Peer(blue), _block(subnet, _ip32(w, "x/b"))),
        "two-ipblocks": (_block(_ip32(w, "y/a")), _block(_ip32(w, "z/c"))),
    }
    return (Rule(blocks[value], pp),)


def _target(row: Mapping[str, str]):  # type: ignore[no-untyped-def]
    return {"pod": select(pod="a"), "all": select(), "none": select(pod="nobody")}[row["target"]]


def main_policy(row: Mapping[str, str], w: Scenario, name: str = NAME) -> NetworkPolicy:
    r = rules(row, w)
    direction = row["direction"]
    shapes: dict[str, tuple] = {  # ingress rules, egress rules, policyTypes
        "ingress": (r, None, ("Ingress",)),
        "egress": (None, r, ("Egress",)),
        "both": (r, r, ("Ingress", "Egress")),
        "types-ingress-with-egress-rules": (r, r, ("Ingress",)),
        "types-egress-with-ingress-rules": (r, r, ("Egress",)),
        "egress-empty-no-types": (r, (), None),
    }
    ingress, egress, types = shapes[direction]
    return NetworkPolicy("x", name, _target(row), ingress, egress, types)


def _deny_all(name: str, types: tuple[str, ...]) -> NetworkPolicy:
    return NetworkPolicy("x", name, select(), () if "Ingress" in types else None,
                         () if "Egress" in types else None, types)


def _y_b_on_80(main: NetworkPolicy, protocol: str) -> NetworkPolicy:
    """A second policy on the same pods, admitting y/b (team=blue in env=dev) on 80 in the
    directions the main policy isolates: the verdict is the union."""
    rule = Rule((Peer(select(team=BLUE), select(env="dev")),), (PolicyPort(protocol, 80),))
    types = main.types
    return NetworkPolicy("x", "gen-second", main.pod_selector,
                         (rule,) if "Ingress" in types else None,
                         (rule,) if "Egress" in types else None, types)


def build(row: Mapping[str, str], w: Scenario) -> tuple[NetworkPolicy, ...]:
    value = row["policies"]
    name = {"digit-name": DIGIT_NAME, "long-dotted-name": LONG_NAME}.get(value, NAME)
    main = main_policy(row, w, name)
    if value == "two-overlapping":
        return (main, _y_b_on_80(main, row["protocol"]))
    if value == "with-default-deny":
        return (main, _deny_all("gen-default-deny", main.types))
    if value == "same-name-two-ns":
        return (main, replace(main, namespace="y"))
    if value == "dot-dash-twins":
        return (main, _deny_all(TWIN_NAME, main.types))
    return (main,)


def widened(policies: tuple[NetworkPolicy, ...], protocol: str) -> tuple[NetworkPolicy, ...]:
    """The first version of an updated policy: the main policy's rules on any port (or, when
    they name no port, on port 80 only). Its name and selector stay, so it is an update."""
    main, *rest = policies

    def widen(rs: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
        if not rs:
            return rs
        return tuple(replace(r, ports=None if r.ports else (PolicyPort(protocol, 80),)) for r in rs)

    return (replace(main, ingress=widen(main.ingress), egress=widen(main.egress)), *rest)
