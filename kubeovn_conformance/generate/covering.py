"""A deterministic covering array: every required combination of values in some row.

A requirement is a set of (dimension, value) assignments (a pair, a triple); a row covers it
when it holds all of them. `pair_requirements` gives every valid pair of two dimensions'
values (strength 2); callers add more (a few triples) and seed rows.

The builder is a greedy in the style of AETG, without randomness: a new row starts from the
first uncovered requirement (in a fixed order), then each remaining dimension, in declared
order, takes the value that covers the most still-uncovered requirements whose dimensions
are all decided, ties going to the earlier (default) value. Same input, same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

Requirement = tuple[tuple[str, str], ...]  # sorted (dimension, value) assignments
Row = dict[str, str]


def requirement(**values: str) -> Requirement:
    return tuple(sorted(values.items()))


def covers(row: Mapping[str, str], req: Requirement) -> bool:
    return all(row.get(dim) == value for dim, value in req)


def pair_requirements(dims: Sequence[tuple[str, Sequence[str]]],
                      excluded: Callable[[tuple[str, str], tuple[str, str]], str | None]
                      ) -> list[Requirement]:
    """Every pair of values of two different dimensions, except the excluded ones."""
    out = []
    for (d1, values1), (d2, values2) in combinations(dims, 2):
        for v1 in values1:
            for v2 in values2:
                if not excluded((d1, v1), (d2, v2)):
                    out.append(requirement(**{d1: v1, d2: v2}))
    return out


def build(dims: Sequence[tuple[str, Sequence[str]]], requirements: Sequence[Requirement],
          valid: Callable[[Mapping[str, str]], bool], seeds: Sequence[Mapping[str, str]] = ()
          ) -> list[Row]:
    """Rows (dimension -> value) covering every requirement. `seeds` are partial rows that
    come first, completed like any other row; `valid(partial_row)` rejects combinations."""
    order = [d for d, _ in dims]
    values = dict(dims)
    pending = list(dict.fromkeys(requirements))
    uncovered = set(pending)
    # the dimension sets requirements constrain, sorted, to score a candidate by lookups
    shapes = sorted({tuple(d for d, _ in req) for req in pending})
    rows: list[Row] = []

    def score(row: Mapping[str, str], dim: str) -> int:
        return sum(1 for shape in shapes if dim in shape and all(d in row for d in shape)
                   and tuple((d, row[d]) for d in shape) in uncovered)

    def complete(start: Mapping[str, str]) -> Row:
        row = dict(start)
        for dim in order:
            if dim in row:
                continue
            best, best_score = None, -1
            for value in values[dim]:
                row[dim] = value
                if valid(row):
                    s = score(row, dim)
                    if s > best_score:
                        best, best_score = value, s
            if best is None:
                raise ValueError(f"no valid value for {dim} in row {dict(start)}")
            row[dim] = best
        return {d: row[d] for d in order}

    def take(row: Row) -> None:
        if row in rows:
            return
        rows.append(row)
        for shape in shapes:
            uncovered.discard(tuple((d, row[d]) for d in shape))

    for seed in seeds:
        if not valid(seed):
            raise ValueError(f"seed row {dict(seed)} is not valid")
        take(complete(seed))
    for req in pending:
        if req in uncovered:
            take(complete(dict(req)))
    return rows
