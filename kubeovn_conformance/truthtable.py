"""Truth tables as people know them from the upstream NetworkPolicy e2e.

Rows are clients, columns destinations; `.` reachable/allowed, `X` blocked/denied,
`?` undefined, `E` an error, blank for a cell that was not probed (loopback).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

VERDICT_CHAR = {"allow": ".", "deny": "X", "undefined": "?"}
OBSERVED_CHAR = {"connected": ".", "refused": ".", "timeout": "X", "error": "E", None: "E"}


def render(title: str, cells: Mapping[tuple[str, str], str]) -> str:
    """One table. `cells` maps (row, column) to a one-character mark."""
    rows = sorted({r for r, _ in cells})
    cols = sorted({c for _, c in cells})
    width = max(len(r) for r in rows) if rows else 0
    lines = [title, " " * width + "  " + "  ".join(cols)]
    for r in rows:
        marks = (cells.get((r, c), " ").center(len(c)) for c in cols)
        lines.append(r.ljust(width) + "  " + "  ".join(marks))
    return "\n".join(lines)


def group(records: Iterable[Mapping[str, object]], mark) -> dict[str, dict[tuple[str, str], str]]:  # type: ignore[no-untyped-def]
    """Split probe records into one table per (path, port, protocol) using `mark(record)`."""
    tables: dict[str, dict[tuple[str, str], str]] = {}
    for r in records:
        title = f"{r['path']} port {r['port']}/{r['protocol']}"
        if r["path"] == "service" and r.get("target_port") != r["port"]:
            title += f" (target port {r['target_port']})"
        tables.setdefault(title, {})[(str(r["client"]), str(r["target"]))] = mark(r)
    return tables


def render_all(records: Iterable[Mapping[str, object]], mark, heading: str = "") -> str:  # type: ignore[no-untyped-def]
    parts = []
    for title, cells in sorted(group(records, mark).items(), key=lambda kv: _order(kv[0])):
        parts.append(render(f"{heading}{title}", cells))
    return "\n\n".join(parts)


def _order(title: str) -> tuple[int, str]:
    return (0 if title.startswith("pod") else 1, title)


def observed_mark(record: Mapping[str, object]) -> str:
    return OBSERVED_CHAR.get(record.get("observed"), "E")  # type: ignore[arg-type]


def expected_mark(record: Mapping[str, object]) -> str:
    return VERDICT_CHAR[str(record["verdict"])]


def diff_mark(record: Mapping[str, object]) -> str:
    outcome = record.get("outcome")
    return {"pass": ".", "fail": "X", "undefined": "?", "infra-error": "E"}.get(str(outcome), "E")
