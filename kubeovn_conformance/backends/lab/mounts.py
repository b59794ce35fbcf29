"""Mounts of a lab's root view: made with mount(8), found in /proc/self/mountinfo, undone
with umount(8). Every mount is private (no propagation to or from the host), and `unmount_all`
leaves nothing mounted at or below a path, whatever state a crash left it in."""

from __future__ import annotations

import os
from pathlib import Path

from kubeovn_conformance.backends.lab.daemons import LabError, run

MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: Path = MOUNTINFO) -> list[str]:
    """Every mount point of this mount namespace, in mount order."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    return [_unescape(line.split()[4]) for line in lines if len(line.split()) > 4]


def mounts_under(path: Path | str, mountinfo: Path = MOUNTINFO) -> list[str]:
    """Mount points at or below `path`, deepest first (the order to unmount them)."""
    base = os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)
    found = [m for m in mount_points(mountinfo) if m == base or m.startswith(base.rstrip("/") + "/")]
    return sorted(set(found), key=lambda m: (-m.count("/"), m))


def bind(source: Path | str, target: Path | str, *, read_only: bool = False) -> None:
    run(["mount", "--bind", str(source), str(target)])
    run(["mount", "--make-private", str(target)])
    if read_only:
        run(["mount", "-o", "remount,bind,ro", str(target)])


def tmpfs(target: Path | str, size: str = "64m") -> None:
    run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "kocl-tmpfs", str(target)])
    run(["mount", "--make-private", str(target)])


def unmount_all(path: Path | str) -> None:
    """Unmount everything at or below `path`, deepest first; a busy mount is detached lazily
    (it is gone from the namespace at once, the kernel frees it when its last user exits).
    Raises LabError if anything is still mounted afterwards."""
    for _ in range(3):
        points = mounts_under(path)
        if not points:
            return
        for m in points:
            if run(["umount", m], check=False).returncode != 0:
                run(["umount", "-l", m], check=False)
    left = mounts_under(path)
    if left:
        raise LabError(f"still mounted after unmounting: {', '.join(left)}")
