"""Feature vectors on disk: one model's vectors as float16 rows in a memory-mapped file.

    <project>/features/<model-slug>.f16    the rows, float16, row-major, append-only
    <project>/features/<model-slug>.ids    int64 item id of each row, append-only
    <project>/features/<model-slug>.json   the model's name and the vector length

Why not SQLite: a million 128-number vectors took seconds to read back as rows (and a
million 2,496-number ones would not fit in memory as float32); a memory-mapped file is
read as one array, and float16 halves it. The vectors are a cache of what the model said
about the images, so they may always be recomputed; what matters is that a file never
gives a wrong vector for an item:

- rows are written before their ids, each flushed to disk, so a crash leaves at most rows
  without ids, which the next write cuts off;
- an item written again appends a new row; the last row of an id wins (`read` drops the
  others, `compact` rewrites the file without them);
- writers of the same project (the app and a CLI run) take a lock file in turn, and readers
  share it, so that none sees the rows of one write with the ids of another.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import LabelchatError

DTYPE = np.float16
ID_BYTES = 8
FORMAT = 1  # the layout above; a file of another format is refused, not misread


class FeatureFileError(LabelchatError):
    pass


def slug(model: str) -> str:
    """A file name for a model spec (specs hold ':' and '/'), unique by a short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-")[:60]
    return f"{readable}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


class FeatureFile:
    """The vectors of one model in one project folder."""

    def __init__(self, folder: Path, model: str):
        self.folder = Path(folder)
        self.model = model
        base = self.folder / slug(model)
        self.rows_path, self.ids_path, self.meta_path = (base.with_suffix(s) for s in (".f16", ".ids", ".json"))

    # -- reading ------------------------------------------------------------------

    def dim(self) -> int | None:
        if not self.meta_path.exists():
            return None
        try:
            meta = json.loads(self.meta_path.read_text())
            if meta.get("format") != FORMAT or meta.get("model") != self.model:
                raise ValueError(f"format {meta.get('format')}, model {meta.get('model')!r}")
            return int(meta["dim"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FeatureFileError(
                f"{self.meta_path} is not a feature file this labelchat can read ({exc}). The features are a "
                f"cache: delete {self.folder} and run 'labelchat suggest' to compute them again.") from exc

    def _complete_rows(self, dim: int) -> int:
        """Rows that have both their vector and their id (a crash may leave either short)."""
        ids = self.ids_path.stat().st_size // ID_BYTES if self.ids_path.exists() else 0
        rows = self.rows_path.stat().st_size // (dim * 2) if self.rows_path.exists() else 0
        return min(ids, rows)

    def _rows(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(every row's id, each item's last row in id order, vector length); call it holding the lock."""
        dim = self.dim()
        n = self._complete_rows(dim) if dim else 0
        ids = np.fromfile(self.ids_path, dtype=np.int64, count=n) if n else np.zeros(0, dtype=np.int64)
        return ids, _latest_rows(ids), dim or 0

    def ids(self) -> np.ndarray:
        """The sorted ids of the items that have a vector."""
        if not self.meta_path.exists():
            return np.zeros(0, dtype=np.int64)
        with self._locked(shared=True):
            ids, pick, _ = self._rows()
        return ids[pick]

    def read(self, item_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(sorted item ids, float16 matrix) of the items asked (all when None) that have a
        vector, the last written winning: a read-only view of the memory-mapped file when it
        holds one row per item in id order (the usual case), a copy of the rows otherwise."""
        if not self.meta_path.exists():
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=DTYPE)
        with self._locked(shared=True):  # `compact` replaces both files: never see one old, one new
            return self._read(item_ids)

    def _read(self, item_ids: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
        ids, pick, dim = self._rows()
        if not len(ids):
            return ids, np.zeros((0, dim), dtype=DTYPE)
        rows = np.memmap(self.rows_path, dtype=DTYPE, mode="r", shape=(len(ids), dim))
        if item_ids is not None:
            wanted = np.unique(np.asarray(list(item_ids), dtype=np.int64))
            have = ids[pick]
            where = np.minimum(np.searchsorted(have, wanted), len(have) - 1)
            pick = pick[where[have[where] == wanted]]
        if len(pick) == len(ids) and np.array_equal(pick, np.arange(len(ids))):  # every row, in id order
            return ids, rows
        return ids[pick], np.asarray(rows[pick])

    # -- writing ------------------------------------------------------------------

    def append(self, item_ids: Sequence[int], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors)
        if not len(item_ids):
            return
        if vectors.ndim != 2 or len(vectors) != len(item_ids):
            raise FeatureFileError(f"{len(item_ids)} item ids for vectors of shape {vectors.shape}")
        with self._locked():
            dim = self.dim()
            if dim is None:
                self._write_meta(vectors.shape[1])
            elif dim != vectors.shape[1]:
                raise FeatureFileError(
                    f"{self.model} gave vectors of length {vectors.shape[1]}, but this project holds its "
                    f"vectors of length {dim}. Was the model changed? Delete {self.rows_path} to start again.")
            n = self._complete_rows(vectors.shape[1])
            with np.errstate(over="ignore"):  # said below, in words
                rows = np.ascontiguousarray(vectors, dtype=DTYPE)
            if not np.all(np.isfinite(rows)):
                raise FeatureFileError(f"{self.model} gave vectors with values float16 cannot hold (inf or nan)")
            self._append_at(self.rows_path, n * rows.shape[1] * 2, rows.tobytes())
            self._append_at(self.ids_path, n * ID_BYTES, np.asarray(item_ids, dtype=np.int64).tobytes())

    def compact(self) -> int:
        """Rewrite the file with one row per item, in id order, unless it is so already (then
        `read` gives a memory map, not a copy); returns the rows dropped. Called after each
        embedding run and shard merge, whose rows may come out of order or twice."""
        with self._locked():
            dim = self.dim()
            if not dim:
                return 0
            every, pick, _ = self._rows()
            if len(pick) == len(every) and np.array_equal(pick, np.arange(len(every))):
                return 0
            before = len(every)
            ids, rows = self._read(None)
            for path, data in ((self.rows_path, np.ascontiguousarray(rows).tobytes()), (self.ids_path, ids.tobytes())):
                temporary = path.with_suffix(path.suffix + ".tmp")
                temporary.write_bytes(data)
                os.replace(temporary, path)
            return before - len(ids)

    def _write_meta(self, dim: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.meta_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps({"format": FORMAT, "model": self.model, "dim": dim, "dtype": "float16"}))
        os.replace(temporary, self.meta_path)

    @staticmethod
    def _append_at(path: Path, offset: int, data: bytes) -> None:
        """Write `data` at `offset`, cutting off whatever a crash left beyond it, and flush."""
        with open(path, "ab") as handle:
            handle.truncate(offset)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    @contextlib.contextmanager
    def _locked(self, shared: bool = False) -> Iterator[None]:
        """Writers one at a time; readers beside each other, never beside a writer."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _latest_rows(ids: np.ndarray) -> np.ndarray:
    """Row numbers of each id's last row, in id order."""
    if len(ids) and np.all(ids[1:] > ids[:-1]):  # the usual file: appended in id order, no repeats
        return np.arange(len(ids))
    reverse = ids[::-1]
    unique, first_in_reverse = np.unique(reverse, return_index=True)
    return (len(ids) - 1 - first_in_reverse).astype(np.int64)  # np.unique sorts: id order
