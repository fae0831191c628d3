"""Which FAISS index for the similar-items search: the product's IVF with float16 lists against
IVF-PQ and HNSW, on the same vectors, each tuned to the same recall target.

    python bench/index_kinds.py [--sizes 100000 1000000] [--dim 128] [--target 0.95]

For each size: synthetic unit vectors (bench/review_speed.py's clusters) and 300 queries near
items; exact search (IndexFlatIP) is the baseline and the truth. Each approximate kind is built,
then its one search knob (nprobe, or efSearch for HNSW) is doubled until recall@10 against the
exact answers reaches the target, as index/vectors.py does for the product's IVF. Printed per
kind: build seconds, index size, p50/p95 of single k=10 queries, recall@10, and p95 and size as
ratios to exact search in the same run. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

QUERIES = 300


def kinds(faiss, n: int, dim: int) -> dict:
    """name -> (index builder, the knob's name); nlist as the product chooses it (~4 sqrt N)."""
    nlist = int(4 * np.sqrt(n))
    ip = faiss.METRIC_INNER_PRODUCT

    def ivf_fp16():
        return faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16, ip)

    def ivf_pq():  # dim/4 bytes a vector (8 bits a sub-quantizer): 8x smaller than float16
        return faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, dim // 4, 8, ip)

    def ivf_pq_refined():  # PQ codes to find candidates, float16 vectors to rank the best 40 of them
        index = faiss.IndexRefine(ivf_pq(), faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, ip))
        index.k_factor = 4
        return index

    def hnsw():
        index = faiss.IndexHNSWFlat(dim, 32, ip)
        index.hnsw.efConstruction = 80
        return index

    return {"ivf_fp16 (product)": (ivf_fp16, "nprobe"), "ivf_pq": (ivf_pq, "nprobe"),
            "ivf_pq+refine_fp16": (ivf_pq_refined, "nprobe"), "hnsw32": (hnsw, "efSearch")}


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))


def _size_mib(faiss, index) -> float:
    return round(len(faiss.serialize_index(index)) / 2**20, 1)


def _tune(faiss, index, knob: str, queries: np.ndarray, truth: np.ndarray, target: float) -> tuple[int, float]:
    """The smallest power of two for the knob that reaches `target` recall (or the largest tried)."""
    value, recall = 1, 0.0
    top = faiss.extract_index_ivf(index).nlist if knob == "nprobe" else 4096
    while value <= top:
        if knob == "nprobe":
            faiss.extract_index_ivf(index).nprobe = value
        else:
            index.hnsw.efSearch = max(value, 10)
        recall = _recall(index.search(queries, 10)[1], truth)
        if recall >= target:
            break
        value *= 2
    return min(value, top), recall


def measure(n: int, dim: int, target: float) -> dict:
    import faiss
    from review_speed import query_latency, synthetic

    x, _ = synthetic(n, dim, 10, seed=1)
    rng = np.random.default_rng(2)
    queries = x[rng.choice(n, QUERIES, replace=False)] + 0.05 * rng.standard_normal((QUERIES, dim)).astype(np.float32)
    started = time.perf_counter()
    exact = faiss.IndexFlatIP(dim)
    exact.add(x)
    result = {"exact": {"build_s": round(time.perf_counter() - started, 2), "index_mib": _size_mib(faiss, exact)}}
    result["exact"]["p50_ms"], result["exact"]["p95_ms"] = (round(v, 2) for v in query_latency(exact, queries))
    truth = exact.search(queries, 10)[1]
    for name, (make, knob) in kinds(faiss, n, dim).items():
        started = time.perf_counter()
        index = make()
        if not index.is_trained:
            index.train(x[rng.choice(n, size=min(n, 40 * int(4 * np.sqrt(n))), replace=False)])
        index.add(x)
        built = round(time.perf_counter() - started, 2)
        value, recall = _tune(faiss, index, knob, queries, truth, target)
        p50, p95 = query_latency(index, queries)  # any object with .search(q, k)
        size = _size_mib(faiss, index)
        result[name] = {"build_s": built, knob: value, "recall_at_10": round(recall, 4), "p50_ms": round(p50, 2),
                        "p95_ms": round(p95, 2), "index_mib": size,
                        "p95_ratio_to_exact": round(p95 / result["exact"]["p95_ms"], 3),
                        "size_ratio_to_exact": round(size / result["exact"]["index_mib"], 3)}
        print(f"{n:>9} {name:<20} build {built:>7.1f} s  {knob} {value:>4}  recall@10 {recall:.3f}  "
              f"p95 {p95:7.2f} ms ({result[name]['p95_ratio_to_exact']:.3f}x exact)  {size:8.1f} MiB", flush=True)
        del index
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--target", type=float, default=0.95, help="recall@10 each kind is tuned to")
    args = parser.parse_args()
    figures = {str(n): measure(n, args.dim, args.target) for n in args.sizes}
    print(json.dumps({"bench": "index_kinds", "dim": args.dim, "target_recall_at_10": args.target, "sizes": figures}))


if __name__ == "__main__":
    main()
