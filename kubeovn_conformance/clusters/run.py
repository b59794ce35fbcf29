"""Executing a plan: argument lists, never a shell; reuse or recreate an existing cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from kubeovn_conformance.clusters.matrix import (
    DOCKER_NETWORK,
    NAMESPACE,
    PY,
    RECORD_CONFIGMAP,
    REPO_ROOT,
    ClusterError,
    Matrix,
)
from kubeovn_conformance.clusters.memory import check_memory
from kubeovn_conformance.clusters.network import (
    NetworkFacts,
    inspect_docker_network,
    load_network_json,
    parse_docker_network,
)
from kubeovn_conformance.clusters.plan import (
    Options,
    _check_options,
    _ready_checks,
    create_steps,
    install_steps,
    plan,
)
from kubeovn_conformance.clusters.render import record_manifest
from kubeovn_conformance.clusters.steps import Step
from kubeovn_conformance.clusters.tools import host_arch, tool_dirs, tool_path, tool_steps


def _run(step: Step) -> None:
    print(f"+ {step.display()}", file=sys.stderr, flush=True)
    if step.action is not None:
        step.action()
        return
    try:
        rc = subprocess.run(step.argv, cwd=REPO_ROOT, check=False).returncode
    except FileNotFoundError:
        raise ClusterError(f"{step.argv[0]}: command not found (run scripts/cluster-up)") from None
    if rc != 0 and not step.allow_fail:
        raise ClusterError(f"command failed with status {rc}: {step.display()}")


def _quiet(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def existing_cluster_state(matrix: Matrix, o: Options) -> str:
    """'absent', 'match' (healthy, same mode/version/vlan), or a reason to recreate."""
    try:
        names = _quiet(["kind", "get", "clusters"]).stdout.split()
    except FileNotFoundError:
        raise ClusterError("kind: command not found (run scripts/cluster-up)") from None
    if o.name not in names:
        return "absent"
    kc = o.kubeconfig
    (REPO_ROOT / o.workdir).mkdir(parents=True, exist_ok=True)
    if _quiet(["kind", "export", "kubeconfig", "--name", o.name, "--kubeconfig", kc]).returncode:
        return "cannot export its kubeconfig"
    got = _quiet(
        ["kubectl", "--kubeconfig", kc, "-n", NAMESPACE, "get", "configmap", RECORD_CONFIGMAP, "-o", "json"]
    )
    if got.returncode:
        return "it has no record of mode and version (never finished an install)"
    try:
        data = json.loads(got.stdout).get("data") or {}
    except (ValueError, AttributeError):
        return "its record is unreadable"
    # Everything the record says, cluster-policies too: a cluster built before ANP was
    # enabled is rebuilt, not reused.
    want = record_manifest(o.mode, matrix.entry(o.version), o.vlan_id)["data"]
    if {k: data.get(k) for k in want} != want:
        return f"it was built as {data}, not {want}"
    for check in _ready_checks(kc, "60s"):
        if _quiet(check).returncode:
            return "it is not healthy (" + " ".join(check[3:5]) + ")"
    return "match"



def run_up(
    matrix: Matrix,
    o: Options,
    *,
    dry_run: bool,
    network_json: Path | None,
    bin_dir: Path | None = None,
    arch: str | None = None,
) -> int:
    _check_options(matrix, o)
    entry = matrix.entry(o.version)
    bin_dir = bin_dir or o.bin_dir
    arch = arch or host_arch()
    fetch = tool_steps(matrix, entry, arch, bin_dir)
    if dry_run:
        # The plan of a fresh create; whether an existing cluster is reused is decided at run
        # time (see existing_cluster_state), which a dry run does not ask.
        net = _dry_facts(network_json) if o.mode == "underlay" else None
        for step in fetch + plan(matrix, o, net):
            print(step.display())
        return 0
    if network_json is not None:
        raise ClusterError("--network-json is for --dry-run only: a real run reads the live network")
    for step in fetch:
        _run(step)
    # The row's kind/kubectl and helm come first on PATH for every step (install.sh included).
    dirs = [str(d) for d in tool_dirs(matrix, entry, arch, bin_dir)]
    dirs.append(str(tool_path(bin_dir, "kubectl-ko", entry.version).parent))  # install.sh's plugin
    os.environ["PATH"] = os.pathsep.join([*dirs, os.environ.get("PATH", "")])
    state = existing_cluster_state(matrix, o)
    if state == "match":
        print(f"reusing healthy cluster {o.name!r} ({o.mode}, {o.version})", file=sys.stderr)
        return 0
    if state != "absent":
        print(f"recreating cluster {o.name!r}: {state}", file=sys.stderr)
        _run(Step(["kind", "delete", "cluster", "--name", o.name]))
    check_memory()
    for step in create_steps(matrix, o):
        _run(step)
    net = None
    if o.mode == "underlay":
        raw = inspect_docker_network(DOCKER_NETWORK)
        (REPO_ROOT / o.workdir / "network.json").write_text(json.dumps(raw, indent=1))
        net = parse_docker_network(raw)
    for step in install_steps(matrix, o, net):
        if step.argv[len(PY) : len(PY) + 1] == ["network-facts"]:
            continue  # done just above: these steps were built from those facts
        _run(step)
    print(f"cluster {o.name!r} ready: KUBECONFIG={REPO_ROOT / o.kubeconfig}", file=sys.stderr)
    return 0


def _dry_facts(network_json: Path | None) -> NetworkFacts:
    if network_json is not None:
        return load_network_json(network_json)
    # Reading the network changes nothing; it exists only if some kind cluster ran before.
    try:
        return parse_docker_network(inspect_docker_network(DOCKER_NETWORK))
    except ClusterError as e:
        raise ClusterError(
            f"underlay --dry-run needs the kind network ({e}): pass --network-json FILE"
        ) from None

