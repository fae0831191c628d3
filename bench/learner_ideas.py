"""Ideas for a stronger live learner or review order, each measured against the product's.

    python bench/learner_ideas.py DATA [DATA ...] [--model offline] [--ideas spread,diverse]

Issue 16 asked for label spreading over the kNN graph of all items, other
review orders (least confidence, entropy, diverse batches), and other feature
transforms, to be measured and kept only if they win on several sets. This
script embeds each DATA folder (<label>/<image>) once through the real
pipeline (the same project and zero-shot head as bench/labelling.py), then
replays the same simulated annotator on those arrays for every idea: batches
of 20, smallest margin first (unless the idea changes the order), every
reviewed item one action, dataset accuracy over all items. The product's own
learner and order ("product") reproduce bench/labelling.py's figures.

Prints one line per idea and data set on stderr (the share of items needed
for 90/95/98% dataset accuracy and the lowest accuracy relative to zero-shot),
then one JSON line of all figures on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from labelling import TARGETS, build_project  # noqa: E402
from tools.learn import BlendConfig, Blended, LiveLearner  # noqa: E402
from tools.review import Reviewer, Strategy, _order, _spread_over_labels  # noqa: E402

BATCH = 20


@dataclass(frozen=True)
class Arrays:
    """One data set as the review loop sees it, rows sorted by item id."""

    ids: np.ndarray
    features: np.ndarray
    zero_shot: np.ndarray
    truth: np.ndarray  # label column per row


def embed(data: Path, model: str, scratch: Path) -> Arrays:
    project, truth = build_project(scratch / data.name, data)
    reviewer = Reviewer(project, model=model)
    ids = reviewer.item_ids
    _, features = project.store.embeddings(reviewer.model, [int(i) for i in ids])
    columns = np.array([reviewer.column[truth[int(i)]] for i in ids])
    arrays = Arrays(ids, features, reviewer.zero_shot, columns)
    project.close()
    return arrays


# -- learners: (ids, features, zero_shot) -> something with blend(ids, label_of, rejected) ---------

class Spreading:
    """The product's blend mixed with label spreading (Zhou et al. 2004) over a symmetric
    k-nearest-neighbour graph of every item, labelled or not: F = a S F + (1 - a) Y, with Y
    one-hot on confirmed items and `prior` x zero-shot elsewhere."""

    def __init__(self, ids, features, zero_shot, *, k=10, alpha=0.9, prior=1.0, share=0.3, beta=5.5):
        import scipy.sparse as sparse

        self.base = LiveLearner(ids, features, zero_shot)
        x = self.base.votes.features
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        near = np.argpartition(-sims, k, axis=1)[:, :k]
        weights = np.exp(-beta * (1 - np.take_along_axis(sims, near, axis=1)))
        n = len(x)
        graph = sparse.csr_matrix((weights.ravel(), (np.repeat(np.arange(n), k), near.ravel())), shape=(n, n))
        graph = graph.maximum(graph.T)
        scale = sparse.diags(1 / np.sqrt(np.maximum(np.asarray(graph.sum(1)).ravel(), 1e-12)))
        self.graph = scale @ graph @ scale
        self.alpha, self.prior, self.share = alpha, prior, share

    def blend(self, item_ids, label_of, rejected) -> Blended:
        blended = self.base.blend(item_ids, label_of, rejected)
        if not label_of:
            return blended
        zero_shot = self.base.zero_shot
        seeds = self.prior * zero_shot
        rows = self.base.rows(list(label_of))
        seeds[rows] = np.eye(zero_shot.shape[1])[list(label_of.values())]
        spread = seeds.copy()
        for _ in range(30):
            spread = self.alpha * (self.graph @ spread) + (1 - self.alpha) * seeds
        spread = spread[self.base.rows(item_ids)]
        spread /= np.maximum(spread.sum(1, keepdims=True), 1e-12)
        p = ((1 - self.share) * blended.uncalibrated + self.share * spread).astype(np.float32)
        return replace(blended, probabilities=p, uncalibrated=p)


def transformed(transform: Callable[[np.ndarray], np.ndarray]):
    return lambda ids, features, zero_shot: LiveLearner(
        ids, transform(features.astype(np.float64)).astype(np.float32), zero_shot)


def signed_root(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.sqrt(np.abs(x))


def pca_whitened(x: np.ndarray, dims: int = 256, floor: float = 0.1) -> np.ndarray:
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    return (x @ vt[:dims].T) / (s[:dims] / np.sqrt(len(x)) + floor)


# -- review orders: (uncalibrated probabilities of the open items, their feature rows) -> order -----

def product_order(p: np.ndarray, features: np.ndarray) -> np.ndarray:
    return _order(Strategy.UNCERTAIN, p, 0, max(400, 40 * BATCH))


def least_confident(p: np.ndarray, features: np.ndarray) -> np.ndarray:
    return _spread_over_labels(np.argsort(p.max(1), kind="stable"), p.argmax(1), cap_share=0.5)


def most_entropy(p: np.ndarray, features: np.ndarray) -> np.ndarray:
    entropy = -(p * np.log(np.maximum(p, 1e-12))).sum(1)
    return _spread_over_labels(np.argsort(-entropy, kind="stable"), p.argmax(1), cap_share=0.5)


def diverse(p: np.ndarray, features: np.ndarray, pool: int = 5, too_close: float = 0.3) -> np.ndarray:
    """Smallest margin first among the pool x batch least certain, skipping any item closer
    than `too_close` (cosine, centred features) to one already in the batch."""
    top2 = -np.sort(-p, axis=1)[:, :2]
    by_margin = np.argsort(top2[:, 0] - top2[:, 1], kind="stable")
    chosen: list[int] = []
    for row in by_margin[: pool * BATCH]:
        if not chosen or float((features[chosen] @ features[row]).max()) <= too_close:
            chosen.append(int(row))
        if len(chosen) == BATCH:
            break
    rest = [int(r) for r in by_margin if int(r) not in set(chosen)]
    return np.array(chosen + rest, dtype=np.int64)


def cluster_margin(p: np.ndarray, features: np.ndarray, pool: int = 5) -> np.ndarray:
    """k-means of the pool x batch least certain into `batch` clusters; the least certain of each."""
    from sklearn.cluster import KMeans

    top2 = -np.sort(-p, axis=1)[:, :2]
    by_margin = np.argsort(top2[:, 0] - top2[:, 1], kind="stable")
    candidates = by_margin[: pool * BATCH]
    if len(candidates) <= BATCH:
        return by_margin
    clusters = KMeans(BATCH, n_init=1, random_state=0).fit_predict(features[candidates])
    chosen = [int(candidates[clusters == c][0]) for c in range(BATCH) if (clusters == c).any()]
    return np.array(chosen + [int(r) for r in by_margin if int(r) not in set(chosen)], dtype=np.int64)


IDEAS = {  # name: (learner factory, review order)
    "product": (LiveLearner, product_order),
    "spread (share 0.3, prior 1)": (Spreading, product_order),
    "spread (share 0.6, prior 0.1)": (lambda *a: Spreading(*a, share=0.6, prior=0.1), product_order),
    "least confident first": (LiveLearner, least_confident),
    "most entropy first": (LiveLearner, most_entropy),
    "diverse batch (cosine <= 0.3)": (LiveLearner, diverse),
    "cluster-margin (k-means)": (LiveLearner, cluster_margin),
    "signed square root features": (transformed(signed_root), product_order),
    "PCA-whitened features (256)": (transformed(pca_whitened), product_order),
    "probe share 0.85, ridge 0.3": (lambda *a: LiveLearner(*a, BlendConfig(mix=0.85, ridge=0.3)), product_order),
}


def simulate(arrays: Arrays, factory, order) -> list[tuple[float, float]]:
    learner = factory(arrays.ids, arrays.features, arrays.zero_shot)
    features = getattr(learner, "votes", None) or learner.base.votes
    n, label_of, curve = len(arrays.ids), {}, []
    while True:
        open_rows = np.array([r for r, i in enumerate(arrays.ids) if int(i) not in label_of], dtype=np.int64)
        if not len(open_rows):
            return curve + [(1.0, 1.0)]
        blended = learner.blend(arrays.ids[open_rows], label_of, None)
        right = blended.probabilities.argmax(1) == arrays.truth[open_rows]
        curve.append((len(label_of) / n, (len(label_of) + right.sum()) / n))
        if curve[-1][1] >= 0.999:
            return curve
        ranked = blended.uncalibrated if blended.uncalibrated is not None else blended.probabilities
        for row in order(ranked, features.features[open_rows])[:BATCH]:
            label_of[int(arrays.ids[open_rows[row]])] = int(arrays.truth[open_rows[row]])


def figures(curve: list[tuple[float, float]]) -> dict:
    result = {f"actions_for_{int(t * 100)}": next((round(f, 3) for f, a in curve if a >= t), None) for t in TARGETS}
    result["min_accuracy_vs_zero_shot"] = round(float(min(a for _, a in curve) - curve[0][1]), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--model", default="offline")
    parser.add_argument("--ideas", default="", help="comma-separated substrings of idea names (default: all)")
    args = parser.parse_args()
    wanted = [w.strip() for w in args.ideas.split(",") if w.strip()]
    ideas = {name: idea for name, idea in IDEAS.items()
             if name == "product" or not wanted or any(w in name for w in wanted)}
    results: dict = {"model": args.model, "batch": BATCH, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="labelchat-ideas-") as tmp:
        for data in args.data:
            arrays = embed(data, args.model, Path(tmp))
            zero_shot = float((arrays.zero_shot.argmax(1) == arrays.truth).mean())
            entry = results["datasets"][data.name] = {"items": len(arrays.ids), "zero_shot_accuracy": round(zero_shot, 4),
                                                      "ideas": {}}
            for name, (factory, order) in ideas.items():
                entry["ideas"][name] = result = figures(simulate(arrays, factory, order))
                print(f"{data.name:>14} {name:<32} " + "  ".join(
                    f"{int(t * 100)}%: {result[f'actions_for_{int(t * 100)}']}" for t in TARGETS)
                    + f"  min-vs-zs: {result['min_accuracy_vs_zero_shot']:+.3f}", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
