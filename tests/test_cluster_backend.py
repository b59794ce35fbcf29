"""`pytest suites --backend cluster` against FakeApiServer holding Kube-OVN Subnets and the
kube-ovn-controller Deployment: pods land on `--subnet` (pod annotation), `--mode` is checked
against the Subnet (spec.vlan = underlay), the version comes from the controller's image, the
agent runs in `--agent-image`; `--backend kind` behaves as before. The fake enforces no policy,
so the suite here is one case without policies: every cell must connect, and does.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from kubeovn_conformance.backends.cluster import LOGICAL_SWITCH_ANNOTATION
from kubeovn_conformance.backends.cluster_preflight import subnet_mode, version_from_image
from tests.fake_apiserver import FakeApiServer, fake_controller, fake_node, fake_subnet

ROOT = Path(__file__).resolve().parent.parent
CONTROLLER_IMAGE = "docker.io/kubeovn/kube-ovn:v1.15.24"
MIRROR_IMAGE = "registry.example.internal/mirror/python:3.12-alpine"
SUBNETS = [fake_subnet("ovn-default"), fake_subnet("tenant-overlay", cidr="10.66.0.0/16"),
           fake_subnet("tenant-vlan", vlan="vlan100", cidr="172.17.0.0/16")]

SUITE = '''
from kubeovn_conformance import builders as b
from kubeovn_conformance.runner import Case, Step

GROUND = b.upstream_ground(namespaces=("x", "y"), pods=("a", "b"), ports=(8080,), protocols=("TCP",))
CASES = [Case("open", "none", GROUND, (Step("initial", lambda w: w),))]


def test_case(case, conformance, request):
    conformance.check(case, request.node)
'''


def fake(**kw: Any) -> FakeApiServer:
    kw.setdefault("preload", [*SUBNETS, fake_controller(CONTROLLER_IMAGE)])
    return FakeApiServer(nodes=[fake_node("n1"), fake_node("n2")], **kw)


def created_pods(api: FakeApiServer) -> list[dict[str, Any]]:
    """Every Pod body the fake accepts (the run deletes them at the end)."""
    seen: list[dict[str, Any]] = []
    create = api.create

    def spy(resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if resource == "pods":
            seen.append(copy.deepcopy(body))
        return create(resource, namespace, body)

    api.create = spy  # type: ignore[method-assign]
    return seen


def run_suite(tmp_path: Path, api: FakeApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    suites = tmp_path / "suites"
    suites.mkdir(exist_ok=True)
    (suites / "test_own.py").write_text(SUITE)
    kc = api.kubeconfig(tmp_path / "kc")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "kubeovn_conformance.pytest_plugin", "-p",
         "no:cacheprovider", "suites/test_own.py", "--kubeconfig", str(kc), "--run-id", "r",
         "--reports-dir", "reports", "--deadline", "1", "--probe-timeout", "0.5", "-rf", *args],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300)


def records(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    text = (tmp_path / "reports" / "r" / name).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(("mode", "subnet"), [("overlay", "tenant-overlay"), ("underlay", "tenant-vlan")])
def test_pods_land_on_the_subnet_and_the_run_passes(tmp_path: Path, mode: str, subnet: str) -> None:
    with fake() as api:
        pods = created_pods(api)
        r = run_suite(tmp_path, api, "--backend", "cluster", "--mode", mode, "--subnet", subnet,
                      "--agent-image", MIRROR_IMAGE)
        left = api.names("namespaces")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "1 passed" in out
    assert "Kube-OVN v1.15.24 (read from the kube-ovn-controller image)" in out
    assert len(pods) == 4, pods
    for pod in pods:
        assert pod["metadata"]["annotations"][LOGICAL_SWITCH_ANNOTATION] == subnet
        assert pod["spec"]["containers"][0]["image"] == MIRROR_IMAGE
    assert left == []  # the run's namespaces are gone
    # The version read from the cluster: in the test id, the records and JUnit.
    assert [(c["case"], c["outcome"]) for c in records(tmp_path, "cases.jsonl")] == [("open", "pass")]
    summary = json.loads((tmp_path / "reports" / "r" / "summary.json").read_text())
    assert (summary["kube_ovn_version"], summary["mode"], summary["backend"]) == ("v1.15.24", mode, "cluster")
    probes = records(tmp_path, "results.jsonl")
    assert len(probes) == 12 and all(p["observed"] == "connected" for p in probes)
    assert {(p["kube_ovn_version"], p["mode"], p["backend"]) for p in probes} == \
        {("v1.15.24", mode, "cluster")}
    names = [t.get("name") for t in ET.parse(tmp_path / "reports" / "r" / "junit.xml").iter("testcase")]
    assert names == [f"test_case[{mode}-open-v1.15.24]"]


@pytest.mark.parametrize(("mode", "subnet", "says"), [
    ("overlay", "tenant-vlan", "--mode overlay contradicts --subnet tenant-vlan: the Subnet has "
                               "spec.vlan, so it is underlay; use --mode underlay"),
    ("underlay", "ovn-default", "--mode underlay contradicts --subnet ovn-default: the Subnet has "
                                "no spec.vlan, so it is overlay; use --mode overlay"),
    ("overlay", "no-such", "--subnet no-such: no such Subnet (kubeovn.io/v1 subnets) in the cluster; "
                           "`kubectl get subnets` lists them"),
], ids=["overlay-on-vlan-subnet", "underlay-on-overlay-subnet", "missing-subnet"])
def test_a_contradicting_mode_or_a_missing_subnet_is_refused_in_one_line(
        tmp_path: Path, mode: str, subnet: str, says: str) -> None:
    with fake() as api:
        r = run_suite(tmp_path, api, "--backend", "cluster", "--mode", mode, "--subnet", subnet)
        writes = [q for q in api.requests if q[0] != "GET"]
    assert r.returncode == 4, r.stdout + r.stderr  # pytest's usage error
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == [f"ERROR: --backend cluster: {says}"], r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert writes == []  # refused before anything was created


def test_an_unreadable_version_is_one_line(tmp_path: Path) -> None:
    with fake(forbidden={"deployments"}) as api:
        r = run_suite(tmp_path, api, "--backend", "cluster")
    assert r.returncode == 4
    assert [line for line in r.stderr.splitlines() if line.strip()] == [
        "ERROR: --backend cluster: cannot read the Kube-OVN version from Deployment "
        "kube-system/kube-ovn-controller: 403 Forbidden; pass --kube-ovn-version"]
    with fake(preload=[fake_controller("docker.io/kubeovn/kube-ovn:latest")]) as api:
        r = run_suite(tmp_path, api, "--backend", "cluster")
    assert r.returncode == 4 and "image 'docker.io/kubeovn/kube-ovn:latest' has no version tag" in r.stderr


def test_a_given_version_is_not_read_and_xdist_workers_agree(tmp_path: Path) -> None:
    with fake(forbidden={"deployments"}) as api:  # reading it would fail: it is not read
        r = run_suite(tmp_path, api, "--backend", "cluster", "--kube-ovn-version", "v1.14.41",
                      "--subnet", "tenant-overlay")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert {p["kube_ovn_version"] for p in records(tmp_path, "results.jsonl")} == {"v1.14.41"}
    # Two workers: each reads the version itself, so their test ids match the controller's.
    with fake() as api:
        r = run_suite(tmp_path, api, "--backend", "cluster", "--run-id", "x2", "-n", "2")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "1 passed" in r.stdout
    assert "test_case[overlay-open-v1.15.24]" in r.stdout + r.stderr or "1 passed" in r.stdout
    probes = (tmp_path / "reports" / "x2" / "results.jsonl").read_text().splitlines()
    assert probes and {json.loads(p)["kube_ovn_version"] for p in probes} == {"v1.15.24"}


def test_backend_kind_is_as_before(tmp_path: Path) -> None:
    """No version read (the row's is given by make e2e), no subnet annotation, no preflight
    request at all: the first request is the run's own."""
    with fake(preload=[]) as api:
        pods = created_pods(api)
        r = run_suite(tmp_path, api, "--backend", "kind")
        paths = [q[1] for q in api.requests]
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "test_case[overlay-open-unknown] PASSED" in r.stdout or "1 passed" in r.stdout
    assert not any("deployments" in p or "subnets" in p for p in paths)
    assert pods and all("annotations" not in p["metadata"] for p in pods)
    assert {p["backend"] for p in records(tmp_path, "results.jsonl")} == {"kind"}
    assert {p["kube_ovn_version"] for p in records(tmp_path, "results.jsonl")} == {"unknown"}


def test_help_documents_every_option() -> None:
    r = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=ROOT, capture_output=True,
                       text=True, check=True, timeout=120)
    text = " ".join(r.stdout.split())
    assert "--backend={lab,kind,cluster}" in text
    for option in ("--subnet=NAME", "--agent-image=IMAGE", "--kube-ovn-version=KUBE_OVN_VERSION"):
        assert option in text
    assert "ovn.kubernetes.io/logical_switch" in text and "kube-ovn-controller image" in text


@pytest.mark.parametrize(("image", "version"), [
    ("docker.io/kubeovn/kube-ovn:v1.16.2", "v1.16.2"),
    ("kubeovn/kube-ovn:v1.12.35-debug", "v1.12.35"),
    ("registry:5000/kubeovn/kube-ovn:v1.13.15@sha256:" + "a" * 64, "v1.13.15"),
    ("registry:5000/kube-ovn", None),  # a port is not a tag
    ("kubeovn/kube-ovn@sha256:" + "a" * 64, None),
    ("kubeovn/kube-ovn:latest", None),
])
def test_version_from_image(image: str, version: str | None) -> None:
    assert version_from_image(image) == version


def test_subnet_mode_is_underlay_exactly_when_a_vlan_is_set() -> None:
    assert subnet_mode(fake_subnet("a", vlan="vlan0")) == "underlay"
    assert subnet_mode(fake_subnet("a")) == "overlay"
    assert subnet_mode({"spec": {"vlan": ""}}) == "overlay"


def test_no_kubeconfig_or_no_server_is_one_line(tmp_path: Path) -> None:
    from kubeovn_conformance.backends.cluster_preflight import PreflightError, preflight

    with pytest.raises(PreflightError) as missing:
        preflight(str(tmp_path / "none"), None, mode="overlay", subnet=None, version=None)
    assert str(missing.value).startswith(f"cannot load kubeconfig {tmp_path / 'none'}: ")
    with FakeApiServer() as api:  # a kubeconfig whose server has gone away
        kc = api.kubeconfig(tmp_path / "kc")
    with pytest.raises(PreflightError) as gone:
        preflight(str(kc), None, mode="overlay", subnet="s", version=None)
    assert str(gone.value) == \
        f"--subnet s: cannot reach the API server {api.url}: [Errno 111] Connection refused"
    for e in (missing.value, gone.value):
        assert "\n" not in str(e)
