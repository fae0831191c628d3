"""The label set: the labels table and its version (the label_set_version setting)."""

from __future__ import annotations

import json
import sqlite3
from typing import Sequence

from ..errors import LabelNotInSetError
from ..labels import refuse_duplicates, validate_label_name
from ..types import Label, LabelSet


class LabelSetMixin:
    """Reading and changing the label set; `Store` provides `_write`, `_read` and the settings."""

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
