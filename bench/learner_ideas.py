"""Ideas for a stronger live learner or review order, each measured against the product's.

    python bench/learner_ideas.py DATA [DATA ...] [--model offline] [--ideas spread,diverse] [--cache DIR] [--repeats N] [--batch 20] [--references]

Issue 16 asked for label spreading over the kNN graph of all items, other
review orders (least confidence, entropy, diverse batches), and other feature
transforms, to be measured and kept only if they win on several sets. This
script embeds each DATA folder (<label>/<image>) once through the real
pipeline (the same project and zero-shot head as bench/labelling.py), then
replays the same simulated annotator on those arrays for every idea: batches
of 20, smallest margin first (unless the idea changes the order), every
reviewed item one action, dataset accuracy over all items. The product's own
learner and order ("product") reproduce bench/labelling.py's figures.

A second round (bench/results/cpu-learner-ideas-2.json) measured priors refined from the
unlabelled items before any label (EM class priors, balanced marginals, image-space
prototypes), each image's features averaged with its mirror image's (the mirrored copies are
embedded too, and the time it took is reported), self-training and a class-balanced probe, and
a logistic-regression probe; every idea is built on, and compared with, the learner as it was
before self-training and the class-balanced probe landed in tools/learn.py (`Before`).
`--cache DIR` keeps each set's arrays (and the mirrored copy's) for later runs.

A third round measured, against the product's learner, the probe's ridge strength and score
scale chosen at each refresh by the confirmed items' leave-one-out likelihood, a margin order
weighted by how typical each item is (information density, Settles & Craven 2008), and a first
batch of the most typical item of each of 20 k-means clusters (TypiClust, Hacohen et al.
2022) before the margin order. One batch of 20 moves a figure by 0.02 of fashion-dev's items, so
`--repeats N` also replays every idea on N random 80% subsets of each set and reports the
mean figures: an idea must win on them too.

A fourth round (bench/results/cpu-learner-ideas-4.json) measured, against the product's learner
as it was then (probe trust 3), the probe trusted sooner (trust 0.3 to 2), 8 or 32 voting
neighbours, votes that count sooner, a larger probe share, momentum (each refresh averaged with
the last), the margin order without or with a tighter cap per label, and an order that learns
which labels' confident suggestions turn out wrong. Trust 1, chosen on digits, is in the product.

`--references` adds reference points that no idea is: the product's learner reviewed with every
wrong suggestion first, so every action is a correction (not a lower bound, see `WrongFirst`), a
logistic regression that has seen 80% of the labels (5-fold) reviewed by its margins, and how often the blend, a logistic
regression and an RBF SVM fitted on the same confirmed items are right on the open ones after
2, 5, 8, 11 and 14 batches: where a better order, and where a better learner, would save actions.

Prints one line per idea and data set on stderr (the share of items needed
for 90/95/98% dataset accuracy and the lowest accuracy relative to zero-shot),
then one JSON line of all figures on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from labelling import TARGETS, build_project  # noqa: E402
from tools.learn import BlendConfig, Blended, LiveLearner, _nll, _softmax, balanced_weights  # noqa: E402
from tools.review import Reviewer, Strategy, _order, _spread_over_labels  # noqa: E402

BATCH = 20
# The learner as it was before self-training and the class-balanced probe landed: every idea
# below was measured against it (and is built on it), so that its figures can be reproduced.
BEFORE = BlendConfig(pseudo_threshold=None, balanced_probe=False, trust=3.0)  # (trust: 1 since the fourth round)


class Before(LiveLearner):
    def __init__(self, ids, features, zero_shot, config: BlendConfig = BEFORE):
        super().__init__(ids, features, zero_shot, config)


@dataclass(frozen=True)
class Arrays:
    """One data set as the review loop sees it, rows sorted by item id."""

    ids: np.ndarray
    features: np.ndarray
    zero_shot: np.ndarray
    truth: np.ndarray  # label column per row
    paths: np.ndarray  # each item's image, relative to DATA (aligns a flipped copy's rows)
    seconds: float = 0.0  # ingest (decode, embed, store) and the zero-shot head


def embed(data: Path, model: str, scratch: Path) -> Arrays:
    started = time.perf_counter()
    project, truth = build_project(scratch / data.name, data)
    reviewer = Reviewer(project, model=model)
    ids = reviewer.item_ids
    _, features = project.store.embeddings(reviewer.model, [int(i) for i in ids])
    columns = np.array([reviewer.column[truth[int(i)]] for i in ids])
    paths = np.array([str(Path(project.store.origins(int(i))[0].source).resolve().relative_to(data.resolve()))
                      for i in ids])
    arrays = Arrays(ids, features, reviewer.zero_shot, columns, paths, time.perf_counter() - started)
    project.close()
    return arrays


def cached(data: Path, model: str, scratch: Path, cache: Path | None, mirror_of: Arrays | None = None) -> Arrays:
    """`embed`, or the arrays an earlier run saved under `cache` (the embedding dominates a run).
    `mirror_of`: the arrays of DATA; returns those of its images mirrored left to right."""
    name = f"{data.name}-{model}{'-flipped' if mirror_of is not None else ''}.npz"
    if cache is not None and (cache / name).exists():
        saved = np.load(cache / name)
        return Arrays(saved["ids"], saved["features"], saved["zero_shot"], saved["truth"], saved["paths"],
                      float(saved["seconds"]))
    source = data
    if mirror_of is not None:
        from PIL import Image, ImageOps

        source = scratch / "flipped" / data.name
        for path in mirror_of.paths:
            target = source / str(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(data / str(path)) as opened:
                ImageOps.mirror(opened).save(target.with_suffix(".png"))
    arrays = embed(source, model, scratch / ("flipped-projects" if mirror_of is not None else "projects"))
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / name, ids=arrays.ids, features=arrays.features, zero_shot=arrays.zero_shot,
                 truth=arrays.truth, paths=arrays.paths, seconds=arrays.seconds)
    return arrays


# -- learners: (ids, features, zero_shot) -> something with blend(ids, label_of, rejected) ---------

class Spreading:
    """The product's blend mixed with label spreading (Zhou et al. 2004) over a symmetric
    k-nearest-neighbour graph of every item, labelled or not: F = a S F + (1 - a) Y, with Y
    one-hot on confirmed items and `prior` x zero-shot elsewhere."""

    def __init__(self, ids, features, zero_shot, *, k=10, alpha=0.9, prior=1.0, share=0.3, beta=5.5):
        import scipy.sparse as sparse

        self.base = Before(ids, features, zero_shot)
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
    return lambda ids, features, zero_shot: Before(
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


# -- issue 16, second round: a better prior before any label, flipped images, self-training ---------

def _centred(features: np.ndarray) -> np.ndarray:
    """The learner's view of the features: the mean removed, unit length."""
    x = features.astype(np.float64) - features.mean(axis=0)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def em_priors(zero_shot: np.ndarray, features: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Saerens, Latinne & Decaestecker (2002): re-estimate the class priors of the unlabelled
    items by EM, taking the zero-shot head's own prior as uniform, and reweight by them."""
    c = zero_shot.shape[1]
    prior = np.full(c, 1.0 / c)
    for _ in range(iterations):
        p = zero_shot * (prior * c)
        p /= p.sum(axis=1, keepdims=True)
        new = p.mean(axis=0)
        if np.abs(new - prior).max() < 1e-6:
            break
        prior = new
    return p


def balanced_marginals(zero_shot: np.ndarray, features: np.ndarray, iterations: int = 100) -> np.ndarray:
    """The other direction (OTTER, Shi et al. 2024: optimal transport to a label distribution):
    per-class factors, fitted by Sinkhorn, under which the predicted classes are equally common."""
    c = zero_shot.shape[1]
    factor = np.ones(c)
    for _ in range(iterations):
        p = zero_shot * factor
        p /= p.sum(axis=1, keepdims=True)
        marginal = p.mean(axis=0)
        if np.abs(marginal - 1.0 / c).max() < 1e-6:
            break
        factor /= marginal * c
    return p


def prototypes(zero_shot: np.ndarray, features: np.ndarray, *, share: float = 0.5, scale: float = 20.0,
               iterations: int = 5) -> np.ndarray:
    """InMaP / ZLaP-style refinement in image space: class prototypes are the probability-weighted
    means of the items' (centred) features; each item's cosine to them, as a softmax of inverse
    temperature `scale`, is mixed with the zero-shot probabilities (`share`); repeated."""
    x = _centred(features)
    p = zero_shot.astype(np.float64)
    for _ in range(iterations):
        centres = p.T @ x
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        q = scale * (x @ centres.T)
        q = np.exp(q - q.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        p = (1 - share) * zero_shot + share * q
    return p


def with_prior(refine: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """The product's learner on a prior refined from the unlabelled items before any label."""
    return lambda ids, features, zero_shot: Before(
        ids, features, refine(zero_shot.astype(np.float64), features).astype(np.float32))


class PriorChosen:
    """The product's learner on a refined prior until the first decisions, then on whichever
    prior, refined or plain zero-shot, gives the confirmed items' labels the higher likelihood
    (neither prior saw a label, so the judgement is out of sample)."""

    def __init__(self, ids, features, zero_shot, refine, learner=Before):
        self.plain = learner(ids, features, zero_shot)
        self.refined = learner(ids, features, refine(zero_shot.astype(np.float64), features).astype(np.float32))
        self.votes = self.plain.votes

    def blend(self, item_ids, label_of, rejected=None) -> Blended:
        learner = self.refined
        if label_of:
            rows = self.plain.rows(list(label_of))
            columns = np.array(list(label_of.values()))
            if _nll(self.plain.zero_shot[rows], columns) < _nll(self.refined.zero_shot[rows], columns):
                learner = self.plain
        return learner.blend(item_ids, label_of, rejected)


class SelfTrained(Before):
    """The product's learner whose ridge probe also fits (a) unlabelled items the blend is sure
    of, each as a pseudo-label of weight `weight` (`threshold`: calibrated probability), and/or
    (b) class-balanced weights on the confirmed items (each class weighs the same in total), so
    that the classes the review order confirmed most often do not pull the probe's scores."""

    def __init__(self, ids, features, zero_shot, *, threshold: float | None = 0.9, weight: float = 0.3,
                 balanced: bool = False):
        super().__init__(ids, features, zero_shot)
        self.threshold, self.weight, self.balanced = threshold, weight, balanced
        self.pseudo: tuple[np.ndarray, np.ndarray] | None = None  # (rows, columns)

    def blend(self, item_ids, label_of, rejected=None) -> Blended:
        self.pseudo = None
        if self.threshold is not None and len(label_of) >= 2:
            everything = self.item_ids[~np.isin(self.item_ids, np.fromiter(label_of, dtype=np.int64))]
            first = super().blend(everything, label_of, rejected).probabilities
            sure = first.max(axis=1) >= self.threshold
            self.pseudo = (self.rows(everything[sure]), first[sure].argmax(axis=1))
        return super().blend(item_ids, label_of, rejected)

    def _ridge(self, example_rows, columns, c, weights=None, confirmed=None):
        weights = np.ones(len(example_rows))
        if self.balanced:
            weights = balanced_weights(columns, c)
        if self.pseudo is None or not len(self.pseudo[0]):
            return super()._ridge(example_rows, columns, c, weights)
        return super()._ridge(np.concatenate([example_rows, self.pseudo[0]]),
                              np.concatenate([columns, self.pseudo[1]]), c,
                              np.concatenate([weights, np.full(len(self.pseudo[0]), self.weight)]),
                              confirmed=len(example_rows))


class LogisticProbe(Before):
    """The product's learner with a multinomial logistic regression (scikit-learn, L2, inverse
    strength `c`) in place of the ridge probe for the undecided items; the confirmed items keep
    the ridge's closed-form leave-one-out scores for the guard and temperature (a refit per
    example would cost a fit each)."""

    def __init__(self, ids, features, zero_shot, *, c: float = 10.0):
        super().__init__(ids, features, zero_shot)
        self.c = c

    def _ridge(self, example_rows, columns, c, weights=None, confirmed=None):
        from sklearn.linear_model import LogisticRegression

        scores, loo = super()._ridge(example_rows, columns, c, weights, confirmed)
        present = np.unique(columns)
        if len(present) < 2:
            return scores, loo
        model = LogisticRegression(C=self.c, max_iter=300).fit(self.votes.features[example_rows], columns)
        log_p = np.full((len(scores), c), -30.0)
        log_p[:, present] = model.predict_log_proba(self.votes.features)
        return log_p / self.config.probe_scale, loo  # softmax(probe_scale * scores) = its probabilities


class LeaveOneOutTuned(LiveLearner):
    """The product's learner whose probe's ridge strength and score scale are chosen at each
    refresh (from `guard_after` examples on) by the examples' leave-one-out likelihood under
    the probe blended with zero-shot by class trust."""

    RIDGES = (0.1, 0.3, 1.0, 3.0, 10.0)
    SCALES = (5.0, 10.0, 20.0)

    def __init__(self, ids, features, zero_shot):
        super().__init__(ids, features, zero_shot)
        self.base_config = self.config

    def blend(self, item_ids, label_of, rejected=None) -> Blended:
        self.config = self.base_config
        if len(label_of) >= self.config.guard_after:
            example_ids = np.array(sorted(label_of), dtype=np.int64)
            rows, columns = self.rows(example_ids), np.array([label_of[int(i)] for i in example_ids])
            c = self.zero_shot.shape[1]
            counts = np.bincount(columns, minlength=c)
            weights = balanced_weights(columns, c)
            trust = (counts / (counts + self.config.trust))[None, :]
            losses = {}
            for ridge in self.RIDGES:
                self.config = replace(self.base_config, ridge=ridge)
                _, loo = self._ridge(rows, columns, c, weights)
                for scale in self.SCALES:
                    p = trust * _softmax(scale * loo) + (1 - trust) * self.zero_shot[rows]
                    losses[ridge, scale] = _nll(p, columns)
            ridge, scale = min(losses, key=losses.get)
            self.config = replace(self.base_config, ridge=ridge, probe_scale=scale)
        return super().blend(item_ids, label_of, rejected)


def density_weighted(beta: float, k: int = 10):
    """Margin order weighted by typicality: (1 - margin) x (mean cosine to the k most similar
    open items) ** beta, largest first, spread over labels as the product's order is."""
    def order(p: np.ndarray, features: np.ndarray) -> np.ndarray:
        if len(features) <= k:
            return product_order(p, features)
        sims = features @ features.T
        np.fill_diagonal(sims, -np.inf)
        density = np.maximum(-np.partition(-sims, k - 1, axis=1)[:, :k].mean(axis=1), 1e-3)
        top2 = -np.sort(-p, axis=1)[:, :2]
        score = (1 - (top2[:, 0] - top2[:, 1])) * density ** beta
        chosen = np.argsort(-score, kind="stable")[: max(400, 40 * BATCH)]
        return _spread_over_labels(chosen, p.argmax(1), cap_share=0.5)
    return order


class TypicalFirst:
    """The product's order, except the first batch: the items are clustered by k-means into
    BATCH clusters and the most typical item of each (highest mean cosine to its 20 most
    similar cluster members) goes first (TypiClust)."""

    def __call__(self, p: np.ndarray, features: np.ndarray) -> np.ndarray:
        return product_order(p, features)

    def first_round(self, p: np.ndarray, features: np.ndarray) -> np.ndarray:
        from sklearn.cluster import KMeans

        k = min(BATCH, len(p))
        clusters = KMeans(k, n_init=3, random_state=0).fit_predict(features)
        chosen = []
        for c in range(k):
            members = np.flatnonzero(clusters == c)
            if len(members):
                sims = np.sort(features[members] @ features[members].T, axis=1)[:, -min(20, len(members)):]
                chosen.append(int(members[np.argmax(sims.mean(axis=1))]))
        taken = set(chosen)
        rest = [int(r) for r in product_order(p, features) if int(r) not in taken]
        return np.array(chosen + rest, dtype=np.int64)


# -- fourth round: against the product's learner until then (trust 3) ----------------------------

UNTIL_FOURTH = BlendConfig(trust=3.0)  # the product's learner before the fourth round


def with_config(**changes):
    return lambda ids, features, zero_shot: LiveLearner(ids, features, zero_shot, replace(UNTIL_FOURTH, **changes))


class Momentum(LiveLearner):
    """Each refresh's probabilities averaged with the previous refresh's (share `keep` of the old):
    fewer suggestions that flip to a wrong label after one batch, at the cost of slower learning."""

    keep = 0.5

    def __init__(self, ids, features, zero_shot, config: BlendConfig = UNTIL_FOURTH):
        super().__init__(ids, features, zero_shot, config)
        self.previous: np.ndarray | None = None

    def blend(self, item_ids, label_of, rejected) -> Blended:
        blended = super().blend(self.item_ids, label_of, rejected)
        p = blended.uncalibrated.astype(np.float64)
        if self.previous is not None and label_of:
            p = (1 - self.keep) * p + self.keep * self.previous
        self.previous = p
        rows = self.rows(item_ids)
        return replace(blended, probabilities=p[rows].astype(np.float32), uncalibrated=p[rows].astype(np.float32))


def momentum(keep: float):
    return type(f"Momentum{keep:g}", (Momentum,), {"keep": keep})


def margin_order(cap_share: float | None):
    """Smallest margin first, one label capped at `cap_share` of any 20 places (1: no cap)."""
    def order(p: np.ndarray, features: np.ndarray) -> np.ndarray:
        top2 = -np.sort(-p, axis=1)[:, :2]
        by_margin = np.argsort(top2[:, 0] - top2[:, 1], kind="stable")[: max(400, 40 * BATCH)]
        return by_margin if cap_share == 1 else _spread_over_labels(by_margin, p.argmax(1), cap_share=cap_share)
    return order


class ConfusionAware:
    """From the 60th review on, the items ranked by how likely their suggestion is wrong, by a
    logistic regression on (margin, suggested label) fitted to the reviews so far (was the
    suggestion wrong when it was reviewed?): a label whose confident suggestions turned out wrong
    gets its other suggestions reviewed sooner. Of `wrong` it reads only the rows it sends to
    review (what the annotator's answers reveal)."""

    sees_truth = True

    def __init__(self, start: int = 60):
        self.start, self.seen, self.was_wrong = start, [], []

    def __call__(self, p: np.ndarray, features: np.ndarray, wrong: np.ndarray) -> np.ndarray:
        top2 = -np.sort(-p, axis=1)[:, :2]
        described = np.column_stack([top2[:, 0] - top2[:, 1], np.eye(p.shape[1])[p.argmax(1)]])
        order = product_order(p, features)
        if len(self.seen) >= self.start and 0 < sum(self.was_wrong) < len(self.was_wrong):
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=1.0, max_iter=1000).fit(np.array(self.seen), np.array(self.was_wrong))
            order = np.argsort(-model.predict_proba(described)[:, 1], kind="stable")
        for row in order[:BATCH]:
            self.seen.append(described[row])
            self.was_wrong.append(int(wrong[row]))
        return order


# -- reference points, not ideas (--references): where a better order, or a better learner, would save actions --

class WrongFirst:
    """The product's learner reviewed with every wrong suggestion first, smallest
    margin first among them, so every action is a correction. A reference, not a lower bound:
    a learner taught only by its mistakes sees a skewed sample of the data, and the product's
    order (which also confirms right suggestions near the boundaries) can need fewer actions."""

    sees_truth = True  # `simulate` passes which open rows' suggestions are wrong

    def __call__(self, p: np.ndarray, features: np.ndarray, wrong: np.ndarray) -> np.ndarray:
        top2 = -np.sort(-p, axis=1)[:, :2]
        by_margin = np.argsort(top2[:, 0] - top2[:, 1], kind="stable")
        return np.concatenate([by_margin[wrong[by_margin]], by_margin[~wrong[by_margin]]])


def cross_validated_curve(arrays: Arrays, folds: int = 5) -> list[tuple[float, float]]:
    """A classifier that has seen 80% of the labels: each item's probabilities from a logistic
    regression (C 10, chosen on digits) fitted on the other folds' items, centred and normalised
    features; the items then reviewed smallest margin first, in batches, and nothing learnt from
    them. What these features allow a learner that knows most of the answers already."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = _centred(arrays.features.astype(np.float64))
    folds = max(2, min(folds, int(np.unique(arrays.truth, return_counts=True)[1].min())))  # each fold: every label
    splits = StratifiedKFold(folds, shuffle=True, random_state=0)
    p = cross_val_predict(LogisticRegression(C=10.0, max_iter=3000), x, arrays.truth, cv=splits,
                          method="predict_proba")
    classes = np.unique(arrays.truth)  # columns of p: only the labels the truth uses
    predicted = classes[p.argmax(1)]
    top2 = -np.sort(-p, axis=1)[:, :2]
    by_margin = np.argsort(top2[:, 0] - top2[:, 1], kind="stable")
    wrong = (predicted != arrays.truth)[by_margin]
    n = len(arrays.truth)
    return [(k / n, 1 - wrong[k:].sum() / n) for k in range(0, n + 1, BATCH)]


def learners_on_the_same_items(arrays: Arrays, stages: tuple[int, ...] = (2, 5, 8, 11, 14)) -> list[dict]:
    """The product's replay, stopped after each of `stages` batches: how often the blend, and a
    logistic regression (C 10) and an RBF SVM (C 3) fitted on the same confirmed items, are
    right on the open items. Tells whether a better learner would find more of the errors. (Its
    own replay, not `simulate`'s: that one stops at 99.9% accuracy, before the later stages.)"""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    learner = LiveLearner(arrays.ids, arrays.features, arrays.zero_shot)
    x = learner.votes.features
    label_of: dict[int, int] = {}
    found = []
    for batches in range(max(stages) + 1):
        open_rows = np.flatnonzero(~np.isin(arrays.ids, np.fromiter(label_of, dtype=np.int64)))
        if len(open_rows) < BATCH:
            break
        blended = learner.blend(arrays.ids[open_rows], label_of, None)
        truth = arrays.truth[open_rows]
        if batches in stages and len(set(label_of.values())) > 1:
            examples = learner.rows(np.fromiter(label_of, dtype=np.int64))
            columns = np.fromiter(label_of.values(), dtype=np.int64)
            row = {"reviewed": len(label_of), "blend": float((blended.probabilities.argmax(1) == truth).mean())}
            for name, model in (("logistic_regression", LogisticRegression(C=10.0, max_iter=3000)),
                                ("rbf_svm", SVC(C=3.0))):
                model.fit(x[examples], columns)
                row[name] = float((model.predict(x[open_rows]) == truth).mean())
            found.append({key: round(value, 3) if isinstance(value, float) else value for key, value in row.items()})
        for r in product_order(blended.uncalibrated, x[open_rows])[:BATCH]:
            label_of[int(arrays.ids[open_rows[r]])] = int(arrays.truth[open_rows[r]])
    return found


def flip_view(arrays: Arrays, flipped: Arrays, zero_shot_too: bool = True) -> Arrays:
    """Test-time augmentation: each item's features (and zero-shot probabilities) averaged with
    those of its image mirrored left to right."""
    def stem(path) -> str:  # the copy is stored as PNG whatever the original's format
        return str(Path(str(path)).with_suffix(""))

    row_of = {stem(p): r for r, p in enumerate(flipped.paths)}
    missing = [str(p) for p in arrays.paths if stem(p) not in row_of]
    if missing:
        raise SystemExit(f"the flipped copy has no item for {missing[0]!r}: cannot align the rows")
    rows = np.array([row_of[stem(p)] for p in arrays.paths])
    features = (arrays.features + flipped.features[rows]) / 2
    zero_shot = (arrays.zero_shot + flipped.zero_shot[rows]) / 2 if zero_shot_too else arrays.zero_shot
    return replace(arrays, features=features.astype(np.float32), zero_shot=zero_shot.astype(np.float32))


IDEAS = {  # name: (learner factory, review order, [view])
    "product": (LiveLearner, product_order),
    "product before self-training (tools/learn.py until issue 16's second round)": (Before, product_order),
    "spread (share 0.3, prior 1)": (Spreading, product_order),
    "spread (share 0.6, prior 0.1)": (lambda *a: Spreading(*a, share=0.6, prior=0.1), product_order),
    "least confident first": (Before, least_confident),
    "most entropy first": (Before, most_entropy),
    "diverse batch (cosine <= 0.3)": (Before, diverse),
    "cluster-margin (k-means)": (Before, cluster_margin),
    "signed square root features": (transformed(signed_root), product_order),
    "PCA-whitened features (256)": (transformed(pca_whitened), product_order),
    "probe share 0.85, ridge 0.3": (lambda *a: Before(*a, replace(BEFORE, mix=0.85, ridge=0.3)), product_order),
    # issue 16, second round (bench/results/cpu-learner-ideas-2.json)
    "prior: EM class priors (Saerens)": (with_prior(em_priors), product_order),
    "prior: balanced marginals (OT)": (with_prior(balanced_marginals), product_order),
    "prior: prototypes (share 0.5, scale 20)": (with_prior(prototypes), product_order),
    "prior: prototypes, then the likelier prior": (lambda *a: PriorChosen(*a, prototypes), product_order),
    "prior: balanced marginals, then the likelier prior": (lambda *a: PriorChosen(*a, balanced_marginals),
                                                           product_order),
    "flip TTA (features and zero-shot)": (Before, product_order, "flip"),
    "flip TTA (features only)": (Before, product_order, "flip-features"),
    "self-training (p >= 0.9, weight 0.3)": (SelfTrained, product_order),
    "class-balanced probe": (lambda *a: SelfTrained(*a, threshold=None, balanced=True), product_order),
}
for _threshold in (0.8, 0.9, 0.95):  # the constants, chosen on digits only (fashion-dev and photos-tiny held out)
    for _weight in (0.1, 0.3, 1.0):
        IDEAS[f"self-training (p >= {_threshold}, weight {_weight})"] = (
            lambda *a, t=_threshold, w=_weight: SelfTrained(*a, threshold=t, weight=w), product_order)
IDEAS["self-training (p >= 0.9, weight 0.3) and class-balanced probe"] = (
    lambda *a: SelfTrained(*a, balanced=True), product_order)
IDEAS["prior: prototypes, then the likelier prior, on the product (self-training, class-balanced)"] = (
    lambda *a: PriorChosen(*a, prototypes, learner=LiveLearner), product_order)
for _c in (1.0, 10.0, 100.0):  # chosen on digits only
    IDEAS[f"logistic-regression probe (C {_c:g})"] = (lambda *a, c=_c: LogisticProbe(*a, c=c), product_order)
IDEAS["prior: prototypes, then the likelier prior, and self-training (p >= 0.9, weight 0.3)"] = (
    lambda *a: PriorChosen(*a, prototypes, learner=SelfTrained), product_order)
# third round: against the product's learner (bench/results/cpu-learner-ideas-3.json)
IDEAS["probe ridge and scale by leave-one-out"] = (LeaveOneOutTuned, product_order)
for _beta in (0.5, 1.0, 2.0):  # chosen on digits only
    IDEAS[f"density-weighted margin (beta {_beta:g})"] = (LiveLearner, density_weighted(_beta))
IDEAS["typical first batch (TypiClust), then margin"] = (LiveLearner, TypicalFirst())
# fourth round: against the product until then (trust 3); bench/results/cpu-learner-ideas-4.json
IDEAS["product until the fourth round (probe trust 3)"] = (with_config(), product_order)
for _trust in (0.3, 0.5, 1.0, 2.0):  # chosen on digits only: 1, in the product since
    IDEAS[f"probe trusted sooner (trust {_trust:g})"] = (with_config(trust=_trust), product_order)
IDEAS["votes of 8 neighbours"] = (with_config(k=8), product_order)
IDEAS["votes of 32 neighbours"] = (with_config(k=32), product_order)
IDEAS["votes count sooner (tau 0.5)"] = (with_config(tau=0.5), product_order)
IDEAS["probe share 0.85"] = (with_config(mix=0.85), product_order)
IDEAS["probe trust 1 and share 0.85"] = (with_config(trust=1.0, mix=0.85), product_order)
for _keep in (0.3, 0.5):
    IDEAS[f"momentum (keep {_keep:g} of the last refresh)"] = (momentum(_keep), product_order)
IDEAS["margin order, no cap per label"] = (with_config(), margin_order(1))
IDEAS["margin order, one label at most 0.3 of a batch"] = (with_config(), margin_order(0.3))
IDEAS["confusion-aware order (logistic regression on margin and label)"] = (with_config(), "confusion-aware")


def simulate(arrays: Arrays, factory, order) -> tuple[list[tuple[float, float]], float]:
    """(the curve of (share reviewed, dataset accuracy), seconds per refresh of the suggestions)."""
    if order == "confusion-aware":  # it learns from the replay's reviews: a fresh one for each
        order = ConfusionAware()
    learner = factory(arrays.ids, arrays.features, arrays.zero_shot)
    features = getattr(learner, "votes", None) or learner.base.votes
    n, label_of, curve, seconds = len(arrays.ids), {}, [], []
    while True:
        open_rows = np.array([r for r, i in enumerate(arrays.ids) if int(i) not in label_of], dtype=np.int64)
        if not len(open_rows):
            return curve + [(1.0, 1.0)], float(np.mean(seconds))
        started = time.perf_counter()
        blended = learner.blend(arrays.ids[open_rows], label_of, None)
        seconds.append(time.perf_counter() - started)
        right = blended.probabilities.argmax(1) == arrays.truth[open_rows]
        curve.append((len(label_of) / n, (len(label_of) + right.sum()) / n))
        if curve[-1][1] >= 0.999:
            return curve, float(np.mean(seconds))
        ranked = blended.uncalibrated if blended.uncalibrated is not None else blended.probabilities
        choose = order.first_round if not label_of and hasattr(order, "first_round") else order
        seen = (choose(ranked, features.features[open_rows], ~right) if getattr(choose, "sees_truth", False)
                else choose(ranked, features.features[open_rows]))
        for row in seen[:BATCH]:
            label_of[int(arrays.ids[open_rows[row]])] = int(arrays.truth[open_rows[row]])


def subsets_mean(arrays: Arrays, factory, order, repeats: int, share: float = 0.8) -> dict:
    """The mean figures over `repeats` random subsets (`share` of the items each, seeded), and
    the lowest accuracy against zero-shot on any of them."""
    rng = np.random.default_rng(0)
    results = []
    for _ in range(repeats):
        rows = np.sort(rng.choice(len(arrays.ids), int(share * len(arrays.ids)), replace=False))
        part = Arrays(arrays.ids[rows], arrays.features[rows], arrays.zero_shot[rows], arrays.truth[rows],
                      arrays.paths[rows])
        curve, _ = simulate(part, factory, order)
        results.append(figures(curve, float((part.zero_shot.argmax(1) == part.truth).mean())))
    mean = {key: round(float(np.mean([r[key] if r[key] is not None else 1.0 for r in results])), 3)
            for key in results[0] if key.startswith("actions_for_")}
    mean["min_accuracy_vs_zero_shot"] = min(r["min_accuracy_vs_zero_shot"] for r in results)
    return mean


def figures(curve: list[tuple[float, float]], zero_shot: float) -> dict:
    """`zero_shot`: the plain zero-shot accuracy (an idea that changes the prior starts elsewhere)."""
    result = {f"actions_for_{int(t * 100)}": next((round(f, 3) for f, a in curve if a >= t), None) for t in TARGETS}
    result["start_accuracy"] = round(float(curve[0][1]), 4)
    result["min_accuracy_vs_zero_shot"] = round(float(min(a for _, a in curve) - zero_shot), 4)
    return result


PERFECT_ORDER = "reference: the product's learner, every wrong suggestion first (every action a correction)"
SEEN_80 = "reference: logistic regression that saw 80% of the labels, margin order, learns nothing more"


def report(data: str, name: str, result: dict, zero_shot: float, seconds: float | None = None,
           repeats: int = 0) -> None:
    """One line on stderr: the share of items needed for each target, and the lowest accuracy."""
    targets = "  ".join(f"{int(t * 100)}%: {result[f'actions_for_{int(t * 100)}']}" for t in TARGETS)
    subsets = (" (subsets: " + " / ".join(f"{result['subsets_mean'][f'actions_for_{int(t * 100)}']:.3f}"
                                         for t in TARGETS) + ")") if repeats else ""
    print(f"{data:>14} {name:<40} {targets}{subsets}"
          f"  start: {result['start_accuracy']:.3f} (zero-shot {zero_shot:.3f})"
          f"  min-vs-zs: {result['min_accuracy_vs_zero_shot']:+.3f}"
          + (f"  {seconds:.3f}s/refresh" if seconds is not None else ""), file=sys.stderr, flush=True)


def main() -> None:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--model", default="offline")
    parser.add_argument("--ideas", default="", help="comma-separated substrings of idea names (default: all)")
    parser.add_argument("--cache", type=Path, help="keep each set's arrays here and reuse them in later runs")
    parser.add_argument("--batch", type=int, default=BATCH, help="items per review batch (default %(default)s)")
    parser.add_argument("--references", action="store_true",
                        help="also print reference points: the product's learner with every action a correction, "
                             "a classifier that has seen 80%% of the labels, and other learners on the same items")
    parser.add_argument("--repeats", type=int, default=0,
                        help="also replay each idea on this many random 80%% subsets of each set (mean figures)")
    args = parser.parse_args()
    BATCH = args.batch  # the review orders and the replay read it
    wanted = [w.strip() for w in args.ideas.split(",") if w.strip()]
    ideas = {name: idea for name, idea in IDEAS.items()
             if name.startswith("product") or not wanted or any(w in name for w in wanted)}
    results: dict = {"model": args.model, "batch": BATCH, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="labelchat-ideas-") as tmp:
        for data in args.data:
            arrays = cached(data, args.model, Path(tmp), args.cache)
            zero_shot = float((arrays.zero_shot.argmax(1) == arrays.truth).mean())
            entry = results["datasets"][data.name] = {"items": len(arrays.ids), "zero_shot_accuracy": round(zero_shot, 4),
                                                      "embed_seconds": round(arrays.seconds, 1), "ideas": {}}
            views = {None: arrays}
            if any(len(idea) > 2 for idea in ideas.values()):
                flipped = cached(data, args.model, Path(tmp), args.cache, mirror_of=arrays)
                entry["flipped_embed_seconds"] = round(flipped.seconds, 1)
                views["flip"] = flip_view(arrays, flipped)
                views["flip-features"] = flip_view(arrays, flipped, zero_shot_too=False)
            for name, (factory, order, *view) in ideas.items():
                chosen_view = views[view[0] if view else None]
                curve, seconds = simulate(chosen_view, factory, order)
                entry["ideas"][name] = result = figures(curve, zero_shot)
                result["seconds_per_refresh"] = round(seconds, 4)
                if args.repeats:
                    result["subsets_mean"] = subsets_mean(chosen_view, factory, order, args.repeats)
                report(data.name, name, result, zero_shot, seconds, args.repeats)
            if args.references:
                entry["references"] = references = {}
                curve, _ = simulate(arrays, LiveLearner, WrongFirst())
                references[PERFECT_ORDER] = figures(curve, zero_shot)
                references[SEEN_80] = figures(cross_validated_curve(arrays), zero_shot)
                for name, result in references.items():
                    report(data.name, name, result, zero_shot)
                entry["learners_on_the_same_items"] = same = learners_on_the_same_items(arrays)
                for row in same:
                    print(f"{data.name:>14} right on the open items after {row['reviewed']} reviews: "
                          f"blend {row['blend']:.3f}, logistic regression {row['logistic_regression']:.3f}, "
                          f"RBF SVM {row['rbf_svm']:.3f}", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
