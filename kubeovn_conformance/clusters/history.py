"""The weekly history runs: every entry of clusters/kube-ovn-history.yaml with
`kind: {pre_fix: TAG, fixed: TAG}`, in each mode, on both tags; the pre-fix tag must fail
exactly the entry's recorded cells, the fixed tag none of them.

The tags live only in the corpus. A tag is installed the way its release line's row of
clusters/versions.yaml installs the newest patch (kind, node image, kubectl, install method,
chart keys), with only the Kube-OVN tag changed: the image, the chart version (helm rows) and
the tag in the install.sh URL (install.sh rows). clusters/README.md ("History tags") records,
per tag, what was checked in kubeovn/kube-ovn that makes it installable that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubeovn_conformance.clusters.matrix import MODES, ClusterError, Matrix, VersionEntry

EXPECT = {"pre_fix": "fail", "fixed": "pass"}


def _tuple(tag: str) -> tuple[int, ...]:
    return tuple(int(x) for x in tag.lstrip("v").split("."))


def _line(tag: str) -> str:
    return ".".join(tag.split(".")[:2])


def case_id(mode: str, case: str, tag: str) -> str:
    """A case's pytest id on kind (pytest_plugin.pytest_generate_tests)."""
    return f"{mode}-{case}-{tag}"


def k_expression(cases: Sequence[str], mode: str, tag: str) -> str:
    """`pytest -k` selecting exactly these cases: the bracketed id matches only
    `test_case[<id>]`, never a case whose name merely contains another's."""
    return " or ".join(f"[{case_id(mode, c, tag)}]" for c in cases)


def derive(matrix: Matrix, tag: str) -> VersionEntry:
    """The row of `tag`'s release line with only the Kube-OVN tag changed."""
    rows = [e for e in matrix.versions.values() if e.line == _line(tag)]
    if not rows:
        raise ClusterError(f"history tag {tag}: no row of line {_line(tag)} in the version matrix")
    row = rows[0]
    if _tuple(tag) > _tuple(row.version):
        raise ClusterError(f"history tag {tag} is newer than its line's row {row.version}")
    url = row.install_sh_url
    if row.install == "install.sh":
        if f"/{row.version}/" not in url:
            raise ClusterError(f"{row.version}: install_sh_url does not name the tag; cannot derive {tag}")
        url = url.replace(f"/{row.version}/", f"/{tag}/")
    # The chart at a tag is published as version == tag only on helm lines (v1.12.5's chart
    # still says 1.12.4), so an install.sh tag names no chart.
    chart = tag if row.install == "helm" else ""
    return replace(row, version=tag, chart_version=chart, install_sh_url=url)


@dataclass(frozen=True)
class HistoryRun:
    entry: str
    tag: str
    expect: str  # fail (the pre-fix tag) | pass (the fixed tag)
    mode: str
    cases: tuple[str, ...]
    row: str  # the versions.yaml row the tag inherits from
    install: str

    @property
    def k(self) -> str:
        return k_expression(self.cases, self.mode, self.tag)

    @property
    def artifact(self) -> str:
        return f"history-{self.entry}-{self.tag}-{self.mode}"

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "tag": self.tag, "expect": self.expect, "mode": self.mode,
                "cases": " ".join(self.cases), "k": self.k, "row": self.row,
                "install": self.install, "artifact": self.artifact}

    def make_word(self) -> str:
        """One word for the Makefile: entry/tag/expect/mode/case,case."""
        return "/".join((self.entry, self.tag, self.expect, self.mode, ",".join(self.cases)))


def _corpus(corpus: Path | None) -> list[Any]:
    from kubeovn_conformance.history import CORPUS, CorpusError, load_corpus

    try:
        return load_corpus(corpus or CORPUS)
    except CorpusError as e:
        raise ClusterError(str(e)) from None


def history_tags(matrix: Matrix, corpus: Path | None = None) -> dict[str, VersionEntry]:
    """Every pre-fix and fixed tag of the corpus, derived; checks each pair."""
    out: dict[str, VersionEntry] = {}
    for e in _corpus(corpus):
        if not e.kind:
            continue
        where = f"history entry {e.id}"
        pre, fixed = e.kind.get("pre_fix"), e.kind.get("fixed")
        if not (isinstance(pre, str) and isinstance(fixed, str)):
            raise ClusterError(f"{where}: kind needs both pre_fix and fixed tags")
        for tag in (pre, fixed):
            if not (tag.startswith("v") and len(tag.split(".")) == 3 and all(
                    x.isdigit() for x in tag[1:].split("."))):
                raise ClusterError(f"{where}: {tag!r} is not a tag like v1.13.5")
        if _line(pre) != _line(fixed) or _tuple(pre) >= _tuple(fixed):
            raise ClusterError(f"{where}: pre_fix {pre} must precede fixed {fixed} on one line")
        if not e.cases:
            raise ClusterError(f"{where}: kind tags but no cases")
        out[pre] = derive(matrix, pre)
        out[fixed] = derive(matrix, fixed)
    return out


def history_runs(matrix: Matrix, corpus: Path | None = None, entry: str = "all",
                 modes: Sequence[str] = MODES, tag: str = "") -> list[HistoryRun]:
    """Entry x (pre-fix, fixed) x mode; `tag` keeps only that tag's runs."""
    tags = history_tags(matrix, corpus)  # validates
    if tag and tag not in tags:
        raise ClusterError(f"no history tag {tag!r}; known: {', '.join(sorted(tags))}")
    entries = [e for e in _corpus(corpus) if e.kind]
    if entry != "all" and entry not in {e.id for e in entries}:
        known = ", ".join(e.id for e in entries)
        raise ClusterError(f"no history entry {entry!r} with kind tags; known: {known}")
    runs = []
    for e in entries:
        if entry not in ("all", e.id):
            continue
        for which in ("pre_fix", "fixed"):
            t = e.kind[which]
            if tag and t != tag:
                continue
            row = next(r for r in matrix.versions.values() if r.line == tags[t].line)
            runs += [HistoryRun(e.id, t, EXPECT[which], m, e.cases, row.version, row.install)
                     for m in modes]
    return runs


def summarise(runs: Sequence[HistoryRun], reports: Path,
              corpus: Path | None = None) -> tuple[list[str], list[str]]:
    """Markdown rows and problems for the weekly's last job: every run's artifact
    (reports/<artifact>/results.jsonl) checked again against its entry."""
    from kubeovn_conformance.history import check
    from kubeovn_conformance.results import read_jsonl

    entries = {e.id: e for e in _corpus(corpus)}
    md = ["| entry | tag | mode | expect | result |", "|---|---|---|---|---|"]
    problems = []
    for r in runs:
        results = Path(reports) / r.artifact / "results.jsonl"
        if not results.is_file():
            ok, last = False, "no results.jsonl (the cluster or the suite never ran; see its job)"
        else:
            ok, lines = check(read_jsonl(results), entries[r.entry], r.expect)
            last = lines[-1]
        md.append(f"| {r.entry} | {r.tag} | {r.mode} | {r.expect} | "
                  f"{'ok' if ok else 'FAILED'}: {last} |")
        if not ok:
            problems.append(f"{r.entry} {r.tag} {r.mode} (expect {r.expect}): {last}")
    return md, problems
