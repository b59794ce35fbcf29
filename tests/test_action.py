"""action.yml, the composite GitHub Action (actionlint lints workflows, not action metadata):
its structure, every `${{ inputs.x }}` and step output declared, no expression inside a shell
script (inputs reach scripts through env only), shellcheck on every script, and the scripts
themselves run as Actions would run them, against FakeApiServer, with the repository as the
action's checkout. .github/workflows/action-selftest.yml runs it for real (actionlint checks
that workflow in test_workflows.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_apiserver import FakeApiServer, fake_controller, fake_node, fake_subnet
from tests.test_cluster_backend import created_pods

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
SHELLCHECK = ROOT / ".venv" / "bin" / "shellcheck"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text())  # type: ignore[no-any-return]


def steps() -> list[dict[str, Any]]:
    return action()["runs"]["steps"]  # type: ignore[no-any-return]


def test_structure() -> None:
    a = action()
    assert {"name", "description", "inputs", "outputs", "runs"} <= set(a)
    assert a["runs"]["using"] == "composite"
    for name, spec in a["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name) and spec.get("description"), name
        assert set(spec) <= {"description", "required", "default", "deprecationMessage"}, name
    assert {"kubeconfig", "mode", "subnet", "kube-ovn-version", "agent-image",
            "pytest-args"} <= set(a["inputs"])
    for name, spec in a["outputs"].items():
        assert spec.get("description") and EXPR.fullmatch(str(spec["value"])), name
    for step in a["runs"]["steps"]:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step.get("shell") == "bash", step  # required in composite actions
        else:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


def test_every_expression_refers_to_something_declared() -> None:
    a = action()
    text = ACTION.read_text()
    ids = {s["id"] for s in a["runs"]["steps"] if "id" in s}
    used_inputs = set()
    for expr in EXPR.findall(text):
        for name in re.findall(r"\binputs\.([\w-]+)", expr):
            assert name in a["inputs"], f"${{{{ {expr} }}}}: no input {name}"
            used_inputs.add(name)
        for sid, out in re.findall(r"\bsteps\.([\w-]+)\.outputs\.([\w-]+)", expr):
            assert sid in ids, f"${{{{ {expr} }}}}: no step {sid}"
            script = next(s for s in a["runs"]["steps"] if s.get("id") == sid)["run"]
            assert re.search(rf"\b{re.escape(out)}=", script), f"step {sid} never writes {out}"
    assert used_inputs == set(a["inputs"])  # nothing declared and ignored


def test_no_expression_inside_a_script() -> None:
    """Inputs are untrusted text: in a script they would be spliced into the code."""
    for step in steps():
        assert not EXPR.search(step.get("run", "")), step["name"]


def test_the_check_above_catches_an_undeclared_input(tmp_path: Path) -> None:
    text = ACTION.read_text().replace("${{ inputs.subnet }}", "${{ inputs.subnets }}")
    declared = set(yaml.safe_load(text)["inputs"])
    used = {n for e in EXPR.findall(text) for n in re.findall(r"\binputs\.([\w-]+)", e)}
    assert used - declared == {"subnets"}


@pytest.mark.parametrize("index", [i for i, s in enumerate(steps()) if "run" in s])
def test_scripts_pass_shellcheck(tmp_path: Path, index: int) -> None:
    script = tmp_path / "step.sh"
    # Actions runs `bash --noprofile --norc -eo pipefail {0}` for `shell: bash`.
    script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + steps()[index]["run"])
    r = subprocess.run([str(SHELLCHECK), "--severity=style", str(script)], capture_output=True,
                       text=True, check=False, timeout=60)
    assert r.returncode == 0, r.stdout


def run_step(name: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A step's script as Actions runs it: bash -eo pipefail, env from the runner and `env:`."""
    script = next(s for s in steps() if s.get("name") == name)["run"]
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
                          capture_output=True, text=True, check=False, timeout=600)


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


OPEN = """
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec: {containers: [{name: agent, image: any, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {pod: b}}
spec: {containers: [{name: agent, image: any, ports: [{containerPort: 8080}]}]}
"""


@pytest.mark.slow
def test_the_scripts_run_the_suite_and_write_the_report(tmp_path: Path) -> None:
    temp = tmp_path / "runner-temp"
    venv = temp / "kubeovn-conformance" / "venv" / "bin"
    venv.mkdir(parents=True)
    for tool in ("python", "kubeovn-conformance"):  # the install step's venv: this one
        (venv / tool).write_text(f'#!/bin/sh\nexec "{ROOT / ".venv" / "bin" / tool}" "$@"\n')
        (venv / tool).chmod(0o755)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    preload = [fake_subnet("ovn-default"), fake_controller("kubeovn/kube-ovn:v1.16.2")]
    with FakeApiServer(nodes=[fake_node("n1"), fake_node("n2")], preload=preload) as api:
        api.kubeconfig(workspace / "kc")
        pods = created_pods(api)
        runner = {"RUNNER_TEMP": str(temp), "GITHUB_ACTION_PATH": str(ROOT),
                  "GITHUB_WORKSPACE": str(workspace), "GITHUB_OUTPUT": str(tmp_path / "out"),
                  "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
        # One case without Services or policies (the fake proxies and enforces nothing).
        (workspace / "open.yaml").write_text(OPEN)
        inputs = {"KOC_KUBECONFIG": "kc", "KOC_MODE": "overlay", "KOC_SUBNET": "ovn-default",
                  "KOC_VERSION": "", "KOC_AGENT_IMAGE": "mirror.example/python:3.12-alpine",
                  "KOC_PYTEST_ARGS": f"--case-file {workspace / 'open.yaml'} -k file-open "
                                     "--deadline 1 --probe-timeout 0.5"}
        r = run_step("Run the suites", {**runner, **inputs}, tmp_path)
        bad = run_step("Run the suites", {**runner, **inputs, "KOC_MODE": "underlay",
                                          "GITHUB_OUTPUT": str(tmp_path / "out-bad")}, tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "1 passed" in r.stdout and "v1.16.2" in r.stdout
    assert len(pods) == 2 and {p["spec"]["containers"][0]["image"] for p in pods} == {
        "mirror.example/python:3.12-alpine"}
    assert {p["metadata"]["annotations"]["ovn.kubernetes.io/logical_switch"] for p in pods} == {"ovn-default"}
    out = outputs(tmp_path / "out")
    run_dir = Path(out["run-dir"])
    assert out["exit-code"] == "0" and Path(out["junit"]).is_file()
    assert (run_dir / "results.jsonl").stat().st_size > 0
    report = run_step("Report", {**runner, "KOC_RUN_DIR": str(run_dir)}, tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    assert Path(out["report"]).stat().st_size > 0
    assert "file-open" in (tmp_path / "summary.md").read_text()
    # A contradicting mode: pytest's usage error, one line, passed on as the step's status.
    assert bad.returncode == 4
    assert "contradicts --subnet ovn-default" in bad.stderr and "Traceback" not in bad.stderr
    assert outputs(tmp_path / "out-bad")["exit-code"] == "4"
