"""Known issues: failing cases explained by an upstream report (clusters/known-issues.yaml).

A failing case that matches an entry is shown as "known" (its tables stay visible); a
matching case that passes is flagged "fixed?" so that the file cannot silently go stale.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from kubeovn_conformance.report.records import ReportError, version_key
from kubeovn_conformance.textfile import read_text

MODES = ("overlay", "underlay", "any")
BACKENDS = ("lab", "kind")
FIELDS = {"id", "case", "mode", "versions", "backend", "url", "explanation"}
_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<|=)?\s*([A-Za-z]*:?v?\d+(?:\.\d+){0,2})$")


@dataclass(frozen=True)
class KnownIssue:
    id: str
    cases: tuple[str, ...]  # globs
    mode: str
    versions: str
    backend: str | None
    url: str
    explanation: str

    def matches(self, case: str, mode: str, version: str, backend: str | None = None) -> bool:
        return (
            any(fnmatch.fnmatchcase(case, g) for g in self.cases)
            and self.mode in ("any", mode)
            and (self.backend is None or self.backend == backend)
            and version_in_range(version, self.versions)
        )


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
    cases = raw.get("case")
    if isinstance(cases, str):
        cases = [cases]
    if not cases or not all(isinstance(c, str) and c for c in cases):
        raise ReportError(f"{where}: 'case' must be a glob or a list of globs")
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
    )


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
    return next((i for i in issues if i.matches(case, mode, version, backend)), None)
