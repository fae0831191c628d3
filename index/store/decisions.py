"""The decision log: the decisions and kept_labels tables, and item_state derived from them as each decision lands."""

from __future__ import annotations

import json
import sqlite3
from typing import Sequence

from ..errors import LabelchatError, NothingToUndoError, UnknownItemError
from ..types import Action, Decision, ItemState, Status
from .base import now

IMPORT_ACTOR = "import"  # decisions that came with the images (folders, manifests), not from a person


class DecisionsMixin:
    """Appending decisions and undos, and reading the log back; `Store` provides `_write`, `_read` and the label check."""

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

_DECISION_SELECT = "SELECT id, item_id, action, label, actor, auto, created_at, undoes, batch FROM decisions"


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
