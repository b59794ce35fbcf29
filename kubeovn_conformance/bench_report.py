"""`make bench` (reports): `report` over a synthetic night, against the budgets of issue 9.

A night is 5 versions x 2 modes x 300 cases with about 500 probe records per case
(report/synthetic.py, about 1.6 million records, 950 MB of results). Measured, each command in
a process of its own: wall time and peak RSS of `report` (HTML, then Markdown), the page's
size, the time headless chromium takes to build the grid (the page's own `data-ready-ms`:
navigation start to grid) and to open a failing cell, and `report` on half the night (time
per record: linear means the same). Budgets: peak RSS under 1 GiB, page under 15 MB, grid
under 3 s. `--baseline REF` measures another commit's report on the same night in the same
run (`git archive REF`), e.g. the commit before streaming. No root, no lab.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kubeovn_conformance.report import browser, synthetic

ROOT = Path(__file__).resolve().parent.parent
BUDGET = {"peak_rss_mb": 1024, "page_mb": 15, "render_ms": 3000}


def _timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Wall and CPU seconds and peak RSS (MB) of one command, in a process of its own."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()  # small: one line on error
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_report: {' '.join(cmd[:4])} ...: exit status {proc.returncode}: "
                         f"{err.decode(errors='replace').strip().splitlines()[-1:]}")
    return {"seconds": round(seconds, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def _report_cmd(night: Path, out: Path, known: Path, fmt: str) -> list[str]:
    return [sys.executable, "-m", "kubeovn_conformance.report", "report", str(night),
            "-o", str(out), "--known", str(known), "--format", fmt]


def _records(night: Path) -> int:
    total = 0
    for results in night.glob("*/results.jsonl"):
        with results.open("rb") as f:
            total += sum(1 for _ in f)
    return total


def _render(page: Path, fragment: str = "") -> dict[str, Any]:
    """Median of three: the grid's data-ready-ms, the details' data-open-ms, chromium's wall."""
    ready, opened, wall = [], [], []
    for _ in range(3):
        start = time.monotonic()
        dom = browser.dump_dom(page, fragment, timeout=120)
        wall.append(time.monotonic() - start)
        grid = re.search(r'<table id="grid"[^>]*>', dom)
        m = re.search(r'data-ready-ms="(\d+)"', grid.group(0)) if grid else None
        if m:
            ready.append(int(m.group(1)))
        m = re.search(r'<section id="details"[^>]*data-open-ms="(\d+)"', dom)
        if m:
            opened.append(int(m.group(1)))
    return {"ready_ms": statistics.median(ready) if ready else None,  # None: an older page
            "open_ms": statistics.median(opened) if opened else None,
            "chromium_wall_s": round(statistics.median(wall), 2)}


def _timing_added(page: Path) -> Path:
    """A copy of an older page (before data-ready-ms) with the same timing line added where
    its script finishes building the grid, so that both pages are timed alike."""
    text = page.read_text(encoding="utf-8")
    done = 'document.body.setAttribute("data-ready", "1");'
    timer = ('document.getElementById("grid").setAttribute("data-ready-ms", '
             'String(Math.round(performance.now())));')
    timed = page.with_name(f"{page.stem}-timed.html")
    timed.write_text(text.replace(done, timer + done, 1), encoding="utf-8")
    return timed


def _first_failure(night: Path) -> str:
    """The page fragment that opens the night's first failing cell."""
    for run_dir in sorted(p for p in night.iterdir() if p.is_dir()):
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        for name, case in sorted(summary["cases"].items()):
            if case["outcome"] == "fail":
                col = f"{summary['kube_ovn_version']}|{summary['mode']}"
                return f"cell={quote(name, safe='')}&col={quote(col, safe='')}"
    return ""


def _baseline_source(ref: str, into: Path) -> Path:
    """kubeovn_conformance as of `ref`, unpacked from `git archive` (nothing checked out)."""
    tar = into / "baseline.tar"
    done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(tar), ref,
                           "kubeovn_conformance"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_report: git archive {ref}: {done.stderr.strip()}")
    src = into / "baseline"
    with tarfile.open(tar) as t:
        t.extractall(src, filter="data")
    return src


def measure(night: Path, known: Path, work: Path, src: Path | None = None) -> dict[str, Any]:
    """`report` (HTML and Markdown) on `night` with this checkout, or with the code in `src`."""
    env = dict(os.environ, PYTHONPATH=str(src)) if src else None
    cwd = src if src else None  # the baseline's package must win over the installed one
    tag = "baseline" if src else "current"
    page, md = work / f"{tag}.html", work / f"{tag}.md"
    html_run = _timed(_report_cmd(night, page, known, "html"), env, cwd)
    md_run = _timed(_report_cmd(night, md, known, "markdown"), env, cwd)
    return {"html": html_run, "markdown": md_run, "page_mb": round(page.stat().st_size / 1e6, 2),
            "markdown_kb": round(md.stat().st_size / 1024, 1), "page": str(page)}


def run(cases: int, out_dir: Path, baseline: str | None, keep: Path | None) -> dict[str, Any]:
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="kubeovn-bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        night, half = work / "night", work / "half-night"
        known = synthetic.write_known(work / "known-issues.yaml")
        start = time.monotonic()
        if not night.is_dir():
            synthetic.write_night(night, cases)
        if not half.is_dir():
            synthetic.write_night(half, cases // 2)
        results: dict[str, Any] = {
            "night": {"cases_per_column": cases, "columns": len(synthetic.VERSIONS) * len(synthetic.MODES),
                      "records": _records(night), "results_mb": round(
                          sum(f.stat().st_size for f in night.glob("*/results.jsonl")) / 1e6, 1),
                      "written_s": round(time.monotonic() - start, 1)},
            "budget": BUDGET,
        }
        current = measure(night, known, work)
        fragment = _first_failure(night)
        current["render"] = _render(Path(current["page"]))
        current["render_cell"] = _render(Path(current["page"]), fragment)
        halved = _timed(_report_cmd(half, work / "half.html", known, "html"))
        # CPU time: on a shared machine, wall time says more about the neighbours.
        per = current["html"]["cpu_s"] / results["night"]["records"] * 1e6
        per_half = halved["cpu_s"] / _records(half) * 1e6
        current["linearity"] = {"us_per_record": round(per, 2), "us_per_record_half": round(per_half, 2)}
        results["current"] = current
        if baseline:
            src = _baseline_source(baseline, work)
            base = measure(night, known, work, src)
            base["render"] = _render(Path(base["page"]))
            if base["render"]["ready_ms"] is None:
                timed = _render(_timing_added(Path(base["page"])))
                base["render"]["ready_ms_timing_added"] = timed["ready_ms"]
            results["baseline"] = {"ref": baseline, **base}
        results["within_budget"] = (current["html"]["peak_rss_mb"] <= BUDGET["peak_rss_mb"]
                                    and current["page_mb"] <= BUDGET["page_mb"]
                                    and (current["render"]["ready_ms"] or 0) <= BUDGET["render_ms"])
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-report-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=1))
    results["path"] = str(path)
    return results


def table(r: dict[str, Any]) -> str:
    n = r["night"]
    rows = [("night", f"{n['columns']} columns x {n['cases_per_column']} cases",
             f"{n['records']:,} records, {n['results_mb']} MB of results.jsonl")]
    for key in ("baseline", "current"):
        if key not in r:
            continue
        c = r[key]
        name = f"baseline {c['ref']}" if key == "baseline" else "this checkout"
        ready = c["render"]["ready_ms"] or c["render"].get("ready_ms_timing_added")
        rows += [
            (f"report HTML ({name})", "wall (CPU), peak RSS",
             f"{c['html']['seconds']} s ({c['html']['cpu_s']} s), {c['html']['peak_rss_mb']:,.0f} MB"),
            (f"page ({name})", "size, grid in chromium",
             f"{c['page_mb']} MB, " + (f"{ready:.0f} ms" if ready is not None else "n/a")
             + f" (chromium --dump-dom {c['render']['chromium_wall_s']} s)"),
            (f"report Markdown ({name})", "wall, peak RSS, size",
             f"{c['markdown']['seconds']} s, {c['markdown']['peak_rss_mb']:,.0f} MB, {c['markdown_kb']} kB"),
        ]
    c = r["current"]
    rows.append(("open a failing cell", "details built in", f"{c['render_cell']['open_ms']} ms"))
    rows.append(("linear in records", "CPU us per record: night, half night",
                 f"{c['linearity']['us_per_record']}, {c['linearity']['us_per_record_half']}"))
    b = r["budget"]
    rows.append(("budget", f"RSS < {b['peak_rss_mb']} MB, page < {b['page_mb']} MB, "
                 f"grid < {b['render_ms']} ms", "met" if r["within_budget"] else "EXCEEDED"))
    w0, w1 = max(len(a) for a, _, _ in rows), max(len(b) for _, b, _ in rows)
    return "\n".join([f"{'measure'.ljust(w0)}  {'on'.ljust(w1)}  result"]
                     + [f"{a.ljust(w0)}  {b.ljust(w1)}  {c}" for a, b, c in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kubeovn_conformance.bench_report",
                                 description="time, memory and page size of `report` on a synthetic night")
    ap.add_argument("--cases", type=int, default=300, help="cases per version and mode (300)")
    ap.add_argument("--baseline", metavar="REF", help="also measure this commit's report on the same night")
    ap.add_argument("--keep", metavar="DIR", type=Path,
                    help="write the nights and pages here and keep them (reused when present)")
    ap.add_argument("--out", default="reports", help="directory for the JSON (default reports)")
    args = ap.parse_args(argv)
    if args.cases < 8:
        ap.error("--cases must be at least 8")
    if browser.chromium() is None:
        print("bench_report: chromium not found: the page's render time needs it", file=sys.stderr)
        return 2
    r = run(args.cases, Path(args.out), args.baseline, args.keep)
    print(table(r))
    print(f"\nwritten to {r['path']}")
    return 0 if r["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
