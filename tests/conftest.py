"""Guard for every unit test: it must not leave anything in the repository's reports/ (that is
where a user's runs go; tests write their run directories under tmp_path)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def _entries() -> set[str]:
    try:
        return {p.name for p in REPORTS.iterdir()}
    except OSError:
        return set()


@pytest.fixture(autouse=True)
def _reports_left_alone() -> Iterator[None]:
    before = _entries()
    yield
    new = sorted(_entries() - before)
    if new:
        pytest.fail(f"this test left {', '.join(new)} in {REPORTS} (write run directories under tmp_path)",
                    pytrace=False)
