"""Review-loop speed on synthetic vectors: suggestion refresh, and similar-item queries.

    python bench/review_speed.py DATA [--dim 512] [--sizes 100000 1000000]

DATA is any <label>/<image> folder; its number of labels sets the number of
classes of the synthetic vectors (a mixture of Gaussians, like real image
embeddings). In one run it prints:

1. refresh latency: suggestions of 100k pending items after a batch of 20
   decisions, incremental (what the review loop does) against recomputing
   every item's nearest examples from scratch (the baseline). Goal < 1 s.
2. a single k=10 query, p50 and p95 over 300 queries, at each size: exact
   (flat) and approximate (IVF), with recall@10 of the approximate index
   against exact search. Goal: p95 under 20 ms at 1M with recall >= 0.95.
3. batched flat queries with faiss's default BLAS threshold against the one
   labelchat sets (faiss.cvar.distance_compute_blas_threshold).

Ends with one JSON line of all figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import index.vectors as vectors  # noqa: E402
from tools.learn import ExampleVotes  # noqa: E402


def synthetic(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around 50 sub-centres per class, like real embeddings; and their classes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes * 50, dim)).astype(np.float32)
    which = rng.integers(0, len(centres), n)
    x = centres[which] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, which // 50


def refresh_latency(n: int, dim: int, classes: int, rounds: int = 5) -> dict:
    x, y = synthetic(n, dim, classes)
    ids = np.arange(n, dtype=np.int64)
    zero_shot = np.full((n, classes), 1.0 / classes, dtype=np.float32)
    examples = {int(i): int(y[i]) for i in range(0, 2000, 2)}  # 1000 confirmed items
    votes = ExampleVotes(ids, x)
    votes.set_examples(examples)
    incremental, full = [], []
    for r in range(rounds):
        batch = {int(i): int(y[i]) for i in range(2000 + 20 * r, 2020 + 20 * r)}
        examples.update(batch)
        pending = np.setdiff1d(ids, np.fromiter(examples, dtype=np.int64))
        started = time.perf_counter()
        votes.set_examples(examples)
        votes.blend(pending, zero_shot[pending], examples)
        incremental.append(time.perf_counter() - started)
        started = time.perf_counter()
        fresh = ExampleVotes(ids, x)
        fresh.set_examples(examples)
        fresh.blend(pending, zero_shot[pending], examples)
        full.append(time.perf_counter() - started)
    return {
        "pending": int(len(pending)),
        "examples": len(examples),
        "incremental_s": round(float(np.median(incremental)), 3),
        "from_scratch_s": round(float(np.median(full)), 3),
        "speedup": round(float(np.median(full) / np.median(incremental)), 1),
    }


def query_latency(index: vectors.VectorIndex, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for q in queries:
        started = time.perf_counter()
        index.search(q[None, :], 10)
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50) * 1000), float(np.percentile(times, 95) * 1000)


def similar_queries(n: int, dim: int, classes: int, scratch: Path) -> dict:
    x, _ = synthetic(n, dim, classes, seed=1)
    ids = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(2)
    queries = x[rng.choice(n, 300, replace=False)] + 0.05 * rng.standard_normal((300, dim)).astype(np.float32)
    result = {}
    saved = vectors.APPROXIMATE_FROM
    try:
        vectors.APPROXIMATE_FROM = n + 1
        exact = vectors.VectorIndex.build(scratch / f"flat-{n}", "m", ids, x)
        vectors.APPROXIMATE_FROM = 0
        approx = vectors.VectorIndex.build(scratch / f"ivf-{n}", "m", ids, x)
    finally:
        vectors.APPROXIMATE_FROM = saved
    for name, index in (("exact", exact), ("approximate", approx)):
        p50, p95 = query_latency(index, queries)
        size = sum(path.stat().st_size for path in index.folder.glob("*.faiss")) / 2**20
        result[name] = {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "build_s": index.info.built_seconds,
                        "index_mib": round(size, 1)}
    _, truth = exact.search(queries, 10)
    _, found = approx.search(queries, 10)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
    result["approximate"].update(recall_at_10=round(recall, 4), nprobe=approx.info.nprobe)
    result["p95_ratio_approximate_to_exact"] = round(result["approximate"]["p95_ms"] / result["exact"]["p95_ms"], 3)
    return result


def blas_threshold(n: int, dim: int, classes: int) -> dict:
    import faiss

    x, _ = synthetic(n, dim, classes, seed=3)
    index = faiss.IndexFlatIP(dim)
    index.add(x)
    queries = x[:64]
    timings = {}
    for name, threshold in (("faiss_default", 128000), ("labelchat", vectors.BLAS_THRESHOLD)):
        faiss.cvar.distance_compute_blas_threshold = threshold
        started = time.perf_counter()
        for _ in range(3):
            index.search(queries, 10)
        timings[name] = (time.perf_counter() - started) / 3
    faiss.cvar.distance_compute_blas_threshold = vectors.BLAS_THRESHOLD
    return {"batch": 64, "vectors": n, "default_s": round(timings["faiss_default"], 3),
            "labelchat_s": round(timings["labelchat"], 3),
            "speedup": round(timings["faiss_default"] / timings["labelchat"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a <label>/<image> folder (sets the number of classes)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--refresh-items", type=int, default=100_000)
    args = parser.parse_args()
    classes = max(2, sum(1 for d in args.data.iterdir() if d.is_dir()))
    figures = {"dim": args.dim, "classes": classes}
    figures["refresh"] = refresh_latency(args.refresh_items, args.dim, classes)
    print(f"refresh {figures['refresh']}", file=sys.stderr)
    figures["blas_threshold"] = blas_threshold(100_000, args.dim, classes)
    print(f"blas threshold {figures['blas_threshold']}", file=sys.stderr)
    figures["similar"] = {}
    with tempfile.TemporaryDirectory(prefix="labelchat-bench-") as tmp:
        for n in args.sizes:
            figures["similar"][str(n)] = similar_queries(n, args.dim, classes, Path(tmp))
            print(f"similar at {n}: {figures['similar'][str(n)]}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
