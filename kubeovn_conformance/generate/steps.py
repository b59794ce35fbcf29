"""A row's steps: the states the runner applies one after the other.

Each step builds a whole state from the running workload (pod IPs and ClusterIPs known),
as suites/test_kube_ovn_history.py does: its policies, and the labels, pods or Services it
changes. Labels peers select on (team, env) change; pod=<name>, which Services select, never
does, so a relabel changes who the policy admits, not which pods back a Service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from kubeovn_conformance.cases import Step
from kubeovn_conformance.generate import ground, policies
from kubeovn_conformance.model import NetworkPolicy, Scenario

Policies = Callable[[Scenario], tuple[NetworkPolicy, ...]]


def _with(build: Policies) -> Callable[[Scenario], Scenario]:
    return lambda w: w.with_policies(build(w))


def build(row: Mapping[str, str]) -> tuple[Step, ...]:
    row = dict(row)

    def make(w: Scenario) -> tuple[NetworkPolicy, ...]:
        return policies.build(row, w)

    applied = Step("policies", _with(make))
    value = row["steps"]
    if value == "add":
        return (applied,)
    if value == "update":
        return (Step("first-version", _with(lambda w: policies.widened(make(w), row["protocol"]))),
                Step("update", _with(make)))
    if value == "delete":
        return (applied, Step("delete", lambda w: w.with_policies(())))
    if value == "relabel-peer-in":
        labels = {**ground.POD_LABELS["x/c"], "team": policies.BLUE}
        return (applied, Step("relabel-peer-in",
                              lambda w: w.with_policies(make(w)).with_pod_labels("x/c", labels)))
    if value == "relabel-peer-out":
        labels = {k: v for k, v in ground.POD_LABELS["x/b"].items() if k != "team"}
        return (applied, Step("relabel-peer-out",
                              lambda w: w.with_policies(make(w)).with_pod_labels("x/b", labels)))
    if value == "relabel-namespace":
        z = {**dict(ground.NAMESPACES[2].labels), "env": "dev"}
        return (applied, Step("relabel-namespace",
                              lambda w: w.with_policies(make(w)).with_namespace_labels("z", z)))
    if value == "pod-after-policy":
        return (applied, Step("create-pod", lambda w: replace(
            w.with_policies(make(w)), pods=(*w.pods, ground.late_pod(w)))))
    if value == "service-retarget":
        return (applied, Step("retarget", lambda w: replace(w.with_policies(make(w)), services=tuple(
            ground.retargeted(s) if s.key == "x/svc/s-a" else s for s in w.services))))
    raise ValueError(f"unknown steps value {value!r}")
