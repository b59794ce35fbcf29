"""How fast the oracle judges a whole matrix: `python -m kubeovn_conformance.bench_oracle`.

The scenario is pseudo-random but deterministic (fixed seed): namespaces with labels, pods
with labels, IPs and named ports, one Service per app and namespace (numeric and named
targetPorts, so both paths are probed), and policies mixing pod and namespace selectors,
match expressions, numeric, named and ranged ports, protocol-only rules and ipBlocks.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from kubeovn_conformance import builders as b
from kubeovn_conformance.model import NetworkPolicy, Scenario
from kubeovn_conformance.oracle import Oracle

APPS = ("web", "api", "db", "cache", "batch")
TIERS = ("front", "back")
TEAMS = ("red", "blue", "green")
PROTOCOLS = ("TCP", "UDP")


def _port(k: int) -> tuple[int, str, str]:
    """Container port k of every pod: number, protocol, name."""
    return 8000 + k, PROTOCOLS[k % 2], f"p{k}"


def scenario(pods: int = 100, namespaces: int = 10, policies: int = 30, ports: int = 4,
             seed: int = 0) -> Scenario:
    rng = random.Random(seed)
    nss = [b.namespace(f"ns{i}", team=rng.choice(TEAMS), env=rng.choice(("prod", "dev")))
           for i in range(namespaces)]
    cports = [b.container_port(n, proto, name) for n, proto, name in map(_port, range(ports))]
    pod_objs = []
    for i in range(pods):
        ns = nss[i % namespaces].name
        labels = {"app": rng.choice(APPS), "tier": rng.choice(TIERS)}
        if rng.random() < 0.3:
            labels["canary"] = "true"
        pod_objs.append(b.pod(ns, f"pod{i}", labels, cports, ip=f"10.{16 + i // 250}.{i % 250}.10"))
    present = sorted({(p.namespace, p.label_map["app"]) for p in pod_objs})
    services = []
    for ns, app in present:
        k = rng.randrange(ports)
        number, proto, name = _port(k)
        target: int | str = name if rng.random() < 0.5 else number
        services.append(b.service(ns, f"svc-{app}", {"app": app}, b.service_port(80 + k, target, proto)))
    pols = [_policy(rng, i, nss, ports) for i in range(policies)]
    return Scenario(tuple(nss), tuple(pod_objs), tuple(services), tuple(pols))


def _selector(rng: random.Random):  # type: ignore[no-untyped-def]
    roll = rng.random()
    if roll < 0.2:
        return b.select()
    if roll < 0.6:
        return b.select(app=rng.choice(APPS))
    if roll < 0.8:
        return b.select(b.expr("app", "In", *rng.sample(APPS, 2)))
    return b.select(b.expr("canary", rng.choice(("Exists", "DoesNotExist"))), tier=rng.choice(TIERS))


def _rule(rng: random.Random, ports: int):  # type: ignore[no-untyped-def]
    peers = []
    for _ in range(rng.randint(0, 2)):
        roll = rng.random()
        if roll < 0.4:
            peers.append(b.peer(pods=_selector(rng)))
        elif roll < 0.6:
            peers.append(b.peer(namespaces=b.select(team=rng.choice(TEAMS))))
        elif roll < 0.85:
            peers.append(b.peer(pods=_selector(rng), namespaces=b.select(env=rng.choice(("prod", "dev")))))
        else:
            peers.append(b.block("10.16.0.0/16", f"10.16.{rng.randrange(250)}.0/24"))
    rule_ports = None
    if rng.random() < 0.7:
        rule_ports = []
        for _ in range(rng.randint(1, 2)):
            number, proto, name = _port(rng.randrange(ports))
            roll = rng.random()
            if roll < 0.4:
                rule_ports.append(b.port(number, proto))
            elif roll < 0.7:
                rule_ports.append(b.port(name, proto))
            elif roll < 0.9:
                rule_ports.append(b.port(number, proto, end=number + rng.randint(1, 3)))
            else:
                rule_ports.append(b.port(protocol=proto))
    return b.rule(*peers, ports=rule_ports)


def _policy(rng: random.Random, i: int, nss, ports: int) -> NetworkPolicy:  # type: ignore[no-untyped-def]
    ns = rng.choice(nss).name
    kind = rng.random()
    ingress = [_rule(rng, ports) for _ in range(rng.randint(0, 2))] if kind < 0.8 else None
    egress = [_rule(rng, ports) for _ in range(rng.randint(0, 2))] if kind > 0.5 else None
    types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
    return b.policy(ns, f"np{i}", _selector(rng), ingress=ingress, egress=egress, types=types)


def run(pods: int = 100, namespaces: int = 10, policies: int = 30, ports: int = 4,
        seed: int = 0) -> dict[str, Any]:
    """Judge every probe (both paths) of a generated scenario; time compilation and verdicts."""
    s = scenario(pods, namespaces, policies, ports, seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    oracle = Oracle(s)
    expectations = oracle.expectations()
    seconds = time.perf_counter() - start
    # CPU time of this process: what the oracle costs, whatever else the machine is doing
    cpu_seconds = time.process_time() - cpu_start
    by_path: dict[str, int] = {}
    for e in expectations:
        by_path[e.probe.path] = by_path.get(e.probe.path, 0) + 1
    return {"pods": pods, "namespaces": namespaces, "policies": policies, "ports": ports,
            "services": len(s.services), "probes": len(expectations), "by_path": by_path,
            "seconds": seconds, "cpu_seconds": cpu_seconds,
            "probes_per_second": len(expectations) / seconds if seconds else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeovn_conformance.bench_oracle",
                                     description="Time the oracle on a generated scenario.")
    parser.add_argument("--pods", type=int, default=100, help="number of pods (e.g. --pods 200)")
    parser.add_argument("--namespaces", type=int, default=10, help="e.g. --namespaces 10")
    parser.add_argument("--policies", type=int, default=30, help="e.g. --policies 30")
    parser.add_argument("--ports", type=int, default=4, help="container ports per pod (e.g. --ports 4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is shown (e.g. --repeat 5)")
    args = parser.parse_args(argv)
    best = min((run(args.pods, args.namespaces, args.policies, args.ports)
                for _ in range(max(1, args.repeat))), key=lambda r: r["seconds"])
    print(f"pods={best['pods']} namespaces={best['namespaces']} policies={best['policies']} "
          f"ports={best['ports']} services={best['services']}")
    print(f"probes={best['probes']} ({', '.join(f'{k}={v}' for k, v in sorted(best['by_path'].items()))})")
    print(f"seconds={best['seconds']:.3f} cpu_seconds={best['cpu_seconds']:.3f} "
          f"probes_per_second={best['probes_per_second']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
