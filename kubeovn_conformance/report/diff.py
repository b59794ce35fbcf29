"""Regression diff between two runs or matrices (nightly to nightly, version to version).

Cases are compared per (case, mode, version); with across_versions per (case, mode), for
comparing one version's run with another's. A version includes the OVN a run recorded
(`lab:v1.16.2+ovn25.03.0`): runs on different OVNs are never compared unless asked for with
across_versions, and then the change says both. Exit status of the command: 1 on a regression.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeovn_conformance.report.markdown import md_escape
from kubeovn_conformance.report.records import CaseResult, ReportError, Run, version_key

KINDS = ("regression", "fix", "appeared", "vanished", "changed")
PASSING = ("pass", "undefined")  # undefined-only cases have nothing that could fail


@dataclass(frozen=True)
class Change:
    kind: str
    case: str
    mode: str
    old_version: str | None
    new_version: str | None
    old: str | None  # outcome, None when absent
    new: str | None
    mismatches: int = 0  # in the new run

    @property
    def version(self) -> str:
        if self.old_version and self.new_version and self.old_version != self.new_version:
            return f"{self.old_version} -> {self.new_version}"
        return str(self.new_version or self.old_version)


def _index(runs: list[Run], across_versions: bool, side: str) -> dict[tuple, tuple[str, CaseResult]]:
    if across_versions:
        versions = sorted({r.label for r in runs})
        if len(versions) != 1:
            raise ReportError(
                f"--across-versions needs one version per side; {side} has {', '.join(versions)}"
            )
    out: dict[tuple, tuple[str, CaseResult]] = {}
    for run in runs:  # later runs of the same version and mode replace earlier ones
        for name, result in run.cases.items():
            key = (name, run.mode) if across_versions else (name, run.mode, run.label)
            out[key] = (run.label, result)
    return out


def classify(old: str | None, new: str | None) -> str | None:
    if old is None:
        return "appeared"
    if new is None:
        return "vanished"
    if old in PASSING and new == "fail":
        return "regression"
    if old == "fail" and new in PASSING:
        return "fix"
    if old != new:
        return "changed"
    return None


def compare(old_runs: list[Run], new_runs: list[Run], across_versions: bool = False) -> list[Change]:
    old = _index(old_runs, across_versions, "OLD")
    new = _index(new_runs, across_versions, "NEW")
    # Across versions every change belongs to the one OLD -> NEW pair, present or not.
    sides = (old_runs[0].label, new_runs[0].label) if across_versions else None
    changes = []
    for key in old.keys() | new.keys():
        o, n = old.get(key), new.get(key)
        kind = classify(o[1].outcome if o else None, n[1].outcome if n else None)
        if kind:
            changes.append(
                Change(
                    kind=kind, case=key[0], mode=key[1],
                    old_version=sides[0] if sides else (o[0] if o else None),
                    new_version=sides[1] if sides else (n[0] if n else None),
                    old=o[1].outcome if o else None, new=n[1].outcome if n else None,
                    mismatches=n[1].mismatches if n else 0,
                )
            )
    return sorted(
        changes,
        key=lambda c: (version_key(c.version.split(" -> ")[-1]), c.version, c.mode,
                       KINDS.index(c.kind), c.case),
    )


def no_common_columns(old_runs: list[Run], new_runs: list[Run]) -> bool:
    return not ({r.column for r in old_runs} & {r.column for r in new_runs})


def ovn_mismatch(old_runs: list[Run], new_runs: list[Run]) -> str:
    """A note when OLD and NEW share a (version, mode) but ran on different OVNs, else ""."""
    old = {(r.version, r.mode): r.ovn for r in old_runs}
    pairs = sorted({(old[(r.version, r.mode)] or "?", r.ovn or "?") for r in new_runs
                    if (r.version, r.mode) in old and old[(r.version, r.mode)] != r.ovn})
    if not pairs:
        return ""
    which = ", ".join(f"{a} -> {b}" for a, b in pairs)
    return (f"note: OLD and NEW ran on different OVN versions ({which}); not compared case by "
            "case (they appear and vanish); to compare them use --across-versions")


def _counts(changes: list[Change]) -> str:
    n = {k: sum(1 for c in changes if c.kind == k) for k in KINDS}
    return (
        f"{n['regression']} regression(s), {n['fix']} fix(es), {n['appeared']} appeared, "
        f"{n['vanished']} vanished, {n['changed']} other change(s)"
    )


def _outcome(o: str | None) -> str:
    return o or "-"


def render_text(changes: list[Change], note: str = "") -> str:
    lines = []
    group = None
    for c in changes:
        if (c.version, c.mode) != group:
            group = (c.version, c.mode)
            lines.append(f"{c.version} {c.mode}")
        extra = f" ({c.mismatches} mismatches)" if c.new == "fail" and c.mismatches else ""
        lines.append(f"  {c.kind:<10} {c.case}: {_outcome(c.old)} -> {_outcome(c.new)}{extra}")
    if note:
        lines.append(note)
    lines.append(_counts(changes) if changes else "no changes")
    return "\n".join(lines) + "\n"


def render_markdown(changes: list[Change], note: str = "") -> str:
    out = ["## Conformance diff", ""]
    if note:
        out += [md_escape(note), ""]
    out.append(md_escape(_counts(changes)) if changes else "No changes.")
    if changes:
        out += ["", "| change | version | mode | case | old | new |", "|---|---|---|---|---|---|"]
        for c in changes:
            kind = f"**{c.kind}**" if c.kind == "regression" else c.kind
            out.append(
                "| " + " | ".join(
                    [kind] + [md_escape(x) for x in
                              (c.version, c.mode, c.case, _outcome(c.old), _outcome(c.new))]
                ) + " |"
            )
    return "\n".join(out) + "\n"
