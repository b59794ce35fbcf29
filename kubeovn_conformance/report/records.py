"""Load what runs wrote (results.jsonl, summary.json) into plain objects the reports share.

A run may have been interrupted: its results.jsonl can end in a truncated line and its
summary.json may be missing. Whatever was measured is still reported; case outcomes are
then derived from the probe records.

Records are streamed: a night's results files are far larger than what the reports show,
so each record is read once, folded into its case's `CaseDigest` (counts, truth tables, the
probes worth listing) and dropped. A case remembers where its lines are in the file, and
`CaseResult.records` reads them again when someone needs them all (the Markdown summary,
for the few failing cells).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeovn_conformance.report.digest import CaseDigest, Pool
from kubeovn_conformance.textfile import read_text
from kubeovn_conformance.truthtable import VERDICT_CHAR

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
CASE_OUTCOMES = ("pass", "fail", "infra-error", "skipped", "undefined")
CASES = "cases.jsonl"  # per-case lines the runner appends; summary.json is built from them
# Fields a probe record needs before any report can place it in a table.
REQUIRED = ("case", "client", "target", "path", "port", "protocol", "verdict", "outcome")
VERDICTS = tuple(VERDICT_CHAR)  # allow, deny, undefined: what a truth table can mark
_decode = json.JSONDecoder().decode


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
    digest: CaseDigest = field(default_factory=CaseDigest)
    source: Path | None = None  # the results file its records are in
    spans: list[tuple[int, int]] = field(default_factory=list)  # their byte ranges there

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every probe record of the case, read again from the results file (not kept)."""
        return list(self.iter_records())

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """The same, one at a time: what only looks at each record once holds none."""
        if self.source is None or not self.spans:
            return
        with open(self.source, "rb") as f:
            for start, end in self.spans:
                f.seek(start)
                for line in f.read(end - start).splitlines():
                    if line.strip():
                        yield json.loads(line)

    @property
    def leaks(self) -> tuple[int, float]:
        """(leaking samples, longest span from apply to the last one in ms) over the case."""
        return self.digest.leaks, self.digest.leak_span_ms

    @property
    def directions(self) -> list[str]:
        return sorted(self.digest.directions)

    @property
    def paths(self) -> list[str]:
        return sorted(self.digest.paths)

    @property
    def protocols(self) -> list[str]:
        return sorted(self.digest.protocols)


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


def stream_results(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(start, end, record) for every probe record of a results.jsonl, one line at a time.
    Only the last non-blank line may be broken (cut off mid-write): it is skipped, and the
    generator's return value says so (True)."""
    broken: int | None = None  # line number of a broken line, fatal unless it is the last
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    with f:
        offset = 0
        for n, line in enumerate(f, 1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            if broken is not None:
                raise ReportError(f"{path}:{broken}: not a JSON object")
            try:
                rec = _decode(line.decode("utf-8"))
            except UnicodeDecodeError:
                raise ReportError(f"{path}:{n}: not UTF-8 text") from None
            except json.JSONDecodeError:
                broken = n
                continue
            if not isinstance(rec, dict):
                raise ReportError(f"{path}:{n}: not a JSON object")
            missing = [k for k in REQUIRED if k not in rec]
            if missing:
                raise ReportError(f"{path}:{n}: record lacks {', '.join(missing)}")
            if rec["verdict"] not in VERDICTS:
                raise ReportError(f"{path}:{n}: verdict {rec['verdict']!r} is not one of "
                                  f"{', '.join(VERDICTS)}")
            if not isinstance(rec["port"], int | str):
                raise ReportError(f"{path}:{n}: port {rec['port']!r} is not a number")
            yield start, offset, rec
    return broken is not None


def read_results(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """All probe records of a results.jsonl in memory (small files; reports stream instead)."""
    records: list[dict[str, Any]] = []
    stream = stream_results(path)
    while True:
        try:
            records.append(next(stream)[2])
        except StopIteration as stop:
            return records, bool(stop.value)


def _read_summary(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(read_text(path))
    except (OSError, UnicodeDecodeError, ValueError):
        raise ReportError(f"{path}: not a readable JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases", {}), dict):
        raise ReportError(f"{path}: expected an object with a 'cases' object")
    return data


def _read_case_lines(path: Path) -> tuple[dict[str, Any], bool]:
    cases: dict[str, Any] = {}
    try:
        lines = read_text(path).splitlines()
    except (OSError, ValueError):
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


# Run-wide fields: the summary's word first, else the first record that has one.
META = ("kube_ovn_version", "mode", "run_id", "backend", "profile", "ovn_version")


def _meta(key: str, summary: dict[str, Any] | None, first: dict[str, Any]) -> Any:
    if summary and summary.get(key) not in (None, ""):
        return summary[key]
    return first.get(key)


def _digest(results: Path, pool: Pool) -> tuple[dict[str, CaseResult], dict[str, Any], bool]:
    """Stream a results file into one CaseResult per case (outcome still to be decided), the
    first value of each run-wide field, and whether the last line was cut off."""
    by_case: dict[str, CaseResult] = {}
    first: dict[str, Any] = {}
    stream = stream_results(results)
    while True:
        try:
            start, end, r = next(stream)
        except StopIteration as stop:
            truncated = bool(stop.value)
            break
        for key in META:
            if key not in first and r.get(key) not in (None, ""):
                first[key] = r[key]
        name = str(r["case"])
        res = by_case.get(name)
        if res is None:
            res = by_case[name] = CaseResult(case=pool(name), outcome="", source=results)
        res.digest.add(r, pool)
        if res.spans and res.spans[-1][1] == start:
            res.spans[-1] = (res.spans[-1][0], end)  # lines of one case usually come together
        else:
            res.spans.append((start, end))
    for res in by_case.values():
        res.digest.freeze(pool)
    return by_case, first, truncated


def load_run(path: Path, pool: Pool | None = None) -> Run:
    """A run directory, or a results.jsonl file (its summary.json beside it is used if present).
    `pool` shares equal names and tables between the runs of one report."""
    path = Path(path)
    pool = pool if pool is not None else Pool()
    if path.is_dir():
        results, summary_path = path / RESULTS, path / SUMMARY
    elif path.is_file():
        results, summary_path = path, path.parent / SUMMARY
    else:
        raise ReportError(f"{path}: no such file or directory")
    if not results.is_file() and not summary_path.is_file():
        raise ReportError(f"{path}: not a run (no {RESULTS} or {SUMMARY})")
    measured, first, truncated = _digest(results, pool) if results.is_file() else ({}, {}, False)
    summary = _read_summary(summary_path)
    if summary is None and (summary_path.parent / CASES).is_file():
        # Interrupted before the summary was written: its per-case lines are what we have.
        lines, _ = _read_case_lines(summary_path.parent / CASES)
        summary = {"cases": lines}

    cases: dict[str, CaseResult] = {}
    for name, info in (summary or {}).get("cases", {}).items():
        if not isinstance(info, dict) or info.get("outcome") not in CASE_OUTCOMES:
            raise ReportError(f"{summary_path}: case {name!r} has no valid outcome")
        res = measured.pop(name, None) or CaseResult(case=name, outcome="")
        outcome = info["outcome"]
        # A case whose every probe is implementation-defined says nothing either way.
        if outcome == "pass" and res.digest.count and res.digest.derived_outcome() == "undefined":
            outcome = "undefined"
        res.outcome = outcome
        res.probes = int(info.get("probes", res.digest.count) or 0)
        res.mismatches = int(info.get("mismatches", 0) or 0)
        res.convergence_ms = info.get("convergence_ms")
        res.duration_s = info.get("duration_s")
        res.skip_reason = info.get("skip_reason")
        cases[name] = res
    for name, res in measured.items():  # measured, but the summary never got written or updated
        res.outcome = res.digest.derived_outcome()
        res.probes, res.mismatches = res.digest.count, res.digest.fails
        res.convergence_ms = res.digest.convergence_max
        cases[name] = res

    version = _meta("kube_ovn_version", summary, first)
    mode = _meta("mode", summary, first)
    if not version or not mode:
        raise ReportError(f"{path}: run does not say its kube_ovn_version and mode")
    return Run(
        run_id=str(_meta("run_id", summary, first) or (path.name if path.is_dir() else path.parent.name)),
        source=str(path),
        backend=str(_meta("backend", summary, first) or "?"),
        mode=str(mode),
        version=str(version),
        profile=_meta("profile", summary, first),
        started=(summary or {}).get("started"),
        finished=(summary or {}).get("finished"),
        cases=cases,
        truncated=truncated,
        ovn=_meta("ovn_version", summary, first),
    )


def _is_run(path: Path) -> bool:
    return (path / RESULTS).is_file() or (path / SUMMARY).is_file()


def load_runs(paths: list[str] | list[Path]) -> list[Run]:
    """Each path is a run directory, a results.jsonl, or a directory of run directories
    (a matrix, e.g. one CI artifact per version and mode)."""
    runs: list[Run] = []
    pool = Pool()
    for p in map(Path, paths):
        if p.is_dir() and not _is_run(p):
            subs = sorted(d for d in p.iterdir() if d.is_dir() and _is_run(d))
            if not subs:
                raise ReportError(f"{p}: neither a run nor a directory of runs")
            runs.extend(load_run(d, pool) for d in subs)
        else:
            runs.append(load_run(p, pool))
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
