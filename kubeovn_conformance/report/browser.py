"""Headless chromium for the HTML report: screenshots for the README, DOM dumps for tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kubeovn_conformance.report.records import ReportError

CHROMIUM = os.environ.get("KUBEOVN_CONFORMANCE_CHROMIUM", "/usr/bin/chromium")
# No network, no first-run work, no profile reuse: the page must stand on its own.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=5000",
)


def chromium() -> str | None:
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


def _run(page: Path, extra: list[str], fragment: str, timeout: float) -> str:
    exe = chromium()
    if not exe:
        raise ReportError(f"{CHROMIUM}: chromium not found (needed for screenshots)")
    url = Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="kubeovn-report-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *extra, url]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ReportError(f"{exe}: no answer within {timeout:.0f} s for {page}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReportError(f"{exe}: exit status {done.returncode}: {last}")
    return done.stdout


def dump_dom(page: Path, fragment: str = "", timeout: float = 20) -> str:
    """The DOM after the page's scripts ran (and after it opened `#fragment`)."""
    return _run(page, ["--dump-dom"], fragment, timeout)


def screenshot(
    page: Path, png: Path, fragment: str = "", size: tuple[int, int] = (1400, 1000),
    timeout: float = 20,
) -> Path:
    png = Path(png).resolve()
    _run(page, [f"--screenshot={png}", f"--window-size={size[0]},{size[1]}"], fragment, timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise ReportError(f"{png}: chromium wrote no screenshot")
    return png
