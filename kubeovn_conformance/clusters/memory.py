"""Enough free memory for a new cluster: checked only when one is created, after the cluster it
replaces is deleted (a reused cluster, or the previous mode's or version's, holds memory that
the new one does not need on top)."""

from __future__ import annotations

import os
from pathlib import Path

from kubeovn_conformance.clusters.matrix import ClusterError

DEFAULT_MIN_GIB = 6  # two kind nodes with Kube-OVN and the probe pods
KIB_PER_GIB = 1024 * 1024


def available_gib(meminfo: Path) -> float | None:
    """MemAvailable of a /proc/meminfo-format file in GiB; None if it cannot be read."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "MemAvailable":
            fields = rest.split()
            try:
                return int(fields[0]) / KIB_PER_GIB
            except (IndexError, ValueError):
                raise ClusterError(f"{meminfo}: unreadable MemAvailable line {line!r}") from None
    return None


def check_memory(env: dict[str, str] | None = None) -> None:
    """Raise ClusterError when less than MIN_FREE_MEM_GIB (default 6) GiB are available per
    KOC_MEMINFO (default /proc/meminfo). A machine without the file is not checked."""
    env = os.environ if env is None else env
    raw = env.get("MIN_FREE_MEM_GIB", "") or str(DEFAULT_MIN_GIB)
    try:
        need = float(raw)
    except ValueError:
        raise ClusterError(f"MIN_FREE_MEM_GIB={raw!r} is not a number of GiB") from None
    avail = available_gib(Path(env.get("KOC_MEMINFO", "") or "/proc/meminfo"))
    if avail is not None and avail < need:
        raise ClusterError(
            f"only {avail:.1f} GiB memory available, need {need:g} for two nodes with Kube-OVN "
            "(MIN_FREE_MEM_GIB overrides)"
        )
