"""A small model of how OVN evaluates the ACLs the lab's translation emits, for unit tests
that need no OVN: per direction, tiers in ascending order; in a tier the highest-priority
matching ACL decides (allow*, drop) or, with `pass`, hands over to the next tier; no match in
a tier goes on to the next; past the last tier the packet is allowed. An ACL naming an
address set that does not exist is skipped (ovn-controller cannot parse its match). Two
matching ACLs of one tier and priority with different actions: "undefined" (OVN picks one).

Match language: what translate.py and translate_cluster.py emit: terms joined by && and ||
with parentheses, `{a, b}` sets, `$set`, `@group`, `A <= tcp.dst <= B` ranges.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from kubeovn_conformance.backends.lab.translate import OvnPolicyState

ALLOWS = {"allow", "allow-related", "allow-stateless"}


class _Missing(Exception):
    """The match names an address set the database does not have."""


def _tokens(match: str) -> list[str]:
    return [t.strip() for t in re.split(r"(\(|\)|&&|\|\|)", match) if t.strip()]


def _in(value: str, field: str, pkt: Mapping, state: OvnPolicyState) -> bool:
    if value.startswith("$"):
        if value[1:] not in state.address_sets:
            raise _Missing(value)
        nets = state.address_sets[value[1:]]
    elif value.startswith("{"):
        nets = frozenset(v.strip() for v in value[1:-1].split(","))
    else:
        nets = frozenset({value})
    return any(ipaddress.ip_address(pkt[field]) in ipaddress.ip_network(n, strict=False) for n in nets)


def _term(term: str, pkt: Mapping, state: OvnPolicyState) -> bool:
    if term == "ip":
        return True
    if term in ("tcp", "udp", "sctp"):
        return pkt["proto"] == term
    parts = term.split()
    if len(parts) == 5:  # A <= tcp.dst <= B
        return pkt["proto"] == parts[2].split(".")[0] and int(parts[0]) <= pkt["dport"] <= int(parts[4])
    field, op, value = term.split(" ", 2)
    if field in ("outport", "inport"):
        return pkt[field] in state.port_groups.get(value.removeprefix("@"), ())
    if field in ("ip4.src", "ip4.dst"):
        inside = _in(value, field, pkt, state)
        return inside if op == "==" else not inside
    proto = field.split(".")[0]
    return pkt["proto"] == proto and pkt["dport"] == int(value)


def matches(match: str, pkt: Mapping, state: OvnPolicyState) -> bool | None:
    """True/False, or None when OVN would skip the ACL (a missing address set)."""
    tokens = _tokens(match)

    def expr(i: int) -> tuple[bool, int]:
        values, ops = [], set()
        while True:
            if tokens[i] == "(":
                v, i = expr(i + 1)
                i += 1
            else:
                v, i = _term(tokens[i], pkt, state), i + 1
            values.append(v)
            if i >= len(tokens) or tokens[i] == ")":
                break
            ops.add(tokens[i])
            i += 1
        if len(ops) > 1:
            raise ValueError(f"&& and || must be parenthesized when used together: {match}")
        return (any(values) if ops == {"||"} else all(values)), i

    try:
        return expr(0)[0]
    except _Missing:
        return None


def direction_verdict(state: OvnPolicyState, direction: str, pkt: Mapping) -> str:
    """allow | drop | undefined for one pipeline (from-lport or to-lport)."""
    acls = [a for group in state.acls.values() for a in group if a.direction == direction]
    for tier in sorted({a.tier for a in acls}):
        hits = [a for a in acls if a.tier == tier and matches(a.match, pkt, state)]
        if not hits:
            continue
        top = max(a.priority for a in hits)
        actions = {"allow" if a.action in ALLOWS else a.action for a in hits if a.priority == top}
        if len(actions) > 1:
            return "undefined"
        action = actions.pop()
        if action == "pass":
            continue
        return "allow" if action == "allow" else "drop"
    return "allow"


def pod_to_pod(state: OvnPolicyState, src: tuple[str, str], dst: tuple[str, str], port: int,
               proto: str) -> str:
    """allow | deny | undefined for src (lsp, ip) -> dst (lsp, ip):port/proto."""
    pkt = {"inport": src[0], "outport": dst[0], "ip4.src": src[1], "ip4.dst": dst[1],
           "proto": proto.lower(), "dport": port}
    verdicts = {direction_verdict(state, d, pkt) for d in ("from-lport", "to-lport")}
    if "drop" in verdicts:
        return "deny"
    return "undefined" if "undefined" in verdicts else "allow"
