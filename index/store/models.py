"""Trained model versions: the models table."""

from __future__ import annotations

import json
import sqlite3
from typing import Sequence

from ..errors import ProjectError
from ..types import ModelVersion
from .base import now


class ModelsMixin:
    """Recording, reading and activating model versions; `Store` provides `_write` and `_read`."""

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
