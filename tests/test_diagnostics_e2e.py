"""Diagnostics end to end: the kind backend calls the real scripts/collect-diagnostics (as it is
specified: --out, --probes, --namespaces) while the failing state is in place, against the fake
API server, with a fake `kubectl` on PATH that records its argv; the API dump is the fallback
when the script fails, not only when it is missing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.test_kind_backend import WORKLOAD, live, make_backend  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent

FAKE_KUBECTL = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$*" in
  *"list Port_Group"*) echo web.allow.y ;;
  *" get pod "*) printf 10.16.0.7 ;;
  *" get service "*) printf 10.96.0.9 ;;
esac
exit 0
"""


def _exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _fake_path(tmp_path: Path, monkeypatch) -> Path:
    fake = tmp_path / "fake"
    _exe(fake / "kubectl", FAKE_KUBECTL)
    _exe(fake / "kubectl-ko", "#!/usr/bin/env bash\nexit 0\n")
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("KOC_BIN_DIR", str(tmp_path / "no-pinned-tools"))
    return log


FAILING = [
    {"client": "x/a", "target": "y/svc/web", "port": 80, "protocol": "TCP", "outcome": "fail"},
    {"client": "x/a", "target": "y/c", "port": 8000, "protocol": "TCP", "outcome": "fail"},
]


def test_backend_runs_the_script_with_real_namespaces(live, tmp_path, monkeypatch):  # noqa: F811
    _, backend, _ = live
    log = _fake_path(tmp_path, monkeypatch)
    dest = tmp_path / "diag"
    backend.collect_diagnostics(dest, FAILING)
    calls = log.read_text().splitlines()
    x, y = backend.namespaces["x"], backend.namespaces["y"]
    assert f"ko trace {x}/a 10.96.0.9 tcp 80" in calls
    assert f"ko trace {x}/a 10.16.0.7 tcp 8000" in calls
    assert f"-n {y} get service web -o jsonpath={{.spec.clusterIP}}" in calls
    assert not any(" -n y " in f" {c} " for c in calls), "a scenario namespace reached kubectl"
    assert "unexpected argument" not in (dest / "collect-diagnostics.log").read_text()
    assert not (dest / "collect-diagnostics.error").exists()
    # --no-logs: cluster-wide logs are collected once by make e2e, not per failing case.
    assert not any(c.startswith("logs ") for c in calls)


def test_script_failure_falls_back_to_the_api_dump(live, tmp_path, monkeypatch):  # noqa: F811
    _, backend, _ = live
    _fake_path(tmp_path, monkeypatch)
    broken = tmp_path / "broken-diagnostics"
    _exe(broken, "#!/usr/bin/env bash\necho broken >&2\nexit 2\n")
    backend.diagnostics_script = broken
    dest = tmp_path / "diag"
    backend.collect_diagnostics(dest, FAILING)
    real_y = backend.namespaces["y"]
    pods = json.loads((dest / real_y / "pods.json").read_text())
    assert [p["metadata"]["name"] for p in pods["items"]] == ["c"]
    assert "exit status 2" in (dest / "collect-diagnostics.error").read_text()


def test_missing_results_file_means_no_traces_not_an_early_exit(tmp_path, monkeypatch):
    import subprocess

    log = _fake_path(tmp_path, monkeypatch)
    out = tmp_path / "out"
    r = subprocess.run([str(ROOT / "scripts" / "collect-diagnostics"), "--out", str(out), "--probes",
                        str(tmp_path / "never-written" / "results.jsonl"), "--no-logs"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "no traces" in (out / "errors.txt").read_text()
    assert "get nodes -o wide" in log.read_text()


def test_pinned_kubectl_comes_from_the_cluster_record_before_any_kubectl_runs(tmp_path, monkeypatch):
    import subprocess

    from kubeovn_conformance import clusters as c

    log = _fake_path(tmp_path, monkeypatch)
    bin_dir = tmp_path / "pinned"
    monkeypatch.setenv("KOC_BIN_DIR", str(bin_dir))
    entry = c.load_matrix().entry("v1.14.41")
    pinned = c.tool_path(bin_dir, "kubectl", entry.kubectl)
    _exe(pinned, '#!/usr/bin/env bash\necho "pinned $*" >> "$FAKE_LOG"\n')
    _exe(c.tool_path(bin_dir, "kubectl-ko", entry.version), "#!/usr/bin/env bash\nexit 0\n")
    # No kubectl anywhere else on PATH.
    (tmp_path / "fake" / "kubectl").unlink()
    name = f"koc-diag-{os.getpid()}"
    work = ROOT / ".cache" / "kind" / name
    work.mkdir(parents=True)
    try:
        (work / "cluster-record.yaml").write_text(c.dump_yaml(c.record_manifest("overlay", entry, 0)))
        r = subprocess.run([str(ROOT / "scripts" / "collect-diagnostics"), "--out", str(tmp_path / "o"),
                            "--name", name, "--no-logs", "--kubeconfig", str(tmp_path / "kc")],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        calls = log.read_text().splitlines()
        assert calls[0] == "pinned get nodes -o wide", calls[:3]
        assert "kubectl-ko not available" not in (tmp_path / "o" / "errors.txt").read_text()
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
