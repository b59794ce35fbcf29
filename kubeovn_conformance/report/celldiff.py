"""Cell by cell: did two runs of the same cases see the same thing?

The case-level diff (diff.py) says which cases changed outcome; this compares every probe
cell (case, step, client, target, path, port, protocol) of two runs, e.g. the lab on the
host's OVN against the lab on OVN 25.03: what each saw, as a verdict (`allow` for connected
or refused, `deny` for a timeout, `error`), and its outcome. A cell only one side has is a
change too (a case that did not run on one side is not "the same"). Cells whose expected
verdict is `undefined` (hairpin through the pod's own Service, ...) are implementation-defined:
`compare_cells(..., defined=False)` lists only those, for a reader, never for a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KEY = ("case", "step", "client", "target", "path", "port", "protocol")
SEEN = {"connected": "allow", "refused": "allow", "timeout": "deny"}


def cell_key(record: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(record.get(k) or "") for k in KEY)


def seen(record: Mapping[str, Any]) -> str:
    """What a probe saw, as a verdict: allow, deny, or error (nothing usable)."""
    return SEEN.get(str(record.get("observed") or ""), "error")


@dataclass(frozen=True)
class CellChange:
    key: tuple[str, ...]
    old: tuple[str, str] | None  # (seen, outcome); None: the cell is missing on that side
    new: tuple[str, str] | None

    def describe(self) -> str:
        case, step, client, target, path, port, protocol = self.key
        return (f"{case} [{step or 'initial'}] {client} -> {target} {path} {port}/{protocol}: "
                f"{_show(self.old)} -> {_show(self.new)}")


def _show(side: tuple[str, str] | None) -> str:
    return "absent" if side is None else f"{side[0]} ({side[1]})"


def _index(records: Iterable[Mapping[str, Any]], defined: bool
           ) -> dict[tuple[str, ...], tuple[str, str]]:
    # A cell recorded twice (a retried case) counts by its last record, as the summary does.
    return {cell_key(r): (seen(r), str(r.get("outcome") or "")) for r in records
            if (r.get("verdict") != "undefined") == defined}


def compare_cells(old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]],
                  defined: bool = True) -> list[CellChange]:
    """Every cell whose verdict or outcome differs, or that only one side has, sorted.
    defined=False: the same over the implementation-defined cells only."""
    a, b = _index(old, defined), _index(new, defined)
    return [CellChange(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k)]
