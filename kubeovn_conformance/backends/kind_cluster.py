"""Cluster-scoped policies on a real cluster: AdminNetworkPolicy, BaselineAdminNetworkPolicy
and ClusterNetworkPolicy objects for the kind backend (issue 11, section 4).

They are cluster-scoped, so two things keep a run to itself: every object is labelled with the
run and named after it (a BaselineAdminNetworkPolicy must be called `default`, so one run at a
time), and every namespace selector they carry (subject and peers) also requires the run's
namespace label. A scenario's `namespaces: {}` means "every namespace of the scenario"; on a
cluster it would otherwise take in kube-system and Kube-OVN itself. Names in
`kubernetes.io/metadata.name` selectors are rewritten to the run's namespaces, as for
NetworkPolicy. The CRDs come from scripts/cluster-up (clusters/versions.yaml `policy_api`);
a cluster without one skips the cases that need it, with the reason.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubeovn_conformance.cluster_policy import BANP, GROUP, KINDS, ClusterPolicy
from kubeovn_conformance.model import NS_NAME_LABEL

PLURALS = {"AdminNetworkPolicy": "adminnetworkpolicies",
           "BaselineAdminNetworkPolicy": "baselineadminnetworkpolicies",
           "ClusterNetworkPolicy": "clusternetworkpolicies"}
_SELECTOR_KEYS = ("namespaces", "namespaceSelector")


def object_name(policy: ClusterPolicy, run_id: str) -> str:
    if policy.kind == BANP:
        return "default"  # the API allows no other name (a singleton)
    digest = hashlib.sha256(f"{run_id}/{policy.name}".encode()).hexdigest()[:8]
    return f"koc-{digest}-{policy.name}"[:253]


def _scoped(selector: Mapping[str, Any], run_label: tuple[str, str],
            ns_map: Mapping[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(dict(selector))
    labels = dict(out.get("matchLabels") or {})
    if NS_NAME_LABEL in labels:
        labels[NS_NAME_LABEL] = ns_map.get(labels[NS_NAME_LABEL], labels[NS_NAME_LABEL])
    labels[run_label[0]] = run_label[1]
    out["matchLabels"] = labels
    for expr in out.get("matchExpressions") or ():
        if expr.get("key") == NS_NAME_LABEL and expr.get("values"):
            expr["values"] = [ns_map.get(v, v) for v in expr["values"]]
    return out


def _rewrite(node: Any, run_label: tuple[str, str], ns_map: Mapping[str, str]) -> Any:
    """Every namespace selector below `node`, scoped to the run (nodes/networks untouched)."""
    if isinstance(node, list):
        return [_rewrite(n, run_label, ns_map) for n in node]
    if not isinstance(node, dict):
        return node
    return {k: (_scoped(v, run_label, ns_map) if k in _SELECTOR_KEYS and isinstance(v, dict)
                else _rewrite(v, run_label, ns_map)) for k, v in node.items()}


def manifest(policy: ClusterPolicy, run_id: str, run_label: tuple[str, str],
             ns_map: Mapping[str, str], labels: Mapping[str, str],
             annotation: str) -> dict[str, Any]:
    """The object the cluster gets for `policy` in this run."""
    m = policy.to_manifest()
    m["spec"] = _rewrite(m["spec"], run_label, ns_map)
    digest = hashlib.sha256(json.dumps(m["spec"], sort_keys=True).encode()).hexdigest()
    m["metadata"] = {"name": object_name(policy, run_id), "labels": dict(labels),
                     "annotations": {annotation: digest}}
    return m


def reconcile(api: Any, desired: Iterable[dict[str, Any]], selector: str, annotation: str,
              call: Callable[..., Any], kinds: Iterable[str] = tuple(PLURALS)) -> None:
    """Create, replace (when the spec digest differs) and delete this run's objects.
    `api` is a kubernetes CustomObjectsApi; `call` wraps API errors as the backend does."""
    by_kind: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in kinds}
    for body in desired:
        by_kind.setdefault(body["kind"], {})[body["metadata"]["name"]] = body
    for kind, bodies in by_kind.items():
        version, plural = KINDS[kind], PLURALS[kind]
        live = {o["metadata"]["name"]: o for o in call(
            api.list_cluster_custom_object, GROUP, version, plural, label_selector=selector)["items"]}
        for name, body in sorted(bodies.items()):
            current = live.pop(name, None)
            if current is None:
                call(api.create_cluster_custom_object, GROUP, version, plural, body)
            elif (current["metadata"].get("annotations") or {}).get(annotation) != \
                    body["metadata"]["annotations"][annotation]:
                body = copy.deepcopy(body)
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                call(api.replace_cluster_custom_object, GROUP, version, plural, name, body)
        for name in sorted(live):
            call(api.delete_cluster_custom_object, GROUP, version, plural, name)


def missing_kinds(has_crd: Callable[[str], bool], policies: Iterable[ClusterPolicy]) -> list[str]:
    """Kinds the policies use whose CRD the cluster lacks (`has_crd` gets the CRD name)."""
    return sorted({p.kind for p in policies if not has_crd(f"{PLURALS[p.kind]}.{GROUP}")})
