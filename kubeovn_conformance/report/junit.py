"""JUnit: merge the files of a matrix into one, and the per-testcase properties the runner adds.

Properties from the runner
--------------------------
`junit_properties(record, run=None)` returns [(name, value), ...] for one testcase:
kube_ovn_version, mode, backend, profile, convergence_ms (and probes/mismatches when the
argument is a summary case entry), and where node placement is known (kind) the probe
cells per class, `cells_same_node` and `cells_cross_node`. From a pytest hook or fixture, add them with

    item.user_properties.extend(junit_properties(summary_case, run_meta))

pytest writes `user_properties` as <properties> inside the <testcase> for every junit
family. Avoid the `record_property` fixture: with junit_family=xunit2 it emits a
PytestWarning, which this project's `filterwarnings = error` turns into a failure.
`add_junit_properties(node, ...)` does exactly the `extend` above.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from junitparser import JUnitXml, JUnitXmlError, TestSuite

from kubeovn_conformance.report.records import SUMMARY, ReportError
from kubeovn_conformance.textfile import read_text

PROPERTY_KEYS = ("kube_ovn_version", "mode", "backend", "profile", "ovn_version")


def junit_properties(
    record: Mapping[str, Any], run: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """Testcase properties from a probe record, or a summary case entry plus its run's meta
    (run_id, backend, mode, kube_ovn_version, profile as in summary.json)."""
    merged = {**(run or {}), **record}
    props = [(k, str(merged[k])) for k in PROPERTY_KEYS if merged.get(k) not in (None, "")]
    for key in ("convergence_ms", "probes", "mismatches", "leaks", "cells_same_node", "cells_cross_node"):
        value = merged.get(key)
        if value is not None:
            props.append((key, f"{value:.1f}" if isinstance(value, float) else str(value)))
    return props


def add_junit_properties(node: Any, record: Mapping[str, Any], run: Mapping[str, Any] | None = None) -> None:
    """Append the properties to a pytest item (or anything with `user_properties`)."""
    node.user_properties.extend(junit_properties(record, run))


def _suites(path: Path) -> list[TestSuite]:
    try:
        xml = JUnitXml.fromfile(str(path))
    except (OSError, JUnitXmlError, SyntaxError) as exc:  # ParseError is a SyntaxError
        raise ReportError(f"{path}: not a readable JUnit file ({type(exc).__name__})") from None
    return [xml] if isinstance(xml, TestSuite) else list(xml)


def _file_context(path: Path) -> dict[str, str]:
    """Version and mode of a junit.xml written beside a run's summary.json, if any."""
    summary = path.parent / SUMMARY
    try:
        data = json.loads(read_text(summary))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(data[k]) for k in ("kube_ovn_version", "mode") if data.get(k)}


def _case_properties(case: Any) -> dict[str, str]:
    found = case._elem.find("properties")  # junitparser has no public accessor for testcase properties
    if found is None:
        return {}
    return {p.get("name"): p.get("value") for p in found.findall("property")}


def qualified_name(name: str, version: str | None, mode: str | None) -> str:
    """Name that says its mode and version: `underlay-egress-x[v1.16.2]` stays as it is."""
    if mode and not re.search(rf"(^|[^A-Za-z]){re.escape(mode)}([^A-Za-z]|$)", name):
        name = f"{mode}-{name}"
    if version and version not in name:
        name = f"{name}[{version}]"
    return name


def merge(paths: list[Path], out: Path) -> JUnitXml:
    merged = JUnitXml()
    seen: set[tuple[str, str]] = set()
    for path in map(Path, paths):
        context = _file_context(path)
        for suite in _suites(path):
            for case in suite:
                props = {**context, **_case_properties(case)}
                name = qualified_name(case.name or "", props.get("kube_ovn_version"), props.get("mode"))
                base, n = name, 1
                # Same case twice (e.g. two runs of one version and mode): keep both, visibly.
                while (case.classname or "", name) in seen:
                    n += 1
                    name = f"{base} ({path.parent.name or path.stem}{'' if n == 2 else f' {n}'})"
                seen.add((case.classname or "", name))
                case.name = name
            if context:
                label = f"{context.get('kube_ovn_version', '')} {context.get('mode', '')}"
                suite.name = f"{suite.name} {label.strip()}"
            suite.update_statistics()
            merged.add_testsuite(suite)
    merged.update_statistics()
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        merged.write(str(out), pretty=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot write: {exc.strerror}") from None
    return merged
