"""The fuzzing loop: draw a scenario, run it through the runner, shrink the first failure.

Every run goes through `Runner.run_case` (the same apply, converge and record as the
suites), so a fuzzer finding means exactly what a failing suite case means. Drawn
scenarios are recorded in the run's results as cases `fuzz-<seed>-<n>`; shrink trials go
to `fuzz/shrink-<seed>-<n>/` beside them, so they never crowd the run's own report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeovn_conformance.backends.base import InfraError
from kubeovn_conformance.fuzz import output
from kubeovn_conformance.fuzz.case import CellKey, case_for
from kubeovn_conformance.fuzz.draw import draw
from kubeovn_conformance.fuzz.output import Finding, Origin
from kubeovn_conformance.fuzz.shrink import Ran, Shrunk, shrink, size
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.results import RunInfo
from kubeovn_conformance.runner import CaseReport, Runner


@dataclass
class Outcome:
    """One drawn scenario: what happened to it (a JUnit testcase)."""

    index: int
    case_id: str
    outcome: str  # pass | fail | infra-error
    probes: int = 0
    mismatches: int = 0
    seconds: float = 0.0
    message: str = ""
    path: Path | None = None  # the finding's file


def records(report: CaseReport) -> list[dict[str, Any]]:
    return [c.record() for s in report.steps for c in s.cells]


def failing_cells(recs: Iterable[dict[str, Any]]) -> list[CellKey]:
    """Cells that failed (not infra-errors), the ones to shrink on first: Pod-path cells
    before Service-path ones (a smaller scenario shows them), then by name."""
    cells = {CellKey.of(r) for r in recs if r.get("outcome") == "fail"}
    return sorted(cells, key=lambda c: (c.path != "pod", c))


class Fuzzer:
    def __init__(self, runner: Runner, origin: Origin, out_dir: Path, *, seed: int, count: int,
                 protocols: tuple[str, ...] = ("TCP", "UDP"), shrink_limit: int = 300,
                 log: Callable[[str], None] = print) -> None:
        self.runner = runner
        self.origin = origin
        self.out_dir = out_dir  # reports/<run>/fuzz
        self.seed = seed
        self.count = count
        self.protocols = protocols
        self.shrink_limit = shrink_limit
        self.log = log
        # A failing cell a known issue explains (by mechanism) is not a finding: the fuzzer
        # looks for what nobody has reported yet (the cli sets it from known-issues.yaml).
        self.explained: Callable[[dict[str, Any]], bool] = lambda _r: False

    def draw(self, index: int) -> Scenario:
        return draw(self.seed, index, self.origin.mode, self.protocols)

    def run(self, scenario: Scenario, case_id: str,
            run: RunInfo | None) -> tuple[CaseReport, Scenario]:
        """Run one single-state scenario; its report and the scenario as it ran (the live
        addresses, the ipBlocks rebased onto them). `run` receives the records."""
        built: list[Scenario] = []
        saved, self.runner.run = self.runner.run, run
        try:
            report = self.runner.run_case(case_for(scenario, case_id, on_build=built.append))
        finally:
            self.runner.run = saved
        return report, built[-1]

    # ------------------------------------------------------------------ the loop

    def fuzz(self, indices: Iterable[int], keep_going: bool = False,
             done: Callable[[Outcome], None] = lambda _o: None) -> list[Outcome]:
        """Run the scenarios `indices` of the seed; shrink each failure (the first only,
        unless keep_going). `done` sees every outcome as it is known (for a JUnit file
        that survives Ctrl-C)."""
        out: list[Outcome] = []
        indices = list(indices)
        for n, index in enumerate(indices, 1):
            scenario = self.draw(index)
            case_id = f"fuzz-{self.seed}-{index}"
            started = time.monotonic()
            head = f"fuzz seed {self.seed} [{n}/{len(indices)}] scenario {index}: {size(scenario)}"
            try:
                report, ran = self.run(scenario, case_id, self.runner.run)
            except InfraError as e:
                result = Outcome(index, case_id, "infra-error", seconds=time.monotonic() - started,
                                 message=str(e))
                self.log(f"{head}: infra-error (not a verdict): {e}")
                out.append(result)
                done(result)
                continue
            recs = records(report)
            known = [r for r in recs if r.get("outcome") == "fail" and self.explained(r)]
            bad = failing_cells(r for r in recs if r not in known)
            if known:
                self.log(f"  {len(known)} failing cell(s) explained by known issues, not shrunk")
            result = Outcome(index, case_id, "fail" if bad else report.outcome, len(recs),
                             sum(1 for r in recs if r["outcome"] in ("fail", "infra-error")),
                             time.monotonic() - started)
            self.log(f"{head}: {result.probes} probes, {result.outcome}"
                     + (f" ({result.mismatches} cells)" if result.mismatches else "")
                     + f" in {result.seconds:.1f}s")
            if bad:
                result.path = self.out_dir / output.file_name(self.seed, index)
                try:
                    finding = self.shrink(index, scenario, ran, bad[0], recs)
                except KeyboardInterrupt:
                    result.message = f"{bad[0].describe()}: interrupted while shrinking; {result.path}"
                    out.append(result)
                    done(result)  # the JUnit file names the finding's file too
                    raise
                result.message = (f"{finding.cell.describe()}: shrunk to {size(finding.minimal)} "
                                  f"({finding.status}); {result.path}")
            out.append(result)
            done(result)
            if bad and not keep_going:
                break
        return out

    def shrink(self, index: int, original: Scenario, ran: Scenario, cell: CellKey,
               recs: list[dict[str, Any]]) -> Finding:
        """Shrink on `cell`, writing the file after every kept reduction (and on Ctrl-C)."""
        case_id = f"fuzz-{self.seed}-{index}"
        trials_run = RunInfo(
            f"{case_id}-shrink", self.origin.backend, self.origin.mode,
            getattr(self.runner.run, "kube_ovn_version", ""), getattr(self.runner.run, "profile", ""),
            self.out_dir / f"shrink-{self.seed}-{index}")
        trials_run.prepare()
        finding = Finding(self.seed, index, self.count, cell, original, ran,
                          [r for r in recs if r["outcome"] == "fail"], status="shrinking")
        self.log(f"shrink scenario {index} on {cell.describe()} (at most {self.shrink_limit} trials)")
        path = output.write(self.out_dir, finding, self.origin)
        failing_records: dict[Scenario, list[dict[str, Any]]] = {}

        def trial(candidate: Scenario) -> Ran | None:
            try:
                report, built = self.run(candidate, f"{case_id}-trial", trials_run)
            except InfraError as e:
                self.log(f"  infra-error in a trial, counted as not failing: {e}")
                return None
            now = [r for r in records(report) if r["outcome"] == "fail"]
            failing_records[built] = now
            return Ran(built, frozenset(CellKey.of(r) for r in now))

        def accepted(state: Shrunk) -> None:
            finding.minimal, finding.failing = state.scenario, failing_records[state.scenario]
            finding.trials, finding.steps = state.trials, list(state.steps)
            output.write(self.out_dir, finding, self.origin)

        try:
            result = shrink(ran, cell, frozenset(CellKey.of(r) for r in finding.failing), trial,
                            limit=self.shrink_limit, log=lambda m: self.log(f"  {m}"),
                            accepted=accepted)
        except KeyboardInterrupt:
            finding.status = "interrupted"
            output.write(self.out_dir, finding, self.origin)
            self.log(f"interrupted while shrinking; the smallest failing scenario so far: {path}")
            raise
        finding.trials, finding.steps = result.trials, list(result.steps)
        finding.status = "trial limit reached" if result.exhausted else "minimal"
        output.write(self.out_dir, finding, self.origin)
        self.log(f"wrote {path}: {size(finding.minimal)} (from {size(original)}) after "
                 f"{result.trials} trials; repeat with:")
        for c in output.commands(path, finding, self.origin):
            self.log(f"  {c}")
        return finding
