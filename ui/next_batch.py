"""The next review batch, chosen and rendered while the person decides the last card of this one.

At a batch's end the panel waited for the review loop to learn from the batch,
choose the next batch and render it: about 100 ms of one key press in ten, on
10,000 items (bench/ui_latency.py). Now that work starts in a thread when a
few cards are left (PREPARE_AT in ui/app.py), leaving those cards out, and the
last decision swaps the ready panel in. Like an annotation queue that fetches
ahead, the new batch has learnt from every decision but those cards'; the next
refresh adds them.

A prepared panel is used only if it was prepared for the same filters, labels
and suggester and nothing but the left-out cards was decided since (another
tab, the chat, an undo); otherwise the caller computes the panel as before.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Hashable

WAIT_S = 10.0  # a prepared panel still being computed is waited for, up to this


@dataclass(frozen=True)
class Prepared:
    html: str
    cards: list  # the batch's Cards


@dataclass(frozen=True)
class _Job:
    key: Hashable
    mark: int  # the store's decision mark when preparing began
    left_out: frozenset[int]  # the cards still open then: they may be decided meanwhile
    future: Future


class NextBatch:
    def __init__(self, store):
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labelchat-next-batch")
        self._job: _Job | None = None

    def prepare(self, key: Hashable, left_out: set[int], work: Callable[[frozenset[int]], Prepared]) -> None:
        """Start `work(left_out)` (choose and render a batch without those cards) in the background."""
        left_out = frozenset(left_out)
        mark = self.store.decision_mark()
        self._job = _Job(key, mark, left_out, self._pool.submit(work, left_out))

    def take(self, key: Hashable) -> Prepared | None:
        """The prepared panel if it is still right for `key` and the store, else None. Used once."""
        job, self._job = self._job, None
        if job is None or job.key != key:
            return None
        try:
            prepared = job.future.result(timeout=WAIT_S)
        except Exception:  # too slow or failed: the caller computes the panel itself, errors shown there
            return None
        if not self.store.decided_since(job.mark) <= job.left_out:
            return None
        return prepared

    def drop(self) -> None:
        self._job = None
