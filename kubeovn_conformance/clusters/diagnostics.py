"""What the diagnostics script needs from a run's results."""

from __future__ import annotations

import json
from pathlib import Path

from kubeovn_conformance.clusters.matrix import ClusterError
from kubeovn_conformance.textfile import read_text


def _real(key: str, namespaces: dict[str, str]) -> str:
    """Scenario key ("x/a", "x/svc/s") -> the same key in the run's real namespace."""
    ns, sep, rest = key.partition("/")
    return f"{namespaces.get(ns, ns)}{sep}{rest}"


def load_namespaces(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(read_text(path))
    except (OSError, ValueError) as e:
        raise ClusterError(f"{path}: cannot read the namespace map: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ClusterError(f"{path}: the namespace map must be an object")
    return {str(k): str(v) for k, v in data.items()}


def failing_probes(path: Path, limit: int = 20,
                   namespaces: dict[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """(client, target, port, protocol) of failed probes in a results.jsonl, deduplicated and
    capped: one `kubectl ko trace` each takes seconds. Bad lines are skipped, not fatal."""
    seen: dict[tuple[str, str, str, str], None] = {}
    ns_map = namespaces or {}
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []  # a run that failed at setup probed nothing: no traces, not an error
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
                _real(str(rec["client"]), ns_map),
                _real(str(rec["target"]), ns_map),
                str(int(rec["port"])),
                str(rec.get("protocol", "TCP")).lower(),
            )
        except (KeyError, TypeError, ValueError):
            continue
        seen.setdefault(key, None)
        if len(seen) >= limit:
            break
    return list(seen)

