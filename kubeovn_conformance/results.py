"""The results of a run, in the format other tools rely on (design.md, "Contracts").

`reports/<run-id>/results.jsonl` gets one JSON object per probe, appended as each case step
finishes, so an interrupted run keeps what it measured. `cases.jsonl` gets one line per case
and `summary.json` is rebuilt from it at the end of the run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeovn_conformance.textfile import read_text

OUTCOMES = ("pass", "fail", "undefined", "infra-error")


def new_run_id(backend: str, mode: str) -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{backend}-{mode}"


def _append_lines(path: Path, objects: Iterable[Mapping[str, Any]]) -> None:
    # One O_APPEND write per batch keeps lines whole even with several xdist workers.
    data = "".join(json.dumps(o, sort_keys=True) + "\n" for o in objects).encode()
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file, tolerating a truncated last line (an interrupted run)."""
    out = []
    if not path.exists():
        return out
    for line in read_text(path).splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@dataclass
class RunInfo:
    run_id: str
    backend: str
    mode: str
    kube_ovn_version: str
    profile: str
    directory: Path
    started: float = field(default_factory=time.time)
    # The OVN the cases ran on (`ovn-nbctl --version`), where the backend knows it (the lab):
    # in every record and the summary, so runs on different OVNs never mix silently.
    ovn_version: str = ""

    @property
    def meta(self) -> dict[str, str]:
        out = {"run_id": self.run_id, "backend": self.backend, "mode": self.mode,
               "kube_ovn_version": self.kube_ovn_version, "profile": self.profile}
        if self.ovn_version:
            out["ovn_version"] = self.ovn_version
        return out

    @property
    def results_path(self) -> Path:
        return self.directory / "results.jsonl"

    @property
    def cases_path(self) -> Path:
        return self.directory / "cases.jsonl"

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def probe_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        base = self.meta
        _append_lines(self.results_path, ({**base, **r} for r in records))

    def case_record(self, case: str, **fields: Any) -> None:
        _append_lines(self.cases_path, [{"case": case, **fields}])

    def write_summary(self) -> dict[str, Any]:
        cases = {c.pop("case"): c for c in read_jsonl(self.cases_path)}
        summary = {**self.meta, "started": _iso(self.started), "finished": _iso(time.time()),
                   "cases": cases}
        (self.directory / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
        return summary


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
