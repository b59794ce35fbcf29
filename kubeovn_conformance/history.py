"""Kube-OVN's NetworkPolicy bug history as data (clusters/kube-ovn-history.yaml).

Each entry names a past (or still open) bug: its fix, the tags it affected, the lab knob
that reproduces it, the cases that must catch it and its *shape*: the exact cells those
cases get wrong while the bug is present. `compare` checks a run's records against a
shape, for the corpus test on the lab and for the weekly kind run on pre-fix tags
(`kubeovn-conformance history check`).

A shape is a list of patterns; a pattern names values of record fields (a value or a list
of values; a missing field matches anything): case, step, client, target, path, port,
protocol, expected (allow|deny) and observed (allow: connected or refused, deny: timeout,
leak: the final sample agreed but a transient one did not). The failing cells of a run
must be exactly the cells some pattern matches.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).resolve().parent.parent / "clusters" / "kube-ovn-history.yaml"
PATTERN_FIELDS = ("case", "step", "client", "target", "path", "port", "protocol", "expected",
                  "observed")
ENTRY_FIELDS = {"id", "title", "status", "fix", "commits", "fixed_in", "affected", "upstream",
                "wrong", "cases", "shape", "expressible", "transient", "kind", "source"}
STATUSES = ("fixed", "open")


class CorpusError(ValueError):
    """A malformed corpus file: one line naming the file and the entry."""


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    status: str  # fixed | open (still in the newest release)
    fix: str | None  # the profile Fix id whose knob reproduces it (history:<fix>)
    commits: tuple[str, ...]
    fixed_in: tuple[str, ...]
    affected: str
    upstream: tuple[str, ...]
    wrong: str
    cases: tuple[str, ...]
    shape: tuple[Mapping[str, Any], ...]
    expressible: bool
    why_not: str  # when not expressible: the lab capability that is missing
    transient: bool
    kind: Mapping[str, str]  # optional pre_fix / fixed tags for the weekly kind run
    source: str

    @property
    def history_profile(self) -> str:
        return f"history:{self.fix}"

    @property
    def fixed_profile(self) -> str:
        return f"fixed:{self.fix}"


def _tuple(value: Any, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise CorpusError(f"{where}: {name} must be a string or a list of strings")


def _pattern(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise CorpusError(f"{where}: a shape pattern must be a non-empty mapping")
    unknown = set(raw) - set(PATTERN_FIELDS)
    if unknown:
        raise CorpusError(f"{where}: unknown pattern field(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(PATTERN_FIELDS)}")
    return raw


def _entry(source: str, index: int, raw: Any) -> Entry:
    where = f"{source}: entry {index}"
    if not isinstance(raw, dict):
        raise CorpusError(f"{where}: not a mapping")
    if raw.get("id"):
        where += f" ({raw['id']})"
    unknown = set(raw) - ENTRY_FIELDS
    if unknown:
        raise CorpusError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    for required in ("id", "title", "status", "affected", "wrong", "source"):
        if not isinstance(raw.get(required), str) or not raw[required]:
            raise CorpusError(f"{where}: {required} is required (a string)")
    if raw["status"] not in STATUSES:
        raise CorpusError(f"{where}: status must be one of {', '.join(STATUSES)}")
    expressible = raw.get("expressible", True)
    if expressible is not True and not (isinstance(expressible, str) and expressible):
        raise CorpusError(f"{where}: expressible is true or the reason it is not")
    shape = raw.get("shape") or []
    if not isinstance(shape, list):
        raise CorpusError(f"{where}: shape must be a list of patterns")
    cases = _tuple(raw.get("cases"), where, "cases")
    if expressible is True and not (cases and shape):
        raise CorpusError(f"{where}: an expressible entry needs cases and a shape")
    fix = raw.get("fix")
    if fix is not None:
        from kubeovn_conformance.backends.lab.profile import FIXES_BY_ID

        if fix not in FIXES_BY_ID:
            raise CorpusError(f"{where}: fix {fix!r} is not a profile knob; known: "
                              f"{', '.join(FIXES_BY_ID)}")
    kind = raw.get("kind") or {}
    if not isinstance(kind, dict) or set(kind) - {"pre_fix", "fixed"}:
        raise CorpusError(f"{where}: kind takes pre_fix and fixed tags")
    return Entry(raw["id"], raw["title"], raw["status"], fix,
                 _tuple(raw.get("commits"), where, "commits"),
                 _tuple(raw.get("fixed_in"), where, "fixed_in"), raw["affected"],
                 _tuple(raw.get("upstream"), where, "upstream"), raw["wrong"], cases,
                 tuple(_pattern(p, f"{where}: shape[{i}]") for i, p in enumerate(shape)),
                 expressible is True, "" if expressible is True else expressible,
                 bool(raw.get("transient", False)), dict(kind), raw["source"])


def load_corpus(path: str | Path = CORPUS) -> list[Entry]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CorpusError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise CorpusError(f"{path}:{at} not valid YAML") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list):
        raise CorpusError(f"{path}: want a mapping with an 'entries' list")
    entries = [_entry(str(path), i, e) for i, e in enumerate(raw["entries"])]
    seen: set[str] = set()
    for e in entries:
        if e.id in seen:
            raise CorpusError(f"{path}: entry id {e.id!r} appears twice")
        seen.add(e.id)
    return entries


# --------------------------------------------------------------------------- comparing


def observed_class(record: Mapping[str, Any]) -> str:
    if record.get("leaks") and record.get("outcome") == "fail" and record.get("observed") == \
            record.get("expected_observed"):
        return "leak"
    return {"connected": "allow", "refused": "allow", "timeout": "deny"}.get(
        str(record.get("observed")), str(record.get("observed")))


def _value(record: Mapping[str, Any], name: str) -> Any:
    if name == "expected":
        return record.get("verdict")
    if name == "observed":
        return observed_class(record)
    return record.get(name)


def matches(pattern: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    for name, want in pattern.items():
        allowed = want if isinstance(want, list) else [want]
        if _value(record, name) not in allowed:
            return False
    return True


def cell_key(record: Mapping[str, Any]) -> tuple:
    return (record.get("case"), record.get("step"), record.get("client"), record.get("target"),
            record.get("path"), record.get("port"), record.get("protocol"))


def describe(key: tuple) -> str:
    case, step, client, target, path, port, protocol = key
    return f"{case}/{step}: {client} -> {target} {path} {port}/{protocol}"


@dataclass(frozen=True)
class Comparison:
    unexpected: tuple[str, ...]  # failing cells no pattern names
    missing: tuple[str, ...]  # cells a pattern names that did not fail
    failing: int

    @property
    def exact(self) -> bool:
        return not self.unexpected and not self.missing


def compare(records: Iterable[Mapping[str, Any]], entry: Entry) -> Comparison:
    """The run's records of the entry's cases against the entry's shape."""
    own = [r for r in records if r.get("case") in entry.cases]
    failing = {cell_key(r) for r in own if r.get("outcome") == "fail"}
    predicted = {cell_key(r) for r in own if any(matches(p, r) for p in entry.shape)}
    return Comparison(tuple(describe(k) for k in sorted(failing - predicted, key=str)),
                      tuple(describe(k) for k in sorted(predicted - failing, key=str)),
                      len(failing))


# --------------------------------------------------------------------------- command line


def check(records: Sequence[Mapping[str, Any]], entry: Entry, expect: str) -> tuple[bool, list[str]]:
    """Does a run agree with an entry? `expect` fail (a pre-fix tag: exactly the entry's shape
    fails) or pass (a fixed tag: none of its cells fail). A run that did not measure every case
    of the entry, or whose cells of them hit an infra-error, agrees with neither: a cluster that
    never came up must not read as "fixed" (nor an empty run as "exactly the shape")."""
    own = [r for r in records if r.get("case") in entry.cases]
    lines: list[str] = []
    absent = [c for c in entry.cases if not any(r.get("case") == c for r in own)]
    infra = [describe(cell_key(r)) for r in own if r.get("outcome") == "infra-error"]
    lines += [f"NOT RUN: {c}" for c in absent]
    lines += [f"INFRA-ERROR: {line}" for line in infra]
    if expect == "pass":
        bad = [describe(cell_key(r)) for r in own if r.get("outcome") == "fail"]
        lines += [f"FAIL (fixed tag, must pass): {line}" for line in bad]
        ok = not (bad or absent or infra)
        lines.append(f"{entry.id}: {len(bad)} failing cells where none may fail"
                     + ("" if ok else f", {len(absent)} cases not run, {len(infra)} infra-errors"))
        return ok, lines
    cmp = compare(records, entry)
    lines += [f"UNEXPECTED failure: {line}" for line in cmp.unexpected]
    lines += [f"MISSING failure: {line}" for line in cmp.missing]
    if not cmp.failing and not absent:
        # A shape names cells as the bug makes them look, so a run without the bug matches no
        # pattern at all: "nothing predicted, nothing failed" is not agreement.
        lines.append("NO failure: none of the entry's cells failed (the bug did not show)")
    ok = cmp.exact and cmp.failing > 0 and not (absent or infra)
    lines.append(f"{entry.id}: {cmp.failing} failing cells, "
                 f"{'exactly the recorded shape' if ok else 'not the recorded shape'}")
    return ok, lines


def _cmd_check(args: argparse.Namespace) -> int:
    from kubeovn_conformance.results import read_jsonl

    entries = {e.id: e for e in load_corpus(args.corpus)}
    if args.entry not in entries:
        raise CorpusError(f"{args.corpus}: no entry {args.entry!r}")
    path = Path(args.run)
    path = path / "results.jsonl" if path.is_dir() else path
    if not path.exists():
        raise CorpusError(f"{path}: no results file")
    ok, lines = check(read_jsonl(path), entries[args.entry], args.expect)
    for line in lines:
        print(line)
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    hist = sub.add_parser("history", help="Kube-OVN's NetworkPolicy bug history (the corpus)")
    hsub = hist.add_subparsers(dest="history_command", required=True, metavar="SUBCOMMAND")
    chk = hsub.add_parser("check", help="does a run fail exactly an entry's recorded cells?",
                          description="Compare a run (results.jsonl or its directory) with one "
                          "corpus entry: --expect fail (a pre-fix tag: exactly the entry's "
                          "shape fails) or --expect pass (a fixed tag: none of its cells fail).")
    chk.add_argument("run", help="a run directory or its results.jsonl")
    chk.add_argument("--entry", required=True, help="corpus entry id (e.g. egress-rule0-empty)")
    chk.add_argument("--expect", choices=("fail", "pass"), default="fail")
    chk.add_argument("--corpus", default=str(CORPUS), help="the corpus file")
    chk.set_defaults(func=_cmd_check)
    lst = hsub.add_parser("list", help="the entries, one line each")
    lst.add_argument("--corpus", default=str(CORPUS))
    lst.set_defaults(func=_cmd_list)


def _cmd_list(args: argparse.Namespace) -> int:
    for e in load_corpus(args.corpus):
        how = "caught by " + ", ".join(e.cases) if e.expressible else f"not expressible: {e.why_not}"
        print(f"{e.id:34} {e.status:5} {e.affected:28} {how}")
    return 0


def entries_for(cases: Sequence[str], corpus: Sequence[Entry]) -> list[Entry]:
    return [e for e in corpus if set(e.cases) & set(cases)]
