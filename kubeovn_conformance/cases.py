"""What the runner records: cases and their steps, and per probe a Cell (expectation,
observation, samples, leaks), per step and per case a report with the failure text.

Leaks: see runner.py. These classes hold data and render it; they never touch a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kubeovn_conformance import truthtable
from kubeovn_conformance.backends.base import Target
from kubeovn_conformance.model import Scenario
from kubeovn_conformance.oracle import UNDEFINED, Expectation, Probe

# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Step:
    """One state of a case. `build` turns the running workload (pod IPs and ClusterIPs known)
    into the scenario to reconcile: its policies, pod and namespace labels, and pods or
    Services it adds, removes or changes (those get their addresses from the backend)."""

    name: str
    build: Callable[[Scenario], Scenario]


@dataclass(frozen=True)
class Case:
    id: str  # mode-independent, e.g. "egress-allow-target-port"
    direction: str  # ingress | egress | both | none
    workload: Scenario  # namespaces, pods, Services; its policies are ignored
    steps: tuple[Step, ...]
    description: str = ""
    marks: tuple[str, ...] = ()  # pytest markers (registered ones), e.g. gen_peers_ns

    @property
    def protocols(self) -> set[str]:
        return {p.protocol for pod in self.workload.pods for p in pod.ports}

    @classmethod
    def from_scenario(cls, case_id: str, direction: str, scenario: Scenario,
                      description: str = "") -> Case:
        """A one-step case: the workload and policies exactly as in `scenario` (e.g. manifests),
        cluster-scoped ones included."""
        workload = scenario.bare()
        policies, cluster = scenario.policies, scenario.cluster_policies
        return cls(case_id, direction, workload,
                   (Step("initial", lambda w: w.with_policies(policies).with_cluster_policies(cluster)),),
                   description)


# --------------------------------------------------------------------------- results


@dataclass
class Cell:
    expectation: Expectation
    target: Target
    observed: str | None = None
    detail: str = ""
    attempts: int = 0
    elapsed_ms: float = 0.0
    streak: int = 0  # consecutive samples that matched the expectation
    misses: int = 0  # samples that did not
    done: bool = False
    stable: bool = False  # same verdict before and after the step
    leaks: int = 0  # samples of a stable cell that saw the other verdict
    held_leaks: int = 0  # of those, samples taken inside an intermediate state the backend held
    leak_span_ms: float = 0.0  # from applying the step to the last leaking sample
    # What decided the cell (mechanism.py), for known issues matched by mechanism.
    facts: list[dict[str, object]] | None = None

    @property
    def leaked(self) -> bool:
        """A leak that fails the cell (see the module docstring)."""
        return self.held_leaks > 0 or (self.leaks > 0 and self.expectation.verdict == "deny")

    @property
    def probe(self) -> Probe:
        return self.expectation.probe

    @property
    def outcome(self) -> str:
        if self.expectation.verdict == UNDEFINED:
            return "undefined"
        if self.leaked:
            return "fail"
        if self.observed == self.expectation.expected_observed and self.done:
            return "pass"
        if self.observed in (None, "error"):
            return "infra-error"
        return "fail"

    def record(self) -> dict[str, object]:
        return {**self.expectation.to_dict(), "observed": self.observed, "outcome": self.outcome,
                "attempts": self.attempts, "elapsed_ms": round(self.elapsed_ms, 2),
                **({"detail": self.detail} if self.detail else {}),
                **({"facts": self.facts} if self.facts else {}),
                **({"leaks": self.leaks, "held_leaks": self.held_leaks,
                    "leak_span_ms": round(self.leak_span_ms, 1)} if self.leaks else {})}


@dataclass
class StepReport:
    name: str
    cells: list[Cell]
    convergence_ms: float | None  # None: never agreed before the deadline
    rounds: int

    @property
    def mismatches(self) -> list[Cell]:
        return [c for c in self.cells if c.outcome in ("fail", "infra-error")]

    @property
    def leaks(self) -> int:
        return sum(c.leaks for c in self.cells)


@dataclass
class CaseReport:
    case: Case
    steps: list[StepReport] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def probes(self) -> int:
        return sum(len(s.cells) for s in self.steps)

    @property
    def outcome(self) -> str:
        outcomes = {c.outcome for s in self.steps for c in s.cells}
        if "fail" in outcomes:
            return "fail"
        return "infra-error" if "infra-error" in outcomes else "pass"

    @property
    def convergence_ms(self) -> float | None:
        values = [s.convergence_ms for s in self.steps]
        return None if any(v is None for v in values) else max(values, default=0.0)  # type: ignore[type-var]

    def failure_text(self, reproduce: Callable[[str, Target], str] | None = None) -> str:
        parts = []
        for step in self.steps:
            if not step.mismatches:
                continue
            records = [c.record() for c in step.cells]
            parts.append(f"step {step.name}: {len(step.mismatches)} of {len(step.cells)} probes "
                         f"disagree after {step.rounds} rounds")
            parts.append(truthtable.render_all(records, truthtable.expected_mark, "expected: "))
            parts.append(truthtable.render_all(records, truthtable.observed_mark, "observed: "))
            parts.append(truthtable.render_all(records, truthtable.diff_mark, "diff (X = wrong): "))
            for c in step.mismatches:
                p = c.probe
                leaks = f" after {c.leaks} leaking samples within {c.leak_span_ms:.0f} ms" if c.leaks else ""
                line = (f"  {p.client} -> {p.target} {p.path} {p.port}/{p.protocol} "
                        f"(target port {p.target_port}): expected {c.expectation.verdict} "
                        f"({c.expectation.expected_observed}), observed {c.observed}{leaks}"
                        f"{' ' + c.detail if c.detail else ''}\n    because {c.expectation.reason}")
                if reproduce:
                    line += f"\n    reproduce: {reproduce(p.client, c.target)}"
                parts.append(line)
        return "\n\n".join(parts)
