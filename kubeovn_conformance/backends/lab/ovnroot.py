"""A Debian root with a newer OVN than the host's, built once with debootstrap and cached.

Kube-OVN v1.15/v1.16 build on OVN 25.03 and OVS 3.5; Debian 12 ships OVN 23.03 and OVS 3.1,
which have neither ACL tiers nor the `pass` action that Kube-OVN's cluster-scoped policies
need. Debian 13 (trixie) ships OVN 25.03.0 and OVS 3.5.0, and its packages come from the
same Debian archive the host's apt already uses, so the lab runs its daemons from a trixie
root (`ovnruntime.RootOvn`) while the host keeps its own distribution.

Layout under the cache directory (default `<project>/.cache/lab-root/`):

    25.03/root/         the root (debootstrap --variant=minbase, package caches removed)
    25.03/stamp.json    what was built: suite, mirror, package versions, seconds, bytes
    .build-25.03-XXXX/  a build in progress; renamed to 25.03/ only when complete
    .lock               flock: one build at a time, a second process waits for it

A root without its stamp is not a root: the stamp is written inside the temporary directory
before the rename, so a crash mid-build leaves only a `.build-*` directory (removed by the
next build).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeovn_conformance.backends.lab.daemons import LabError, run

# OVN line -> the Debian suite that ships it. Debian 13 has 25.03.0 (packages.debian.org,
# trixie: ovn 25.03.0-1, openvswitch 3.5.0-1+b1).
SUITES = {"25.03": "trixie"}
PACKAGES = ("openvswitch-switch", "ovn-central", "ovn-host")
# Versions written into the stamp (the daemons' packages and the C library they link).
STAMP_PACKAGES = ("openvswitch-switch", "openvswitch-common", "ovn-central", "ovn-host",
                  "ovn-common", "libc6")
BUILD_TIMEOUT = 1200.0  # seconds: a slow mirror, not a hang
SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


class RootUnavailable(LabError):
    """The root cannot be built here (no debootstrap, no registry, not root)."""


def default_cache_dir() -> Path:
    """KOCL_ROOT_CACHE, else `.cache/lab-root` of the project checkout this package runs
    from (an editable install), else ~/.cache/kubeovn-conformance/lab-root."""
    env = os.environ.get("KOCL_ROOT_CACHE")
    if env:
        return Path(env)
    project = Path(__file__).resolve().parents[3]
    if (project / "pyproject.toml").is_file():
        return project / ".cache" / "lab-root"
    return Path.home() / ".cache" / "kubeovn-conformance" / "lab-root"


# --------------------------------------------------------------------------- the mirror


def _os_release(key: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith(f"{key}="):
                return line.split("=", 1)[1].strip().strip('"')
    return ""


def _source_entries(paths: tuple[Path, ...] = SOURCES) -> Iterator[tuple[list[str], list[str]]]:
    """(URIs, suites) of every enabled `deb` entry in apt's one-line and deb822 files."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".list", ".sources"))
        elif p.is_file():
            files.append(p)
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in text.split("\n\n"):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        key, value = line.split(":", 1)
                        fields[key.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split() and \
                        fields.get("enabled", "yes").lower() != "no":
                    yield fields.get("uris", "").split(), fields.get("suites", "").split()
        else:
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if words[:1] == ["deb"]:
                    words = [w for w in words[1:] if not w.startswith("[")]
                    if len(words) >= 2:
                        yield [words[0]], [words[1]]


def debian_mirror(paths: tuple[Path, ...] = SOURCES, codename: str | None = None,
                  os_id: str | None = None) -> str:
    """The Debian archive this machine's apt is configured with (KOCL_DEBIAN_MIRROR wins):
    the first `deb` entry that serves the host's own suite (not -security, -updates). On a
    distribution other than Debian (Ubuntu: its archive has no trixie) only the variable."""
    env = os.environ.get("KOCL_DEBIAN_MIRROR")
    if env:
        return env
    os_id = _os_release("ID") if os_id is None else os_id
    if os_id != "debian":
        raise RootUnavailable(f"this machine's apt has no Debian archive (ID={os_id or '?'}): "
                              "set KOCL_DEBIAN_MIRROR to one, or run --lab-ovn host")
    codename = _os_release("VERSION_CODENAME") if codename is None else codename
    for uris, suites in _source_entries(paths):
        if uris and (codename in suites if codename else
                     any("-" not in s for s in suites)):
            return uris[0]
    where = ", ".join(str(p) for p in paths)
    raise RootUnavailable(f"no Debian archive for suite {codename or '?'} in {where}; "
                          "set KOCL_DEBIAN_MIRROR to one")


# --------------------------------------------------------------------------- the root


@dataclass(frozen=True)
class OvnRoot:
    """A built root: where it is and what its stamp says."""

    line: str
    path: Path  # the root directory (chroot target)
    stamp: dict[str, Any]

    @property
    def packages(self) -> dict[str, str]:
        return dict(self.stamp.get("packages") or {})


def root_dir(line: str, cache: Path | None = None) -> Path:
    return (cache or default_cache_dir()) / line


def load_root(line: str, cache: Path | None = None) -> OvnRoot | None:
    """The cached root of an OVN line, or None when there is none (or only a broken one)."""
    d = root_dir(line, cache)
    try:
        stamp = json.loads((d / "stamp.json").read_text())
    except (OSError, ValueError):
        return None
    root = d / "root"
    if not isinstance(stamp, dict) or not (root / "usr/bin/ovn-nbctl").exists():
        return None
    return OvnRoot(line, root, stamp)


def check_can_build() -> None:
    if os.geteuid() != 0:
        raise RootUnavailable("building the OVN root needs root (debootstrap)")
    if shutil.which("debootstrap") is None:
        raise RootUnavailable("debootstrap not found: apt-get install debootstrap "
                              "(scripts/install-lab-deps installs it)")


def ensure_root(line: str, cache: Path | None = None, log: Any = None) -> OvnRoot:
    """The root of OVN `line`, built on first use. Several processes may ask at once: one
    builds, the others wait on the lock and then find it."""
    if line not in SUITES:
        raise LabError(f"no OVN root for {line!r}; known: {', '.join(SUITES)}")
    found = load_root(line, cache)
    if found is not None:
        return found
    check_can_build()
    cache = cache or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = load_root(line, cache)  # built by whoever held the lock before us
        if found is not None:
            return found
        return _build(line, cache, log or sys.stderr)


def _build(line: str, cache: Path, log: Any) -> OvnRoot:
    suite, mirror = SUITES[line], debian_mirror()
    for old in cache.glob(f".build-{line}-*"):  # a build that crashed half way
        _remove_tree(old)
    print(f"kubeovn-conformance: building the OVN {line} root (Debian {suite} from {mirror}; "
          f"once, about a minute) into {cache / line}", file=log, flush=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{line}-", dir=cache))
    try:
        root = tmp / "root"
        proc = run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                    suite, str(root), mirror], timeout=BUILD_TIMEOUT, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RootUnavailable(f"debootstrap {suite} from {mirror} failed "
                                  f"({proc.returncode}): {' | '.join(tail)}")
        # The .debs debootstrap kept are not needed to run anything.
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        packages = _package_versions(root)
        version = run(["chroot", str(root), "ovn-nbctl", "--version"]).stdout.split()
        if len(version) < 2 or not version[1].startswith(line):
            raise LabError(f"the {suite} root has ovn-nbctl {version[1:2]}, not {line}")
        stamp = {"line": line, "suite": suite, "mirror": mirror, "ovn_version": version[1],
                 "packages": packages, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "build_seconds": round(time.monotonic() - started, 1),
                 "bytes": _tree_bytes(root)}
        (tmp / "stamp.json").write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
        tmp.chmod(0o755)
        target = root_dir(line, cache)
        if target.exists():  # a root without a valid stamp: replace it
            _remove_tree(target)
        tmp.rename(target)  # atomic: the root appears complete or not at all
    except BaseException:
        _remove_tree(tmp)
        raise
    print(f"kubeovn-conformance: OVN {line} root ready in {stamp['build_seconds']} s, "
          f"{stamp['bytes'] // 2**20} MiB (ovn {packages.get('ovn-central', '?')}, "
          f"openvswitch {packages.get('openvswitch-switch', '?')})", file=log, flush=True)
    found = load_root(line, cache)
    assert found is not None
    return found


def _package_versions(root: Path) -> dict[str, str]:
    out = run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
               *STAMP_PACKAGES]).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _remove_tree(path: Path) -> None:
    """Remove a (half) built root, refusing to cross into anything mounted below it: a
    bind mount of /dev or /proc there must never be deleted through."""
    from kubeovn_conformance.backends.lab.mounts import mounts_under

    if mounts_under(path):
        raise LabError(f"{path} has mounts below it; not removing it")
    shutil.rmtree(path, ignore_errors=True)
