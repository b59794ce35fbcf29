"""The fake API server as a process of its own, for the rehearsal (tests/test_rehearsal.py): what
`make e2e` run as another user reaches through the kubeconfig the fake `kind` hands out.

usage: python tests/rehearsal_apiserver.py KUBECONFIG   (writes it, prints "ready", serves
until SIGTERM or SIGINT)"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fake_apiserver import FakeApiServer, fake_node


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.splitlines()[-2].strip(), file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    # Two nodes, as cluster-up's kind cluster: placement makes same- and cross-node cells.
    nodes = [fake_node("kube-ovn-control-plane"), fake_node("kube-ovn-worker")]
    with FakeApiServer(nodes=nodes) as api:
        path = api.kubeconfig(Path(argv[0]))
        path.chmod(0o644)
        print("ready", flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
