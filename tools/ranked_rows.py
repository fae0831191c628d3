"""A refresh's suggestions as arrays, for the store to write in one statement.

Building a `Suggestion` per item and rank took 38 us an item: 3.8 s of a
refresh of 100,000 items, before the store saw a row. The same rows as
arrays take a fraction of that; the voters (the confirmed examples among an
item's neighbours that have the label of a rank) are the one ragged part,
and only cells that have any are listed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .learn import Blended
from .scoring import TOP_K


@dataclass(frozen=True)
class RankedRows:
    item_ids: np.ndarray  # (N,)
    order: np.ndarray  # (N, K) label columns, best first
    scores: np.ndarray  # (N, K) probabilities
    zero_shot: np.ndarray  # (N, K) the zero-shot probability of each ranked label
    examples: np.ndarray | None  # (N, K) what the examples alone say; None before any example
    voters: dict[tuple[int, int], list[int]]  # (row, rank) -> example item ids that voted for that label


def ranked_rows(item_ids: np.ndarray, blended: Blended, rows: np.ndarray,
                example_labels: dict[int, str], column: dict[str, int]) -> RankedRows:
    """The top-K suggestions of blended rows `rows` (item_ids[i] is the item of rows[i])."""
    probabilities = blended.probabilities[rows]
    k = min(TOP_K, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    pick = lambda values: np.take_along_axis(values, order, axis=1)  # noqa: E731
    examples = pick(blended.learned[rows]) if example_labels else None
    return RankedRows(np.asarray(item_ids), order, pick(probabilities), pick(blended.zero_shot[rows]), examples,
                      _voters(blended.neighbor_ids_at(rows), order, example_labels, column))


def _voters(neighbor_ids: np.ndarray, order: np.ndarray, example_labels: dict[int, str],
            column: dict[str, int]) -> dict[tuple[int, int], list[int]]:
    known = [(item_id, column[label]) for item_id, label in example_labels.items() if label in column]
    if not known or not neighbor_ids.size:
        return {}
    ids = np.array([i for i, _ in known], dtype=np.int64)
    by_id = np.argsort(ids)
    ids, columns = ids[by_id], np.array([c for _, c in known], dtype=np.int64)[by_id]
    where = np.minimum(np.searchsorted(ids, neighbor_ids), len(ids) - 1)
    neighbor_column = np.where((neighbor_ids >= 0) & (ids[where] == neighbor_ids), columns[where], -1)  # (N, k)
    voters: dict[tuple[int, int], list[int]] = {}
    for rank in range(order.shape[1]):
        votes = neighbor_column == order[:, rank : rank + 1]  # (N, k): neighbour voted for this rank's label
        for row in np.flatnonzero(votes.any(axis=1)).tolist():
            voters[(row, rank)] = neighbor_ids[row][votes[row]].tolist()
    return voters
