"""The one package that owns SQL: the project database.

SQLite in WAL mode is the source of truth (the feature vectors, a cache of what a model
said about the images, live beside it in features/: index/features.py). Every write is one short
transaction (`BEGIN IMMEDIATE`), so a write that returned is on disk and a
process killed mid-way leaves the database as it was before that write.
Several processes (CLI, app, two browser tabs) may open the same project:
writers are serialised by SQLite's lock, with a busy timeout.

Decisions are an append-only log. `item_state` is derived from it in the same
transaction as each decision, so reads are cheap, and `rebuild_state`
recomputes it from the log to prove they agree.
"""

from __future__ import annotations

from pathlib import Path

from .base import StoreBase, now
from .chat import ChatMixin
from .crawl import CrawlMixin
from .decisions import DecisionsMixin, derive_state
from .embeddings import EmbeddingsMixin
from .items import ItemsMixin
from .jobs import JobsMixin
from .label_set import LabelSetMixin
from .models import ModelsMixin
from .rounds import RoundStoreMixin
from .state import StateMixin
from .suggestions import SuggestionsMixin

__all__ = ["Store", "derive_state", "now"]


class Store(
    ItemsMixin,
    LabelSetMixin,
    DecisionsMixin,
    StateMixin,
    SuggestionsMixin,
    EmbeddingsMixin,
    CrawlMixin,
    ChatMixin,
    ModelsMixin,
    JobsMixin,
    RoundStoreMixin,
    StoreBase,
):
    """A project's SQLite database. Open with `Store(path)`; close with `close()`.

    Its methods live by table group, one mixin a module of index/store/:
    base.py (the connection, transactions, migrations, settings), items.py (items, their
    sources, near-duplicates), label_set.py (labels), decisions.py (the decision log, undo),
    state.py (item_state, check, status counts), suggestions.py, embeddings.py (feature files,
    heads), crawl.py (the crawl frontier), chat.py (chat messages), models.py (model versions),
    jobs.py and rounds.py (review rounds).
    """

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._move_embeddings_to_files()
