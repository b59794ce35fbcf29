"""Load what runs wrote (results.jsonl, summary.json) into plain objects the reports share.

A run may have been interrupted: its results.jsonl can end in a truncated line and its
summary.json may be missing. Whatever was measured is still reported; case outcomes are
then derived from the probe records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeovn_conformance.textfile import read_text

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
CASE_OUTCOMES = ("pass", "fail", "infra-error", "skipped", "undefined")
CASES = "cases.jsonl"  # per-case lines the runner appends; summary.json is built from them
# Fields a probe record needs before any report can place it in a table.
REQUIRED = ("case", "client", "target", "path", "port", "protocol", "verdict", "outcome")


class ReportError(ValueError):
    """Bad input for a report: the message is one line naming the file.

    A ValueError so that the CLI's one-line error handling covers it too."""


@dataclass
class CaseResult:
    """One case of one run: the unit of the grid, the diff and the JUnit file."""

    case: str
    outcome: str  # pass | fail | infra-error | skipped | undefined (all probes undefined)
    probes: int = 0
    mismatches: int = 0
    convergence_ms: float | None = None
    duration_s: float | None = None
    skip_reason: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def leaks(self) -> tuple[int, float]:
        """(leaking samples, longest span from apply to the last one in ms) over the case."""
        leaky = [r for r in self.records if r.get("leaks")]
        return (sum(int(r["leaks"]) for r in leaky),
                max((float(r.get("leak_span_ms") or 0.0) for r in leaky), default=0.0))

    @property
    def directions(self) -> list[str]:
        return sorted({str(r.get("direction") or "none") for r in self.records})

    @property
    def paths(self) -> list[str]:
        return sorted({str(r["path"]) for r in self.records})

    @property
    def protocols(self) -> list[str]:
        return sorted({str(r["protocol"]) for r in self.records})


@dataclass
class Run:
    run_id: str
    source: str  # the file or directory it was read from, for messages
    backend: str
    mode: str
    version: str
    profile: str | None
    started: str | None
    finished: str | None
    cases: dict[str, CaseResult]
    truncated: bool = False  # the last results line was cut off (interrupted run)
    ovn: str | None = None  # the OVN it ran on (ovn_version), where the backend recorded it

    @property
    def label(self) -> str:
        """The version as reports show and key it: with the OVN where known
        (`lab:v1.16.2+ovn25.03.0`), so runs on different OVNs are different columns."""
        return f"{self.version}+ovn{self.ovn}" if self.ovn else self.version

    @property
    def column(self) -> tuple[str, str]:
        return (self.label, self.mode)


def read_results(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Probe records of a results.jsonl. Only the last line may be broken (cut off mid-write)."""
    try:
        lines = read_text(path).splitlines()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not UTF-8 text") from None
    records: list[dict[str, Any]] = []
    truncated = False
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    for i, (n, line) in enumerate(numbered):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(numbered) - 1:
                truncated = True
                break
            raise ReportError(f"{path}:{n}: not a JSON object") from None
        if not isinstance(rec, dict):
            raise ReportError(f"{path}:{n}: not a JSON object")
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise ReportError(f"{path}:{n}: record lacks {', '.join(missing)}")
        records.append(rec)
    return records, truncated


def _read_summary(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(read_text(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ReportError(f"{path}: not a readable JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases", {}), dict):
        raise ReportError(f"{path}: expected an object with a 'cases' object")
    return data


def _read_case_lines(path: Path) -> tuple[dict[str, Any], bool]:
    cases: dict[str, Any] = {}
    try:
        lines = read_text(path).splitlines()
    except (OSError, UnicodeDecodeError):
        raise ReportError(f"{path}: cannot read") from None
    for n, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                return cases, True
            raise ReportError(f"{path}:{n}: not a JSON object") from None
        if not isinstance(obj, dict) or "case" not in obj:
            raise ReportError(f"{path}:{n}: not a case object")
        cases[str(obj["case"])] = {k: v for k, v in obj.items() if k != "case"}
    return cases, False


def derive_outcome(records: list[dict[str, Any]]) -> str:
    """Case outcome from its probes, used when the summary is missing (interrupted run)."""
    outcomes = {r.get("outcome") for r in records}
    # Same precedence as the runner: a wrong verdict outweighs a broken probe.
    if "fail" in outcomes:
        return "fail"
    if "infra-error" in outcomes:
        return "infra-error"
    if outcomes == {"undefined"}:
        return "undefined"
    return "pass"


def _meta(key: str, summary: dict[str, Any] | None, records: list[dict[str, Any]]) -> Any:
    if summary and summary.get(key) not in (None, ""):
        return summary[key]
    for r in records:
        if r.get(key) not in (None, ""):
            return r[key]
    return None


def load_run(path: Path) -> Run:
    """A run directory, or a results.jsonl file (its summary.json beside it is used if present)."""
    path = Path(path)
    if path.is_dir():
        results, summary_path = path / RESULTS, path / SUMMARY
    elif path.is_file():
        results, summary_path = path, path.parent / SUMMARY
    else:
        raise ReportError(f"{path}: no such file or directory")
    if not results.is_file() and not summary_path.is_file():
        raise ReportError(f"{path}: not a run (no {RESULTS} or {SUMMARY})")
    records, truncated = read_results(results) if results.is_file() else ([], False)
    summary = _read_summary(summary_path)
    if summary is None and (summary_path.parent / CASES).is_file():
        # Interrupted before the summary was written: its per-case lines are what we have.
        lines, _ = _read_case_lines(summary_path.parent / CASES)
        summary = {"cases": lines}

    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_case.setdefault(str(r["case"]), []).append(r)
    cases: dict[str, CaseResult] = {}
    for name, info in (summary or {}).get("cases", {}).items():
        if not isinstance(info, dict) or info.get("outcome") not in CASE_OUTCOMES:
            raise ReportError(f"{summary_path}: case {name!r} has no valid outcome")
        recs = by_case.get(name, [])
        outcome = info["outcome"]
        # A case whose every probe is implementation-defined says nothing either way.
        if outcome == "pass" and recs and derive_outcome(recs) == "undefined":
            outcome = "undefined"
        cases[name] = CaseResult(
            case=name,
            outcome=outcome,
            probes=int(info.get("probes", len(recs)) or 0),
            mismatches=int(info.get("mismatches", 0) or 0),
            convergence_ms=info.get("convergence_ms"),
            duration_s=info.get("duration_s"),
            skip_reason=info.get("skip_reason"),
            records=recs,
        )
    for name, recs in by_case.items():
        if name not in cases:  # measured, but the summary never got written or updated
            conv = [r["convergence_ms"] for r in recs if r.get("convergence_ms") is not None]
            cases[name] = CaseResult(
                case=name,
                outcome=derive_outcome(recs),
                probes=len(recs),
                mismatches=sum(1 for r in recs if r.get("outcome") == "fail"),
                convergence_ms=max(conv) if conv else None,
                records=recs,
            )

    version = _meta("kube_ovn_version", summary, records)
    mode = _meta("mode", summary, records)
    if not version or not mode:
        raise ReportError(f"{path}: run does not say its kube_ovn_version and mode")
    return Run(
        run_id=str(_meta("run_id", summary, records) or (path.name if path.is_dir() else path.parent.name)),
        source=str(path),
        backend=str(_meta("backend", summary, records) or "?"),
        mode=str(mode),
        version=str(version),
        profile=_meta("profile", summary, records),
        started=(summary or {}).get("started"),
        finished=(summary or {}).get("finished"),
        cases=cases,
        truncated=truncated,
        ovn=_meta("ovn_version", summary, records),
    )


def _is_run(path: Path) -> bool:
    return (path / RESULTS).is_file() or (path / SUMMARY).is_file()


def load_runs(paths: list[str] | list[Path]) -> list[Run]:
    """Each path is a run directory, a results.jsonl, or a directory of run directories
    (a matrix, e.g. one CI artifact per version and mode)."""
    runs: list[Run] = []
    for p in map(Path, paths):
        if p.is_dir() and not _is_run(p):
            subs = sorted(d for d in p.iterdir() if d.is_dir() and _is_run(d))
            if not subs:
                raise ReportError(f"{p}: neither a run nor a directory of runs")
            runs.extend(load_run(d) for d in subs)
        else:
            runs.append(load_run(p))
    return runs


def version_key(version: str) -> tuple[int, ...]:
    """Sort and compare versions like v1.13.1 and lab:v1.16 (prefix ignored, missing parts 0)."""
    core = version.rsplit(":", 1)[-1].lstrip("vV")
    parts: list[int] = []
    for piece in core.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)
