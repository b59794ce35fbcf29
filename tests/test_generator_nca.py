"""The oracle against network-config-analyzer (NCA, PyPI 2.1.0) on every generated state.

NCA is an independent NetworkPolicy engine: for each state of each generated case it gets
the namespaces, pods and policies and prints which pod may reach which on what; every pod
cell the oracle judges (allow or deny) must agree with it. NCA's documented limits, each a
class of disagreement taken away before comparing and checked to be exactly that:

- ipBlocks: NCA matches them against cluster-external addresses only, never pods; the oracle
  matches pod IPs (as the upstream e2e and Cyclonus do). NCA is compared with the oracle on
  the state with every ipBlock moved outside the cluster (192.0.2.0/24); the cells that move
  changes are the ipBlock class, and the generated ipBlock rows must produce some.
- policyTypes leaving out a direction whose rules are present: NCA rejects such a policy;
  the API ignores those rules. NCA gets the policy without them, and the oracle must give
  the same verdicts with and without them.
- `egress: []` without policyTypes: NCA isolates egress, the API server does not (its
  defaulting adds Egress only when `len(spec.egress) != 0`, pkg/apis/networking/v1/
  defaults.go; design.md "policyTypes defaulting"). NCA gets policyTypes as the API server
  stores them; run on the raw policies, NCA differs exactly in those pods' egress cells.
- A podSelector with Exists/DoesNotExist beside a namespaceSelector: NCA looks for the key
  only on pods of the policy's own namespace (nca/Parsers/K8sPolicyYamlParser.py:148 passes
  `self.namespace` to get_peers_with_key; In/NotIn do not), so `tier Exists` in namespaces
  `{}` misses y/a. The oracle is compared in the same scope there (the peer's namespaces
  narrowed to the policy's), and the generated expr-exists rows must produce such cells.
- Services: NCA has no ClusterIPs or DNAT. The oracle's verdict of a Service probe must be
  NCA's verdict for the backend pod at the targetPort the Service resolves to (named
  targetPorts per pod), which is the Service semantics design.md states.
Named ports, endPort ranges, SCTP, matchExpressions on absent keys and `egress: []` without
policyTypes are compared as they are: NCA models them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from kubeovn_conformance.generate import cases
from kubeovn_conformance.model import (
    NS_NAME_LABEL,
    IPBlock,
    NetworkPolicy,
    Peer,
    Requirement,
    Rule,
    Scenario,
    Service,
)
from kubeovn_conformance.oracle import ALLOW, DENY, Oracle, resolve_endpoints
from kubeovn_conformance.packing import _addressed

ROOT = Path(__file__).resolve().parent.parent
NCA_PYTHON = ROOT / ".venv-nca" / "bin" / "python"
OUTSIDE = "192.0.2.0/24"  # TEST-NET-1: no pod has such an address

pytestmark = pytest.mark.skipif(not NCA_PYTHON.exists(),
                                reason="network-config-analyzer's venv is missing: run `make venv`")


def _outside(peer: Peer) -> Peer:
    if peer.ip_block is None:
        return peer
    return Peer(ip_block=IPBlock(OUTSIDE, ("192.0.2.128/25",) if peer.ip_block.excepts else ()))


def _rules(rules: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
    if rules is None:
        return None
    return tuple(replace(r, peers=None if r.peers is None else tuple(_outside(p) for p in r.peers))
                 for r in rules)


def ipblocks_outside(s: Scenario) -> Scenario:
    return s.with_policies(replace(p, ingress=_rules(p.ingress), egress=_rules(p.egress))
                           for p in s.policies)


def _exists_in_own_namespace(p: NetworkPolicy) -> NetworkPolicy:
    def peer(x: Peer) -> Peer:
        keyed = x.pod_selector is not None and any(
            r.operator in ("Exists", "DoesNotExist") for r in x.pod_selector.match_expressions)
        if not keyed or x.namespace_selector is None:
            return x
        own = Requirement(NS_NAME_LABEL, "In", (p.namespace,))
        ns = x.namespace_selector
        return replace(x, namespace_selector=replace(ns, match_expressions=(*ns.match_expressions, own)))

    def rules(rs: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
        return None if rs is None else tuple(
            replace(r, peers=None if r.peers is None else tuple(peer(x) for x in r.peers)) for r in rs)
    return replace(p, ingress=rules(p.ingress), egress=rules(p.egress))


def exists_in_own_namespace(s: Scenario) -> Scenario:
    """The scope NCA gives pod Exists/DoesNotExist requirements (the policy's namespace)."""
    return s.with_policies(_exists_in_own_namespace(p) for p in s.policies)


def defaulted(s: Scenario) -> Scenario:
    """policyTypes as the API server stores them (Ingress, plus Egress if len(egress) != 0)."""
    return s.with_policies(replace(p, policy_types=p.types) for p in s.policies)


def without_ignored_rules(s: Scenario) -> Scenario:
    def strip(p: NetworkPolicy) -> NetworkPolicy:
        if p.policy_types is None:
            return p
        return replace(p, ingress=p.ingress if "Ingress" in p.policy_types else None,
                       egress=p.egress if "Egress" in p.policy_types else None)
    return s.with_policies(strip(p) for p in s.policies)


# --------------------------------------------------------------------------- NCA's output

_LINE = re.compile(r"^(\S+)\[Pod\] => (\S+)\[Pod\] : (.*)$")


def parse(text: str) -> dict[tuple[str, str], list[tuple[set[str] | None, list[tuple[int, int]] | None]]]:
    """(client, destination) -> allowed (protocols or None = all, port ranges or None = all)."""
    out: dict = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        src, dst, conns = m.groups()
        if conns.strip() == "All connections":
            out.setdefault((src, dst), []).append((None, None))
            continue
        groups = []
        for body in re.findall(r"\{([^}]*)\}", conns):
            protos, _, ports = body.partition("dst_ports:")
            names = {p for p in protos.replace("protocols:", "").split(",") if p}
            ranges = None
            if ports:
                ranges = [(int(a), int(b or a)) for a, _, b in
                          (item.partition("-") for item in ports.split(",") if item)]
            groups.append((names, ranges))
        assert groups, f"unparsed NCA line: {line}"
        out.setdefault((src, dst), []).extend(groups)  # one line per protocol group
    return out


def nca_allows(conn: dict, client: str, dst: str, port: int, protocol: str) -> bool:
    for protos, ranges in conn.get((client, dst), ()):
        if (protos is None or protocol in protos) and (
                ranges is None or any(a <= port <= b for a, b in ranges)):
            return True
    return False


# --------------------------------------------------------------------------- the comparison


def _states() -> list[tuple[str, Scenario]]:
    out = []
    for case in cases():
        w = _addressed(case.workload)
        out += [(f"{case.id}/{s.name}", s.build(w)) for s in case.steps]
    return out


def _run_nca(states: list[tuple[str, Scenario]], tmp: Path) -> list[dict]:
    for i, (_, s) in enumerate(states):
        docs = [o.to_manifest() for o in s.objects() if not isinstance(o, Service)]
        (tmp / f"{i:05d}.yaml").write_text(yaml.safe_dump_all(docs))
    r = subprocess.run([str(NCA_PYTHON), str(ROOT / "tests" / "nca_connectivity.py"), str(tmp)],
                       check=False, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return [parse((tmp / f"{i:05d}.txt").read_text()) for i in range(len(states))]


def test_oracle_agrees_with_nca_on_every_generated_state(tmp_path: Path) -> None:
    states = _states()
    assert shutil.which(str(NCA_PYTHON)) and len(states) > 400
    nca_input = [(name, ipblocks_outside(without_ignored_rules(defaulted(s)))) for name, s in states]
    conns = _run_nca(nca_input, tmp_path)
    compared = ignored_checked = service_checked = 0
    classes = {"ipBlock": 0, "pod Exists scope": 0}
    disagreements = []
    for (name, original), (_, seen_by_nca), conn in zip(states, nca_input, conns, strict=True):
        oracle, stripped = Oracle(original), Oracle(without_ignored_rules(original))
        outside = Oracle(seen_by_nca)  # what the oracle says with ipBlocks outside the cluster
        reference = Oracle(exists_in_own_namespace(seen_by_nca))  # and NCA's Exists scope
        for probe in oracle.probes():
            got = oracle.expect(probe).verdict
            if got not in (ALLOW, DENY):
                continue
            if probe.path == "service":
                svc = next(s for s in original.services if s.key == probe.target)
                sp = next(p for p in svc.ports if p.port == probe.port and p.protocol == probe.protocol)
                (pod, tp), = resolve_endpoints(svc, sp.target_port, sp.protocol, original.backends(svc))
                want = oracle.pod_verdict(original.pod(probe.client), pod, tp, probe.protocol)[0]
                # The Service verdict is its backend's at the resolved targetPort (a pod cell
                # compared with NCA below: targetPorts are listeners, always probed).
                assert got == want, (name, probe)
                service_checked += 1
                continue
            # The API ignores rules of a direction policyTypes leaves out: so must the oracle.
            assert stripped.expect(probe).verdict == got, (name, probe)
            ignored_checked += 1
            expected = reference.expect(probe).verdict
            classes["ipBlock"] += outside.expect(probe).verdict != got
            classes["pod Exists scope"] += expected != outside.expect(probe).verdict
            nca = ALLOW if nca_allows(conn, probe.client, probe.target, probe.port, probe.protocol) else DENY
            compared += 1
            if nca != expected:
                disagreements.append((name, probe, expected, nca))
    assert not disagreements, f"{len(disagreements)} of {compared} cells disagree: {disagreements[:5]}"
    assert compared > 50_000 and service_checked > 50_000 and ignored_checked == compared
    # Each class is real: the generated rows reach it, and only its cells are taken away.
    assert all(classes.values()), classes


def _empty_egress_pods(s: Scenario) -> set[str]:
    """Pods selected by a policy with `egress: []` and no policyTypes."""
    return {p.key for pol in s.policies if pol.policy_types is None and pol.egress == ()
            for p in s.pods if p.namespace == pol.namespace and pol.pod_selector.matches(p.label_map)}


def test_nca_isolates_egress_for_an_empty_egress_list_and_the_api_does_not(tmp_path: Path) -> None:
    states = [(n, s) for n, s in _states() if _empty_egress_pods(s)]
    assert states
    raw = [(name, ipblocks_outside(s)) for name, s in states]
    differ = 0
    for (name, s), conn in zip(raw, _run_nca(raw, tmp_path), strict=True):
        oracle, pods = Oracle(exists_in_own_namespace(s)), _empty_egress_pods(s)
        for probe in oracle.probes():
            got = oracle.expect(probe).verdict
            if probe.path != "pod" or got not in (ALLOW, DENY):
                continue
            nca = ALLOW if nca_allows(conn, probe.client, probe.target, probe.port, probe.protocol) else DENY
            if nca != got:
                assert (got, nca) == (ALLOW, DENY) and probe.client in pods, (name, probe)
                differ += 1
    assert differ > 0


def test_parse_reads_nca_lines() -> None:
    conn = parse("x/a[Pod] => y/b[Pod] : {protocols:TCP,dst_ports:80,82-90},{protocols:UDP}\n"
                 "x/b[Pod] => y/b[Pod] : All connections\n0.0.0.0-255.255.255.255 => x/a[Pod] : All\n")
    assert nca_allows(conn, "x/a", "y/b", 85, "TCP") and not nca_allows(conn, "x/a", "y/b", 81, "TCP")
    assert nca_allows(conn, "x/a", "y/b", 5, "UDP") and not nca_allows(conn, "x/a", "y/b", 80, "SCTP")
    assert nca_allows(conn, "x/b", "y/b", 1, "SCTP") and not nca_allows(conn, "y/b", "x/a", 80, "TCP")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
