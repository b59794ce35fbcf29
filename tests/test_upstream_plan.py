"""`make cluster-plan` for every version x mode x {VLAN 0, VLAN 100}, each step matched to
clusters/README.md's table of sources; a step without an upstream source and without a written
reason fails. Where a local mirror of kubeovn/kube-ovn exists, the facts we claim to share with
upstream are re-read at each tag."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from kubeovn_conformance import clusters as c

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "docker-network-kind.json"
MIRROR = Path(os.environ.get("KOC_UPSTREAM_MIRROR", "/work/.mirror/kubeovn+kube-ovn/repo"))
MATRIX = c.load_matrix()
PLANS = [(v, m, vid) for v in MATRIX.versions for m in c.MODES
         for vid in ((0, 100) if m == "underlay" else (0,))]


def step_key(argv: list[str]) -> str:
    line = " ".join(argv)
    rules = [
        ("fetch-tool", " fetch-tool "), ("render-kind", " render-kind "),
        ("kind-create", "kind create cluster"),
        ("label-master", "kube-ovn/role=master"), ("untaint", " taint nodes "),
        ("probe-image", c.PROBE_IMAGE), ("docker-pull", "docker pull "), ("load-image", " load-image "),
        ("policy-api-crds", "network-policy-api"), ("network-facts", " network-facts "),
        ("bridge-setup", " bridge-setup "),
        ("host-rules", "host-rules"), ("helm-install", " render-values "), ("helm-install", "helm upgrade"),
        ("install-sh", "install"), ("waits", " wait "), ("waits", " rollout status "),
        ("record", "cluster-record"),
    ]
    for key, needle in rules:
        if needle in f" {line} ":
            return key
    raise AssertionError(f"no table row matches step: {line[:120]}")


def table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "clusters" / "README.md").read_text()
    rows = {}
    for line in text[text.index("## Where each cluster-up step comes from"):].splitlines():
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("step key", "---"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


@pytest.mark.parametrize(("version", "mode", "vid"), PLANS, ids=str)
def test_every_step_has_an_upstream_source_or_a_reason(version, mode, vid, tmp_path):
    o = c.Options(mode=mode, version=version, vlan_id=vid, bin_dir=tmp_path)
    net = c.load_network_json(FIXTURE) if mode == "underlay" else None
    steps = c.tool_steps(MATRIX, MATRIX.entry(version), "amd64", tmp_path) + c.plan(MATRIX, o, net)
    rows = table()
    keys = [step_key(s.argv) for s in steps]
    for key in keys:
        assert key in rows, f"step {key} has no row in clusters/README.md"
        upstream, reason = rows[key]
        assert upstream not in ("", "—") or len(reason) > 20, f"{key}: differs from upstream without a reason"
    if vid:
        assert "host-rules" in keys
    assert keys.index("load-image") < keys.index("helm-install" if MATRIX.entry(version).install == "helm"
                                                 else "install-sh")


def test_a_step_without_a_row_fails():
    with pytest.raises(AssertionError, match="no table row"):
        step_key(["frobnicate", "--everything"])


# ------------------------------------------------------------------ against the mirror

needs_mirror = pytest.mark.skipif(not (MIRROR / "HEAD").exists(), reason=f"no kube-ovn mirror at {MIRROR}")


def show(tag: str, path: str) -> str:
    r = subprocess.run(["git", "-C", str(MIRROR), "show", f"{tag}:{path}"], capture_output=True, text=True,
                       check=False)
    return r.stdout if r.returncode == 0 else ""


def kind_mk(tag: str) -> str:
    return show(tag, "makefiles/kind.mk") or show(tag, "kind.mk") or show(tag, "Makefile")


def upstream_k8s(tag: str) -> str:
    m = re.search(r"^K8S_VERSION \?= (v[\d.]+)", kind_mk(tag), re.M)
    if m:
        return m.group(1)
    m = re.search(r'set k8s_version = "(v[\d.]+)"', show(tag, "yamls/kind.yaml.j2"))
    assert m, tag
    return m.group(1)


@needs_mirror
@pytest.mark.parametrize("version", list(MATRIX.versions))
def test_node_image_is_upstreams(version):
    assert MATRIX.entry(version).k8s_version == upstream_k8s(version)


@needs_mirror
@pytest.mark.parametrize("version", list(MATRIX.versions))
def test_kind_config_carries_upstreams_kubeadm_patches(version):
    j2 = show(version, "yamls/kind.yaml.j2")
    cfg = c.render_kind_config(MATRIX.entry(version))
    patches = "".join(cfg["kubeadmConfigPatches"] + cfg["nodes"][0]["kubeadmConfigPatches"])
    assert 'dataDir: "/tmp/lib/etcd"' in j2 and "dataDir: /tmp/lib/etcd" in patches
    assert 'node-cidr-mask-size-ipv4: "24"' in j2 and 'node-cidr-mask-size-ipv4: "24"' in patches
    plugin = "enable-admission-plugins: OwnerReferencesPermissionEnforcement"
    assert (plugin in j2) == (plugin in patches)
    assert all(n["labels"] == {"type": "kind"} for n in cfg["nodes"]) and "type: kind" in j2


@needs_mirror
@pytest.mark.parametrize("version", list(MATRIX.versions))
def test_docker_rules_go_into_raw_prerouting_upstream_too(version):
    text = show(version, "Makefile")
    body = text[text.index("define add_docker_iptables_rule"):]
    body = body[:body.index("endef")]
    assert "-t filter -C DOCKER-USER" in body and "-t raw -C PREROUTING" in body
    assert "filter:DOCKER-USER raw:PREROUTING" in c.HOST_RULES_SCRIPT


@needs_mirror
@pytest.mark.parametrize("version", ["v1.15.24", "v1.16.2"])
def test_kind_load_fallbacks_are_upstreams(version):
    mk = kind_mk(version)
    assert "kind load image-archive" in mk and "ctr -n k8s.io images import" in mk


def _effective(tag: str, var: str, env: dict[str, str]) -> str:
    """Run install.sh's settings block (up to its first function) and print a variable."""
    script = show(tag, "dist/images/install.sh")
    head = script[:script.index("\n# hybrid dpdk")] if "\n# hybrid dpdk" in script else \
        script[:script.index("\nfunction ")]
    r = subprocess.run(["bash", "-c", head.replace("set -euo pipefail", "") + f'\nprintf %s "${var}"'],
                       capture_output=True, text=True, env={"PATH": os.environ["PATH"], **env}, check=False)
    return r.stdout


@needs_mirror
@pytest.mark.parametrize("version", ["v1.13.15", "v1.14.41", "v1.15.24", "v1.16.2"])
def test_eip_snat_matches_install_sh_with_vlan(version):
    """install.sh assigns ENABLE_EIP_SNAT=true first, so its VLAN branch's ${...:-false} never
    applies: underlay through install.sh runs with true, which is what the chart keeps."""
    assert _effective(version, "ENABLE_EIP_SNAT", {"ENABLE_VLAN": "true", "VLAN_NIC": "eth0"}) == "true"
    chart = yaml.safe_load(show(version, "charts/kube-ovn/values.yaml"))
    assert chart["networking"]["ENABLE_EIP_SNAT"] is True
    values = c.render_values("underlay", MATRIX.entry(version), c.load_network_json(FIXTURE))
    assert "ENABLE_EIP_SNAT" not in values["networking"]  # the chart default: true, as install.sh


NPAPI_MIRROR = Path(os.environ.get("KOC_NPAPI_MIRROR",
                                   "/work/.mirror/kubernetes-sigs+network-policy-api/repo"))


def _go_mod_npapi(tag: str) -> str | None:
    m = re.search(r"sigs\.k8s\.io/network-policy-api (\S+)", show(tag, "go.mod"))
    return m.group(1) if m else None


@needs_mirror
@pytest.mark.parametrize("version", list(MATRIX.versions))
def test_policy_api_follows_go_mod_and_the_chart(version):
    """Cluster-scoped policies are on exactly where the tag's controller is built against
    network-policy-api (go.mod) and its chart has func.ENABLE_ANP; our CRD refs are go.mod's
    version (a pseudo-version's commit), or the tag's own NETWORK_POLICY_API_VERSION."""
    entry = MATRIX.entry(version)
    module = _go_mod_npapi(version)
    assert (entry.policy_api is not None) == (module is not None)
    if module is None:
        return
    assert entry.policy_api.module == module
    makefile = show(version, "Makefile")
    pinned = re.search(r"^NETWORK_POLICY_API_VERSION = (\S+)", makefile, re.M)
    for plural, ref in entry.policy_api.crds:
        assert ref in (module, module.rsplit("-", 1)[-1], pinned and pinned.group(1)) or \
            ref.startswith(module.rsplit("-", 1)[-1]), (plural, ref)
        assert plural in makefile.lower().replace("_", "")  or plural[:-3] in makefile.lower()
    if entry.install == "helm":
        chart = yaml.safe_load(show(version, "charts/kube-ovn/values.yaml"))
        assert chart["func"]["ENABLE_ANP"] is False  # off by default: we turn it on
        assert c.render_values("overlay", entry)["func"]["ENABLE_ANP"] is True


@pytest.mark.skipif(not (NPAPI_MIRROR / "HEAD").exists(),
                    reason=f"no network-policy-api mirror at {NPAPI_MIRROR}")
@pytest.mark.parametrize("line", sorted({e.line for e in MATRIX.versions.values() if e.policy_api}))
def test_policy_api_crds_exist_at_their_refs(line):
    entry = next(e for e in MATRIX.versions.values() if e.line == line)
    for (plural, ref), url in zip(entry.policy_api.crds, entry.policy_api.urls(), strict=True):
        path = url.split(f"/{ref}/", 1)[1]
        crd = subprocess.run(["git", "-C", str(NPAPI_MIRROR), "show", f"{ref}:{path}"],
                             capture_output=True, text=True, check=False)
        assert crd.returncode == 0, f"{url}: {crd.stderr.strip()}"
        assert f"plural: {plural}" in crd.stdout


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in tree.items():
        out |= _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}"}
    return out


@needs_mirror
@pytest.mark.parametrize("version", [v for v, e in MATRIX.versions.items() if e.install == "helm"])
def test_chart_keys_are_leaves_of_values_yaml_at_the_tag_and_marked_verified(version):
    """clusters/chart-keys.yaml says `verified` for a line only if every key it lists is a leaf
    of charts/kube-ovn/values.yaml at the matrix's tag of that line."""
    raw = yaml.safe_load((ROOT / "clusters" / "chart-keys.yaml").read_text())
    line = raw["helm"][version.rsplit(".", 1)[0]]
    have = _leaves(yaml.safe_load(show(version, "charts/kube-ovn/values.yaml")))
    assert sorted(set(line["keys"]) - have) == []
    assert line["status"] == "verified", line["source"]
