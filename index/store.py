"""The one module that owns SQL: the project database.

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

import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .errors import (
    LabelchatError,
    LabelNotInSetError,
    NothingToUndoError,
    ProjectError,
    SchemaTooNewError,
    UnknownItemError,
)
from .features import FeatureFile
from .labels import refuse_duplicates, validate_label_name
from .migrations import MIGRATIONS
from .store_rounds import RoundStoreMixin
from .types import (
    Action,
    CrawlUrl,
    Decision,
    Item,
    ItemState,
    Job,
    JobStatus,
    Label,
    Origin,
    LabelCount,
    LabelSet,
    ModelVersion,
    Status,
    StatusCounts,
    Suggestion,
)

BUSY_TIMEOUT_S = 30.0
FEATURES_DIR = "features"  # beside the database: index/features.py
IMPORT_ACTOR = "import"  # decisions that came with the images (folders, manifests), not from a person
JSON_ROWS = 100_000  # rows per JSON parameter of a bulk write: far below SQLite's 1 GB cap on one text


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store(RoundStoreMixin):
    """A project's SQLite database (review rounds' SQL in store_rounds.py). Open with `Store(path)`; close with `close()`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise ProjectError(
                f"{self.path} is not a labelchat project database ({exc}). "
                f"Point --project at a project folder, or at a new folder to create one."
            ) from exc
        self._lock = threading.RLock()  # one connection, shared by threads of one process
        self._migrate()
        self._move_embeddings_to_files()

    # -- plumbing -------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; committed when the block ends, rolled back on error.

        Inside `transaction()` it is a savepoint of that transaction instead: its
        writes still land all or none, and the commit is the outer one's."""
        with self._lock:
            if self._db.in_transaction:
                self._db.execute("SAVEPOINT write")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK TO write")
                    self._db.execute("RELEASE write")
                    raise
                self._db.execute("RELEASE write")
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group many writes into one commit (a crawl records a round of results at once):
        the writes inside are all kept, or none if the block raises. Other threads wait."""
        with self._write():
            yield

    def _read(self, sql: str, params: Sequence | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise SchemaTooNewError(str(self.path), version, len(MIGRATIONS))
            for number, (_name, migration) in enumerate(MIGRATIONS, start=1):
                if number <= version:
                    continue
                with self._write() as db:
                    migration(db)
                    db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    # -- settings -------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._read("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- items ----------------------------------------------------------------

    def add_item(
        self,
        *,
        sha256: str,
        phash: str,
        media_path: str,
        width: int,
        height: int,
        format: str,
        bytes: int,
        origin: Origin,
        near_duplicates: Iterable[tuple[int, int]] = (),
        label: str | None = None,
        actor: str = IMPORT_ACTOR,
    ) -> tuple[Item, bool]:
        """Add an image, or a new source for an image already here (same sha256).

        Returns the item and whether it is new. With `label`, the label is
        recorded as a confirmed decision in the same transaction, so an item
        never lands without the label it was imported with; an item already
        confirmed by a person keeps its label, and one a person rejected that
        label for stays rejected (the caller can tell from `state`).
        """
        added_at = now()
        with self._write() as db:
            row = db.execute("SELECT id FROM items WHERE sha256 = ?", (sha256,)).fetchone()
            created = row is None
            if created:
                item_id = db.execute(
                    "INSERT INTO items(sha256, phash, media_path, width, height, format, bytes,"
                    " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (sha256, phash, media_path, width, height, format, bytes, added_at),
                ).lastrowid
                db.execute(
                    "INSERT INTO item_state(item_id, status) VALUES (?, ?)",
                    (item_id, Status.PENDING.value),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO near_duplicates(item_id, other_id, distance)"
                    " VALUES (?, ?, ?)",
                    [(item_id, other, dist) for other, dist in near_duplicates],
                )
            else:
                item_id = row["id"]
            db.execute(
                "INSERT OR IGNORE INTO item_sources(item_id, source, page_url, alt_text, title,"
                " added_at) VALUES (?, ?, ?, ?, ?, ?)",
                (item_id, origin.source, origin.page_url, origin.alt_text, origin.title, added_at),
            )
            if label is not None and _takes_label(db, item_id, label):
                self._check_label(db, label)
                self._append_decision(db, item_id, Action.ACCEPT, label, actor, auto=False)
        return self.get_item(item_id), created

    def get_item(self, item_id: int) -> Item:
        rows = self._read(_ITEM_SELECT + " WHERE i.id = ?", (item_id,))
        if not rows:
            raise UnknownItemError(item_id)
        return _item(rows[0])

    def item_by_sha256(self, sha256: str) -> Item | None:
        rows = self._read(_ITEM_SELECT + " WHERE i.sha256 = ?", (sha256,))
        return _item(rows[0]) if rows else None

    def items(
        self,
        *,
        status: Status | None = None,
        label: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Item]:
        """Items in the order they were added, optionally filtered by current state."""
        where, params = _state_filter(status, label, "s.")
        sql = _ITEM_SELECT + f" JOIN item_state s ON s.item_id = i.id WHERE {where} ORDER BY i.id LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
        return [_item(row) for row in self._read(sql, params)]

    def media_paths(self, item_ids: Sequence[int]) -> dict[int, str]:
        """Each item's media path, for many items in one query (ids that do not exist are left out)."""
        rows = self._read("SELECT id, media_path FROM items WHERE id IN (SELECT value FROM json_each(?))",
                          (json.dumps([int(i) for i in item_ids]),))
        return {row[0]: row[1] for row in rows}

    def item_count(self) -> int:
        return self._read("SELECT count(*) FROM items")[0][0]

    def origins(self, item_id: int) -> list[Origin]:
        rows = self._read(
            "SELECT source, page_url, alt_text, title FROM item_sources"
            " WHERE item_id = ? ORDER BY id",
            (item_id,),
        )
        return [Origin(**dict(row)) for row in rows]

    def phashes(self) -> list[tuple[int, str]]:
        """(item id, perceptual hash) of every item, for near-duplicate search."""
        return self._plain_rows("SELECT id, phash FROM items")

    def near_duplicates(self, item_id: int | None = None) -> list[tuple[int, int, int]]:
        """(item, earlier item it resembles, Hamming distance of their hashes)."""
        sql = "SELECT item_id, other_id, distance FROM near_duplicates"
        params: tuple = ()
        if item_id is not None:
            sql += " WHERE item_id = ? OR other_id = ?"
            params = (item_id, item_id)
        return [tuple(row) for row in self._read(sql + " ORDER BY item_id", params)]

    # -- labels ---------------------------------------------------------------

    def label_set(self) -> LabelSet:
        rows = self._read("SELECT name, description, prompts FROM labels ORDER BY position")
        labels = tuple(
            Label(r["name"], r["description"], tuple(json.loads(r["prompts"]))) for r in rows
        )
        return LabelSet(labels, int(self.get_setting("label_set_version", "0")))

    def set_labels(self, labels: Sequence[Label]) -> LabelSet:
        """Replace the label set. Decisions keep their labels; see `status()`."""
        names = [validate_label_name(label.name) for label in labels]
        refuse_duplicates(names)
        with self._write() as db:
            db.execute("DELETE FROM labels")
            for position, label in enumerate(labels):
                db.execute(
                    "INSERT INTO labels(name, description, prompts, position) VALUES (?,?,?,?)",
                    (label.name, label.description, json.dumps(list(label.prompts)), position),
                )
            self._bump_label_version(db)
        return self.label_set()

    def add_labels(self, labels: Sequence[Label]) -> LabelSet:
        """Add labels that are not in the set yet, keeping the existing ones and their order."""
        for label in labels:
            validate_label_name(label.name)
        known = self.label_set().names
        refuse_duplicates(known + [label.name for label in labels if label.name not in known])
        with self._write() as db:
            added = 0
            for label in labels:
                position = db.execute("SELECT coalesce(max(position) + 1, 0) FROM labels")
                added += db.execute(
                    "INSERT OR IGNORE INTO labels(name, description, prompts, position)"
                    " VALUES (?, ?, ?, ?)",
                    (
                        label.name,
                        label.description,
                        json.dumps(list(label.prompts)),
                        position.fetchone()[0],
                    ),
                ).rowcount
            if added:
                self._bump_label_version(db)
        return self.label_set()

    def remove_labels(self, names: Sequence[str]) -> LabelSet:
        known = self.label_set().names
        for name in names:
            if name not in known:
                raise LabelNotInSetError(name, known, removing=True)
        with self._write() as db:
            db.executemany("DELETE FROM labels WHERE name = ?", [(n,) for n in names])
            self._bump_label_version(db)
        return self.label_set()

    @staticmethod
    def _bump_label_version(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO settings(key, value) VALUES ('label_set_version', '1') ON CONFLICT(key)"
            " DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        )

    @staticmethod
    def _check_label(db: sqlite3.Connection, label: str) -> None:
        if db.execute("SELECT 1 FROM labels WHERE name = ?", (label,)).fetchone() is None:
            known = [r[0] for r in db.execute("SELECT name FROM labels ORDER BY position")]
            raise LabelNotInSetError(label, known)

    # -- decisions ------------------------------------------------------------

    def decide(
        self,
        item_id: int,
        action: Action,
        label: str | None = None,
        *,
        actor: str = "user",
        auto: bool = False,
    ) -> Decision:
        """Append one decision and update the item's derived state, atomically.

        Defined behaviour for every case, no exceptions for repeats: a newer
        decision simply supersedes the older one (the log keeps both).
        """
        action = Action(action)
        if action is Action.UNDO:
            return self.undo(item_id, actor=actor)
        if action in (Action.ACCEPT, Action.CORRECT, Action.REJECT) and not label:
            raise LabelchatError(f"A '{action.value}' decision needs a label; none was given.")
        with self._write() as db:
            if db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
                raise UnknownItemError(item_id)
            if action in (Action.ACCEPT, Action.CORRECT):
                self._check_label(db, label)
            decision_id = self._append_decision(db, item_id, action, label, actor, auto)
        return self.decision(decision_id)

    def decide_many(
        self, decisions: Sequence[tuple[int, Action, str | None]], *, actor: str, auto: bool
    ) -> int:
        """Append many decisions in one transaction: all of them land, or none. They form one
        batch, which `undo_last` takes back as a whole. Returns how many landed; `decisions(
        since=...)` reads them back."""
        with self._write() as db:
            ids = []
            for item_id, action, label in decisions:
                if db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
                    raise UnknownItemError(item_id)
                if Action(action) in (Action.ACCEPT, Action.CORRECT):
                    self._check_label(db, label)
                ids.append(self._append_decision(db, item_id, Action(action), label, actor, auto))
            if len(ids) > 1:
                db.execute("UPDATE decisions SET batch = ? WHERE id BETWEEN ? AND ?", (ids[0], ids[0], ids[-1]))
        return len(decisions)

    def undo(self, item_id: int | None = None, *, actor: str = "user") -> Decision:
        """Cancel the newest decision that is still in effect (of one item, or of the project).

        Works across restarts: what is in effect is read from the log.
        """
        with self._write() as db:
            target = _newest_effective(db, item_id)
            if target is None:
                where = f"item {item_id}" if item_id is not None else "this project"
                raise NothingToUndoError(f"Nothing to undo in {where}: no decision is in effect.")
            decision_id = self._append_undo(db, target, actor)
        return self.decision(decision_id)

    def undo_last(self, *, actor: str = "user", since: int | None = None) -> list[Decision]:
        """Cancel the newest action still in effect: one decision, or all of a bulk action's
        decisions that are still in effect (one transaction). Returns the undo decisions. With
        `since` (a `decision_mark()`), only an action made after it: a session's own."""
        with self._write() as db:
            target = _newest_effective(db, None)
            if target is None:
                raise NothingToUndoError("Nothing to undo in this project: no decision is in effect.")
            if since is not None and target["id"] <= since:
                raise NothingToUndoError("Nothing to undo from this session: its decisions are all undone.")
            targets = [target] if target["batch"] is None else _effective_in_batch(db, target["batch"])
            first = last = None
            for row in targets:
                last = self._append_undo(db, row, actor)
                first = first or last
        rows = self._read(_DECISION_SELECT + " WHERE id BETWEEN ? AND ? AND action = 'undo' ORDER BY id",
                          (first, last))
        return [_decision(row) for row in rows]

    def _append_undo(self, db: sqlite3.Connection, target: sqlite3.Row, actor: str) -> int:
        decision_id = db.execute(
            "INSERT INTO decisions(item_id, action, label, actor, auto, undoes, created_at)"
            " VALUES (?, 'undo', ?, ?, 0, ?, ?)",
            (target["item_id"], target["label"], actor, target["id"], now()),
        ).lastrowid
        self._refresh_state(db, target["item_id"])
        return decision_id

    def _append_decision(
        self,
        db: sqlite3.Connection,
        item_id: int,
        action: Action,
        label: str | None,
        actor: str,
        auto: bool,
    ) -> int:
        decision_id = db.execute(
            "INSERT INTO decisions(item_id, action, label, actor, auto, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, action.value, label, actor, int(auto), now()),
        ).lastrowid
        self._refresh_state(db, item_id)
        return decision_id

    @staticmethod
    def _refresh_state(db: sqlite3.Connection, item_id: int) -> None:
        rows = db.execute(
            "SELECT id, action, label, undoes FROM decisions WHERE item_id = ? ORDER BY id",
            (item_id,),
        ).fetchall()
        state = derive_state(item_id, rows)
        db.execute(
            "INSERT INTO item_state(item_id, status, label, rejected, last_decision_id)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET status = excluded.status,"
            " label = excluded.label, rejected = excluded.rejected,"
            " last_decision_id = excluded.last_decision_id",
            (
                item_id,
                state.status.value,
                state.label,
                json.dumps(list(state.rejected)),
                state.last_decision_id,
            ),
        )

    def keep_label(self, item_id: int, *, actor: str = "user") -> Decision:
        """A person looked at a confirmed item flagged as likely wrong and kept its label: an
        accept of that label, remembered so the item is not flagged again (undo flags it again)."""
        with self._write() as db:
            row = db.execute("SELECT status, label FROM item_state WHERE item_id = ?", (item_id,)).fetchone()
            if row is None:
                raise UnknownItemError(item_id)
            if row["status"] != Status.CONFIRMED.value:
                raise LabelchatError(f"Item {item_id} is {row['status']}, not confirmed: there is no label to keep.")
            decision_id = self._append_decision(db, item_id, Action.ACCEPT, row["label"], actor, False)
            db.execute("INSERT INTO kept_labels(decision_id, item_id, label) VALUES (?, ?, ?)",
                       (decision_id, item_id, row["label"]))
        return self.decision(decision_id)

    def kept_labels(self) -> dict[int, str]:
        """item id -> label a person kept, for kept decisions still in effect."""
        rows = self._read("SELECT k.item_id, k.label FROM kept_labels k WHERE NOT EXISTS"
                          " (SELECT 1 FROM decisions u WHERE u.undoes = k.decision_id) ORDER BY k.decision_id")
        return {row[0]: row[1] for row in rows}

    def decision(self, decision_id: int) -> Decision:
        rows = self._read(_DECISION_SELECT + " WHERE id = ?", (decision_id,))
        return _decision(rows[0])

    def decision_mark(self) -> int:
        """The newest decision's id (0 with none); `decided_since(mark)` tells what came after it."""
        return self._read("SELECT COALESCE(MAX(id), 0) FROM decisions")[0][0]

    def decided_since(self, mark: int) -> set[int]:
        """Ids of the items with a decision (an undo included) newer than `mark`."""
        return {row[0] for row in self._read("SELECT DISTINCT item_id FROM decisions WHERE id > ?", (mark,))}

    def decisions(self, item_id: int | None = None, *, limit: int | None = None,
                  since: int | None = None) -> list[Decision]:
        """The log, oldest first (for one item, the newest `limit` of the project, or those after
        the `decision_mark()` given as `since`)."""
        if since is not None:
            return [_decision(row) for row in self._read(_DECISION_SELECT + " WHERE id > ? ORDER BY id", (since,))]
        if item_id is not None:
            rows = self._read(_DECISION_SELECT + " WHERE item_id = ? ORDER BY id", (item_id,))
        else:
            rows = self._read(
                f"SELECT * FROM ({_DECISION_SELECT} ORDER BY id DESC LIMIT ?) ORDER BY id",
                (-1 if limit is None else limit,),
            )
        return [_decision(row) for row in rows]

    def state(self, item_id: int) -> ItemState:
        rows = self._read("SELECT * FROM item_state WHERE item_id = ?", (item_id,))
        if not rows:
            raise UnknownItemError(item_id)
        return _state(rows[0])

    def states(self, status: Status | None = None) -> list[ItemState]:
        if status is None:
            rows = self._read("SELECT * FROM item_state ORDER BY item_id")
        else:
            rows = self._read(
                "SELECT * FROM item_state WHERE status = ? ORDER BY item_id", (status.value,)
            )
        return [_state(row) for row in rows]

    def item_ids_where(self, *, status: Status | None = None, label: str | None = None) -> list[int]:
        """Ids in order. Fetched as one joined string: Python's sqlite3 gives up the interpreter
        lock for every row fetched, and with a busy thread beside it (the suggestion writer)
        getting it back 10,000 times made this take 300 ms instead of 3 (measured)."""
        where, params = _state_filter(status, label)
        joined = self._read(f"SELECT group_concat(item_id) FROM item_state WHERE {where}", params)[0][0]
        return sorted(map(int, joined.split(","))) if joined else []

    def open_item_ids(self) -> "np.ndarray":
        """Sorted ids of the items still to review (pending or skipped), as one array: what a
        review batch starts from (a million ids as Python ints, twice, took a second)."""
        joined = self._read("SELECT group_concat(item_id) FROM item_state WHERE status IN (?, ?)",
                            (Status.PENDING.value, Status.SKIPPED.value))[0][0]
        return np.sort(np.array(joined.split(","), dtype=np.int64)) if joined else np.zeros(0, dtype=np.int64)

    def confirmed_labels(self) -> dict[int, str]:
        """item id -> label of every confirmed item (fast: for refreshing suggestions)."""
        rows = self._read("SELECT item_id, label FROM item_state WHERE status = 'confirmed'")
        return {row[0]: row[1] for row in rows}

    def rejected_labels(self) -> dict[int, list[str]]:
        """item id -> labels a person rejected for it, for items with any."""
        rows = self._read("SELECT item_id, rejected FROM item_state WHERE rejected != '[]'")
        return {row[0]: json.loads(row[1]) for row in rows}

    def labels_of(self, item_ids: Sequence[int]) -> dict[int, str | None]:
        """Current labels of these items (None where not confirmed)."""
        result: dict[int, str | None] = {}
        ids = list(item_ids)
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            rows = self._read(
                f"SELECT item_id, label FROM item_state WHERE item_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            result.update({row[0]: row[1] for row in rows})
        return result

    def rebuild_state(self) -> int:
        """Recompute every item's state from the log; returns how many rows changed."""
        before = {s.item_id: s for s in self.states()}
        with self._write() as db:
            for (item_id,) in db.execute("SELECT id FROM items").fetchall():
                self._refresh_state(db, item_id)
        after = {s.item_id: s for s in self.states()}
        return sum(1 for item_id, s in after.items() if before.get(item_id) != s)

    def check(self) -> list[str]:
        """Problems found in the database; an empty list means it is consistent."""
        problems = [r[0] for r in self._read("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {tuple(r)}" for r in self._read("PRAGMA foreign_key_check")]
        missing = self._read(
            "SELECT id FROM items WHERE id NOT IN (SELECT item_id FROM item_state)"
        )
        problems += [f"item {r[0]} has no state row" for r in missing]
        stored = {s.item_id: s for s in self.states()}
        with self._lock:
            for (item_id,) in self._db.execute("SELECT id FROM items").fetchall():
                rows = self._db.execute(
                    "SELECT id, action, label, undoes FROM decisions WHERE item_id = ?"
                    " ORDER BY id",
                    (item_id,),
                ).fetchall()
                if item_id in stored and derive_state(item_id, rows) != stored[item_id]:
                    problems.append(f"item {item_id}: stored state disagrees with its decisions")
        return problems

    # -- status ---------------------------------------------------------------

    def status(self) -> StatusCounts:
        by_status = {s.value: 0 for s in Status}
        for row in self._read("SELECT status, count(*) AS n FROM item_state GROUP BY status"):
            by_status[row["status"]] = row["n"]
        confirmed = {
            r["label"]: r["n"]
            for r in self._read(
                "SELECT label, count(*) AS n FROM item_state WHERE status = 'confirmed'"
                " GROUP BY label"
            )
        }
        suggested = {
            r["label"]: r["n"]
            for r in self._read(
                "SELECT g.label, count(*) AS n FROM suggestions g JOIN item_state s"
                " ON s.item_id = g.item_id WHERE g.rank = 0 AND s.status != 'confirmed'"
                " GROUP BY g.label"
            )
        }
        names = self.label_set().names
        extra = sorted((set(confirmed) | set(suggested)) - set(names))
        by_label = tuple(
            LabelCount(name, confirmed.get(name, 0), suggested.get(name, 0), name in names)
            for name in names + extra
        )
        decisions = self._read("SELECT count(*) FROM decisions")[0][0]
        return StatusCounts(self.item_count(), by_status, by_label, decisions)

    # -- suggestions ----------------------------------------------------------

    def put_suggestions(self, item_id: int, suggestions: Sequence[Suggestion]) -> None:
        """Replace an item's suggestions (best first)."""
        self.put_suggestions_many({item_id: suggestions})

    def suggestions(self, item_id: int) -> list[Suggestion]:
        rows = self._read(_SUGGESTION_SELECT + " WHERE item_id = ? ORDER BY rank", (item_id,))
        return [_suggestion(row) for row in rows]

    def top_suggestions(self, item_ids: Sequence[int] | None = None) -> dict[int, Suggestion]:
        """Each item's best suggestion: of every item, or only of `item_ids` (a page of a listing,
        which then reads those rows alone, not the whole table)."""
        if item_ids is None:
            rows = self._read(_SUGGESTION_SELECT + " WHERE rank = 0")
        else:
            rows = self._read(_SUGGESTION_SELECT + " WHERE rank = 0 AND item_id IN (SELECT value FROM json_each(?))",
                              (json.dumps([int(i) for i in item_ids]),))
        return {row["item_id"]: _suggestion(row) for row in rows}

    def put_suggestions_many(
        self, suggestions: dict[int, Sequence[Suggestion]], *, head_key: str | None = None
    ) -> None:
        """Replace the suggestions of many items in one transaction.

        The rows go in as one JSON parameter per statement, not by executemany:
        sqlite3 gives up the interpreter lock for every row, and from the
        suggestion writer's thread that made the app's own work beside it
        stall for hundreds of milliseconds (measured)."""
        created = now()
        rows = [
            [item_id, s.rank, s.label, _number(s.score), s.model, s.method, created, head_key,
             _number(s.zero_shot), _number(s.examples), json.dumps(list(s.voters)) if s.voters else None]
            for item_id, ranked in suggestions.items()
            for s in ranked
        ]
        item_ids = list(suggestions)
        with self._write() as db:  # one transaction; statements of JSON_ROWS rows (SQLite caps a text at 1 GB)
            for start in range(0, len(item_ids), JSON_ROWS):
                db.execute("DELETE FROM suggestions WHERE item_id IN (SELECT value FROM json_each(?))",
                           (json.dumps(item_ids[start : start + JSON_ROWS]),))
            for start in range(0, len(rows), JSON_ROWS):
                db.execute(
                    "INSERT INTO suggestions(item_id, rank, label, score, model, method, created_at,"
                    " head_key, zero_shot, examples, voters) SELECT "
                    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(11))
                    + " FROM json_each(?)",  # json_extract, not ->>: SQLite before 3.38 has JSON1 but not ->>
                    (json.dumps(rows[start : start + JSON_ROWS]),),
                )

    def put_ranked_suggestions(
        self, item_ids: Sequence[int], labels: Sequence[str], order: "np.ndarray", scores: "np.ndarray",
        *, model: str, method: str, head_key: str,
        zero_shot: "np.ndarray | None" = None, examples: "np.ndarray | None" = None,
        voters: "dict[tuple[int, int], list[int]] | None" = None,
    ) -> None:
        """Replace the suggestions of many items given as arrays: item_ids[i]'s rank r is
        labels[order[i, r]] with scores[i, r] (and, when given, zero_shot[i, r], examples[i, r]
        and the voters of cell (i, r)).

        The lean twin of `put_suggestions_many` for bulk writes: no Suggestion
        objects, and what every row shares goes in as a plain parameter, once.
        For 20,000 items x 5 ranks it took 0.5 s against 1.35 s (measured on the
        2-core CPU), time that a GPU would otherwise wait through."""
        created = now()
        ids = np.asarray(item_ids).tolist()
        ranks = range(order.shape[1])
        scores = scores.tolist()
        zero_shot = zero_shot.tolist() if zero_shot is not None else None
        examples = examples.tolist() if examples is not None else None
        voters = voters or {}
        rows = [
            [item_id, rank, labels[j], scores[i][rank],
             zero_shot[i][rank] if zero_shot is not None else None,
             examples[i][rank] if examples is not None else None,
             voters.get((i, rank))]
            for i, (item_id, ranked) in enumerate(zip(ids, order.tolist()))
            for rank, j in zip(ranks, ranked)
        ]
        with self._write() as db:  # rows updated in place: 1.9 s against 2.2 s to delete and insert 500,000
            db.execute("DELETE FROM suggestions WHERE rank >= ? AND item_id IN (SELECT value FROM json_each(?))",
                       (order.shape[1], json.dumps(ids)))  # ranks beyond K: a label set that shrank
            db.execute(  # a voters list comes out of json_extract as its JSON text, as _suggestion reads it
                "INSERT INTO suggestions(item_id, rank, label, score, model, method, created_at, head_key,"
                " zero_shot, examples, voters) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
                " json_extract(value, '$[2]'), json_extract(value, '$[3]'), ?, ?, ?, ?,"
                " json_extract(value, '$[4]'), json_extract(value, '$[5]'), json_extract(value, '$[6]')"
                " FROM json_each(?) WHERE true ON CONFLICT(item_id, rank) DO UPDATE SET label = excluded.label,"
                " score = excluded.score, model = excluded.model, method = excluded.method,"
                " created_at = excluded.created_at, head_key = excluded.head_key, zero_shot = excluded.zero_shot,"
                " examples = excluded.examples, voters = excluded.voters",
                (model, method, created, head_key, json.dumps(rows)),
            )

    def count_suggested_by(self, head_key: str, method: str) -> int:
        """How many items' best suggestion `head_key` made by `method` (from the index alone)."""
        return self._read("SELECT count(*) FROM suggestions WHERE head_key = ? AND method = ? AND rank = 0",
                          (head_key, method))[0][0]

    def item_ids_suggested_by(self, head_key: str, method: str) -> "np.ndarray":
        """Sorted ids of the items whose best suggestion `head_key` made by `method` (e.g. plain
        zero-shot): what a review loop need not rewrite before any example exists."""
        joined = self._read("SELECT group_concat(item_id) FROM suggestions WHERE head_key = ? AND method = ?"
                            " AND rank = 0", (head_key, method))[0][0]
        return np.sort(np.array(joined.split(","), dtype=np.int64)) if joined else np.zeros(0, dtype=np.int64)

    def items_without_suggestions_from(self, head_key: str) -> list[int]:
        """Items whose best suggestion is missing or came from another head."""
        from_head = self._read("SELECT count(*) FROM suggestions WHERE rank = 0 AND head_key = ?", (head_key,))
        if from_head[0][0] == self.item_count():  # the usual answer, from the index alone: none
            return []
        rows = self._read(
            "SELECT i.id FROM items i LEFT JOIN suggestions g ON g.item_id = i.id AND g.rank = 0"
            " WHERE g.head_key IS NULL OR g.head_key != ? ORDER BY i.id",
            (head_key,),
        )
        return [row[0] for row in rows]

    # -- embeddings and heads ---------------------------------------------------

    def _features(self, model: str) -> FeatureFile:
        return FeatureFile(self.path.parent / FEATURES_DIR, model)

    def put_embeddings(self, model: str, vectors: dict[int, "np.ndarray"]) -> None:
        if vectors:
            self._features(model).append(list(vectors), np.stack([np.asarray(v) for v in vectors.values()]))

    def embedding_count(self, model: str) -> int:
        return len(self._features(model).ids())

    def embedded_item_ids(self, model: str) -> set[int]:
        return set(self._features(model).ids().tolist())

    def embeddings(
        self, model: str, item_ids: Sequence[int] | None = None, *, dtype: "np.dtype | None" = np.float32
    ) -> tuple["np.ndarray", "np.ndarray"]:
        """(sorted item ids, matrix) of the cached features of `model` (index/features.py);
        `dtype=None` gives the stored float16 rows, a read-only memory map where it can."""
        ids, rows = self._features(model).read(item_ids)
        return ids, rows if dtype is None else rows.astype(dtype)

    def _move_embeddings_to_files(self) -> None:
        """Projects made before index/features.py kept their vectors in SQLite: move them out
        once (safe to repeat after a crash: a vector written twice is the same vector)."""
        if not self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'embeddings'") or \
                not self._read("SELECT 1 FROM embeddings LIMIT 1"):
            return
        for (model,) in self._plain_rows("SELECT DISTINCT model FROM embeddings"):
            rows = self._plain_rows("SELECT item_id, vector FROM embeddings WHERE model = ? ORDER BY item_id",
                                    (model,))
            ids, blobs = zip(*rows)
            self._features(model).append(ids, np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1))
            with self._write() as db:
                db.execute("DELETE FROM embeddings WHERE model = ?", (model,))

    def _plain_rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Rows as plain tuples: a million sqlite3.Row objects cost seconds."""
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    def get_head(self, key: str) -> bytes | None:
        rows = self._read("SELECT data FROM heads WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def put_head(self, key: str, model: str, data: bytes) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO heads(key, model, data, created_at) VALUES (?, ?, ?, ?)",
                (key, model, data, now()),
            )

    # -- crawl frontier -------------------------------------------------------------

    def crawl_enqueue(self, crawl_id: int, urls: Sequence[CrawlUrl]) -> int:
        """Queue URLs not seen before in this crawl; returns how many were new."""
        with self._write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO crawl_urls(crawl_id, url, kind, depth, page_url, alt_text,"
                " title, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                [(crawl_id, u.url, u.kind, u.depth, u.page_url, u.alt_text, u.title, now()) for u in urls],
            )
            return db.total_changes - before

    def crawl_queued(self, crawl_id: int, *, kinds: Sequence[str] | None = None, limit: int = 100) -> list[CrawlUrl]:
        """Queued URLs, oldest (so shallowest, breadth-first) first."""
        kinds = list(kinds or ("page", "image", "sitemap", "list"))
        rows = self._read(
            f"SELECT * FROM crawl_urls WHERE crawl_id = ? AND status = 'queued' AND kind IN"
            f" ({','.join('?' * len(kinds))}) ORDER BY depth, id LIMIT ?",
            (crawl_id, *kinds, limit),
        )
        return [_crawl_url(row) for row in rows]

    def crawl_mark(
        self, crawl_id: int, url: str, status: str, detail: str | None = None, item_id: int | None = None
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE crawl_urls SET status = ?, detail = ?, item_id = ?, updated_at = ?"
                " WHERE crawl_id = ? AND url = ?",
                (status, detail, item_id, now(), crawl_id, url),
            )

    def crawl_counts(self, crawl_id: int, kind: str | None = None) -> dict[str, int]:
        """status -> count of this crawl's URLs (of one kind, or all)."""
        sql, params = "SELECT status, count(*) AS n FROM crawl_urls WHERE crawl_id = ?", [crawl_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return {row["status"]: row["n"] for row in self._read(sql + " GROUP BY status", params)}

    def crawl_urls(self, crawl_id: int, *, status: str | None = None, kind: str | None = None) -> list[CrawlUrl]:
        sql, params = "SELECT * FROM crawl_urls WHERE crawl_id = ?", [crawl_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [_crawl_url(row) for row in self._read(sql + " ORDER BY id", params)]

    def latest_job(self, kind: str) -> Job | None:
        rows = self._read("SELECT * FROM jobs WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,))
        return _job(rows[0]) if rows else None

    # -- conversations ----------------------------------------------------------------

    def add_chat_messages(self, session: str, messages: Sequence[str]) -> None:
        """Append serialised chat messages (JSON text, opaque to the store)."""
        created = now()
        with self._write() as db:
            db.executemany(
                "INSERT INTO chat_messages(session, message, created_at) VALUES (?, ?, ?)",
                [(session, message, created) for message in messages],
            )

    def chat_messages(self, session: str) -> list[str]:
        rows = self._read("SELECT message FROM chat_messages WHERE session = ? ORDER BY id", (session,))
        return [row[0] for row in rows]

    # -- model versions -------------------------------------------------------

    def add_model_version(
        self,
        *,
        name: str,
        kind: str,
        base_model: str,
        labels: Sequence[str],
        path: str | None,
        config: dict,
        metrics: dict,
    ) -> ModelVersion:
        with self._write() as db:
            model_id = db.execute(
                "INSERT INTO models(name, kind, base_model, labels, path, config, metrics,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    kind,
                    base_model,
                    json.dumps(list(labels)),
                    path,
                    json.dumps(config),
                    json.dumps(metrics),
                    now(),
                ),
            ).lastrowid
        return self.model_version(model_id)

    def model_version(self, model_id: int) -> ModelVersion:
        rows = self._read("SELECT * FROM models WHERE id = ?", (model_id,))
        if not rows:
            raise ProjectError(f"There is no model version {model_id}; 'labelchat models' lists them.")
        return _model(rows[0])

    def model_versions(self) -> list[ModelVersion]:
        return [_model(row) for row in self._read("SELECT * FROM models ORDER BY id")]

    def activate_model(self, model_id: int | None) -> None:
        """Make one version the active one (None: back to the base model)."""
        with self._write() as db:
            db.execute("UPDATE models SET active = 0")
            if model_id is not None:
                if db.execute("UPDATE models SET active = 1 WHERE id = ?", (model_id,)).rowcount == 0:
                    raise ProjectError(f"There is no model version {model_id}.")

    # -- jobs -----------------------------------------------------------------

    def start_job(self, kind: str, params: dict, total: int | None = None) -> Job:
        with self._write() as db:
            job_id = db.execute(
                "INSERT INTO jobs(kind, status, total, params, created_at, updated_at)"
                " VALUES (?, 'running', ?, ?, ?, ?)",
                (kind, total, json.dumps(params), now(), now()),
            ).lastrowid
        return self.job(job_id)

    def update_job(
        self,
        job_id: int,
        *,
        done: int | None = None,
        total: int | None = None,
        message: str | None = None,
        status: JobStatus | None = None,
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET done = coalesce(?, done), total = coalesce(?, total),"
                " message = coalesce(?, message), status = coalesce(?, status), updated_at = ?"
                " WHERE id = ?",
                (done, total, message, status.value if status else None, now(), job_id),
            )

    def job(self, job_id: int) -> Job:
        return _job(self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))[0])

    def jobs(self, *, limit: int = 20) -> list[Job]:
        rows = self._read("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        return [_job(row) for row in rows]


def _number(value) -> float | None:
    """A score as JSON can carry it: a plain float (numpy's are not serialisable), or None."""
    return None if value is None else float(value)


def _state_filter(status: Status | None, label: str | None, prefix: str = "") -> tuple[str, list]:
    """A WHERE clause (and its parameters) on item_state's status and label; "1" when neither."""
    where, params = ["1"], []
    if status is not None:
        where.append(f"{prefix}status = ?")
        params.append(status.value)
    if label is not None:
        where.append(f"{prefix}label = ?")
        params.append(label)
    return " AND ".join(where), params


# -- derivation of state from the decision log (pure) ----------------------------


def derive_state(item_id: int, rows: Sequence[sqlite3.Row | tuple]) -> ItemState:
    """Replay an item's decisions (id, action, label, undoes; oldest first)."""
    undone = {row[3] for row in rows if row[1] == Action.UNDO.value}
    effective = [row for row in rows if row[1] != Action.UNDO.value and row[0] not in undone]
    rejected: list[str] = []
    status, label = Status.PENDING, None
    for _id, action, row_label, _undoes in effective:
        if action in (Action.ACCEPT.value, Action.CORRECT.value):
            status, label = Status.CONFIRMED, row_label
            rejected = [r for r in rejected if r != row_label]
        elif action == Action.REJECT.value:
            if row_label not in rejected:
                rejected.append(row_label)
            if label == row_label or status is not Status.CONFIRMED:
                status, label = Status.REJECTED, None
        elif action == Action.SKIP.value and status is not Status.CONFIRMED:
            status = Status.SKIPPED
    last = rows[-1][0] if rows else None
    return ItemState(item_id, status, label, tuple(rejected), last)


def _newest_effective(db: sqlite3.Connection, item_id: int | None) -> sqlite3.Row | None:
    where = "AND d.item_id = ?" if item_id is not None else ""
    params = (item_id,) if item_id is not None else ()
    return db.execute(
        "SELECT d.id, d.item_id, d.label, d.batch, d.actor FROM decisions d WHERE d.action != 'undo'"
        f" {where} AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)"
        " ORDER BY d.id DESC LIMIT 1",
        params,
    ).fetchone()


def _effective_in_batch(db: sqlite3.Connection, batch: int) -> list[sqlite3.Row]:
    return db.execute(
        "SELECT d.id, d.item_id, d.label, d.batch FROM decisions d WHERE d.batch = ? AND d.action != 'undo'"
        " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) ORDER BY d.id",
        (batch,),
    ).fetchall()


def _takes_label(db: sqlite3.Connection, item_id: int, label: str) -> bool:
    """Whether a label that comes with an image (actor "import") may confirm it: over an earlier
    import's label, yes; over a person's decision (a label confirmed, or that label rejected), no."""
    row = db.execute("SELECT status, rejected FROM item_state WHERE item_id = ?", (item_id,)).fetchone()
    if label in json.loads(row["rejected"]):
        return False
    if row["status"] != Status.CONFIRMED.value:
        return True
    return _newest_effective(db, item_id)["actor"] == IMPORT_ACTOR


# -- rows to records --------------------------------------------------------------

_ITEM_SELECT = (
    "SELECT i.*, (SELECT source FROM item_sources WHERE item_id = i.id ORDER BY id LIMIT 1)"
    " AS source, (SELECT page_url FROM item_sources WHERE item_id = i.id ORDER BY id LIMIT 1)"
    " AS page_url FROM items i"
)
_DECISION_SELECT = "SELECT id, item_id, action, label, actor, auto, created_at, undoes, batch FROM decisions"


_SUGGESTION_SELECT = (
    "SELECT item_id, label, score, rank, model, method, created_at, zero_shot, examples, voters"
    " FROM suggestions"
)


def _suggestion(row: sqlite3.Row) -> Suggestion:
    values = dict(row)
    values["voters"] = tuple(json.loads(values["voters"])) if values["voters"] else ()
    return Suggestion(**values)


def _crawl_url(row: sqlite3.Row) -> CrawlUrl:
    return CrawlUrl(
        url=row["url"], kind=row["kind"], depth=row["depth"], page_url=row["page_url"],
        alt_text=row["alt_text"], title=row["title"], status=row["status"], detail=row["detail"],
        item_id=row["item_id"],
    )


def _item(row: sqlite3.Row) -> Item:
    return Item(
        id=row["id"],
        sha256=row["sha256"],
        phash=row["phash"],
        media_path=row["media_path"],
        source=row["source"] or "",
        page_url=row["page_url"],
        width=row["width"],
        height=row["height"],
        format=row["format"],
        bytes=row["bytes"],
        added_at=row["added_at"],
    )


def _decision(row: sqlite3.Row) -> Decision:
    return Decision(
        id=row["id"],
        item_id=row["item_id"],
        action=Action(row["action"]),
        label=row["label"],
        actor=row["actor"],
        auto=bool(row["auto"]),
        created_at=row["created_at"],
        undoes=row["undoes"],
        batch=row["batch"],
    )


def _state(row: sqlite3.Row) -> ItemState:
    return ItemState(
        item_id=row["item_id"],
        status=Status(row["status"]),
        label=row["label"],
        rejected=tuple(json.loads(row["rejected"])),
        last_decision_id=row["last_decision_id"],
    )


def _model(row: sqlite3.Row) -> ModelVersion:
    return ModelVersion(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        base_model=row["base_model"],
        labels=tuple(json.loads(row["labels"])),
        path=row["path"],
        config=json.loads(row["config"]),
        metrics=json.loads(row["metrics"]),
        active=bool(row["active"]),
        created_at=row["created_at"],
    )


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        status=JobStatus(row["status"]),
        done=row["done"],
        total=row["total"],
        message=row["message"],
        params=json.loads(row["params"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
