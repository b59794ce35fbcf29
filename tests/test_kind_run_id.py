"""The kind backend's run id as the plugin gives it under xdist (`f"{run_id}-{worker}"`), with
the ids `make e2e` builds; and its teardown on an interrupt, which must not wait."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeovn_conformance.backends.kind import RUN_LABEL, KindBackend, short_run_id
from tests.fake_apiserver import FakeApiServer
from tests.test_kind_backend import WORKLOAD

ROOT = Path(__file__).resolve().parent.parent
# apimachinery's label value: at most 63 characters, alphanumerics at both ends.
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def makefile_run_id(mode: str, version: str) -> str:
    """The id `make e2e` gives pytest (scripts/e2e: date -u +%Y%m%dT%H%M%SZ-kind-MODE-VERSION)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-kind-{mode}-{version}"


def test_the_id_format_is_the_one_make_e2e_builds():
    sources = (ROOT / "Makefile").read_text() + "".join(
        p.read_text() for p in (ROOT / "scripts").iterdir() if p.is_file())
    assert "$(date -u +%Y%m%dT%H%M%SZ)-kind-$mode-$version" in sources.replace("$$", "$")


@pytest.mark.parametrize("version", ["v1.15.24", "v1.16.2", "v1.12.35", "v1.14.41"])
@pytest.mark.parametrize("mode", ["overlay", "underlay"])
def test_xdist_workers_get_distinct_valid_ids_and_namespaces(mode, version):
    run_id = makefile_run_id(mode, version)
    backends = [KindBackend(run_id=f"{run_id}-{w}", sctp=False) for w in ("gw0", "gw1", "gw10")]
    ids = [b.run_id for b in backends]
    assert len(set(ids)) == len(ids), ids
    for b in backends:
        assert LABEL_VALUE.fullmatch(b.run_id) and len(b.run_id) <= 40, b.run_id
        assert b._base_labels() == {RUN_LABEL: b.run_id}
    names = [b._real_name(1, "x") for b in backends]
    assert len(set(names)) == len(names)
    assert all(DNS_LABEL.fullmatch(n) and len(n) <= 63 for n in names), names
    assert ids[0].endswith("-gw0") and ids[1].endswith("-gw1")
    # Without a worker the id is kept whole where it fits.
    alone = KindBackend(run_id=run_id, sctp=False).run_id
    assert LABEL_VALUE.fullmatch(alone) and alone.endswith(version.replace(".", "-"))


def test_long_ids_that_share_a_prefix_stay_apart():
    a, b = short_run_id("x" * 50 + "-a"), short_run_id("x" * 50 + "-b")
    assert a != b and len(a) <= 40 and len(b) <= 40
    assert short_run_id("--weird__ID--") == "weird-id"


def test_two_workers_on_one_cluster_never_touch_each_others_namespaces(tmp_path):
    """What the collision did: the second worker's setup clashed with the first's namespaces
    and either worker's teardown deleted both."""
    run_id = makefile_run_id("underlay", "v1.15.24")
    with FakeApiServer() as api:
        kc = api.kubeconfig(tmp_path / "kc")
        gw0, gw1 = (KindBackend(kubeconfig=kc, run_id=f"{run_id}-{w}", sctp=False, ready_timeout=15,
                                delete_timeout=15, exec_grace=5) for w in ("gw0", "gw1"))
        try:
            gw0.setup(WORKLOAD)
            gw1.setup(WORKLOAD)
            mine = set(gw1.namespaces.values())
            assert len(api.names("namespaces")) == 4
            gw0.teardown()
            assert set(api.names("namespaces")) == mine
            labels = {api.get("namespaces", "", n)["metadata"]["labels"][RUN_LABEL] for n in mine}
            assert labels == {gw1.run_id}
        finally:
            gw0.teardown()
            gw1.teardown()


def test_teardown_on_interrupt_deletes_by_label_and_does_not_wait(tmp_path):
    with FakeApiServer(ns_delete_delay=3.0) as api:
        kc = api.kubeconfig(tmp_path / "kc")
        backend = KindBackend(kubeconfig=kc, run_id="int", sctp=False, ready_timeout=15,
                              delete_timeout=15, exec_grace=5)
        start = 0.0
        with pytest.raises(KeyboardInterrupt), backend.running(WORKLOAD):
            start = time.monotonic()
            raise KeyboardInterrupt
        took = time.monotonic() - start
        assert took < 1.5, f"teardown waited {took:.1f}s for the namespace controller"
        left = [api.get("namespaces", "", n) for n in api.names("namespaces")]
        assert len(left) == 2 and all(n["metadata"].get("deletionTimestamp") for n in left)
        backend.teardown()  # nothing of ours is known any more: returns at once
        # Without an interrupt, teardown still waits for the namespace controller.
        backend.setup(WORKLOAD)
        start = time.monotonic()
        backend.teardown()
        assert time.monotonic() - start >= 2.5
        assert api.names("namespaces") == []


def test_overlapping_deletion_waits_for_the_workload_before(tmp_path):
    """delete_wait="previous" (the cut bench_kind measures): a teardown issues its deletes
    and waits only for the previous workload's namespaces; wait=True waits for all."""
    with FakeApiServer(ns_delete_delay=1.0) as api:
        kc = api.kubeconfig(tmp_path / "kc")
        backend = KindBackend(kubeconfig=kc, run_id="lag", sctp=False, ready_timeout=15,
                              delete_timeout=15, exec_grace=5, delete_wait="previous")
        backend.setup(WORKLOAD)
        first = set(backend.namespaces.values())
        start = time.monotonic()
        backend.teardown()
        assert time.monotonic() - start < 0.8  # nothing before it to wait for
        backend.setup(WORKLOAD)
        backend.teardown()  # waits for `first`, not for its own
        names = set(api.names("namespaces"))
        assert not names & first and len(names) == 2
        backend.teardown(wait=True)
        assert api.names("namespaces") == []
    with pytest.raises(ValueError, match="delete_wait"):
        KindBackend(run_id="x", sctp=False, delete_wait="never")
