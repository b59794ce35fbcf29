"""Offline checks of the kind backend's cluster definitions (kubeovn_conformance.clusters):
the version matrix, the kind configs, the Helm values / install.sh settings against the
recorded chart keys, the underlay objects against Kube-OVN's CRD schemas."""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from kubeovn_conformance import clusters as c

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "docker-network-kind.json"
CRD_DIR = Path("/work/shared/data/kube-ovn-crds")

MATRIX = c.load_matrix()
KEYS = c.load_chart_keys()
NET = c.load_network_json(FIXTURE)
VERSIONS = list(MATRIX.versions)
HELM_VERSIONS = [v for v, e in MATRIX.versions.items() if e.install == "helm"]
SH_VERSIONS = [v for v, e in MATRIX.versions.items() if e.install == "install.sh"]


# ------------------------------------------------------------------ matrix


def test_matrix_has_the_newest_patch_of_each_maintained_line():
    assert set(VERSIONS) == {"v1.12.35", "v1.13.15", "v1.14.41", "v1.15.24", "v1.16.2"}
    assert MATRIX.default == "v1.16.2"
    assert {e.profile for e in MATRIX.versions.values()} == {"v1.12", "v1.13", "v1.14", "v1.15", "v1.16"}
    for v, e in MATRIX.versions.items():
        assert e.profile == e.line, v
        assert e.chart_version == v  # chart versions carry the leading v (>= v1.12.6)
        assert e.image == f"docker.io/kubeovn/kube-ovn:{v}"


@pytest.mark.parametrize("version", VERSIONS)
def test_node_image_pinned_by_digest_and_kubectl_matches(version):
    e = MATRIX.entry(version)
    assert "@sha256:" in e.node_image
    assert e.kubectl == e.k8s_version  # no client/server skew


def test_kind_versions_follow_kube_ovn_ci():
    # kube-ovn-facts.md: the kind each release line's own CI uses.
    want = {
        "v1.12": "v0.27.0",
        "v1.13": "v0.29.0",
        "v1.14": "v0.29.0",
        "v1.15": "v0.31.0",
        "v1.16": "v0.31.0",
    }
    assert {e.line: e.kind for e in MATRIX.versions.values()} == want


def test_unknown_version_is_one_line_listing_known():
    with pytest.raises(c.ClusterError) as err:
        MATRIX.entry("v1.99.0")
    msg = str(err.value)
    assert "\n" not in msg and "v1.99.0" in msg
    for v in VERSIONS:
        assert v in msg


def test_unknown_mode_is_rejected():
    with pytest.raises(c.ClusterError, match="overlay, underlay"):
        c.check_mode("bgp")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda d: d["versions"]["v1.16.2"].pop("node_image"), "missing node_image"),
        (lambda d: d["versions"]["v1.16.2"].update(install="kubectl"), "install must be"),
        (lambda d: d.update(default="v2.0.0"), "default"),
        (lambda d: d["versions"]["v1.16.2"].update(nodeimage="x"), "unknown keys"),
    ],
)
def test_matrix_validation_catches_mistakes(tmp_path, edit, fragment):
    data = yaml.safe_load(c.MATRIX_FILE.read_text())
    edit(data)
    bad = tmp_path / "versions.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(c.ClusterError, match=fragment):
        c.load_matrix(bad)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_tool_urls_have_published_checksum_files(arch):
    for e in MATRIX.versions.values():
        tools = c.tool_urls(MATRIX, e, arch)
        assert tools["kind"][0] == e.kind
        _, kind_url, kind_sum = tools["kind"]
        assert kind_url == f"https://kind.sigs.k8s.io/dl/{e.kind}/kind-linux-{arch}"
        assert kind_sum == kind_url + ".sha256sum"
        _, kubectl_url, kubectl_sum = tools["kubectl"]
        assert kubectl_url == f"https://dl.k8s.io/release/{e.kubectl}/bin/linux/{arch}/kubectl"
        assert kubectl_sum == kubectl_url + ".sha256"
        helm_ver, helm_url, helm_sum = tools["helm"]
        assert helm_url.endswith(f"helm-{helm_ver}-linux-{arch}.tar.gz")
        assert helm_sum == helm_url + ".sha256sum"


def test_matrix_json_is_a_github_matrix():
    rows = json.loads(_cli_stdout(["matrix"]))
    assert set(rows) == {"include"}  # any other top-level key would be a matrix dimension
    assert {(r["version"], r["mode"]) for r in rows["include"]} == {(v, m) for v in VERSIONS for m in c.MODES}


def _cli_stdout(argv, capsys=None):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert c.main(argv) == 0
    return buf.getvalue()


# ------------------------------------------------------------------ docker network facts


def test_network_facts_from_fixture():
    assert NET.subnet == ipaddress.IPv4Network("172.18.0.0/16")  # IPv4 even though IPv6 is first
    assert str(NET.gateway) == "172.18.0.1"
    assert NET.container_ips == ("172.18.0.2", "172.18.0.3", "172.18.0.10")  # numeric order
    assert NET.bridge == "br-3f0a7c21b9d4"


def test_network_without_ipv4_is_a_clear_error():
    data = json.loads(FIXTURE.read_text())
    data[0]["IPAM"]["Config"] = [cfg for cfg in data[0]["IPAM"]["Config"] if ":" in cfg["Subnet"]]
    with pytest.raises(c.ClusterError, match="no IPv4 subnet"):
        c.parse_docker_network(data)


# ------------------------------------------------------------------ kind config


@pytest.mark.parametrize("mode", c.MODES)
@pytest.mark.parametrize("version", VERSIONS)
def test_kind_config(version, mode):
    e = MATRIX.entry(version)
    out = _cli_stdout(["render-kind", mode, version])
    cfg = yaml.safe_load(out)
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    net = cfg["networking"]
    assert net["disableDefaultCNI"] is True
    assert net["kubeProxyMode"] == "ipvs"
    assert net["podSubnet"] == "10.16.0.0/16"
    assert net["serviceSubnet"] == "10.96.0.0/12"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker"]
    assert {n["image"] for n in cfg["nodes"]} == {e.node_image}
    pod, svc = (ipaddress.IPv4Network(net[k]) for k in ("podSubnet", "serviceSubnet"))
    join = ipaddress.IPv4Network(c.JOIN_SUBNET)
    for a, b in [
        (pod, svc),
        (pod, NET.subnet),
        (svc, NET.subnet),
        (join, pod),
        (join, svc),
        (join, NET.subnet),
    ]:
        assert not a.overlaps(b), (a, b)


# ------------------------------------------------------------------ helm values


def unknown_keys(version: str, values: dict) -> set[str]:
    known = KEYS["helm"][MATRIX.entry(version).line]
    return c.flatten_keys(values) - known


@pytest.mark.parametrize("mode", c.MODES)
@pytest.mark.parametrize("version", HELM_VERSIONS)
def test_values_use_only_keys_of_that_chart(version, mode):
    args = ["render-values", mode, version, "--network-json", str(FIXTURE)]
    values = yaml.safe_load(_cli_stdout(args))
    assert unknown_keys(version, values) == set()
    assert values["func"]["ENABLE_LB"] is True
    assert values["func"]["ENABLE_NP"] is True
    has_np_enforcement = MATRIX.entry(version).line in ("v1.15", "v1.16")
    assert ("NP_ENFORCEMENT" in values["func"]) == has_np_enforcement
    if mode == "overlay":
        assert values["networking"]["NETWORK_TYPE"] == "geneve"
        assert values["ipv4"]["POD_CIDR"] == "10.16.0.0/16"


def test_key_check_catches_a_planted_key():
    values = c.render_values("overlay", MATRIX.entry("v1.14.41"))
    values["func"]["NP_ENFORCEMENT"] = "standard"  # 1.15+ only
    values["networking"]["vlan"] = {"VLAN_NIC": "eth0"}  # install.sh name, not a chart key
    assert unknown_keys("v1.14.41", values) == {"func.NP_ENFORCEMENT", "networking.vlan.VLAN_NIC"}


@pytest.mark.parametrize("version", HELM_VERSIONS)
def test_underlay_values_from_docker_network(version):
    v = c.render_values("underlay", MATRIX.entry(version), NET)
    assert v["networking"]["NETWORK_TYPE"] == "vlan"
    assert v["networking"]["EXCLUDE_IPS"] == "172.18.0.2,172.18.0.3,172.18.0.10"
    assert v["networking"]["vlan"] == {
        "PROVIDER_NAME": "provider",
        "VLAN_INTERFACE_NAME": "eth0",
        "VLAN_NAME": "ovn-vlan",
        "VLAN_ID": "0",
    }
    assert v["ipv4"]["POD_CIDR"] == "172.18.0.0/16"
    assert v["ipv4"]["POD_GATEWAY"] == "172.18.0.1"
    assert v["ipv4"]["SVC_CIDR"] == "10.96.0.0/12"


def test_underlay_without_network_facts_is_an_error():
    with pytest.raises(c.ClusterError, match="network"):
        c.render_values("underlay", MATRIX.entry("v1.16.2"), None)


def test_tagged_vlan_gets_its_own_subnet():
    v = c.render_values("underlay", MATRIX.entry("v1.16.2"), NET, vlan_id=100)
    assert v["networking"]["vlan"]["VLAN_ID"] == "100"
    assert v["ipv4"]["POD_CIDR"] == "10.200.0.0/24"
    assert v["ipv4"]["POD_GATEWAY"] == "10.200.0.1"
    assert v["networking"]["EXCLUDE_IPS"] == ""


@pytest.mark.parametrize(
    ("vid", "cidr", "fragment"),
    [
        (5000, c.DEFAULT_VLAN_CIDR, "out of range"),
        (100, "172.18.5.0/24", "overlaps"),
        (100, "10.16.4.0/24", "overlaps"),
        (100, "not-a-cidr", "bad --vlan-cidr"),
    ],
)
def test_bad_tagged_vlan_options(vid, cidr, fragment):
    with pytest.raises(c.ClusterError, match=fragment):
        c.underlay_addressing(NET, vid, cidr)


# ------------------------------------------------------------------ install.sh


SAMPLE_INSTALL_SH = """#!/usr/bin/env bash
set -euo pipefail
REGISTRY="docker.io/kubeovn"
VERSION="v1.12.35"
ENABLE_VLAN=${ENABLE_VLAN:-false}
POD_CIDR="10.16.0.0/16"                # Do NOT overlap with NODE/SVC/JOIN CIDR
POD_GATEWAY="10.16.0.1"
EXCLUDE_IPS=""                         # EXCLUDE_IPS for default subnet
VLAN_ID="100"
if [ "$DUAL_STACK" = "true" ]; then
  POD_CIDR="10.16.0.0/16,fd00:10:16::/112"
  POD_GATEWAY="10.16.0.1,fd00:10:16::1"
fi
"""


@pytest.mark.parametrize("version", SH_VERSIONS)
def test_install_sh_settings_use_known_names(version):
    e = MATRIX.entry(version)
    known = KEYS["install_sh"][e.line]
    for mode in c.MODES:
        s = c.render_install_sh_settings(mode, e, NET)
        assert set(s["assignments"]) <= known["assignments"]
        assert set(s["env"]) <= known["env"]
    s = c.render_install_sh_settings("underlay", e, NET)
    assert s["assignments"] == {
        "POD_CIDR": "172.18.0.0/16",
        "POD_GATEWAY": "172.18.0.1",
        "EXCLUDE_IPS": "172.18.0.2,172.18.0.3,172.18.0.10",
        "VLAN_ID": "0",
    }
    assert s["env"] == {"ENABLE_LB": "true", "ENABLE_NP": "true", "ENABLE_VLAN": "true", "VLAN_NIC": "eth0"}


def test_install_sh_patch_rewrites_every_assignment():
    s = c.render_install_sh_settings("underlay", MATRIX.entry("v1.12.35"), NET)
    out = c.patch_install_sh(SAMPLE_INSTALL_SH, s["assignments"])
    assert 'POD_CIDR="172.18.0.0/16"\n' in out
    assert '  POD_CIDR="172.18.0.0/16"\n' in out  # indented (dual-stack branch) too, as upstream
    assert 'EXCLUDE_IPS="172.18.0.2,172.18.0.3,172.18.0.10"\n' in out
    assert 'VLAN_ID="0"\n' in out
    assert "10.16.0" not in out


def test_install_sh_patch_moves_kubectl_ko_out_of_usr_local_bin():
    # install.sh writes the plugin to /usr/local/bin, which a CI user cannot write.
    text = SAMPLE_INSTALL_SH + "mkdir -p /usr/local/bin\ncat <<\\EOF > /usr/local/bin/kubectl-ko\n"
    out = c.patch_install_sh(text, {}, "/repo/.bin/kubectl-ko-v1.12.35/kubectl-ko")
    assert "> /repo/.bin/kubectl-ko-v1.12.35/kubectl-ko\n" in out
    assert "/usr/local/bin/kubectl-ko" not in out


def test_install_sh_patch_refuses_a_changed_script():
    with pytest.raises(c.ClusterError, match="VLAN_ID"):
        c.patch_install_sh("POD_CIDR=x\n", {"POD_CIDR": "a", "VLAN_ID": "0"})


# ------------------------------------------------------------------ CRD schemas


def _strict(schema: dict) -> dict:
    """Like `kubectl --validate=strict`: unknown fields are errors where the CRD lists fields."""
    schema = copy.deepcopy(schema)

    def walk(s):
        if isinstance(s, dict):
            if (
                "properties" in s
                and "additionalProperties" not in s
                and not s.get("x-kubernetes-preserve-unknown-fields")
            ):
                s["additionalProperties"] = False
            for v in s.values():
                walk(v)
        elif isinstance(s, list):
            for v in s:
                walk(v)

    # The root always has apiVersion, kind and metadata (some CRDs do not list them).
    for v in schema.get("properties", {}).values():
        walk(v)
    schema.setdefault("properties", {}).update(
        {
            k: schema["properties"].get(k, {"type": t})
            for k, t in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object"))
        }
    )
    schema["additionalProperties"] = False
    return schema


def crd_schemas(version: str) -> dict[str, dict]:
    path = CRD_DIR / f"{version}.yaml"
    if not path.exists():
        pytest.skip(f"no CRD data for {version} at {path}")
    return _load_crd_schemas(path)


@functools.cache
def _load_crd_schemas(path: Path) -> dict[str, dict]:
    out = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            v1 = next(v for v in doc["spec"]["versions"] if v["name"] == "v1")
            out[doc["spec"]["names"]["kind"]] = _strict(v1["schema"]["openAPIV3Schema"])
    return out


@pytest.mark.parametrize("vlan_id", [0, 100])
@pytest.mark.parametrize("version", VERSIONS)
def test_underlay_objects_validate_against_crds(version, vlan_id):
    schemas = crd_schemas(version)
    objs = c.underlay_objects(MATRIX.entry(version), NET, vlan_id=vlan_id)
    assert [o["kind"] for o in objs] == ["ProviderNetwork", "Vlan", "Subnet"]
    for obj in objs:
        jsonschema.validate(obj, schemas[obj["kind"]])
    pn, vlan, subnet = objs
    assert len(pn["metadata"]["name"]) <= 12  # ProviderNetwork names: 12 characters at most
    assert vlan["spec"] == {"id": vlan_id, "provider": pn["metadata"]["name"]}
    assert subnet["spec"]["vlan"] == vlan["metadata"]["name"]


@pytest.mark.parametrize("version", VERSIONS)
def test_crd_validation_catches_planted_errors(version):
    schemas = crd_schemas(version)
    vlan = c.underlay_objects(MATRIX.entry(version), NET, vlan_id=100)[1]
    bad_id = copy.deepcopy(vlan)
    bad_id["spec"]["id"] = "100"  # a string (the Helm value is one; the CRD wants an integer)
    typo = copy.deepcopy(vlan)
    typo["spec"]["provder"] = typo["spec"].pop("provider")
    for bad in (bad_id, typo):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schemas["Vlan"])
    # The range 0-4095 is in the schema of some versions only (v1.16.2 leaves it to the
    # webhook); our own check covers every version.
    id_schema = schemas["Vlan"]["properties"]["spec"]["properties"]["id"]
    if "maximum" in id_schema:
        too_big = copy.deepcopy(vlan)
        too_big["spec"]["id"] = 5000
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(too_big, schemas["Vlan"])


# ------------------------------------------------------------------ diagnostics helper


def test_failing_probes_dedups_skips_bad_lines(tmp_path):
    rec = {"client": "a/p1", "target": "b/svc/web", "port": 80, "protocol": "TCP", "outcome": "fail"}
    lines = [
        json.dumps(rec),
        json.dumps(rec),
        "not json",
        json.dumps({**rec, "outcome": "pass", "port": 81}),
        json.dumps({**rec, "target": "b/p2", "port": 8000, "protocol": "UDP", "outcome": "infra-error"}),
        json.dumps({"outcome": "fail"}),
    ]
    f = tmp_path / "results.jsonl"
    f.write_text("\n".join(lines) + "\n")
    assert c.failing_probes(f) == [("a/p1", "b/svc/web", "80", "tcp"), ("a/p1", "b/p2", "8000", "udp")]
    assert len(c.failing_probes(f, limit=1)) == 1
