"""The budget of a nightly row from bench_kind's counts: per-operation costs on kind that are
assumptions (no Docker here to measure them), each with the source it rests on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cost:
    name: str
    seconds: float
    source: str


SETUP = Cost("workload setup (pods to Ready, in parallel)", 5.0,
             "Kubernetes SIG Scalability pod startup SLO: p99 <= 5 s for stateless pods without "
             "image pulls (kubernetes/community sig-scalability/slos/pod_startup_latency.md); "
             "cluster-up loads the agent image into kind, so nothing is pulled")
DELETE = Cost("namespace deletion waited for", 8.0,
              "assumption: the namespace controller waits 5 s before it processes a deleted "
              "namespace (namespaceDeletionGracePeriod, kubernetes pkg/controller/namespace/"
              "namespace_controller.go), then the pods' 1 s grace (kind.py) and a few API rounds")
OVERLAP = Cost("namespace deletion, not blocking the next case", 3.0,
               "assumption: the 8 s above minus the next workload's 5 s setup it overlaps")
WRITE = Cost("API write (create, replace, patch, delete)", 0.05,
             "assumption: one round trip to a local kind API server; the SIG Scalability SLO "
             "bounds a mutating call at p99 <= 1 s (sig-scalability/slos/api_call_latency.md)")
ROUND = Cost("probe round (one exec per client, clients in parallel)", 1.5,
             "assumption: the kind backend's 1 s probe timeout (a denied cell waits it out) plus "
             "0.5 s for the exec (API server, kubelet, a Python start in the agent pod)")
EXTRA_ROUNDS = Cost("rounds per step beyond the fake's one", 2.0,
                    "assumption: one while Kube-OVN programs the step's ACLs, one to confirm each "
                    "deny (the runner counts a deny after two matching samples, runner.py)")
CLUSTER_UP = Cost("cluster-up (kind, images, Kube-OVN) per row", 900.0,
                  "assumption: the README's estimate for make e2e, about 15 minutes per mode and "
                  "version for cluster creation and image pulls (no Docker here to measure it)")
COSTS = (SETUP, DELETE, OVERLAP, WRITE, ROUND, EXTRA_ROUNDS, CLUSTER_UP)

WRITES = ("ns+", "ns-", "pods+", "pods-", "svc+", "svc~", "svc-", "pol+", "pol~", "pol-", "patch",
          "other create", "other replace", "other delete")


def costs_table() -> str:
    return "\n".join(f"  {c.name}: {c.seconds:g} s -- {c.source}" for c in COSTS)


def row_budget(total: Any) -> dict[str, float]:
    """Seconds per part of one nightly row (one version, one mode) from a strategy's totals."""
    writes = sum(total.requests.get(k, 0) for k in WRITES)
    deletion = DELETE if total.strategy == "baseline" else OVERLAP
    parts = {
        "cluster-up": CLUSTER_UP.seconds,
        "setups": total.setups * SETUP.seconds,
        "deletions": total.setups * deletion.seconds,
        "writes": writes * WRITE.seconds,
        "probe rounds": (total.rounds + EXTRA_ROUNDS.seconds * total.steps) * ROUND.seconds,
    }
    parts["total"] = sum(parts.values())
    return parts


def budget_lines(budgets: dict[str, dict[str, float]]) -> list[str]:
    lines = ["Budget per nightly row (one version, one mode; both modes run the same suites):"]
    for strategy, parts in budgets.items():
        detail = ", ".join(f"{k} {v / 60:.1f}" for k, v in parts.items() if k != "total")
        lines.append(f"  {strategy}: {parts['total'] / 60:.0f} minutes ({detail} minutes)")
    if len(budgets) == 2:
        (a, pa), (b, pb) = budgets.items()
        lines.append(f"  {b} saves {(pa['total'] - pb['total']) / 60:.1f} minutes per row against {a}")
    return lines
