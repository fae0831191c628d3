"""Batch ordering: which of the open items a person sees next, and in what order.

`Strategy` names the orders; `_order` ranks items by their probabilities, spread over the
suggested labels so no batch is all one class, and `without_near_duplicates` keeps two
near-identical images out of the same batch.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from enum import Enum
from typing import Callable

import numpy as np

NEAR_DUPLICATE_COSINE = 0.97  # two items this similar are not shown in the same batch
ORDER_LIMIT = 5000  # batches are drawn from this many of the least certain items


class Strategy(str, Enum):
    UNCERTAIN = "uncertain"  # smallest margin between the two best labels first
    BALANCED = "balanced"  # round-robin over suggested labels, least certain first
    CONFIDENT = "confident"  # most confident first: for fast bulk approval
    RANDOM = "random"  # for auditing
    SUSPECT = "suspect"  # confirmed items whose labels look wrong (tools/quality/suspects.py)


def _order(strategy: Strategy, probabilities: np.ndarray, seed: int | None, limit: int = ORDER_LIMIT) -> np.ndarray:
    n = len(probabilities)
    if not n:
        return np.zeros(0, dtype=np.int64)
    top2 = -np.sort(-probabilities, axis=1)[:, :2]
    margin = top2[:, 0] - (top2[:, 1] if probabilities.shape[1] > 1 else 0)
    if strategy is Strategy.CONFIDENT:
        return np.argsort(-top2[:, 0], kind="stable")
    if strategy is Strategy.RANDOM:
        return np.random.default_rng(seed).permutation(n)
    by_margin = _smallest(margin, limit)
    if strategy is Strategy.UNCERTAIN:
        return _spread_over_labels(by_margin, probabilities.argmax(axis=1), cap_share=0.5)
    return _spread_over_labels(by_margin, probabilities.argmax(axis=1), cap_share=None)


def _smallest(values: np.ndarray, limit: int) -> np.ndarray:
    """`np.argsort(values, kind="stable")[:limit]`, without sorting all of a million values."""
    if limit >= len(values):
        return np.argsort(values, kind="stable")
    kth = np.partition(values, limit)[limit]
    candidates = np.flatnonzero(values <= kth)  # ties at the cut are resolved by position, as a stable sort does
    return candidates[np.lexsort((candidates, values[candidates]))][:limit]


def _spread_over_labels(order: np.ndarray, predicted: np.ndarray, cap_share: float | None) -> np.ndarray:
    """Interleave the order across suggested labels, so no batch is all one class.

    cap_share None: strict round-robin over labels (class-balanced). Otherwise
    uncertainty order, except that one label may not take more than that share
    of any 20 consecutive places.
    """
    queues: dict[int, list[int]] = {}
    for index in order:
        queues.setdefault(int(predicted[index]), []).append(int(index))
    if cap_share is None:
        result, lists = [], [q for q in queues.values()]
        while any(lists):
            for q in lists:
                if q:
                    result.append(q.pop(0))
        return np.array(result, dtype=np.int64)
    return _capped(order, predicted, cap=max(1, math.ceil(20 * cap_share)), window=20)


def _capped(order: np.ndarray, predicted: np.ndarray, cap: int, window: int) -> np.ndarray:
    """The order, except that no label takes more than `cap` of any `window` consecutive places
    (when every label with items left is at its cap, the earliest item goes next anyway)."""
    queues: dict[int, deque] = {}
    for position, index in enumerate(order):
        queues.setdefault(int(predicted[index]), deque()).append((position, int(index)))
    recent: deque = deque()
    counts: Counter = Counter()
    result = []
    while queues:
        allowed = [label for label in queues if counts[label] < cap] or list(queues)
        label = min(allowed, key=lambda l: queues[l][0][0])
        result.append(queues[label].popleft()[1])
        if not queues[label]:
            del queues[label]
        recent.append(label)
        counts[label] += 1
        if len(recent) >= window:
            counts[recent.popleft()] -= 1
    return np.array(result, dtype=np.int64)


def without_near_duplicates(ordered_ids: np.ndarray, size: int, item_ids: np.ndarray,
                            features_of: Callable[[np.ndarray], np.ndarray]) -> list[int]:
    """The first `size` of `ordered_ids`, skipping any within NEAR_DUPLICATE_COSINE of one already
    chosen. `features_of(rows)`: normalised features of those rows of the sorted `item_ids`
    (asked a few rows at a time: a batch never needs every item's)."""
    chosen: list[int] = []
    vectors: np.ndarray | None = None
    step = max(2 * size, 8)
    for start in range(0, len(ordered_ids), step):
        part = ordered_ids[start : start + step]
        part_vectors = features_of(np.searchsorted(item_ids, part))
        if vectors is None:
            vectors = np.empty((size, part_vectors.shape[1]), dtype=part_vectors.dtype)
        for item_id, vector in zip(part, part_vectors):
            if chosen and float(np.max(vectors[: len(chosen)] @ vector)) >= NEAR_DUPLICATE_COSINE:
                continue
            vectors[len(chosen)] = vector
            chosen.append(int(item_id))
            if len(chosen) == size:
                return chosen
    return chosen
