"""The tiers of cluster-scoped policy, for the oracle: what the Admin and the Baseline tier
decide for one direction of one connection.

Semantics (ClusterNetworkPolicySpec.Tier and .Priority, the rule actions, and
site-src/api-overview.md of kubernetes-sigs/network-policy-api; the v1alpha1 ANP/BANP docs
say the same): per direction, the Admin tier first, by priority, lower value first; inside a
policy its rules in order, the first matching rule decides for that policy. Allow/Accept and
Deny are final; Pass skips the rest of the tier and goes on to NetworkPolicy. Then
NetworkPolicy (final for a pod it isolates), then the Baseline tier, then "allowed".
Policies of one tier at the same priority that match a connection and disagree: the API lets
an implementation apply any of them, so the verdict is `undefined`.

How ANPs and CNPs mix (both exist on Kube-OVN v1.15+; the API defines no order between the
two API versions): Kube-OVN puts both in OVN ACL tier 1 at ACL priority 30000 - 100*p - i
for an ANP of priority p (admin_network_policy.go:247, v1.16.2) and 30000 - 25*q - i for a CNP
of priority q (cluster_network_policy.go:1187, util/const.go:190-198), so an ANP of priority p
ranks with a CNP of priority 4p. The oracle ranks policies by that distance from 30000
(`rank`); a tie between kinds is a same-priority tie. In the Baseline tier Kube-OVN puts CNPs
at 30000 - 25*q - i and the BANP at 1800 - i (baseline_admin_network_policy.go:213), so every
Baseline CNP comes before the BANP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby

from kubeovn_conformance.cluster_policy import ADMIN, ANP, BANP, BASELINE, ClusterPolicy, ClusterRule
from kubeovn_conformance.model import Pod, Scenario

NP_TIER, DEFAULT_TIER = "NetworkPolicy", "default"


class Undetermined(Exception):
    """A networks peer needs a pod IP the scenario does not have."""


def rank(policy: ClusterPolicy) -> float:
    """Order inside a tier: Kube-OVN's ACL priority distance from 30000 (see the module
    docstring); the BANP comes last."""
    if policy.kind == BANP:
        return float("inf")
    assert policy.priority is not None
    return policy.priority * (100 if policy.kind == ANP else 25)


@dataclass(frozen=True)
class Hit:
    """A tier's decision: the rule that matched (or several that disagree)."""

    tier: str  # Admin | Baseline
    verdict: str  # allow | deny | pass | undefined
    policy: ClusterPolicy
    index: int
    rule: ClusterRule
    conflict: str = ""  # the disagreeing same-priority rules, when verdict is undefined

    def where(self, direction: str) -> str:
        name = f' "{self.rule.name}"' if self.rule.name else ""
        return f"{self.policy.label} {direction.lower()}[{self.index}]{name}"


class ClusterTiers:
    """The cluster policies of one scenario, subjects and peers resolved once."""

    def __init__(self, scenario: Scenario, ns_labels: Mapping[str, Mapping[str, str]]) -> None:
        policies: Iterable[ClusterPolicy] = scenario.cluster_policies
        self.tiers = {t: sorted((p for p in policies if p.tier == t), key=rank)
                      for t in (ADMIN, BASELINE)}
        self._subjects = {p.key: frozenset(pod.key for pod in scenario.pods
                                           if p.subject.selects(pod, ns_labels[pod.namespace]))
                          for p in scenario.cluster_policies}
        # (policy key, direction, rule index, peer index) -> pod keys a selector peer admits
        self._admitted: dict[tuple[str, str, int, int], frozenset[str]] = {}
        for p in scenario.cluster_policies:
            for direction in ("Ingress", "Egress"):
                for i, r in enumerate(p.rules(direction)):
                    for j, peer in enumerate(r.peers):
                        self._admitted[(p.key, direction, i, j)] = frozenset(
                            pod.key for pod in scenario.pods
                            if peer.selects(pod, ns_labels[pod.namespace]))

    def __bool__(self) -> bool:
        return any(self.tiers.values())

    def selects(self, policy: ClusterPolicy, pod: Pod) -> bool:
        return pod.key in self._subjects[policy.key]

    def peer_admits(self, policy: ClusterPolicy, direction: str, index: int, peer: Pod) -> bool:
        """Does rule `index` of `direction` name `peer` (by selector or by address)?"""
        unknown = False
        for j, p in enumerate(policy.rules(direction)[index].peers):
            if p.form == "networks":
                if peer.ip is None:
                    unknown = True
                elif p.contains_ip(peer.ip):
                    return True
            elif peer.key in self._admitted[(policy.key, direction, index, j)]:
                return True
        if unknown:
            raise Undetermined(f"{policy.label} {direction.lower()}[{index}] needs the IP of {peer.key}")
        return False

    def first_match(self, policy: ClusterPolicy, direction: str, subject: Pod, peer: Pod,
                    dst: Pod, port: int, protocol: str) -> tuple[int, ClusterRule] | None:
        if not self.selects(policy, subject):
            return None
        for i, r in enumerate(policy.rules(direction)):
            if r.port_matches(port, protocol, dst) and self.peer_admits(policy, direction, i, peer):
                return i, r
        return None

    def decide(self, tier: str, direction: str, subject: Pod, peer: Pod, dst: Pod, port: int,
               protocol: str) -> Hit | None:
        """The tier's decision for `subject`'s `direction` (peer: the other end, dst: the pod
        whose port is dialed), or None when no rule of the tier matches."""
        for _, group in groupby(self.tiers[tier], key=rank):
            hits = []
            for pol in group:
                found = self.first_match(pol, direction, subject, peer, dst, port, protocol)
                if found is not None:
                    hits.append(Hit(tier, found[1].verdict, pol, *found))
            if not hits:
                continue
            if len({h.verdict for h in hits}) > 1:
                parts = " vs ".join(f"{h.where(direction)} {h.rule.action}" for h in hits)
                return Hit(tier, "undefined", hits[0].policy, hits[0].index, hits[0].rule, parts)
            return hits[0]
        return None

    def port_numbers(self, dst: Pod) -> set[tuple[int, str]]:
        """Numeric ports of the rules that can apply to traffic into `dst` (ingress rules of
        policies selecting it, egress rules naming it), so "allowed, nothing listens" is
        probed too."""
        out: set[tuple[int, str]] = set()
        for pol in (*self.tiers[ADMIN], *self.tiers[BASELINE]):
            for direction in ("Ingress", "Egress"):
                for i, r in enumerate(pol.rules(direction)):
                    if direction == "Ingress" and not self.selects(pol, dst):
                        continue
                    if direction == "Egress" and not any(
                            dst.key in self._admitted[(pol.key, direction, i, j)]
                            or (p.form == "networks" and dst.ip and p.contains_ip(dst.ip))
                            for j, p in enumerate(r.peers)):
                        continue
                    for cp in r.ports or ():
                        if cp.port is not None:
                            out.add((cp.port, cp.protocol))
                            if cp.end is not None:
                                out.add((cp.end, cp.protocol))
        return out
