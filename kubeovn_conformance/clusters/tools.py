"""Pinned kind, kubectl and helm: where to download them, checked against the checksum
files their projects publish, and where they live (.bin/<tool>-<version>/<tool>)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from kubeovn_conformance.clusters.matrix import PY, REPO_ROOT, ClusterError, Matrix, VersionEntry
from kubeovn_conformance.clusters.steps import Step, _rel


def tool_urls(matrix: Matrix, entry: VersionEntry, arch: str) -> dict[str, tuple[str, str, str]]:
    """name -> (version, url, checksum url) for kind, kubectl and helm of this row."""
    if arch not in ("amd64", "arm64"):
        raise ClusterError(f"unsupported architecture {arch!r}; known: amd64, arm64")
    versions = {
        "kind": entry.kind,
        "kubectl": entry.kubectl,
        "helm": matrix.tools.get("helm", {}).get("version", ""),
    }
    out = {}
    for name, ver in versions.items():
        spec = matrix.tools.get(name)
        if not spec or not ver:
            raise ClusterError(f"versions.yaml: tools.{name} is incomplete")
        out[name] = (
            ver,
            spec["url"].format(version=ver, arch=arch),
            spec["checksum_url"].format(version=ver, arch=arch),
        )
    return out


KUBECTL_KO_URL = "https://raw.githubusercontent.com/kubeovn/kube-ovn/{version}/dist/images/kubectl-ko"


def host_arch() -> str:
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        raise ClusterError(f"unsupported machine {machine!r}; kind, kubectl and helm: amd64, arm64")
    return arch


def default_bin_dir() -> Path:
    return Path(os.environ.get("KOC_BIN_DIR") or REPO_ROOT / ".bin").resolve()


def tool_path(bin_dir: Path, name: str, version: str) -> Path:
    # One directory per tool version: rows of the matrix need different kind/kubectl versions.
    return bin_dir / f"{name}-{version}" / name


def _download(url: str, dest: Path) -> None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=120) as r, dest.open("wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as e:
        raise ClusterError(f"download failed: {url}: {e}") from None


def fetch_tool(name: str, version: str, url: str, checksum_url: str | None, dest: Path) -> None:
    """Download a tool and check it against the checksum file published next to it (kind:
    .sha256sum, kubectl: .sha256, helm: <tarball>.sha256sum; first field is the hex digest)."""
    import hashlib
    import tarfile
    import tempfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        art = Path(tmp) / url.rsplit("/", 1)[1]
        _download(url, art)
        if checksum_url:
            sums = Path(tmp) / "checksum"
            _download(checksum_url, sums)
            fields = sums.read_text().split()
            want = fields[0].lower() if fields else ""
            got = hashlib.sha256(art.read_bytes()).hexdigest()
            if not re.fullmatch(r"[0-9a-f]{64}", want) or got != want:
                raise ClusterError(f"{name} {version}: sha256 {got} does not match {checksum_url}")
        if art.name.endswith(".tar.gz"):
            with tarfile.open(art) as tar:
                member = next(
                    (m for m in tar.getmembers() if m.isfile() and m.name.rsplit("/", 1)[-1] == name), None
                )
                if member is None:
                    raise ClusterError(f"{url}: no {name} inside")
                src = tar.extractfile(member)
                assert src is not None
                art = Path(tmp) / f"{name}.bin"
                art.write_bytes(src.read())
        art.chmod(0o755)
        art.replace(dest)


def tool_steps(matrix: Matrix, entry: VersionEntry, arch: str, bin_dir: Path) -> list[Step]:
    """Fetch steps for the tools of this row that are not in bin_dir yet."""
    steps = []
    for name, (ver, url, sums) in tool_urls(matrix, entry, arch).items():
        dest = tool_path(bin_dir, name, ver)
        if dest.is_file() and os.access(dest, os.X_OK):
            continue
        steps.append(
            Step(
                [*PY, "fetch-tool", entry.version, name, "--arch", arch, "--bin-dir", _rel(bin_dir)],
                action=lambda n=name, v=ver, u=url, c=sums, d=dest: fetch_tool(n, v, u, c, d),
            )
        )
    return steps


def tool_dirs(matrix: Matrix, entry: VersionEntry, arch: str, bin_dir: Path) -> list[Path]:
    return [tool_path(bin_dir, n, v).parent for n, (v, _, _) in tool_urls(matrix, entry, arch).items()]

