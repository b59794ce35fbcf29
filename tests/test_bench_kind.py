"""`make bench-kind` on a small suite: the kind backend against the fake API server, counted at
the fake, both deletion strategies side by side, the budget printed from the counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubeovn_conformance import bench_kind
from kubeovn_conformance.bench_kind_fake import counts_by_kind

ROOT = Path(__file__).resolve().parent.parent

# Two workloads (ports 8080 and 8081): a pack of two cases on the first, one case on the
# second, so two setups, two teardowns, and a Service on each pod (the bench's fake answers
# on ClusterIPs; without that every case would stop at "servers not answering").
SUITE = '''
from kubeovn_conformance import builders as b
from kubeovn_conformance.runner import Case, Step

def ground(port):
    return b.upstream_ground(namespaces=("x", "y"), pods=("a",), ports=(port,), protocols=("TCP", "UDP"),
                             service_offset=1000)

CASES = [Case(f"bench-{name}-{port}", "ingress", ground(port),
              (Step("initial", lambda w, n=name: w.with_policies([b.deny_all("x", n)])),))
         for port, names in ((8080, ("one", "two")), (8081, ("three",))) for name in names]


def test_case(case, conformance, request):
    conformance.check(case, request.node)
'''


def _suite(tmp_path: Path) -> Path:
    suites = tmp_path / "benchsuites"
    suites.mkdir()
    (suites / "__init__.py").write_text("")
    (suites / "test_small.py").write_text(SUITE)
    return suites


def test_bench_kind_counts_a_small_suite_with_both_strategies(tmp_path, capsys):
    suites = _suite(tmp_path)
    out = tmp_path / "out"
    assert bench_kind.main(["--suites-dir", str(suites), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    data = json.loads((out / "bench-kind.json").read_text())
    base, over = data["baseline"][0], data["overlap"][0]
    for row in (base, over):
        assert row["infra_errors"] == [] and row["cases"] == 3 and row["setups"] == 2
        r = row["requests"]
        # Pack of two with 8 slots (as pytest --pack 8): 8 x (x, y), then the lone case: 2.
        assert r["ns+"] == 18 and r["ns-"] == 18
        assert r["pods+"] == 18 and r["svc+"] == 18 and "pods-" not in r
        assert r["pol+"] == 3 and r["pol-"] == 3  # each case's policy, removed by its reset
        assert r["exec"] > 0 and r["ready"] > 0 and r["del-poll"] > 0
    # Same API work either way but the deletion polls; the overlap waits for the previous
    # workload's namespaces, which have had a whole case to go.
    same = {k: v for k, v in base["requests"].items() if k != "del-poll"}
    assert same == {k: v for k, v in over["requests"].items() if k != "del-poll"}
    assert "API work per suite, baseline" in text and "API work per suite, overlap" in text
    assert "pod_startup_latency.md" in text  # every assumed cost names its source
    budget = data["budget"]
    assert budget["overlap"]["deletions"] < budget["baseline"]["deletions"]
    assert budget["baseline"]["setups"] == 2 * bench_kind.row_budget.__globals__["SETUP"].seconds
    assert "overlap saves" in text
    # The saved counts print the same report again without a run.
    assert bench_kind.main(["--from-json", str(out / "bench-kind.json")]) == 0
    assert "Budget per nightly row" in capsys.readouterr().out


def test_the_fake_counts_requests_by_verb_and_resource():
    from tests.fake_apiserver import FakeApiServer

    with FakeApiServer() as api:
        api.requests[:] = [("POST", "/api/v1/namespaces", ""), ("DELETE", "/api/v1/namespaces/n1", ""),
                           ("GET", "/api/v1/namespaces", ""), ("GET", "/api/v1/namespaces/n1", ""),
                           ("POST", "/api/v1/namespaces/n1/pods", ""),
                           ("GET", "/api/v1/namespaces/n1/pods", ""),
                           ("GET", "/api/v1/namespaces/n1/pods/a/log", ""),
                           ("GET", "/api/v1/namespaces/n1/pods/a/exec", ""),
                           ("PATCH", "/api/v1/namespaces/n1/pods/a", ""),
                           ("PUT", "/apis/networking.k8s.io/v1/namespaces/n1/networkpolicies/p", ""),
                           ("DELETE", "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies/x", ""),
                           ("GET", "/api/v1/nodes", "")]
        counts = api.request_counts()
    assert counts == {"create namespaces": 1, "delete namespaces": 1, "list namespaces": 1,
                      "get namespaces": 1, "create pods": 1, "list pods": 1, "log pods": 1,
                      "exec pods": 1, "patch pods": 1, "replace networkpolicies": 1,
                      "delete adminnetworkpolicies": 1, "list nodes": 1}
    assert counts_by_kind(counts) == {"ns+": 1, "ns-": 1, "del-poll": 2, "pods+": 1, "ready": 2,
                                      "exec": 1, "patch": 1, "pol~": 1, "pol-": 1, "reads": 1}


def test_the_bench_module_imports_without_the_tests_directory(tmp_path):
    """The package must not need tests/ (it is not installed): the fake is loaded from a file."""
    r = subprocess.run([sys.executable, "-c", "import kubeovn_conformance.bench_kind, sys; "
                        "assert 'tests' not in sys.modules and not any("
                        "m.startswith('tests.') for m in sys.modules)"],
                       cwd=tmp_path, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "kubeovn_conformance.bench_kind", "--fake",
                        str(tmp_path / "absent.py")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "absent.py" in r.stderr
