"""`make bench`: the numbers the suite's design claims, measured on the OVN lab.

(a) one batched probe round of a case (9 clients x every destination x both paths x TCP and
    UDP) against the probe timeout;
(b) the batched agent against one process per probe (how the upstream e2e and Cyclonus
    probe: one exec per cell), on the same matrix, as a ratio measured in one run;
(c) oracle throughput (probes per second) on a 100-pod scenario;
(d) policy convergence in the lab: time from applying a policy until the dataplane agrees.

Prints a table and writes the numbers as JSON beside the reports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeovn_conformance.backends.base import Target
from kubeovn_conformance.builders import deny_all, peer, policy, rule, select, upstream_ground
from kubeovn_conformance.oracle import Oracle
from kubeovn_conformance.runner import Case, Runner, Step


def _cases() -> list[Case]:
    """Three cases on the upstream ground (9 pods, TCP and UDP, a Service per pod)."""
    ground = upstream_ground(protocols=("TCP", "UDP"), service_offset=8000)
    allow_b = policy("x", "allow-from-b", select(pod="a"), ingress=[rule(peer(pods=select(pod="b")))])
    allow_c = policy("x", "allow-from-b", select(pod="a"), ingress=[rule(peer(pods=select(pod="c")))])

    def one(case_id: str, *states: tuple[str, Any]) -> Case:
        return Case(case_id, "ingress", ground, tuple(
            Step(name, lambda w, pols=pols: w.with_policies(pols)) for name, pols in states))

    return [one("ingress-allow-pod-label", ("initial", [allow_b])),
            one("default-deny-ingress", ("initial", [deny_all("x")])),
            one("egress-allow-namespace", ("initial", [policy(
                "x", "to-y", select(pod="a"), egress=[rule(peer(namespaces=select(ns="y")))])])),
            one("policy-update-delete", ("allow-b", [allow_b]), ("update-to-c", [allow_c]),
                ("delete", []))]


def _matrix(runner: Runner, case: Case) -> list[tuple[str, Target]]:
    """(client, target) for every probe of the case's first step, as the runner builds them."""
    live = runner.realize(case.workload)
    scenario = case.steps[0].build(live)
    oracle = Oracle(scenario)
    probes = [p for p in oracle.probes() if p.protocol in ("TCP", "UDP")]
    cells = runner._cells(scenario, oracle.expectations(probes))
    return [(c.probe.client, c.target) for c in cells]


def _batched_round(backend: Any, matrix: list[tuple[str, Target]], timeout: float) -> float:
    by_client: dict[str, list[Target]] = {}
    for client, target in matrix:
        by_client.setdefault(client, []).append(target)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(by_client)) as pool:
        list(pool.map(lambda c: backend.probe(c, by_client[c], timeout), by_client))
    return time.monotonic() - start


def _per_probe_round(backend: Any, matrix: list[tuple[str, Target]], timeout: float,
                     workers: int) -> float:
    """One agent process per probe, `workers` at a time (as many as the batched clients)."""
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda ct: backend.probe(ct[0], [ct[1]], timeout), matrix))
    return time.monotonic() - start


def run(probe_timeout: float = 1.0, out_dir: Path = Path("reports")) -> dict[str, Any]:
    from kubeovn_conformance import bench_oracle
    from kubeovn_conformance.backends.lab.backend import LabBackend

    by_id = {c.id: c for c in _cases()}
    results: dict[str, Any] = {"probe_timeout_s": probe_timeout}
    backend = LabBackend(mode="overlay")
    runner = Runner(backend, probe_timeout=probe_timeout)
    try:
        # (a) a round with denies in it: the round lasts about one timeout, not one per cell.
        deny_case = by_id["ingress-allow-pod-label"]
        matrix = _matrix(runner, deny_case)
        backend.reconcile(deny_case.steps[0].build(runner.realize(deny_case.workload)))
        rounds = [_batched_round(backend, matrix, probe_timeout) for _ in range(3)]
        results["round"] = {"probes": len(matrix), "clients": len({c for c, _ in matrix}),
                            "seconds_median": statistics.median(rounds),
                            "ratio_to_timeout": statistics.median(rounds) / probe_timeout}
        # (b) same matrix, no policy (every cell answers: the fairest case for per-probe).
        backend.reconcile(runner.realize(deny_case.workload))
        batched = statistics.median(_batched_round(backend, matrix, probe_timeout) for _ in range(3))
        clients = len({c for c, _ in matrix})
        per_probe = _per_probe_round(backend, matrix, probe_timeout, clients)
        results["batching"] = {"probes": len(matrix), "batched_s": batched,
                               "one_process_per_probe_s": per_probe,
                               "speedup": per_probe / batched}
        # (d) convergence of a few representative cases.
        conv = {}
        for case_id in ("default-deny-ingress", "egress-allow-namespace", "policy-update-delete"):
            report = runner.run_case(by_id[case_id])
            conv[case_id] = {"outcome": report.outcome,
                             "steps_ms": [s.convergence_ms for s in report.steps]}
        results["convergence"] = conv
    finally:
        runner.close()
    # (c) the oracle alone.
    results["oracle"] = bench_oracle.run()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=1))
    results["path"] = str(path)
    return results


def table(r: dict[str, Any]) -> str:
    rnd, bat, orc = r["round"], r["batching"], r["oracle"]
    rows = [
        ("(a) one probe round", f"{rnd['probes']} probes, {rnd['clients']} clients",
         f"{rnd['seconds_median']:.2f} s = {rnd['ratio_to_timeout']:.2f} x timeout "
         f"({r['probe_timeout_s']} s)"),
        ("(b) batched vs one process per probe", f"{bat['probes']} probes",
         f"{bat['batched_s']:.2f} s vs {bat['one_process_per_probe_s']:.2f} s = "
         f"{bat['speedup']:.1f}x faster"),
        ("(c) oracle throughput", f"{orc['probes']} probes",
         f"{orc['seconds']:.2f} s = {orc['probes_per_second']:,.0f} probes/s"),
    ]
    for case_id, c in r["convergence"].items():
        steps = ", ".join("-" if v is None else f"{v:.0f} ms" for v in c["steps_ms"])
        rows.append(("(d) convergence", case_id, f"{steps} ({c['outcome']})"))
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    lines = [f"{'measure'.ljust(w0)}  {'on'.ljust(w1)}  result"]
    lines += [f"{a.ljust(w0)}  {b.ljust(w1)}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeovn_conformance.bench",
                                     description="measure the lab, the agent and the oracle")
    parser.add_argument("--probe-timeout", type=float, default=1.0)
    parser.add_argument("--out", default="reports", help="directory for the JSON (default reports)")
    args = parser.parse_args(argv)
    r = run(args.probe_timeout, Path(args.out))
    print(table(r))
    print(f"\nwritten to {r['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
