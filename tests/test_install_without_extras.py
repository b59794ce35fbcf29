"""`pip install .` without extras, then the README's "Test your own cluster" command: the
pytest plugin must import with runtime dependencies only (junitparser was a test
extra once, and the plugin failed to load)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_plugin_loads_with_runtime_dependencies_only(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        str(ROOT)], capture_output=True, text=True, check=False, timeout=900)
    if r.returncode != 0 and ("Could not find a version" in r.stderr or "NewConnectionError" in r.stderr):
        pytest.skip(f"package index not reachable: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    # Only the runtime dependencies: no test extra slipped in.
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True,
                            text=True, check=True).stdout.lower()
    assert "hypothesis" not in listed and "ruff" not in listed
    # The installed copy, not this checkout: from an empty directory, the plugin by name.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("PYTEST_", "TOX_"))}
    work = tmp_path / "empty"
    work.mkdir()
    r = subprocess.run([str(py), "-c", "import kubeovn_conformance.pytest_plugin as p; print(p.__file__)"],
                       capture_output=True, text=True, cwd=work, env=env, check=False, timeout=300)
    assert r.returncode == 0 and str(env_dir) in r.stdout, r.stderr[-2000:]
    r = subprocess.run([str(py), "-m", "pytest", "-p", "kubeovn_conformance.pytest_plugin", "--help"],
                       capture_output=True, text=True, cwd=work, env=env, check=False, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # The plugin's options are known (an unknown option would exit 4, "unrecognized arguments").
    r = subprocess.run([str(py), "-m", "pytest", "-p", "kubeovn_conformance.pytest_plugin", "--backend",
                        "kind", "--mode", "underlay", "--collect-only", "-q", "-p", "no:cacheprovider"],
                       capture_output=True, text=True, cwd=work, env=env, check=False, timeout=300)
    assert r.returncode == 5, r.stdout[-2000:] + r.stderr[-2000:]  # 5: no tests collected
    assert sys.executable != str(py)


def test_license_is_an_spdx_expression_setuptools_reads_without_a_warning():
    """`license = { text = ... }` is deprecated (PEP 639): setuptools >= 77 printed a warning
    block on every install. An SPDX string, and a build backend that understands it."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in meta["build-system"]["requires"]
