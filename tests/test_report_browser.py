"""The HTML report in a real browser (Debian's headless chromium): the grid renders, a cell
opens its truth tables, filters work, markup in names stays text, screenshots are written."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from test_report import NASTY, nasty_run  # sibling test module (tests/ is on sys.path)

from kubeovn_conformance.report import browser, html, main, matrix, synthetic
from kubeovn_conformance.report.known import load_known
from kubeovn_conformance.report.records import load_runs

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser.chromium() is None, reason="chromium not installed (/usr/bin/chromium)"),
]
NEW = Path(__file__).parent / "fixtures" / "runs" / "new"
KNOWN = Path(__file__).resolve().parent / "fixtures" / "known-issues.yaml"


def cell_hash(case: str, version: str, mode: str) -> str:
    return f"cell={quote(case, safe='')}&col={quote(f'{version}|{mode}', safe='')}"


def grid_attrs(dom: str) -> dict[str, str]:
    tag = re.search(r'<table id="grid"[^>]*>', dom)
    assert tag, "grid was not rendered"
    return dict(re.findall(r'(data-[\w-]+)="([^"]*)"', tag.group(0)))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    out.write_text(html.render(matrix.build(load_runs([NEW]), load_known(KNOWN))))
    return out


def test_grid_renders_with_counts(page: Path) -> None:
    dom = browser.dump_dom(page)
    assert '<body data-ready="1">' in dom
    attrs = grid_attrs(dom)
    assert attrs["data-count-pass"] == "29"
    assert attrs["data-count-fail"] == "1"
    assert attrs["data-count-known"] == "1"
    assert attrs["data-count-undefined"] == "4"
    assert attrs["data-count-infra-error"] == "1"
    assert attrs["data-count-fixed"] == "2"
    assert attrs["data-visible-cells"] == "36"
    assert len(re.findall(r'<td [^>]*class="cell s-fail', dom)) == 1
    assert len(re.findall(r"<tr data-row=", dom)) == 9
    assert 'id="details"></section>' in dom  # nothing opened yet


def test_hash_opens_details_with_truth_tables(page: Path) -> None:
    dom = browser.dump_dom(page, cell_hash("egress-default-deny", "v1.16.2", "overlay"))
    details = dom.split('<section id="details"', 1)[1]
    assert 'data-open="1"' in details.split(">", 1)[0]
    assert "egress-default-deny @ v1.16.2 overlay" in details
    assert details.count('<table class="tt" data-kind="expected">') == 2  # pod and service
    assert details.count('data-kind="diff"') == 2
    # The mismatching cell and its reason from the oracle.
    assert '<td class="m-X diff">X</td>' in details
    assert "expected deny, observed connected" in details
    assert "x/a is isolated for ingress; no rule admits y/c &lt;see policy&gt;" in details
    assert '<span data-stat="convergence">120 ms</span>' in details
    assert '<span data-stat="probes">4</span>' in details
    assert re.search(r'<td [^>]*class="cell s-fail selected"', dom)


def test_known_cell_links_its_issue(page: Path) -> None:
    dom = browser.dump_dom(page, cell_hash("egress-allow-target-port", "v1.13.1", "underlay"))
    details = dom.split('<section id="details"', 1)[1]
    assert 'href="https://github.com/kubeovn/kube-ovn/issues/5043"' in details
    assert 'data-state="known"' in details
    assert "Mismatches (1)" in details  # known is not hidden


def test_markup_in_names_stays_text(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text(html.render(matrix.build(load_runs([nasty_run(tmp_path)]), [])))
    dom = browser.dump_dom(out, cell_hash(NASTY, "v1.16.2", "overlay"))
    assert '<body data-ready="1">' in dom
    assert "<img" not in dom  # it would be an element if the name had been parsed as HTML
    assert "&lt;img src=x onerror=" in dom
    assert 'data-open="1"' in dom
    assert not re.search(r"href=\"?javascript:", dom)  # text, never a link


def test_screenshot_through_the_cli(tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    assert main(["report", str(NEW), "--known", str(KNOWN), "-o", str(tmp_path / "r.html"),
                 "--screenshot", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a blank page is a few kB; the grid with colours is far more


def test_infra_error_shows_the_probe_error(page: Path) -> None:
    dom = browser.dump_dom(page, cell_hash("ipblock-except-ingress", "v1.13.1", "underlay"))
    details = dom.split('<section id="details"', 1)[1]
    assert 'data-state="infra-error"' in details
    assert "Probe errors (1)" in details
    assert "exec into y/c failed: connection reset" in details
    assert '<td class="m-E diff">E</td>' in details


@pytest.mark.parametrize(
    ("fragment", "rows", "cells"),
    [
        ("mode=underlay", 9, 18),
        ("direction=egress", 4, 16),  # policy-update has "both": it counts as egress too
        ("protocol=UDP", 1, 4),
        ("mode=overlay&path=service", 9, 18),
        ("direction=none&mode=overlay", 1, 2),
    ],
)
def test_filters_from_the_hash(page: Path, fragment: str, rows: int, cells: int) -> None:
    dom = browser.dump_dom(page, fragment)
    visible_rows = re.findall(r'<tr data-row="\d+"(?! class="hidden")', dom)
    assert len(visible_rows) == rows
    assert grid_attrs(dom)["data-visible-cells"] == str(cells)


# --------------------------------------------------------------------------- a night's grid
RENDER_BUDGET_MS = 3_000  # issue 9: a night's grid renders in under 3 s


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, matrix.Matrix]:
    """A night's grid, 300 cases x 5 versions x 2 modes, with few records per case (the
    full-size records are `make bench`'s: they take a minute to write and read)."""
    root = tmp_path_factory.mktemp("night")
    synthetic.write_night(root / "runs", 300, mix=synthetic.LIGHT)
    m = matrix.build(load_runs([root / "runs"]), load_known(synthetic.write_known(root / "known.yaml")))
    page = root / "night.html"
    page.write_text(html.render(m))
    return page, m


def test_a_night_grid_renders_in_time(night: tuple[Path, matrix.Matrix]) -> None:
    page, m = night
    assert len(m.cells) == 3_000
    attrs = grid_attrs(browser.dump_dom(page, timeout=60))
    counts = m.counts()
    for state in matrix.STATES:
        assert attrs[f"data-count-{state}"] == str(counts[state]), state
    assert attrs["data-visible-cells"] == "3000"
    # From navigation start (reading and parsing the page included) to the grid built.
    assert int(attrs["data-ready-ms"]) < RENDER_BUDGET_MS


def test_a_night_cell_opens_its_tables_on_demand(night: tuple[Path, matrix.Matrix]) -> None:
    page, m = night
    cell = next(c for c in m.failing() if c.state == "fail")
    dom = browser.dump_dom(page, cell_hash(cell.case, *cell.column), timeout=60)
    details = dom.split('<section id="details"', 1)[1]
    opened = details.split(">", 1)[0]
    assert 'data-open="1"' in opened and re.search(r'data-open-ms="\d+"', opened)
    tables = cell.result.digest.tables
    assert details.count('data-kind="expected"') == len(tables) > 0
    assert all(f"Mismatches ({len(t.mismatches)})" in details for t in tables if t.mismatches)
    assert "expected deny, observed connected" in details
