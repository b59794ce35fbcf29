"""The user's path, rehearsed end to end: what a user types (`make venv`, `make e2e`,
`make e2e-matrix`, Ctrl-C, a CI timeout's SIGTERM), as a non-root user (uid 65534 when the
tests run as root), in a copy of the working tree (tracked and untracked files, what a clone of
this change would hold), on a simulated 8 GiB machine (KOC_MEMINFO), with fakes only where Docker,
kind, kubectl, kubectl-ko and helm would be (tests/rehearsal_fakes.py). The cluster they "create"
is tests/fake_apiserver.py in a process of its own: the suite's pods are its sockets and every
probe runs the real agent. The suite (tests/fixtures/rehearsal_suite.py, given in PYTEST_ARGS as
a user's own file) has a case that passes and one that fails the way a broken cluster would, in
both modes: the fake enforces no policy.

The first `make e2e` builds the venv (.venv of the copy) by the Makefile's own rule, as that
user: it must work without root, and later makes must not build it again (the rule once touched
the interpreter through the venv's symlink: "Permission denied" without root, and a rebuild on
every make). pip installs from this machine's local index (about 25 s here). The nightly's row
is rehearsed with the workflow's own shell: its "Conformance on kind" step under a budget short
enough to cut the row off, its "Stage reports" step, then check-nightly.

KOC_REHEARSAL_SOURCE=DIR rehearses a copy of DIR instead of the working tree (to check that a
defect put back into a copy makes the rehearsal fail).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import rehearsal_fakes as fakes

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
VERSION = "v1.16.2"  # the matrix default
MATRIX_VERSIONS = ("v1.15.24", "v1.16.2")
CASE = "tests/fixtures/rehearsal_suite.py -k rehearsal_suite --probe-timeout 0.5"
FAST = f"{CASE} --deadline 1"
SLOW = f"{CASE} --deadline 120"  # the failing case probes until interrupted
BASH = shutil.which("bash") or "/bin/bash"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                       reason="copies the working tree with git ls-files"),
    pytest.mark.skipif(shutil.which("make") is None, reason="rehearses make"),
    pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                       reason="as root it drops to uid 65534 with setpriv"),
]


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []  # already not root
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _copy_tree(dest: Path) -> None:
    """What a clone of the working tree holds: tracked files (as they are now) and untracked,
    not ignored ones."""
    source = os.environ.get("KOC_REHEARSAL_SOURCE")
    if source:
        shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(
            ".venv", ".venv-nca", ".git", ".cache", ".bin", "reports", "__pycache__"))
        (dest / "reports").mkdir(exist_ok=True)
        return
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, check=True).stdout
    for rel in filter(None, out.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


class World:
    def __init__(self, top: Path) -> None:
        self.top = top
        self.clone = top / "clone"
        self.venv = self.clone / ".venv"
        self.state = top / "state"
        self.kubeconfig = top / "apiserver.kubeconfig"
        self.server: subprocess.Popen[str] | None = None
        self.env: dict[str, str] = {}
        self.interpreter_mtime = 0.0

    def run(self, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_as_user(), *argv], cwd=self.clone, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def make(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return self.run("make", "--no-print-directory", *args, timeout=timeout)

    def popen_make(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*_as_user(), "make", "--no-print-directory", *args],
                                cwd=self.clone, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def runs(self) -> set[str]:
        reports = self.clone / "reports"
        return {p.name for p in reports.iterdir() if p.is_dir()} if reports.is_dir() else set()

    def calls(self) -> list[str]:
        log = self.state / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def server_url(self) -> str:
        return json.loads(self.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]

    def run_namespaces(self) -> list[str]:
        req = urllib.request.Request(f"{self.server_url()}/api/v1/namespaces",
                                     headers={"Authorization": "Bearer fake-token"})
        with urllib.request.urlopen(req, timeout=10) as r:
            items = json.load(r)["items"]
        return [n["metadata"]["name"] for n in items
                if "kubeovn-conformance/run" in (n["metadata"].get("labels") or {})]


def _leftovers(top: Path) -> list[int]:
    """Processes working in the rehearsal's directory (started by it: make, pytest, the agents'
    parents), by pid from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd == top or top in cwd.parents:
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    top = Path(tempfile.mkdtemp(prefix="koc-rehearsal-"))
    w = World(top)
    try:
        top.chmod(0o755)
        _copy_tree(w.clone)
        (top / "home").mkdir()
        python = w.venv / "bin" / "python"
        fakes.install(top / "fakes", top / "bin", python, sorted({VERSION, *MATRIX_VERSIONS}))
        w.env = fakes.env(top / "fakes", top / "bin", w.state, w.kubeconfig, top / "home")
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(top)], check=True)
        for key in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT",
                    "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK"):
            if key in os.environ:
                w.env[key] = os.environ[key]
        interpreter = shutil.which("python3", path=w.env["PATH"]) or "/usr/bin/python3"
        w.interpreter_mtime = os.stat(interpreter).st_mtime
        w.server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "rehearsal_apiserver.py"),
                                     str(w.kubeconfig)], stdout=subprocess.PIPE, text=True)
        assert w.server.stdout is not None and w.server.stdout.readline().strip() == "ready"
        yield w
    finally:
        for pid in _leftovers(top):  # only after a failure: a run that did not end
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if w.server is not None:
            w.server.terminate()
            w.server.wait(timeout=30)
            if w.server.stdout is not None:
                w.server.stdout.close()
        shutil.rmtree(top, ignore_errors=True)


def _run_dir(w: World, new: set[str], suffix: str) -> Path:
    found = sorted(n for n in new if n.endswith(suffix))
    assert len(found) == 1, f"one run *{suffix} expected among {sorted(new)}"
    return w.clone / "reports" / found[0]


def _cases(run: Path) -> list[dict[str, Any]]:
    path = run / "cases.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _assert_failed_row(run: Path, mode: str, version: str) -> None:
    """README "make e2e": reports/<run-id>/ with results.jsonl, cases.jsonl, summary.json and
    junit.xml; on failure the diagnostics in the run directory: per failing case (taken while
    it was in place) and the cluster's (scripts/collect-diagnostics)."""
    for name in ("results.jsonl", "cases.jsonl", "summary.json", "junit.xml"):
        assert (run / name).is_file(), f"{run.name}: no {name}"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["mode"], summary["kube_ovn_version"], summary["backend"]) == (mode, version, "kind")
    # (Sorted: with -n 2 the two cases run at once, on two workers.)
    assert sorted((c["case"], c["outcome"]) for c in _cases(run)) == [("rehearsal-deny", "fail"),
                                                                       ("rehearsal-open", "pass")]
    cluster = run / "diagnostics" / "cluster"
    assert (cluster / "README.txt").is_file() and (cluster / "cluster" / "nodes.txt").is_file(), run
    assert (cluster / "kind-logs" / "kind.log").is_file(), "no kind logs in the cluster's diagnostics"
    per_case = run / "diagnostics" / f"{mode}-rehearsal-deny"
    assert per_case.is_dir(), f"{run.name}: no per-case diagnostics"


def _assert_cut_off_row(run: Path) -> None:
    """The case that finished is recorded (probes and case), JUnit lists it."""
    assert (run / "junit.xml").is_file(), run
    assert [(c["case"], c["outcome"]) for c in _cases(run)][:1] == [("rehearsal-open", "pass")], run
    probes = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x.strip()]
    assert {p["case"] for p in probes} >= {"rehearsal-open"}
    assert 'name="test_case[' in (run / "junit.xml").read_text() and "rehearsal-open" in \
        (run / "junit.xml").read_text()


def _wait_for(what: str, predicate: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def _interrupt(w: World, sig: signal.Signals, group: bool, *args: str) -> tuple[int, str, set[str]]:
    """Start `make e2e ...`, send `sig` once the first case is recorded and the second is in
    place (to make's process group, as Ctrl-C does, or to make alone, as `kill` and CI
    runners do), and wait until the run has cleaned up."""
    before = w.runs()
    p = w.popen_make("e2e", "PYTHON=python3", f"PYTEST_ARGS={SLOW}", *args)
    try:
        def second_case_running() -> bool:
            assert p.poll() is None, "make ended before it was interrupted"
            recorded = any(_cases(w.clone / "reports" / n) for n in w.runs() - before)
            return recorded and len(w.run_namespaces()) >= 2

        _wait_for("the second case's namespaces", second_case_running, 120)
        time.sleep(1.0)  # into the probing
        if group:
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)
        try:
            out, _ = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            pytest.fail(f"make e2e still running 120 s after {sig.name}:\n{out[-3000:]}", pytrace=False)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    # pytest runs in a process group of its own (scripts/e2e): wait for its cleanup to end.
    _wait_for("the run's namespaces to be deleted", lambda: not w.run_namespaces(), 60)
    new = w.runs() - before
    for name in new:
        _wait_for(f"{name}/junit.xml", lambda n=name: (w.clone / "reports" / n / "junit.xml").exists(), 60)
    return p.returncode, out, new


def _nightly_row(w: World, mode: str, budget_minutes: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """The nightly e2e job's "Conformance on kind" and "Stage reports" steps (their shell, from
    the workflow, in the copy, as the user), then check-nightly on the artifact: the step's
    output and the line check-nightly prints for this row."""
    wf = yaml.safe_load((w.clone / ".github" / "workflows" / "nightly.yml").read_text())
    job = wf["jobs"]["e2e"]
    steps = {s.get("name"): s for s in job["steps"]}
    env = {**w.env, **{k: str(v) for k, v in job.get("env", {}).items()},
           "E2E_BUDGET_MINUTES": budget_minutes, "PYTEST_ARGS": SLOW}

    def shell(name: str, **extra: str) -> subprocess.CompletedProcess[str]:
        text = steps[name]["run"].replace("${{ matrix.mode }}", mode)
        text = text.replace("${{ matrix.version }}", VERSION)
        assert "${{" not in text, text
        return subprocess.run([*_as_user(), BASH, "--noprofile", "--norc", "-eo", "pipefail", "-c", text],
                              cwd=w.clone, env={**env, **extra}, capture_output=True, text=True,
                              check=False, timeout=300)

    ran = shell("Conformance on kind")
    staged = shell("Stage reports", E2E_OUTCOME="success" if ran.returncode == 0 else "failure")
    assert staged.returncode == 0, staged.stdout + staged.stderr
    downloaded = w.top / "nightly-artifacts"
    shutil.copytree(w.clone / "artifact", downloaded / f"reports-{VERSION}-{mode}")
    r = w.run(str(w.venv / "bin" / "python"), "-m", "kubeovn_conformance.clusters", "check-nightly",
              str(downloaded))
    lines = [x for x in (r.stdout + r.stderr).splitlines() if f"{VERSION} {mode}:" in x]
    assert len(lines) == 1, r.stdout + r.stderr
    return ran, lines[0]


def test_the_user_path_end_to_end(world: World) -> None:
    w = world
    t0 = time.monotonic()

    def lap(what: str) -> None:
        print(f"rehearsal: {what} done at {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    # make e2e, both modes, on a fresh copy: it builds the venv first, as that user.
    # PYTHON= on the command line names the interpreter that builds venvs, not the one scripts/
    # run with. Overlay fails (unexplained), Underlay still runs.
    before = w.runs()
    r = w.make("e2e", "PYTHON=python3", f"PYTEST_ARGS={FAST}", timeout=600)
    out = r.stdout + r.stderr
    assert "python3 -m venv" in out and "Permission denied" not in out, out[-3000:]
    assert "license` as a TOML table is deprecated" not in out
    assert (w.venv / "bin" / "python").exists()
    assert r.returncode != 0, out[-3000:]
    assert "GiB memory available" not in out, out[-3000:]  # 8 GiB: enough for one cluster at a time
    assert f"e2e: [2/2] Kube-OVN {VERSION}, underlay" in out, out[-3000:]
    assert "e2e: 2 of 2 runs failed" in out, out[-3000:]
    new = w.runs() - before
    assert len(new) == 2, sorted(new)
    for mode in ("overlay", "underlay"):
        _assert_failed_row(_run_dir(w, new, f"-kind-{mode}-{VERSION}"), mode, VERSION)
    calls = w.calls()
    creates = [i for i, c in enumerate(calls) if c.startswith("kind create cluster")]
    deletes = [i for i, c in enumerate(calls) if c.startswith("kind delete cluster")]
    assert len(creates) == 2 and len(deletes) == 1 and creates[0] < deletes[0] < creates[1], calls

    lap("make e2e")
    # make e2e-matrix on two versions: every row, its records and diagnostics, then the report.
    # With two xdist workers: their run ids must stay apart (and valid label values, also with a
    # two-digit patch version in Underlay), or the cases clash and every cell is an infra-error.
    before = w.runs()
    r = w.make("e2e-matrix", f"VERSIONS={' '.join(MATRIX_VERSIONS)}", "PYTHON=python3",
               f"PYTEST_ARGS={FAST} -n 2")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    # The venv is not built again, and the system interpreter is untouched.
    assert "-m venv" not in out and "pip install" not in out, out[-3000:]
    interpreter = shutil.which("python3", path=w.env["PATH"]) or "/usr/bin/python3"
    assert os.stat(interpreter).st_mtime == w.interpreter_mtime
    assert "e2e: 4 of 4 runs failed" in out, out[-3000:]
    new = w.runs() - before
    assert len(new) == 4, sorted(new)
    for version in MATRIX_VERSIONS:
        for mode in ("overlay", "underlay"):
            _assert_failed_row(_run_dir(w, new, f"-kind-{mode}-{version}"), mode, version)
    assert (w.clone / "reports" / "index.html").is_file()

    lap("make e2e-matrix")
    # Ctrl-C (SIGINT to the process group) in the first mode of a rerun that reuses the healthy
    # cluster: records and JUnit kept, namespaces deleted, the second mode never starts.
    n_creates = len([c for c in w.calls() if c.startswith("kind create cluster")])
    rc, out, new = _interrupt(w, signal.SIGINT, True, f"KUBE_OVN_VERSION={VERSION}", "MODES=underlay overlay")
    assert rc != 0, out[-3000:]
    assert f"reusing healthy cluster 'kube-ovn' (underlay, {VERSION})" in out, out[-3000:]
    assert len([c for c in w.calls() if c.startswith("kind create cluster")]) == n_creates
    assert "e2e: [2/2]" not in out, "the next mode ran after Ctrl-C"
    run = _run_dir(w, new, f"-kind-underlay-{VERSION}")
    _assert_cut_off_row(run)

    lap("Ctrl-C")
    # The nightly's row, cut off by its budget (timeout sends SIGTERM to make): what it
    # recorded is staged, and check-nightly calls it cut off, not never ran.
    before = w.runs()
    ran, line = _nightly_row(w, "underlay", "0.6")
    out = ran.stdout + ran.stderr
    assert ran.returncode == 124, out[-3000:]
    assert "e2e: stopped by SIGTERM" in out, out[-3000:]
    new = w.runs() - before
    _wait_for("the run's namespaces to be deleted", lambda: not w.run_namespaces(), 60)
    run = _run_dir(w, new, f"-kind-underlay-{VERSION}")
    _assert_cut_off_row(run)
    artifact = w.clone / "artifact"
    assert (artifact / "results.jsonl").is_file() and (artifact / "junit.xml").is_file()
    assert "never ran" not in line and "cut off" in line, line

    print(f"rehearsal: {time.monotonic() - t0:.0f} s after the venv", file=sys.stderr)
