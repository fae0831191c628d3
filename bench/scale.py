"""How labelchat's costs grow with the project: 10k, 100k (and 1M) items, no model needed.

    python bench/scale.py [--sizes 10000 100000 1000000] [--dim 128] [--labels 10]

For each size a project is made in a scratch folder with synthetic rows and vectors (items,
their pending state, five ranked suggestions each from a stored zero-shot head, and a feature
vector each in the float16 feature file, as after `labelchat suggest`), then, in a fresh process per size (so its peak
memory is its own):

- `labelchat status` and `labelchat items --status pending --limit 20` (the CLI in-process,
  opening the project each time; median of 5 runs);
- all features read into memory: from the float16 feature file against float32 SQLite rows
  (how the store kept them before), the same vectors in the same run;
- a review batch: opening the reviewer (all features read, the live learner built) and its
  first batch of 20 cards;
- a live refresh of every pending item's suggestions after 20 decisions (what the review loop
  does after a batch);
- a k=10 similar-items query: p50 / p95 over 300 queries, exact and approximate (IVF), with the
  approximate index's recall@10 against exact search (`bench/review_speed.py`'s measurement);
- the project's own similarity index after the project grew by 1%: caught up (the new
  vectors added) against built again from every vector, in the same run;
- the process's peak resident memory.

Ends with one JSON line: the figures per size and each figure's ratio to the smallest size's
(items grow 10x a step: a ratio near 10 is linear, above about 12 worse than n log n).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

SPEC = "openclip:tiny/random"  # only its name: the head and the vectors are made here
ROWS_PER_INSERT = 50_000
BASELINE_DB = "baseline-embeddings.db"  # beside the project's files, never opened by the product


def build_project(folder: Path, n: int, dim: int, labels: int) -> None:
    """A project of n pending items with ranked suggestions and features, as `suggest` leaves it."""
    from index.project import Project
    from index.store import now
    from index.types import Label
    from review_speed import synthetic
    from tools.models.base import LinearHead, head_to_bytes, l2_normalize
    from tools.scoring import TOP_K
    from tools.zeroshot import DEFAULT_TEMPLATES, head_key, templates

    names = [f"label{i}" for i in range(labels)]
    x, _ = synthetic(n, dim, labels)
    rng = np.random.default_rng(7)
    head = LinearHead(tuple(names), l2_normalize(rng.standard_normal((labels, dim)).astype(np.float32)), 30.0)
    with Project(folder) as project:
        store = project.store
        store.set_labels([Label(name) for name in names])
        key = head_key(SPEC, store.label_set().labels, templates(DEFAULT_TEMPLATES))
        store.put_head(key, SPEC, head_to_bytes(head))
        stamp = now()
        db = store._db  # the bench fills the tables in bulk; the product writes them row by row
        for start in range(0, n, ROWS_PER_INSERT):
            ids = range(start + 1, min(n, start + ROWS_PER_INSERT) + 1)
            probabilities = head.probabilities(x[start : start + len(ids)])
            order = np.argsort(-probabilities, axis=1)[:, :TOP_K]
            with store.transaction():
                db.executemany("INSERT INTO items(id, sha256, phash, media_path, width, height, format, bytes,"
                               " added_at) VALUES (?, ?, '0', 'media/x.png', 64, 64, 'PNG', 1000, ?)",
                               [(i, f"{i:064x}", stamp) for i in ids])
                db.executemany("INSERT INTO item_state(item_id, status) VALUES (?, 'pending')", [(i,) for i in ids])
                db.executemany(
                    "INSERT INTO suggestions(item_id, rank, label, score, model, method, created_at, head_key)"
                    " VALUES (?, ?, ?, ?, ?, 'zero-shot', ?, ?)",
                    [(i, rank, names[j], float(probabilities[row, j]), SPEC, stamp, key)
                     for row, i in enumerate(ids) for rank, j in enumerate(order[row])])
            store.put_embeddings(SPEC, dict(zip(ids, x[start : start + len(ids)])))
    _write_sqlite_baseline(folder / BASELINE_DB, x)


def _write_sqlite_baseline(path: Path, x: np.ndarray) -> None:
    """The same vectors as float32 rows of a SQLite table, as the store kept them before
    index/features.py: what features_read_s is compared with."""
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE embeddings (model TEXT, item_id INTEGER, vector BLOB, PRIMARY KEY (model, item_id))")
    for start in range(0, len(x), ROWS_PER_INSERT):
        db.executemany("INSERT INTO embeddings VALUES (?, ?, ?)",
                       [(SPEC, start + row + 1, v.tobytes()) for row, v in enumerate(x[start : start + ROWS_PER_INSERT])])
        db.commit()
    db.close()


def _features_read(folder: Path) -> dict:
    """All features read into one float32 matrix: from the float16 feature file (the product)
    against float32 rows of SQLite (the store before it), in the same run."""
    import sqlite3

    from index.project import Project

    started = time.perf_counter()
    with Project(folder) as project:
        _, rows = project.store.embeddings(SPEC, dtype=None)
        matrix = rows.astype(np.float32)
    figures = {"features_read_s": round(time.perf_counter() - started, 4)}
    started = time.perf_counter()
    db = sqlite3.connect(folder / BASELINE_DB)
    found = db.execute("SELECT item_id, vector FROM embeddings WHERE model = ? ORDER BY item_id", (SPEC,)).fetchall()
    baseline = np.stack([np.frombuffer(vector, dtype=np.float32) for _, vector in found])
    db.close()
    figures["features_read_sqlite_s"] = round(time.perf_counter() - started, 4)
    figures["features_read_speedup"] = round(figures["features_read_sqlite_s"] / figures["features_read_s"], 2)
    figures["features_file_mib"] = round(sum(p.stat().st_size for p in (folder / "features").iterdir()) / 2**20, 1)
    figures["features_sqlite_mib"] = round((folder / BASELINE_DB).stat().st_size / 2**20, 1)
    assert baseline.shape == matrix.shape and np.abs(baseline - matrix).max() < 1e-2
    return figures


def _median_seconds(run, times: int = 5) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        spent.append(time.perf_counter() - started)
    return round(statistics.median(spent), 4)


def _cli(*argv: str) -> None:
    from ui.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    if code != 0:
        raise RuntimeError(f"labelchat {' '.join(argv)} exited {code}")


def measure(folder: Path, n: int, dim: int, labels: int) -> dict:
    """Every figure for one project (run in its own process: see main)."""
    from index.project import Project
    from review_speed import similar_queries
    from tools.review import Reviewer

    figures: dict = {"items": n}
    project_arg = ["--project", str(folder)]
    figures["status_s"] = _median_seconds(lambda: _cli("status", "--json", *project_arg))
    figures["items_page_s"] = _median_seconds(
        lambda: _cli("items", "--status", "pending", "--limit", "20", "--json", *project_arg))
    with Project(folder) as project:
        started = time.perf_counter()
        reviewer = Reviewer(project, model=SPEC)
        figures["reviewer_open_s"] = round(time.perf_counter() - started, 4)
        started = time.perf_counter()
        cards = reviewer.batch(size=20)
        figures["review_batch_s"] = round(time.perf_counter() - started, 4)
        for card in cards:
            project.store.decide(card.item.id, "accept", card.suggestions[0].label)
        started = time.perf_counter()
        refreshed = reviewer.refresh()
        figures["refresh_after_20_s"] = round(time.perf_counter() - started, 4)
        figures["refresh_pending"] = refreshed.items
        figures["refresh_written"] = refreshed.written
        figures.update(_write_paths(reviewer, project))
        with tempfile.TemporaryDirectory(prefix="labelchat-scale-knn-") as scratch:
            knn = similar_queries(n, dim, labels, Path(scratch))
        figures["knn_exact_p95_ms"] = knn["exact"]["p95_ms"]
        figures["knn_approximate_p95_ms"] = knn["approximate"]["p95_ms"]
        figures["knn_recall_at_10"] = knn["approximate"]["recall_at_10"]
        figures["knn_nprobe"] = knn["approximate"]["nprobe"]
        figures["knn_index_mib_exact"] = knn["exact"]["index_mib"]  # float32 vectors
        figures["knn_index_mib_approximate"] = knn["approximate"]["index_mib"]  # IVF lists of float16
        # the product's peak, before the baseline below builds n x 5 Suggestion objects
        figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        figures.update(_store_all(reviewer, project))
        figures.update(_index_growth(project, Path(tempfile.mkdtemp(prefix="labelchat-scale-index-"))))
    figures.update(_features_read(folder))  # after the peak too: the baseline holds a second copy
    return figures


def _write_paths(reviewer, project) -> dict:
    """The app's refresh (rows stored by the writer thread), and one with nothing changed."""
    from tools.review import Strategy

    for card in reviewer.batch(Strategy.UNCERTAIN, 20):
        project.store.decide(card.item.id, "accept", card.suggestions[0].label)
    reviewer.write_behind()
    started = time.perf_counter()
    reviewer.refresh()
    figures = {"refresh_app_s": round(time.perf_counter() - started, 4)}
    reviewer.flush()
    started = time.perf_counter()
    reviewer.refresh()  # nothing changed since: nothing to store
    figures["refresh_unchanged_s"] = round(time.perf_counter() - started, 4)
    return figures


def _store_all(reviewer, project) -> dict:
    """Storing every pending item's suggestions: as arrays (the product) against one
    Suggestion object at a time (the baseline, how every refresh stored them before)."""
    figures = {}
    current, ids, examples = reviewer.current, reviewer.current_ids, reviewer.example_labels
    every_row = np.arange(len(ids))
    started = time.perf_counter()
    project.store.put_suggestions_many(
        {int(i): reviewer._suggestions(int(i), current, r, examples) for r, i in enumerate(ids)},
        head_key=reviewer.head_key)
    figures["store_all_per_item_s"] = round(time.perf_counter() - started, 4)
    started = time.perf_counter()
    reviewer.store_rows(ids, current, every_row, examples)
    figures["store_all_arrays_s"] = round(time.perf_counter() - started, 4)
    figures["store_all_speedup"] = round(figures["store_all_per_item_s"] / figures["store_all_arrays_s"], 2)
    return figures


def _index_growth(project, folder: Path) -> dict:
    """Opening the similarity index after the project grew by 1%: caught up with the new
    items (the product) against built again from every vector (before), same vectors."""
    import shutil

    from index.vectors import APPROXIMATE_FROM, VectorIndex

    ids, vectors = project.store.embeddings(SPEC, dtype=None)
    before = ids[: int(len(ids) * 0.99)]
    VectorIndex.build(folder, SPEC, before, vectors[: len(before)])
    started = time.perf_counter()
    caught_up = VectorIndex.open(folder, SPEC, ids, lambda: (ids, vectors))
    figures = {"index_catch_up_s": round(time.perf_counter() - started, 3)}
    started = time.perf_counter()
    rebuilt = VectorIndex.build(folder, SPEC, ids, vectors)
    figures["index_rebuild_s"] = round(time.perf_counter() - started, 3)
    figures["index_catch_up_speedup"] = round(figures["index_rebuild_s"] / max(figures["index_catch_up_s"], 1e-6), 1)
    figures["index_catch_up_count_ok"] = caught_up.info.count == rebuilt.info.count
    # from flat to IVF (100,000 items, the line between them) the product rebuilds by design
    figures["index_kinds"] = f"{'ivf' if len(before) >= APPROXIMATE_FROM else 'flat'} to {rebuilt.info.kind}"
    shutil.rmtree(folder, ignore_errors=True)
    return figures


RATIO_KEYS = ("status_s", "items_page_s", "reviewer_open_s", "review_batch_s", "refresh_after_20_s",
              "knn_exact_p95_ms", "knn_approximate_p95_ms", "peak_rss_mib")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=128, help="length of the synthetic feature vectors")
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # measure this project (a child run)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.sizes[0], args.dim, args.labels)))
        return
    results = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="labelchat-scale-") as scratch:
            folder = Path(scratch) / "project"
            started = time.perf_counter()
            build_project(folder, n, args.dim, args.labels)
            built = round(time.perf_counter() - started, 1)
            child = subprocess.run([sys.executable, __file__, "--one", str(folder), "--sizes", str(n),
                                    "--dim", str(args.dim), "--labels", str(args.labels)],
                                   capture_output=True, text=True)
            if child.returncode:
                sys.exit(f"measuring {n} items failed:\n{child.stderr[-4000:]}")
            results[str(n)] = {**json.loads(child.stdout.strip().splitlines()[-1]), "build_s": built}
            print(f"{n}: {results[str(n)]}", file=sys.stderr)
    base = results[str(args.sizes[0])]
    ratios = {str(n): {key: round(results[str(n)][key] / base[key], 2) if base[key] else None for key in RATIO_KEYS}
              for n in args.sizes[1:]}
    print(json.dumps({"dim": args.dim, "labels": args.labels, "sizes": results, "ratio_to_smallest": ratios}))


if __name__ == "__main__":
    main()
