"""Node placement: the pure function that puts pods on nodes, and what it makes of records."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeovn_conformance import builders as b
from kubeovn_conformance import placement as P
from kubeovn_conformance.model import Scenario, load_scenario

SETTINGS = settings(derandomize=True, max_examples=80, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
UNDERLAY_BUG = sorted((Path(__file__).resolve().parents[1] / "examples" / "underlay-bug").glob("*.yaml"))
GROUND = b.upstream_ground(protocols=("TCP", "UDP"), service_offset=8000)


def classes(workload: Scenario, where: dict[str, str]) -> dict[str, set[str]]:
    """Destination -> the placement classes its clients give it (host-network pods aside)."""
    pods = [p for p in workload.pods if not p.host_network]
    return {d.key: {P.SAME if where[c.key] == where[d.key] else P.CROSS for c in pods if c.key != d.key}
            for d in pods}


# --------------------------------------------------------------------------- place


def test_one_node_puts_everything_on_it():
    where = P.place(GROUND, ["kind-control-plane"])
    assert set(where.values()) == {"kind-control-plane"} and set(where) == {p.key for p in GROUND.pods}
    assert all(c == {P.SAME} for c in classes(GROUND, where).values())


def test_no_nodes_leaves_it_to_the_scheduler():
    assert P.place(GROUND, []) == {}


def test_deterministic_whatever_the_node_order():
    nodes = ["kind-worker", "kind-control-plane", "kind-worker2"]
    first = P.place(GROUND, nodes)
    for perm in itertools.permutations(nodes):
        assert P.place(GROUND, list(perm)) == first
    assert P.place(GROUND, nodes + nodes) == first


@SETTINGS
@given(st.integers(4, 10), st.integers(2, 4), st.integers(1, 3), st.integers(0, 2**16), st.booleans())
def test_every_destination_gets_both_classes(n_pods, n_nodes, n_ns, seed, host_pod):
    """The promise: with two nodes or more, every destination with two clients or more has
    one on its node and one elsewhere, once there are four pods (three cannot: one of them
    is always alone, or all are together)."""
    rnd = random.Random(seed)
    nss = [f"n{i}" for i in range(n_ns)]
    pods = [b.pod(rnd.choice(nss), f"p{i}", {"app": rnd.choice("ab")}, [b.container_port(80)])
            for i in range(n_pods)]
    if host_pod:
        pods.append(b.pod(nss[0], "host", host_network=True))
    workload = Scenario(tuple(b.namespace(n) for n in nss), tuple(pods))
    where = P.place(workload, [f"node-{i}" for i in range(n_nodes)])
    assert set(where) == {p.key for p in workload.pods}
    assert all(c == {P.SAME, P.CROSS} for c in classes(workload, where).values())
    assert not [g for g in P.gaps(workload, where) if g.why == "all clients"]


def test_three_pods_leave_exactly_one_destination_one_sided():
    workload = load_scenario(UNDERLAY_BUG[0])  # x/server, y/client, y/bystander
    where = P.place(workload, ["a", "b"])
    one_sided = [d for d, c in classes(workload, where).items() if len(c) < 2]
    assert len(one_sided) == 1
    # The Service backend is never the one left out: its DNAT'd path matters most.
    assert "x/server" not in one_sided


def test_upstream_ground_is_as_mixed_as_an_exhaustive_search():
    """Beyond "all clients": the clients of each namespace and of each pod label are mixed
    where possible (policies select by those). The climb finds the best an exhaustive search
    over two nodes finds, and spreading over more nodes does not make it worse."""
    w = b.upstream_ground(protocols=("TCP",))
    keys = [p.key for p in w.pods]
    gs = P.groups(w)
    best = max(P._score(gs, dict(zip(keys, combo, strict=True)))[0]
               for combo in itertools.product("ab", repeat=len(keys)))
    for nodes in (["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"]):
        assert P._score(gs, P.place(w, nodes))[0] == best


def test_fixed_pods_stay_and_new_ones_fill_the_gaps():
    base = b.upstream_ground(namespaces=("x", "y"), pods=("a", "b"), protocols=("TCP",))
    first = P.place(base, ["n1", "n2"])
    late = b.pod("x", "late", {"pod": "late"}, [b.container_port(80)])
    grown = Scenario(base.namespaces, (*base.pods, late))
    again = P.place(grown, ["n1", "n2"], fixed=first)
    assert {k: again[k] for k in first} == first
    assert all(c == {P.SAME, P.CROSS} for c in classes(grown, again).values())


def test_groups_weigh_all_clients_above_everything_else():
    gs = P.groups(GROUND)
    hard = [g for g in gs if g.why == "all clients"]
    soft = [g for g in gs if g.why != "all clients"]
    assert len(hard) == len(GROUND.pods) and soft
    assert min(g.weight for g in hard) > sum(g.weight for g in soft)


# --------------------------------------------------------------------------- records


def _svc_scenario(backends: int, named: bool = False) -> Scenario:
    pods = [b.pod("x", f"s{i}", {"app": "s"}, [b.container_port(8000, name="http" if i == 0 else None)])
            for i in range(backends)]
    pods.append(b.pod("y", "c"))
    target = "http" if named else 8000
    svc = b.service("x", "web", {"app": "s"}, b.service_port(80, target))
    return Scenario((b.namespace("x"), b.namespace("y")), tuple(pods), (svc,))


def rec(client, target, path="pod", port=8000, protocol="TCP"):  # type: ignore[no-untyped-def]
    return {"client": client, "target": target, "path": path, "port": port, "protocol": protocol}


def test_placement_of_pod_and_service_probes():
    nodes = {"x/s0": "n1", "x/s1": "n2", "y/c": "n1"}.get
    one = _svc_scenario(1)
    assert P.placement_of(rec("y/c", "x/s0"), nodes, one) == P.SAME
    assert P.placement_of(rec("x/s0", "y/c"), nodes, one) == P.SAME
    assert P.placement_of(rec("y/c", "x/svc/web", "service", 80), nodes, one) == P.SAME
    two = _svc_scenario(2)
    assert P.placement_of(rec("y/c", "x/s1"), nodes, two) == P.CROSS
    # Two backends: which one answered is not known, so nothing is said.
    assert P.placement_of(rec("y/c", "x/svc/web", "service", 80), nodes, two) is None
    # ... unless a named targetPort leaves only one endpoint.
    named = _svc_scenario(2, named=True)
    assert P.placement_of(rec("y/c", "x/svc/web", "service", 80), nodes, named) == P.SAME
    assert P.placement_of(rec("y/c", "x/svc/web", "nodeport", 30080), nodes, one) is None
    assert P.placement_of(rec("y/c", "x/s0"), lambda _k: None, one) is None


def test_with_placement_counts_and_text():
    nodes = {"x/s0": "n1", "x/s1": "n2", "y/c": "n1"}.get
    two = _svc_scenario(2)
    records = list(P.with_placement(
        [rec("y/c", "x/s0"), rec("y/c", "x/s1"), rec("x/s0", "x/s1"), rec("y/c", "x/svc/web", "service", 80)],
        nodes, two))
    assert [r.get("placement") for r in records] == [P.SAME, P.CROSS, P.CROSS, None]
    assert P.counts(records) == {P.SAME: 1, P.CROSS: 2}
    assert P.junit_counts(records) == {"cells_same_node": 1, "cells_cross_node": 2}
    assert P.describe(records) == ("placement: 1 same-node, 2 cross-node cells, "
                                   "1 unknown (Service with several backends)")
    table = P.table(records).splitlines()
    assert table[0].startswith("node placement")
    assert table[1].split() == ["x/s0", "x/s1", "x/svc/web"]
    assert table[2].split() == ["x/s0", "c"]
    assert table[3].split() == ["y/c", "s", "c", "-"]
    # The lab: no node known anywhere, so no counts and no JUnit properties.
    assert P.counts([rec("y/c", "x/s0")]) is None and P.junit_counts([rec("y/c", "x/s0")]) == {}


# --------------------------------------------------------------------------- nodes


def node(name, taints=(), unschedulable=False, hostname=None, os="linux"):  # type: ignore[no-untyped-def]
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": hostname or name,
                                                  "kubernetes.io/os": os}},
            "spec": {"taints": [{"key": k, "effect": e} for k, e in taints],
                     "unschedulable": unschedulable}}


def test_schedulable_skips_tainted_cordoned_and_windows_nodes():
    cp = "node-role.kubernetes.io/control-plane"
    nodes = [node("kind-control-plane", [(cp, "NoSchedule")]), node("kind-worker"),
             node("kind-worker2", [("x", "PreferNoSchedule")]), node("cordoned", unschedulable=True),
             node("evicting", [("node.kubernetes.io/not-ready", "NoExecute")]),
             node("win", os="windows"), node("ip-10-0-0-1.ec2.internal", hostname="ip-10-0-0-1")]
    assert P.schedulable(nodes) == {"kind-worker": "kind-worker", "kind-worker2": "kind-worker2",
                                    "ip-10-0-0-1.ec2.internal": "ip-10-0-0-1"}
    # Untainted as Kube-OVN's kind setup (and scripts/cluster-up) leave it: the control plane counts.
    assert "kind-control-plane" in P.schedulable([node("kind-control-plane"), node("kind-worker")])


def test_node_affinity_is_required_on_the_hostname_label():
    aff = P.node_affinity("kind-worker")["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert aff["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["kind-worker"]}]}]
