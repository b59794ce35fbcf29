"""The fuzzer through the kind backend, against FakeApiServer (tests/fake_apiserver.py).

The fake runs real listeners and the real probe agent but enforces no policy, so every
expected deny is observed connected: a "failure" on every scenario with a deny cell. That is
enough to drive the kind path end to end: the backend built from `--kubeconfig`, pods the
API hands other IPs (127.x) than the draw planned (ipBlocks rebased), shrinking with new
workloads, and the finding's file with the kind repeat commands. What it cannot show: Kube-OVN.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeovn_conformance.cli import main as cli_main
from kubeovn_conformance.fuzz.case import CellKey
from kubeovn_conformance.fuzz.draw import draw
from kubeovn_conformance.fuzz.output import read_meta
from kubeovn_conformance.model import load_scenario
from tests.fake_apiserver import FakeApiServer

# A scenario without Services: the fake does not proxy ClusterIPs.
SEED, SCENARIO = 1, 2


@pytest.mark.slow
def test_a_fuzz_run_on_kind_finds_shrinks_and_writes_the_kind_commands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert not draw(SEED, SCENARIO).services
    with FakeApiServer() as api:
        kc = api.kubeconfig(tmp_path / "kubeconfig")
        status = cli_main(["fuzz", "--backend", "kind", "--kubeconfig", str(kc),
                           "--kube-ovn-version", "v1.16.2", "--seed", str(SEED),
                           "--scenario", str(SCENARIO), "--deadline", "1", "--shrink-limit", "10",
                           "--reports-dir", str(tmp_path), "--run-id", "kind"])
        assert not [n for n in api.names("namespaces") if n.startswith("kc-")]  # torn down
    out = capsys.readouterr().out
    assert status == 1, out
    path = tmp_path / "kind" / "fuzz" / f"{SEED}-{SCENARIO}.yaml"
    meta = read_meta(path)
    assert meta is not None and meta["backend"] == "kind" and meta["trials"] >= 1
    cell = CellKey.of(meta["cell"])
    assert cell.verdict == "deny"  # nothing enforces it here
    s = load_scenario(path)
    assert all(p.ip and p.ip.startswith("127.") for p in s.pods)  # the IPs the API gave
    assert len(s.pods) < len(draw(SEED, SCENARIO).pods)
    text = path.read_text()
    assert f"--backend kind --mode overlay --kubeconfig {kc} --kube-ovn-version v1.16.2" in text
    assert "observed connected" in text
