"""Loading runs (interrupted ones too), the Markdown summary, the HTML page without a browser."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from kubeovn_conformance.report import html, main, matrix
from kubeovn_conformance.report.records import ReportError, load_run, load_runs

RUNS = Path(__file__).parent / "fixtures" / "runs"
NEW = RUNS / "new"
KNOWN = Path(__file__).resolve().parent / "fixtures" / "known-issues.yaml"
RUN = "nightly-2026-11-25-v1.16.2-overlay"
NASTY = '<img src=x onerror="alert(1)">|`*_[x](javascript:alert(2))</script>&gt;x'


def test_static_fixtures_match_their_generator(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_fixtures", RUNS / "make_fixtures.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for side in ("old", "new"):
        mod.write_matrix(tmp_path / side, side)
        cmp = filecmp.dircmp(tmp_path / side, RUNS / side)
        assert not cmp.left_only and not cmp.right_only
        for sub in cmp.common_dirs:
            _, mismatch, errors = filecmp.cmpfiles(
                tmp_path / side / sub, RUNS / side / sub,
                ["results.jsonl", "summary.json", "junit.xml"], shallow=False,
            )
            assert not mismatch and not errors, f"regenerate fixtures: {sub} {mismatch}"


def test_truncated_last_line_is_tolerated(tmp_path: Path) -> None:
    run = shutil.copytree(NEW / RUN, tmp_path / RUN)
    results = run / "results.jsonl"
    whole = results.read_text().splitlines(keepends=True)
    results.write_text("".join(whole) + whole[-1][: len(whole[-1]) // 2])
    loaded = load_run(run)
    assert loaded.truncated
    assert sum(len(c.records) for c in loaded.cases.values()) == len(whole)


def test_broken_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    run = shutil.copytree(NEW / RUN, tmp_path / RUN)
    results = run / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:3]) + "{oops\n" + "".join(lines[3:]))
    with pytest.raises(ReportError, match=r"results.jsonl:4: not a JSON object"):
        load_run(run)


def test_interrupted_run_without_summary_derives_outcomes(tmp_path: Path) -> None:
    run = shutil.copytree(NEW / RUN, tmp_path / RUN)
    (run / "summary.json").unlink()
    results = run / "results.jsonl"
    results.write_text(results.read_text() + '{"case": "cut')
    loaded = load_run(run)
    assert loaded.version == "v1.16.2" and loaded.mode == "overlay"
    assert loaded.cases["egress-default-deny"].outcome == "fail"
    assert loaded.cases["egress-default-deny"].mismatches == 1
    assert loaded.cases["hairpin-service"].outcome == "undefined"
    assert loaded.cases["ingress-allow-target-port"].outcome == "pass"
    assert "sctp-allow" not in loaded.cases  # never measured, nothing to say


def test_interrupted_run_uses_case_lines(tmp_path: Path) -> None:
    run = shutil.copytree(NEW / RUN, tmp_path / RUN)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()
    (run / "cases.jsonl").write_text(
        json.dumps({"case": "sctp-allow", "outcome": "skipped", "skip_reason": "no sctp"}) + "\n"
    )
    loaded = load_run(run)
    assert loaded.cases["sctp-allow"].outcome == "skipped"
    # The measured cases come from the probe records, the skipped one from its case line.
    assert len(loaded.cases) == len(summary["cases"]) + 1


def test_not_a_run_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a run nor a directory of runs" in err


def test_markdown_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(NEW), "--format", "markdown", "--known", str(KNOWN)]) == 0
    out = capsys.readouterr().out
    assert "| case | v1.13.1 overlay | v1.13.1 underlay | v1.16.2 overlay | v1.16.2 underlay |" in out
    assert "| egress-default-deny | ok | ok fixed? | FAIL | ok |" in out
    assert "| egress-allow-target-port | ok | known | ok | ok |" in out
    assert "| hairpin-service | undef | undef | undef | undef |" in out
    assert "| ipblock-except-ingress | ok | INFRA | ok | ok |" in out
    assert "29 ok, 1 FAIL, 1 known, 4 undef, 1 INFRA, 0 skip, 2 fixed?" in out
    failing = out.split("## Failing cases", 1)[1]
    assert "### egress-default-deny: v1.16.2 overlay, fail" in failing
    assert "### egress-allow-target-port: v1.13.1 underlay, known" in failing
    assert "issues/5043" in failing
    assert "y/c -&gt; x/svc/svc-a via service 80/TCP -&gt; 8000: expected deny, observed connected" in failing
    # No emoji anywhere: job summaries are read in terminals too.
    assert all(ord(ch) < 0x2000 for ch in out)


def test_markdown_escapes_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = nasty_run(tmp_path)
    assert main(["report", str(run), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    # Truth tables sit in fenced code blocks, where text is literal; outside them nothing
    # may be markup.
    fences = re.findall(r"^(`{3,})text\n.*?^\1$", out, flags=re.M | re.S)
    assert fences, "the failing case's tables are missing"
    prose = re.sub(r"^(`{3,})text\n.*?^\1$", "", out, flags=re.M | re.S)
    assert "<img" not in prose
    assert "</script>" not in prose
    assert not re.search(r"(?<!\\)`", prose)  # every backtick escaped
    assert r"&lt;img src=x" in prose
    assert "&amp;gt;x" in prose  # an entity in a name is shown, not decoded
    assert r"\|\`\*\_\[x\]" in out


def nasty_run(tmp_path: Path) -> Path:
    """A run whose case name, client and reason carry markup."""
    run = shutil.copytree(NEW / RUN, tmp_path / RUN)
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for r in recs:
        if r["case"] == "egress-default-deny":
            r["case"], r["reason"] = NASTY, NASTY
            r["client"] = r["client"] + NASTY
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    summary = json.loads((run / "summary.json").read_text())
    summary["cases"][NASTY] = summary["cases"].pop("egress-default-deny")
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    page = html.render(matrix.build(load_runs([nasty_run(tmp_path)]), []), title="<t>&")
    assert "<title>&lt;t&gt;&amp;</title>" in page
    # Nothing is fetched from anywhere: no external URL in src/href, and a CSP that forbids it.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "default-src 'none'" in page
    # The data block cannot be closed early by a name.
    data = page.split('<script id="report-data" type="application/json">', 1)[1].split("</script>")[0]
    assert "<" not in data and ">" not in data
    assert any(c["case"] == NASTY for c in json.loads(data)["cells"])
    assert page.count("<script") == 2  # the data and the code, nothing injected


def test_html_output_file(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.html"
    assert main(["report", str(NEW), "-o", str(out), "--known", str(KNOWN)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'id="grid"' in text


def test_tables_per_step_path_port_protocol() -> None:
    run = load_run(NEW / RUN)
    tables = matrix.tables(run.cases["policy-update"].records)
    assert [(t["step"], t["path"]) for t in tables] == [
        ("initial", "pod"), ("initial", "service"), ("update-1", "pod"), ("update-1", "service"),
    ]
    bad = matrix.tables(run.cases["egress-default-deny"].records)
    service = next(t for t in bad if t["path"] == "service")
    assert service["rows"] == ["x/b", "y/c"] and service["cols"] == ["x/svc/svc-a"]
    assert service["expected"] == [["."], ["X"]]
    assert service["observed"] == [["."], ["."]]
    assert service["diff"] == [["."], ["X"]]
    assert [m["client"] for m in service["mismatches"]] == ["y/c"]
    assert service["mismatches"][0]["reason"].startswith("x/a is isolated")


@pytest.mark.parametrize(
    ("outcomes", "case_outcome"),
    [
        (["pass", "fail", "infra-error"], "fail"),  # as the runner decides it
        (["pass", "infra-error"], "infra-error"),
        (["undefined", "undefined"], "undefined"),
        (["undefined", "pass"], "pass"),
    ],
)
def test_derived_case_outcome(outcomes: list[str], case_outcome: str) -> None:
    from kubeovn_conformance.report.records import derive_outcome

    assert derive_outcome([{"outcome": o} for o in outcomes]) == case_outcome


def test_later_run_of_a_column_wins_and_says_so(tmp_path: Path) -> None:
    again = shutil.copytree(NEW / RUN, tmp_path / "rerun")
    summary = json.loads((again / "summary.json").read_text())
    summary["run_id"] = "rerun"
    summary["cases"]["egress-default-deny"]["outcome"] = "pass"
    (again / "summary.json").write_text(json.dumps(summary))
    m = matrix.build(load_runs([NEW, again]), [])
    assert m.cells[("egress-default-deny", ("v1.16.2", "overlay"))].run.run_id == "rerun"
    assert m.superseded == {RUN: "rerun"}
    assert len(m.runs) == 4


def test_timing_line() -> None:
    line = matrix.run_stats(load_run(NEW / RUN))
    # 9 cases: 8 with 4 probes, policy-update with 8; 2 s each.
    assert line == "40 probes, 2.2 probes/s over 18.0 s of cases, convergence median 120 ms, max 120 ms"


def test_screenshot_of_unknown_case_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Decided before any browser starts, so this needs no chromium.
    args = ["report", str(NEW), "-o", str(tmp_path / "r.html"),
            "--screenshot", str(tmp_path / "r.png"), "--screenshot-cell", "no-such-case"]
    assert main(args) == 2
    assert "no case 'no-such-case'" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()


def test_leaks_reach_the_markdown_and_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A transient leak (a stable cell that flipped while a step was applied) is shown with
    its count and span in the Markdown summary and in the HTML page's data."""
    from kubeovn_conformance.results import RunInfo

    run = RunInfo("r-leak", "lab", "overlay", "lab:v1.16.2", "v1.16.2", tmp_path / "r-leak")
    run.prepare()
    rec = {"case": "c", "step": "update", "client": "y/a", "target": "x/a", "path": "pod",
           "port": 80, "target_port": 80, "protocol": "TCP", "verdict": "deny",
           "expected_observed": "timeout", "observed": "timeout", "outcome": "fail",
           "reason": "r", "attempts": 3, "elapsed_ms": 1.0,
           "leaks": 2, "held_leaks": 1, "leak_span_ms": 312.0}
    run.probe_records([rec])
    run.case_record("c", direction="ingress", outcome="fail", probes=1, mismatches=1,
                    convergence_ms=900.0, leaks=2, duration_s=1.0, skip_reason=None)
    run.write_summary()
    assert main(["report", str(tmp_path), "--format", "markdown"]) == 0
    assert "2 leaking samples within 312 ms of applying a step" in capsys.readouterr().out
    page = tmp_path / "r.html"
    assert main(["report", str(tmp_path), "-o", str(page)]) == 0
    assert '"leaks": 2' in page.read_text() or '"leaks":2' in page.read_text()
