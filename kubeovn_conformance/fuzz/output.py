"""The fuzzer's finding as a file: `reports/<run>/fuzz/<seed>-<n>.yaml`.

Plain manifests (Namespaces, Pods with `status.podIP`, Services with their ClusterIP,
NetworkPolicies), so `kubeovn-conformance expect FILE` and `pytest --case-file FILE` read it
as they read any manifest file. Everything else is YAML comments at the top: what was found
(the failing cells, expected against observed, with the oracle's reason), how it was shrunk,
the commands that repeat it, and one machine-readable line

    # kubeovn-conformance-fuzz: {"seed": 7, "scenario": 3, ...}

that `read_meta` returns (the pytest plugin turns seed, scenario and count into JUnit
properties of the case).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeovn_conformance.fuzz.case import CellKey
from kubeovn_conformance.fuzz.shrink import size
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.textfile import read_text

META_PREFIX = "# kubeovn-conformance-fuzz: "


@dataclass
class Finding:
    """A failing scenario, its cell, and what shrinking made of it."""

    seed: int
    index: int
    count: int
    cell: CellKey
    original: Scenario
    minimal: Scenario
    failing: list[dict[str, Any]]  # the failing probe records of the minimal scenario's last run
    trials: int = 0
    steps: list[str] = field(default_factory=list)
    status: str = "minimal"  # minimal | shrinking | trial limit reached | interrupted


@dataclass(frozen=True)
class Origin:
    """Where the finding was made: enough to print the commands that repeat it."""

    backend: str
    mode: str
    profile: str = ""  # lab: the --lab-profile given ("" = the default)
    kubeconfig: str | None = None
    kube_ovn_version: str | None = None


def file_name(seed: int, index: int) -> str:
    return f"{seed}-{index}.yaml"


def backend_args(origin: Origin) -> list[str]:
    args = ["--backend", origin.backend, "--mode", origin.mode]
    if origin.backend == "lab" and origin.profile:
        args += ["--lab-profile", origin.profile]
    if origin.backend == "kind":
        if origin.kubeconfig:
            args += ["--kubeconfig", origin.kubeconfig]
        if origin.kube_ovn_version:
            args += ["--kube-ovn-version", origin.kube_ovn_version]
    return args


def commands(path: Path, finding: Finding, origin: Origin) -> list[str]:
    """The expected verdicts of the file, the file as a pytest case on the same backend, and
    the fuzzer on the same scenario (draw, run, shrink again)."""
    where = backend_args(origin)
    return [
        shlex.join(["kubeovn-conformance", "expect", str(path), "--reasons"]),
        shlex.join([".venv/bin/pytest", "suites/test_case_file.py", "--case-file", str(path),
                    *where, "-p", "no:cacheprovider"]),
        shlex.join(["kubeovn-conformance", "fuzz", *where, "--seed", str(finding.seed),
                    "--scenario", str(finding.index)]),
    ]


def render(path: Path, finding: Finding, origin: Origin) -> str:
    cmds = commands(path, finding, origin)
    meta = {"seed": finding.seed, "scenario": finding.index, "count": finding.count,
            "backend": origin.backend, "mode": origin.mode, "profile": origin.profile,
            "status": finding.status, "cell": finding.cell.to_dict(), "trials": finding.trials}
    lines = [
        f"# Found by the kubeovn-conformance fuzzer: seed {finding.seed}, scenario "
        f"{finding.index} (of {finding.count}), {origin.backend} {origin.mode}"
        + (f", profile {origin.profile}" if origin.profile else "") + ".",
        f"# Shrunk ({finding.status}) from {size(finding.original)} to {size(finding.minimal)} "
        f"in {finding.trials} backend trials, keeping the cell",
        f"#   {finding.cell.describe()}",
        "# Failing cells of the shrunk scenario (expected vs observed):",
    ]
    for r in finding.failing:
        lines.append(f"#   {r['client']} -> {r['target']} {r['path']} {r['port']}/{r['protocol']} "
                     f"(target port {r['target_port']}): expected {r['verdict']} "
                     f"({r.get('expected_observed')}), observed {r.get('observed')}")
        lines.append(f"#     because {r['reason']}")
    lines.append("# Pods carry the IPs they had (status.podIP): ipBlocks name them. Repeat with:")
    lines += [f"#   {c}" for c in cmds]
    if finding.steps:
        lines.append("# Reductions kept: " + "; ".join(finding.steps))
    lines.append(META_PREFIX + json.dumps(meta, sort_keys=True))
    docs = [obj.to_manifest() for obj in finding.minimal.objects()]
    body = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, explicit_start=True)
    return "\n".join(lines) + "\n" + body


def write(directory: Path, finding: Finding, origin: Origin) -> Path:
    """Write (or overwrite) the finding's file; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(finding.seed, finding.index)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(render(path, finding, origin))
    tmp.replace(path)  # never half a file, even on Ctrl-C
    return path


def read_meta(path: str | Path) -> Mapping[str, Any] | None:
    """The machine-readable line of a fuzzer file, or None for any other manifest file."""
    for line in read_text(path).splitlines():
        if not line.startswith("#"):
            break
        if line.startswith(META_PREFIX):
            try:
                meta = json.loads(line[len(META_PREFIX):])
            except json.JSONDecodeError:
                return None
            return meta if isinstance(meta, dict) else None
    return None


def junit_meta(meta: Mapping[str, Any] | None) -> Sequence[tuple[str, str]]:
    """JUnit properties of a case read from a fuzzer file."""
    if not meta:
        return []
    return [(f"fuzz_{k}", str(meta[k])) for k in ("seed", "scenario", "count") if k in meta]
