"""Everything people and CI read after a run: HTML and Markdown reports, the regression diff,
known issues, merged JUnit.

The CLI registers the commands with `add_subcommands(subparsers)`; each sets `func`, which
takes the parsed namespace and returns the exit status (bad input: one line on stderr, 2).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from kubeovn_conformance.report import browser, diff, html, junit, known, markdown, matrix
from kubeovn_conformance.report.records import ReportError, load_runs

PROG = "kubeovn-conformance"
# The known issues pytest applies (pytest_plugin.KNOWN_ISSUES: it has no option for another
# file), so that a report without --known paints cells as the runs judged them.
DEFAULT_KNOWN = Path(__file__).resolve().parents[2] / "clusters" / "known-issues.yaml"
__all__ = ["ReportError", "add_subcommands", "main"]


def _write(text: str, out: str | None) -> None:
    if not out or out == "-":
        sys.stdout.write(text)
        return
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{out}: cannot write: {exc.strerror}") from None


def _fragment(m: matrix.Matrix, choice: str | None) -> str:
    """Which cell the screenshot opens: the named case, else the first failure, else none."""
    if choice == "none":
        return ""
    cells = [c for c in m.failing() if not choice or c.case == choice]
    if choice and not cells:
        cells = [c for (name, _), c in m.cells.items() if name == choice]
        if not cells:
            raise ReportError(f"--screenshot-cell: no case {choice!r} in these runs")
    if not cells:
        return ""
    c = cells[0]
    return f"cell={quote(c.case, safe='')}&col={quote(f'{c.column[0]}|{c.column[1]}', safe='')}"


def cmd_report(args: argparse.Namespace) -> int:
    path = None if args.no_known else args.known or (DEFAULT_KNOWN if DEFAULT_KNOWN.is_file() else None)
    m = matrix.build(load_runs(args.runs), known.load_known(path))
    page = html.render(m, title=args.title) if args.format == "html" or args.screenshot else ""
    _write(markdown.render(m) if args.format == "markdown" else page, args.output)
    if args.screenshot:  # always of the HTML page, whichever format was written
        with tempfile.TemporaryDirectory(prefix="kubeovn-report-") as tmp:
            path = Path(tmp) / "report.html"  # chromium needs a file, wherever the page went
            path.write_text(page, encoding="utf-8")
            browser.screenshot(path, Path(args.screenshot), _fragment(m, args.screenshot_cell))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    old, new = load_runs([args.old]), load_runs([args.new])
    changes = diff.compare(old, new, across_versions=args.across_versions)
    note = ""
    if not args.across_versions:
        note = diff.ovn_mismatch(old, new)
    if not note and not args.across_versions and diff.no_common_columns(old, new):
        note = "note: OLD and NEW share no (version, mode); to compare versions use --across-versions"
    render = diff.render_markdown if args.format == "markdown" else diff.render_text
    _write(render(changes, note), args.output)
    return 1 if any(c.kind == "regression" for c in changes) else 0


def cmd_junit_merge(args: argparse.Namespace) -> int:
    merged = junit.merge([Path(p) for p in args.files], Path(args.output))
    print(f"{args.output}: {merged.tests} testcases from {len(args.files)} files", file=sys.stderr)
    return 0


def _guard(func):  # type: ignore[no-untyped-def]
    """One line and exit status 2 for bad input, whichever CLI calls the handler."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ReportError as exc:
            print(f"{PROG} {getattr(args, 'command', '')}: error: {exc}", file=sys.stderr)
            return 2

    return run


def add_subcommands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    fmt = argparse.RawDescriptionHelpFormatter
    rep = sub.add_parser(
        "report", formatter_class=fmt,
        help="HTML page or Markdown summary of one or many runs",
        description="Render runs as one self-contained HTML page (cases x version/mode grid, "
        "click a cell for its truth tables) or a Markdown summary for CI job summaries.",
        epilog="examples:\n"
        f"  {PROG} report reports/20261125-101500-lab-underlay -o report.html\n"
        f"  {PROG} report artifacts/ --format markdown --known clusters/known-issues.yaml "
        ">> $GITHUB_STEP_SUMMARY\n"
        f"  {PROG} report reports/RUN -o report.html --screenshot docs/report.png",
    )
    rep.add_argument("runs", nargs="+", metavar="RUN",
                     help="run directory, results.jsonl, or a directory of run directories")
    rep.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    rep.add_argument("--format", choices=("html", "markdown"), default="html",
                     help="html (default) or markdown")
    rep.add_argument("--known", metavar="YAML",
                     help="known issues file (default: clusters/known-issues.yaml of the package, "
                     "the one pytest applied)")
    rep.add_argument("--no-known", action="store_true",
                     help="no known issues: every failing cell as FAIL")
    rep.add_argument("--title", default="Kube-OVN NetworkPolicy conformance", help="page title")
    rep.add_argument("--screenshot", metavar="PNG",
                     help="also render the HTML page in headless chromium and save a PNG")
    rep.add_argument("--screenshot-cell", metavar="CASE",
                     help="case whose details the screenshot opens (default: the first "
                     "failure; 'none' for the grid only)")
    rep.set_defaults(func=_guard(cmd_report))

    dif = sub.add_parser(
        "diff", formatter_class=fmt,
        help="regressions, fixes, appeared and vanished cases between two runs",
        description="Compare case outcomes per (case, mode, version). Exit status 1 when a "
        "case went from pass to fail, 0 otherwise, 2 on bad input.",
        epilog="examples:\n"
        f"  {PROG} diff nightly-old/ nightly-new/\n"
        f"  {PROG} diff reports/RUN-v1.15 reports/RUN-v1.16 --across-versions --format markdown",
    )
    dif.add_argument("old", metavar="OLD", help="run directory, results.jsonl, or directory of runs")
    dif.add_argument("new", metavar="NEW", help="the same, for the newer side")
    dif.add_argument("--format", choices=("text", "markdown"), default="text")
    dif.add_argument("--across-versions", action="store_true",
                     help="key by (case, mode) only: OLD and NEW each hold one version")
    dif.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    dif.set_defaults(func=_guard(cmd_diff))

    jun = sub.add_parser(
        "junit-merge", formatter_class=fmt,
        help="merge the JUnit files of a matrix into one",
        description="Merge JUnit files; testcase names get their mode and version when they "
        "lack them (read from the summary.json beside each file or the testcase properties), "
        "so names stay unique across the matrix.",
        epilog=f"example:\n  {PROG} junit-merge -o junit-all.xml artifacts/*/junit.xml",
    )
    jun.add_argument("files", nargs="+", metavar="FILE")
    jun.add_argument("-o", "--output", metavar="OUT", required=True)
    jun.set_defaults(func=_guard(cmd_junit_merge))


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (tests, `python -m kubeovn_conformance.report`)."""
    parser = argparse.ArgumentParser(prog=PROG)
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
