"""One self-contained HTML page (inline CSS, JS and data; no network) for one or many runs."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from kubeovn_conformance.report.digest import MARKS, PROBE_FIELDS, Table
from kubeovn_conformance.report.matrix import STATES, Matrix, column_label, run_stats

# The page loads nothing: everything it needs is inline, and the browser is told so.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
SYMBOLS = {"pass": "ok", "fail": "FAIL", "known": "known", "undefined": "undef",
           "infra-error": "INFRA", "skipped": "skip"}


def _asset(name: str) -> str:
    return resources.files("kubeovn_conformance.report").joinpath(name).read_text("utf-8")


def _json_for_script(obj: object) -> str:
    # Inside <script> only "</" and "<!--" could end or confuse the element; escaping <, >
    # and & as JSON unicode escapes rules that out whatever the names contain.
    text = json.dumps(obj, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class _Pool:
    """The page's `pool`: JSON texts the script parses only when a cell is opened. Equal
    texts are stored once (the same case's tables in other columns usually are equal)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._ids: dict[str, int] = {}
        self._seen: dict[int, tuple[object, int]] = {}  # id(object) -> (object, pool id)

    def add(self, value: object, encode=None) -> int:  # type: ignore[no-untyped-def]
        # Reports share equal rows, marks and probe lists as one object (digest.Pool), so the
        # same object is encoded once; the object is kept so that its id() stays its own.
        hit = self._seen.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        text = json.dumps(encode(value) if encode else value, ensure_ascii=True, sort_keys=True,
                          separators=(",", ":"))
        index = self._ids.setdefault(text, len(self.texts))
        if index == len(self.texts):
            self.texts.append(text)
        self._seen[id(value)] = (value, index)
        return index

    def table(self, t: Table) -> int:
        return self.add(t, lambda t: {
            "step": t.step, "title": t.title, "path": t.path, "protocol": t.protocol,
            "rows": self.add(t.rows), "cols": self.add(t.cols), "marks": [self.add(m) for m in t.marks],
            **{name: self.add(getattr(t, name)) for name in ("mismatches", "errors", "undefined")},
        })


def payload(matrix: Matrix) -> dict[str, Any]:
    """The page's data: the grid eagerly, each cell's truth tables as ids into `pool`
    (report.js turns a table back into what matrix.tables() gives, when it is opened)."""
    columns = []
    for col in matrix.columns:
        run = next(r for r in matrix.runs if r.column == col)
        columns.append({
            "key": f"{col[0]}|{col[1]}", "version": col[0], "mode": col[1],
            "label": column_label(col), "backend": run.backend, "run_id": run.run_id,
        })
    by_case: dict[str, list[Any]] = {}
    for (name, _), c in matrix.cells.items():
        by_case.setdefault(name, []).append(c.result)
    cases = []
    for name in matrix.cases:
        results = by_case.get(name, [])
        cases.append({
            "name": name,
            "directions": sorted({d for r in results for d in r.directions}),
            "paths": sorted({p for r in results for p in r.paths}),
            "protocols": sorted({p for r in results for p in r.protocols}),
        })
    pool = _Pool()
    cells = []
    for (name, col), cell in matrix.cells.items():
        res = cell.result
        issue = cell.issue
        cells.append({
            "case": name, "col": f"{col[0]}|{col[1]}", "state": cell.state,
            "fixed": cell.fixed_hint,
            "issue": {"id": issue.id, "url": issue.url, "explanation": issue.explanation}
            if issue else None,
            "probes": res.probes, "mismatches": res.mismatches,
            "convergence_ms": res.convergence_ms, "duration_s": res.duration_s,
            "skip_reason": res.skip_reason, "tables": [pool.table(t) for t in res.digest.tables],
            "placement": res.digest.placement_counts(),
            "leaks": res.leaks[0], "leak_span_ms": res.leaks[1],
        })
    return {"columns": columns, "cases": cases, "cells": cells, "states": list(STATES),
            "probe_fields": list(PROBE_FIELDS), "marks": list(MARKS), "pool": pool.texts}


def cell_tables(data: dict[str, Any], cell: dict[str, Any]) -> list[dict[str, Any]]:
    """A payload cell's truth tables as matrix.tables() gives them: what report.js's
    table() rebuilds in the browser, for tests and tools that read the payload."""
    def frag(i: int) -> Any:
        return json.loads(data["pool"][i])

    def probes(i: int) -> list[dict[str, Any]]:
        return [dict(zip(data["probe_fields"], p, strict=True)) for p in frag(i)]

    out = []
    for i in cell["tables"]:
        t = frag(i)
        rows, cols = frag(t["rows"]), frag(t["cols"])
        texts = [frag(m) for m in t["marks"]]
        marks = {name: [list(texts[m][r * len(cols):(r + 1) * len(cols)]) for r in range(len(rows))]
                 for m, name in enumerate(data["marks"])}
        out.append({"step": t["step"], "title": t["title"], "path": t["path"], "protocol": t["protocol"],
                    "rows": rows, "cols": cols, **marks,
                    **{name: probes(t[name]) for name in ("mismatches", "errors", "undefined")}})
    return out


def render(matrix: Matrix, title: str = "Kube-OVN NetworkPolicy conformance") -> str:
    counts = matrix.counts()
    esc = html.escape
    runs = "".join(
        f"<li>{esc(r.run_id)}: {esc(r.backend)} {esc(r.label)} {esc(r.mode)}"
        f"{' (interrupted: last result line cut off)' if r.truncated else ''}"
        f"{f', started {esc(str(r.started))}' if r.started else ''}; {esc(run_stats(r))}</li>"
        for r in matrix.runs
    ) + "".join(
        f"<li>{esc(old)}: not shown, {esc(new)} is the later run of the same version and mode</li>"
        for old, new in matrix.superseded.items()
    )
    legend = "".join(
        f'<span class="s-{s}">{SYMBOLS[s]} = {s} ({counts[s]})</span>' for s in STATES
    ) + f'<span class="fixed-legend">fixed? = matches a known issue but passed ({counts["fixed?"]})</span>'
    unseen = "".join(
        f'<li><a href="{esc(i.url)}" rel="noreferrer">{esc(i.id)}</a>: explains no failure '
        f"in these runs. {esc(i.explanation)}</li>"
        for i in matrix.unseen_issues()
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{esc(title)}</title>
<style>
{_asset("report.css")}
</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p class="muted">{len(matrix.cases)} cases, {len(matrix.columns)} version/mode columns, generated {generated}.
Click a cell for its truth tables.</p>
<p class="legend">{legend}</p>
<details><summary>Runs ({len(matrix.runs)})</summary><ul>{runs}</ul></details>
{f"<details><summary>Known issues to re-check</summary><ul>{unseen}</ul></details>" if unseen else ""}
<div id="filters"></div>
<noscript><p>This page needs JavaScript; the Markdown summary has the same grid.</p></noscript>
<table id="grid" class="grid"></table>
<section id="details"></section>
<script id="report-data" type="application/json">{_json_for_script(payload(matrix))}</script>
<script>
{_asset("report.js")}
</script>
</body>
</html>
"""
