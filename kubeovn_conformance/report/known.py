"""Known issues: failing cells explained by an upstream report (clusters/known-issues.yaml).

An entry with a `mechanism:` map explains a failing *cell* that has every property of the map
(mechanism.py: properties of what decided the cell, from the oracle and the model), in any
case, optionally only in cases its `case` globs name. An entry with only `case` globs (the
old form) explains every failing cell of the cases it names. A case whose failing cells are
all explained is "known" (its tables stay visible); a cell a mechanism matches that passes,
or a case a glob names that passes, is flagged "fixed?", so the file cannot silently go stale.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeovn_conformance import mechanism as mech
from kubeovn_conformance.report.records import ReportError, version_key
from kubeovn_conformance.textfile import read_text

MODES = ("overlay", "underlay", "any")
BACKENDS = ("lab", "kind")
FIELDS = {"id", "case", "mechanism", "mode", "versions", "backend", "url", "explanation"}
_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<|=)?\s*([A-Za-z]*:?v?\d+(?:\.\d+){0,2})$")


@dataclass(frozen=True)
class KnownIssue:
    id: str
    cases: tuple[str, ...]  # globs; empty: any case (only with a mechanism)
    mode: str
    versions: str
    backend: str | None
    url: str
    explanation: str
    mechanism: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # property -> accepted values

    def applies(self, case: str, mode: str, version: str, backend: str | None = None) -> bool:
        return (
            (not self.cases or any(fnmatch.fnmatchcase(case, g) for g in self.cases))
            and self.mode in ("any", mode)
            and (self.backend is None or self.backend == backend)
            and version_in_range(version, self.versions)
        )

    def matches(self, case: str, mode: str, version: str, backend: str | None = None) -> bool:
        """Names the whole case (an entry without a mechanism)."""
        return not self.mechanism and self.applies(case, mode, version, backend)

    def matches_cell(self, record: Mapping[str, Any]) -> bool:
        """Has the cell every property of the mechanism? (applies() decides the rest)"""
        return bool(self.mechanism) and mech.matches(dict(self.mechanism), record)


def _parse_range(spec: str) -> list[tuple[str, tuple[int, ...]]]:
    if spec.strip() == "*":
        return []
    clauses = []
    for part in spec.split(","):
        m = _CLAUSE.match(part.strip())
        if not m:
            raise ValueError(f"bad version clause {part.strip()!r}")
        clauses.append((m.group(1) or "==", version_key(m.group(2))))
    return clauses


def version_in_range(version: str, spec: str) -> bool:
    v = version_key(version)
    ops = {
        ">=": v.__ge__, "<=": v.__le__, ">": v.__gt__, "<": v.__lt__,
        "==": v.__eq__, "=": v.__eq__, "!=": v.__ne__,
    }
    return all(ops[op](bound) for op, bound in _parse_range(spec))


def _entry(source: str, index: int, raw: object) -> KnownIssue:
    where = f"{source}: entry {index}"
    if not isinstance(raw, dict):
        raise ReportError(f"{where}: not a mapping")
    if raw.get("id"):
        where += f" ({raw['id']})"
    unknown = set(raw) - FIELDS
    if unknown:
        raise ReportError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    mechanism = _mechanism(where, raw.get("mechanism"))
    cases = raw.get("case", [] if mechanism else None)
    if isinstance(cases, str):
        cases = [cases]
    if not isinstance(cases, list) or not (cases or mechanism) or not all(
            isinstance(c, str) and c for c in cases):
        raise ReportError(f"{where}: 'case' must be a glob or a list of globs "
                          "(it may be left out when there is a 'mechanism')")
    mode = raw.get("mode", "any")
    if mode not in MODES:
        raise ReportError(f"{where}: 'mode' must be one of {', '.join(MODES)}")
    versions = raw.get("versions", "*")
    try:
        _parse_range(str(versions))
    except ValueError as exc:
        raise ReportError(f"{where}: 'versions': {exc}") from None
    backend = raw.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise ReportError(f"{where}: 'backend' must be one of {', '.join(BACKENDS)}")
    url = raw.get("url")
    if not isinstance(url, str) or not re.match(r"^https://\S+$", url):
        raise ReportError(f"{where}: 'url' must be an https URL of the upstream report")
    explanation = raw.get("explanation")
    if not isinstance(explanation, str) or not explanation.strip() or "\n" in explanation.strip():
        raise ReportError(f"{where}: 'explanation' must be one non-empty line")
    return KnownIssue(
        id=str(raw.get("id") or url.rstrip("/").rsplit("/", 1)[-1]),
        cases=tuple(cases),
        mode=mode,
        versions=str(versions),
        backend=backend,
        url=url,
        explanation=explanation.strip(),
        mechanism=mechanism,
    )


def _mechanism(where: str, raw: object) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The `mechanism:` map: property -> a value or a list of values (any of them)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise ReportError(f"{where}: 'mechanism' must be a non-empty map of properties")
    out = []
    for name, value in raw.items():
        if name not in mech.PROPERTIES:
            raise ReportError(f"{where}: unknown mechanism property {name!r} "
                              f"(known: {', '.join(mech.PROPERTIES)})")
        allowed = mech.PROPERTIES[name][0]
        values = tuple(value) if isinstance(value, list) else (value,)
        bad = [v for v in values if not any(v is a or (v == a and type(v) is type(a)) for a in allowed)]
        if not values or bad:
            raise ReportError(f"{where}: mechanism property {name!r} takes "
                              f"{' | '.join(_yaml(a) for a in allowed)}, not "
                              f"{_yaml(bad[0]) if bad else 'an empty list'}")
        out.append((str(name), values))
    return tuple(out)


def _yaml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def load_known(path: str | Path | None) -> list[KnownIssue]:
    """Entries of a known-issues file; None means no file (no known issues)."""
    if path is None:
        return []
    path = Path(path)
    try:
        data = yaml.safe_load(read_text(path))
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" near line {line + 1}" if line is not None else ""
        raise ReportError(f"{path}: not valid YAML{at}") from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("issues", []), list):
        raise ReportError(f"{path}: expected a mapping with an 'issues' list")
    issues = [_entry(str(path), i, raw) for i, raw in enumerate(data.get("issues") or [], 1)]
    ids = [i.id for i in issues]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise ReportError(f"{path}: id {dup!r} used twice")
    return issues


def find_known(
    issues: list[KnownIssue], case: str, mode: str, version: str, backend: str | None = None
) -> KnownIssue | None:
    """The first entry naming the whole case (entries with a mechanism match cells only)."""
    return next((i for i in issues if i.matches(case, mode, version, backend)), None)


@dataclass
class Explained:
    """Known issues applied to the cells (probe records) of one case run."""

    case_issue: KnownIssue | None = None  # an entry naming the whole case
    cells: list[tuple[Mapping[str, Any], KnownIssue]] = field(default_factory=list)  # failing, matched
    unexplained: list[Mapping[str, Any]] = field(default_factory=list)  # failing, no entry
    stale: list[tuple[Mapping[str, Any], KnownIssue]] = field(default_factory=list)  # passing, matched

    @property
    def failing(self) -> int:
        return len(self.cells) + len(self.unexplained)

    def known(self, outcome: str) -> bool:
        """Is a case with this outcome a known failure: every failing cell explained?"""
        if outcome != "fail":
            return False
        if self.case_issue is not None:
            return True
        return bool(self.cells) and not self.unexplained

    def issues(self) -> list[KnownIssue]:
        """Entries explaining failing cells, in order of appearance."""
        out = [i for _, i in self.cells] + ([self.case_issue] if self.case_issue else [])
        return list({i.id: i for i in out}.values())

    def stale_issues(self, outcome: str) -> list[KnownIssue]:
        """Entries whose cells passed (and a whole-case entry whose case passed)."""
        out = [i for _, i in self.stale]
        if self.case_issue is not None and outcome == "pass":
            out.append(self.case_issue)
        return list({i.id: i for i in out}.values())


def explain(issues: list[KnownIssue], records: Iterable[Mapping[str, Any]], case: str, mode: str,
            version: str, backend: str | None = None) -> Explained:
    """Which entry explains each failing cell of a case; which matched cells passed."""
    out = Explained(case_issue=find_known(issues, case, mode, version, backend))
    cellwise = [i for i in issues if i.mechanism and i.applies(case, mode, version, backend)]
    for record in records:
        outcome = record.get("outcome")
        if outcome not in ("pass", "fail"):
            continue
        issue = next((i for i in cellwise if i.matches_cell(record)), None)
        if outcome == "pass":
            if issue is not None:
                out.stale.append((record, issue))
        elif issue is not None:
            out.cells.append((record, issue))
        elif out.case_issue is None:
            out.unexplained.append(record)
    return out
