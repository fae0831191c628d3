"""Items and where they came from: the items, item_sources and near_duplicates tables."""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable, Sequence

from ..errors import UnknownItemError
from ..types import Action, Item, Origin, Status
from .base import now
from .decisions import IMPORT_ACTOR, _takes_label
from .state import _state_filter


class ItemsMixin:
    """Adding and reading items; `Store` provides `_write`, `_read`, the label check and the decision log."""

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


_ITEM_SELECT = (
    "SELECT i.*, (SELECT source FROM item_sources WHERE item_id = i.id ORDER BY id LIMIT 1)"
    " AS source, (SELECT page_url FROM item_sources WHERE item_id = i.id ORDER BY id LIMIT 1)"
    " AS page_url FROM items i"
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
