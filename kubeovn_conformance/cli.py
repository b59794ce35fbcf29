"""`kubeovn-conformance`: the command line front door.

Every failure the user can cause ends in one line on stderr and exit status 2, never a
traceback; a regression found by `diff` is exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from kubeovn_conformance import signals, truthtable
from kubeovn_conformance.model import ManifestError, load_scenario
from kubeovn_conformance.oracle import Oracle

PROG = "kubeovn-conformance"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _cmd_expect(args: argparse.Namespace) -> int:
    scenario = load_scenario(*args.files)
    oracle = Oracle(scenario)
    expectations = oracle.expectations(oracle.probes(include_nodeport=True))
    records = [e.to_dict() for e in expectations]
    if args.facts:
        from kubeovn_conformance.mechanism import Mechanism, record_facts

        mechanism = Mechanism(oracle)
        for r, e in zip(records, expectations, strict=True):
            r["facts"] = record_facts(mechanism.facts(e.probe))
    if args.format == "json":
        # Which tier and policy decided the client's egress and the destination's ingress.
        for rec, e in zip(records, expectations, strict=True):
            rec.update(e.decided_by or {"egress": None, "ingress": None})
        json.dump(records, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if not records:
        print("no probes: the manifests hold fewer than two pods")
        return 0
    print(truthtable.render_all(records, truthtable.expected_mark))
    if args.reasons:
        print("\nreasons:")
        for r in records:
            print(f"  {r['client']} -> {r['target']} {r['path']} {r['port']}/{r['protocol']}: "
                  f"{r['verdict']}: {r['reason']}")
            for f in r.get("facts", ()):
                print(f"      {', '.join(f'{k}={v}' for k, v in f.items())}")
    print("\n. allowed   X denied   ? undefined (implementation-defined, never failed)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="NetworkPolicy conformance for Kube-OVN: expected verdicts, the OVN lab, reports.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    exp = sub.add_parser(
        "expect",
        help="print what Kubernetes says must happen to every probe of some manifests",
        description="Read Kubernetes manifests (Namespace, Pod, Service, NetworkPolicy, "
        "AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy, Lists; pods may "
        "carry status.podIP) and print the expected verdict of every probe: each pod to each "
        "other pod on its ports (path 'pod') and to each Service port (path 'service').",
        epilog="examples:\n"
        f"  {PROG} expect examples/underlay-bug/ingress-allow-service-port.yaml\n"
        f"  {PROG} expect examples/underlay-bug/egress-allow-named-port.yaml --reasons\n"
        f"  {PROG} expect workload.yaml policies.yaml --format json | jq '.[] | select(.verdict==\"deny\")'\n"
        f"  {PROG} expect examples/underlay-bug/egress-allow-named-port.yaml --reasons --facts\n"
        f"  {PROG} expect examples/cluster-policies/workload.yaml "
        "examples/cluster-policies/admin-pass-to-networkpolicy.yaml --format json "
        "| jq '.[] | select(.ingress.tier==\"Admin\")'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    exp.add_argument("files", nargs="+", metavar="FILE",
                     help="YAML manifest files, read together as one scenario (e.g. app.yaml np.yaml)")
    exp.add_argument("--format", choices=("table", "json"), default="table",
                     help="table: truth tables per path, port and protocol (default); json: one "
                     "object per probe with client, target, path, port, target_port, protocol, "
                     "verdict, reason, and egress/ingress: the tier (Admin, NetworkPolicy, "
                     "Baseline, default) and policy that decided the client's egress and the "
                     "destination's ingress (e.g. --format json)")
    exp.add_argument("--reasons", action="store_true",
                     help="with --format table, also list the reason of every verdict "
                     "(e.g. --reasons)")
    exp.add_argument("--facts", action="store_true",
                     help="also what decided each cell, as the properties clusters/known-issues.yaml "
                     "matches on (json: a `facts` field; table: under --reasons) (e.g. --facts)")
    exp.set_defaults(func=_cmd_expect)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Commands that live in their own modules register themselves here."""
    from kubeovn_conformance import history, report
    from kubeovn_conformance.backends.lab import cli as lab_cli
    from kubeovn_conformance.fuzz import cli as fuzz_cli

    lab_cli.register(sub)
    fuzz_cli.register(sub)
    history.register(sub)
    report.add_subcommands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (CI cancellation, `timeout`) stops `fuzz` or `lab up` as Ctrl-C does: cleaned up,
    # results so far kept; a second signal does not cut that cleanup short.
    handlers = signals.interrupts(PROG)
    try:
        return int(args.func(args))
    except (ManifestError, UsageError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        handlers.restore()


if __name__ == "__main__":
    sys.exit(main())
