"""The fuzz run as JUnit: one testcase per drawn scenario, seed and count as properties.

Written like pytest writes its own (`<properties>` inside each `<testcase>`, the form
report/junit.py reads and merges), rewritten after every scenario so Ctrl-C keeps it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubeovn_conformance.fuzz.engine import Outcome


def write_junit(path: Path, outcomes: Sequence[Outcome], props: Mapping[str, object]) -> None:
    """`props`: run-wide properties (seed, count, backend, mode, profile, version), put on
    the suite and on every testcase (CI tools show one or the other)."""
    suite = ET.Element("testsuite", {
        "name": "kubeovn-conformance-fuzz", "tests": str(len(outcomes)),
        "failures": str(sum(o.outcome == "fail" for o in outcomes)),
        "errors": str(sum(o.outcome == "infra-error" for o in outcomes)), "skipped": "0",
        "time": f"{sum(o.seconds for o in outcomes):.3f}"})
    _properties(suite, props)
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", {"classname": "fuzz",
                                                 "name": f"{props.get('mode', '')}-{o.case_id}",
                                                 "time": f"{o.seconds:.3f}"})
        _properties(case, {**props, "fuzz_scenario": o.index, "probes": o.probes,
                           "mismatches": o.mismatches,
                           **({"fuzz_file": str(o.path)} if o.path else {})})
        if o.outcome == "fail":
            ET.SubElement(case, "failure", {"message": o.message}).text = o.message
        elif o.outcome == "infra-error":
            ET.SubElement(case, "error", {"message": "infra-error (not a policy verdict)"}).text = o.message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".xml.tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)


def _properties(parent: ET.Element, props: Mapping[str, object]) -> None:
    element = ET.SubElement(parent, "properties")
    for name, value in props.items():
        if value not in (None, ""):
            ET.SubElement(element, "property", {"name": name, "value": str(value)})
