"""`kubeovn-conformance fuzz`: random scenarios on a backend, the first failure shrunk.

Exit status: 0 nothing failed, 1 a failure was found (and its file written), 2 bad input,
3 only infra-errors (nothing judged), 130 interrupted (the workload is torn down; results,
JUnit and the finding's file so far are kept).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

PROG = "kubeovn-conformance"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "fuzz", help="run random scenarios on a backend and shrink the first failure",
        description="Draw random single-state scenarios from a seed (namespaces, labelled pods "
        "with named ports, Services with port != targetPort, policies with selectors, "
        "matchExpressions, ipBlocks, ports, endPort ranges, protocols), run each through the "
        "runner on the backend, and shrink the first failing one to a minimal scenario that "
        "fails in the same cell. The result goes to reports/<run>/fuzz/<seed>-<n>.yaml with "
        "the commands that repeat it.",
        epilog="examples:\n"
        f"  sudo .venv/bin/{PROG} fuzz --backend lab --seed 1 --count 20\n"
        f"  sudo .venv/bin/{PROG} fuzz --backend lab --lab-profile history:endport-ignored "
        "--seed 3 --count 5\n"
        f"  {PROG} fuzz --backend kind --kubeconfig ~/.kube/config --kube-ovn-version v1.16.2 "
        "--mode underlay --seed 7 --count 50\n\n"
        "exit status: 0 nothing failed, 1 a failure found (file written), 2 bad input, "
        "3 only infra-errors, 130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("lab", "kind"), required=True,
                   help="lab (real OVN on network namespaces, root) or kind (a cluster)")
    p.add_argument("--seed", type=int, required=True, help="the seed scenarios are drawn from (e.g. 7)")
    p.add_argument("--count", type=int, default=10, help="scenarios to draw (default 10)")
    p.add_argument("--scenario", type=int, default=None, metavar="N",
                   help="run only scenario N of the seed (as a finding's file says)")
    p.add_argument("--mode", choices=("overlay", "underlay"), default="overlay",
                   help="network mode of the pods' subnet (default overlay)")
    p.add_argument("--lab-profile", default=None,
                   help="lab: the Kube-OVN behaviour (a tag, a line, history:<fix>); default newest")
    p.add_argument("--vlan-id", type=int, default=100, help="lab underlay: VLAN tag (default 100)")
    p.add_argument("--kubeconfig", default=None, help="kind: kubeconfig of the cluster")
    p.add_argument("--kube-ovn-version", default=None, help="kind: the Kube-OVN version installed")
    p.add_argument("--include-known", action="store_true",
                   help="also shrink failures that clusters/known-issues.yaml explains by mechanism")
    p.add_argument("--probe-timeout", type=float, default=1.0, help="seconds per probe (default 1)")
    p.add_argument("--deadline", type=float, default=10.0,
                   help="seconds until observed must agree with expected (default 10)")
    p.add_argument("--shrink-limit", type=int, default=300,
                   help="at most this many backend trials while shrinking (default 300)")
    p.add_argument("--keep-going", action="store_true",
                   help="after a failure, keep drawing (and shrink every failure)")
    p.add_argument("--reports-dir", default="reports", help="where run directories go (default reports)")
    p.add_argument("--run-id", default=None,
                   help="name of reports/<run-id>/ (default: time-backend-mode-fuzz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubeovn_conformance.backends.factory import make_backend, profile_and_version
    from kubeovn_conformance.fuzz.engine import Fuzzer, Outcome
    from kubeovn_conformance.fuzz.junit import write_junit
    from kubeovn_conformance.fuzz.output import Origin
    from kubeovn_conformance.results import RunInfo, new_run_id
    from kubeovn_conformance.runner import Runner

    if args.count < 1:
        raise ValueError(f"--count {args.count}: give at least 1")
    if args.scenario is not None and args.scenario < 0:
        raise ValueError(f"--scenario {args.scenario}: scenarios are numbered from 0")
    if args.shrink_limit < 0:
        raise ValueError(f"--shrink-limit {args.shrink_limit}: give 0 or more")
    profile, version = profile_and_version(args.backend, args.lab_profile, args.kube_ovn_version)
    if args.backend == "lab":
        from kubeovn_conformance.backends.lab.daemons import LabError, check_prerequisites

        try:
            check_prerequisites()
        except LabError as e:
            raise ValueError(f"--backend lab: {e}") from None
    run_id = args.run_id or f"{new_run_id(args.backend, args.mode)}-fuzz"
    run_dir = Path(args.reports_dir) / run_id
    info = RunInfo(run_id, args.backend, args.mode, version, profile, run_dir)
    info.prepare()
    backend = make_backend(args.backend, args.mode, lab_profile=args.lab_profile,
                           vlan_id=args.vlan_id, kubeconfig=args.kubeconfig,
                           kube_ovn_version=args.kube_ovn_version, run_id=run_id)
    protocols = ("TCP", "UDP", "SCTP") if backend.supports_sctp else ("TCP", "UDP")
    origin = Origin(args.backend, args.mode, args.lab_profile or "", args.kubeconfig,
                    args.kube_ovn_version)
    runner = Runner(backend, info, args.probe_timeout, args.deadline)
    fuzzer = Fuzzer(runner, origin, run_dir / "fuzz", seed=args.seed, count=args.count,
                    protocols=protocols, shrink_limit=args.shrink_limit,
                    log=lambda m: print(m, flush=True))
    if not args.include_known:
        fuzzer.explained = _known_predicate(args.mode, version, args.backend)
    props = {"fuzz_seed": args.seed, "fuzz_count": args.count, "backend": args.backend,
             "mode": args.mode, "profile": profile, "kube_ovn_version": version}
    outcomes: list[Outcome] = []

    def done(o: Outcome) -> None:
        outcomes.append(o)
        write_junit(run_dir / "junit.xml", outcomes, props)

    indices = [args.scenario] if args.scenario is not None else range(args.count)
    print(f"fuzz: seed {args.seed}, {len(indices)} scenario(s) on {args.backend} {args.mode}"
          + (f" ({profile})" if profile else "") + f"; results in {run_dir}", flush=True)
    try:
        fuzzer.fuzz(indices, keep_going=args.keep_going, done=done)
    finally:
        runner.close()
        if info.cases_path.exists():
            info.write_summary()
    failed = [o for o in outcomes if o.outcome == "fail"]
    errors = [o for o in outcomes if o.outcome == "infra-error"]
    print(f"fuzz: {len(outcomes)} scenario(s): {len(failed)} failed, {len(errors)} infra-errors, "
          f"{len(outcomes) - len(failed) - len(errors)} passed; JUnit {run_dir / 'junit.xml'}")
    for o in failed:
        print(f"  {o.case_id}: {o.message}")
    if failed:
        return 1
    return 3 if errors else 0


def main(argv: list[str] | None = None) -> int:
    """python -m kubeovn_conformance.fuzz.cli ...: the same as `kubeovn-conformance fuzz`."""
    from kubeovn_conformance.cli import main as cli_main

    return cli_main(["fuzz", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())


def _known_predicate(mode: str, version: str, backend: str) -> Callable[[dict], bool]:
    """Is a failing probe record explained by a known issue's mechanism on this run?"""
    from pathlib import Path

    from kubeovn_conformance.report.known import load_known

    known = Path(__file__).resolve().parents[2] / "clusters" / "known-issues.yaml"
    issues = [i for i in load_known(known if known.exists() else None) if i.mechanism and not i.cases
              and i.applies("", mode, version, backend)]
    return lambda record: any(i.matches_cell(record) for i in issues)
