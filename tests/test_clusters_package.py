"""kubeovn_conformance.clusters is a package of modules that say what they are, and
`python -m kubeovn_conformance.clusters` (what the scripts and the Makefile call) still works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "kubeovn_conformance" / "clusters"


def test_clusters_is_a_package_of_named_modules():
    assert not (ROOT / "kubeovn_conformance" / "clusters.py").exists()
    names = {p.stem for p in PKG.glob("*.py")}
    assert names >= {"__init__", "__main__", "matrix", "tools", "render", "plan", "cli"}
    for p in PKG.glob("*.py"):
        assert len(p.read_text().splitlines()) <= 400, f"{p.name} is over 400 lines"


def test_python_dash_m_still_works():
    r = subprocess.run([sys.executable, "-m", "kubeovn_conformance.clusters", "default"],
                       capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("v1.")
    r = subprocess.run([sys.executable, "-m", "kubeovn_conformance.clusters", "image", "v0.0.0"],
                       capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown Kube-OVN version")


def test_make_calls_the_module_by_its_dash_m_name():
    text = (ROOT / "Makefile").read_text()
    assert "-m kubeovn_conformance.clusters default" in text
    r = subprocess.run(["make", "-n", "cluster-plan", "PY=" + sys.executable],
                       capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    assert "scripts/cluster-up overlay" in r.stdout
