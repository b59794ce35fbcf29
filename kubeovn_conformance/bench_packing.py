"""`make bench` (packing): the same cases unpacked and packed, side by side in one run.

Runs the packable cases of a suite (default: the upstream ground's) on the OVN lab, first
one by one, then packed K at a time (packing.py), and prints cases per minute for both and
where the time goes (setup, apply, probe rounds, reset, teardown). Needs root and the lab.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

from kubeovn_conformance.cases import Case
from kubeovn_conformance.packing import groups, pack, packable

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("setup", "apply", "probe", "reset", "teardown")


def suite_cases(path: Path) -> list[Case]:
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [c for c in getattr(module, "CASES", []) if packable(c)
            and {p.protocol for pod in c.workload.pods for p in pod.ports} <= {"TCP", "UDP"}]


def measure(cases: list[Case], size: int, mode: str) -> dict[str, Any]:
    from kubeovn_conformance.backends.lab.backend import LabBackend
    from kubeovn_conformance.runner import Runner

    runner = Runner(LabBackend(mode=mode))
    start = time.monotonic()
    outcomes: list[str] = []
    try:
        for group in groups(cases, size):
            reports = (runner.run_pack(pack(group, slots=size)) if len(group) > 1
                       else [runner.run_case(group[0])])
            outcomes += [r.outcome for r in reports]
    finally:
        runner.close()
    seconds = time.monotonic() - start
    return {"pack": size, "cases": len(cases), "seconds": round(seconds, 1),
            "cases_per_minute": round(60 * len(cases) / seconds, 1),
            "probes": runner.probes_sent, "rounds": runner.probe_rounds,
            "time": {k: round(runner.timings.get(k, 0.0), 1) for k in PHASES},
            "failed": sum(1 for o in outcomes if o != "pass")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kubeovn_conformance.bench_packing",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=str(ROOT / "suites" / "test_upstream_ground.py"))
    ap.add_argument("--pack", type=int, default=8)
    ap.add_argument("--mode", default="overlay", choices=("overlay", "underlay"))
    ap.add_argument("--out", default="reports", help="directory for bench-packing.json")
    args = ap.parse_args(argv)
    path = Path(args.suite)
    if not path.is_file():
        print(f"bench: {path}: no such suite file", file=sys.stderr)
        return 2
    cases = suite_cases(path)
    rows = [measure(cases, 1, args.mode), measure(cases, args.pack, args.mode)]
    print(f"| pack | cases | seconds | cases/min | probes | rounds | "
          f"{' | '.join(PHASES)} | failed |")
    print("|---" * (7 + len(PHASES)) + "|")
    for r in rows:
        print(f"| {r['pack']} | {r['cases']} | {r['seconds']} | {r['cases_per_minute']} | "
              f"{r['probes']} | {r['rounds']} | {' | '.join(str(r['time'][k]) for k in PHASES)} | "
              f"{r['failed']} |")
    ratio = rows[1]["cases_per_minute"] / max(rows[0]["cases_per_minute"], 0.1)
    print(f"packed / unpacked: {ratio:.1f}x cases per minute")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-packing.json").write_text(json.dumps({"rows": rows, "ratio": round(ratio, 2)},
                                                       indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
