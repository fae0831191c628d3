"""Suggestions that learn from every decision, without gradient training.

Every confirmed item is an example, and three experts score each item:

1. zero-shot: the head's probabilities z (label texts against the image);
2. a closed-form ridge classifier on the examples' features (scores r);
3. a Tip-Adapter-style cache: an item's k nearest examples vote for their
   labels with weight exp(-beta * (1 - cos)) (smoothed vote shares v).

They are pooled log-linearly,  p ~ exp(a log z + b r + c log v),  with the
weights a, b, c >= 0 fitted after every batch by minimising the negative
log-likelihood of the examples' own labels under their out-of-fold scores
(leave-one-out ridge scores in closed form, votes that never count the
example itself). So the data decides how far to trust zero-shot: on photos
where CLIP is good it keeps its say, on data it does not know the examples
take over, and the fitted weights act as a temperature (the probabilities
are calibrated on confirmed items; bench/labelling.py reports the error).

Classes that no example covers yet keep exactly their zero-shot probability;
the pool shares out only the mass zero-shot gives to covered classes. With
fewer than two covered classes the cache blend  (1 - lam) z + lam v,
lam = W / (W + tau), is used instead. Labels a person rejected for an item
get probability zero for that item. Features are centred (the project's mean
feature removed) before cosine similarity, which separates images that a
CNN's non-negative features make look alike.

bench/labelling.py measured the pool against the fixed blend it replaced
(0.7 ridge + 0.3 cache, per-class trust): the same or fewer actions on every
set, and far fewer where zero-shot is good (see the README's figures).

`ExampleVotes` keeps each item's k nearest examples in memory and updates
them incrementally: after a batch of decisions only the new examples are
compared with every item (one matrix product), so refreshing 100k pending
items takes a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlendConfig:
    k: int = 16  # nearest examples that vote
    beta: float = 5.5  # sharpness of the affinity exp(-beta (1 - cos))
    tau: float = 1.0  # vote weight at which examples and zero-shot count equally (cache blend)
    ridge: float = 1.0  # L2 regularisation of the ridge classifier
    smooth: float = 0.5  # pseudo-votes spread over the labels, so an unvoted label is not impossible
    max_fit: int = 2000  # examples the pool's weights are fitted on (the most recent ones)


@dataclass(frozen=True)
class PoolWeights:
    """How much each expert counts: fitted on the examples, out of fold."""

    zero_shot: float
    ridge: float
    votes: float
    examples: int  # examples the weights were fitted on
    nll: float  # their mean negative log-likelihood under the pool (lower is better)


@dataclass(frozen=True)
class Blended:
    """Probabilities and their parts, row-aligned with the items asked for."""

    probabilities: np.ndarray  # (N, C)
    zero_shot: np.ndarray  # (N, C)
    votes: np.ndarray  # (N, C), normalised to sum to 1 where any example voted
    learned: np.ndarray  # (N, C): what the examples alone say (ridge and votes)
    weight: np.ndarray  # (N,): how far the examples moved the suggestion from zero-shot (0-1)
    neighbor_ids: np.ndarray  # (N, k) example item ids, -1 where fewer exist
    neighbor_sims: np.ndarray  # (N, k)
    pool: PoolWeights | None = None  # None: too few covered classes, the cache blend was used


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


class ExampleVotes:
    """Each item's nearest confirmed examples, kept up to date as examples come and go."""

    def __init__(self, item_ids: np.ndarray, features: np.ndarray, config: BlendConfig = BlendConfig()):
        self.config = config
        order = np.argsort(item_ids, kind="stable")
        self.item_ids = np.asarray(item_ids, dtype=np.int64)[order]  # sorted: rows by searchsorted
        self.row_of = {int(i): r for r, i in enumerate(self.item_ids)}
        features = np.asarray(features, dtype=np.float32)[order]
        self.features = _normalize(features - features.mean(axis=0)) if len(features) > 1 else _normalize(features)
        n = len(self.item_ids)
        self.neighbor_ids = -np.ones((n, config.k), dtype=np.int64)
        self.neighbor_sims = np.full((n, config.k), -np.inf, dtype=np.float32)
        self.examples: set[int] = set()

    def set_examples(self, example_ids) -> None:
        """Bring the example set to exactly `example_ids` (incrementally)."""
        wanted = {int(i) for i in example_ids if int(i) in self.row_of}
        removed = self.examples - wanted
        added = wanted - self.examples
        if removed:
            self._remove(removed)
        if added:
            self._add(sorted(added))

    def _add(self, ids: list[int]) -> None:
        rows = np.array([self.row_of[i] for i in ids])
        sims = self.features @ self.features[rows].T  # (N, new)
        sims[rows, np.arange(len(rows))] = -np.inf  # an example never votes for itself
        new_ids = np.broadcast_to(np.array(ids, dtype=np.int64), sims.shape)
        all_sims = np.concatenate([self.neighbor_sims, sims.astype(np.float32)], axis=1)
        all_ids = np.concatenate([self.neighbor_ids, new_ids], axis=1)
        keep = np.argpartition(-all_sims, self.config.k - 1, axis=1)[:, : self.config.k]
        self.neighbor_sims = np.take_along_axis(all_sims, keep, axis=1)
        self.neighbor_ids = np.take_along_axis(all_ids, keep, axis=1)
        self.examples.update(ids)

    def _remove(self, ids: set[int]) -> None:
        self.examples -= ids
        affected = np.flatnonzero(np.isin(self.neighbor_ids, list(ids)).any(axis=1))
        if not len(affected):
            return
        example_ids = np.array(sorted(self.examples), dtype=np.int64)
        self.neighbor_ids[affected] = -1
        self.neighbor_sims[affected] = -np.inf
        if not len(example_ids):
            return
        rows = np.array([self.row_of[i] for i in example_ids])
        sims = self.features[affected] @ self.features[rows].T
        sims[self.item_ids[affected][:, None] == example_ids[None, :]] = -np.inf  # not itself
        k = min(self.config.k, len(example_ids))
        keep = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        self.neighbor_sims[affected, :k] = np.take_along_axis(sims, keep, axis=1)
        self.neighbor_ids[affected, :k] = example_ids[keep]


    def vote_shares(self, rows: np.ndarray, column_of: dict[int, int], c: int) -> tuple[np.ndarray, np.ndarray]:
        """(votes (len(rows), c) normalised to shares, total vote weight (len(rows),)) of the
        rows' nearest examples, each example voting for its column in `column_of`."""
        ids, sims = self.neighbor_ids[rows], self.neighbor_sims[rows]
        column_of_row = np.full(len(self.item_ids) + 1, -1, dtype=np.int64)  # last slot: "no neighbour"
        for example_id, column in column_of.items():
            if example_id in self.row_of:
                column_of_row[self.row_of[example_id]] = column
        neighbor_rows = np.where(ids >= 0, np.searchsorted(self.item_ids, ids), len(self.item_ids))
        columns = column_of_row[neighbor_rows]
        valid = (columns >= 0) & np.isfinite(sims)
        weights = np.where(valid, np.exp(-self.config.beta * (1.0 - np.where(valid, sims, 1.0))), 0.0)
        n = len(rows)
        flat = (np.arange(n)[:, None] * c + np.where(valid, columns, 0)).ravel()
        votes = np.bincount(flat, weights=weights.ravel(), minlength=n * c).astype(np.float64).reshape(n, c)
        total = votes.sum(axis=1)
        shares = np.divide(votes, total[:, None], out=np.zeros_like(votes), where=total[:, None] > 0)
        return shares, total


class LiveLearner:
    """Zero-shot, a ridge classifier and the example cache, pooled with weights fitted on the examples."""

    def __init__(self, item_ids: np.ndarray, features: np.ndarray, zero_shot: np.ndarray,
                 config: BlendConfig = BlendConfig()):
        """`zero_shot` is row-aligned with `item_ids` (in the order given)."""
        self.config = config
        self.votes = ExampleVotes(item_ids, features, config)
        order = np.argsort(np.asarray(item_ids, dtype=np.int64), kind="stable")
        self.zero_shot = np.asarray(zero_shot, dtype=np.float64)[order]  # sorted like votes.item_ids
        self.log_zero_shot = np.log(np.clip(self.zero_shot, 1e-6, 1.0))
        self._weights = np.ones(3)  # warm start of the next fit

    @property
    def item_ids(self) -> np.ndarray:
        return self.votes.item_ids

    def rows(self, item_ids) -> np.ndarray:
        return np.searchsorted(self.votes.item_ids, np.asarray(item_ids, dtype=np.int64))

    def blend(self, item_ids: np.ndarray, label_of: dict[int, int],
              rejected: dict[int, list[int]] | None = None) -> Blended:
        """Probabilities for the items `item_ids` from the examples in `label_of` (item id ->
        label column); `rejected` maps an item id to the columns a person rejected for it."""
        label_of = {int(i): int(c) for i, c in label_of.items() if int(i) in self.votes.row_of}
        self.votes.set_examples(label_of)
        rows = self.rows(item_ids)
        zero_shot = self.zero_shot[rows]
        n, c = zero_shot.shape
        shares, total = self.votes.vote_shares(rows, label_of, c)
        covered = np.bincount(np.fromiter(label_of.values(), dtype=np.int64, count=len(label_of)),
                              minlength=c) > 0
        pool = None
        if covered.sum() >= 2:
            pool, probabilities, learned = self._pooled(rows, label_of, covered, shares, total)
        else:
            lam = total / (total + self.config.tau)
            probabilities = (1 - lam)[:, None] * zero_shot + lam[:, None] * shares
            learned = shares
        probabilities = _without_rejected(probabilities, item_ids, rejected)
        moved = 0.5 * np.abs(probabilities - zero_shot).sum(axis=1)
        rows_ids = self.votes.neighbor_ids[rows]
        return Blended(probabilities.astype(np.float32), zero_shot.astype(np.float32), shares.astype(np.float32),
                       np.asarray(learned, dtype=np.float32), moved.astype(np.float32),
                       rows_ids, self.votes.neighbor_sims[rows], pool)

    # -- the pool ------------------------------------------------------------------------

    def _pooled(self, rows, label_of, covered, shares, total):
        example_ids = np.array(sorted(label_of), dtype=np.int64)
        example_rows = self.rows(example_ids)
        columns = np.array([label_of[int(i)] for i in example_ids])
        c = len(covered)
        ridge_all, ridge_loo = self._ridge(example_rows, columns, c)
        ridge = ridge_all[rows]
        ex_shares, ex_total = self.votes.vote_shares(example_rows, label_of, c)  # never their own vote
        fit = slice(max(0, len(example_rows) - self.config.max_fit), None)  # ids grow with time: the newest
        experts_fit = (self.log_zero_shot[example_rows][fit], ridge_loo[fit],
                       self._log_votes(ex_shares, ex_total)[fit])
        pool = self._fit_weights(experts_fit, columns[fit], covered)
        weights = np.array([pool.zero_shot, pool.ridge, pool.votes])
        log_votes = self._log_votes(shares, total)
        scores = weights[0] * self.log_zero_shot[rows] + weights[1] * ridge + weights[2] * log_votes
        probabilities = self._share_covered(scores, covered, self.zero_shot[rows])
        learned_scores = weights[1] * ridge + weights[2] * log_votes
        learned = np.where(covered, _softmax(np.where(covered, learned_scores, -np.inf)), 0.0)
        return pool, probabilities, learned

    def _log_votes(self, shares: np.ndarray, total: np.ndarray) -> np.ndarray:
        c = shares.shape[1]
        smooth = self.config.smooth
        return np.log((shares * total[:, None] + smooth / c) / (total[:, None] + smooth))

    @staticmethod
    def _share_covered(scores: np.ndarray, covered: np.ndarray, zero_shot: np.ndarray) -> np.ndarray:
        """Uncovered labels keep their zero-shot probability; the covered ones share the rest by the pool."""
        pooled = _softmax(np.where(covered, scores, -np.inf))
        mass = zero_shot[:, covered].sum(axis=1, keepdims=True)
        return np.where(covered, mass * pooled, zero_shot)

    def _ridge(self, example_rows: np.ndarray, columns: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Ridge scores of every item, and the examples' leave-one-out scores (closed form:
        (s_i - h_i y_i) / (1 - h_i), h_i the leverage). The dual solve when there are fewer
        examples than dimensions, the primal one otherwise: whichever is the smaller system."""
        a = self.votes.features[example_rows].astype(np.float64)
        targets = np.eye(c)[columns]
        n, d = a.shape
        if n < d:
            gram = a @ a.T
            inverse = np.linalg.inv(gram + self.config.ridge * np.eye(n))
            weights = a.T @ (inverse @ targets)
            leverage = np.einsum("ij,ji->i", gram, inverse)
        else:
            inverse = np.linalg.inv(a.T @ a + self.config.ridge * np.eye(d))
            weights = inverse @ (a.T @ targets)
            leverage = np.einsum("ij,jk,ik->i", a, inverse, a, optimize=True)
        scores = self.votes.features @ weights.astype(np.float32)
        leverage = np.clip(leverage, 0.0, 0.99)[:, None]
        loo = (scores[example_rows] - leverage * targets) / (1 - leverage)
        return scores, loo

    def _fit_weights(self, experts: tuple[np.ndarray, ...], columns: np.ndarray, covered: np.ndarray) -> PoolWeights:
        """The non-negative weights that make the examples' own labels most likely (out of fold)."""
        from scipy.optimize import minimize

        stacked = np.stack([e[:, covered] for e in experts])  # (3, n, covered)
        target = np.searchsorted(np.flatnonzero(covered), columns)
        picked = np.arange(len(target))

        def nll(w: np.ndarray) -> tuple[float, np.ndarray]:
            scores = np.tensordot(w, stacked, axes=1)
            p = _softmax(scores)
            loss = -np.log(np.maximum(p[picked, target], 1e-12)).mean()
            residual = p.copy()
            residual[picked, target] -= 1
            return loss, np.einsum("enk,nk->e", stacked, residual) / len(target)

        result = minimize(nll, self._weights, jac=True, method="L-BFGS-B", bounds=[(0.0, 100.0)] * 3)
        self._weights = result.x if np.all(np.isfinite(result.x)) else np.ones(3)
        return PoolWeights(*map(float, self._weights), examples=len(target), nll=float(result.fun))


def _without_rejected(probabilities: np.ndarray, item_ids, rejected: dict[int, list[int]] | None) -> np.ndarray:
    """Rejected labels get probability zero for their item; rows sum to one again."""
    if rejected:
        for r, item_id in enumerate(item_ids):
            for column in rejected.get(int(item_id), ()):
                probabilities[r, column] = 0.0
    c = probabilities.shape[1]
    sums = probabilities.sum(axis=1, keepdims=True)
    return np.divide(probabilities, sums, out=np.full_like(probabilities, 1.0 / c), where=sums > 0)
