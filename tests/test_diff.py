"""The regression diff: lists and exit codes on fixture matrices with planted changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kubeovn_conformance.report import diff, main
from kubeovn_conformance.report.records import load_runs

RUNS = Path(__file__).parent / "fixtures" / "runs"
OLD, NEW = RUNS / "old", RUNS / "new"


def changes_by_kind(old: Path, new: Path, **kw: bool) -> dict[str, set[tuple[str, str, str]]]:
    out: dict[str, set[tuple[str, str, str]]] = {k: set() for k in diff.KINDS}
    for c in diff.compare(load_runs([old]), load_runs([new]), **kw):
        out[c.kind].add((c.case, c.mode, c.version))
    return out


def test_planted_regression_fix_appeared_vanished() -> None:
    got = changes_by_kind(OLD, NEW)
    assert got["regression"] == {("egress-default-deny", "overlay", "v1.16.2")}
    assert got["fix"] == {("ingress-named-port", "underlay", "v1.16.2")}
    assert got["appeared"] == {
        ("udp-allow", m, v) for m in ("overlay", "underlay") for v in ("v1.13.1", "v1.16.2")
    }
    assert got["vanished"] == {
        ("sctp-allow", m, v) for m in ("overlay", "underlay") for v in ("v1.13.1", "v1.16.2")
    }
    # pass -> infra-error is a change worth seeing, but not a regression of the product.
    assert got["changed"] == {("ipblock-except-ingress", "underlay", "v1.13.1")}


def test_reverse_direction_swaps_regression_and_fix() -> None:
    got = changes_by_kind(NEW, OLD)
    assert got["regression"] == {("ingress-named-port", "underlay", "v1.16.2")}
    assert got["fix"] == {("egress-default-deny", "overlay", "v1.16.2")}


def test_exit_status_1_on_regression(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(OLD), str(NEW)]) == 1
    out = capsys.readouterr().out
    assert "regression egress-default-deny: pass -> fail (1 mismatches)" in out
    assert "1 regression(s), 1 fix(es), 4 appeared, 4 vanished" in out


def test_exit_status_0_without_regression(capsys: pytest.CaptureFixture[str]) -> None:
    run = OLD / "nightly-2026-11-24-v1.13.1-overlay"
    assert main(["diff", str(run), str(run)]) == 0
    assert "no changes" in capsys.readouterr().out


def test_fix_only_exits_0() -> None:
    # Old v1.16.2 underlay had ingress-named-port failing; the new one fixed it.
    old = OLD / "nightly-2026-11-24-v1.16.2-underlay"
    new = NEW / "nightly-2026-11-25-v1.16.2-underlay"
    assert main(["diff", str(old), str(new / "results.jsonl")]) == 0


@pytest.mark.parametrize(
    "bad",
    ["missing-dir", "not-json"],
)
def test_exit_status_2_on_bad_input(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if bad == "missing-dir":
        target = tmp_path / "nope"
    else:
        target = tmp_path / "results.jsonl"
        target.write_text("{not json\n" + json.dumps({"x": 1}) + "\n")
    assert main(["diff", str(OLD), str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(target) in err


def test_across_versions_keys_by_case_and_mode(capsys: pytest.CaptureFixture[str]) -> None:
    old = OLD / "nightly-2026-11-24-v1.13.1-overlay"
    new = NEW / "nightly-2026-11-25-v1.16.2-overlay"
    # Without the flag nothing lines up: everything appears and vanishes, with a hint.
    assert main(["diff", str(old), str(new)]) == 0
    assert "--across-versions" in capsys.readouterr().out
    assert main(["diff", str(old), str(new), "--across-versions"]) == 1
    out = capsys.readouterr().out
    assert "v1.13.1 -> v1.16.2 overlay" in out
    assert "regression egress-default-deny" in out


def test_across_versions_refuses_a_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(OLD), str(NEW), "--across-versions"]) == 2
    assert "one version per side" in capsys.readouterr().err


def test_markdown_format_escapes_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old"
    shutil.copytree(OLD / "nightly-2026-11-24-v1.16.2-overlay", old)
    new = tmp_path / "new"
    shutil.copytree(NEW / "nightly-2026-11-25-v1.16.2-overlay", new)
    results = new / "results.jsonl"
    results.write_text(results.read_text().replace("udp-allow", "udp|<b>allow</b>"))
    summary = json.loads((new / "summary.json").read_text())
    summary["cases"]["udp|<b>allow</b>"] = summary["cases"].pop("udp-allow")
    (new / "summary.json").write_text(json.dumps(summary))
    assert main(["diff", str(old), str(new), "--format", "markdown"]) == 1
    out = capsys.readouterr().out
    assert "| **regression** | v1.16.2 | overlay | egress-default-deny | pass | fail |" in out
    assert r"udp\|&lt;b&gt;allow&lt;/b&gt;" in out
    assert "<b>" not in out
