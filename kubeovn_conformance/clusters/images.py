"""Getting an image into every kind node, the way Kube-OVN's CI does (`kind_load_image` in
makefiles/kind.mk, v1.15 on): `kind load docker-image`; if that fails, `docker save | kind load
image-archive`; if that fails too, `docker save | ctr import` on each node.

Why the fallbacks: with Docker's containerd image store, a multi-arch image saves with
references to platforms that were never pulled, and `kind load docker-image` fails
(kubernetes-sigs/kind#3795). Unlike upstream we save only this machine's platform
(`docker save --platform`, Docker 28+), which is what avoids the missing blobs; an older Docker
rejects the flag, and then the plain `docker save` of the last fallback is tried.
Pipes are two processes joined in Python: never a shell.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence

from kubeovn_conformance.clusters.matrix import ClusterError

Log = Callable[[str], None]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run(argv: Sequence[str]) -> int:
    try:
        return subprocess.run(list(argv), check=False, stdout=subprocess.DEVNULL).returncode
    except FileNotFoundError:
        return 127


def _pipe(left: Sequence[str], right: Sequence[str]) -> int:
    """`left | right`; non-zero when either side fails."""
    try:
        with subprocess.Popen(list(left), stdout=subprocess.PIPE) as src:
            assert src.stdout is not None
            try:
                rc_right = subprocess.run(list(right), stdin=src.stdout, check=False,
                                          stdout=subprocess.DEVNULL).returncode
            finally:
                src.stdout.close()
            rc_left = src.wait()
    except FileNotFoundError:
        return 127
    return rc_left or rc_right


def _nodes(cluster: str) -> list[str]:
    try:
        r = subprocess.run(["kind", "get", "nodes", "--name", cluster], capture_output=True, text=True,
                           check=False)
    except FileNotFoundError:
        return []
    return r.stdout.split() if r.returncode == 0 else []


def load_image(cluster: str, image: str, arch: str, log: Log = _log) -> str:
    """Load `image` (already pulled on the host) into every node of `cluster`. Returns the
    method that worked; raises ClusterError when none did."""
    platform = f"linux/{arch}"
    if _run(["kind", "load", "docker-image", "--name", cluster, image]) == 0:
        return "docker-image"
    log(f"kind load docker-image {image} failed; trying docker save --platform {platform} | "
        "kind load image-archive")
    if _pipe(["docker", "save", "--platform", platform, image],
             ["kind", "load", "image-archive", "--name", cluster, "/dev/stdin"]) == 0:
        return "image-archive"
    nodes = _nodes(cluster)
    if not nodes:
        raise ClusterError(f"cannot load {image} into kind cluster {cluster!r}: no nodes listed")
    log(f"image-archive failed too; importing {image} with ctr on {', '.join(nodes)}")
    for node in nodes:
        ok = any(
            _pipe(save, ["docker", "exec", "-i", node, "ctr", "-n", "k8s.io", "images", "import", "-"]) == 0
            for save in (["docker", "save", "--platform", platform, image], ["docker", "save", image])
        )
        if not ok:
            raise ClusterError(f"cannot load {image} into node {node}: kind load docker-image, "
                               "image-archive and ctr import all failed")
    return "ctr-import"
