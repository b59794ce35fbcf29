"""`python -m kubeovn_conformance.clusters ...`: the CLI the scripts and the Makefile call.
Errors are one line on stderr with exit status 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from kubeovn_conformance.clusters.diagnostics import failing_probes, load_namespaces
from kubeovn_conformance.clusters.history import history_runs, summarise
from kubeovn_conformance.clusters.images import load_image
from kubeovn_conformance.clusters.matrix import (
    DEFAULT_CLUSTER_NAME,
    DEFAULT_VLAN_CIDR,
    MODES,
    ClusterError,
    Matrix,
    check_mode,
    check_vlan_id,
    load_matrix,
)
from kubeovn_conformance.clusters.network import (
    NetworkFacts,
    host_rules_argv,
    inspect_docker_network,
    load_network_json,
    parse_docker_network,
)
from kubeovn_conformance.clusters.nightly import row_problems
from kubeovn_conformance.clusters.plan import Options
from kubeovn_conformance.clusters.render import (
    dump_yaml,
    patch_install_sh,
    record_manifest,
    render_install_sh_settings,
    render_kind_config,
    render_values,
    underlay_addressing,
    underlay_objects,
)
from kubeovn_conformance.clusters.run import run_up
from kubeovn_conformance.clusters.tools import (
    KUBECTL_KO_URL,
    default_bin_dir,
    fetch_tool,
    host_arch,
    tool_path,
    tool_urls,
)
from kubeovn_conformance.textfile import read_text


def _facts_from_args(args: argparse.Namespace) -> NetworkFacts | None:
    if getattr(args, "network_json", None):
        return load_network_json(args.network_json)
    if getattr(args, "docker_network", None):
        return parse_docker_network(inspect_docker_network(args.docker_network))
    return None


def _emit(text: str, out: str | None) -> None:
    if out:
        p = Path(out)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    else:
        sys.stdout.write(text)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        mode=check_mode(args.mode),
        version=args.version,
        name=getattr(args, "name", None) or DEFAULT_CLUSTER_NAME,
        vlan_id=check_vlan_id(getattr(args, "vlan_id", 0) or 0),
        vlan_cidr=getattr(args, "vlan_cidr", None) or DEFAULT_VLAN_CIDR,
        bin_dir=getattr(args, "bin_dir", None) or default_bin_dir(),
    )


def host_rules(action: str, path: Path) -> int:
    """Apply or remove the accepts recorded in `path` (cluster-down: del)."""
    try:
        rec = json.loads(Path(path).read_text())
        argv = host_rules_argv(rec["image"], action, rec["vlan_cidr"], rec["kind_subnet"])
    except FileNotFoundError:
        return 0  # nothing was added
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ClusterError(f"{path}: not a host rules record ({type(e).__name__}: {e})") from None
    try:
        rc = subprocess.run(argv, check=False).returncode
    except FileNotFoundError:
        raise ClusterError("docker not found in PATH") from None
    if rc:
        raise ClusterError(f"host firewall rules ({action}) failed with status {rc}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m kubeovn_conformance.clusters",
        description="Kind clusters with Kube-OVN for the conformance suite.",
    )
    p.add_argument("--matrix", type=Path, default=None, help="version matrix (clusters/versions.yaml)")
    p.add_argument("--corpus", type=Path, default=None,
                   help="history corpus whose kind tags are versions too (clusters/kube-ovn-history.yaml)")
    sub = p.add_subparsers(dest="cmd", required=True)

    def mv(sp: argparse.ArgumentParser, net: bool = False, vlan: bool = False) -> None:
        sp.add_argument("mode")
        sp.add_argument("version")
        if net:
            g = sp.add_mutually_exclusive_group()
            g.add_argument("--network-json", type=Path, help="saved `docker network inspect kind`")
            g.add_argument("--docker-network", help="docker network to inspect (e.g. kind)")
        if vlan:
            sp.add_argument("--vlan-id", type=int, default=0, help="0 = untagged (default)")
            sp.add_argument(
                "--vlan-cidr", default=DEFAULT_VLAN_CIDR, help="subnet of a tagged VLAN, gateway on the host"
            )

    sp = sub.add_parser("render-kind", help="kind cluster config")
    mv(sp)
    sp.add_argument("-o", "--output")
    sp = sub.add_parser("render-values", help="Kube-OVN Helm values")
    mv(sp, net=True, vlan=True)
    sp.add_argument("-o", "--output")
    sp = sub.add_parser("render-install-sh", help="patched install.sh (install.sh rows)")
    mv(sp, net=True, vlan=True)
    sp.add_argument("--script", type=Path, required=True)
    sp.add_argument("--bin-dir", type=Path, default=None, help="where kubectl-ko goes (.bin)")
    sp.add_argument("-o", "--output", required=True)
    sp = sub.add_parser("render-objects", help="underlay ProviderNetwork/Vlan/Subnet expected")
    mv(sp, net=True, vlan=True)
    sp = sub.add_parser("render-record", help="ConfigMap recording mode and version")
    mv(sp, vlan=True)
    sp.add_argument("-o", "--output")
    sp = sub.add_parser("network-facts", help="save `docker network inspect NAME` as JSON")
    sp.add_argument("network")
    sp.add_argument("-o", "--output", required=True)
    for name in ("plan", "up"):
        sp = sub.add_parser(
            name, help="print the cluster-up plan" if name == "plan" else "create (or reuse) the cluster"
        )
        mv(sp, vlan=True)
        sp.add_argument("--name", default=DEFAULT_CLUSTER_NAME)
        sp.add_argument("--network-json", type=Path, help="dry-run: docker network facts")
        sp.add_argument("--bin-dir", type=Path, default=None, help="tool cache (.bin)")
        sp.add_argument("--arch", default=None, help="amd64 or arm64 (default: this machine)")
        if name == "up":
            sp.add_argument("--dry-run", action="store_true")
    sp = sub.add_parser("matrix", help="versions x modes (JSON for CI)")
    sp.add_argument("--format", choices=("json", "lines"), default="json")
    sp = sub.add_parser("history-matrix", help="the weekly history runs: entry x tag x mode (JSON for CI)")
    sp.add_argument("--format", choices=("json", "lines", "make"), default="json")
    sp.add_argument("--entry", default="all", help="one corpus entry id (default all)")
    sp.add_argument("--tag", default="", help="only this pre-fix or fixed tag")
    sp.add_argument("--mode", default="", help="only this mode")
    sp = sub.add_parser("history-summary", help="check every history run's artifact again (CI)")
    sp.add_argument("reports", type=Path, help="directory of history-<entry>-<tag>-<mode> artifacts")
    sp.add_argument("--entry", default="all")
    sp = sub.add_parser("tools", help="kind/kubectl/helm: name version url checksum-url")
    sp.add_argument("version")
    sp.add_argument("--arch", default="amd64")
    sp = sub.add_parser("fetch-tool", help="download a pinned tool into the bin dir, checked")
    sp.add_argument("version")
    sp.add_argument("tool", choices=("kind", "kubectl", "helm", "kubectl-ko"))
    sp.add_argument("--arch", default=None)
    sp.add_argument("--bin-dir", type=Path, default=None)
    sp = sub.add_parser("tool-path", help="where fetch-tool puts TOOL for VERSION")
    sp.add_argument("version")
    sp.add_argument("tool", choices=("kind", "kubectl", "helm", "kubectl-ko"))
    sp.add_argument("--bin-dir", type=Path, default=None)
    sp = sub.add_parser("failing-probes", help="client, target, port, protocol of failed probes")
    sp.add_argument("results", type=Path)
    sp.add_argument("--limit", type=int, default=20)
    sp.add_argument("--namespaces", type=Path, default=None, help="scenario -> real namespace (JSON)")
    sub.add_parser("default", help="the default Kube-OVN version of the matrix")
    sp = sub.add_parser("check-nightly", help="every matrix row came back with results (CI)")
    sp.add_argument("reports", type=Path, help="directory of reports-<version>-<mode> artifacts")
    sp = sub.add_parser("load-image", help="load a host image into every kind node (with fallbacks)")
    sp.add_argument("image")
    sp.add_argument("--name", default=DEFAULT_CLUSTER_NAME)
    sp.add_argument("--arch", default=None)
    sp = sub.add_parser("render-host-rules", help="record of a tagged VLAN's host firewall accepts")
    mv(sp, net=True, vlan=True)
    sp.add_argument("-o", "--output", required=True)
    sp = sub.add_parser("host-rules", help="add or delete the host firewall accepts of a record")
    sp.add_argument("action", choices=("add", "del"))
    sp.add_argument("--file", type=Path, required=True, help="written by render-host-rules")
    sp = sub.add_parser("image", help="the Kube-OVN image of VERSION")
    sp.add_argument("version")

    args = p.parse_args(argv)
    try:
        matrix = replace(load_matrix(args.matrix), corpus=args.corpus)
        if args.cmd in ("history-matrix", "history-summary"):
            return _history(args, matrix)
        return _dispatch(args, matrix)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:  # a file we write, a disk full: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def _history(args: argparse.Namespace, matrix: Matrix) -> int:
    if args.cmd == "history-summary":
        runs = history_runs(matrix, args.corpus, args.entry)
        md, problems = summarise(runs, args.reports, args.corpus)
        print("\n".join(md))
        for line in problems:
            print(f"::error::{line}", file=sys.stderr)
        return 1 if problems else 0
    modes = (check_mode(args.mode),) if args.mode else MODES
    runs = history_runs(matrix, args.corpus, args.entry, modes, args.tag)
    if args.format == "json":
        print(json.dumps({"include": [r.to_dict() for r in runs]}, separators=(",", ":")))
    elif args.format == "make":
        print(" ".join(r.make_word() for r in runs))
    else:
        for r in runs:
            print(r.entry, r.tag, r.expect, r.mode, f"-k '{r.k}'")
    return 0


def _dispatch(args: argparse.Namespace, matrix: Matrix) -> int:
    cmd = args.cmd
    if cmd == "matrix":
        rows = [
            {"version": v, "mode": m, "profile": e.profile} for v, e in matrix.versions.items() for m in MODES
        ]
        if args.format == "json":
            # Only `include`: every key at the top level would become a matrix dimension.
            print(json.dumps({"include": rows}, separators=(",", ":")))
        else:
            for r in rows:
                print(r["version"], r["mode"])
        return 0
    if cmd == "tools":
        entry = matrix.entry(args.version)
        for name, (ver, url, sums) in tool_urls(matrix, entry, args.arch).items():
            print(name, ver, url, sums)
        return 0
    if cmd == "load-image":
        method = load_image(args.name, args.image, args.arch or host_arch())
        print(f"loaded {args.image} into {args.name} ({method})", file=sys.stderr)
        return 0
    if cmd == "host-rules":
        return host_rules(args.action, args.file)
    if cmd == "check-nightly":
        problems = row_problems(matrix, args.reports)
        for line in problems:
            print(f"::error::{line}")
        return 1 if problems else 0
    if cmd == "default":
        print(matrix.default)
        return 0
    if cmd == "image":
        print(matrix.entry(args.version).image)
        return 0
    if cmd == "failing-probes":
        for row in failing_probes(args.results, args.limit, load_namespaces(args.namespaces)):
            print("\t".join(row))
        return 0
    if cmd in ("fetch-tool", "tool-path"):
        entry = matrix.entry(args.version)
        bin_dir = args.bin_dir or default_bin_dir()
        if args.tool == "kubectl-ko":
            # Not a release artifact: no checksum is published; the tag pins the content.
            ver, url, sums = entry.version, KUBECTL_KO_URL.format(version=entry.version), None
        else:
            arch = getattr(args, "arch", None) or host_arch()
            ver, url, sums = tool_urls(matrix, entry, arch)[args.tool]
        dest = tool_path(bin_dir, args.tool, ver)
        if cmd == "tool-path":
            print(dest)
        elif not dest.is_file():
            fetch_tool(args.tool, ver, url, sums, dest)
        return 0
    if cmd == "network-facts":
        raw = inspect_docker_network(args.network)
        parse_docker_network(raw)  # refuse to save something we cannot use
        _emit(json.dumps(raw, indent=1) + "\n", args.output)
        return 0
    entry = matrix.entry(args.version)
    check_mode(args.mode)
    if cmd == "render-kind":
        _emit(dump_yaml(render_kind_config(entry)), args.output)
        return 0
    if cmd == "render-host-rules":
        net = _facts_from_args(args)
        if args.mode != "underlay" or net is None or not args.vlan_id:
            raise ClusterError("render-host-rules is for a tagged underlay, with --network-json")
        a = underlay_addressing(net, check_vlan_id(args.vlan_id), args.vlan_cidr)
        record = {"image": entry.image, "vlan_cidr": a.cidr, "kind_subnet": str(net.subnet)}
        _emit(json.dumps(record, indent=1) + "\n", args.output)
        return 0
    if cmd == "render-record":
        _emit(dump_yaml(record_manifest(args.mode, entry, check_vlan_id(args.vlan_id))), args.output)
        return 0
    if cmd in ("render-values", "render-install-sh", "render-objects"):
        net = _facts_from_args(args)
        vid = check_vlan_id(args.vlan_id)
        if cmd == "render-values":
            if entry.install != "helm":
                raise ClusterError(f"{entry.version} installs with install.sh: use render-install-sh")
            _emit(
                dump_yaml(render_values(args.mode, entry, net, vlan_id=vid, vlan_cidr=args.vlan_cidr)),
                args.output,
            )
        elif cmd == "render-install-sh":
            s = render_install_sh_settings(args.mode, entry, net, vlan_id=vid, vlan_cidr=args.vlan_cidr)
            try:
                text = read_text(args.script)
            except OSError as e:
                raise ClusterError(f"{args.script}: {e.strerror}") from None
            except ValueError as e:
                raise ClusterError(str(e)) from None
            ko = tool_path(args.bin_dir or default_bin_dir(), "kubectl-ko", entry.version)
            _emit(patch_install_sh(text, s["assignments"], str(ko.resolve())), args.output)
        else:
            if args.mode != "underlay" or net is None:
                raise ClusterError("render-objects is for underlay, with --network-json or --docker-network")
            _emit(
                yaml.safe_dump_all(
                    underlay_objects(entry, net, vlan_id=vid, vlan_cidr=args.vlan_cidr), sort_keys=False
                ),
                None,
            )
        return 0
    o = _options(args)
    if cmd in ("plan", "up"):
        return run_up(
            matrix,
            o,
            dry_run=cmd == "plan" or args.dry_run,
            network_json=args.network_json,
            bin_dir=args.bin_dir,
            arch=args.arch,
        )
    raise ClusterError(f"unknown command {cmd}")

