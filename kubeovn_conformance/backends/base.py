"""What every backend (the OVN lab, a kind cluster) offers the runner.

The runner never knows which backend it drives: it creates the workload once, reconciles
policy and label changes, and probes in batches. Backends report what they measured; they
never decide whether it was right (that is the oracle's job).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeovn_conformance.model import Scenario

OBSERVATIONS = ("connected", "refused", "timeout", "error")


class InfraError(RuntimeError):
    """The backend or the probe agent failed: never to be read as a policy verdict."""


@dataclass(frozen=True)
class Target:
    """One thing a client dials. `id` is opaque to the backend and comes back in the result."""

    id: str
    host: str
    port: int
    protocol: str  # TCP | UDP | SCTP


@dataclass(frozen=True)
class Observation:
    id: str
    observed: str  # one of OBSERVATIONS
    elapsed_ms: float
    reply: str = ""
    detail: str = ""  # the error text when observed == "error"


class Backend(abc.ABC):
    """A place where a scenario becomes real.

    Life cycle, driven by the runner for one case:
      setup(workload) -> the workload with pod IPs and Service ClusterIPs filled in
      reconcile(scenario)   any number of times: make policies, labels, pods and Services
                            match exactly; returns the scenario with the addresses of
                            pods and Services a step added
      probe(client, targets) any number of times
      teardown()            always, also after errors and on Ctrl-C
    """

    name: str = "abstract"
    mode: str = "overlay"  # overlay | underlay
    kube_ovn_version: str = ""
    supports_sctp: bool = False

    @abc.abstractmethod
    def setup(self, workload: Scenario) -> Scenario:
        """Create namespaces, pods (each serving its declared ports with the probe agent) and
        Services. Policies in `workload` are ignored here. Returns the workload with
        `Pod.ip` and `Service.cluster_ip` set to what the backend assigned."""

    @abc.abstractmethod
    def reconcile(self, scenario: Scenario,
                  between: Callable[[], None] | None = None) -> Scenario:
        """Make the backend's NetworkPolicies, pod/namespace labels, pods and Services equal
        to `scenario`'s: create, update and delete only what differs (a step may add a pod
        after a policy, or change a Service's targetPort). Returns `scenario` with pod IPs
        and ClusterIPs filled in. `between`, where the backend can hold an intermediate
        dataplane state of the change (the lab's controller model), is called in each such
        state so the runner can sample it; backends that cannot hold one never call it."""

    @abc.abstractmethod
    def probe(self, client: str, targets: Sequence[Target], timeout: float) -> list[Observation]:
        """Dial every target from pod `client` ("ns/name") concurrently, in one round.
        Raises InfraError when the round itself failed (agent missing, exec failed)."""

    @abc.abstractmethod
    def teardown(self, wait: bool | None = None) -> None:
        """Remove everything setup created. Safe to call twice and after a failed setup.
        `wait=False`: the run is being interrupted; start the removal and return without
        waiting for it to finish (a cluster's namespace deletion). None: the backend decides."""

    def node_of(self, pod_key: str) -> str | None:
        """The node pod `pod_key` ("ns/name") runs on, when the backend knows it: probe records
        then say whether a cell was same-node or cross-node. None by default (the lab has one
        chassis, so node placement does not exist there)."""
        return None

    def skip_reason(self, case: Any) -> str | None:
        """Why this backend cannot run `case` at all (one line), decided from configuration
        before the case runs; None: it can."""
        return None

    def collect_diagnostics(self, dest: Path, failing: Sequence[dict]) -> None:  # noqa: B027
        """Write what helps explain `failing` probe records into `dest` (optional)."""


def parse_observations(stdout: str, ids: Sequence[str]) -> list[Observation]:
    """The probe agent's output -> observations in `ids` order. Anything missing or
    malformed is an InfraError, never a verdict."""
    by_id: dict[str, Observation] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            obs = Observation(id=str(raw["id"]), observed=str(raw["observed"]),
                              elapsed_ms=float(raw["elapsed_ms"]), reply=str(raw.get("reply", "")),
                              detail=str(raw.get("detail", "")))
        except (ValueError, KeyError, TypeError):
            raise InfraError(f"probe agent printed an unreadable line: {line[:200]!r}") from None
        if obs.observed not in OBSERVATIONS:
            raise InfraError(f"probe agent reported {obs.observed!r} for {obs.id}")
        by_id[obs.id] = obs
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InfraError(f"probe agent gave no result for {len(missing)} targets (first: {missing[0]})")
    return [by_id[i] for i in ids]
