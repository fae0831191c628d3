"""Ingest speed of small images, into an empty project and into one of a million items.

    python bench/ingest.py [--images 3000] [--existing 1000000]

Writes `images` distinct small pictures (64x64, half PNG, half JPEG, like thumbnails or
product shots) into a scratch folder, then times `labelchat add`'s work on them
(`tools.ingest.ingest`: read, validate, hash (sha256 and perceptual), near-duplicate check
against every earlier image, media copy, one transaction per image):

- into an empty project;
- into a project that already holds `existing` items (rows made in bulk, with random
  perceptual hashes), with the near-duplicate index the product uses, and with the full
  scan that it replaced (the baseline, same run, same images);
- the floor: reading and inspecting the images alone, nothing stored.

Prints items per second for each and the ratio of the indexed run to the full scan, as
one JSON line (the issue's goal: >= 500 items/s on 2 cores at 1,000,000 items).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWS_PER_INSERT = 100_000


def write_images(folder: Path, count: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        small.resize((64, 64), Image.Resampling.BILINEAR).save(folder / f"{i:06d}.{'png' if i % 2 else 'jpg'}")


def fill(folder: Path, existing: int) -> None:
    """A project of `existing` items with random perceptual hashes, inserted in bulk."""
    from index.project import Project
    from index.store import now

    rng = np.random.default_rng(1)
    stamp = now()
    with Project(folder) as project:
        db = project.store._db  # the bench fills the table in bulk; the product writes row by row
        for start in range(0, existing, ROWS_PER_INSERT):
            ids = range(start + 1, min(existing, start + ROWS_PER_INSERT) + 1)
            hashes = rng.integers(0, 2**63, len(ids), dtype=np.int64) * 2 + rng.integers(0, 2, len(ids))
            with project.store.transaction():
                db.executemany("INSERT INTO items(id, sha256, phash, media_path, width, height, format, bytes,"
                               " added_at) VALUES (?, ?, ?, 'media/x.png', 64, 64, 'PNG', 1000, ?)",
                               [(i, f"{i:064x}", f"{int(h) & (2**64 - 1):016x}", stamp) for i, h in zip(ids, hashes)])
                db.executemany("INSERT INTO item_state(item_id, status) VALUES (?, 'pending')", [(i,) for i in ids])


class FullScan:
    """The near-duplicate check before tools/near_duplicates.py: every earlier hash, every image."""

    def __init__(self, entries, max_distance):
        self.max_distance = max_distance
        self._ids = [item_id for item_id, _ in entries]
        self._hashes = np.array([int(h, 16) for _, h in entries] or [0], dtype=np.uint64)[: len(self._ids)]

    def add(self, item_id, phash):
        self._hashes = np.append(self._hashes, np.uint64(int(phash, 16)))  # (amortised growth aside)
        self._ids.append(item_id)

    def matches(self, phash):
        distances = np.bitwise_count(self._hashes ^ np.uint64(int(phash, 16)))
        close = np.flatnonzero(distances <= self.max_distance)
        return [(self._ids[i], int(distances[i])) for i in close[np.argsort(distances[close], kind="stable")]]


def timed_ingest(project_folder: Path, images: Path, near_index=None) -> dict:
    import tools.ingest as ingest_module
    from index.project import Project

    product = ingest_module.NearDuplicateIndex
    if near_index is not None:
        ingest_module.NearDuplicateIndex = near_index
    try:
        with Project(project_folder) as project:
            started = time.perf_counter()
            report = ingest_module.ingest(project, [str(images)])
            seconds = time.perf_counter() - started
    finally:
        ingest_module.NearDuplicateIndex = product
    return {"added": report.added, "seconds": round(seconds, 2), "items_per_s": round(report.added / seconds, 1)}


def floor(images: Path) -> dict:
    """Reading and inspecting alone, in the same thread pool: what storing adds to it is the rest."""
    from concurrent.futures import ThreadPoolExecutor

    from tools.images import inspect_image

    files = sorted(images.iterdir())
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda path: inspect_image(path.read_bytes()), files))
    seconds = time.perf_counter() - started
    return {"items_per_s": round(len(files) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--existing", type=int, default=1_000_000)
    args = parser.parse_args()
    figures: dict = {"images": args.images, "existing": args.existing}
    with tempfile.TemporaryDirectory(prefix="labelchat-bench-ingest-") as tmp:
        scratch = Path(tmp)
        write_images(scratch / "images", args.images)
        figures["read_and_inspect_only"] = floor(scratch / "images")
        figures["into_empty_project"] = timed_ingest(scratch / "empty", scratch / "images")
        for name, index in (("indexed", None), ("full_scan", FullScan)):
            folder = scratch / f"big-{name}"
            started = time.perf_counter()
            fill(folder, args.existing)
            print(f"made a project of {args.existing:,} items in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            figures[f"into_{args.existing}_{name}"] = timed_ingest(folder, scratch / "images", index)
    indexed, scan = figures[f"into_{args.existing}_indexed"], figures[f"into_{args.existing}_full_scan"]
    figures["ratio_indexed_to_full_scan"] = round(indexed["items_per_s"] / scan["items_per_s"], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
