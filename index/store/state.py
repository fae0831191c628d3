"""Reading item_state (each item's status and label), rebuilding and checking it, and the status counts."""

from __future__ import annotations

import json
import sqlite3
from typing import Sequence

import numpy as np

from ..errors import UnknownItemError
from ..types import ItemState, LabelCount, Status, StatusCounts
from .decisions import derive_state


class StateMixin:
    """Items' current state, read cheaply from item_state; `Store` provides `_read`, `_write` and `_refresh_state`."""

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
        # parsed by numpy in C: a million ids through str.split and int() took 0.1 s more
        return np.sort(np.fromstring(joined, dtype=np.int64, sep=",")) if joined else np.zeros(0, dtype=np.int64)

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


def _state(row: sqlite3.Row) -> ItemState:
    return ItemState(
        item_id=row["item_id"],
        status=Status(row["status"]),
        label=row["label"],
        rejected=tuple(json.loads(row["rejected"])),
        last_decision_id=row["last_decision_id"],
    )
