"""Node placement where people read it: the pytest plugin's JUnit properties and failure text
(a kind run against FakeApiServer), the Markdown summary and the HTML report's tables."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from kubeovn_conformance import builders as b
from kubeovn_conformance.placement import CROSS, SAME
from kubeovn_conformance.pytest_plugin import Conformance
from kubeovn_conformance.report import browser, html, main, matrix
from kubeovn_conformance.report.junit import junit_properties
from kubeovn_conformance.report.records import load_runs
from kubeovn_conformance.runner import Case, Step
from tests.fake_apiserver import FakeApiServer, fake_node

RUNS = Path(__file__).parent / "fixtures" / "runs" / "new"
RUN = "nightly-2026-11-25-v1.16.2-overlay"
WORKLOAD = b.upstream_ground(namespaces=("x", "y"), pods=("a", "b"), ports=(8080,), protocols=("TCP",))


def fake_config(tmp_path: Path, kubeconfig: Path) -> SimpleNamespace:
    options = {"--backend": "kind", "--mode": "overlay", "--kube-ovn-version": "v1.16.2",
               "--kubeconfig": str(kubeconfig), "--probe-timeout": 0.3, "--deadline": 1.0,
               "--run-id": "placement", "--reports-dir": str(tmp_path / "reports"),
               "--lab-profile": None, "--vlan-id": 100, "--pack": 1,
               "--lab-ovn": "25.03", "--case-file": None}
    return SimpleNamespace(getoption=options.__getitem__)


def test_plugin_adds_counts_per_class_and_marks_cross_node_cells(tmp_path: Path) -> None:
    with FakeApiServer(nodes=[fake_node("n1"), fake_node("n2")]) as api:
        conformance = Conformance(fake_config(tmp_path, api.kubeconfig(tmp_path / "kc")))
        try:
            item = SimpleNamespace(user_properties=[])
            conformance.check(Case("open", "none", WORKLOAD, (Step("initial", lambda w: w),)), item)
            props = dict(item.user_properties)
            # 4 pods, 12 pod-path cells: each destination has one same-node client of three.
            assert (props["cells_same_node"], props["cells_cross_node"]) == ("4", "8")
            # The fake enforces nothing, so a deny-all case fails: the text shows placement.
            deny = Case("deny", "ingress", WORKLOAD,
                        (Step("deny", lambda w: w.with_policies([b.deny_all("x")])),))
            item = SimpleNamespace(user_properties=[])
            with pytest.raises(pytest.fail.Exception) as failed:
                conformance.check(deny, item)
            assert ("cells_cross_node", "8") in item.user_properties
        finally:
            conformance.close()
    text = str(failed.value)
    assert "placement: 4 same-node, 8 cross-node cells" in text
    table = text.split("node placement (s = same node, c = cross node, - = not known):", 1)[1]
    rows = [line.split() for line in table.strip().splitlines()[1:5]]
    assert sorted(m for r in rows for m in r[1:]) == ["c"] * 8 + ["s"] * 4


def test_junit_properties_carry_the_counts() -> None:
    props = dict(junit_properties({"probes": 3, "cells_same_node": 1, "cells_cross_node": 2}))
    assert props["cells_same_node"] == "1" and props["cells_cross_node"] == "2"
    assert "cells_same_node" not in dict(junit_properties({"probes": 3}))  # the lab: unknown


def placed_run(tmp_path: Path) -> Path:
    """A fixture run whose records say where each cell ran (as a kind run's do)."""
    run = shutil.copytree(RUNS / RUN, tmp_path / RUN)
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for r in recs:
        if r["path"] == "pod":
            r["placement"] = SAME if r["client"].split("/")[0] == r["target"].split("/")[0] else CROSS
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run


def test_markdown_counts_per_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = placed_run(tmp_path)
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    same = sum(r.get("placement") == SAME for r in recs)
    cross = sum(r.get("placement") == CROSS for r in recs)
    assert same and cross
    assert main(["report", str(run), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert f"; {same} same-node, {cross} cross-node cells" in out.split("## Grid")[0]
    failing = out.split("## Failing cases", 1)[1]
    assert "placement: " in failing and "node placement (s = same node" in failing
    # Without placement (the lab, older runs) nothing is said about it.
    assert main(["report", str(RUNS / RUN), "--format", "markdown"]) == 0
    assert "same-node" not in capsys.readouterr().out


def test_html_tables_mark_cross_node_cells(tmp_path: Path) -> None:
    m = matrix.build(load_runs([placed_run(tmp_path)]), [])
    data = html.payload(m)
    cells = {c["case"]: c for c in data["cells"]}
    cell = cells["egress-default-deny"]
    assert cell["placement"] and set(cell["placement"]) == {SAME, CROSS}
    tables = html.cell_tables(data, cell)  # the page keeps them pooled, parsed when opened
    pod = next(t for t in tables if t["path"] == "pod")
    service = next(t for t in tables if t["path"] == "service")
    marks = {m for row in pod["placement"] for m in row}
    assert {"s", "c"} <= marks
    assert {m for row in service["placement"] for m in row} <= {"-", " "}  # not known there
    page = html.render(m)
    assert "x-node" in page and "cross-node" in page  # the script marks them, the CSS draws it


@pytest.mark.browser
@pytest.mark.skipif(browser.chromium() is None, reason="chromium not installed (/usr/bin/chromium)")
def test_browser_frames_cross_node_cells_and_shows_counts(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text(html.render(matrix.build(load_runs([placed_run(tmp_path)]), [])))
    dom = browser.dump_dom(out, "cell=egress-default-deny&col=" + quote("v1.16.2|overlay", safe=""))
    details = dom.split('<section id="details"', 1)[1]
    assert re.search(r'<td class="m-\w+ x-node" title="[^"]+: cross-node" '
                     r'data-placement="cross-node"', details)
    assert 'data-placement="same-node"' in details
    assert re.search(r'<span data-stat="placement">\d+ same-node, \d+ cross-node cells', details)
