"""The runner: put a case on a backend, wait until the dataplane agrees, record.

For each step of a case: ask the oracle for the expected verdict of every probe, apply the
step's policies and labels, probe the whole matrix in one batched round per client, then
re-probe only the cells that still differ until they agree or the deadline passes. A deny
counts only after two consecutive matching samples (one lucky timeout proves nothing). An
agent or dataplane failure is an infra-error, never a deny.

Leaks: a cell whose verdict is the same before and after a step is *stable*; a sample of it
that sees the other verdict, at any time from applying the step until the cell is done, is
a leak. Stable cells are also sampled inside every intermediate dataplane state a backend
can hold (the lab's controller model). Which leaks fail the cell: a stable deny seen
connected, ever (traffic got through that no state allowed: no probe artefact looks like
that); a stable allow seen blocked inside a held intermediate state (deterministic). A
stable allow that times out once while the new state settles is recorded, not failed: a
lost SYN looks the same. A cell that never agrees is a plain mismatch, not a leak.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from kubeovn_conformance.backends.base import Backend, InfraError, Observation, Target
from kubeovn_conformance.cases import Case, CaseReport, Cell, Step, StepReport
from kubeovn_conformance.mechanism import SyncHistory, record_facts
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.oracle import UNDEFINED, Expectation, Oracle, Probe
from kubeovn_conformance.packing import Packed, unslot_record
from kubeovn_conformance.placement import with_placement
from kubeovn_conformance.results import RunInfo

# --------------------------------------------------------------------------- runner


class Runner:
    """Drives cases on one backend. Workloads are set up once and reused by consecutive
    cases that share them (as the upstream e2e reuses its pods), reset between cases."""

    def __init__(self, backend: Backend, run: RunInfo | None = None, probe_timeout: float = 1.0,
                 deadline: float = 10.0, ready_deadline: float = 60.0,
                 log: Callable[[str], None] = lambda _msg: None) -> None:
        self.backend = backend
        self.run = run
        self.probe_timeout = probe_timeout
        self.deadline = deadline
        self.ready_deadline = ready_deadline
        self.log = log
        self._workload: Scenario | None = None  # as given by the case
        self._live: Scenario | None = None  # as realized (IPs filled in)
        # Called with the case and its failing probe records while the failing state is
        # still in place (before the reset), so diagnostics show what the probes met.
        self.diagnose: Callable[[Case, list[dict]], None] | None = None
        self.probe_rounds = 0
        self.probes_sent = 0
        # Clients probed at once: each is one agent call that mostly waits on its sockets, so
        # packs with many clients are not serialized behind a small pool.
        self.parallel = 64
        # Where the time goes (seconds): setup, apply, probe, reset, teardown.
        self.timings: dict[str, float] = {}
        # A mismatch the caller already explains (a known issue matching the cell's facts):
        # once it has held for `settle` seconds and two samples, it is recorded, not waited
        # on until the deadline. The cell still fails; the caller says why.
        self.explained: Callable[[Cell], bool] | None = None
        self.settle = 3.0

    # ------------------------------------------------------------------ lifecycle

    @contextlib.contextmanager
    def _timed(self, what: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[what] = self.timings.get(what, 0.0) + time.monotonic() - start

    def realize(self, workload: Scenario) -> Scenario:
        if self._workload == workload and self._live is not None:
            return self._live
        self.close()
        self._workload = workload
        start = time.monotonic()
        try:
            with self._timed("setup"):
                self._live = self.backend.setup(workload)
            self._wait_until_serving(self._live)
        except BaseException:
            self.discard()
            raise
        self.log(f"workload up: {len(workload.pods)} pods, {len(workload.services)} services "
                 f"in {time.monotonic() - start:.1f}s")
        return self._live

    def close(self, wait: bool | None = None) -> None:
        """Tear the workload down. A teardown cut short by an interrupt (Ctrl-C or SIGTERM in
        the middle of its deletes) keeps the workload, so the close() at the session's end does
        it again instead of leaving the rest behind; one that failed is not tried again."""
        if self._workload is None:
            return
        try:
            with self._timed("teardown"):
                self.backend.teardown(wait=wait)
        except Exception:
            self._workload = self._live = None
            raise
        self._workload = self._live = None

    def discard(self) -> None:
        """close(), never raising: used while another error is on its way up."""
        try:
            self.close()
        except Exception as e:
            self.log(f"teardown after an error failed too: {e}")

    def _wait_until_serving(self, live: Scenario) -> None:
        """Before any policy: every server port must answer, so a later "deny" can never
        pass because a server is down."""
        probes = []
        pods = [p for p in live.pods if not p.host_network]
        for i, dst in enumerate(pods):
            client = pods[1] if i == 0 and len(pods) > 1 else pods[0]
            if client.key == dst.key:
                continue
            probes += [Probe(client.key, dst.key, "pod", cp.port, cp.port, cp.protocol)
                       for cp in dst.ports if cp.protocol in self._protocols()]
        oracle = Oracle(live.with_policies(()))
        for p in oracle.probes():
            if p.path == "service" and p.client == pods[0].key:
                probes.append(p)
        expectations = [e for e in oracle.expectations(probes) if e.expected_observed == "connected"]
        deadline = time.monotonic() + self.ready_deadline
        pending = self._cells(live, expectations)
        while pending:
            self._round(pending)
            pending = [c for c in pending if c.observed != "connected"]
            if pending and time.monotonic() > deadline:
                missing = ", ".join(f"{c.probe.target}:{c.probe.port}/{c.probe.protocol} from "
                                    f"{c.probe.client} ({c.observed} {c.detail})".strip()
                                    for c in pending[:5])
                raise InfraError(f"servers not answering before any policy: {missing}")
            if pending:
                time.sleep(0.2)

    def _protocols(self) -> set[str]:
        return {"TCP", "UDP", "SCTP"} if self.backend.supports_sctp else {"TCP", "UDP"}

    # ------------------------------------------------------------------ cases

    def run_case(self, case: Case) -> CaseReport:
        started = time.monotonic()
        report = CaseReport(case)
        live = self.realize(case.workload)
        try:
            before = self._verdicts(live)  # the bare workload: everything allowed
            history = SyncHistory()
            history.advance(Oracle(live))
            for step in case.steps:
                scenario = step.build(live)
                step_report = self._run_step(case, step.name, scenario, before, history)
                report.steps.append(step_report)
                before = {_probe_key(c.probe): c.expectation.verdict for c in step_report.cells}
            # Back to the bare workload: no policies, original labels, for the next case.
            with self._timed("reset"):
                self.backend.reconcile(live)
        except BaseException as e:
            # A broken backend or Ctrl-C: tear the workload down so nothing is left behind
            # and the next case starts from a fresh one (after saving what explains it).
            if isinstance(e, InfraError):
                self._diagnose(case, [{"case": case.id, "infra_error": str(e)}])
            self.discard()
            raise
        finally:
            report.duration_s = time.monotonic() - started
        self._case_record(report)
        return report

    def _case_record(self, report: CaseReport) -> None:
        if self.run is None:
            return
        case = report.case
        self.run.case_record(case.id, direction=case.direction, outcome=report.outcome,
                             probes=report.probes,
                             mismatches=sum(len(s.mismatches) for s in report.steps),
                             convergence_ms=report.convergence_ms,
                             leaks=sum(s.leaks for s in report.steps),
                             duration_s=round(report.duration_s, 3), skip_reason=None)

    def _verdicts(self, scenario: Scenario) -> dict[tuple, str]:
        oracle = Oracle(scenario)
        protocols = self._protocols()
        return {_probe_key(p): oracle.expect(p).verdict for p in oracle.probes()
                if p.protocol in protocols}

    def _run_step(self, case: Case, step: str, scenario: Scenario,
                  before: dict[tuple, str], history: SyncHistory) -> StepReport:
        cells, convergence, rounds, realized = self._apply(scenario, before, history)
        report = StepReport(step, cells, convergence, rounds)
        if report.mismatches:
            self._diagnose(case, [{**c.record(), "case": case.id, "step": step}
                                  for c in report.mismatches])
        if self.run is not None:
            extra = {"case": case.id, "step": step, "direction": case.direction,
                     "convergence_ms": convergence}
            self.run.probe_records(with_placement(({**c.record(), **extra} for c in cells),
                                                  self.backend.node_of, realized))
        return report

    def _apply(self, scenario: Scenario, before: dict[tuple, str], history: SyncHistory,
               own: Callable[[Probe], bool] = lambda _p: True
               ) -> tuple[list[Cell], float | None, int, Scenario]:
        """Apply one state and converge on its (own) cells: (cells, convergence ms or None,
        rounds, the scenario as realized). `history` is advanced to it (cell facts)."""
        # Stable cells, known before the change (pods a step adds have no address yet and
        # are simply not sampled while it is applied).
        ahead = [c for c in self._cells(scenario, [
            e for e in Oracle(scenario).expectations()
            if e.probe.protocol in self._protocols() and own(e.probe)])
            if before.get(_probe_key(c.probe), UNDEFINED) == c.expectation.verdict != UNDEFINED]
        applied = time.monotonic()

        def sample() -> None:  # inside an intermediate state the backend holds
            self._round(ahead)
            for c in ahead:
                if c.observed != c.expectation.expected_observed and c.observed in ("connected", "timeout"):
                    c.leaks += 1
                    c.held_leaks += 1
                    c.leak_span_ms = (time.monotonic() - applied) * 1000.0

        with self._timed("apply"):
            realized = self.backend.reconcile(scenario, between=sample) or scenario
        oracle = Oracle(realized)
        expectations = [oracle.expect(p) for p in oracle.probes()
                        if p.protocol in self._protocols() and own(p)]
        cells = self._cells(realized, expectations)
        mechanism = history.advance(oracle)
        for c in cells:
            c.facts = record_facts(mechanism.facts(c.probe)) or None
        early = {_probe_key(c.probe): c for c in ahead}
        for c in cells:
            prior = early.get(_probe_key(c.probe))
            c.stable = before.get(_probe_key(c.probe), UNDEFINED) == c.expectation.verdict != UNDEFINED
            if prior is not None and c.stable:
                c.leaks, c.held_leaks, c.leak_span_ms = prior.leaks, prior.held_leaks, prior.leak_span_ms
        with self._timed("probe"):
            convergence, rounds = self._converge(cells, applied)
        for c in cells:
            if not c.done:  # never agreed: a mismatch, not a transient leak
                c.leaks, c.held_leaks, c.leak_span_ms = 0, 0, 0.0
        return cells, convergence, rounds, realized

    # ------------------------------------------------------------------ packs

    def run_pack(self, packed: Packed) -> list[CaseReport]:
        """Run K packed cases in one dataplane state per step (packing.py); one report per
        case, its cells and records under the case's own names."""
        started = time.monotonic()
        reports = [CaseReport(c) for c in packed.cases]
        live = self.realize(packed.workload)

        try:
            before = self._verdicts(live)
            history = SyncHistory()
            history.advance(Oracle(live))
            for index, _ in enumerate(packed.step_names):
                scenario = packed.build(live, index)
                wanted = packed.own_probes(live, index)
                cells, convergence, rounds, realized = self._apply(
                    scenario, before, history, lambda p, w=wanted: _probe_key(p) in w)
                before = {_probe_key(c.probe): c.expectation.verdict for c in cells}
                for slot, case in enumerate(packed.cases):
                    if index >= len(case.steps):
                        continue  # this case stays in its last state; already recorded
                    mine = [c for c in cells if packed.slot_of(c.probe.client) == slot]
                    step = StepReport(case.steps[index].name, mine, convergence, rounds)
                    reports[slot].steps.append(step)
                    self._record_slot(packed, slot, step, realized)
            with self._timed("reset"):
                self.backend.reconcile(live)
        except BaseException as e:
            if isinstance(e, InfraError):
                self._diagnose(packed.cases[0], [{"case": c.id, "infra_error": str(e)}
                                                 for c in packed.cases])
            self.discard()
            raise
        finally:
            share = (time.monotonic() - started) / len(packed.cases)
            for r in reports:
                r.duration_s = share
        for r in reports:
            self._case_record(r)
        return reports

    def _record_slot(self, packed: Packed, slot: int, step: StepReport, realized: Scenario) -> None:
        case, names = packed.cases[slot], packed.names[slot]
        if step.mismatches:
            self._diagnose(case, [{**unslot_record(c.record(), names), "case": case.id,
                                   "step": step.name} for c in step.mismatches])
        if self.run is None:
            return
        extra = {"case": case.id, "step": step.name, "direction": case.direction,
                 "convergence_ms": step.convergence_ms, "packed": len(packed.cases)}
        placed = with_placement(({**c.record(), **extra} for c in step.cells),
                                self.backend.node_of, realized)
        self.run.probe_records(unslot_record(r, names) for r in placed)

    def _diagnose(self, case: Case, failing: list[dict]) -> None:
        if self.diagnose is None:
            return
        try:
            self.diagnose(case, failing)
        except Exception as e:  # diagnostics must never hide the verdict
            self.log(f"collecting diagnostics for {case.id} failed: {e}")

    def _cells(self, live: Scenario, expectations: Sequence[Expectation]) -> list[Cell]:
        ips = {p.key: p.ip for p in live.pods}
        vips = {s.key: s.cluster_ip for s in live.services}
        cells = []
        for i, e in enumerate(expectations):
            p = e.probe
            host = ips.get(p.target) if p.path == "pod" else vips.get(p.target)
            if p.path == "nodeport" or not host:
                continue
            cells.append(Cell(e, Target(str(i), host, p.port, p.protocol)))
        return cells

    def _converge(self, cells: list[Cell], applied: float) -> tuple[float | None, int]:
        pending = list(cells)
        rounds = 0
        while pending:
            self._round(pending)
            rounds += 1
            for c in pending:
                if (c.stable and c.observed != c.expectation.expected_observed
                        and c.observed in ("connected", "timeout")):
                    c.leaks += 1
                    c.leak_span_ms = (time.monotonic() - applied) * 1000.0
                if c.expectation.verdict == UNDEFINED:
                    c.done = True  # recorded once, never re-probed, never failed
                elif c.observed == c.expectation.expected_observed:
                    c.streak += 1
                    c.done = c.expectation.expected_observed != "timeout" or c.streak >= 2
                else:
                    c.streak = 0
                    c.misses += 1
                    c.done = (c.misses >= 2 and self.explained is not None
                              and time.monotonic() - applied > self.settle and self.explained(c))
            pending = [c for c in pending if not c.done]
            elapsed = time.monotonic() - applied
            if not pending:
                settled = any(c.misses and c.observed != c.expectation.expected_observed
                              and c.expectation.verdict != UNDEFINED for c in cells)
                return (None if settled else elapsed * 1000.0), rounds
            if all(c.streak for c in pending):
                continue  # only confirmations left: probe again at once, even at the deadline
            if elapsed > self.deadline:
                return None, rounds
            time.sleep(0.1)
        return (time.monotonic() - applied) * 1000.0, rounds

    def _round(self, cells: Sequence[Cell]) -> None:
        """One batched probe round: one agent call per client, all clients in parallel."""
        by_client: dict[str, list[Cell]] = {}
        for c in cells:
            by_client.setdefault(c.probe.client, []).append(c)
        self.probe_rounds += 1
        self.probes_sent += len(cells)

        def one(client: str) -> tuple[str, list[Observation] | InfraError]:
            try:
                return client, self.backend.probe(client, [c.target for c in by_client[client]],
                                                  self.probe_timeout)
            except InfraError as e:
                return client, e

        with ThreadPoolExecutor(max_workers=min(self.parallel, len(by_client) or 1)) as pool:
            results = list(pool.map(one, by_client))
        for client, result in results:
            group = by_client[client]
            if isinstance(result, InfraError):
                for c in group:
                    c.observed, c.detail, c.attempts = "error", f"infra: {result}", c.attempts + 1
                continue
            seen = {o.id: o for o in result}
            for c in group:
                c.attempts += 1
                o = seen.get(c.target.id)
                if o is None:
                    c.observed, c.detail = "error", "infra: the agent returned no result"
                else:
                    c.observed, c.elapsed_ms = o.observed, o.elapsed_ms
                    c.detail = f"({o.detail})" if o.observed == "error" and o.detail else ""


def _probe_key(p: Probe) -> tuple:
    return (p.client, p.target, p.path, p.port, p.protocol)


__all__ = ["Case", "CaseReport", "Cell", "Runner", "Step", "StepReport"]
