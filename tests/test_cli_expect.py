"""`kubeovn-conformance expect`, run as a user would: a subprocess of the venv's python."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "underlay-bug" / "ingress-allow-service-port.yaml"
FIELDS = {"client", "target", "path", "port", "target_port", "protocol", "verdict", "reason"}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeovn_conformance.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)


def test_json_has_the_contract_fields_and_verdicts():
    r = run("expect", EXAMPLE, "--format", "json")
    assert r.returncode == 0, r.stderr
    records = json.loads(r.stdout)
    assert records and all(FIELDS <= set(rec) for rec in records)
    by_key = {(x["client"], x["target"], x["path"], x["port"]): x for x in records}
    svc = by_key[("y/client", "x/svc/server", "service", 80)]
    assert svc == {**svc, "target_port": 8000, "protocol": "TCP", "verdict": "deny"}
    assert "x/ingress-service-port" in svc["reason"]
    assert by_key[("y/client", "x/server", "pod", 8000)]["verdict"] == "deny"
    assert by_key[("y/client", "x/server", "pod", 80)]["verdict"] == "allow"
    assert by_key[("x/server", "x/svc/server", "service", 80)]["verdict"] == "undefined"
    assert {x["verdict"] for x in records} <= {"allow", "deny", "undefined"}
    assert {x["path"] for x in records} <= {"pod", "service", "nodeport"}


def test_several_files_are_one_scenario(tmp_path):
    workload = tmp_path / "workload.yaml"
    policy = tmp_path / "policy.yaml"
    workload.write_text(
        "kind: Pod\nmetadata: {namespace: x, name: s, labels: {app: s}}\n"
        "spec: {containers: [{name: c, ports: [{containerPort: 8000}]}]}\n---\n"
        "kind: Pod\nmetadata: {namespace: y, name: c}\n")
    policy.write_text("kind: NetworkPolicy\nmetadata: {namespace: x, name: deny}\n"
                      "spec: {podSelector: {}}\n")
    r = run("expect", workload, policy, "--format", "json")
    assert r.returncode == 0, r.stderr
    (rec,) = [x for x in json.loads(r.stdout) if x["client"] == "y/c"]
    assert (rec["target"], rec["port"], rec["verdict"]) == ("x/s", 8000, "deny")


def test_table_format_shows_truth_tables_and_legend():
    r = run("expect", EXAMPLE)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "service port 80/TCP (target port 8000)" in out
    assert "pod port 8000/TCP" in out
    assert "x/svc/server" in out and "y/client" in out
    assert "X denied" in out and "? undefined" in out
    # y/client's row for port 8000 on the pod path is denied
    block = out.split("pod port 8000/TCP", 1)[1].split("\n\n", 1)[0]
    row = next(line for line in block.splitlines() if line.startswith("y/client"))
    assert row.split()[1:] == ["X"]


def test_table_reasons_option_lists_every_reason():
    r = run("expect", EXAMPLE, "--reasons")
    assert r.returncode == 0, r.stderr
    assert "y/client -> x/svc/server service 80/TCP: deny: via x/svc/server:80/TCP" in r.stdout


BAD = {
    "endport.yaml": ("kind: NetworkPolicy\nmetadata: {namespace: x, name: np}\nspec:\n"
                     "  podSelector: {}\n  ingress:\n  - ports: [{port: 90, endPort: 80}]\n",
                     "NetworkPolicy x/np"),
    "shape.yaml": ("kind: NetworkPolicy\nmetadata: {namespace: x, name: np}\nspec:\n"
                   "  podSelector: {}\n  ingress:\n  - ports: [80]\n", "NetworkPolicy x/np"),
    "pod.yaml": ("kind: Pod\nmetadata: {namespace: x, name: p}\nspec:\n  containers:\n"
                 "  - {name: c, ports: [{containerPort: 70000}]}\n", "Pod x/p"),
    "yaml.yaml": ("kind: Pod\nmetadata: {name: [oops\n", "invalid YAML"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_exits_2_with_one_line_naming_file_and_object(tmp_path, name):
    text, obj = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    for fmt in ("json", "table"):
        r = run("expect", path, "--format", fmt)
        assert r.returncode == 2
        assert r.stdout == ""
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert name in lines[0] and obj in lines[0]
        assert "Traceback" not in r.stderr


def test_missing_file_exits_2(tmp_path):
    r = run("expect", tmp_path / "absent.yaml")
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and "absent.yaml" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_file_is_a_usage_error():
    r = run("expect")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_help_mentions_each_option_with_an_example():
    r = run("expect", "--help")
    assert r.returncode == 0
    out = r.stdout
    options, examples = out.split("examples:", 1)
    # each option's help paragraph carries an "e.g." and the epilog shows it in a command line
    paragraphs = re.split(r"\n  (?=\S)", options)
    for option in ("FILE", "--format", "--reasons"):
        (para,) = [p for p in paragraphs if p.lstrip().startswith(option)]
        assert "e.g." in para, option
    assert "kubeovn-conformance expect examples/underlay-bug/" in examples
    assert "--format json" in examples
    assert "--reasons" in examples


def test_top_level_help_lists_expect():
    r = run("--help")
    assert r.returncode == 0 and "expect" in r.stdout
