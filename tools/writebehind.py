"""Suggestion rows written to the store behind the review loop, in small transactions.

After a batch of decisions the review loop recomputes every undecided item's
suggestions in memory in tens of milliseconds, but storing ten thousand rows
takes about a second. In the browser app that second sat between a key press
and the next card. `SuggestionWriter` takes the rows and writes them from a
thread, a few hundred per transaction, so a decision arriving meanwhile waits
for one small transaction at most. Until a row is written, `get` returns it,
so the review loop never shows an older suggestion than it computed.
Suggestions are derived data: rows lost to a crash are recomputed on the next
refresh; decisions are never written here.
"""

from __future__ import annotations

import threading
from typing import Sequence

from index.store import Store
from index.types import Suggestion

CHUNK = 300


class SuggestionWriter:
    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[Sequence[Suggestion], str]] = {}
        self._writing: dict[int, tuple[Sequence[Suggestion], str]] = {}
        self._thread: threading.Thread | None = None

    def put(self, rows: dict[int, Sequence[Suggestion]], head_key: str) -> None:
        with self._lock:
            self._pending.update({item_id: (suggestions, head_key) for item_id, suggestions in rows.items()})
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, daemon=True, name="labelchat-suggestions")
                self._thread.start()

    def get(self, item_id: int) -> list[Suggestion] | None:
        """The newest unwritten suggestions of an item, or None when the store has them."""
        with self._lock:
            found = self._pending.get(item_id) or self._writing.get(item_id)
        return list(found[0]) if found else None

    def flush(self) -> None:
        """Wait until everything put so far is in the store."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                keys = list(self._pending)[:CHUNK]
                self._writing = {k: self._pending.pop(k) for k in keys}
                chunk = self._writing
            by_key: dict[str, dict[int, Sequence[Suggestion]]] = {}
            for item_id, (suggestions, head_key) in chunk.items():
                by_key.setdefault(head_key, {})[item_id] = suggestions
            for head_key, rows in by_key.items():
                self.store.put_suggestions_many(rows, head_key=head_key)
            with self._lock:
                self._writing = {}
