"""What docker, kind and iptables do on a real machine, reproduced by fakes on PATH, and the
commands that follow: kind load's fallbacks (kind#3795), the raw PREROUTING accepts Docker >= 28
needs (idempotent, removed by cluster-down), install.sh's files in .cache/kind/<name>."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kubeovn_conformance import clusters as c

ROOT = Path(__file__).resolve().parent.parent
BASH = shutil.which("bash") or "/bin/bash"
FIXTURE = ROOT / "tests" / "fixtures" / "docker-network-kind.json"
IMAGE = "docker.io/kubeovn/kube-ovn:v1.16.2"


def _exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# kind load docker-image as it fails with Docker's containerd image store and a multi-arch
# image (kubernetes-sigs/kind#3795); image-archive fails the same way when the save is not
# limited to one platform.
FAKE_KIND = r"""#!/usr/bin/env bash
echo "kind $*" >> "$FAKE_LOG"
case "$*" in
  "load docker-image"*)
    echo 'ERROR: failed to load image: command "docker save -o /tmp/images.tar IMAGE" failed' >&2
    echo 'Command Output: Error response from daemon: unable to create manifests file:' \
      'NotFound: content digest sha256:0123: not found' >&2
    exit 1 ;;
  "load image-archive"*) cat >/dev/null; [ "${FAKE_ARCHIVE_OK:-0}" = 1 ] || exit 1 ;;
  "get nodes"*) printf 'kube-ovn-control-plane\nkube-ovn-worker\n' ;;
esac
"""
FAKE_DOCKER = r"""#!/usr/bin/env bash
echo "docker $*" >> "$FAKE_LOG"
case "$1" in
  save) echo "image bytes" ;;
  exec) cat >/dev/null ;;
esac
"""


def _load(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fake = tmp_path / "fake"
    _exe(fake / "kind", FAKE_KIND)
    _exe(fake / "docker", FAKE_DOCKER)
    log = tmp_path / "calls.log"
    e = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", FAKE_LOG=str(log), **env)
    r = subprocess.run([sys.executable, "-m", "kubeovn_conformance.clusters", "load-image", "--name",
                        "kube-ovn", "--arch", "amd64", IMAGE],
                       capture_output=True, text=True, env=e, cwd=ROOT, check=False)
    return r, log.read_text().splitlines()


def test_kind_load_falls_back_to_a_one_platform_image_archive(tmp_path):
    r, calls = _load(tmp_path, FAKE_ARCHIVE_OK="1")
    assert r.returncode == 0, r.stderr
    # The two sides of a pipe run at once: their log lines may come in either order.
    assert calls[0] == f"kind load docker-image --name kube-ovn {IMAGE}"
    assert sorted(calls[1:]) == sorted([
        f"docker save --platform linux/amd64 {IMAGE}",
        "kind load image-archive --name kube-ovn /dev/stdin",
    ])
    assert "(image-archive)" in r.stderr


def test_kind_load_falls_back_to_ctr_import_on_every_node(tmp_path):
    r, calls = _load(tmp_path)
    assert r.returncode == 0, r.stderr
    assert calls[3] == "kind get nodes --name kube-ovn"
    assert sorted(calls[4:]) == sorted([
        f"docker save --platform linux/amd64 {IMAGE}",
        "docker exec -i kube-ovn-control-plane ctr -n k8s.io images import -",
        f"docker save --platform linux/amd64 {IMAGE}",
        "docker exec -i kube-ovn-worker ctr -n k8s.io images import -",
    ])


def test_kind_load_that_cannot_work_is_one_line(tmp_path):
    fake = tmp_path / "fake"
    _exe(fake / "kind", FAKE_KIND)
    _exe(fake / "docker", "#!/usr/bin/env bash\necho \"docker $*\" >> \"$FAKE_LOG\"\nexit 1\n")
    e = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", FAKE_LOG=str(tmp_path / "l"))
    r = subprocess.run([sys.executable, "-m", "kubeovn_conformance.clusters", "load-image", IMAGE],
                       capture_output=True, text=True, env=e, cwd=ROOT, check=False)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1].startswith(f"error: cannot load {IMAGE} into node")
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ host firewall, Docker >= 28

# docker run --rm --privileged --network=host IMAGE bash -ec SCRIPT ...: run the script here,
# with an iptables that keeps its tables in a file (one rule a line, "table chain spec").
FAKE_RUN_DOCKER = r"""#!/usr/bin/env bash
echo "docker $*" >> "$FAKE_LOG"
if [ "$1" = run ]; then shift 5; exec "$@"; fi
"""
FAKE_IPTABLES = r"""#!/usr/bin/env bash
[ "$1" = -t ] || exit 2
table=$2; op=$3; chain=$4; shift 4
rule="$table $chain $*"
touch "$FAKE_TABLES"
case $op in
  -C) grep -qxF -- "$rule" "$FAKE_TABLES" ;;
  -I) { echo "$rule"; cat "$FAKE_TABLES"; } > "$FAKE_TABLES.new" && mv "$FAKE_TABLES.new" "$FAKE_TABLES" ;;
  -D) awk -v r="$rule" '!done && $0 == r { done = 1; next } { print }' "$FAKE_TABLES" > "$FAKE_TABLES.new" \
        && mv "$FAKE_TABLES.new" "$FAKE_TABLES" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def host(tmp_path):
    fake = tmp_path / "fake"
    _exe(fake / "docker", FAKE_RUN_DOCKER)
    _exe(fake / "iptables", FAKE_IPTABLES)
    _exe(fake / "kind", "#!/usr/bin/env bash\nexit 0\n")
    tables = tmp_path / "tables"
    tables.write_text("filter DOCKER-USER -j RETURN\n"
                      "raw PREROUTING -d 172.18.0.2/32 ! -i br-3f0a7c21b9d4 -j DROP\n")
    e = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", FAKE_LOG=str(tmp_path / "log"),
             FAKE_TABLES=str(tables), KOC_BIN_DIR=str(tmp_path / "nobin"))
    return {"env": e, "tables": tables}


def test_tagged_vlan_accepts_go_into_raw_prerouting_too_idempotently_and_cluster_down_removes_them(host):
    name = f"koc-rules-{os.getpid()}"
    work = ROOT / ".cache" / "kind" / name
    try:
        rules = work / "host-rules.json"
        r = subprocess.run([sys.executable, "-m", "kubeovn_conformance.clusters", "render-host-rules",
                            "underlay", "v1.16.2", "--network-json", str(FIXTURE), "--vlan-id", "100",
                            "-o", str(rules)], capture_output=True, text=True, cwd=ROOT, check=False)
        assert r.returncode == 0, r.stderr
        for _ in range(2):  # a second cluster-up must not stack duplicates
            r = subprocess.run([sys.executable, "-m", "kubeovn_conformance.clusters", "host-rules", "add",
                                "--file", str(rules)], capture_output=True, text=True, env=host["env"],
                               cwd=ROOT, check=False)
            assert r.returncode == 0, r.stderr
        lines = host["tables"].read_text().splitlines()
        ours = [x for x in lines if "10.200.0.0/24" in x]
        assert sorted(ours) == sorted([
            "filter DOCKER-USER -s 10.200.0.0/24 -d 172.18.0.0/16 -j ACCEPT",
            "filter DOCKER-USER -s 172.18.0.0/16 -d 10.200.0.0/24 -j ACCEPT",
            "raw PREROUTING -s 10.200.0.0/24 -d 172.18.0.0/16 -j ACCEPT",
            "raw PREROUTING -s 172.18.0.0/16 -d 10.200.0.0/24 -j ACCEPT",
        ])
        # Inserted before Docker's own drop, or the drop wins.
        assert lines.index("raw PREROUTING -s 10.200.0.0/24 -d 172.18.0.0/16 -j ACCEPT") < \
            lines.index("raw PREROUTING -d 172.18.0.2/32 ! -i br-3f0a7c21b9d4 -j DROP")
        r = subprocess.run([BASH, str(ROOT / "scripts" / "cluster-down"), "--name", name],
                           capture_output=True, text=True, env=host["env"], check=False)
        assert r.returncode == 0, r.stderr
        assert host["tables"].read_text().splitlines() == [
            "filter DOCKER-USER -j RETURN", "raw PREROUTING -d 172.18.0.2/32 ! -i br-3f0a7c21b9d4 -j DROP"]
        assert not work.exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_plan_runs_the_host_rules_the_dry_run_prints(tmp_path):
    m = c.load_matrix()
    o = c.Options(mode="underlay", version="v1.16.2", vlan_id=100, bin_dir=tmp_path)
    steps = c.plan(m, o, c.load_network_json(FIXTURE))
    argv = [s.argv for s in steps if "host-rules" in s.argv and s.argv[0] == "docker"]
    assert argv == [c.host_rules_argv(IMAGE, "add", "10.200.0.0/24", "172.18.0.0/16")]
    untagged = c.plan(m, c.Options(mode="underlay", version="v1.16.2", bin_dir=tmp_path),
                      c.load_network_json(FIXTURE))
    assert not any("host-rules" in s.argv for s in untagged)


# ------------------------------------------------------------------ install.sh's working directory

FAKE_WORLD = r"""#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$(basename "$0") $*" in
  "curl "*) out=""; while (($#)); do [ "$1" = -o ] && out=$2; shift; done
           printf '#!/usr/bin/env bash\nfor f in ovn.yaml kube-ovn.yaml kube-ovn-crd.yaml; do\n' > "$out"
           printf 'echo x > "$f"; done\n' >> "$out" ;;
esac
exit 0
"""


def test_install_sh_writes_its_manifests_into_the_cluster_directory(tmp_path):
    m = c.load_matrix()
    e = m.entry("v1.12.35")
    bin_dir = tmp_path / "toolbin"
    for tool, (ver, _, _) in c.tool_urls(m, e, c.host_arch()).items():
        _exe(c.tool_path(bin_dir, tool, ver), FAKE_WORLD)
    fake = tmp_path / "fakebin"
    for tool in ("docker", "curl"):
        _exe(fake / tool, FAKE_WORLD)
    name = f"koc-sh-{os.getpid()}"
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", KOC_BIN_DIR=str(bin_dir),
               MIN_FREE_MEM_GIB="0", FAKE_LOG=str(tmp_path / "log"))
    before = set(os.listdir(ROOT))
    try:
        r = subprocess.run([BASH, str(ROOT / "scripts" / "cluster-up"), "overlay", "v1.12.35",
                            "--name", name], capture_output=True, text=True, env=env, check=False)
        assert r.returncode == 0, r.stderr
        work = ROOT / ".cache" / "kind" / name
        assert {"ovn.yaml", "kube-ovn.yaml", "kube-ovn-crd.yaml"} <= set(os.listdir(work))
        assert set(os.listdir(ROOT)) == before, "install.sh wrote into the repository root"
    finally:
        shutil.rmtree(ROOT / ".cache" / "kind" / name, ignore_errors=True)
        for f in ("ovn.yaml", "kube-ovn.yaml", "kube-ovn-crd.yaml"):
            (ROOT / f).unlink(missing_ok=True)


def test_host_rules_record_is_json_with_what_cluster_down_needs(tmp_path):
    out = tmp_path / "r.json"
    assert c.main(["render-host-rules", "underlay", "v1.14.41", "--network-json", str(FIXTURE),
                   "--vlan-id", "7", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == {"image": "docker.io/kubeovn/kube-ovn:v1.14.41",
                                           "vlan_cidr": "10.200.0.0/24", "kind_subnet": "172.18.0.0/16"}
