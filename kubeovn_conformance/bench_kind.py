"""`make bench-kind`: what a nightly row asks of the API server, counted.

Every suite runs on the kind backend against the fake API server of the repository
(tests/fake_apiserver.py: real HTTP and exec WebSocket, real sockets for pods, the real
probe agent), the way the pytest plugin runs it (collection order, packs of --pack, the
same skips), and the fake counts each request by verb and resource. The fake enforces no
NetworkPolicy, so the bench runs with a deadline of 0: every step is probed exactly once,
the work of a cluster that converged at once (a real one re-probes while it converges and
confirms each deny once more: see the budget below). Its Services answer like kube-proxy
(the first endpoint's name), which the fake itself does not do.

Then the budget: the counts times per-operation costs that are assumptions, each with its
source, printed beside it. And the largest cost cut: both strategies run and are printed
side by side (`--strategy`), blocking namespace deletion between workloads ("baseline")
and deletion that does not block the next case ("overlap": kind.py `delete_wait`).

The fake is loaded from a file (`--fake`, default the repository's), so this module does
not import tests/ and the package installs without them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from kubeovn_conformance.bench_kind_costs import budget_lines, costs_table, row_budget
from kubeovn_conformance.bench_kind_fake import counts_by_kind, service_proxy_class

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_apiserver.py"
SUITES = ROOT / "suites"
CRDS = {"adminnetworkpolicies.policy.networking.k8s.io",
        "baselineadminnetworkpolicies.policy.networking.k8s.io",
        "clusternetworkpolicies.policy.networking.k8s.io"}
STRATEGIES = ("baseline", "overlap")
COLUMNS = ("cases", "setups", "ns+", "ns-", "pods+", "pods-", "svc+", "svc~", "pol+", "pol~",
           "pol-", "patch", "exec", "ready", "del-poll", "reads", "s")


@dataclass
class SuiteCount:
    suite: str
    strategy: str
    cases: int = 0
    skipped: int = 0
    infra_errors: list[str] = field(default_factory=list)
    setups: int = 0
    steps: int = 0
    rounds: int = 0
    seconds: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)

    def row(self) -> list[str]:
        r = self.requests
        values = [self.cases, self.setups, r.get("ns+", 0), r.get("ns-", 0), r.get("pods+", 0),
                  r.get("pods-", 0), r.get("svc+", 0), r.get("svc~", 0), r.get("pol+", 0),
                  r.get("pol~", 0), r.get("pol-", 0), r.get("patch", 0), r.get("exec", 0),
                  r.get("ready", 0), r.get("del-poll", 0), r.get("reads", 0), f"{self.seconds:.0f}"]
        return [self.suite] + [str(v) for v in values]


def load_fake(path: Path) -> ModuleType:
    if not path.is_file():
        raise SystemExit(f"bench-kind: no fake API server at {path} (run it from the repository)")
    spec = importlib.util.spec_from_file_location("kubeovn_bench_fake_apiserver", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and threads look their module up by name
    spec.loader.exec_module(module)
    return module


def suite_names(suites_dir: Path) -> list[str]:
    """The suites pytest collects, in its order (file name), without the case-file suite."""
    return [p.stem for p in sorted(suites_dir.glob("test_*.py")) if p.name != "test_case_file.py"]


def suite_cases(suites_dir: Path, name: str) -> list[Any]:
    if str(suites_dir.parent) not in sys.path:
        sys.path.insert(0, str(suites_dir.parent))
    module = importlib.import_module(f"{suites_dir.name}.{name}")
    cases = getattr(module, "CASES", None)
    if cases is None:
        raise SystemExit(f"bench-kind: {suites_dir / name}.py declares no CASES")
    return list(cases)


def run_suite(fake_module: ModuleType, suite: str, cases: list[Any], strategy: str, pack: int,
              log: Any = print) -> SuiteCount:
    """One suite on a fresh fake: (counts, seconds)."""
    from kubeovn_conformance import packing
    from kubeovn_conformance.backends.base import InfraError
    from kubeovn_conformance.backends.kind import KindBackend
    from kubeovn_conformance.runner import Runner

    fake_cls = service_proxy_class(fake_module.FakeApiServer)
    nodes = [fake_module.fake_node("bench-worker"), fake_module.fake_node("bench-worker2")]
    out = SuiteCount(suite, strategy)
    started = time.monotonic()
    with fake_cls(nodes=nodes, crds=CRDS, validate_version=None) as api, \
            tempfile.TemporaryDirectory(prefix="bench-kind-") as tmp:
        kc = api.kubeconfig(Path(tmp) / "kubeconfig")
        backend = KindBackend(kubeconfig=kc, run_id=f"bench-{strategy}", sctp=False,
                              ready_timeout=60, delete_timeout=60,
                              delete_wait="previous" if strategy == "overlap" else "now")
        runner = Runner(backend, None, probe_timeout=0.3, deadline=0.0, ready_deadline=30)
        runnable = []
        for case in cases:
            if "SCTP" in case.protocols or backend.skip_reason(case):
                out.skipped += 1  # as Conformance.skip_reason: no SCTP on the fake
            else:
                runnable.append(case)
        groups = packing.groups(runnable, pack)
        try:
            for i, group in enumerate(groups, 1):
                try:
                    if len(group) == 1:
                        runner.run_case(group[0])
                    else:
                        runner.run_pack(packing.pack(group, slots=pack))
                except InfraError as e:
                    out.infra_errors.append(f"{group[0].id}: {e}")
                out.cases += len(group)
                out.steps += max(len(c.steps) for c in group)
                if i % 10 == 0 or i == len(groups):
                    log(f"  {suite} [{strategy}]: {i}/{len(groups)} packs and cases, "
                        f"{time.monotonic() - started:.0f}s")
        finally:
            runner.close()
            backend.teardown(wait=True)  # the run's end: every namespace gone, counted too
        out.setups = backend.setups
        out.rounds = runner.probe_rounds
        out.requests = counts_by_kind(api.request_counts())
    out.seconds = time.monotonic() - started
    return out


def table(rows: list[list[str]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [list(header), *rows]) for i in range(len(header))]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), *(line(r) for r in rows)])


def totals(counts: list[SuiteCount], strategy: str) -> SuiteCount:
    total = SuiteCount("total", strategy)
    summed: Counter[str] = Counter()
    for c in counts:
        total.cases += c.cases
        total.skipped += c.skipped
        total.setups += c.setups
        total.steps += c.steps
        total.rounds += c.rounds
        total.seconds += c.seconds
        total.infra_errors += c.infra_errors
        summed.update(c.requests)
    total.requests = dict(summed)
    return total


def write_json(out: Path, results: dict[str, list[SuiteCount]],
               budgets: dict[str, dict[str, float]] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {s: [vars(r) for r in rows] for s, rows in results.items()}
    if budgets is not None:
        data["budget"] = budgets
    path = out / "bench-kind.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


def report(results: dict[str, list[SuiteCount]]) -> dict[str, dict[str, float]]:
    """Print the tables, the assumed costs and the budget; return the budget."""
    for strategy, rows in results.items():
        print(f"\nAPI work per suite, {strategy} (counted at the fake API server; one probe "
              "round per step):")
        print(table([r.row() for r in [*rows, totals(rows, strategy)]], ("suite", *COLUMNS)))
        errors = [e for r in rows for e in r.infra_errors]
        if errors:
            print(f"{len(errors)} infra-errors (their cases did not finish): {errors[:3]}")
    print("\nAssumed cost per operation on kind (assumptions, with their sources):")
    print(costs_table())
    print()
    budgets = {s: row_budget(totals(rows, s)) for s, rows in results.items()}
    for line in budget_lines(budgets):
        print(line)
    return budgets


def load_json(paths: list[Path]) -> dict[str, list[SuiteCount]]:
    """Results written by --out (one run with both strategies, or one per strategy); a later
    file's count of a suite replaces an earlier one's (a suite measured again)."""
    results: dict[str, dict[str, SuiteCount]] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"bench-kind: {path}: not a bench-kind.json ({e})") from None
        for strategy in STRATEGIES:
            for row in data.get(strategy, ()):
                results.setdefault(strategy, {})[row["suite"]] = SuiteCount(**row)
    return {s: list(results[s].values()) for s in STRATEGIES if s in results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kubeovn_conformance.bench_kind",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", action="append", default=None,
                    help="a suite module of suites/ (repeatable; default every suite)")
    ap.add_argument("--suites-dir", type=Path, default=SUITES)
    ap.add_argument("--fake", type=Path, default=FAKE, help="the fake API server's file")
    ap.add_argument("--pack", type=int, default=8, help="as pytest --pack (default 8)")
    ap.add_argument("--strategy", choices=(*STRATEGIES, "both"), default="both")
    ap.add_argument("--out", type=Path, default=None, help="also write bench-kind.json here")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None, metavar="FILE",
                    help="print the tables and budget of saved bench-kind.json files (no run)")
    args = ap.parse_args(argv)
    if args.from_json:
        report(load_json(args.from_json))
        return 0
    fake = load_fake(args.fake)
    names = args.suite or suite_names(args.suites_dir)
    unknown = [n for n in names if not (args.suites_dir / f"{n}.py").is_file()]
    if unknown:
        print(f"bench-kind: no suite {unknown[0]} in {args.suites_dir}", file=sys.stderr)
        return 2
    strategies = STRATEGIES if args.strategy == "both" else (args.strategy,)
    results: dict[str, list[SuiteCount]] = {s: [] for s in strategies}
    for name in names:
        cases = suite_cases(args.suites_dir, name)
        for strategy in strategies:
            print(f"bench-kind: {name} ({len(cases)} cases), {strategy}", flush=True)
            results[strategy].append(run_suite(fake, name, cases, strategy, args.pack,
                                               log=lambda m: print(m, flush=True)))
            if args.out:  # after every suite: a long run that is stopped keeps what it counted
                write_json(args.out, results)
    budgets = report(results)
    if args.out:
        print(f"written: {write_json(args.out, results, budgets)}")
    return 1 if any(r.infra_errors for rs in results.values() for r in rs) else 0


if __name__ == "__main__":
    sys.exit(main())
