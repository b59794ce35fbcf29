"""A synthetic night for measuring the reports: many runs of many cases, written the way the
runner writes them (results.jsonl through `results.RunInfo`, cases.jsonl, summary.json), so
`report`, `diff` and the page can be timed and sized without a cluster or a lab.

Deterministic: the same arguments write the same records (summary timestamps included).
Nothing here is a measurement of Kube-OVN; the verdicts follow a simple policy model per
case and the planted failures are chosen by a seeded generator. What is realistic is the
shape of the data: a real night's record count per cell (the upstream ground workload is 9
pods x 9 Services x 2 ports x 2 protocols = 612 probes per step), the oracle's reason
texts, hairpin probes that are undefined, multi-step cases, leaks, infra errors, skipped
cases, known issues and, for kind, node placement on every record.

    python -m kubeovn_conformance.report.synthetic OUT [--cases 300] [--versions N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeovn_conformance.results import RunInfo

VERSIONS = ("v1.12.35", "v1.13.15", "v1.14.41", "v1.15.24", "v1.16.2")
MODES = ("overlay", "underlay")
NODES = ("kind-control-plane", "kind-worker")
STARTED = 1796083200.0  # 2026-12-01T00:00:00Z: fixed, so summaries are reproducible too
KNOWN_ISSUE = "https://github.com/kubeovn/kube-ovn/issues/0000"  # synthetic, never a real report


@dataclass(frozen=True)
class Shape:
    """A workload: every pod listens on every port and protocol and sits behind a Service
    whose port is the pod's port + `offset` (port != targetPort, as in the suites)."""

    name: str
    namespaces: tuple[str, ...]
    pods: tuple[str, ...]
    ports: tuple[int, ...]
    protocols: tuple[str, ...]
    offset: int = 8000

    def probes_per_step(self) -> int:
        n = len(self.namespaces) * len(self.pods)
        return n * (2 * n - 1) * len(self.ports) * len(self.protocols)


GROUND = Shape("ground", ("x", "y", "z"), ("a", "b", "c"), (80, 81), ("TCP", "UDP"))
PAIR = Shape("pair", ("x", "y"), ("a", "b", "c"), (80, 81), ("TCP", "UDP"))
GAP = Shape("gap", ("x", "y"), ("server", "client"), (8000,), ("TCP",), offset=-7920)
HAIRPIN = Shape("hairpin", ("x",), ("a",), (80,), ("TCP",))  # only a pod to its own Service
# (shape, steps, weight): on average about 500 records per case, as measured on the lab
# (517k probe records for 1,050 cells, issue 9).
MIX = ((GROUND, 1, 40), (GROUND, 2, 15), (PAIR, 1, 25), (GAP, 1, 19), (GAP, 3, 1))
LIGHT = ((GAP, 1, 9), (GAP, 3, 1))  # the same grid with few records: for a quick browser test


def _rng(*key: object) -> random.Random:
    digest = hashlib.sha256("\0".join(map(str, key)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Case:
    name: str
    shape: Shape
    steps: int
    direction: str  # ingress | egress | both | none
    skipped: bool = False
    planted: str | None = None  # a fate this case has in some columns whatever the draw

    @property
    def step_names(self) -> list[str]:
        return ["initial"] + [f"update-{i}" for i in range(1, self.steps)]


def cases(count: int, seed: int = 0, mix: tuple[tuple[Shape, int, int], ...] = MIX) -> list[Case]:
    """`count` cases, named after what they vary, like the generated suite's ids."""
    rng = _rng("cases", seed)
    out = []
    for i in range(count):
        shape, steps, _ = rng.choices(mix, weights=[w for *_, w in mix])[0]
        direction = rng.choice(("ingress", "ingress", "egress", "both", "none"))
        port = rng.choice(("pod-port", "service-port", "named-target", "endport", "any-port"))
        peer = rng.choice(("ns", "pod", "ns-and-pod", "two-peers", "ipblock-except"))
        out.append(Case(f"gen-{direction}-peer-{peer}-{port}-{shape.name}-{i:03d}", shape, steps,
                        direction, skipped=rng.random() < 0.01))
    # However few the cases, each thing a report shows is there at least once.
    planted = [Case("gen-skipped-sctp-000", GAP, 1, "ingress", skipped=True),
               Case("gen-undefined-hairpin-000", HAIRPIN, 1, "none"),
               Case("gen-ingress-planted-fail-000", GROUND, 2, "ingress", planted="fail"),
               Case("gen-ingress-planted-infra-error-000", PAIR, 1, "ingress", planted="infra-error"),
               Case("gen-ingress-peer-ns-named-target-planted-000", GROUND, 1, "ingress")]  # known
    return planted[:count] + out[len(planted):] if count >= 2 * len(planted) else out


def _policy(case: Case, step: int) -> dict[str, Any]:
    """Which namespace is isolated, and the one (peer namespace, port, protocol) allowed."""
    rng = _rng("policy", case.name, step)
    s = case.shape
    return {"isolated": rng.choice(s.namespaces), "peer": rng.choice(s.namespaces),
            "port": rng.choice(s.ports), "protocol": rng.choice(s.protocols),
            "name": f"{rng.choice(s.namespaces)}/{case.name[:40]}-{step}"}


def _side(case: Case, pol: dict[str, Any], word: str, subject: str, peer: str, port: int,
          protocol: str) -> tuple[bool, str]:
    ns = subject.split("/", 1)[0]
    if case.direction not in (word, "both") or ns != pol["isolated"]:
        return True, f"{subject} {word} not isolated"
    name = f"{ns}/{pol['name'].split('/', 1)[1]}"
    if peer.split("/", 1)[0] == pol["peer"] and port == pol["port"] and protocol == pol["protocol"]:
        return True, (f"{subject} {word} allowed by {name} {word}[0] "
                      f"(namespaceSelector kubernetes.io/metadata.name={pol['peer']})")
    other = "from" if word == "ingress" else "to"
    return False, f"{subject} {word} isolated by {name}; no rule allows {protocol}/{port} {other} {peer}"


def _verdict(case: Case, pol: dict[str, Any], client: str, pod: str, port: int,
             protocol: str) -> tuple[str, str]:
    eg_ok, eg = _side(case, pol, "egress", client, pod, port, protocol)
    in_ok, ing = _side(case, pol, "ingress", pod, client, port, protocol)
    if eg_ok and in_ok:
        return "allow", f"{eg}; {ing}"
    return "deny", "; ".join(r for ok, r in ((eg_ok, eg), (in_ok, ing)) if not ok)


def expectations(case: Case, step: int) -> Iterator[dict[str, Any]]:
    """The oracle's part of each record of one step: every client to every other pod and to
    every Service (its own Service is hairpin: undefined)."""
    s, pol = case.shape, _policy(case, step)
    pods = [f"{ns}/{p}" for ns in s.namespaces for p in s.pods]
    for client in pods:
        for protocol in s.protocols:
            for port in s.ports:
                for pod in pods:
                    if pod == client:
                        continue  # loopback is skipped, as upstream does
                    verdict, reason = _verdict(case, pol, client, pod, port, protocol)
                    yield {"client": client, "target": pod, "path": "pod", "port": port,
                           "target_port": port, "protocol": protocol, "verdict": verdict,
                           "reason": reason, "expected_observed": _expected(verdict)}
                for pod in pods:
                    ns, name = pod.split("/")
                    svc, sport = f"{ns}/svc/{name}", port + s.offset
                    via = f"via {svc}:{sport}/{protocol}"
                    if pod == client:
                        verdict, reason = "undefined", (f"{via}: {client} reaches itself through its "
                                                        "own Service (hairpin), implementation-defined")
                    else:
                        verdict, why = _verdict(case, pol, client, pod, port, protocol)
                        reason = f"{via} -> {pod}:{port}: {why}"
                    yield {"client": client, "target": svc, "path": "service", "port": sport,
                           "target_port": port, "protocol": protocol, "verdict": verdict,
                           "reason": reason, "expected_observed": _expected(verdict)}


def _expected(verdict: str) -> str | None:
    return {"allow": "connected", "deny": "timeout"}.get(verdict)


def _fate(case: Case, version: str, mode: str, seed: int, night: int) -> str:
    """pass | fail | known | infra-error | skipped for one cell; `night` shifts a few fates."""
    if case.skipped:
        return "skipped"
    rng = _rng("fate", seed, night, case.name, version, mode)
    old = VERSIONS.index(version) if version in VERSIONS else 2
    if case.planted:  # on the oldest versions' overlay, and on any version in another night
        return case.planted if (old == 0 and mode == "overlay") or night else "pass"
    if "named-target" in case.name and old <= 1 and mode == "underlay" and case.direction != "none":
        return "known"  # matched by the known-issues file `write_known` writes
    roll = rng.random()
    if roll < 0.003:
        return "infra-error"
    return "fail" if roll < 0.003 + 0.01 * (5 - old) and case.direction != "none" else "pass"


def records(case: Case, version: str, mode: str, fate: str, seed: int) -> Iterator[dict[str, Any]]:
    """Every probe record of one case in one column, as the runner writes them (minus the
    run's own fields, which RunInfo adds)."""
    where = _rng("placement", seed, case.name)  # the same nodes in every cluster, as placement.place()
    node = {f"{ns}/{p}": where.choice(NODES) for ns in case.shape.namespaces for p in case.shape.pods}
    rng = _rng("records", seed, case.name, version, mode)
    broken = rng.choice(case.shape.namespaces)  # the clients a failure or an error hits
    for index, step in enumerate(case.step_names):
        converged = None if fate in ("fail", "known") else round(rng.uniform(90.0, 3200.0), 1)
        leaky = index > 0 and (case.planted is not None or rng.random() < 0.05)
        for e in expectations(case, index):
            observed, outcome, attempts = e["expected_observed"], "pass", 1
            if e["verdict"] == "deny":
                attempts = 2  # a deny counts after two timeouts
            if e["verdict"] == "undefined":
                observed, outcome = ("connected" if mode == "overlay" else "timeout"), "undefined"
            elif fate in ("fail", "known") and e["client"].startswith(broken + "/") \
                    and e["path"] == "service" and e["verdict"] == "deny":
                observed, outcome, attempts = "connected", "fail", rng.randint(3, 6)
            elif fate == "infra-error" and e["client"] == f"{broken}/{case.shape.pods[0]}":
                observed, outcome = "error", "infra-error"
            rec = {**e, "case": case.name, "step": step, "direction": case.direction,
                   "observed": observed, "outcome": outcome, "attempts": attempts,
                   "elapsed_ms": round(rng.uniform(0.4, 1900.0), 2), "convergence_ms": converged}
            if outcome == "infra-error":
                rec["detail"] = f"probe agent: exec into {e['client']} failed: connection reset by peer"
            if leaky and outcome == "pass" and e["verdict"] == "allow" and rng.random() < 0.02:
                rec.update(leaks=rng.randint(1, 3), held_leaks=0, leak_span_ms=round(rng.uniform(50, 900), 1))
            if case.shape is not GROUND:
                rec["packed"] = 8
            pod = e["target"].replace("/svc/", "/")
            rec["placement"] = "same-node" if node[e["client"]] == node[pod] else "cross-node"
            yield rec


def write_run(directory: Path, night_cases: list[Case], version: str, mode: str, *,
              backend: str = "kind", seed: int = 0, night: int = 0, run_id: str | None = None) -> Path:
    run_id = run_id or directory.name
    run = RunInfo(run_id, backend, mode, version, version, directory, started=STARTED)
    run.prepare()
    for case in night_cases:
        fate = _fate(case, version, mode, seed, night)
        if fate == "skipped":
            run.case_record(case.name, direction=case.direction, outcome="skipped", probes=0,
                            mismatches=0, convergence_ms=None, duration_s=0.0,
                            skip_reason="needs SCTP in the node kernel (no sctp module)")
            continue
        recs = list(records(case, version, mode, fate, seed))
        run.probe_records(recs)
        outcomes = {r["outcome"] for r in recs}
        conv = [r["convergence_ms"] for r in recs]
        run.case_record(
            case.name, direction=case.direction,
            outcome="fail" if "fail" in outcomes else "infra-error" if "infra-error" in outcomes else "pass",
            probes=len(recs), mismatches=sum(1 for r in recs if r["outcome"] in ("fail", "infra-error")),
            convergence_ms=None if None in conv else max(conv),
            leaks=sum(int(r.get("leaks", 0)) for r in recs),
            duration_s=round(2.0 + len(recs) / 300.0, 3), skip_reason=None)
    summary = run.write_summary()
    summary["finished"] = "2026-12-01T06:00:00+00:00"
    (directory / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    return directory


def write_night(out: Path, cases_per_column: int = 300, versions: tuple[str, ...] = VERSIONS,
                modes: tuple[str, ...] = MODES, *, seed: int = 0, night: int = 0,
                backend: str = "kind", mix: tuple[tuple[Shape, int, int], ...] = MIX) -> list[Path]:
    """One run directory per (version, mode) under `out`, like a nightly artifact."""
    night_cases = cases(cases_per_column, seed, mix)
    return [write_run(Path(out) / f"night-{night}-{version}-{mode}", night_cases, version, mode,
                      backend=backend, seed=seed, night=night)
            for version in versions for mode in modes]


def write_known(path: Path) -> Path:
    """A known-issues file whose one entry explains the planted `known` cells."""
    path.write_text(
        "issues:\n"
        "  - id: synthetic-named-target\n"
        "    case: 'gen-*-named-target-*'\n"
        "    mode: underlay\n"
        "    versions: '<v1.14.0'\n"
        f"    url: {KNOWN_ISSUE}\n"
        "    explanation: synthetic entry for the report benchmark (planted, not a Kube-OVN report)\n",
        encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeovn_conformance.report.synthetic",
                                     description="Write a synthetic night of runs for report benchmarks.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--cases", type=int, default=300, help="cases per version and mode (300)")
    parser.add_argument("--versions", type=int, default=len(VERSIONS), help="how many versions (5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--night", type=int, default=0, help="another night: a few cells change")
    parser.add_argument("--light", action="store_true", help="few records per case (same grid)")
    args = parser.parse_args(argv)
    if not 1 <= args.versions <= len(VERSIONS) or args.cases < 1:
        parser.error(f"--versions must be 1 to {len(VERSIONS)} and --cases at least 1")
    runs = write_night(args.out, args.cases, VERSIONS[: args.versions], seed=args.seed,
                       night=args.night, mix=LIGHT if args.light else MIX)
    write_known(args.out / "known-issues.yaml")
    print(f"{args.out}: {len(runs)} runs of {args.cases} cases", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
