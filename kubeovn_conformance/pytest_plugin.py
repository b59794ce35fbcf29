"""pytest integration: options, the backend and runner fixtures, case parametrization.

Suites declare `CASES` (a list of runner.Case) and a test taking `case` and `conformance`;
this plugin parametrizes them with readable ids (`underlay-egress-allow-target-port`), runs
them on the chosen backend, and writes results, cases and summary into reports/<run-id>/.
Skips are decided by configuration (backend and mode), never by what a cluster answers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubeovn_conformance import packing, placement, signals
from kubeovn_conformance.backends import factory
from kubeovn_conformance.backends.base import Backend, InfraError
from kubeovn_conformance.report import junit_records
from kubeovn_conformance.report.junit import add_junit_properties
from kubeovn_conformance.report.known import Explained, KnownIssue, explain, load_known
from kubeovn_conformance.report.records import ReportError
from kubeovn_conformance.results import RunInfo, new_run_id, read_jsonl
from kubeovn_conformance.runner import Case, Runner

RUN_ID_KEY = "kubeovn_conformance_run_id"
# --backend cluster/kind: the Subnet and version preflight, before collection (its docstring).
pytest_plugins = ["kubeovn_conformance.cluster_plugin"]


@dataclass
class _KeepingRun(RunInfo):
    """RunInfo that also keeps the probe records of the case in progress (for JUnit
    properties and failure text that depend on what was written, e.g. node placement)."""

    kept: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def probe_records(self, records: Any) -> None:
        records = list(records)
        self.kept.extend(records)
        super().probe_records(records)


_OPEN: list[Conformance] = []  # closed at session end even when Ctrl-C skipped fixture teardown


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("kubeovn-conformance", "Kube-OVN NetworkPolicy conformance")
    g.addoption("--backend", choices=("lab", "kind", "cluster"), default="lab",
                help="where cases run: lab (real OVN on network namespaces), cluster (a "
                     "Kubernetes cluster running Kube-OVN that you have) or kind (a cluster made "
                     "by scripts/cluster-up: the same, SCTP decided by this machine's kernel)")
    g.addoption("--mode", choices=("overlay", "underlay"), default="overlay",
                help="Kube-OVN network mode of the subnet the test pods are on (with --subnet, "
                     "checked against it: a Subnet with spec.vlan is underlay)")
    g.addoption("--kube-ovn-version", default=None,
                help="Kube-OVN version under test (kind: as installed by scripts/cluster-up; "
                     "cluster: default read from the kube-ovn-controller image in kube-system)")
    g.addoption("--kubeconfig", default=None,
                help="kind/cluster: kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config)")
    g.addoption("--subnet", default=None, metavar="NAME",
                help="kind/cluster: put every test pod on this Kube-OVN Subnet (pod annotation "
                     "ovn.kubernetes.io/logical_switch); default: the namespace's subnet")
    g.addoption("--agent-image", default=None, metavar="IMAGE",
                help="kind/cluster: image the probe agent runs in, any with python3 >= 3.9 "
                     "(default docker.io/library/python:3.12-alpine; for mirrored registries)")
    g.addoption("--lab-profile", default=None,
                help="lab: Kube-OVN behaviour to reproduce: a tag (v1.15.6), a line (v1.15 = its "
                     "newest tag), history:<fix id> (clusters/kube-ovn-history.yaml); default newest")
    g.addoption("--lab-ovn", choices=("host", "25.03"), default="25.03",
                help="lab: the OVN that runs the daemons: 25.03 (default; a Debian 13 root "
                     "built once into .cache/lab-root/) or host (the distribution's packages)")
    g.addoption("--vlan-id", type=int, default=100, help="lab underlay: VLAN tag (0 = untagged)")
    g.addoption("--probe-timeout", type=float, default=None,
                help="seconds per probe (default: the backend's, lab 0.5, kind 1.0)")
    g.addoption("--deadline", type=float, default=10.0,
                help="seconds from applying a policy until observed must agree with expected")
    g.addoption("--run-id", default=None, help="name of reports/<run-id>/ (default: time-backend-mode)")
    g.addoption("--reports-dir", default="reports", help="where run directories go")
    g.addoption("--pack", type=int, default=8,
                help="run up to N consecutive cases of one workload in one dataplane state, each "
                     "in namespaces of its own (cases whose steps change labels, pods or "
                     "Services always run alone); 1 turns packing off (default 8)")
    g.addoption("--case-file", default=None, metavar="FILE",
                help="run the manifests of FILE (e.g. a fuzzer finding) as one case: "
                     "pytest suites/test_case_file.py --case-file FILE")


def _run_id(config: pytest.Config) -> str:
    worker = getattr(config, "workerinput", None)
    if worker is not None and RUN_ID_KEY in worker:
        return str(worker[RUN_ID_KEY])
    if not getattr(config, "_kubeovn_run_id", None):
        config._kubeovn_run_id = config.getoption("--run-id") or new_run_id(  # type: ignore[attr-defined]
            config.getoption("--backend"), config.getoption("--mode"))
    return str(config._kubeovn_run_id)  # type: ignore[attr-defined]


def _uses_suites(config: pytest.Config) -> bool:
    return any("suites" in Path(str(a)).parts or str(a).startswith("suites") for a in config.args)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Per-dimension markers of the generated cases (gen_<dimension>_<value>), registered so
    # `-m gen_peers_ns` works under --strict-markers.
    from kubeovn_conformance.generate import all_markers

    for name, text in all_markers():
        config.addinivalue_line("markers", f"{name}: {text}")
    if _uses_suites(config):  # SIGTERM as Ctrl-C, main process and xdist workers alike
        config._kubeovn_signals = signals.interrupts(  # type: ignore[attr-defined]
            forward=lambda: config.pluginmanager.getplugin("dsession") is not None,
            announce=False)  # said by pytest_keyboard_interrupt: output is captured in a test
        _SIGNALS.append(config._kubeovn_signals)  # type: ignore[attr-defined]
    if not _uses_suites(config) or hasattr(config, "workerinput"):
        return
    try:
        _profile(config)
        _case_file(config)
    except ValueError as e:  # ManifestError too: one line naming the file and object
        raise pytest.UsageError(str(e)) from None
    if config.getoption("--backend") == "lab" and not config.option.collectonly:
        # One clear line before any case runs, not the same error once per case.
        from kubeovn_conformance.backends.lab.daemons import Lab, LabError, check_prerequisites

        try:
            ovn = Lab(ovn=config.getoption("--lab-ovn")).ovn
            check_prerequisites(ovn)
            ovn.info()  # the OVN root is built here, once, before any case runs
        except LabError as e:
            raise pytest.UsageError(f"--backend lab --lab-ovn {config.getoption('--lab-ovn')}: "
                                    f"{e}") from None
    run_dir = Path(config.getoption("--reports-dir")) / _run_id(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not config.option.xmlpath:
        config.option.xmlpath = str(run_dir / "junit.xml")


_SIGNALS: list[signals.Interrupts] = []


_INTERRUPTED: list[bool] = []  # set when this process's session was interrupted


def pytest_keyboard_interrupt(excinfo: Any) -> None:
    _INTERRUPTED.append(True)  # closing backends then starts their removal without waiting
    if any(signal.SIGTERM in h.received[:1] for h in _SIGNALS):
        print(f"\nkubeovn-conformance: {signals.SIGTERM_NOTE}", file=sys.stderr, flush=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _INTERRUPTED and _uses_suites(config) and not hasattr(config, "workerinput"):
        run_dir = Path(config.getoption("--reports-dir")) / _run_id(config)
        if (run_dir / "junit.xml").is_file():  # written by pytest at the session's end
            with contextlib.suppress(ReportError):
                junit_records.complete(run_dir)
    _INTERRUPTED.clear()
    handlers = getattr(config, "_kubeovn_signals", None)
    if handlers is not None:
        handlers.restore()
        if handlers in _SIGNALS:
            _SIGNALS.remove(handlers)


def pytest_configure_node(node: Any) -> None:  # xdist: every worker writes into the same run
    node.workerinput[RUN_ID_KEY] = _run_id(node.config)


def _profile(config: pytest.Config) -> str:
    """The lab's translation profile name ("" on kind, where the cluster is the truth)."""
    if config.getoption("--backend") != "lab":
        return ""
    from kubeovn_conformance.backends.lab.profile import DEFAULT, get_profile

    return get_profile(config.getoption("--lab-profile") or DEFAULT.name).name


def _version(config: pytest.Config) -> str:
    """The Kube-OVN version a run stands for. On the lab: the exact tag of the profile (a
    history profile stands for the tag that shipped the fix, minus the fix), so known-issue
    version ranges compare against the behaviour the lab really reproduced."""
    if config.getoption("--backend") == "lab":
        from kubeovn_conformance.backends.lab.profile import get_profile

        return f"lab:{get_profile(_profile(config)).tag}"
    return config.getoption("--kube-ovn-version") or "unknown"


CASE_FILE_SUITE = "test_case_file.py"  # the suite module that runs --case-file


def _case_file(config: pytest.Config) -> tuple[Case, list[tuple[str, str]]] | None:
    """The --case-file case and its JUnit properties (loaded once), or None."""
    path = config.getoption("--case-file")
    if not path:
        return None
    if not hasattr(config, "_kubeovn_case_file"):
        from kubeovn_conformance.fuzz.case_file import load_case_file

        config._kubeovn_case_file = load_case_file(path)  # type: ignore[attr-defined]
    return config._kubeovn_case_file  # type: ignore[attr-defined,no-any-return]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Without --case-file the case-file suite has nothing to run: not collected at all.
    if collection_path.name == CASE_FILE_SUITE and not config.getoption("--case-file"):
        return True
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only suite modules (those declaring CASES) are parametrized here.
    cases: list[Case] | None = getattr(metafunc.module, "CASES", None)
    if cases is None or "case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if getattr(metafunc.module, "CASE_FILE", False):
        loaded = _case_file(config)
        if loaded is None:  # the module named without --case-file
            metafunc.parametrize("case", [pytest.param(None, marks=pytest.mark.skip(
                reason="give the manifests to run: --case-file FILE"))], ids=["no-case-file"])
            return
        cases = [loaded[0]]
    mode = config.getoption("--mode")
    # On kind the version is part of the id, so JUnit names stay unique across a matrix.
    suffix = "" if config.getoption("--backend") == "lab" else f"-{_version(config)}"
    metafunc.parametrize("case", [pytest.param(c, marks=[getattr(pytest.mark, m) for m in c.marks],
                                               id=f"{mode}-{c.id}{suffix}") for c in cases])


KNOWN_ISSUES = Path(__file__).resolve().parent.parent / "clusters" / "known-issues.yaml"


# trylast: after -k/-m deselection, so packs are made of the selected cases only (before,
# `-k one-id` ran that case's whole pack of neighbours and recorded them too).
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Read clusters/known-issues.yaml once (a bad file stops the run with one line) and
    remember the collection order (packs follow it). Known issues are applied per cell once
    a case has run (Conformance.check): entries match cells by mechanism, or whole cases by
    name."""
    if not _uses_suites(config):
        return
    try:
        config._kubeovn_known = load_known(KNOWN_ISSUES if KNOWN_ISSUES.exists() else None)  # type: ignore[attr-defined]
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    order: list[Case] = []
    for item in items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        if not isinstance(case, Case):
            continue
        order.append(case)
        from_file = _case_file(config)
        if from_file is not None and case is from_file[0]:
            item.user_properties.extend(from_file[1])  # the file; a fuzzer's seed and count
    config._kubeovn_case_order = order  # type: ignore[attr-defined]  # packs follow this order


def _cell(record: dict[str, Any]) -> str:
    return (f"{record.get('step', 'initial')}: {record['client']} -> {record['target']} "
            f"{record['path']} {record['port']}/{record['protocol']} expected {record['verdict']}")


def _known_outcome(ex: Explained, outcome: str, strict: bool, case: Case, text: str) -> None:
    """Known issues applied to a finished case: xfail when every failing cell is explained;
    a matched cell that passed fails the test on the lab (strict, as XPASS(strict) does), so
    a fix shows at once; anything unexplained is a plain failure (the caller's)."""
    stale = ex.stale_issues(outcome)
    if stale and strict:
        cells = [_cell(dict(r)) for r, _ in ex.stale][:10]
        pytest.fail(f"[XPASS(strict)] {case.id}: known issue(s) {', '.join(i.id for i in stale)} "
                    "no longer fail here; the entry may be stale"
                    + "".join(f"\n  passed: {c}" for c in cells)
                    + (f"\n\n{text}" if text else ""), pytrace=False)
    if ex.known(outcome):
        pytest.xfail("; ".join(f"known: {i.url}: {i.explanation}" for i in ex.issues()))


def make_backend(config: pytest.Config, run_id: str) -> Backend:
    def optional(name: str) -> Any:  # options a hand-made config (tests) may not carry
        try:
            return config.getoption(name)
        except (KeyError, ValueError):
            return None

    return factory.make_backend(
        config.getoption("--backend"), config.getoption("--mode"),
        lab_profile=config.getoption("--lab-profile"), vlan_id=config.getoption("--vlan-id"),
        kubeconfig=config.getoption("--kubeconfig"),
        kube_ovn_version=config.getoption("--kube-ovn-version"), run_id=run_id,
        lab_ovn=config.getoption("--lab-ovn"), subnet=optional("--subnet"),
        agent_image=optional("--agent-image"))


class Conformance:
    """What a suite test talks to: run a case, fail with the truth tables when it disagrees."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        run_id = _run_id(config)
        worker = getattr(config, "workerinput", {}).get("workerid", "")
        self.backend = make_backend(config, f"{run_id}-{worker}" if worker else run_id)
        try:  # the lab's OVN (its root is built here on first use); "" where unknown
            ovn_version = str(getattr(self.backend, "ovn_version", "") or "")
        except InfraError as e:
            pytest.exit(f"--lab-ovn {config.getoption('--lab-ovn')}: {e}", returncode=2)
        config._kubeovn_ovn_version = ovn_version  # type: ignore[attr-defined]
        self.run = _KeepingRun(run_id, config.getoption("--backend"), config.getoption("--mode"),
                               _version(config), _profile(config),
                               Path(config.getoption("--reports-dir")) / run_id,
                               ovn_version=ovn_version)
        self.run.prepare()
        self._reports: dict[str, Any] = {}  # case id -> report of a pack that ran ahead
        self._errors: dict[str, str] = {}
        self._pack_size: dict[str, int] = {}
        timeout = config.getoption("--probe-timeout") or getattr(self.backend, "probe_timeout", 1.0)
        self.runner = Runner(self.backend, self.run, timeout, config.getoption("--deadline"))
        self.runner.explained = self._explains
        self.runner.diagnose = lambda case, failing: self.backend.collect_diagnostics(
            self.run.directory / "diagnostics" / f"{self.run.mode}-{case.id}"
            / str(failing[0].get("step", "setup")), failing)

    def skip_reason(self, case: Case) -> str | None:
        if "SCTP" in case.protocols and not self.backend.supports_sctp:
            return (f"SCTP needs kernel SCTP, which the {self.backend.name} backend does not have "
                    "(userspace datapath); the kind backend runs it")
        return self.backend.skip_reason(case)

    def check(self, case: Case, item: Any = None) -> None:
        """Run `case`; fail with the truth tables when it disagrees. `item` (the pytest node)
        gets JUnit properties: version, mode, backend, profile, convergence, probes."""
        meta = {"kube_ovn_version": self.run.kube_ovn_version, "mode": self.run.mode,
                "backend": self.run.backend, "profile": self.run.profile,
                "ovn_version": self.run.ovn_version}
        reason = self.skip_reason(case)
        if reason:
            self.run.case_record(case.id, direction=case.direction, outcome="skipped", probes=0,
                                 mismatches=0, convergence_ms=None, duration_s=0.0, skip_reason=reason)
            pytest.skip(reason)
        try:
            report = self._report(case)
        except InfraError as e:
            self.run.case_record(case.id, direction=case.direction, outcome="infra-error", probes=0,
                                 mismatches=0, convergence_ms=None, duration_s=0.0, skip_reason=None,
                                 error=str(e))
            pytest.fail(f"infra-error (not a policy verdict): {e}", pytrace=False)
        if item is not None:
            add_junit_properties(item, {"convergence_ms": report.convergence_ms,
                                        "probes": report.probes,
                                        "leaks": sum(s.leaks for s in report.steps),
                                        "mismatches": sum(len(s.mismatches) for s in report.steps),
                                        "packed": self._pack_size.get(case.id, 1),
                                        **placement.junit_counts(self._kept(case))},
                                 meta)
        ex = self._explain(case, item, report.outcome)
        strict = self.run.backend == "lab"
        if report.outcome == "pass":
            _known_outcome(ex, "pass", strict, case, "")
            return
        reproduce = getattr(self.backend, "reproduce_command", None)
        text = report.failure_text(reproduce)
        kept = self._kept(case)
        if placement.counts(kept) is not None:
            text += f"\n\n{placement.describe(kept)}\n{placement.table(kept)}"
        if report.outcome == "fail":  # an infra-error says nothing about known issues
            _known_outcome(ex, "fail", strict, case, text)
        prefix = "infra-error (not a policy verdict)" if report.outcome == "infra-error" else "mismatch"
        if ex.cells:
            ids = ", ".join(dict.fromkeys(i.id for _, i in ex.cells))
            prefix += (f" ({len(ex.cells)} failing cells are known issues: {ids}; "
                       f"{len(ex.unexplained)} are not)")
        pytest.fail(f"{prefix}: {case.id} ({case.description})\n\n{text}", pytrace=False)

    def _explains(self, cell: Any) -> bool:
        """Does a known issue of this run (by mechanism, any case) explain the cell's
        mismatch? Then the runner records it once it holds, without waiting out the deadline."""
        if not hasattr(self, "_cellwise"):
            issues: list[KnownIssue] = getattr(self.config, "_kubeovn_known", [])
            self._cellwise = [i for i in issues if i.mechanism and not i.cases and i.applies(
                "", self.run.mode, self.run.kube_ovn_version, self.backend.name)]
        record = {"verdict": cell.expectation.verdict, "path": cell.probe.path,
                  "protocol": cell.probe.protocol, "facts": cell.facts}
        return any(i.matches_cell(record) for i in self._cellwise)

    def _explain(self, case: Case, item: Any, outcome: str) -> Explained:
        """Known issues applied to the case's cells; JUnit gets the ids of the entries that
        explain failing cells (`known_issues`) and of those whose cells passed (`known_passed`)."""
        issues: list[KnownIssue] = getattr(self.config, "_kubeovn_known", [])
        ex = explain(issues, self._kept(case), case.id, self.run.mode,
                     self.run.kube_ovn_version, self.run.backend)
        if item is not None:
            explaining = ex.issues() if ex.known(outcome) else [i for _, i in ex.cells]
            for name, found in (("known_issues", explaining), ("known_passed", ex.stale_issues(outcome))):
                if found:
                    item.user_properties.append((name, ",".join(dict.fromkeys(i.id for i in found))))
        return ex

    def _kept(self, case: Case) -> list[dict[str, Any]]:
        return [r for r in self.run.kept if r.get("case") == case.id]

    def _group(self, case: Case) -> list[Case]:
        """The pack `case` belongs to: consecutive runnable cases of the collection."""
        size = self.config.getoption("--pack")
        if size <= 1 or hasattr(self.config, "workerinput"):
            return [case]  # xdist workers would each run a shared pack: no packing there
        if not hasattr(self, "_groups"):  # once per run: grouping builds every step's scenario
            order = [c for c in getattr(self.config, "_kubeovn_case_order", [])
                     if self.skip_reason(c) is None]
            self._groups = {c.id: g for g in packing.groups(order, size) for c in g}
        return self._groups.get(case.id, [case])

    def _report(self, case: Case) -> Any:
        """The case's report: from the pack that already ran it, or run now (with its pack).
        An infra-error is retried once on a fresh workload (the runner tore the broken one
        down; the lab restarts its daemons): never a verdict, and one daemon crash must not
        fail a night. The first error stays in the case's record."""
        if case.id in self._errors:
            raise InfraError(self._errors.pop(case.id))
        if case.id in self._reports:
            return self._reports.pop(case.id)
        group = self._group(case)
        try:
            return self._run_group(case, group)
        except InfraError as first:
            # Superseded by the retry's own record (summary.json keeps the last one).
            self.run.case_record(case.id, direction=case.direction, outcome="infra-error", probes=0,
                                 mismatches=0, convergence_ms=None, duration_s=0.0,
                                 skip_reason=None, error=str(first), retrying=True)
            try:
                return self._run_group(case, group)
            except InfraError as e:
                self._errors.update({c.id: f"{e} (while running its pack)" for c in group
                                     if c.id != case.id})
                raise

    def _run_group(self, case: Case, group: list[Case]) -> Any:
        self.run.kept.clear()
        if len(group) == 1:
            return self.runner.run_case(case)
        reports = self.runner.run_pack(packing.pack(group, slots=self.config.getoption("--pack")))
        for r in reports:
            self._reports[r.case.id] = r
            self._pack_size[r.case.id] = len(group)
        return self._reports.pop(case.id)

    def close(self) -> None:
        """The session's end: every workload removed and waited for; after an interrupt
        (Ctrl-C, SIGTERM) removed without waiting, so a job being cut off keeps its minutes."""
        self.runner.close(wait=not _INTERRUPTED)
        if self in _OPEN:  # only now: a close cut short is done again at the session's end
            _OPEN.remove(self)


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> Any:
    c = Conformance(request.config)
    _OPEN.append(c)
    try:
        yield c
    finally:
        c.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for c in list(_OPEN):
        c.close()
    config = session.config
    if not _uses_suites(config) or hasattr(config, "workerinput"):
        return
    run_dir = Path(config.getoption("--reports-dir")) / _run_id(config)
    if not (run_dir / "cases.jsonl").exists():
        return
    info = RunInfo(_run_id(config), config.getoption("--backend"), config.getoption("--mode"),
                   _version(config), _profile(config), run_dir,
                   started=getattr(config, "_kubeovn_started", time.time()),
                   ovn_version=getattr(config, "_kubeovn_ovn_version", ""))
    summary = info.write_summary()
    probes = len(read_jsonl(info.results_path))
    config._kubeovn_totals = (len(summary["cases"]), probes,  # type: ignore[attr-defined]
                              time.time() - info.started)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._kubeovn_started = time.time()  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    totals = getattr(config, "_kubeovn_totals", None)
    if totals:
        cases, probes, seconds = totals
        run_dir = Path(config.getoption("--reports-dir")) / _run_id(config)
        terminalreporter.write_line(
            f"kubeovn-conformance: {cases} cases, {probes} probes, {seconds:.1f}s; "
            f"results in {run_dir}{os.sep}")
