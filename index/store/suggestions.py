"""What the models suggest for each item: the suggestions table (ranked labels, by head and method)."""

from __future__ import annotations

import json
import sqlite3
from typing import Sequence

import numpy as np

from ..types import Suggestion
from .base import now

JSON_ROWS = 100_000  # rows per JSON parameter of a bulk write: far below SQLite's 1 GB cap on one text


class SuggestionsMixin:
    """Writing and reading suggestions; `Store` provides `_write`, `_read` and `item_count`."""

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


def _number(value) -> float | None:
    """A score as JSON can carry it: a plain float (numpy's are not serialisable), or None."""
    return None if value is None else float(value)


_SUGGESTION_SELECT = (
    "SELECT item_id, label, score, rank, model, method, created_at, zero_shot, examples, voters"
    " FROM suggestions"
)


def _suggestion(row: sqlite3.Row) -> Suggestion:
    values = dict(row)
    values["voters"] = tuple(json.loads(values["voters"])) if values["voters"] else ()
    return Suggestion(**values)
