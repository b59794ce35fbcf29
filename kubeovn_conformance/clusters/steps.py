"""A plan step: one command, or an in-process action with the equivalent CLI call."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubeovn_conformance.clusters.matrix import REPO_ROOT


@dataclass
class Step:
    """One command. `action`, when set, is done in-process instead of running argv (argv is
    then the equivalent CLI call, which is what --dry-run prints)."""

    argv: list[str]
    allow_fail: bool = False
    action: Callable[[], None] | None = field(default=None, repr=False)

    def display(self) -> str:
        return shlex.join(self.argv)


def _write(path: str, text: str) -> Callable[[], None]:
    def act() -> None:
        p = REPO_ROOT / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return act



def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)

