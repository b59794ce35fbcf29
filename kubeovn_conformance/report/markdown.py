"""Markdown summary for CI job summaries: the grid, the failing cases with their mismatches,
counts. Plain symbols (no emoji) so it reads the same in a terminal."""

from __future__ import annotations

import re

from kubeovn_conformance import placement, truthtable
from kubeovn_conformance.report.matrix import Cell, Matrix, column_label, describe_probe, run_stats
from kubeovn_conformance.report.records import CaseResult, Run

SYMBOL = {
    "pass": "ok",
    "fail": "FAIL",
    "known": "known",
    "undefined": "undef",
    "infra-error": "INFRA",
    "skipped": "skip",
}
MAX_PROBES = 20  # per failing cell: enough to see the pattern, short enough for a job summary
# GitHub rejects a step summary over 1024k ("$GITHUB_STEP_SUMMARY upload aborted, supports
# content up to a size of 1024k"): past this many bytes, failing cells lose their tables and
# probe lists, then their lines, and the summary points to the HTML report.
MAX_BYTES = 1000 * 1024


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


def _head(cell: Cell) -> list[str]:
    head = f"### {md_escape(cell.case)}: {md_escape(column_label(cell.column))}, {cell.state}"
    out = [head, ""]
    if cell.state == "known":
        for issue in cell.issues:
            out.append(f"Known issue [{md_escape(issue.id)}]({md_url(issue.url)}): "
                       f"{md_escape(issue.explanation)}")
        out.append("")
    return out


def _convergence(res: CaseResult) -> str:
    # The runner leaves convergence empty when a step never agreed before its deadline.
    return (f"{res.convergence_ms:.0f} ms" if res.convergence_ms is not None
            else "never agreed before the deadline" if res.probes else "n/a")


def _brief(cell: Cell) -> list[str]:
    """A failing cell in two lines, once the summary is at its size budget."""
    res = cell.result
    return [*_head(cell),
            f"{res.mismatches} mismatching of {res.probes} probes; convergence {_convergence(res)}; "
            f"run {md_escape(cell.run.run_id)}; tables left out (size budget), see the HTML report", ""]


def _failing(cell: Cell) -> list[str]:
    res = cell.result
    records = res.records  # read again from the results file, for this cell only
    out = _head(cell)
    conv = _convergence(res)
    placed = placement.counts(records) is not None
    out.append(
        f"{res.mismatches} mismatching of {res.probes} probes; convergence {conv}; "
        f"run {md_escape(cell.run.run_id)}"
        + (f"; {placement.describe(records)}" if placed else "")
        + (f"; {res.leaks[0]} leaking samples within {res.leaks[1]:.0f} ms of applying a step"
           if res.leaks[0] else "")
    )
    out.append("")
    bad = [r for r in records if r.get("outcome") in ("fail", "infra-error")]
    for r in bad[:MAX_PROBES]:
        step = f"[{r.get('step') or 'initial'}] "
        out.append(f"- {md_escape(step + describe_probe(r))}")
    if len(bad) > MAX_PROBES:
        out.append(f"- ... and {len(bad) - MAX_PROBES} more (see the HTML report)")
    if bad:
        steps = sorted({str(r.get("step") or "initial") for r in bad})
        parts = []
        for step in steps:
            recs = [r for r in records if str(r.get("step") or "initial") == step]
            for name, mark in (("expected", truthtable.expected_mark),
                               ("observed", truthtable.observed_mark),
                               ("diff", truthtable.diff_mark)):
                parts.append(truthtable.render_all(recs, mark, heading=f"{step} {name}: "))
        if placed:
            parts.append(placement.table(records))
        out += ["", _fence("\n\n".join(parts))]
    out.append("")
    return out


def _placement_counts(run: Run) -> str:
    """Probe cells per node-placement class over the run ("" when placement is unknown)."""
    per_case = [c.digest.placement_counts() for c in run.cases.values()]
    if all(c is None for c in per_case):
        return ""
    same = sum(c[placement.SAME] for c in per_case if c)
    cross = sum(c[placement.CROSS] for c in per_case if c)
    return f"; {same} same-node, {cross} cross-node cells"


def render(matrix: Matrix, budget: int = MAX_BYTES) -> str:
    """The summary, at most `budget` bytes (unless the grid alone is larger)."""
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

    tail = []
    fixed = [c for c in matrix.cells.values() if c.fixed_hint]
    unseen = matrix.unseen_issues()
    if fixed or unseen:
        tail += ["## Known issues to re-check", ""]
        for c in fixed:
            what = "passed" if c.result.outcome == "pass" else "has passing cells"
            links = ", ".join(f"[{md_escape(i.id)}]({md_url(i.url)})" for i in c.stale)
            tail.append(f"- fixed? {md_escape(c.case)} {what} on {md_escape(column_label(c.column))}"
                        f" but matches {links}")
        for i in unseen:
            tail.append(f"- [{md_escape(i.id)}]({md_url(i.url)}) explains no failure in these runs")
        tail.append("")

    failing = matrix.failing()
    out += ["## Failing cases", ""]
    if not failing:
        out += ["None.", ""]
    out += _within(_size(out) + _size(tail), failing, budget)
    return "\n".join(out + tail)


def _size(lines: list[str]) -> int:
    return sum(len(line.encode()) + 1 for line in lines)


def _within(used: int, failing: list[Cell], budget: int) -> list[str]:
    """Every failing cell named (briefly) if that fits, then the first ones in full as long
    as they fit; what does not fit is counted."""
    closing = 200  # room for the closing line
    parts: list[list[str]] = []
    for n, cell in enumerate(failing):
        brief = _brief(cell)
        if used + _size(brief) + closing > budget:
            return [line for lines in parts for line in lines] + [
                f"... and {len(failing) - n} more failing cells, left out to keep this summary "
                f"under {budget // 1024} kB: see the HTML report.", ""]
        parts.append(brief)
        used += _size(brief)
    for n, cell in enumerate(failing):
        full = _failing(cell)  # reads the cell's records: only while there is room
        grow = _size(full) - _size(parts[n])
        if used + grow > budget:
            break
        parts[n], used = full, used + grow
    return [line for lines in parts for line in lines]

