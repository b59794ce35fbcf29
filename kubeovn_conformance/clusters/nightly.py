"""The nightly's rows: every (version, mode) of the matrix must have come back with a JUnit file
and at least one case that was not an infra-error, or the night fails, visibly. A row cut off
by its budget or its job's timeout (`cut-off.txt`, or records without the junit.xml pytest
writes at its end) is named cut off, with what it recorded: it ran, it did not finish."""

from __future__ import annotations

import json
from pathlib import Path

from kubeovn_conformance.clusters.matrix import MODES, Matrix

# Why a row was cut off, one line; written by the nightly's e2e and staging steps and read
# by report/junit_records.py (this module stays importable with PyYAML alone: the matrix job).
CUT_OFF = "cut-off.txt"


def artifact_name(version: str, mode: str) -> str:
    return f"reports-{version}-{mode}"


def row_problems(matrix: Matrix, reports: Path) -> list[str]:
    """One line per bad row; [] when every row ran."""
    problems = []
    for version in matrix.versions:
        for mode in MODES:
            d = Path(reports) / artifact_name(version, mode)
            outcomes = _outcomes(d / "cases.jsonl")
            records = bool(outcomes) or (d / "results.jsonl").is_file()
            why = _cut_off(d, records)
            if why is not None:
                problems.append(f"{version} {mode}: cut off ({why}): {len(outcomes)} cases recorded "
                                "before it ended; see its e2e job")
                continue
            if not (d / "junit.xml").is_file():
                problems.append(f"{version} {mode}: no junit.xml (the suite never ran; see its e2e job)")
                continue
            if not outcomes:
                problems.append(f"{version} {mode}: no case recorded a result")
            elif all(o == "infra-error" for o in outcomes):
                problems.append(f"{version} {mode}: all {len(outcomes)} cases are infra-error")
    return problems


def _outcomes(cases: Path) -> list[str | None]:
    """The outcome of each case, its last line (a retry supersedes the first infra-error)."""
    last: dict[str, str | None] = {}
    if cases.is_file():
        for line in cases.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
                last[str(record.get("case"))] = record.get("outcome")
            except (ValueError, AttributeError):
                continue
    return list(last.values())


def _cut_off(d: Path, records: bool) -> str | None:
    marker = d / CUT_OFF
    if marker.is_file():
        return marker.read_text(errors="replace").strip() or "cut-off.txt"
    if records and not (d / "junit.xml").is_file():
        return "records but no junit.xml: pytest was killed before it finished"
    return None
