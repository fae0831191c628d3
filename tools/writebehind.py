"""Suggestion rows written to the store behind the review loop, in small transactions.

After a batch of decisions the review loop recomputes every undecided item's
suggestions in memory in tens of milliseconds, but turning ten thousand of
them into rows and storing them took about a second, which sat between a key
press and the next card in the browser app. `SuggestionWriter` takes a
builder per item and a writer of many items instead, and stores the rows from a thread, over
the store's one connection, a hundred rows per transaction with a pause
between them, so a decision or a read from the app waits for one small
transaction at most. (A second connection was worse: the app's writes then
met SQLite's busy handler, which sleeps in steps of up to 100 ms.) Until an item's row is written, `get` builds it from the same
snapshot, so the review loop never shows an older suggestion than it computed.
Suggestions are derived data: rows lost to a crash are recomputed by the
next refresh; decisions are never written here.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

from index.store import Store
from index.types import Suggestion

CHUNK = 100
PAUSE_S = 0.04  # between chunks: the app's requests get the interpreter first
START_DELAY_S = 0.3  # the request that refreshed (a batch's last decision) finishes before writing starts

Builder = Callable[[int], list[Suggestion]]  # one item's suggestions (what `get` answers)
Writer = Callable[[list[int]], None]  # stores the suggestions of many items of one snapshot


class SuggestionWriter:
    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[Builder, Writer]] = {}
        self._writing: dict[int, tuple[Builder, Writer]] = {}
        self._thread: threading.Thread | None = None

    def put(self, item_ids: Iterable[int], build: Builder, write: Writer) -> None:
        """Store each item's suggestions later, by `write`; newer puts replace older ones."""
        with self._lock:
            self._pending.update(dict.fromkeys(item_ids, (build, write)))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, daemon=True, name="labelchat-suggestions")
                self._thread.start()

    def get(self, item_id: int) -> list[Suggestion] | None:
        """The newest unwritten suggestions of an item, or None when the store has them."""
        with self._lock:
            found = self._pending.get(item_id) or self._writing.get(item_id)
        return found[0](item_id) if found else None

    def flush(self) -> None:
        """Wait until everything put so far is in the store."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def _drain(self) -> None:
        time.sleep(START_DELAY_S)
        while True:
            with self._lock:
                if not self._pending:
                    return
                keys = list(self._pending)[:CHUNK]
                self._writing = {k: self._pending.pop(k) for k in keys}
                chunk = self._writing
            by_snapshot: dict[Writer, list[int]] = {}
            for item_id, (_, write) in chunk.items():
                by_snapshot.setdefault(write, []).append(item_id)
            for write, item_ids in by_snapshot.items():
                write(item_ids)
            with self._lock:
                self._writing = {}
            time.sleep(PAUSE_S)
