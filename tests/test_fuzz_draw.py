"""The fuzzer's draw: deterministic, well-formed, and speaking the whole vocabulary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from kubeovn_conformance.backends.lab.topology import SUBNETS
from kubeovn_conformance.fuzz.draw import draw, malformed
from kubeovn_conformance.model import Rule, Scenario, scenario_from_documents
from kubeovn_conformance.oracle import Oracle

ROOT = Path(__file__).resolve().parent.parent
DRAWS = [draw(seed, index) for seed in range(10) for index in range(20)]


def _manifests(s: Scenario) -> str:
    return json.dumps([o.to_manifest() for o in s.objects()], sort_keys=True)


def test_the_same_seed_and_index_give_the_same_scenario() -> None:
    assert draw(7, 3) == draw(7, 3)
    assert draw(7, 3, "underlay") == draw(7, 3, "underlay")
    assert len({_manifests(d) for d in DRAWS}) == len(DRAWS)  # and different ones differ


def test_the_draw_does_not_depend_on_hash_randomization() -> None:
    code = ("import json; from kubeovn_conformance.fuzz.draw import draw; "
            "print(json.dumps([[o.to_manifest() for o in draw(s, i).objects()] "
            "for s in (1, 7) for i in range(5)], sort_keys=True))")
    outputs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout
               for h in (1, 2, 3)}
    assert len(outputs) == 1


def test_pods_carry_the_addresses_the_lab_gives_them_in_order() -> None:
    for mode in ("overlay", "underlay"):
        s = draw(4, 1, mode)
        assert [p.ip for p in s.pods] == [SUBNETS[mode].pod_ip(i) for i in range(len(s.pods))]


def test_every_draw_is_well_formed_and_survives_its_manifests() -> None:
    # What the API server would accept (the model validates on load), what the runner can
    # judge (one expected observation per verdict), and identical after a round trip.
    for s in DRAWS:
        assert malformed(s) is None
        docs = [("draw", o.to_manifest()) for o in s.objects()]
        assert scenario_from_documents(docs) == s
        assert 2 <= len(s.pods) <= 5 and 1 <= len(s.policies) <= 3
        for svc in s.services:
            assert all(sp.port != sp.target_port for sp in svc.ports)


def _features(s: Scenario) -> set[str]:
    out = set()
    for svc in s.services:
        out |= {"named-target" if isinstance(sp.target_port, str) else "numeric-target"
                for sp in svc.ports}
    for pod in s.pods:
        out |= {f"{c.protocol}-listener" for c in pod.ports} | {"named-container-port"
                                                               for c in pod.ports if c.name}
    for pol in s.policies:
        if pol.name[0].isdigit():
            out.add("digit-name")
        if pol.policy_types is None:
            out.add("defaulted-types")
        for direction in ("Ingress", "Egress"):
            rules = pol.rules(direction)
            if direction not in pol.types and rules:
                out.add("types-leave-out-rules")
            if (pol.ingress if direction == "Ingress" else pol.egress) == ():
                out.add(f"{direction}-empty-list")
            out |= {f"{direction}-rule" for _ in rules}
        sels = [pol.pod_selector]
        for rule in (*(pol.ingress or ()), *(pol.egress or ())):
            out.add("any-peer" if rule.peers is None else "peers")
            out.add("any-port" if rule.ports is None else "ports")
            for peer in rule.peers or ():
                if peer.ip_block:
                    out.add("ipblock-except" if peer.ip_block.excepts else "ipblock")
                elif peer.pod_selector is not None and peer.namespace_selector is not None:
                    out.add("pod-and-namespace")
                sels += [x for x in (peer.pod_selector, peer.namespace_selector) if x is not None]
            for port in rule.ports or ():
                if port.port is None:
                    out.add("protocol-only")
                elif isinstance(port.port, str):
                    out.add("named-port")
                elif port.end_port is not None:
                    inside = any(c.port == n and c.protocol == port.protocol for p in s.pods
                                 for c in p.ports for n in range(port.port + 1, port.end_port + 1))
                    out.add("range-listener-inside" if inside else "range")
        for sel in sels:
            out |= {"empty-selector"} if sel.is_empty else set()
            out |= {f"op-{r.operator}" for r in sel.match_expressions}
            out |= {"match-labels" for _ in sel.match_labels}
    return out


def test_the_vocabulary_is_all_drawn() -> None:
    seen = Counter(f for s in DRAWS for f in _features(s))
    wanted = {"named-target", "numeric-target", "TCP-listener", "UDP-listener", "named-container-port",
              "digit-name", "defaulted-types", "types-leave-out-rules", "Ingress-empty-list",
              "Egress-empty-list", "Ingress-rule", "Egress-rule", "any-peer", "peers", "any-port",
              "ports", "ipblock", "ipblock-except", "pod-and-namespace", "protocol-only",
              "named-port", "range-listener-inside", "empty-selector", "op-In", "op-NotIn",
              "op-Exists", "op-DoesNotExist", "match-labels"}
    assert wanted <= set(seen), wanted - set(seen)


def _first_port_only(s: Scenario) -> Scenario:
    """What a translation that ignores endPort enforces (the endport-ignored corpus entry)."""
    def rules(rs: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
        return None if rs is None else tuple(
            replace(r, ports=None if r.ports is None else tuple(replace(p, end_port=None) for p in r.ports))
            for r in rs)
    return s.with_policies(replace(p, ingress=rules(p.ingress), egress=rules(p.egress)) for p in s.policies)


def test_endport_ranges_with_listeners_inside_decide_cells_often() -> None:
    # The fuzzer must find the endPort bug within a few scenarios: count the draws where
    # ignoring endPort would deny a cell Kubernetes allows.
    def exposed(s: Scenario) -> bool:
        right = {e.probe: e.verdict for e in Oracle(s).expectations()}
        wrong = {e.probe: e.verdict for e in Oracle(_first_port_only(s)).expectations()}
        return any(v == "allow" and wrong.get(p) == "deny" for p, v in right.items())

    assert sum(exposed(s) for s in DRAWS) >= len(DRAWS) // 5
