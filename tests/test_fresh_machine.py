"""A fresh machine: `make test` installs the lab's Debian packages itself as root (one line),
and without root runs the unit tests and lint, then stops with one line saying what to run.
docker-free fakes of id, dpkg-query and apt-get stand in for the machine."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install-lab-deps"
BASH = shutil.which("bash") or "/bin/bash"


def _exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _machine(tmp_path: Path, uid: int, installed: set[str], npm: bool = True) -> dict[str, str]:
    fake = tmp_path / "fake"
    _exe(fake / "id", f"#!/usr/bin/env bash\necho {uid}\n")
    cases = "\n".join(f'  {p}) echo -n "install ok installed" ;;' for p in sorted(installed))
    _exe(fake / "dpkg-query", f'#!/usr/bin/env bash\ncase "${{@: -1}}" in\n{cases}\n  *) exit 1 ;;\nesac\n')
    _exe(fake / "apt-get", '#!/usr/bin/env bash\necho "apt-get $*" >> "$FAKE_LOG"\n')
    path = [str(fake)]
    if npm:
        _exe(fake / "npm", "#!/usr/bin/env bash\n")
    # Only the basics of a machine, so that a real npm on this one does not leak in.
    basics = tmp_path / "basics"
    basics.mkdir()
    for tool in ("bash", "grep", "env", "cat"):
        found = shutil.which(tool)
        if found:
            (basics / tool).symlink_to(found)
    path.append(str(basics))
    return {"PATH": os.pathsep.join(path), "FAKE_LOG": str(tmp_path / "apt.log"), "HOME": str(tmp_path)}


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT)], capture_output=True, text=True, env=env, check=False)


def test_as_root_installs_only_what_is_missing_saying_so_in_one_line(tmp_path):
    env = _machine(tmp_path, 0, {"iproute2", "procps", "ethtool", "python3-venv", "chromium",
                                 "debootstrap"}, npm=False)
    r = _run(env)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "install-lab-deps: installing openvswitch-switch ovn-central ovn-host nodejs npm with apt-get"]
    assert (tmp_path / "apt.log").read_text().splitlines() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends openvswitch-switch ovn-central ovn-host nodejs npm",
    ]


def test_as_root_with_everything_installed_is_silent(tmp_path):
    every = {"openvswitch-switch", "ovn-central", "ovn-host", "iproute2", "ethtool", "procps",
             "python3-venv", "chromium", "debootstrap"}
    r = _run(_machine(tmp_path, 0, every))
    assert (r.returncode, r.stderr) == (0, "")
    assert not (tmp_path / "apt.log").exists()


def test_without_root_nothing_is_installed_and_the_lab_is_off(tmp_path):
    r = _run(_machine(tmp_path, 1000, set()))
    assert r.returncode == 3
    assert len(r.stderr.splitlines()) == 1 and "not root" in r.stderr
    assert not (tmp_path / "apt.log").exists()


def test_make_test_runs_unit_and_lint_then_stops_with_one_line_without_root():
    text = (ROOT / "Makefile").read_text()
    recipe = text[text.index("\ntest:"):text.index("\nlab-up:")]
    assert "scripts/install-lab-deps" in recipe
    assert recipe.index("unit lint") < recipe.index("run 'sudo make test'") < recipe.index("lab\n")


def test_ci_run_is_a_thin_wrapper_over_make_test():
    lines = [x for x in (ROOT / ".ci" / "run").read_text().splitlines() if x and not x.startswith("#")]
    assert lines == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "exec make test"]
