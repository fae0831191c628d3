"""Which earlier images have a perceptual hash within a few bits of a new one, fast at a million.

Comparing a new hash with every earlier one costs a scan of the whole project per image
(about 2 ms at 1,000,000 items, which alone caps ingest near 500 images/s, and grows with
the project). Multi-index hashing (Norouzi et al. 2012) avoids the scan: split the 64
bits into `max_distance + 1` disjoint chunks; two hashes at most `max_distance` bits
apart agree exactly on at least one chunk (pigeonhole), so only the images sharing a
chunk value with the new hash are compared. Each chunk keeps its hashes sorted by chunk
value (a bucket is a slice); hashes added since the last sort sit in a short tail that is
scanned, and the tables are re-sorted when the tail outgrows a share of the whole, so an
add costs amortised O(log n) and a lookup O(log n + bucket sizes).
"""

from __future__ import annotations

import numpy as np

BITS = 64
MIN_CHUNK_BITS = 6  # below this a chunk's buckets hold most of the project: a plain scan is as fast
TAIL = 4096  # hashes added since the last sort that are scanned rather than looked up, at least
TAIL_SHARE = 64  # ... or 1/64 of the project, whichever is larger


class NearDuplicateIndex:
    """Finds earlier images whose perceptual hash (16 hex digits) is within `max_distance` bits."""

    def __init__(self, entries: list[tuple[int, str]], max_distance: int):
        self.max_distance = max_distance
        self._ids = np.array([item_id for item_id, _ in entries] or [0], dtype=np.int64)
        self._buffer = _parsed([h for _, h in entries]) if entries else np.zeros(1, dtype=np.uint64)
        self._size = len(entries)
        chunks = max_distance + 1
        self._widths = _chunk_widths(chunks) if max_distance >= 0 and BITS // chunks >= MIN_CHUNK_BITS else None
        self._sorted = 0  # hashes [0, _sorted) are in the chunk tables
        self._tables: list[tuple[np.ndarray, np.ndarray]] = []  # per chunk: (chunk values sorted, positions)
        self._sort()

    @property
    def _hashes(self) -> np.ndarray:
        return self._buffer[: self._size]

    def add(self, item_id: int, phash: str) -> None:
        if self._size == len(self._buffer):  # grow by doubling: amortised O(1)
            self._buffer = np.concatenate([self._buffer, np.zeros_like(self._buffer)])
            self._ids = np.concatenate([self._ids, np.zeros_like(self._ids)])
        self._buffer[self._size] = np.uint64(int(phash, 16))
        self._ids[self._size] = item_id
        self._size += 1
        if self._size - self._sorted > max(TAIL, self._sorted // TAIL_SHARE):
            self._sort()

    def matches(self, phash: str) -> list[tuple[int, int]]:
        """(item id, Hamming distance), closest first (ties: the earlier added first)."""
        if self.max_distance < 0 or not self._size:
            return []
        target = np.uint64(int(phash, 16))
        positions = self._candidates(target)
        distances = np.bitwise_count(self._hashes[positions] ^ target)
        close = np.flatnonzero(distances <= self.max_distance)
        ordered = close[np.argsort(distances[close], kind="stable")]
        return [(int(self._ids[positions[i]]), int(distances[i])) for i in ordered]

    def _candidates(self, target: np.uint64) -> np.ndarray:
        """Positions that may be within reach of `target`, ascending: those sharing a chunk
        value with it, and every hash of the unsorted tail (all of them without tables)."""
        if self._widths is None:
            return np.arange(self._size)
        found = []
        for (values, positions), chunk in zip(self._tables, _chunks(np.array([target]), self._widths)):
            start, stop = np.searchsorted(values, chunk[0], side="left"), np.searchsorted(values, chunk[0], side="right")
            found.append(positions[start:stop])
        # the tail comes after every sorted position: only the few bucket hits need sorting
        return np.concatenate([np.unique(np.concatenate(found)), np.arange(self._sorted, self._size)])

    def _sort(self) -> None:
        if self._widths is None:
            return
        self._tables = []
        for chunk, width in zip(_chunks(self._hashes, self._widths), self._widths):
            keys = chunk.astype(np.uint16) if width <= 16 else chunk  # 16 bits or fewer: a radix sort
            order = np.argsort(keys, kind="stable")
            self._tables.append((chunk[order], order))
        self._sorted = self._size


def _parsed(hashes: list[str]) -> np.ndarray:
    """16-hex-digit hashes as uint64 (one bytes.fromhex: ten times faster than int(h, 16) each)."""
    if all(len(h) == 16 for h in hashes):
        return np.frombuffer(bytes.fromhex("".join(hashes)), dtype=">u8").astype(np.uint64)
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def _chunk_widths(chunks: int) -> list[int]:
    """`chunks` widths that add up to 64 bits, as equal as they can be."""
    base, extra = divmod(BITS, chunks)
    return [base + (i < extra) for i in range(chunks)]


def _chunks(hashes: np.ndarray, widths: list[int]) -> list[np.ndarray]:
    out, shift = [], 0
    for width in widths:
        out.append((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1))
        shift += width
    return out
