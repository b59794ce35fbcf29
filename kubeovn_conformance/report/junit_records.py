"""JUnit for a run that ended before pytest could write it, from the records it left.

pytest writes junit.xml when the session ends (also on Ctrl-C, and on SIGTERM once the plugin
turns it into Ctrl-C). A run killed outright (SIGKILL after a grace period, a dead runner)
leaves only the lines the runner appended as it went: cases.jsonl (one line per finished
case) and results.jsonl (one line per probe). `derive` writes junit.xml from them: every
recorded case with its outcome, every case with probe records but no case line as an error
("cut off while it ran"), and, when the run is known to be cut off (`cut-off.txt` in the run
directory, written by the nightly's pytest budget or its staging step), one error testcase
`run-cut-off` saying so, also added to a junit.xml that pytest did write. Cases that never
started are not known to the records and are not listed. Known issues are not applied here
(pytest applies them): a known failure reads as a failure.

    python -m kubeovn_conformance.report.junit_records RUN_DIR
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from kubeovn_conformance.clusters.nightly import CUT_OFF
from kubeovn_conformance.report.junit import junit_properties
from kubeovn_conformance.report.records import CASES, RESULTS, SUMMARY, ReportError
from kubeovn_conformance.results import read_jsonl

JUNIT = "junit.xml"
CUT_OFF_CASE = "run-cut-off"
META = ("run_id", "backend", "mode", "kube_ovn_version", "profile", "ovn_version")


def cut_off_reason(run_dir: Path) -> str | None:
    path = Path(run_dir) / CUT_OFF
    if not path.is_file():
        return None
    return path.read_text(errors="replace").strip() or "cut off"


def _meta(run_dir: Path, results: list[dict[str, Any]], cases: list[dict[str, Any]]) -> dict[str, Any]:
    for source in (results[:1], cases[:1]):
        if source:
            return {k: source[0][k] for k in META if source[0].get(k) not in (None, "")}
    return {}


def _testcase(suite: ET.Element, name: str, props: list[tuple[str, str]], seconds: float = 0.0) -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname="records", name=name, time=f"{seconds:.3f}")
    if props:
        holder = ET.SubElement(case, "properties")
        for key, value in props:
            ET.SubElement(holder, "property", name=key, value=value)
    return case


def _case_name(case: str, meta: dict[str, Any]) -> str:
    """The id pytest gives a kind case (`test_case[<mode>-<case>-<version>]`), so a derived
    file merges beside the others."""
    version = meta.get("kube_ovn_version")
    suffix = f"-{version}" if version and meta.get("backend") != "lab" else ""
    return f"test_case[{meta.get('mode', 'overlay')}-{case}{suffix}]"


def _cut_off_case(suite: ET.Element, reason: str, recorded: int, meta: dict[str, Any]) -> None:
    case = _testcase(suite, CUT_OFF_CASE, junit_properties({}, meta))
    ET.SubElement(case, "error", message=f"run cut off: {reason}", type="cut-off").text = (
        f"The run ended before it finished ({reason}). {recorded} cases were recorded before; "
        "cases that had not started are not listed.")


def _read(run_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, int], dict[str, Any]]:
    """The last line per recorded case, probe records per case, and the run's metadata."""
    case_lines = read_jsonl(run_dir / CASES)
    results = read_jsonl(run_dir / RESULTS)
    last: dict[str, dict[str, Any]] = {}
    for line in case_lines:  # a retry's line supersedes the first error, as in summary.json
        if isinstance(line, dict) and "case" in line:
            last[str(line["case"])] = line
    probed: dict[str, int] = {}
    for r in results:
        if isinstance(r, dict) and r.get("case") is not None:
            probed[str(r["case"])] = probed.get(str(r["case"]), 0) + 1
    return last, probed, _meta(run_dir, results, case_lines)


def _add_recorded(suite: ET.Element, last: dict[str, dict[str, Any]], probed: dict[str, int],
                  meta: dict[str, Any], present: frozenset[str] | set[str] = frozenset()) -> int:
    """A testcase per recorded case (its outcome) and per case with probes but no result (cut
    off while it ran), except those named in `present`. Returns how many it added."""
    added = 0
    for case_id, line in last.items():
        name = _case_name(case_id, meta)
        if name in present:
            continue
        props = junit_properties({k: v for k, v in line.items() if k in ("probes", "mismatches", "leaks",
                                                                       "convergence_ms")}, meta)
        tc = _testcase(suite, name, props, float(line.get("duration_s") or 0.0))
        added += 1
        outcome = line.get("outcome")
        if outcome == "fail":
            ET.SubElement(tc, "failure", message=f"mismatch: {line.get('mismatches', '?')} cells",
                          type="mismatch")
        elif outcome == "infra-error":
            ET.SubElement(tc, "error", message=f"infra-error (not a policy verdict): {line.get('error', '')}",
                          type="infra-error")
        elif outcome == "skipped":
            ET.SubElement(tc, "skipped", message=str(line.get("skip_reason") or "skipped"))
    for case_id, n in probed.items():
        name = _case_name(case_id, meta)
        if case_id in last or name in present:
            continue
        tc = _testcase(suite, name, junit_properties({"probes": n}, meta))
        added += 1
        ET.SubElement(tc, "error", message="cut off while it ran", type="cut-off").text = (
            f"{n} probe records were written before the run ended; the case has no result.")
    return added


def derive(run_dir: Path, out: Path | None = None) -> Path:
    """junit.xml for `run_dir` from its records; ReportError when it has none."""
    run_dir = Path(run_dir)
    if not (run_dir / CASES).is_file() and not (run_dir / RESULTS).is_file():
        raise ReportError(f"{run_dir}: no {CASES} or {RESULTS} to derive JUnit from")
    last, probed, meta = _read(run_dir)
    reason = cut_off_reason(run_dir)
    if reason is None and not (run_dir / SUMMARY).is_file():
        reason = "no summary.json: the run was killed before pytest finished"
    suite = ET.Element("testsuite", name="kubeovn-conformance (from records)")
    _add_recorded(suite, last, probed, meta)
    if reason is not None:
        _cut_off_case(suite, reason, len(last), meta)
    _count(suite)
    root = ET.Element("testsuites")
    root.append(suite)
    return _write(root, out or run_dir / JUNIT)


def complete(run_dir: Path) -> int:
    """After an interrupted session: add to the junit.xml pytest wrote the recorded cases it
    does not list (a case whose record was written as the signal came, before pytest reported
    it; with xdist, a case whose report never reached the main process). Returns how many."""
    run_dir = Path(run_dir)
    junit = run_dir / JUNIT
    try:
        tree = ET.parse(junit)
    except (OSError, ET.ParseError):
        raise ReportError(f"{junit}: not a readable JUnit file") from None
    root = tree.getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        suite = ET.SubElement(root, "testsuite", name="kubeovn-conformance")
    present = {str(tc.get("name")) for tc in root.iter("testcase")}
    last, probed, meta = _read(run_dir)
    added = _add_recorded(suite, last, probed, meta, present)
    if added:
        _count(suite)
        _write(root, junit)
    return added


def mark_cut_off(junit: Path, reason: str, recorded: int, meta: dict[str, Any]) -> bool:
    """Add the `run-cut-off` error to a junit.xml pytest wrote; False if it has one already."""
    try:
        tree = ET.parse(junit)
    except (OSError, ET.ParseError):
        raise ReportError(f"{junit}: not a readable JUnit file") from None
    root = tree.getroot()
    if any(tc.get("name") == CUT_OFF_CASE for tc in root.iter("testcase")):
        return False
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        suite = ET.SubElement(root, "testsuite", name="kubeovn-conformance")
    _cut_off_case(suite, reason, recorded, meta)
    _count(suite)
    _write(root, junit)
    return True


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for kind, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attr, str(sum(1 for c in cases if c.find(kind) is not None)))


def _write(root: ET.Element, out: Path) -> Path:
    ET.indent(root)
    try:
        ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    except OSError as e:
        raise ReportError(f"{out}: cannot write: {e.strerror}") from None
    return out


def ensure(run_dir: Path) -> str:
    """What staging needs: a junit.xml in `run_dir` (derived when pytest wrote none), marked
    when the run was cut off. Returns what it did, one line."""
    run_dir = Path(run_dir)
    junit = run_dir / JUNIT
    if not junit.is_file():
        derive(run_dir)
        if cut_off_reason(run_dir) is None:  # what check-nightly reads
            (run_dir / CUT_OFF).write_text("no junit.xml: pytest was killed before it finished\n")
        return f"{junit}: derived from the records (pytest wrote none)"
    reason = cut_off_reason(run_dir)
    if reason is None:
        return f"{junit}: written by pytest"
    cases = read_jsonl(run_dir / CASES)
    meta = _meta(run_dir, read_jsonl(run_dir / RESULTS), cases)
    marked = mark_cut_off(junit, reason, len({c.get("case") for c in cases}), meta)
    return f"{junit}: written by pytest" + ("; marked cut off" if marked else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kubeovn_conformance.report.junit_records",
                                 description="junit.xml for a run directory that has records but "
                                             "no JUnit (a run killed before pytest finished)")
    ap.add_argument("run_dir", type=Path)
    args = ap.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"junit_records: {args.run_dir}: not a directory", file=sys.stderr)
        return 2
    try:
        print(ensure(args.run_dir))
    except ReportError as e:
        print(f"junit_records: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
