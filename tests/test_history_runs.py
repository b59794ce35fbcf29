"""The weekly history runs: corpus entries with kind tags as matrix runs (clusters/history.py),
their tags installable the way their line's row installs (re-read from the kube-ovn mirror),
`make e2e-history` rendered and run with fakes, and `history check` end to end."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from kubeovn_conformance import clusters as c
from kubeovn_conformance.clusters.history import history_runs, history_tags, k_expression
from kubeovn_conformance.history import load_corpus

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
MIRROR = Path(os.environ.get("KOC_UPSTREAM_MIRROR", "/work/.mirror/kubeovn+kube-ovn/repo"))
FIXTURE = ROOT / "tests" / "fixtures" / "docker-network-kind.json"
MATRIX = c.load_matrix()
CORPUS = load_corpus()
KIND_ENTRIES = [e for e in CORPUS if e.kind]
TAGS = history_tags(MATRIX)
RUNS = history_runs(MATRIX)
CASE = "history-egress-rule0-selects-nothing"
needs_mirror = pytest.mark.skipif(not (MIRROR / "HEAD").exists(), reason=f"no kube-ovn mirror at {MIRROR}")


def _tuple(tag: str) -> tuple[int, ...]:
    return tuple(int(x) for x in tag[1:].split("."))


# ------------------------------------------------------------------ the runs


def test_runs_are_exactly_the_corpus_entries_with_kind_tags():
    assert {e.id for e in KIND_ENTRIES} == {"digit-policy-name", "egress-rule0-empty", "except-scope",
                                            "ipblocks-unparenthesized"}
    want = {(e.id, e.kind["pre_fix"], "fail", m) for e in KIND_ENTRIES for m in c.MODES}
    want |= {(e.id, e.kind["fixed"], "pass", m) for e in KIND_ENTRIES for m in c.MODES}
    assert {(r.entry, r.tag, r.expect, r.mode) for r in RUNS} == want
    assert len(RUNS) == len(want)
    for r in RUNS:
        assert r.cases == next(e.cases for e in KIND_ENTRIES if e.id == r.entry)
        assert r.artifact == f"history-{r.entry}-{r.tag}-{r.mode}"


@pytest.mark.parametrize("entry", KIND_ENTRIES, ids=lambda e: e.id)
def test_pre_fix_precedes_fixed_on_one_line_and_both_derive(entry):
    pre, fixed = entry.kind["pre_fix"], entry.kind["fixed"]
    assert pre.split(".")[:2] == fixed.split(".")[:2] and _tuple(pre) < _tuple(fixed)
    assert fixed in entry.fixed_in  # the first tag of that line carrying the fix
    for tag in (pre, fixed):
        e = MATRIX.entry(tag)  # what cluster-up resolves
        row = next(r for r in MATRIX.versions.values() if r.line == e.line)
        assert (e.kind, e.node_image, e.kubectl, e.install, e.profile) == (
            row.kind, row.node_image, row.kubectl, row.install, row.profile)
        assert e.image == f"docker.io/kubeovn/kube-ovn:{tag}"
        if e.install == "helm":
            assert e.chart_version == tag
        else:
            assert e.install_sh_url == row.install_sh_url.replace(row.version, tag)
            assert f"/{tag}/" in e.install_sh_url


def _readme_rows() -> dict[str, list[str]]:
    text = (ROOT / "clusters" / "README.md").read_text().split("## History tags", 1)[1]
    rows = [[x.strip() for x in line.strip("|").split("|")] for line in text.splitlines()
            if re.match(r"\| v\d", line)]
    return {r[0]: r for r in rows}


def test_readme_records_every_tag_as_derived():
    rows = _readme_rows()
    assert set(rows) == set(TAGS)
    for r in RUNS:
        _, entry, expect, row, install, _, _, runs_on = rows[r.tag]
        assert (entry, expect, row, install) == (r.entry, r.expect, r.row, r.install)
        assert runs_on == TAGS[r.tag].k8s_version


def test_other_tags_are_refused_with_the_known_ones():
    with pytest.raises(c.ClusterError) as err:
        MATRIX.entry("v1.13.7")
    assert "history tags: v1.12.4, v1.12.5, v1.13.5" in str(err.value) and "\n" not in str(err.value)


def _corpus(tmp_path: Path, kind: dict) -> Path:
    entry = {"id": "x", "title": "t", "status": "fixed", "affected": "*", "wrong": "w", "source": "s",
             "cases": [CASE], "shape": [{"client": "x/a"}], "kind": kind}
    p = tmp_path / "corpus.yaml"
    p.write_text(yaml.safe_dump({"entries": [entry]}))
    return p


@pytest.mark.parametrize(("kind", "fragment"), [
    ({"pre_fix": "v1.13.6", "fixed": "v1.13.5"}, "must precede"),
    ({"pre_fix": "v1.13.5", "fixed": "v1.14.0"}, "must precede"),
    ({"pre_fix": "v1.11.5", "fixed": "v1.11.6"}, "no row of line v1.11"),
    ({"pre_fix": "v1.13.5", "fixed": "v1.13.99"}, "newer than its line's row"),
    ({"pre_fix": "v1.13.5"}, "both pre_fix and fixed"),
    ({"pre_fix": "1.13.5", "fixed": "v1.13.6"}, "not a tag"),
])
def test_bad_kind_tags_are_one_line_errors(tmp_path, kind, fragment):
    r = _cli("--corpus", str(_corpus(tmp_path, kind)), "history-matrix", check=False)
    assert r.returncode == 2 and fragment in r.stderr and r.stderr.count("\n") == 1, r.stderr


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubeovn_conformance.clusters", *args], cwd=ROOT,
                          capture_output=True, text=True, check=check)


def test_k_selects_exactly_the_entrys_cases_on_kind(tmp_path):
    # One collection per entry (its pre-fix run in underlay): the -k must not pick any other case.
    for e in KIND_ENTRIES:
        tag = e.kind["pre_fix"]
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", "-p", "no:cacheprovider",
             "--reports-dir", str(tmp_path), "--backend", "kind", "--mode", "underlay",
             "--kube-ovn-version", tag,
             "-k", k_expression(e.cases, "underlay", tag)],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        ids = {line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::test_case[" in line}
        assert ids == {f"test_case[underlay-{case}-{tag}]" for case in e.cases}


def test_history_plan_installs_the_tag_the_rows_way():
    helm = _cli("plan", "overlay", "v1.13.5").stdout
    assert "--version v1.13.5" in helm and "docker pull docker.io/kubeovn/kube-ovn:v1.13.5" in helm
    assert "kindest/node" not in helm or "v1.33.2" in helm
    sh = _cli("plan", "underlay", "v1.12.4", "--network-json", str(FIXTURE)).stdout
    assert "kube-ovn/v1.12.4/dist/images/install.sh" in sh and "helm upgrade" not in sh


# ------------------------------------------------------------------ the mirror


def _git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(MIRROR), *args], capture_output=True, check=True).stdout


def _leaves(d: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in d.items():
        out |= _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}"}
    return out


@needs_mirror
@pytest.mark.parametrize("tag", sorted(TAGS))
def test_tag_is_installable_the_rows_way_upstream(tag):
    e = TAGS[tag]
    net = c.load_network_json(FIXTURE)
    if e.install == "helm":
        index = yaml.safe_load(_git("show", "gh-pages:index.yaml"))
        pub = [v for v in index["entries"]["kube-ovn"] if v["version"] == tag]
        assert pub and pub[0]["appVersion"] == tag[1:], f"chart {tag} not published"
        tgz = tarfile.open(fileobj=io.BytesIO(_git("show", f"gh-pages:{pub[0]['urls'][0]}")))
        chart = yaml.safe_load(tgz.extractfile("kube-ovn/Chart.yaml"))
        values = yaml.safe_load(tgz.extractfile("kube-ovn/values.yaml"))
        assert (chart["version"], chart["appVersion"]) == (tag, tag[1:])
        assert values["global"]["images"]["kubeovn"]["tag"] == tag
        for mode in c.MODES:
            for vid in (0, 100):
                v = c.render_values(mode, e, net if mode == "underlay" else None, vlan_id=vid)
                assert c.flatten_keys(v) <= _leaves(values), (mode, vid)
    else:
        script = _git("show", f"{tag}:dist/images/install.sh").decode()
        assert re.search(rf'^VERSION="{re.escape(tag)}"$', script, re.M)
        for mode in c.MODES:
            s = c.render_install_sh_settings(mode, e, net if mode == "underlay" else None)
            c.patch_install_sh(script, s["assignments"], "/x/kubectl-ko")  # raises if one is gone
            for name in s["env"]:
                assert re.search(rf"^\s*{name}=\$\{{{name}:-", script, re.M), name
        assert _git("show", f"{tag}:dist/images/kubectl-ko")


@needs_mirror
@pytest.mark.parametrize("tag", sorted(TAGS))
def test_readme_own_ci_k8s_is_the_tags(tag):
    kind_mk = _git("show", f"{tag}:makefiles/kind.mk") if tag >= "v1.15" else b""
    m = re.search(rb"^K8S_VERSION \?= (v[\d.]+)", kind_mk, re.M) or re.search(
        rb'set k8s_version = "(v[\d.]+)"', _git("show", f"{tag}:yamls/kind.yaml.j2"))
    assert m and _readme_rows()[tag][6] == m.group(1).decode()


# ------------------------------------------------------------------ make e2e-history


def _make(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), *args], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)


def test_make_n_renders_each_run_of_the_entry():
    r = _make("-n", "e2e-history", "ENTRY=egress-rule0-empty")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith("run_id=")]
    assert len(lines) == 4
    want = [("v1.13.5", "overlay", "fail"), ("v1.13.5", "underlay", "fail"),
            ("v1.13.6", "overlay", "pass"), ("v1.13.6", "underlay", "pass")]
    for line, (tag, mode, expect) in zip(lines, want, strict=True):
        assert f"scripts/cluster-up {mode} {tag} --name kube-ovn && " in line
        assert (f".venv/bin/python -m pytest suites --backend kind --mode {mode} --kube-ovn-version {tag} "
                "--kubeconfig .cache/kind/kube-ovn/kubeconfig --reports-dir reports") in line
        assert f"-k '[{mode}-{CASE}-{tag}]'" in line and "|| [ $? -eq 1 ]" in line
        assert f'history check "reports/$run_id" --entry egress-rule0-empty --expect {expect};' in line
    assert r.stdout.splitlines()[-1].startswith("if [ -s reports/history-failed.txt ]")


def test_make_k_is_the_clis_k_for_every_run():
    r = _make("-n", "e2e-history")
    rendered = re.findall(r"--mode (\w+) --kube-ovn-version (\S+) .*? -k '([^']*)'", r.stdout)
    assert sorted(rendered) == sorted((run.mode, run.tag, run.k) for run in RUNS)


def _record(client: str, target: str, verdict: str, observed: str, outcome: str) -> dict:
    return {"case": CASE, "step": "initial", "client": client, "target": target, "path": "pod", "port": 80,
            "protocol": "TCP", "verdict": verdict, "observed": observed, "outcome": outcome}


PRE_FIX = [_record("x/a", "y/b", "deny", "connected", "fail"),
           _record("x/a", "y/a", "allow", "connected", "pass"),
           _record("y/a", "x/a", "allow", "connected", "pass")]
FIXED = [_record("x/a", "y/b", "deny", "timeout", "pass"), *PRE_FIX[1:]]
FAKE_PYTEST = """import json, os, sys
a = sys.argv[1:]
arg = lambda n: a[a.index(n) + 1]
run = os.path.join(arg("--reports-dir"), arg("--run-id"))
os.makedirs(run)
records = json.load(open(os.environ["FAKE_RESULTS"]))[arg("--kube-ovn-version")]
with open(os.path.join(run, "results.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\\n" for r in records)
sys.exit(1 if any(r["outcome"] == "fail" for r in records) else 0)
"""


def _fake_tree(tmp_path: Path, results: dict) -> dict:
    (tmp_path / "scripts").mkdir()
    for name, body in (("cluster-up", 'echo "cluster-up $*" >> calls'),
                       ("collect-diagnostics", 'echo "diagnostics $*" >> calls')):
        p = tmp_path / "scripts" / name
        p.write_text(f"#!/usr/bin/env bash\nset -euo pipefail\n{body}\n")
        p.chmod(0o755)
    (tmp_path / "fake_pytest.py").write_text(FAKE_PYTEST)
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "pyproject.toml").write_text("")
    os.utime(tmp_path / "pyproject.toml", (0, 0))  # older than .venv: no reinstall
    return {"FAKE_RESULTS": str(tmp_path / "results.json")}


def _run_make(tmp_path: Path, results: dict) -> subprocess.CompletedProcess:
    env = _fake_tree(tmp_path, results)
    # -o: the venv's stamp counts as made (this venv may predate the stamp; nothing to install).
    return _make("-o", f"{VENV}/.installed", "e2e-history", "ENTRY=egress-rule0-empty", "MODE=overlay",
                 f"VENV={VENV}",
                 f"PYTEST={sys.executable} {tmp_path / 'fake_pytest.py'}", "REPORTS=reports", cwd=tmp_path,
                 env=env)


def test_make_e2e_history_passes_when_pre_fix_fails_exactly_and_fixed_passes(tmp_path):
    r = _run_make(tmp_path, {"v1.13.5": PRE_FIX, "v1.13.6": FIXED})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        "cluster-up overlay v1.13.5 --name kube-ovn", "cluster-up overlay v1.13.6 --name kube-ovn"]
    assert "exactly the recorded shape" in r.stdout and "0 failing cells where none may fail" in r.stdout


def test_make_e2e_history_fails_naming_the_run_that_disagrees(tmp_path):
    # The fixed tag still fails: recorded, diagnostics collected, the target fails at the end.
    r = _run_make(tmp_path, {"v1.13.5": PRE_FIX, "v1.13.6": PRE_FIX})
    assert r.returncode != 0
    assert "egress-rule0-empty v1.13.6 overlay (expect pass)" in r.stderr
    assert "v1.13.5 overlay" not in r.stderr
    assert any(x.startswith("diagnostics --name kube-ovn --out reports/")
               for x in (tmp_path / "calls").read_text().splitlines())


# ------------------------------------------------------------------ history check, end to end


def _check(tmp_path: Path, records: list[dict], expect: str, as_dir: bool = True
           ) -> subprocess.CompletedProcess:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return subprocess.run([str(VENV / "bin" / "kubeovn-conformance"), "history", "check",
                           str(run if as_dir else run / "results.jsonl"), "--entry", "egress-rule0-empty",
                           "--expect", expect], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("records", "expect", "rc", "says"), [
    (PRE_FIX, "fail", 0, "1 failing cells, exactly the recorded shape"),
    ([*PRE_FIX, _record("y/b", "x/a", "allow", "timeout", "fail")], "fail", 1, "UNEXPECTED failure: "),
    # The pre-fix tag behaving like the fixed one: no pattern matches, and that is no agreement.
    (FIXED, "fail", 1, "NO failure: none of the entry's cells failed"),
    ([], "fail", 1, f"NOT RUN: {CASE}"),
    (FIXED, "pass", 0, "0 failing cells where none may fail"),
    (PRE_FIX, "pass", 1, "FAIL (fixed tag, must pass): "),
    ([*FIXED[:1], _record("x/a", "y/a", "allow", "error", "infra-error")], "pass", 1, "INFRA-ERROR: "),
    ([], "pass", 1, f"NOT RUN: {CASE}"),
])
def test_history_check_on_synthetic_results(tmp_path, records, expect, rc, says):
    r = _check(tmp_path, records, expect)
    assert (r.returncode, r.stderr) == (rc, ""), r.stdout + r.stderr
    assert says in r.stdout
    assert _check(tmp_path, records, expect, as_dir=False).returncode == rc


def test_history_summary_rechecks_every_artifact(tmp_path):
    for run in history_runs(MATRIX, entry="egress-rule0-empty"):
        d = tmp_path / run.artifact
        d.mkdir()
        records = PRE_FIX if run.expect == "fail" else FIXED
        if run.mode == "underlay" and run.expect == "pass":
            records = PRE_FIX  # a fixed tag that still fails
        (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "history-egress-rule0-empty-v1.13.5-underlay" / "results.jsonl").unlink()
    r = _cli("history-summary", str(tmp_path), "--entry", "egress-rule0-empty", check=False)
    assert r.returncode == 1
    assert "| egress-rule0-empty | v1.13.5 | overlay | fail | ok: " in r.stdout
    assert "| egress-rule0-empty | v1.13.6 | overlay | pass | ok: " in r.stdout
    errors = r.stderr.splitlines()
    assert len(errors) == 2 and all(e.startswith("::error::egress-rule0-empty ") for e in errors)
    assert "v1.13.5 underlay (expect fail): no results.jsonl" in r.stderr
    assert "v1.13.6 underlay (expect pass)" in r.stderr
