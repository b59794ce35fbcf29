"""The grid every report shows: cases (rows) by (version, mode) columns, one cell per case run,
with its state after known issues are applied and its truth tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeovn_conformance import placement, truthtable
from kubeovn_conformance.report.known import KnownIssue, explain
from kubeovn_conformance.report.records import CaseResult, Run, version_key

STATES = ("pass", "fail", "known", "undefined", "infra-error", "skipped")
MODE_ORDER = {"overlay": 0, "underlay": 1}


@dataclass
class Cell:
    case: str
    run: Run
    result: CaseResult
    state: str
    issue: KnownIssue | None = None  # the first of `issues`, or the entry flagged "fixed?"
    fixed_hint: bool = False  # matches a known issue, yet passed: the entry may be stale
    issues: tuple[KnownIssue, ...] = ()  # entries explaining its failing cells
    stale: tuple[KnownIssue, ...] = ()  # entries whose matching cells (or case) passed

    @property
    def column(self) -> tuple[str, str]:
        return self.run.column

    @property
    def mismatching(self) -> list[dict[str, Any]]:
        """The failing probe records (read again from the results file)."""
        return [r for r in self.result.records if r.get("outcome") == "fail"]


@dataclass
class Matrix:
    columns: list[tuple[str, str]]
    cases: list[str]
    cells: dict[tuple[str, tuple[str, str]], Cell]
    runs: list[Run]
    issues: list[KnownIssue] = field(default_factory=list)
    superseded: dict[str, str] = field(default_factory=dict)  # run id -> the later run shown

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for c in self.cells.values():
            out[c.state] += 1
        out["fixed?"] = sum(1 for c in self.cells.values() if c.fixed_hint)
        return out

    def unseen_issues(self) -> list[KnownIssue]:
        """Known issues that explain no failing cell here (they may be fixed, or not covered)."""
        used = {i.id for c in self.cells.values() if c.state == "known" for i in c.issues}
        return [i for i in self.issues if i.id not in used]

    def failing(self) -> list[Cell]:
        order = {col: i for i, col in enumerate(self.columns)}
        cells = [c for c in self.cells.values() if c.state in ("fail", "known", "infra-error")]
        return sorted(cells, key=lambda c: (c.case, order[c.column]))


def column_label(column: tuple[str, str]) -> str:
    return f"{column[0]} {column[1]}"


def build(runs: list[Run], issues: list[KnownIssue]) -> Matrix:
    # Later runs for the same (version, mode) replace earlier ones: the newest word counts.
    by_column: dict[tuple[str, str], Run] = {}
    superseded: dict[str, str] = {}
    for run in runs:
        if run.column in by_column and by_column[run.column].run_id != run.run_id:
            superseded[by_column[run.column].run_id] = run.run_id
        by_column[run.column] = run
    columns = sorted(
        by_column, key=lambda c: (version_key(c[0]), c[0], MODE_ORDER.get(c[1], 9), c[1])
    )
    cells: dict[tuple[str, tuple[str, str]], Cell] = {}
    for col in columns:
        run = by_column[col]
        for name, result in run.cases.items():
            # Per cell: every failing probe must be explained for the case to be "known".
            ex = explain(issues, result.iter_records(), name, run.mode, run.version, run.backend)
            known = ex.known(result.outcome)
            explaining = tuple(ex.issues()) if known else ()
            stale = tuple(ex.stale_issues(result.outcome))
            cells[(name, col)] = Cell(
                case=name,
                run=run,
                result=result,
                state="known" if known else result.outcome,
                issue=(explaining or stale or (None,))[0],
                fixed_hint=bool(stale),
                issues=explaining,
                stale=stale,
            )
    cases = sorted({name for name, _ in cells})
    ordered = [by_column[c] for c in columns]
    return Matrix(columns, cases, cells, ordered, issues, superseded)


def run_stats(run: Run) -> str:
    """Timing of a run in one line: probes per second and policy convergence."""
    probes = sum(c.probes for c in run.cases.values())
    seconds = sum(c.duration_s or 0.0 for c in run.cases.values())
    conv = sorted(c.convergence_ms for c in run.cases.values() if c.convergence_ms is not None)
    parts = [f"{probes} probes"]
    if seconds > 0:
        parts.append(f"{probes / seconds:.1f} probes/s over {seconds:.1f} s of cases")
    if conv:
        parts.append(f"convergence median {conv[len(conv) // 2]:.0f} ms, max {conv[-1]:.0f} ms")
    never = sum(1 for c in run.cases.values() if c.digest.count and c.convergence_ms is None)
    if never:
        parts.append(f"{never} case(s) never converged")
    return ", ".join(parts)


def _steps(records: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen.setdefault(str(r.get("step") or "initial"), None)
    return list(seen)


def tables(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Expected, observed and diff truth tables per (step, path, port, protocol). The reports
    take them from the streamed digest (digest.Table.as_dict() is the same for the same records)."""
    out = []
    for step in _steps(records):
        groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for r in records:
            if str(r.get("step") or "initial") == step:
                groups.setdefault((str(r["path"]), r["port"], str(r["protocol"])), []).append(r)
        for (path, _port, protocol), recs in sorted(
            groups.items(), key=lambda kv: (kv[0][0] != "pod", kv[0][0], str(kv[0][1]), kv[0][2])
        ):
            title = next(iter(truthtable.group(recs, truthtable.expected_mark)))
            marks = {
                name: truthtable.group(recs, fn)[title]
                for name, fn in (
                    ("expected", truthtable.expected_mark),
                    ("observed", truthtable.observed_mark),
                    ("diff", truthtable.diff_mark),
                    ("placement", placement.mark),  # s same node, c cross node, - not known
                )
            }
            rows = sorted({str(r["client"]) for r in recs})
            cols = sorted({str(r["target"]) for r in recs})
            out.append(
                {
                    "step": step,
                    "title": title,
                    "path": path,
                    "protocol": protocol,
                    "rows": rows,
                    "cols": cols,
                    **{
                        name: [[cells.get((r, c), " ") for c in cols] for r in rows]
                        for name, cells in marks.items()
                    },
                    "mismatches": [_probe(r) for r in recs if r.get("outcome") == "fail"],
                    "errors": [_probe(r) for r in recs if r.get("outcome") == "infra-error"],
                    "undefined": [_probe(r) for r in recs if r.get("verdict") == "undefined"],
                }
            )
    return out


def _probe(r: dict[str, Any]) -> dict[str, Any]:
    return {
        k: r.get(k)
        for k in (
            "client", "target", "path", "port", "target_port", "protocol", "verdict",
            "expected_observed", "observed", "reason", "attempts", "detail",
        )
    }


def describe_probe(p: dict[str, Any]) -> str:
    """One line per mismatching probe, the same in Markdown and text."""
    via = f"{p['path']} {p['port']}/{p['protocol']}"
    if p.get("target_port") not in (None, p["port"]):
        via += f" -> {p['target_port']}"
    return (
        f"{p['client']} -> {p['target']} via {via}: expected {p['verdict']}, "
        f"observed {p.get('observed') or 'nothing'} ({p.get('reason') or 'no reason given'})"
        + (f" [error: {p['detail']}]" if p.get("detail") else "")
    )
