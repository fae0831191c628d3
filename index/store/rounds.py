"""The SQL of review rounds: the rounds, round_items and round_answers tables (migration m011), mixed into `Store`.

A round is a sample of confirmed items, each kept with the label and the person in effect when
it was drawn. A second person's blind label and an adjudicator's verdict are answers; one answer
of each kind is in effect per item (a unique index, so two people answering at once cannot both
count). An adjudication that changes an item's label appends a normal `correct` decision in the
same transaction; undoing the answer undoes that decision too. Undone answers keep their rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Sequence

from ..errors import LabelchatError, NothingToUndoError
from ..types import Action
from .base import now

REVIEW, ADJUDICATE = "review", "adjudicate"


@dataclass(frozen=True)
class Round:
    id: int
    status: str  # "open" or "closed"
    reviewer: str | None  # the one person asked to review (None: anyone but an item's first person)
    size: int
    why: str  # how the size was chosen
    created_by: str
    created_at: str
    closed_by: str | None = None
    closed_at: str | None = None
    kind: str = "review"  # or "audit": an auto-accept's audit, recorded closed


@dataclass(frozen=True)
class RoundItem:
    round_id: int
    item_id: int
    position: int
    first_label: str  # the label in effect when the round was drawn
    first_actor: str  # who gave it


@dataclass(frozen=True)
class RoundAnswer:
    id: int
    round_id: int
    item_id: int
    kind: str  # "review" (a second person's blind label) or "adjudicate" (the verdict on a disagreement)
    label: str
    actor: str
    decision_id: int | None  # the decision an adjudication made when it changed the label
    created_at: str
    undone_by: str | None = None
    undone_at: str | None = None


class AlreadyAnsweredError(LabelchatError):
    """Someone else answered this item of the round first (nothing was counted twice)."""


class RoundStoreMixin:
    """Review rounds' reads and writes; `Store` provides `_write`, `_read` and the decision log."""

    def create_round(self, rows: Sequence[tuple[int, str, str]], *, reviewer: str | None, size: int, why: str,
                     created_by: str) -> Round:
        """A new open round of (item id, first label, first actor) rows, in their order."""
        with self._write() as db:
            round_id = db.execute(
                "INSERT INTO rounds(reviewer, size, why, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
                (reviewer, size, why, created_by, now()),
            ).lastrowid
            db.executemany(
                "INSERT INTO round_items(round_id, item_id, position, first_label, first_actor) VALUES (?, ?, ?, ?, ?)",
                [(round_id, item_id, position, label, actor) for position, (item_id, label, actor) in enumerate(rows)],
            )
        return self.get_round(round_id)

    def record_audit(self, rows: Sequence[tuple[int, str]], answers: Sequence[tuple[int, str, str]], *,
                     why: str, created_by: str) -> Round:
        """An auto-accept's audit as a closed round of kind 'audit', in one transaction: (item id,
        suggested label) rows, and (item id, the person's label, who) answers."""
        with self._write() as db:
            created = now()
            round_id = db.execute(
                "INSERT INTO rounds(kind, status, size, why, created_by, created_at, closed_by, closed_at)"
                " VALUES ('audit', 'closed', ?, ?, ?, ?, ?, ?)",
                (len(rows), why, created_by, created, created_by, created),
            ).lastrowid
            db.executemany(
                "INSERT INTO round_items(round_id, item_id, position, first_label, first_actor) VALUES (?, ?, ?, ?, ?)",
                [(round_id, item_id, position, label, created_by) for position, (item_id, label) in enumerate(rows)],
            )
            db.executemany(
                "INSERT INTO round_answers(round_id, item_id, kind, label, actor, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(round_id, item_id, REVIEW, label, actor, created) for item_id, label, actor in answers],
            )
        return self.get_round(round_id)

    def get_round(self, round_id: int) -> Round:
        rows = self._read("SELECT * FROM rounds WHERE id = ?", (round_id,))
        if not rows:
            known = ", ".join(str(r.id) for r in self.rounds()) or "none yet"
            raise LabelchatError(f"There is no review round {round_id} (rounds: {known}); 'labelchat round list' "
                                 f"lists them.")
        return Round(**dict(rows[0]))

    def rounds(self) -> list[Round]:
        return [Round(**dict(row)) for row in self._read("SELECT * FROM rounds ORDER BY id")]

    def round_items(self, round_id: int) -> list[RoundItem]:
        rows = self._read("SELECT * FROM round_items WHERE round_id = ? ORDER BY position", (round_id,))
        return [RoundItem(**dict(row)) for row in rows]

    def round_answers(self, round_id: int | None = None, *, undone: bool = False) -> list[RoundAnswer]:
        """Answers in effect (or, with `undone`, every answer), oldest first; of one round or all."""
        where = ["1"] if undone else ["undone_at IS NULL"]
        params: list = []
        if round_id is not None:
            where.append("round_id = ?")
            params.append(round_id)
        rows = self._read(f"SELECT * FROM round_answers WHERE {' AND '.join(where)} ORDER BY id", params)
        return [RoundAnswer(**dict(row)) for row in rows]

    def answer_round_item(self, round_id: int, item_id: int, kind: str, label: str, actor: str, *,
                          change_label: bool = False) -> RoundAnswer:
        """Record one answer; with `change_label` (an adjudication that differs from the item's
        label) also a `correct` decision by `actor`, in the same transaction."""
        with self._write() as db:
            status = db.execute("SELECT status FROM rounds WHERE id = ?", (round_id,)).fetchone()
            if status is None or status[0] != "open":
                raise LabelchatError(f"Review round {round_id} is {'closed' if status else 'not there'}; "
                                     f"nothing was recorded.")
            if db.execute("SELECT 1 FROM round_items WHERE round_id = ? AND item_id = ?",
                          (round_id, item_id)).fetchone() is None:
                raise LabelchatError(f"Item {item_id} is not in review round {round_id}; nothing was recorded.")
            if change_label:
                self._check_label(db, label)
            try:
                answer_id = db.execute(
                    "INSERT INTO round_answers(round_id, item_id, kind, label, actor, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (round_id, item_id, kind, label, actor, now()),
                ).lastrowid
            except sqlite3.IntegrityError:
                first = db.execute("SELECT actor, label FROM round_answers WHERE round_id = ? AND item_id = ? AND"
                                   " kind = ? AND undone_at IS NULL", (round_id, item_id, kind)).fetchone()
                what = "reviewed" if kind == REVIEW else "adjudicated"
                raise AlreadyAnsweredError(
                    f"Item {item_id} of round {round_id} was already {what} by {first['actor']} (as "
                    f"{first['label']!r}); your answer was not counted, so nothing is counted twice.") from None
            if change_label:
                decision_id = self._append_decision(db, item_id, Action.CORRECT, label, actor, False)
                db.execute("UPDATE round_answers SET decision_id = ? WHERE id = ?", (decision_id, answer_id))
        return self._round_answer(answer_id)

    def undo_round_answer(self, round_id: int, actor: str) -> RoundAnswer:
        """Take back `actor`'s newest answer in effect in this round (and the decision it made)."""
        with self._write() as db:
            row = db.execute("SELECT * FROM round_answers WHERE round_id = ? AND actor = ? AND undone_at IS NULL"
                             " ORDER BY id DESC LIMIT 1", (round_id, actor)).fetchone()
            if row is None:
                raise NothingToUndoError(f"{actor} has no answer in effect in review round {round_id}: nothing to undo.")
            if row["kind"] == REVIEW and db.execute(
                    "SELECT 1 FROM round_answers WHERE round_id = ? AND item_id = ? AND kind = ? AND undone_at IS NULL",
                    (round_id, row["item_id"], ADJUDICATE)).fetchone():
                raise LabelchatError(f"Item {row['item_id']}'s disagreement was adjudicated since; undo the "
                                     f"adjudication first (as its adjudicator), then this answer.")
            db.execute("UPDATE round_answers SET undone_by = ?, undone_at = ? WHERE id = ?", (actor, now(), row["id"]))
            decision_id = row["decision_id"]
            if decision_id is not None and not db.execute("SELECT 1 FROM decisions WHERE undoes = ?",
                                                          (decision_id,)).fetchone():
                target = db.execute("SELECT id, item_id, label FROM decisions WHERE id = ?", (decision_id,)).fetchone()
                self._append_undo(db, target, actor)
        return self._round_answer(row["id"])

    def close_round(self, round_id: int, actor: str) -> Round:
        self.get_round(round_id)
        with self._write() as db:
            db.execute("UPDATE rounds SET status = 'closed', closed_by = ?, closed_at = ? WHERE id = ? AND"
                       " status = 'open'", (actor, now(), round_id))
        return self.get_round(round_id)

    def _round_answer(self, answer_id: int) -> RoundAnswer:
        return RoundAnswer(**dict(self._read("SELECT * FROM round_answers WHERE id = ?", (answer_id,))[0]))

    def decision_actors(self, item_ids: Sequence[int]) -> dict[int, str]:
        """item id -> who gave it the label in effect (its newest accept or correct not undone)."""
        import json

        rows = self._read(
            "SELECT d.item_id, d.actor FROM item_state s JOIN decisions d ON d.id = ("
            " SELECT max(x.id) FROM decisions x WHERE x.item_id = s.item_id AND x.action IN ('accept', 'correct')"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = x.id))"
            " WHERE s.item_id IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in item_ids]),),
        )
        return {row[0]: row[1] for row in rows}

    # -- what the quality report counts -------------------------------------------------------

    def quality_counts(self) -> dict[str, int]:
        """Counts of the log for the quality report: exact duplicates merged at ingest (extra
        sources of one file), near-duplicate pairs found at ingest and those with a side rejected
        (removed), and confirmed labels a person changed later (corrections still in effect of an
        item that had another label confirmed before)."""
        merged = self._read("SELECT count(*) - count(DISTINCT item_id) FROM item_sources")[0][0]
        pairs = self._read("SELECT count(*) FROM near_duplicates")[0][0]
        removed = self._read(
            "SELECT count(*) FROM near_duplicates n WHERE EXISTS (SELECT 1 FROM item_state s WHERE s.status ="
            " 'rejected' AND s.item_id IN (n.item_id, n.other_id))")[0][0]
        relabelled = self._read(
            "SELECT count(*) FROM decisions c WHERE c.action = 'correct' AND NOT EXISTS (SELECT 1 FROM decisions u"
            " WHERE u.undoes = c.id) AND EXISTS (SELECT 1 FROM decisions p WHERE p.item_id = c.item_id AND p.id < c.id"
            " AND p.action IN ('accept', 'correct') AND p.label != c.label AND NOT EXISTS (SELECT 1 FROM decisions v"
            " WHERE v.undoes = p.id))")[0][0]
        return {"exact_duplicates_merged": merged, "near_duplicate_pairs": pairs,
                "near_duplicates_removed": removed, "labels_changed_after_confirmation": relabelled}
