"""Feature vectors (files in features/, index/features.py; the old embeddings table moved out) and the heads table."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..features import FeatureFile
from .base import now

FEATURES_DIR = "features"  # beside the database: index/features.py


class EmbeddingsMixin:
    """Cached features of each model and the trained heads; `Store` provides `path`, `_write`, `_read` and `_plain_rows`."""

    def _features(self, model: str) -> FeatureFile:
        return FeatureFile(self.path.parent / FEATURES_DIR, model)

    def put_embeddings(self, model: str, vectors: dict[int, "np.ndarray"]) -> None:
        if vectors:
            self._features(model).append(list(vectors), np.stack([np.asarray(v) for v in vectors.values()]))

    def compact_embeddings(self, model: str) -> int:
        """One row per item in id order again, after a run that wrote rows out of order or
        twice (index/features.py `compact`); the rows dropped."""
        return self._features(model).compact()

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

    def get_head(self, key: str) -> bytes | None:
        rows = self._read("SELECT data FROM heads WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def put_head(self, key: str, model: str, data: bytes) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO heads(key, model, data, created_at) VALUES (?, ?, ?, ?)",
                (key, model, data, now()),
            )
