"""What the reports need of one case's probe records, gathered while the records stream past.

A night holds millions of probe records (about 500 per case and column); the reports show
counts, the truth tables and the few probes that are wrong or implementation-defined. So
`CaseDigest.add(record)` keeps exactly that: one mark per cell and table (expected, observed,
diff, placement), the mismatching, erroring and undefined probes, counts, the leaks. `freeze()`
turns it into `Table`s whose rows, columns, mark strings and probes are shared through a
`Pool` with every other case and run that has the same ones (the same case in another column
usually has the very same tables).

`Table.as_dict()` is what `matrix.tables(records)` returns for the same records, entry for
entry (tests/test_report_scale.py checks that on every fixture case).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubeovn_conformance import placement, truthtable

MARKS = ("expected", "observed", "diff", "placement")
# The fields a listed probe shows (mismatches, errors, undefined), in this order.
PROBE_FIELDS = ("client", "target", "path", "port", "target_port", "protocol", "verdict",
                "expected_observed", "observed", "reason", "attempts", "detail")
LISTS = {"fail": "mismatches", "infra-error": "errors"}  # record outcome -> list of probes


class Pool:
    """Interning for everything tables share: equal values become one object."""

    def __init__(self) -> None:
        self._values: dict[Any, Any] = {}
        self.strings = self._values.setdefault  # pool.strings(s, s): the fast path for strings

    def __call__(self, value: Any) -> Any:
        try:
            return self._values.setdefault(value, value)
        except TypeError:  # unhashable (a list where a string belongs): kept as it is
            return value


def _title(r: dict[str, Any]) -> str:
    # The same title truthtable.group() gives the record's table.
    title = f"{r['path']} port {r['port']}/{r['protocol']}"
    if r["path"] == "service" and r.get("target_port") != r["port"]:
        title += f" (target port {r['target_port']})"
    return title


@dataclass(frozen=True)
class Table:
    """One (step, path, port, protocol) of a case: rows clients, columns destinations, each
    mark matrix as one string of len(rows) * len(cols) characters, row by row."""

    step: str
    title: str
    path: str
    protocol: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    marks: tuple[str, str, str, str]  # expected, observed, diff, placement
    mismatches: tuple[tuple[Any, ...], ...]  # PROBE_FIELDS values
    errors: tuple[tuple[Any, ...], ...]
    undefined: tuple[tuple[Any, ...], ...]

    def matrix(self, name: str) -> list[list[str]]:
        text, width = self.marks[MARKS.index(name)], len(self.cols)
        return [list(text[i * width:(i + 1) * width]) for i in range(len(self.rows))]

    def as_dict(self) -> dict[str, Any]:
        def probes(rows: tuple[tuple[Any, ...], ...]) -> list[dict[str, Any]]:
            return [dict(zip(PROBE_FIELDS, p, strict=True)) for p in rows]

        return {"step": self.step, "title": self.title, "path": self.path, "protocol": self.protocol,
                "rows": list(self.rows), "cols": list(self.cols),
                **{name: self.matrix(name) for name in MARKS},
                "mismatches": probes(self.mismatches), "errors": probes(self.errors),
                "undefined": probes(self.undefined)}


@dataclass
class _Group:
    title: str
    cells: dict[tuple[str, str], str] = field(default_factory=dict)  # 4 marks in one string
    clients: set[str] = field(default_factory=set)
    targets: set[str] = field(default_factory=set)
    lists: dict[str, list[tuple[Any, ...]]] = field(
        default_factory=lambda: {"mismatches": [], "errors": [], "undefined": []})


@dataclass
class CaseDigest:
    """Counts and tables of one case in one run. Feed records with `add`, then `freeze`."""

    count: int = 0
    fails: int = 0
    outcomes: set[str] = field(default_factory=set)
    convergence_max: float | None = None
    leaks: int = 0
    leak_span_ms: float = 0.0
    directions: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    protocols: set[str] = field(default_factory=set)
    placement: Counter[str] = field(default_factory=Counter)
    tables: tuple[Table, ...] = ()
    _steps: dict[str, dict[tuple[str, Any, str], _Group]] = field(default_factory=dict)

    def add(self, r: dict[str, Any], pool: Pool) -> None:
        """Fold one record in (called for every record of a night: kept lean)."""
        self.count += 1
        outcome = r.get("outcome")
        self.outcomes.add(outcome)  # type: ignore[arg-type]
        if outcome == "fail":
            self.fails += 1
        conv = r.get("convergence_ms")
        if conv is not None and (self.convergence_max is None or conv > self.convergence_max):
            self.convergence_max = conv
        if r.get("leaks"):
            self.leaks += int(r["leaks"])
            self.leak_span_ms = max(self.leak_span_ms, float(r.get("leak_span_ms") or 0.0))
        path, protocol = str(r["path"]), str(r["protocol"])
        self.directions.add(str(r.get("direction") or "none"))
        self.paths.add(path)
        self.protocols.add(protocol)
        where = r.get("placement")
        if where in placement.CLASSES:
            self.placement[where] += 1

        step = str(r.get("step") or "initial")
        groups = self._steps.get(step)
        if groups is None:
            groups = self._steps[step] = {}
        key = (path, r["port"], protocol)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(_title(r))
        client, target = str(r["client"]), str(r["target"])
        group.clients.add(client)
        group.targets.add(target)
        # A table shows the cells of its first title, as truthtable.group() does; only a
        # Service's target port can make titles differ within one (path, port, protocol).
        if path != "service" or _title(r) == group.title:
            marks = (truthtable.expected_mark(r) + truthtable.observed_mark(r)
                     + truthtable.diff_mark(r) + placement.mark(r))
            group.cells[(client, target)] = pool.strings(marks, marks)
        if outcome in LISTS:
            group.lists[LISTS[outcome]].append(_probe(r, pool))
        if r.get("verdict") == "undefined":
            group.lists["undefined"].append(_probe(r, pool))

    def freeze(self, pool: Pool) -> CaseDigest:
        """Build the tables (in matrix.tables' order) and drop the per-cell working state."""
        tables = []
        for step, groups in self._steps.items():
            for (path, _port, protocol), g in sorted(
                groups.items(), key=lambda kv: (kv[0][0] != "pod", kv[0][0], str(kv[0][1]), kv[0][2])
            ):
                rows = pool(tuple(pool(c) for c in sorted(g.clients)))
                cols = pool(tuple(pool(c) for c in sorted(g.targets)))
                # Row by row, the 4 marks of each cell; every 4th character is one matrix.
                flat = "".join([g.cells.get((r, c), "    ") for r in rows for c in cols])
                marks = tuple(pool(flat[i::len(MARKS)]) for i in range(len(MARKS)))
                lists = (pool(tuple(g.lists[n])) for n in ("mismatches", "errors", "undefined"))
                tables.append(Table(pool(step), pool(g.title), pool(path), pool(protocol), rows, cols,
                                    marks, *lists))  # type: ignore[arg-type]
        self.tables = tuple(tables)
        self._steps = {}
        return self

    def derived_outcome(self) -> str:
        """Case outcome from the probes (records.derive_outcome on the same records)."""
        if "fail" in self.outcomes:
            return "fail"
        if "infra-error" in self.outcomes:
            return "infra-error"
        if self.outcomes == {"undefined"}:
            return "undefined"
        return "pass"

    def placement_counts(self) -> dict[str, int] | None:
        """placement.counts() of the records: None when no record says where it ran."""
        if not self.placement:
            return None
        return {c: self.placement.get(c, 0) for c in placement.CLASSES}


def _probe(r: dict[str, Any], pool: Pool) -> tuple[Any, ...]:
    return pool(tuple(pool(v) if isinstance(v, str) else v for v in (r.get(k) for k in PROBE_FIELDS)))
