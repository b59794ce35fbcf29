"""The nightly's rows: every (version, mode) of the matrix must have come back with a JUnit file
and at least one case that was not an infra-error, or the night fails, visibly."""

from __future__ import annotations

import json
from pathlib import Path

from kubeovn_conformance.clusters.matrix import MODES, Matrix


def artifact_name(version: str, mode: str) -> str:
    return f"reports-{version}-{mode}"


def row_problems(matrix: Matrix, reports: Path) -> list[str]:
    """One line per bad row; [] when every row ran."""
    problems = []
    for version in matrix.versions:
        for mode in MODES:
            d = Path(reports) / artifact_name(version, mode)
            if not (d / "junit.xml").is_file():
                problems.append(f"{version} {mode}: no junit.xml (the suite never ran; see its e2e job)")
                continue
            outcomes = []
            cases = d / "cases.jsonl"
            if cases.is_file():
                for line in cases.read_text(errors="replace").splitlines():
                    try:
                        outcomes.append(json.loads(line).get("outcome"))
                    except (ValueError, AttributeError):
                        continue
            if not outcomes:
                problems.append(f"{version} {mode}: no case recorded a result")
            elif all(o == "infra-error" for o in outcomes):
                problems.append(f"{version} {mode}: all {len(outcomes)} cases are infra-error")
    return problems
