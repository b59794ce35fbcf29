"""Every command that reads files names the file on bad input, also on a binary (non-UTF-8)
file: one line, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "docker-network-kind.json"
KO = [sys.executable, "-m", "kubeovn_conformance.cli"]
CL = [sys.executable, "-m", "kubeovn_conformance.clusters"]


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    p = tmp_path / "blob.yaml"
    p.write_bytes(b"apiVersion: v1\nkind: Pod\n\xff\xfe\x00garbage\n")
    return p


@pytest.mark.parametrize(
    "argv",
    [
        lambda b: [*KO, "expect", str(b)],
        lambda b: [*KO, "diff", str(b), str(b)],
        lambda b: [*KO, "report", str(b), "--format", "markdown"],
        lambda b: [*CL, "--matrix", str(b), "default"],
        lambda b: [*CL, "render-values", "underlay", "v1.16.2", "--network-json", str(b)],
        lambda b: [*CL, "render-install-sh", "overlay", "v1.12.35", "--script", str(b),
                   "-o", str(b) + ".out"],
        lambda b: [*CL, "failing-probes", str(FIXTURE), "--namespaces", str(b)],
    ],
    ids=["expect", "diff", "report", "clusters-matrix", "network-json", "install-sh", "namespaces"],
)
def test_binary_input_is_one_line_naming_the_file(binary, argv):
    r = subprocess.run(argv(binary), capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(binary) in lines[0], lines[0]


def test_expect_names_file_and_byte(binary):
    r = subprocess.run([*KO, "expect", str(binary)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.stderr.strip() == (f"kubeovn-conformance: error: {binary}: not UTF-8 text "
                                "(byte 0xff at line 3, offset 25)")
