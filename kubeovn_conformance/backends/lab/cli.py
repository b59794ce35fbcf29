"""`kubeovn-conformance lab up|down|status`: keep a lab running between test runs.

A lab started here is reused by LabBackend (its daemons stay up after each case, which
saves the start-up); `lab down` removes everything, also what a crashed run left behind.
Each function takes the parsed arguments (attributes `name`, `lab_dir`, `vlan_id`, all
optional), prints one line and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys

from kubeovn_conformance.backends.lab import topology as topo
from kubeovn_conformance.backends.lab.daemons import Lab, LabAlreadyRunning, LabError
from kubeovn_conformance.backends.lab.ovnruntime import CHOICES, DEFAULT_OVN
from kubeovn_conformance.signals import interrupts

EXIT_OK = 0
EXIT_FAILED = 1


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(getattr(args, "name", None) or "default", getattr(args, "lab_dir", None),
               getattr(args, "ovn", None))


def up(args: argparse.Namespace) -> int:
    try:
        lab = _lab(args)
        lab.start(started_by="cli")
        topo.build_switches(lab, int(getattr(args, "vlan_id", 100)))
    except LabAlreadyRunning as e:
        print(str(e))
        return EXIT_OK
    except LabError as e:
        print(f"lab up failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"lab {lab.name!r} up at {lab.dir} on OVN {lab.ovn.info().ovn} ({lab.ovn.choice}; "
          f"NB: unix:{lab.nb_sock})")
    return EXIT_OK


def down(args: argparse.Namespace) -> int:
    try:
        lab = _lab(args)
        if not lab.exists():
            print(f"lab {lab.name!r} is not running")
            return EXIT_OK
        lab.stop()
    except LabError as e:
        print(f"lab down failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"lab {lab.name!r} removed")
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    """Exit 0 when the lab runs, 3 when it does not (like `systemctl status`)."""
    try:
        lab = _lab(args)
        print(lab.status_line())
    except LabError as e:
        print(f"lab status failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if lab.is_running() else 3


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `lab up|down|status` to a parent parser's subcommands (func= set on each)."""
    lab = subparsers.add_parser("lab", help="start, stop or inspect the local OVN lab",
                                description="The OVN lab: private OVS/OVN daemons and network "
                                "namespaces on this machine (root; Debian packages "
                                "openvswitch-switch, ovn-central, ovn-host).")
    actions = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    for name, func, text in (("up", up, "start the daemons and the base topology"),
                             ("down", down, "stop everything and remove what the lab created"),
                             ("status", status, "say whether the lab runs")):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument("--name", default="default", help="lab name (default: default)")
        p.add_argument("--lab-dir", default=None,
                       help="base directory (default /run/kubeovn-conformance-lab)")
        if name == "up":
            p.add_argument("--vlan-id", type=int, default=100,
                           help="underlay VLAN tag, 0 for untagged (default 100)")
            p.add_argument("--ovn", "--lab-ovn", dest="ovn", choices=CHOICES, default=DEFAULT_OVN,
                           help=f"OVN to run: {DEFAULT_OVN} (default; a Debian 13 root built once "
                                "into .cache/lab-root/) or host (the distribution's packages)")
        p.set_defaults(func=func)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: python -m kubeovn_conformance.backends.lab.cli up|down|status."""
    parser = argparse.ArgumentParser(prog="kubeovn-conformance")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lab", *(argv if argv is not None else sys.argv[1:])])

    handlers = interrupts()  # SIGTERM as Ctrl-C: a cut-off `lab up` cleans up after itself
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("kubeovn-conformance: interrupted", file=sys.stderr)
        return 130
    finally:
        handlers.restore()


if __name__ == "__main__":
    sys.exit(main())
