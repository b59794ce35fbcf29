"""Markdown summary for CI job summaries: the grid, the failing cases with their mismatches,
counts. Plain symbols (no emoji) so it reads the same in a terminal."""

from __future__ import annotations

import re

from kubeovn_conformance import placement, truthtable
from kubeovn_conformance.report.matrix import Cell, Matrix, column_label, describe_probe, run_stats
from kubeovn_conformance.report.records import Run

SYMBOL = {
    "pass": "ok",
    "fail": "FAIL",
    "known": "known",
    "undefined": "undef",
    "infra-error": "INFRA",
    "skipped": "skip",
}
MAX_PROBES = 20  # per failing cell: enough to see the pattern, short enough for a job summary


def md_escape(text: object) -> str:
    """Make any name safe inside Markdown text and table cells (GitHub renders raw HTML)."""
    s = " ".join(str(text).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Parentheses and the like only matter after an (escaped) bracket, so they stay readable.
    return re.sub(r"([\\`*_\[\]#|~])", r"\\\1", s)


def md_url(url: str) -> str:
    """A link target that cannot end the link early or open raw HTML."""
    for ch, enc in (("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E"), ('"', "%22"),
                    ("[", "%5B"), ("]", "%5D"), ("`", "%60"), ("|", "%7C")):
        url = url.replace(ch, enc)
    return url


def _fence(body: str) -> str:
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", body)), default=0))
    return f"{ticks}text\n{body}\n{ticks}"


def cell_symbol(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    return SYMBOL[cell.state] + (" fixed?" if cell.fixed_hint else "")


def _failing(cell: Cell) -> list[str]:
    res = cell.result
    head = f"### {md_escape(cell.case)}: {md_escape(column_label(cell.column))}, {cell.state}"
    out = [head, ""]
    if cell.issue and cell.state == "known":
        out.append(f"Known issue [{md_escape(cell.issue.id)}]({md_url(cell.issue.url)}): "
                   f"{md_escape(cell.issue.explanation)}")
        out.append("")
    # The runner leaves convergence empty when a step never agreed before its deadline.
    conv = (f"{res.convergence_ms:.0f} ms" if res.convergence_ms is not None
            else "never agreed before the deadline" if res.probes else "n/a")
    out.append(
        f"{res.mismatches} mismatching of {res.probes} probes; convergence {conv}; "
        f"run {md_escape(cell.run.run_id)}"
        + (f"; {placement.describe(res.records)}" if placement.counts(res.records) is not None else "")
        + (f"; {res.leaks[0]} leaking samples within {res.leaks[1]:.0f} ms of applying a step"
           if res.leaks[0] else "")
    )
    out.append("")
    bad = [r for r in res.records if r.get("outcome") in ("fail", "infra-error")]
    for r in bad[:MAX_PROBES]:
        step = f"[{r.get('step') or 'initial'}] "
        out.append(f"- {md_escape(step + describe_probe(r))}")
    if len(bad) > MAX_PROBES:
        out.append(f"- ... and {len(bad) - MAX_PROBES} more (see the HTML report)")
    if bad:
        steps = sorted({str(r.get("step") or "initial") for r in bad})
        parts = []
        for step in steps:
            recs = [r for r in res.records if str(r.get("step") or "initial") == step]
            for name, mark in (("expected", truthtable.expected_mark),
                               ("observed", truthtable.observed_mark),
                               ("diff", truthtable.diff_mark)):
                parts.append(truthtable.render_all(recs, mark, heading=f"{step} {name}: "))
        if placement.counts(res.records) is not None:
            parts.append(placement.table(res.records))
        out += ["", _fence("\n\n".join(parts))]
    out.append("")
    return out


def _placement_counts(run: Run) -> str:
    """Probe cells per node-placement class over the run ("" when placement is unknown)."""
    c = placement.counts(r for case in run.cases.values() for r in case.records)
    return "" if c is None else f"; {c[placement.SAME]} same-node, {c[placement.CROSS]} cross-node cells"


def render(matrix: Matrix) -> str:
    counts = matrix.counts()
    out = ["# Kube-OVN NetworkPolicy conformance", ""]
    out.append(
        f"{len(matrix.cases)} cases, {len(matrix.columns)} version/mode columns: "
        + ", ".join(f"{counts[s]} {SYMBOL[s]}" for s in SYMBOL)
        + f", {counts['fixed?']} fixed?"
    )
    out.append("")
    for run in matrix.runs:
        note = " (interrupted: last result line cut off)" if run.truncated else ""
        out.append(
            f"- run {md_escape(run.run_id)}: {md_escape(run.backend)} "
            f"{md_escape(run.label)} {md_escape(run.mode)}{note}; {run_stats(run)}"
            + _placement_counts(run)
        )
    for old, new in matrix.superseded.items():
        out.append(f"- run {md_escape(old)}: not shown, {md_escape(new)} is the later run "
                   "of the same version and mode")
    out += ["", "## Grid", ""]
    out.append("| case | " + " | ".join(md_escape(column_label(c)) for c in matrix.columns) + " |")
    out.append("|---" * (len(matrix.columns) + 1) + "|")
    for case in matrix.cases:
        row = [cell_symbol(matrix.cells.get((case, col))) for col in matrix.columns]
        out.append(f"| {md_escape(case)} | " + " | ".join(row) + " |")
    out += ["", "Legend: " + ", ".join(f"{v} = {k}" for k, v in SYMBOL.items())
            + ", fixed? = matches a known issue but passed, - = not run", ""]

    failing = matrix.failing()
    out += ["## Failing cases", ""]
    if not failing:
        out += ["None.", ""]
    for cell in failing:
        out += _failing(cell)

    fixed = [c for c in matrix.cells.values() if c.fixed_hint]
    unseen = matrix.unseen_issues()
    if fixed or unseen:
        out += ["## Known issues to re-check", ""]
        for c in fixed:
            out.append(f"- fixed? {md_escape(c.case)} passed on {md_escape(column_label(c.column))}"
                       f" but matches [{md_escape(c.issue.id)}]({md_url(c.issue.url)})")  # type: ignore[union-attr]
        for i in unseen:
            out.append(f"- [{md_escape(i.id)}]({md_url(i.url)}) explains no failure in these runs")
        out.append("")
    return "\n".join(out)
