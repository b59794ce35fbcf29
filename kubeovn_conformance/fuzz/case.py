"""A single-state scenario that carries its pod IPs, as a runner Case; and the failing cell.

The scenario's pod IPs (drawn, or read from `status.podIP` in a manifest file) are facts of
the scenario: its ipBlocks name them. A backend may hand out other IPs (kind always does;
the lab does when pods were dropped before them), so the case's step *rebases* the
ipBlocks: a `/32` that is a pod's IP in the scenario becomes that pod's live IP, in `cidr`
and in `except`. Other CIDRs are kept. The verdicts on the live scenario then equal the
verdicts `expect` gives for the file, as long as every ipBlock is a pod's /32 or a CIDR
holding all pods in both address plans (the fuzzer draws only those).

The workload of the case leaves addresses out (pods and ClusterIPs are the backend's to
give), so candidates that differ only in policies share one workload and the runner reuses
it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kubeovn_conformance.cases import Case, Step
from kubeovn_conformance.model import IPBlock, NetworkPolicy, Peer, Rule, Scenario
from kubeovn_conformance.oracle import Expectation, Probe


@dataclass(frozen=True, order=True)
class CellKey:
    """What makes a failing cell "the same" while shrinking: who dials what, how, and what
    Kubernetes expects. The target port is left out: it follows the Service's targetPort."""

    client: str
    target: str
    path: str
    port: int
    protocol: str
    verdict: str

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> CellKey:
        return cls(str(record["client"]), str(record["target"]), str(record["path"]),
                   int(record["port"]), str(record["protocol"]), str(record["verdict"]))

    def matches(self, probe: Probe) -> bool:
        return (probe.client, probe.target, probe.path, probe.port, probe.protocol) == (
            self.client, self.target, self.path, self.port, self.protocol)

    def find(self, expectations: list[Expectation]) -> Expectation | None:
        return next((e for e in expectations if self.matches(e.probe)), None)

    def describe(self) -> str:
        return (f"{self.client} -> {self.target} {self.path} {self.port}/{self.protocol} "
                f"(expected {self.verdict})")

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client, "target": self.target, "path": self.path,
                "port": self.port, "protocol": self.protocol, "verdict": self.verdict}


def direction(scenario: Scenario) -> str:
    """ingress | egress | both | none: the directions the scenario's policies isolate."""
    kinds = {t for p in scenario.policies for t in p.types}
    if kinds == {"Ingress", "Egress"}:
        return "both"
    return next(iter(kinds)).lower() if kinds else "none"


def rebase(policies: tuple[NetworkPolicy, ...], old: Mapping[str, str | None],
           new: Mapping[str, str | None]) -> tuple[NetworkPolicy, ...]:
    """`policies` with every pod /32 of the `old` address plan (pod key -> IP) moved to the
    same pod's IP in `new`."""
    moves = {f"{ip}/32": f"{new[key]}/32" for key, ip in old.items() if ip and new.get(key)}
    if all(a == b for a, b in moves.items()):
        return policies

    def block(b: IPBlock) -> IPBlock:
        return IPBlock(moves.get(b.cidr, b.cidr), tuple(moves.get(e, e) for e in b.excepts))

    def peer(p: Peer) -> Peer:
        return p if p.ip_block is None else replace(p, ip_block=block(p.ip_block))

    def rules(rs: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
        if rs is None:
            return None
        return tuple(r if r.peers is None else replace(r, peers=tuple(peer(p) for p in r.peers))
                     for r in rs)

    return tuple(replace(p, ingress=rules(p.ingress), egress=rules(p.egress)) for p in policies)


def workload_of(scenario: Scenario) -> Scenario:
    """The scenario without policies and without addresses."""
    return replace(scenario, policies=(),
                   pods=tuple(replace(p, ip=None) for p in scenario.pods),
                   services=tuple(replace(s, cluster_ip=None) for s in scenario.services))


def case_for(scenario: Scenario, case_id: str, description: str = "",
             on_build: Callable[[Scenario], None] | None = None) -> Case:
    """A one-step case of `scenario`; its step rebases the ipBlocks onto the live pod IPs.
    `on_build` sees the scenario the step hands the backend (live addresses, rebased
    policies): what a reproduction file must hold."""
    policies = scenario.policies
    planned = {p.key: p.ip for p in scenario.pods}

    def build(live: Scenario) -> Scenario:
        built = live.with_policies(rebase(policies, planned, {p.key: p.ip for p in live.pods}))
        if on_build is not None:
            on_build(built)
        return built

    return Case(case_id, direction(scenario), workload_of(scenario), (Step("initial", build),),
                description)
