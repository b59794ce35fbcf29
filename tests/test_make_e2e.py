"""The plumbing of `make e2e` that the rehearsal (tests/test_rehearsal.py) runs end to end, one
defect at a time, fast: the interpreter check before a venv is built, PYTHON= on make's command
line (exported) never reaching scripts/, free memory checked only when a cluster is created and
after the one it replaces is gone, `make cluster-plan` for underlay without a kind network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import rehearsal_fakes as fakes

ROOT = Path(__file__).resolve().parent.parent
BASH = shutil.which("bash") or "/bin/bash"
MAKE = shutil.which("make")
VERSION = "v1.16.2"
needs_make = pytest.mark.skipif(MAKE is None, reason="needs make")


def _fake_python(path: Path, version: str, venv: bool = True) -> Path:
    """An interpreter that reports `version` and, without `venv`, has no venv/ensurepip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""#!{BASH}
case "$*" in
  *"import venv, ensurepip"*) exit {0 if venv else 1} ;;
  *version_info*) echo {version} ;;
  *) echo "fake python: $*" >&2; exit 1 ;;
esac
""")
    path.chmod(0o755)
    return path


@needs_make
@pytest.mark.parametrize(("version", "venv", "says"), [
    ("3.10", True, "make: {py} is 3.10; Python >= 3.11 with venv is needed: apt install python3.11 "
                   "python3.11-venv, then make PYTHON=python3.11"),
    ("3.12", False, "make: {py} (3.12) has no venv module: apt install python3.12-venv"),
], ids=["python-3.10", "no-venv-module"])
def test_an_unusable_interpreter_is_one_line_before_any_venv(tmp_path, version, venv, says):
    py = _fake_python(tmp_path / "bin" / "python3", version, venv)
    target = tmp_path / "venv"
    r = subprocess.run([MAKE, "--no-print-directory", f"{target}/.installed", f"VENV={target}",
                        f"PYTHON={py}"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)
    assert r.returncode != 0
    assert r.stderr.splitlines()[0] == says.format(py=py)
    assert "Traceback" not in r.stderr
    assert not target.exists(), "a venv was started with an unusable interpreter"


def test_the_real_interpreter_passes_the_check():
    r = subprocess.run([BASH, str(ROOT / "scripts" / "check-python"), sys.executable], capture_output=True,
                       text=True, check=False)
    assert (r.returncode, r.stderr) == (0, "")


@needs_make
def test_python_on_makes_command_line_does_not_reach_the_scripts(tmp_path):
    """make exports command-line variables: with `make cluster-plan PYTHON=X`, X (the interpreter
    that builds venvs) must not be what scripts/ import the package with."""
    broken = _fake_python(tmp_path / "bin" / "python3.11", "3.11")
    r = subprocess.run([MAKE, "--no-print-directory", "-o", ".venv/.installed", "cluster-plan",
                        "MODE=overlay", f"KUBE_OVN_VERSION={VERSION}", f"PYTHON={broken}"],
                       cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
                       env={**os.environ, "KOC_BIN_DIR": str(tmp_path / "nobin")})
    assert r.returncode == 0, r.stderr
    assert "kind create cluster --name kube-ovn" in r.stdout


@needs_make
def test_cluster_plan_for_underlay_takes_a_saved_network(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "docker").write_text("#!/bin/sh\necho 'docker: no kind network here' >&2\nexit 1\n")
    (fake / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
           "KOC_BIN_DIR": str(tmp_path / "b")}
    argv = [MAKE, "--no-print-directory", "-o", ".venv/.installed", "cluster-plan", "MODE=underlay",
            f"KUBE_OVN_VERSION={VERSION}"]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=env)
    assert r.returncode != 0 and "pass --network-json FILE" in r.stderr
    r = subprocess.run([*argv, "NETWORK_JSON=tests/fixtures/docker-network-kind.json"], cwd=ROOT,
                       capture_output=True, text=True, check=False, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "bridge-setup" in r.stdout  # the underlay steps, from the saved network's facts


def test_cluster_up_without_the_package_names_make_venv(tmp_path):
    r = subprocess.run([BASH, str(ROOT / "scripts" / "cluster-up"), "overlay", VERSION], capture_output=True,
                       text=True, check=False, env={**os.environ, "KOC_PYTHON": "/usr/bin/env"})
    assert r.returncode == 2
    assert r.stderr.strip().endswith("(create the venv: make venv)")
    assert "make install" not in r.stderr


# ------------------------------------------------------------------ free memory, when it matters

@pytest.fixture
def machine(tmp_path):
    """tests/rehearsal_fakes on PATH (docker, kind, kubectl, helm with state) and as the pinned
    tools; cluster-up and the package copied, so that its .cache/kind/ is this test's own."""
    tree = tmp_path / "tree"
    for part in ("scripts", "kubeovn_conformance", "clusters"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    state = tmp_path / "state"
    fakes.install(tmp_path / "fakes", tmp_path / "bin", Path(sys.executable), [VERSION, "v1.15.24"])
    kubeconfig = tmp_path / "apiserver.kubeconfig"
    kubeconfig.write_text("{}")
    env = {**os.environ, **fakes.env(tmp_path / "fakes", tmp_path / "bin", state, kubeconfig, tmp_path)}
    env["PATH"] = f"{tmp_path / 'fakes'}{os.pathsep}{os.environ['PATH']}"
    env["KOC_PYTHON"] = sys.executable
    return {"env": env, "state": state, "name": "kube-ovn", "tree": tree}


def _up(m, mode: str, version: str = VERSION) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(m["tree"] / "scripts" / "cluster-up"), mode, version,
                           "--name", m["name"]],
                          capture_output=True, text=True, env=m["env"], check=False, timeout=120)


def _calls(m) -> list[str]:
    return (m["state"] / "calls.log").read_text().splitlines()


def test_memory_is_checked_after_the_cluster_it_replaces_is_deleted(machine):
    """8 GiB, a cluster holds 4.5: the second mode's cluster fits once the first is gone."""
    assert _up(machine, "overlay").returncode == 0
    r = _up(machine, "underlay")
    assert r.returncode == 0, r.stderr
    assert "recreating cluster" in r.stderr
    calls = [c for c in _calls(machine) if c.startswith(("kind create", "kind delete"))]
    assert [c.split()[1] for c in calls] == ["create", "delete", "create"]


def test_a_healthy_cluster_is_reused_whatever_the_memory(machine):
    assert _up(machine, "underlay").returncode == 0
    r = _up(machine, "underlay")  # 3 GiB available now: none needed
    assert r.returncode == 0, r.stderr
    assert f"reusing healthy cluster '{machine['name']}' (underlay, {VERSION})" in r.stderr


def test_too_little_memory_for_a_new_cluster_is_one_line_after_the_delete(machine):
    assert _up(machine, "overlay").returncode == 0
    machine["env"]["MIN_FREE_MEM_GIB"] = "8"
    r = _up(machine, "overlay", "v1.15.24")
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == ("error: only 7.5 GiB memory available, need 8 for two nodes with "
                                        "Kube-OVN (MIN_FREE_MEM_GIB overrides)")
    assert _calls(machine)[-1] == f"kind delete cluster --name {machine['name']}"
    assert "Traceback" not in r.stderr
