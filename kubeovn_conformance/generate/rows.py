"""The rows: a covering array over the dimensions, and a Case per row.

Rows are every valid pair of values (strength 2), every peers x ports combination in both
the ingress and the egress direction, and first the rows Kube-OVN's bug history needs
(dimensions.CORPUS_SEEDS). Deterministic: the same code gives the same rows, ids and order.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from itertools import product

from kubeovn_conformance.cases import Case
from kubeovn_conformance.generate import covering, ground, steps
from kubeovn_conformance.generate.dimensions import (
    BY_NAME,
    CORPUS_SEEDS,
    DIMENSIONS,
    TRIPLES,
    excluded,
    row_exclusion,
)

PREFIX = "gen"
# How a direction value reads in records and reports (Case.direction).
CASE_DIRECTION = {"ingress": "ingress", "egress": "egress", "both": "both",
                  "types-ingress-with-egress-rules": "ingress",
                  "types-egress-with-ingress-rules": "egress", "egress-empty-no-types": "ingress"}


def _dims() -> list[tuple[str, tuple[str, ...]]]:
    return [(d.name, d.names) for d in DIMENSIONS]


def requirements() -> list[covering.Requirement]:
    """What the rows must cover: valid pairs, then the declared triples."""
    reqs = covering.pair_requirements(_dims(), excluded)
    choices = [values if values is not None else BY_NAME[dim].names for dim, values in TRIPLES]
    for combo in product(*choices):
        assignment = dict(zip((dim for dim, _ in TRIPLES), combo, strict=True))
        if row_exclusion(assignment) is None:
            reqs.append(covering.requirement(**assignment))
    return reqs


@cache
def rows() -> tuple[tuple[tuple[str, str], ...], ...]:
    built = covering.build(_dims(), requirements(), lambda r: row_exclusion(r) is None,
                           seeds=list(CORPUS_SEEDS.values()))
    return tuple(tuple(r.items()) for r in built)


def case_id(row: Mapping[str, str]) -> str:
    parts = [PREFIX] + [BY_NAME[d.name].value(row[d.name]).slug for d in DIMENSIONS]
    return "-".join(p for p in parts if p)


def marks(row: Mapping[str, str]) -> tuple[str, ...]:
    """pytest markers, one per dimension: gen_<dimension>_<value>."""
    return tuple(marker(d.name, row[d.name]) for d in DIMENSIONS)


def marker(dimension: str, value: str) -> str:
    return f"gen_{dimension}_{value}".replace("-", "_").lower()


def all_markers() -> list[tuple[str, str]]:
    """(marker, description) for every dimension value, to register them."""
    return [(marker(d.name, v.name), f"generated cases whose {d.name} is {v.name}: {v.text}")
            for d in DIMENSIONS for v in d.values]


def description(row: Mapping[str, str]) -> str:
    text = {d.name: BY_NAME[d.name].value(row[d.name]).text for d in DIMENSIONS}
    return (f"{text['policies']} in x {text['target']}: {text['direction']}; peers: "
            f"{text['peers']}; ports: {text['ports']} over {text['protocol']}; {text['steps']}")


def to_case(row: Mapping[str, str]) -> Case:
    return Case(case_id(row), CASE_DIRECTION[row["direction"]], ground.workload(row["protocol"]),
                steps.build(row), description(row), marks(row))


def _alone(row: Mapping[str, str]) -> bool:
    """Steps that change labels, pods or Services: such a case runs alone (packing.packable)."""
    return row["steps"] not in ("add", "update", "delete")


def cases() -> list[Case]:
    """Every generated case, packable ones first and grouped by workload, so consecutive
    cases share one dataplane state (packing.groups packs consecutive cases)."""
    ordered = sorted(enumerate(rows()), key=lambda ir: (
        _alone(dict(ir[1])), dict(ir[1])["protocol"] == "SCTP", ir[0]))
    return [to_case(dict(r)) for _, r in ordered]
