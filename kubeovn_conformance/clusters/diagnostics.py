"""What the diagnostics script needs from a run's results."""

from __future__ import annotations

import json
from pathlib import Path

from kubeovn_conformance.clusters.matrix import ClusterError


def failing_probes(path: Path, limit: int = 20) -> list[tuple[str, str, str, str]]:
    """(client, target, port, protocol) of failed probes in a results.jsonl, deduplicated and
    capped: one `kubectl ko trace` each takes seconds. Bad lines are skipped, not fatal."""
    seen: dict[tuple[str, str, str, str], None] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise ClusterError(f"{path}: {e.strerror}") from None
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or rec.get("outcome") not in ("fail", "infra-error"):
            continue
        try:
            key = (
                str(rec["client"]),
                str(rec["target"]),
                str(int(rec["port"])),
                str(rec.get("protocol", "TCP")).lower(),
            )
        except (KeyError, TypeError, ValueError):
            continue
        seen.setdefault(key, None)
        if len(seen) >= limit:
            break
    return list(seen)

