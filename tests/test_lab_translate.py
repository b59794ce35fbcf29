"""NetworkPolicy -> OVN northbound translation (Kube-OVN's way) and its reconciliation.

Pure tests check the objects desired_state computes, and evaluate the ACLs the way OVN
does (highest priority match among all port groups of the destination/source port) to show
the translation keeps NetworkPolicy semantics. The `lab` test applies them to a real
ovsdb-server with the OVN northbound schema.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kubeovn_conformance.backends.lab.profile import DEFAULT, Profile, get_profile
from kubeovn_conformance.backends.lab.sync import plan_commands, reconcile_policies
from kubeovn_conformance.backends.lab.translate import (
    Acl,
    OvnPolicyState,
    describe_state,
    desired_state,
)
from kubeovn_conformance.model import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Rule,
    Scenario,
    Service,
    ServicePort,
)
from tests.ovn_eval import verdict

sel = LabelSelector.of

# Two namespaces; "srv" pods serve tcp 8000 named "http". IPs as a lab would assign them.
NAMESPACES = (Namespace("x", (("team", "a"),)), Namespace("y", (("team", "b"),)))
PODS = (
    Pod("x", "a", (("app", "a"),), (ContainerPort(8000, "TCP", "http"),), "10.16.0.10"),
    Pod("x", "b", (("app", "b"),), (ContainerPort(9000, "TCP", "http"),), "10.16.0.11"),
    Pod("x", "c", (("app", "c"),), (), "10.16.0.12"),
    Pod("y", "a", (("app", "a"),), (), "10.16.0.20"),
    Pod("y", "b", (("app", "b"),), (), "10.16.0.21"),
)
SERVICES = (Service("x", "svc-a", (("app", "a"),), (ServicePort(80, "http"),),
                    cluster_ip="10.96.0.10"),)
PORTS = {p.key: p.key.replace("/", ".") for p in PODS}  # pod key -> logical switch port


def scenario(*policies: NetworkPolicy) -> Scenario:
    return Scenario(NAMESPACES, PODS, SERVICES, policies)


def ingress(name: str, target: dict[str, str], *rules: Rule, ns: str = "x") -> NetworkPolicy:
    return NetworkPolicy(ns, name, sel(target), ingress=rules, policy_types=("Ingress",))


def egress(name: str, source: dict[str, str], *rules: Rule, ns: str = "x") -> NetworkPolicy:
    return NetworkPolicy(ns, name, sel(source), egress=rules, policy_types=("Egress",))


def acls_of(state: OvnPolicyState, pg: str) -> list[Acl]:
    return sorted(state.acls[pg])


def allows(state: OvnPolicyState, pg: str) -> list[str]:
    return sorted(a.match for a in state.acls[pg] if a.priority == 2001)


# --------------------------------------------------------------------------- ACL evaluation
# The evaluator of OVN's match language lives in tests/ovn_eval.py (the generated-case
# corpus test uses it too).


def pod_to_pod(state: OvnPolicyState, src: str, dst: str, port: int, proto: str = "tcp") -> bool:
    """Does a packet from pod src to pod dst pass both the egress and the ingress ACLs?"""
    s, d = next(p for p in PODS if p.key == src), next(p for p in PODS if p.key == dst)
    pkt = {"inport": PORTS[src], "outport": PORTS[dst], "ip4.src": s.ip, "ip4.dst": d.ip,
           "proto": proto, "dport": port}
    return all(verdict(state, direction, pkt) != "drop" for direction in ("from-lport", "to-lport"))


# --------------------------------------------------------------------------- profiles


def test_profiles_resolve_tags_lines_and_history() -> None:
    assert DEFAULT.name == "v1.16.2" and get_profile("v1.16") == DEFAULT
    assert get_profile("v1.15").name == "v1.15.24" and get_profile("1.13.6").name == "v1.13.6"
    assert get_profile("pre-v1.11.2") == get_profile("history:egress-before-lb")
    assert not get_profile("v1.11.1").egress_after_lb and get_profile("v1.12.0").egress_after_lb
    assert get_profile("v1.15.24").svc_ips_in_allow_sets and not DEFAULT.svc_ips_in_allow_sets
    assert get_profile("v1.14.41").gateway_allow and not get_profile("v1.15.0").gateway_allow
    assert get_profile("v1.16-lax").enforcement == "lax"


def test_unknown_profile_is_one_line_listing_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown Kube-OVN profile 'v9\.9x'") as e:
        get_profile("v9.9x")
    assert "\n" not in str(e.value) and "pre-v1.11.2" in str(e.value)
    with pytest.raises(ValueError, match="unknown fix 'nope'"):
        get_profile("history:nope")
    with pytest.raises(ValueError, match=r"lax needs Kube-OVN v1\.15\.0"):
        get_profile("v1.14.41-lax")
    with pytest.raises(ValueError, match="enforcement"):
        Profile("bad", enforcement="loose")


# --------------------------------------------------------------------------- naming


def test_names_follow_kube_ovn() -> None:
    st = desired_state(scenario(ingress("allow-from-b", {"app": "a"}, Rule()),
                                ingress("1st", {"app": "a"}, Rule())), PORTS)
    # '-' becomes '.', and a name not starting with a letter gets "np" (OVN identifiers).
    assert set(st.port_groups) == {"allow.from.b.x", "np1st.x"}
    assert "allow.from.b.x.ingress.allow.IPv4.0" in st.address_sets
    assert "allow.from.b.x.ingress.except.IPv4.0" in st.address_sets
    assert st.port_group_ids["allow.from.b.x"] == {"np": "x/allow-from-b"}
    assert st.address_set_ids["np1st.x.ingress.allow.IPv4.0"] == {"np": "x/np1st/ingress"}


# --------------------------------------------------------------------------- translation


def test_default_deny_ingress() -> None:
    st = desired_state(scenario(ingress("deny", {})), PORTS)
    assert st.port_groups["deny.x"] == {"x.a", "x.b", "x.c"}  # empty selector: whole namespace
    assert acls_of(st, "deny.x") == [
        Acl("to-lport", 2000, "outport == @deny.x && ip", "drop", (),
            (("np", "x/deny"), ("parent", "deny.x"), ("rule", "ingress/default")))]
    assert st.address_sets == {}
    assert not pod_to_pod(st, "x/b", "x/a", 8000)
    assert pod_to_pod(st, "x/a", "y/a", 8000)  # y is not selected


def test_default_deny_egress_runs_after_lb() -> None:
    st = desired_state(scenario(egress("deny", {"app": "a"})), PORTS)
    (drop,) = st.acls["deny.x"]
    assert (drop.direction, drop.priority, drop.match, drop.action) == (
        "from-lport", 2000, "inport == @deny.x && ip", "drop")
    assert drop.options == (("apply-after-lb", "true"),)
    assert not pod_to_pod(st, "x/a", "x/b", 9000)
    assert pod_to_pod(st, "x/b", "x/a", 8000)


def test_allow_port_8000_from_one_pod() -> None:
    st = desired_state(scenario(ingress("web", {"app": "a"}, Rule(
        (Peer(sel({"app": "b"})),), (PolicyPort("TCP", 8000),)))), PORTS)
    pg = "web.x"
    assert st.port_groups[pg] == {"x.a"}
    assert allows(st, pg) == [
        f"outport == @{pg} && ip && ip4.src == ${pg}.ingress.allow.IPv4.0"
        f" && ip4.src != ${pg}.ingress.except.IPv4.0 && tcp.dst == 8000"]
    assert st.address_sets[f"{pg}.ingress.allow.IPv4.0"] == {"10.16.0.11"}
    assert pod_to_pod(st, "x/b", "x/a", 8000)
    assert not pod_to_pod(st, "x/b", "x/a", 80)  # the Service port is not the pod port
    assert not pod_to_pod(st, "x/c", "x/a", 8000)
    assert not pod_to_pod(st, "x/b", "x/a", 8000, "udp")


def test_named_port_resolves_through_the_namespace_map() -> None:
    st = desired_state(scenario(ingress("named", {}, Rule(None, (PolicyPort("TCP", "http"),)))),
                       PORTS)
    # x/a declares http=8000 first, x/b's http=9000 is ignored as in Kube-OVN: one number
    # for the whole namespace, so x/b's own http port stays closed (a known divergence).
    assert [m.rsplit(" && ", 1)[1] for m in allows(st, "named.x")] == ["tcp.dst == 8000"]
    assert pod_to_pod(st, "x/c", "x/a", 8000)
    assert not pod_to_pod(st, "x/c", "x/b", 9000)


def test_unknown_named_port_allows_nothing() -> None:
    st = desired_state(scenario(ingress("named", {}, Rule(None, (PolicyPort("TCP", "nope"),)))),
                       PORTS)
    assert allows(st, "named.x") == []
    assert not pod_to_pod(st, "x/c", "x/a", 8000)


def test_end_port_range_and_protocols() -> None:
    st = desired_state(scenario(ingress("range", {"app": "a"}, Rule(None, (
        PolicyPort("TCP", 8000, 8080), PolicyPort("SCTP", 9000), PolicyPort("UDP"))))), PORTS)
    tails = sorted(m.split("IPv4.0 && ", 2)[2] for m in allows(st, "range.x"))
    assert tails == ["8000 <= tcp.dst <= 8080", "sctp.dst == 9000", "udp"]
    assert st.address_sets["range.x.ingress.allow.IPv4.0"] == {"0.0.0.0/0"}  # no peers: all
    assert pod_to_pod(st, "y/b", "x/a", 8080)
    assert not pod_to_pod(st, "y/b", "x/a", 8081)
    assert pod_to_pod(st, "y/b", "x/a", 53, "udp")
    assert pod_to_pod(st, "y/b", "x/a", 9000, "sctp")


def test_ip_block_with_except() -> None:
    pol = ingress("cidr", {"app": "a"}, Rule(
        (Peer(ip_block=IPBlock("10.16.0.0/28", ("10.16.0.12/32",))),)))
    for profile in (DEFAULT, get_profile("v1.14.41")):  # except scoped per block, or per rule
        st = desired_state(scenario(pol), PORTS, profile)
        assert pod_to_pod(st, "x/b", "x/a", 8000)
        assert not pod_to_pod(st, "x/c", "x/a", 8000)
        assert not pod_to_pod(st, "y/b", "x/a", 8000)  # 10.16.0.21 is outside the /28
    old = desired_state(scenario(pol), PORTS, get_profile("v1.14.41"))
    assert old.address_sets["cidr.x.ingress.allow.IPv4.0"] == {"10.16.0.0/28"}
    assert old.address_sets["cidr.x.ingress.except.IPv4.0"] == {"10.16.0.12/32"}


def test_namespace_and_pod_selector_in_one_peer_is_and() -> None:
    both = Peer(sel({"app": "b"}), sel({"team": "b"}))
    st = desired_state(scenario(ingress("and", {"app": "a"}, Rule((both,)))), PORTS)
    assert st.address_sets["and.x.ingress.allow.IPv4.0"] == {"10.16.0.21"}  # y/b only


def test_separate_peers_are_or() -> None:
    st = desired_state(scenario(ingress("or", {"app": "a"}, Rule(
        (Peer(sel({"app": "b"})), Peer(namespace_selector=sel({"team": "b"})))))), PORTS)
    # x/b from the pod selector (policy namespace) plus every pod of namespace y.
    assert st.address_sets["or.x.ingress.allow.IPv4.0"] == {"10.16.0.11", "10.16.0.20",
                                                            "10.16.0.21"}
    assert not pod_to_pod(st, "x/c", "x/a", 8000)


def test_multiple_policies_are_a_union() -> None:
    p1 = ingress("from-b", {"app": "a"}, Rule((Peer(sel({"app": "b"})),)))
    p2 = ingress("from-c", {"app": "a"},
                 Rule((Peer(sel({"app": "c"})),), (PolicyPort("TCP", 8000),)))
    st = desired_state(scenario(p1, p2), PORTS)
    # x/a is in both port groups; each drops at 2000, and any allow at 2001 wins.
    assert "x.a" in st.port_groups["from.b.x"] and "x.a" in st.port_groups["from.c.x"]
    assert pod_to_pod(st, "x/b", "x/a", 8000) and pod_to_pod(st, "x/b", "x/a", 1234)
    assert pod_to_pod(st, "x/c", "x/a", 8000)
    assert not pod_to_pod(st, "x/c", "x/a", 1234)
    assert not pod_to_pod(st, "y/a", "x/a", 8000)
    # A policy's allow never leaks onto pods it does not select.
    assert pod_to_pod(st, "y/a", "x/b", 9000)


def test_policy_types_defaulting() -> None:
    both = NetworkPolicy("x", "both", sel({"app": "a"}), ingress=(Rule(),), egress=(Rule(),))
    only_in = NetworkPolicy("x", "only-in", sel({"app": "b"}), egress=())
    st = desired_state(scenario(both, only_in), PORTS)
    assert {a.direction for a in st.acls["both.x"]} == {"to-lport", "from-lport"}
    # `egress: []` without policyTypes is not an egress policy; Ingress is always defaulted.
    assert {a.direction for a in st.acls["only.in.x"]} == {"to-lport"}
    assert not pod_to_pod(st, "x/c", "x/b", 9000)
    assert pod_to_pod(st, "x/b", "x/c", 1)


def test_rules_of_a_direction_left_out_of_policy_types_still_count() -> None:
    # Kube-OVN's hasIngressRule: policyTypes [Egress] plus ingress rules builds ingress ACLs
    # too (the API says those rules are ignored): reproduced, the oracle will flag it.
    pol = NetworkPolicy("x", "odd", sel({"app": "a"}), ingress=(Rule((Peer(sel({"app": "b"})),)),),
                        egress=(Rule(),), policy_types=("Egress",))
    st = desired_state(scenario(pol), PORTS)
    assert {a.direction for a in st.acls["odd.x"]} == {"to-lport", "from-lport"}
    assert not pod_to_pod(st, "x/c", "x/a", 8000)


def test_lax_drops_only_tcp_udp_sctp() -> None:
    pol = ingress("deny", {"app": "a"})
    std = desired_state(scenario(pol), PORTS, get_profile("v1.16"))
    lax = desired_state(scenario(pol), PORTS, get_profile("v1.16-lax"))
    assert [a.match for a in std.acls["deny.x"]] == ["outport == @deny.x && ip"]
    assert [a.match for a in lax.acls["deny.x"]] == ["outport == @deny.x && (tcp || udp || sctp)"]
    assert not pod_to_pod(std, "x/b", "x/a", 0, "icmp")
    assert pod_to_pod(lax, "x/b", "x/a", 0, "icmp")
    assert not pod_to_pod(lax, "x/b", "x/a", 8000)


def test_egress_after_lb_is_a_profile_knob() -> None:
    pol = egress("eg", {"app": "a"}, Rule((Peer(sel({"app": "b"})),), (PolicyPort("TCP", 9000),)))
    new = desired_state(scenario(pol), PORTS, get_profile("v1.12.0"))
    old = desired_state(scenario(pol), PORTS, get_profile("v1.11.1"))
    assert all(a.options == (("apply-after-lb", "true"),) for a in new.acls["eg.x"]
               if a.direction == "from-lport")
    assert all(a.options == () for a in old.acls["eg.x"])


def test_svc_ips_in_allow_sets_until_1_15() -> None:
    pol = egress("eg", {"app": "b"}, Rule((Peer(sel({"app": "a"})),)))
    v115 = desired_state(scenario(pol), PORTS, get_profile("v1.15"))
    v116 = desired_state(scenario(pol), PORTS, get_profile("v1.16"))
    # Service svc-a in x selects x/a; y/a is not in the peer's namespace.
    assert v115.address_sets["eg.x.egress.allow.IPv4.0"] == {"10.16.0.10", "10.96.0.10"}
    assert v116.address_sets["eg.x.egress.allow.IPv4.0"] == {"10.16.0.10"}


def test_gateway_allow_until_1_14_and_node_allow() -> None:
    pol = ingress("deny", {"app": "a"})
    v114 = desired_state(scenario(pol), PORTS, get_profile("v1.14"), ["10.16.0.1"], ["172.18.0.2"])
    v115 = desired_state(scenario(pol), PORTS, get_profile("v1.15"), ["10.16.0.1"], ["172.18.0.2"])
    gw = {(a.direction, a.priority, a.match, a.action) for a in v114.acls["deny.x"]
          if a.action == "allow-stateless"}
    assert gw == {("to-lport", 2001, "ip4.src == 10.16.0.1", "allow-stateless"),
                  ("from-lport", 2001, "ip4.dst == 10.16.0.1", "allow-stateless")}
    assert not any(a.action == "allow-stateless" for a in v115.acls["deny.x"])
    node = [a for a in v115.acls["deny.x"] if a.priority == 3000]
    assert {a.match for a in node} == {"outport == @deny.x && ip4.src == 172.18.0.2",
                                       "inport == @deny.x && ip4.dst == 172.18.0.2"}
    assert all(a.action == "allow-related" for a in node)


def test_pods_without_a_port_or_on_the_host_network_stay_out() -> None:
    extra = Pod("x", "host", (("app", "a"),), (), "172.18.0.2", host_network=True)
    s = Scenario(NAMESPACES, (*PODS, extra), SERVICES, (ingress("deny", {}),))
    st = desired_state(s, {k: v for k, v in PORTS.items() if k != "x/c"})
    assert st.port_groups["deny.x"] == {"x.a", "x.b"}


def test_describe_state_reads_like_acl_list() -> None:
    st = desired_state(scenario(egress("eg", {"app": "a"}, Rule((Peer(sel({"app": "b"})),)))),
                       PORTS)
    text = describe_state(st)
    assert "port group eg.x [np=x/eg]: x.a" in text
    assert "from-lport  2000 (inport == @eg.x && ip) drop [after-lb]" in text
    assert "address set eg.x.egress.allow.IPv4.0: 10.16.0.11" in text
    assert describe_state(OvnPolicyState()) == "(no policy objects)"


# --------------------------------------------------------------------------- reconcile


class Recorder:
    """Stands in for ovn-nbctl where no database is needed: records each call's argv."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *argv: str) -> str:
        self.calls.append(argv)
        return ""


def test_reconcile_applies_only_differences() -> None:
    a = ingress("pol-a", {"app": "a"}, Rule((Peer(sel({"app": "b"})),), (PolicyPort("TCP", 8000),)))
    b = ingress("pol-b", {"app": "b"}, Rule((Peer(sel({"app": "c"})),)))
    rec = Recorder()
    st = reconcile_policies(rec, scenario(a, b), PORTS, DEFAULT, None)
    assert len(rec.calls) == 1  # everything in one transaction

    # No change: no call at all.
    assert reconcile_policies(rec, scenario(a, b), PORTS, DEFAULT, st) == st
    assert len(rec.calls) == 1

    # Update pol-a's port: only its ACLs change, one removed and one created.
    a2 = ingress("pol-a", {"app": "a"}, Rule((Peer(sel({"app": "b"})),), (PolicyPort("TCP", 80),)))
    st2 = reconcile_policies(rec, scenario(a2, b), PORTS, DEFAULT, st)
    argv = rec.calls[-1]
    cmds = " ".join(argv).split(" -- ")
    assert [c.split()[0:2] for c in cmds] == [["--type=port-group", "acl-del"],
                                              ["--id=@acl1", "create"],
                                              ["add", "port_group"]]
    assert "tcp.dst == 8000" in cmds[0] and "tcp.dst == 80" in cmds[1]
    assert "pol.b" not in " ".join(argv)

    # Relabel x/c so pol-b's peer no longer matches it: pol-b's address set empties and, as
    # in Kube-OVN master, the rule's ACL goes (nothing to allow); pol-a is not touched.
    relabeled = tuple(Pod(p.namespace, p.name, (("app", "z"),), p.ports, p.ip)
                      if p.key == "x/c" else p for p in PODS)
    s3 = Scenario(NAMESPACES, relabeled, SERVICES, (a2, b))
    st3 = reconcile_policies(rec, s3, PORTS, DEFAULT, st2)
    cmds = " ".join(rec.calls[-1]).split(" -- ")
    assert cmds[0] == 'remove address_set pol.b.x.ingress.allow.IPv4.0 addresses "10.16.0.12"'
    assert cmds[1].startswith("--type=port-group acl-del pol.b.x to-lport 2001 outport == @pol.b.x")
    assert len(cmds) == 2

    # Relabel x/a out of pol-a's selector: only pol-a's membership changes (now empty).
    moved = tuple(Pod(p.namespace, p.name, (("app", "q"),), p.ports, p.ip)
                  if p.key == "x/a" else p for p in relabeled)
    st4 = reconcile_policies(rec, Scenario(NAMESPACES, moved, SERVICES, (a2, b)), PORTS,
                             DEFAULT, st3)
    assert rec.calls[-1] == ("clear", "port_group", "pol.a.x", "ports")

    # Delete pol-a: its port group (ACLs go with it) and both address sets, nothing else.
    reconcile_policies(rec, Scenario(NAMESPACES, moved, SERVICES, (b,)), PORTS, DEFAULT, st4)
    assert " ".join(rec.calls[-1]).split(" -- ") == [
        "--if-exists destroy port_group pol.a.x",
        "--if-exists destroy address_set pol.a.x.ingress.allow.IPv4.0",
        "--if-exists destroy address_set pol.a.x.ingress.except.IPv4.0"]


def test_plan_from_scratch_creates_sets_before_acls() -> None:
    st = desired_state(scenario(ingress("web", {"app": "a"}, Rule((Peer(sel({"app": "b"})),)))),
                       PORTS)
    cmds = plan_commands(None, st)
    kinds = [c[0] if c[0] != "--id=@acl1" else "acl" for c in cmds]
    assert kinds[:3] == ["create", "create", "create"]  # two address sets, then the group
    assert cmds[2][:3] == ["create", "port_group", 'name="web.x"']
    assert cmds[3] == ["pg-set-ports", "web.x", "x.a"]


# --------------------------------------------------------------------------- real ovsdb


def _lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in ("ovsdb-server", "ovsdb-tool", "ovn-nbctl") if not shutil.which(t)]
    if missing:
        return f"missing {', '.join(missing)}"
    if not Path("/usr/share/ovn/ovn-nb.ovsschema").exists():
        return "missing /usr/share/ovn/ovn-nb.ovsschema"
    return None


def _start_ovsdb(workdir: Path, name: str, schema: str) -> int:
    """A private ovsdb-server for one database; returns its pid."""
    db = workdir / f"{name}.db"
    subprocess.run(["ovsdb-tool", "create", str(db), schema], check=True, capture_output=True)
    # --unixctl keeps the control socket out of /var/run/openvswitch (it may not exist).
    subprocess.run(["ovsdb-server", f"--remote=punix:{workdir / name}.sock",
                    f"--pidfile={workdir / name}.pid", f"--unixctl={workdir / name}.ctl",
                    f"--log-file={workdir / name}.log", "--detach", "--no-chdir", str(db)],
                   check=True, capture_output=True)
    return int((workdir / f"{name}.pid").read_text())


def _stop(pids: list[int]) -> list[int]:
    """SIGTERM our own daemons (by pid) and wait; returns the pids still alive."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.05)
    return [p for p in pids if Path(f"/proc/{p}").exists()]


class Lab:
    """Private OVN databases in a temp dir: NB always, SB and ovn-northd on demand."""

    def __init__(self) -> None:
        # Short path: unix socket paths are limited to ~107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="kocnb-"))
        self.pids = [_start_ovsdb(self.dir, "nb", "/usr/share/ovn/ovn-nb.ovsschema")]

    def nbctl(self, *argv: str) -> str:
        return self._run("ovn-nbctl", f"--db=unix:{self.dir}/nb.sock", "--timeout=10", *argv)

    def start_northd(self) -> None:
        self.pids.append(_start_ovsdb(self.dir, "sb", "/usr/share/ovn/ovn-sb.ovsschema"))
        subprocess.run(["ovn-northd", f"--ovnnb-db=unix:{self.dir}/nb.sock",
                        f"--ovnsb-db=unix:{self.dir}/sb.sock", f"--pidfile={self.dir}/northd.pid",
                        f"--unixctl={self.dir}/northd.ctl", f"--log-file={self.dir}/northd.log",
                        "--detach", "--no-chdir"], check=True, capture_output=True)
        self.pids.append(int((self.dir / "northd.pid").read_text()))

    def trace(self, switch: str, flow: str) -> str:
        # Wait for northd to catch up with the NB database before tracing.
        self._run("ovn-nbctl", f"--db=unix:{self.dir}/nb.sock", "--timeout=10", "--wait=sb",
                  "sync")
        return self._run("ovn-trace", f"--db=unix:{self.dir}/sb.sock", "--minimal", "--ct=new",
                         switch, flow)

    @staticmethod
    def _run(*argv: str) -> str:
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        if res.returncode:
            raise RuntimeError(f"{' '.join(argv[:5])}...: {res.stderr.strip()}")
        return res.stdout

    def close(self) -> None:
        alive = _stop(self.pids)
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not alive, f"daemons did not stop: {alive}"


@pytest.fixture
def lab():
    reason = _lab_skip_reason()
    if reason:
        pytest.skip(reason)
    env = Lab()
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def nb_db(lab):
    """An nbctl callable on an empty, private OVN NB database."""
    return lab.nbctl


def _rows(nbctl, table: str) -> list[dict]:
    out = json.loads(nbctl("--format=json", "list", table))
    cols = out["headings"]
    return [dict(zip(cols, row, strict=True)) for row in out["data"]]


def _ovs_value(v):
    """Decode OVSDB JSON values: ["set", [...]], ["map", [[k, v]...]], ["uuid", u]."""
    if isinstance(v, list) and v and v[0] == "set":
        return {_ovs_value(x) for x in v[1]}
    if isinstance(v, list) and v and v[0] == "map":
        return {k: _ovs_value(x) for k, x in v[1]}
    if isinstance(v, list) and v and v[0] == "uuid":
        return v[1]
    return v


def _db_state(nbctl) -> dict:
    """Port groups (member LSP names, ACL tuples) and address sets as stored."""
    lsp_names = {r["_uuid"][1]: r["name"] for r in _rows(nbctl, "logical_switch_port")}
    acls = {r["_uuid"][1]: r for r in _rows(nbctl, "acl")}

    def as_set(v):
        d = _ovs_value(v)
        return d if isinstance(d, set) else {d}

    groups = {}
    for pg in _rows(nbctl, "port_group"):
        members = {lsp_names[u] for u in as_set(pg["ports"])}
        rows = [acls[u] for u in as_set(pg["acls"])]
        groups[pg["name"]] = (members, {
            (a["direction"], a["priority"], a["match"], a["action"],
             tuple(sorted(_ovs_value(a["options"]).items()))) for a in rows})
    sets = {r["name"]: as_set(r["addresses"]) for r in _rows(nbctl, "address_set")}
    return {"groups": groups, "sets": sets, "acl_rows": len(acls)}


def _expected(state: OvnPolicyState) -> dict:
    groups = {pg: (set(state.port_groups[pg]),
                   {(a.direction, a.priority, a.match, a.action, a.options)
                    for a in state.acls[pg]}) for pg in state.port_groups}
    return {"groups": groups, "sets": {k: set(v) for k, v in state.address_sets.items()},
            "acl_rows": sum(len(v) for v in state.acls.values())}


@pytest.mark.lab
def test_reconcile_against_a_real_nb_database(nb_db) -> None:
    nbctl = nb_db
    nbctl("ls-add", "sw", *[x for lsp in PORTS.values() for x in ("--", "lsp-add", "sw", lsp)])
    a = ingress("pol-a", {"app": "a"}, Rule((Peer(sel({"app": "b"})),), (PolicyPort("TCP", 8000),)))
    e = egress("pol-e", {"app": "b"}, Rule((Peer(sel({"app": "a"})),), (PolicyPort("TCP", 8000),)))

    st = reconcile_policies(nbctl, scenario(a, e), PORTS, get_profile("v1.15"), None,
                            gateways=["10.16.0.1"], node_ips=["172.18.0.2"])
    assert _db_state(nbctl) == _expected(st.state)
    # apply-after-lb really is in the options column and acl-list shows it.
    assert "[after-lb]" in nbctl("acl-list", "pol.e.x")
    assert _db_state(nbctl)["sets"]["pol.e.x.egress.allow.IPv4.0"] == {"10.16.0.10", "10.96.0.10"}

    # Update: pol-a allows 80 instead, from x/c too; x/b leaves pol-e (relabeled).
    a2 = ingress("pol-a", {"app": "a"}, Rule((Peer(sel({"app": "b"})), Peer(sel({"app": "c"}))),
                                             (PolicyPort("TCP", 80),)))
    uuid_before = {r["name"]: r["_uuid"][1] for r in _rows(nbctl, "port_group")}
    pods = tuple(Pod(p.namespace, p.name, (("app", "bb"),), p.ports, p.ip) if p.key == "x/b"
                 else p for p in PODS)
    st2 = reconcile_policies(nbctl, Scenario(NAMESPACES, pods, SERVICES, (a2, e)), PORTS,
                             get_profile("v1.15"), st, gateways=["10.16.0.1"],
                             node_ips=["172.18.0.2"])
    assert _db_state(nbctl) == _expected(st2.state)
    assert st2.state.port_groups["pol.e.x"] == frozenset()
    assert _db_state(nbctl)["sets"]["pol.a.x.ingress.allow.IPv4.0"] == {"10.16.0.12"}
    # Port groups were updated in place, not recreated.
    assert {r["name"]: r["_uuid"][1] for r in _rows(nbctl, "port_group")} == uuid_before

    # Delete everything: nothing of ours is left, ACL rows included (garbage collected).
    st3 = reconcile_policies(nbctl, Scenario(NAMESPACES, pods, SERVICES, ()), PORTS,
                             get_profile("v1.15"), st2)
    assert st3.state == OvnPolicyState()
    assert _db_state(nbctl) == {"groups": {}, "sets": {}, "acl_rows": 0}


@pytest.mark.lab
def test_a_failed_transaction_changes_nothing(nb_db) -> None:
    nbctl = nb_db
    nbctl("ls-add", "sw", "--", "lsp-add", "sw", "x.a")  # x.b is missing on purpose
    with pytest.raises(RuntimeError, match=r"x\.b"):
        reconcile_policies(nbctl, scenario(ingress("deny", {})), {"x/a": "x.a", "x/b": "x.b"})
    assert _db_state(nbctl) == {"groups": {}, "sets": {}, "acl_rows": 0}


@pytest.mark.lab
def test_ovn_parses_the_matches_and_enforces_the_union(lab) -> None:
    """ovn-northd builds logical flows from our rows and ovn-trace evaluates them: this is
    OVN's own reading of the matches (address sets, ranges, union of port groups)."""
    if not shutil.which("ovn-northd") or not shutil.which("ovn-trace"):
        pytest.skip("missing ovn-northd or ovn-trace")
    lab.start_northd()
    cmds = ["ls-add", "sw"]
    for pod in PODS:
        mac = f"0a:00:00:00:00:{int(pod.ip.rsplit('.', 1)[1]):02x}"
        cmds += ["--", "lsp-add", "sw", PORTS[pod.key],
                 "--", "lsp-set-addresses", PORTS[pod.key], f"{mac} {pod.ip}"]
    lab.nbctl(*cmds)
    p1 = ingress("range", {"app": "a"}, Rule(None, (PolicyPort("TCP", 8000, 8080),)))
    p2 = ingress("from-c", {"app": "a"}, Rule((Peer(sel({"app": "c"})),)))
    p3 = egress("eg", {"app": "b"}, Rule((Peer(sel({"app": "a"})),), (PolicyPort("TCP", 8000),)))
    st = reconcile_policies(lab.nbctl, scenario(p1, p2, p3), PORTS, DEFAULT, None).state

    def reaches(src: str, dst: str, port: int) -> bool:
        s, d = (next(p for p in PODS if p.key == k) for k in (src, dst))
        smac, dmac = (f"0a:00:00:00:00:{int(p.ip.rsplit('.', 1)[1]):02x}" for p in (s, d))
        flow = (f'inport == "{PORTS[src]}" && eth.src == {smac} && eth.dst == {dmac} && '
                f"ip4.src == {s.ip} && ip4.dst == {d.ip} && ip.ttl == 64 && "
                f"tcp.src == 40000 && tcp.dst == {port}")
        return f'output("{PORTS[dst]}")' in lab.trace("sw", flow)

    expected = {("x/b", "x/a", 8000): True,    # egress allows 8000, ingress range allows
                ("x/b", "x/a", 8080): False,   # egress of x/b allows only 8000
                ("y/b", "x/a", 8080): True,    # range rule has no peers
                ("y/b", "x/a", 9999): False,   # outside the range, not x/c
                ("x/c", "x/a", 9999): True,    # union: from-c allows every port
                ("x/c", "x/b", 9000): True}    # x/b has no ingress policy
    observed = {k: reaches(*k) for k in expected}
    assert observed == expected, describe_state(st)
    # The pure evaluator used by the other tests agrees with OVN.
    assert {k: pod_to_pod(st, *k) for k in expected} == expected
