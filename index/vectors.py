"""The FAISS index of one embedding model in one project: a cache of the store's vectors.

Vectors are L2-normalised and searched by inner product (cosine similarity).
Below APPROXIMATE_FROM vectors the index is exact (flat); from there on it is
an IVF index (its lists hold float16 vectors) whose recall@10 against exact
search is measured on a sample when it is built and kept with it. Item ids are the FAISS ids, so adding and
removing items is incremental.

On disk: vectors/<model-slug>.faiss and .json (what it holds), each written
to a temporary file and renamed into place. A missing, unreadable or stale
file is rebuilt from the store: the store is the source of truth. One whose ids
differ from the store's (the project grew or lost items) is caught up instead:
only the new items are added and the gone ones removed. When the project has
more than doubled (or halved) since the index was trained, or crossed
APPROXIMATE_FROM, it is rebuilt: in a background thread where the caller asks
(the app, which keeps answering from the caught-up index meanwhile; at a
million items a build takes tens of seconds), else before `open` returns.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

APPROXIMATE_FROM = 100_000  # measured, bench/review_speed.py: exact p95 is ~18 ms at 1e5 x 512-d, ~280 ms at 1e6
BLAS_THRESHOLD = 16  # faiss's default (128000) made batched flat queries ~7x slower here
RECALL_SAMPLE = 200
EXACT_AMONG = 20_000  # filtered searches among at most this many items scan every IVF list (~15 ms at 2,496-d)
MIN_RECALL = 0.95
REBUILD_GROWTH = 2.0  # rebuilt once the project has grown (or shrunk) this many times since the build


def _faiss():
    import faiss

    faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
    return faiss


def row_norms(vectors: np.ndarray) -> np.ndarray:
    """The L2 norm of each row (float32 arithmetic for float16 input): einsum needs no
    squared copy of the matrix, 20x faster than np.linalg.norm on 1M x 128 (bench/scale.py)."""
    vectors = np.asarray(vectors)
    if vectors.dtype != np.float32 and vectors.dtype != np.float64:
        vectors = vectors.astype(np.float32)
    return np.sqrt(np.einsum("...i,...i->...", vectors, vectors))


def normalize(vectors: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """float32 rows of unit length (zero rows stay zero); `in_place` divides a float32
    contiguous matrix itself instead of a copy."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.maximum(row_norms(vectors), 1e-12)[..., None]
    if in_place:
        vectors /= norms
        return vectors
    return vectors / norms


def ids_digest(ids: Sequence[int] | np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class IndexInfo:
    model: str
    kind: str  # "flat" or "ivf"
    count: int
    dim: int
    ids_digest: str
    recall_at_10: float | None = None  # approximate indexes: measured when built
    nprobe: int | None = None
    built_seconds: float = 0.0
    trained_count: int | None = None  # items when it was built (None: an index from before this field)


class VectorIndex:
    def __init__(self, index, info: IndexInfo, folder: Path):
        self.index = index
        self.info = info
        self.folder = folder
        self.rebuilding: threading.Thread | None = None  # a background rebuild, while one runs
        self.rebuild_error: str | None = None  # why the last background rebuild failed
        self._swap = threading.Lock()

    # -- building and loading ---------------------------------------------------

    @classmethod
    def build(cls, folder: Path, model: str, ids: np.ndarray, vectors: np.ndarray) -> "VectorIndex":
        faiss = _faiss()
        started = time.perf_counter()
        vectors = normalize(vectors)
        ids = np.asarray(ids, dtype=np.int64)
        dim = vectors.shape[1] if len(vectors) else 0
        recall = nprobe = None
        if len(ids) >= APPROXIMATE_FROM:
            index, nprobe, recall = _build_ivf(faiss, ids, vectors)
            kind = "ivf"
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(max(dim, 1)))
            if len(ids):
                index.add_with_ids(vectors, ids)
            kind = "flat"
        info = IndexInfo(model, kind, len(ids), dim, ids_digest(ids), recall, nprobe,
                         round(time.perf_counter() - started, 3), trained_count=len(ids))
        built = cls(index, info, Path(folder))
        built.save()
        return built

    @classmethod
    def open(cls, folder: Path, model: str, ids: np.ndarray, vectors_fn, *,
             background: bool = False) -> "VectorIndex":
        """The saved index if it matches the store's ids; else the saved one caught up with them
        (new items added, gone ones removed), rebuilt first if the project outgrew it (in a
        background thread with `background`); else one built from `vectors_fn()`, which gives
        (sorted item ids, vectors) of every item."""
        ids = np.asarray(ids, dtype=np.int64)
        loaded = cls._load(Path(folder), model)
        if loaded is not None and loaded.info.ids_digest == ids_digest(ids) and loaded.info.count == len(ids):
            return loaded
        outgrown = loaded is not None and _outgrown(loaded.info, len(ids))
        if loaded is not None and (background or not outgrown) and loaded.catch_up(ids, vectors_fn):
            if outgrown:
                loaded.rebuild_in_background(vectors_fn)
            return loaded
        stored_ids, vectors = vectors_fn()
        return cls.build(folder, model, stored_ids, vectors)

    def catch_up(self, ids: np.ndarray, vectors_fn) -> bool:
        """Add the items of `ids` the index lacks and remove those it holds but `ids` does not;
        False (nothing changed) when the new vectors do not fit it (another dimension)."""
        held = self.ids()
        new = np.setdiff1d(ids, held, assume_unique=True)
        gone = np.setdiff1d(held, ids, assume_unique=True)
        vectors = None
        if len(new):
            stored_ids, stored = vectors_fn()
            if not len(stored_ids):
                return False
            rows = np.minimum(np.searchsorted(stored_ids, new), len(stored_ids) - 1)
            found = stored_ids[rows] == new  # (the store lacks an id asked for: left out, as a build would)
            new, vectors = new[found], np.asarray(stored[rows[found]], dtype=np.float32)
            if self.info.dim and len(new) and vectors.shape[1] != self.info.dim:
                return False
        if len(gone):
            self.remove(gone)
        if vectors is not None and len(new):
            self.add(new, vectors)
        self.save()
        return True

    def rebuild_in_background(self, vectors_fn) -> None:
        """Build the index afresh from `vectors_fn()` in a thread and answer from it once built;
        until then this one (caught up) answers. `wait()` waits for it."""
        if self.rebuilding is not None and self.rebuilding.is_alive():
            return

        def rebuild() -> None:
            try:
                stored_ids, vectors = vectors_fn()
                built = VectorIndex.build(self.folder, self.info.model, stored_ids, vectors)
            except Exception as error:  # (a full disk): the caught-up index keeps answering; the next open tries again
                self.rebuild_error = f"{type(error).__name__}: {error}"
                return
            with self._swap:
                self.index, self.info = built.index, built.info

        self.rebuilding = threading.Thread(target=rebuild, name="labelchat-index-rebuild", daemon=True)
        self.rebuilding.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background rebuild, if one runs."""
        if self.rebuilding is not None:
            self.rebuilding.join(timeout)

    @classmethod
    def _load(cls, folder: Path, model: str) -> "VectorIndex | None":
        faiss = _faiss()
        index_path, info_path = _paths(folder, model)
        try:
            info = IndexInfo(**json.loads(info_path.read_text()))
            index = faiss.read_index(str(index_path))
        except (OSError, ValueError, TypeError, RuntimeError, json.JSONDecodeError):
            return None  # missing, truncated or from another version: rebuild
        if info.model != model or index.ntotal != info.count:
            return None
        if info.nprobe:
            faiss.extract_index_ivf(index).nprobe = info.nprobe
        return cls(index, info, folder)

    def save(self) -> None:
        faiss = _faiss()
        self.folder.mkdir(parents=True, exist_ok=True)
        index_path, info_path = _paths(self.folder, self.info.model)
        for path, write in (
            (index_path, lambda tmp: faiss.write_index(self.index, tmp)),
            (info_path, lambda tmp: Path(tmp).write_text(json.dumps(asdict(self.info)))),
        ):
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            os.close(fd)
            try:
                write(tmp)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    # -- changes ------------------------------------------------------------------

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        self.remove(ids)  # re-adding an id replaces its vector
        if self.info.dim == 0:  # the first vectors decide the dimension
            self.index = _faiss().IndexIDMap2(_faiss().IndexFlatIP(vectors.shape[1]))
        self.index.add_with_ids(normalize(vectors), ids)
        self._changed()

    def remove(self, ids: Sequence[int]) -> int:
        ids = np.asarray(ids, dtype=np.int64)
        removed = int(self.index.remove_ids(_faiss().IDSelectorBatch(ids))) if len(ids) and self.info.count else 0
        if removed:
            self._changed()
        return removed

    def _changed(self) -> None:
        ids = self.ids()
        self.info = IndexInfo(
            self.info.model, self.info.kind, len(ids), self.index.d, ids_digest(ids),
            self.info.recall_at_10, self.info.nprobe, self.info.built_seconds, self.info.trained_count,
        )

    def ids(self) -> np.ndarray:
        faiss = _faiss()
        if not self.index.ntotal:
            return np.zeros(0, dtype=np.int64)
        if self.info.kind == "flat":
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        lists = faiss.extract_index_ivf(self.index).invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(lists.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64)

    # -- queries --------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, *, among: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, item ids) of the k nearest, best first; id -1 where fewer exist.

        `among` restricts the search to those item ids (e.g. the confirmed ones).
        """
        faiss = _faiss()
        with self._swap:  # a background rebuild swaps both at once
            index, info = self.index, self.info
        queries = normalize(np.atleast_2d(queries))
        if not index.ntotal:
            return np.zeros((len(queries), k), np.float32), -np.ones((len(queries), k), np.int64)
        params = None
        if among is not None:
            selector = faiss.IDSelectorBatch(np.asarray(among, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
            if info.kind == "ivf":
                nlist = faiss.extract_index_ivf(index).nlist
                nprobe = filtered_nprobe(info.nprobe or 1, nlist, info.count, len(set(among)))
                params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        similarities, ids = index.search(queries, k, params=params)
        return similarities, ids


def filtered_nprobe(nprobe: int, nlist: int, count: int, among: int) -> int:
    """How many IVF lists to scan when only `among` of `count` items may be found.

    The nprobe measured at build time finds 10 neighbours among all items;
    among a few, the probed lists hold few of them: a search for the
    confirmed items most like one (5,000 confirmed of 200,000) found 17% of
    the true ten (measured). Up to EXACT_AMONG allowed items every list is
    scanned, which is exact, and cheap: faiss computes distances only for the
    allowed items. Beyond, lists are scanned in inverse proportion to the
    share allowed, so about as many candidates are seen as without a filter."""
    if among <= EXACT_AMONG:
        return nlist
    return int(min(nlist, max(nprobe, math.ceil(nprobe * count / max(1, among)))))


def _outgrown(info: IndexInfo, count: int) -> bool:
    """Whether an index of `info` should be rebuilt to hold `count` items: the project crossed
    APPROXIMATE_FROM (flat against IVF), or has grown or shrunk REBUILD_GROWTH times since the
    IVF's lists were trained (their centres no longer fit, and nprobe was measured for another
    size)."""
    if (count >= APPROXIMATE_FROM) != (info.kind == "ivf"):
        return True
    if info.kind != "ivf":
        return False
    trained = info.trained_count or info.count
    return not trained / REBUILD_GROWTH <= count <= trained * REBUILD_GROWTH


def _paths(folder: Path, model: str) -> tuple[Path, Path]:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")[:80]
    slug += "-" + hashlib.sha256(model.encode()).hexdigest()[:8]
    return folder / f"{slug}.faiss", folder / f"{slug}.json"


def _build_ivf(faiss, ids: np.ndarray, vectors: np.ndarray):
    """IVF with nlist ~ 4 sqrt(N), its lists holding float16 vectors (half of IVF-Flat's memory,
    the same neighbours to within float16's precision); nprobe doubled until recall@10 >=
    MIN_RECALL on a sample of the items (each one's 10 nearest others)."""
    n, dim = vectors.shape
    nlist = int(4 * np.sqrt(n))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                        faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    train = vectors[rng.choice(n, size=min(n, 40 * nlist), replace=False)]
    ivf.train(train)
    ivf.add_with_ids(vectors, ids)
    rows = rng.choice(n, size=min(n, RECALL_SAMPLE), replace=False)
    sample, own = vectors[rows], ids[rows]
    _, truth = faiss.knn(sample, vectors, 11, metric=faiss.METRIC_INNER_PRODUCT)  # exact, no second copy
    # Searches for items like an item leave the item out: so does the measure (its own
    # vector, always found first, would make recall look higher than people see it).
    truth = [set(ids[t].tolist()) - {me} for t, me in zip(truth, own)]
    nprobe, recall = 1, 0.0
    while nprobe <= nlist:
        ivf.nprobe = nprobe
        _, found = ivf.search(sample, 11)
        recall = float(np.mean([len(set(f.tolist()) & t) / max(1, len(t)) for f, t in zip(found, truth)]))
        if recall >= MIN_RECALL:
            break
        nprobe *= 2
    return ivf, nprobe, round(recall, 4)
