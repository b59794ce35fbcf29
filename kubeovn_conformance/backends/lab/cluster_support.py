"""Whether the lab can run a case with cluster-scoped policies, and if not, why (one line).

Kube-OVN puts AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy rules
into OVN ACL tiers 1 and 3 around NetworkPolicy's tier 2 and uses the `pass` action; both
arrived in OVN 23.06 (NB schema 7.1). The check reads the NB schema the lab's database is
created from (`ovn-nb.ovsschema`, daemons.SCHEMAS["nb"]): an ACL table without a `tier`
column means no tiers and no `pass`. It is a configuration check, made before any case runs;
a lab root that ships a newer OVN (the `--lab-ovn 25.03` switch) passes its own schema path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubeovn_conformance.cluster_policy import ANP, BANP, CNP, ClusterPolicy
from kubeovn_conformance.model import Scenario


def nb_schema_has_acl_tiers(schema: str | Path) -> bool:
    """Does this OVN_Northbound schema have ACL tiers (and so the `pass` action)?"""
    try:
        tables = json.loads(Path(schema).read_text()).get("tables", {})
    except (OSError, ValueError):
        return False
    return "tier" in tables.get("ACL", {}).get("columns", {})


def _stand_in(workload: Scenario) -> Scenario:
    """The workload with made-up addresses, for step builders that read pod IPs."""
    from dataclasses import replace

    ips = {p.key: f"10.255.{i // 250}.{i % 250 + 1}" for i, p in enumerate(workload.pods)}
    return replace(workload.with_pod_ips(ips), services=tuple(
        replace(s, cluster_ip=s.cluster_ip or f"10.254.{i // 250}.{i % 250 + 1}")
        for i, s in enumerate(workload.services)))


def case_cluster_policies(case: Any) -> list[ClusterPolicy]:
    """Every cluster-scoped policy any step of a runner Case applies."""
    live = _stand_in(case.workload)
    out: dict[str, ClusterPolicy] = {}
    for step in case.steps:
        for pol in step.build(live).cluster_policies:
            out.setdefault(f"{pol.key}/{hash(pol)}", pol)
    return list(out.values())


def skip_reason(policies: Iterable[ClusterPolicy], profile: Any, acl_tiers: bool,
                schema: str | Path) -> str | None:
    """Why the lab cannot run a case with these cluster-scoped policies, or None."""
    policies = list(policies)
    if not policies:
        return None
    kinds = {p.kind for p in policies}
    tag = getattr(profile, "tag", "the profile")
    if kinds & {ANP, BANP} and not getattr(profile, "anp", True):
        return (f"AdminNetworkPolicy/BaselineAdminNetworkPolicy need Kube-OVN v1.13.0 or later "
                f"(9e928d639); the lab reproduces {tag}")
    if CNP in kinds and not getattr(profile, "cnp", True):
        return f"ClusterNetworkPolicy needs Kube-OVN v1.15.0 or later (9e3780633); the lab reproduces {tag}"
    if any(peer.form == "nodes" for p in policies for r in p.egress for peer in r.peers):
        return ("`nodes` peers select Node IPs and the lab has no nodes (one chassis, pods only); "
                "the kind backend runs this case")
    if not acl_tiers:
        return (f"cluster-scoped policies need OVN ACL tiers and the `pass` action (OVN 23.06+); "
                f"{schema} has no ACL tier column (the lab's default, --lab-ovn 25.03, has)")
    return None
