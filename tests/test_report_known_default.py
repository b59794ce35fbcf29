"""`kubeovn-conformance report` without --known judges cells by the known issues pytest applied
(the package's clusters/known-issues.yaml), not as if there were none; --no-known shows raw."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeovn_conformance import pytest_plugin, report
from kubeovn_conformance.report import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NEW = FIXTURES / "runs" / "new"
KNOWN = FIXTURES / "known-issues.yaml"
ROW = "| egress-allow-target-port | ok | {} | ok | ok |"


def test_the_default_is_the_file_pytest_applies():
    assert report.DEFAULT_KNOWN == pytest_plugin.KNOWN_ISSUES
    assert report.DEFAULT_KNOWN.is_file()


def test_without_known_the_default_file_explains_cells(monkeypatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setattr(report, "DEFAULT_KNOWN", KNOWN)  # a fixed file: the live one changes
    assert main(["report", str(NEW), "--format", "markdown"]) == 0
    assert ROW.format("known") in capsys.readouterr().out
    assert main(["report", str(NEW), "--format", "markdown", "--no-known"]) == 0
    assert ROW.format("FAIL") in capsys.readouterr().out
