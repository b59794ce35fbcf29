"""The lab on OVN 25.03 from a Debian 13 root (`--lab-ovn`): the root build and its cache,
the mounts of a lab's view of it (and that none outlive the lab), the OVN version in records
and reports, and where NetworkPolicy ACLs go (tier 2 where OVN has tiers, 0 where not).

The pure parts run everywhere; the root and the lab need root, debootstrap and the Debian
archive, and are skipped with the reason where those are missing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from kubeovn_conformance.backends.lab import mounts, ovnroot
from kubeovn_conformance.backends.lab.backend import LabBackend
from kubeovn_conformance.backends.lab.daemons import Lab, LabError, netns_list
from kubeovn_conformance.backends.lab.ovnruntime import (
    DEFAULT_OVN,
    OvnRuntime,
    parse_version,
    schema_capabilities,
)
from kubeovn_conformance.backends.lab.profile import DEFAULT, get_profile
from kubeovn_conformance.backends.lab.sync import in_tier, plan_commands
from kubeovn_conformance.backends.lab.translate import desired_state
from kubeovn_conformance.model import (
    ContainerPort,
    LabelSelector,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Rule,
    Scenario,
)
from kubeovn_conformance.report import diff
from kubeovn_conformance.report import main as report_main
from kubeovn_conformance.report.records import load_run
from kubeovn_conformance.results import RunInfo

sel = LabelSelector.of
PODS = (Pod("x", "a", (("app", "a"),), (ContainerPort(8000),), "10.16.0.10"),
        Pod("y", "b", (("app", "b"),), (), "10.16.0.11"))
PORTS = {p.key: p.key.replace("/", ".") for p in PODS}
POLICY = NetworkPolicy("x", "allow-b", sel({"app": "a"}), ingress=(Rule(
    (Peer(namespace_selector=sel({})),), (PolicyPort("TCP", 8000),)),), egress=(Rule(),),
    policy_types=("Ingress", "Egress"))

# --------------------------------------------------------------------------- pure


def test_mirror_comes_from_apt_sources_of_the_host_suite(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOCL_DEBIAN_MIRROR", raising=False)
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "a-security.sources").write_text(
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n")
    (d / "b.sources").write_text(
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n")
    (d / "c.list.disabled").write_text("deb http://disabled.example/debian bookworm main\n")
    paths = (tmp_path / "sources.list", d)
    assert ovnroot.debian_mirror(paths, "bookworm", "debian") == "http://archive.example/debian"
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://oneline.example/debian bookworm main\n")
    assert ovnroot.debian_mirror(paths, "bookworm", "debian") == "http://oneline.example/debian"
    with pytest.raises(ovnroot.RootUnavailable, match="no Debian archive for suite trixie"):
        ovnroot.debian_mirror(paths, "trixie", "debian")
    # Ubuntu's archive has no trixie: its apt sources are no answer.
    with pytest.raises(ovnroot.RootUnavailable, match=r"no Debian archive \(ID=ubuntu\)"):
        ovnroot.debian_mirror(paths, "bookworm", "ubuntu")
    monkeypatch.setenv("KOCL_DEBIAN_MIRROR", "http://override.example/debian")
    assert ovnroot.debian_mirror(paths, "trixie", "ubuntu") == "http://override.example/debian"


def test_mountinfo_is_read_deepest_first_with_escapes(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw shared:1 - ext4 /dev/vda rw\n"
        "90 22 8:1 /x /run/l/.views/a rw - ext4 /dev/vda ro\n"
        "91 90 0:5 / /run/l/.views/a/proc rw - proc proc rw\n"
        "92 90 0:6 / /run/l/.views/a/run/l/a\\040b rw - tmpfs t rw\n"
        "93 22 0:6 / /run/l/.views/ab rw - tmpfs t rw\n")
    assert mounts.mounts_under("/run/l/.views/a", info) == [
        "/run/l/.views/a/run/l/a b", "/run/l/.views/a/proc", "/run/l/.views/a"]
    assert mounts.mounts_under("/run/l/.views/zz", info) == []


def test_version_and_capabilities_are_read_from_nbctl_and_the_schema() -> None:
    assert parse_version("ovn-nbctl 25.03.0\nOpen vSwitch Library 3.5.0\nDB Schema 7.11.0\n") \
        == ("25.03.0", "3.5.0")
    with pytest.raises(LabError, match="cannot read the OVN version"):
        parse_version("bash: ovn-nbctl: not found")
    tiered = {"tables": {"ACL": {"columns": {
        "tier": {"type": {"key": {"type": "integer"}}},
        "action": {"type": {"key": {"type": "string", "enum": ["set", ["allow", "drop", "pass"]]}}}}}}}
    assert schema_capabilities(json.dumps(tiered)) == (True, True)
    del tiered["tables"]["ACL"]["columns"]["tier"]
    assert schema_capabilities(json.dumps(tiered)) == (False, True)
    host = Path("/usr/share/ovn/ovn-nb.ovsschema")
    if host.exists() and shutil.which("ovn-nbctl"):
        info = OvnRuntime().info()
        # OVN 23.06 added ACL.tier and `pass`; the host's answer must agree with its version.
        newer = tuple(map(int, info.ovn.split(".")[:2])) >= (23, 6)
        assert (info.acl_tiers, info.acl_pass) == (newer, newer)


def _tier_of(profile: str, acl_tiers: bool, tmp: Path) -> int:
    """The tier the lab backend gives NetworkPolicy ACLs (schema with or without ACL.tier)."""
    schema = tmp / f"nb-{acl_tiers}.ovsschema"
    columns = {"tier": {"type": "integer"}} if acl_tiers else {}
    schema.write_text(json.dumps({"tables": {"ACL": {"columns": columns}}}))
    return LabBackend(profile=get_profile(profile), nb_schema=schema)._netpol_tier()


def test_policy_acls_go_in_tier_2_only_where_ovn_has_tiers(tmp_path: Path) -> None:
    # Kube-OVN: NetpolACLTier = 2 (pkg/util/const.go v1.13.0:161, v1.16.2:201) on every
    # NetworkPolicy ACL (pkg/ovs/ovn-nb-acl.go v1.16.2:112,154,216,251); v1.12.35 builds its
    # ACLs without a tier (ovn-nb-acl.go:803 newACL has no tier parameter).
    assert _tier_of("v1.16.2", True, tmp_path) == 2 and _tier_of("v1.13.0", True, tmp_path) == 2
    assert _tier_of("v1.12.35", True, tmp_path) == 0
    assert _tier_of("v1.16.2", False, tmp_path) == 0  # OVN without tiers: tier 0
    scenario = Scenario((), PODS, (), (POLICY,))
    tiered = in_tier(desired_state(scenario, PORTS, DEFAULT), 2)
    assert {a.tier for acls in tiered.acls.values() for a in acls} == {2}


def test_tiered_acls_are_created_and_deleted_by_tier() -> None:
    scenario = Scenario((), PODS, (), (POLICY,))
    flat = desired_state(scenario, PORTS, DEFAULT)
    tiered = in_tier(flat, 2)
    creates = [c for c in plan_commands(None, tiered) if "acl" in c[:3]]
    assert creates and all("tier=2" in c for c in creates)
    assert not any(a.startswith("tier=") for c in plan_commands(None, flat) for a in c)
    deletes = [c for c in plan_commands(tiered, flat) if "acl-del" in c]
    assert deletes and all("--tier=2" in c for c in deletes)


def test_records_summary_and_junit_carry_the_ovn_version(tmp_path: Path) -> None:
    run = RunInfo("r", "lab", "overlay", "lab:v1.16.2", "v1.16.2", tmp_path / "r",
                  ovn_version="25.03.0")
    run.prepare()
    run.probe_records([{"case": "c", "client": "x/a", "target": "y/b", "path": "pod", "port": 80,
                        "protocol": "TCP", "verdict": "allow", "outcome": "pass"}])
    run.case_record("c", outcome="pass", probes=1, mismatches=0)
    summary = run.write_summary()
    line = json.loads((tmp_path / "r" / "results.jsonl").read_text())
    assert line["ovn_version"] == summary["ovn_version"] == "25.03.0"
    assert load_run(tmp_path / "r").column == ("lab:v1.16.2+ovn25.03.0", "overlay")
    kind = RunInfo("k", "kind", "overlay", "v1.16.2", "", tmp_path / "k")
    assert "ovn_version" not in kind.meta  # unknown is left out, never guessed
    from kubeovn_conformance.report.junit import junit_properties

    assert ("ovn_version", "25.03.0") in junit_properties({}, run.meta)


def _run_dir(tmp: Path, name: str, ovn: str, outcome: str) -> Path:
    run = RunInfo(name, "lab", "overlay", "lab:v1.16.2", "v1.16.2", tmp / name, ovn_version=ovn)
    run.prepare()
    run.probe_records([{"case": "c", "client": "x/a", "target": "y/b", "path": "pod",
                        "port": 80, "protocol": "TCP", "verdict": "allow", "outcome": outcome,
                        "observed": "connected" if outcome == "pass" else "timeout"}])
    run.case_record("c", outcome=outcome, probes=1, mismatches=int(outcome == "fail"))
    run.write_summary()
    return tmp / name


def test_diff_never_mixes_ovn_versions_silently(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    old = _run_dir(tmp_path, "host", "23.03.1", "pass")
    new = _run_dir(tmp_path, "root", "25.03.0", "fail")
    # Same Kube-OVN profile and mode, other OVN: not compared case by case, and said so.
    assert report_main(["diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "different OVN versions (23.03.1 -> 25.03.0)" in out
    assert "appeared   c:" in out and "vanished   c:" in out
    # Asked for explicitly: compared, and both OVNs named.
    assert report_main(["diff", str(old), str(new), "--across-versions"]) == 1
    out = capsys.readouterr().out
    assert "lab:v1.16.2+ovn23.03.1 -> lab:v1.16.2+ovn25.03.0 overlay" in out
    same = diff.compare([load_run(old)], [load_run(_run_dir(tmp_path, "host2", "23.03.1", "fail"))])
    assert [c.kind for c in same] == ["regression"]


def test_cell_diff_names_changed_and_missing_cells_and_keeps_undefined_apart() -> None:
    from kubeovn_conformance.report.celldiff import compare_cells

    base = {"case": "c", "step": "initial", "client": "x/a", "target": "y/b", "path": "pod",
            "port": 80, "protocol": "TCP", "verdict": "allow", "observed": "connected",
            "outcome": "pass"}
    refused = {**base, "observed": "refused"}  # allowed, nothing listening: same verdict
    dropped = {**base, "observed": "timeout", "outcome": "fail"}
    hairpin = {**base, "target": "y/svc/b", "path": "service", "verdict": "undefined",
               "outcome": "undefined"}
    other = {**base, "port": 81}
    assert compare_cells([base, hairpin], [{**refused}, {**hairpin, "observed": "timeout"}]) == []
    changes = compare_cells([base, other], [dropped])
    assert [c.describe() for c in changes] == [
        "c [initial] x/a -> y/b pod 80/TCP: allow (pass) -> deny (fail)",
        "c [initial] x/a -> y/b pod 81/TCP: allow (pass) -> absent"]
    undefined = compare_cells([hairpin], [{**hairpin, "observed": "timeout"}], defined=False)
    assert [(c.old, c.new) for c in undefined] == [(("allow", "undefined"), ("deny", "undefined"))]


def test_flushes_are_per_ovn_and_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubeovn_conformance.backends.lab.backend import LabBackend

    monkeypatch.delenv("KOCL_LAB_FLUSH", raising=False)
    assert LabBackend(ovn="host").flushes == ("conntrack", "flows")
    assert LabBackend(ovn="25.03").flushes == ("flows",)  # measured: see NEEDED_FLUSHES
    monkeypatch.setenv("KOCL_LAB_FLUSH", "conntrack")
    assert LabBackend(ovn="25.03").flushes == ("conntrack",)
    monkeypatch.setenv("KOCL_LAB_FLUSH", "none")
    assert LabBackend(ovn="host").flushes == ()
    monkeypatch.setenv("KOCL_LAB_FLUSH", "everything")
    with pytest.raises(LabError, match="KOCL_LAB_FLUSH: unknown everything"):
        _ = LabBackend(ovn="host").flushes


# --------------------------------------------------------------------------- the root


def _root_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "building and mounting the OVN root needs root"
    if ovnroot.load_root(DEFAULT_OVN) is not None:
        return None
    if shutil.which("debootstrap") is None:
        return "debootstrap not installed (scripts/install-lab-deps installs it)"
    try:
        mirror = ovnroot.debian_mirror()
        suite = ovnroot.SUITES[DEFAULT_OVN]
        urllib.request.urlopen(f"{mirror}/dists/{suite}/Release", timeout=15).close()
    except (ovnroot.RootUnavailable, OSError) as e:
        return f"the Debian archive is not reachable: {e}"
    return None


_ROOT_SKIP = _root_skip_reason()
needs_root_build = pytest.mark.skipif(_ROOT_SKIP is not None, reason=_ROOT_SKIP or "")


def needs_lab_root(test):  # type: ignore[no-untyped-def]
    return pytest.mark.lab(needs_root_build(test))


@needs_lab_root
def test_root_is_built_once_with_a_stamp_and_reused() -> None:
    started = time.monotonic()
    root = ovnroot.ensure_root(DEFAULT_OVN)
    first = time.monotonic() - started
    print(f"\nOVN {DEFAULT_OVN} root: {first:.1f} s this time, built in "
          f"{root.stamp['build_seconds']} s, {root.stamp['bytes'] // 2**20} MiB, {root.packages}")
    assert root.stamp["suite"] == "trixie" and root.stamp["ovn_version"].startswith("25.03")
    assert root.packages["ovn-central"].startswith("25.03") and root.packages["openvswitch-switch"]
    for binary in ("ovsdb-server", "ovs-vswitchd", "ovn-northd", "ovn-controller", "ovn-nbctl"):
        assert any((root.path / d / binary).exists() for d in ("usr/bin", "usr/sbin")), binary
    assert not list((root.path / "var/cache/apt/archives").glob("*.deb"))
    again = time.monotonic()
    assert ovnroot.ensure_root(DEFAULT_OVN) == root
    assert time.monotonic() - again < 1.0  # cached: no second build
    assert not list(root.path.parent.parent.glob(".build-*"))


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("debootstrap") is None,
                    reason="needs root and debootstrap")
def test_a_failed_build_leaves_no_root_and_no_temp_dir(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A registry nobody serves (port 9, discard, on loopback): the real debootstrap fails.
    monkeypatch.setenv("KOCL_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    (tmp_path / ".build-25.03-old").mkdir()  # a crashed earlier build
    with pytest.raises(ovnroot.RootUnavailable, match=r"debootstrap trixie from http://127\.0\.0\.1:9"):
        ovnroot.ensure_root("25.03", tmp_path, log=io.StringIO())
    assert ovnroot.load_root("25.03", tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


LAB = f"or{os.getpid()}"


def _mounted(lab: Lab) -> list[str]:
    return mounts.mounts_under(lab.root_view)


@needs_lab_root
def test_lab_runs_the_roots_daemons_and_unmounts_everything_on_stop() -> None:
    lab = Lab(LAB, ovn=DEFAULT_OVN)
    lab.stop()
    try:
        started = time.monotonic()
        lab.start(started_by="test")
        print(f"\nlab on OVN {DEFAULT_OVN} up in {time.monotonic() - started:.2f} s")
        view = str(lab.root_view)
        assert set(_mounted(lab)) == {view, f"{view}/proc", f"{view}/dev", f"{view}/sys",
                                      f"{view}/run", f"{view}/tmp", f"{view}{lab.dir}"}
        # Every daemon and ctl tool is the root's: versions match each other, not the host's.
        assert lab.nbctl("--version").split()[1].startswith("25.03")
        assert "3.5." in lab.appctl("ovs-vswitchd", "version")
        assert "25.03" in lab.appctl("ovn-northd", "version")
        assert lab.load_state()["ovn_version"].startswith("25.03")
        # The cached root stays pristine: the view is read-only.
        probe = subprocess.run(["chroot", view, "touch", "/etc/kocl-write-test"],
                               capture_output=True, text=True, check=False)
        assert probe.returncode != 0 and "Read-only" in probe.stderr
    finally:
        lab.stop()
    assert _mounted(lab) == [] and not lab.root_view.exists() and not lab.dir.exists()
    assert [n for n in netns_list() if lab.owns_netns(n)] == []


@needs_lab_root
def test_ctrl_c_while_starting_leaves_nothing_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = Lab(LAB, ovn=DEFAULT_OVN)
    lab.stop()

    def interrupt() -> None:
        assert _mounted(lab)  # the view is up, the switch not yet
        raise KeyboardInterrupt

    monkeypatch.setattr(lab, "_start_switch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        lab.start(started_by="test")
    assert _mounted(lab) == [] and not lab.root_view.exists() and not lab.dir.exists()


@needs_lab_root
def test_lab_down_unmounts_a_killed_labs_view() -> None:
    """A lab whose owner died (SIGKILL: no teardown ran): `stop` finds the mounts in
    /proc/self/mountinfo, whatever the state file says, and removes them."""
    lab = Lab(LAB, ovn=DEFAULT_OVN)
    lab.stop()
    lab.start(started_by="test")
    lab.state_file.unlink()  # nothing recorded survives
    assert _mounted(lab)
    Lab(LAB, ovn="host").stop()  # `lab down` does not know which OVN it was
    assert _mounted(lab) == [] and not lab.root_view.exists()


@needs_lab_root
def test_policy_acls_land_in_tier_2_on_25_03_and_pass_is_accepted() -> None:
    from kubeovn_conformance.backends.lab.backend import LabBackend

    backend = LabBackend("overlay", lab_name=LAB, ovn=DEFAULT_OVN)
    try:
        scenario = backend.setup(Scenario((), tuple(Pod(p.namespace, p.name, p.labels, p.ports)
                                                    for p in PODS)))
        assert backend.acl_tiers and backend.ovn_version.startswith("25.03")
        backend.reconcile(Scenario(scenario.namespaces, scenario.pods, (), (POLICY,)))
        tiers = backend.lab.nbctl("--bare", "--columns=tier", "list", "acl").split()
        assert tiers and set(tiers) == {"2"}
        # What cluster-scoped policies need: a tier-1 pass ACL (Kube-OVN AnpACLTier = 1).
        backend.lab.nbctl("--type=port-group", "--tier=1", "acl-add", "allow.b.x", "to-lport",
                          "30000", "ip4", "pass")
        assert "pass" in backend.lab.nbctl("--bare", "--columns=action", "find", "acl", "tier=1")
    finally:
        backend.teardown()
    assert _mounted(backend.lab) == []


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ovn-northd") is None,
                    reason="needs root and the host's ovn-central/ovn-host")
def test_policy_acls_stay_in_tier_0_on_an_ovn_without_tiers() -> None:
    from kubeovn_conformance.backends.lab.backend import LabBackend

    backend = LabBackend("overlay", lab_name=LAB, ovn="host")
    if backend.acl_tiers:
        pytest.skip(f"the host's OVN {backend.ovn_version} has ACL tiers")
    try:
        scenario = backend.setup(Scenario((), tuple(Pod(p.namespace, p.name, p.labels, p.ports)
                                                    for p in PODS)))
        backend.reconcile(Scenario(scenario.namespaces, scenario.pods, (), (POLICY,)))
        assert backend.lab.nbctl("--bare", "--columns=priority", "list", "acl").split()
        assert backend._applied is not None
        assert {a.tier for acls in backend._applied.state.acls.values() for a in acls} == {0}
    finally:
        backend.teardown()
