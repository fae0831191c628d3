"""Suggestions that learn from every decision, without gradient training.

Every confirmed item is an example, and two cheap learners use them:

1. a Tip-Adapter-style cache: an item's k nearest examples vote for their
   labels with weight exp(-beta * (1 - cos)), blended with the zero-shot
   probabilities z as  knn = (1 - lam) z + lam votes/sum(votes),
   lam = W / (W + tau), W the total vote weight;
2. a closed-form ridge classifier on the examples' features, trusted per
   class as that class gathers examples:  probe_c = w_c r_c + (1 - w_c) z_c,
   w_c = n_c / (n_c + trust).

    p = (1 - mix) * knn + mix * probe

The probe learns from more than the confirmed items (self-training): each refresh first
blends as above, then refits the probe with every undecided item whose blended probability
is at least `pseudo_threshold` (0.9) as a pseudo-label of weight 0.3 (a confirmed item
weighs 1), and blends again. Confirmed items are weighted so that each class weighs the same
in total: the review order confirms the confusable classes most, which would otherwise pull
the probe's scores towards them. bench/learner_ideas.py chose both on the digits set and
measured them held out: 95% dataset accuracy after 0.28 of fashion-dev's items instead of
0.30 and after 0.08 of the digits' instead of 0.10 (photos-tiny: the same 0.21 / 0.43); a
refresh costs a second blend.

The examples also check the blend and calibrate it. From `guard_after` examples on, each
refresh scores a few blends (less probe, no cache) on the examples' own
labels, out of fold (votes never count the example itself; ridge scores
are leave-one-out, in closed form), and takes another only when it is
clearly better than the default: where the image features tell the labels
apart worse than zero-shot does, the examples would otherwise pull good
zero-shot suggestions down (bench/learner_stress.py measured a fall of 35
points below zero-shot on such a set; the guard keeps it at zero-shot). The
same examples fit a temperature T, p ~ p^(1/T), so that a suggestion of 0.9
is right about 9 times in 10 (bench/labelling.py reports the calibration
error): bulk approval and auto-accept thresholds rely on it. The review
order ranks by the margins before the temperature, which found the wrong
suggestions a batch sooner on two of the three benchmark sets.

Features are centred (the project's mean feature removed) before cosine
similarity, which separates images that a CNN's non-negative features make
look alike. An item far from every example, or of a class nobody has
confirmed yet, keeps its zero-shot suggestion, so classes with few examples
never lose all probability. Labels a person rejected for an item get
probability zero for that item. bench/labelling.py measures the choices:
on fashion-dev (offline backend) the probe and centring took the actions
needed for 95% dataset accuracy from 44% of the items to 30%.

`ExampleVotes` keeps each item's k nearest examples in memory and updates
them incrementally: after a batch of decisions only the new examples are
compared with every item (one matrix product), so refreshing 100k pending
items takes a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.vectors import normalize


@dataclass(frozen=True)
class BlendConfig:
    k: int = 16  # nearest examples that vote
    beta: float = 5.5  # sharpness of the affinity exp(-beta (1 - cos))
    tau: float = 1.0  # vote weight at which examples and zero-shot count equally
    mix: float = 0.7  # share of the ridge probe in the final probabilities
    ridge: float = 1.0  # L2 regularisation of the probe
    probe_scale: float = 10.0  # inverse temperature of the probe's scores
    trust: float = 1.0  # examples of a class at which its probe and zero-shot count equally (was 3 until
    # bench/learner_ideas.py's fourth round: 1, chosen on digits, saved a batch at 95% or 98% on every set)
    guard_after: int = 20  # examples from which the guard may choose another blend
    guard_margin: float = 0.05  # how much lower (nats per example) another blend's loss must be
    pseudo_threshold: float | None = 0.9  # self-training: undecided items this sure of a label also fit the probe
    pseudo_weight: float = 0.3  # each such pseudo-label's weight in the probe (a confirmed item's is 1)
    pseudo_cap: int = 1000  # at most this many pseudo-labels (the surest), so the probe's solve stays small
    balanced_probe: bool = True  # each class's confirmed items weigh the same in total in the probe


@dataclass(frozen=True)
class BlendChoice:
    """The blend the guard chose, and why: the examples' out-of-fold loss under each."""

    mix: float  # share of the probe
    cache: bool  # whether the examples' votes count
    examples: int  # examples it was judged on (0: too few, the default was kept unjudged)
    loss: float | None  # mean negative log-likelihood of the examples' labels under it
    default_loss: float | None  # the same under the default blend
    temperature: float = 1.0  # p ~ p^(1/T), fitted on the same examples: probabilities that mean what they say

    @property
    def is_default(self) -> bool:
        return self.cache and self.loss == self.default_loss

    def describe(self) -> str:
        if self.is_default:
            return "zero-shot blended with the confirmed examples"
        if self.mix == 0 and not self.cache:
            return "zero-shot alone: on the confirmed images it predicts their labels better than the examples do"
        return f"less weight on the examples (probe share {self.mix:.2f}): the confirmed images say so"


@dataclass(frozen=True)
class Blended:
    """Probabilities and their parts, row-aligned with the items asked for."""

    probabilities: np.ndarray  # (N, C)
    zero_shot: np.ndarray  # (N, C)
    votes: np.ndarray  # (N, C), normalised to sum to 1 where any example voted
    learned: np.ndarray  # (N, C): what the examples alone say (probe and votes)
    weight: np.ndarray  # (N,) lam: how much the examples' votes count
    neighbor_rows: np.ndarray  # (N, k) the nearest examples as rows of `row_ids`, -1 where fewer exist
    neighbor_sims: np.ndarray  # (N, k)
    row_ids: np.ndarray  # the learner's item ids by row (never changed: shared, not copied)
    choice: BlendChoice | None = None  # None: no examples
    uncalibrated: np.ndarray | None = None  # (N, C) before the temperature: what the review order ranks by

    def neighbor_ids_at(self, rows) -> np.ndarray:
        """(len(rows), k) item ids of those rows' nearest examples, -1 where fewer exist: ids
        only for the rows asked (mapping all of a million items' took seconds)."""
        return _ids_of_rows(self.row_ids, self.neighbor_rows[rows])

    @property
    def neighbor_ids(self) -> np.ndarray:
        return self.neighbor_ids_at(slice(None))


class RowsOf:
    """Item id -> row of a sorted id array, by binary search: a dict of a million ids took half
    a second to build and 100 MB (bench/scale.py's reviewer_open_s)."""

    def __init__(self, sorted_ids: np.ndarray):
        self.ids = sorted_ids

    def rows(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, whether each id is known) of many ids at once."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        if not len(self.ids):
            return np.zeros(len(item_ids), dtype=np.int64), np.zeros(len(item_ids), dtype=bool)
        rows = np.minimum(np.searchsorted(self.ids, item_ids), len(self.ids) - 1)
        return rows, self.ids[rows] == item_ids

    def get(self, item_id: int, default: int | None = None) -> int | None:
        rows, known = self.rows(np.array([item_id]))
        return int(rows[0]) if known[0] else default

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, (int, np.integer)) and self.get(int(item_id)) is not None

    def __getitem__(self, item_id: int) -> int:
        row = self.get(item_id)
        if row is None:
            raise KeyError(item_id)
        return row

    def __len__(self) -> int:
        return len(self.ids)


def _ids_of_rows(item_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.where(rows >= 0, item_ids[rows], -1)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


class ExampleVotes:
    """Each item's nearest confirmed examples, kept up to date as examples come and go.

    Neighbours are kept as rows (into `features`), not item ids: votes are then plain
    array lookups, where mapping 16 million ids back to rows took most of a refresh at
    1,000,000 items (bench/scale.py)."""

    def __init__(self, item_ids: np.ndarray, features: np.ndarray, config: BlendConfig = BlendConfig()):
        self.config = config
        order = np.argsort(item_ids, kind="stable")
        self.item_ids = np.asarray(item_ids, dtype=np.int64)[order]  # sorted: rows by searchsorted
        self.row_of = RowsOf(self.item_ids)
        features = np.asarray(features)
        if not np.all(order[1:] > order[:-1]):  # the store reads them sorted: no copy then
            features = features[order]
        # Kept as given (float16, memory-mapped) until an example needs the centred copy: opening
        # a fresh project of a million items then reads no feature (bench/scale.py reviewer_open_s).
        self._raw = features
        self._features: np.ndarray | None = None
        self._mean: np.ndarray | None = None
        self._neighbor_rows: np.ndarray | None = None
        self._neighbor_sims: np.ndarray | None = None
        self.examples: set[int] = set()

    @property
    def features(self) -> np.ndarray:
        """Every item's features, centred (the project's mean removed) and unit length, float32:
        the one copy, made on first use."""
        if self._features is None:
            centred = self._raw.astype(np.float32)
            if len(centred) > 1:
                centred -= self.mean
            self._features = normalize(centred, in_place=True)
            self._raw = self._features  # the float16 view is no longer needed
        return self._features

    @property
    def has_centred_copy(self) -> bool:
        return self._features is not None

    @property
    def mean(self) -> np.ndarray:
        """The project's mean feature (what centring removes)."""
        if self._mean is None:
            self._mean = (self._raw.mean(axis=0, dtype=np.float64).astype(np.float32) if len(self._raw) > 1
                          else np.zeros(self._raw.shape[1:], dtype=np.float32))
        return self._mean

    def rows_features(self, rows) -> np.ndarray:
        """`features[rows]` without making the centred copy of every item's (a batch's few rows)."""
        if self._features is not None:
            return self._features[rows]
        picked = np.asarray(self._raw[rows], dtype=np.float32)
        if len(self._raw) > 1:
            picked = picked - self.mean
        return normalize(picked, in_place=True)

    @property
    def neighbor_rows(self) -> np.ndarray:
        """(N, k) each item's nearest examples as rows, -1 where fewer exist: a read-only view
        until the first example (no million-row array filled for a fresh project)."""
        return self._neighbor_rows if self._neighbor_rows is not None else self._no_neighbors(len(self.item_ids))[0]

    @property
    def neighbor_sims(self) -> np.ndarray:
        return self._neighbor_sims if self._neighbor_sims is not None else self._no_neighbors(len(self.item_ids))[1]

    def neighbors_at(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(neighbour rows, similarities) of these rows; views, not copies, before any example."""
        if self._neighbor_rows is None:
            return self._no_neighbors(len(rows))
        return self._neighbor_rows[rows], self._neighbor_sims[rows]

    def _no_neighbors(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Read-only (n, k) views of "no neighbour": row -1, similarity -inf (no memory used)."""
        shape = (n, self.config.k)
        return np.broadcast_to(np.int32(-1), shape), np.broadcast_to(np.float32(-np.inf), shape)

    def _writable_neighbors(self) -> None:
        if self._neighbor_rows is None:
            n = len(self.item_ids)
            self._neighbor_rows = np.full((n, self.config.k), -1, dtype=np.int32)
            self._neighbor_sims = np.full((n, self.config.k), -np.inf, dtype=np.float32)

    @property
    def neighbor_ids(self) -> np.ndarray:
        return self.neighbor_ids_of(slice(None))

    def neighbor_ids_of(self, rows) -> np.ndarray:
        """(len(rows), k) item ids of those rows' nearest examples, -1 where fewer exist."""
        return _ids_of_rows(self.item_ids, self.neighbor_rows[rows])

    def set_examples(self, example_ids) -> None:
        """Bring the example set to exactly `example_ids` (incrementally)."""
        ids = np.fromiter((int(i) for i in example_ids), dtype=np.int64)
        wanted = set(ids[self.row_of.rows(ids)[1]].tolist())
        removed = self.examples - wanted
        added = wanted - self.examples
        if removed:
            self._remove(removed)
        if added:
            self._add(sorted(added))

    def _add(self, ids: list[int]) -> None:
        """Compare the new examples with every item; only rows where one of them is closer than
        the farthest kept neighbour change (after the first few batches, a minority)."""
        rows = self.row_of.rows(np.array(ids, dtype=np.int64))[0]  # every one known: see set_examples
        self._writable_neighbors()
        sims = self.features @ self.features[rows].T  # (N, new)
        sims[rows, np.arange(len(rows))] = -np.inf  # an example never votes for itself
        touched = np.flatnonzero(sims.max(axis=1) > self.neighbor_sims.min(axis=1))
        if len(touched):
            all_sims = np.concatenate([self.neighbor_sims[touched], sims[touched]], axis=1)
            all_rows = np.concatenate([self.neighbor_rows[touched], np.broadcast_to(rows, (len(touched), len(rows)))],
                                      axis=1)
            keep = np.argpartition(-all_sims, self.config.k - 1, axis=1)[:, : self.config.k]
            self.neighbor_sims[touched] = np.take_along_axis(all_sims, keep, axis=1)
            self.neighbor_rows[touched] = np.take_along_axis(all_rows, keep, axis=1)
        self.examples.update(ids)

    def _remove(self, ids: set[int]) -> None:
        self.examples -= ids
        gone = self.row_of.rows(np.fromiter(ids, dtype=np.int64, count=len(ids)))[0]
        self._writable_neighbors()
        affected = np.flatnonzero(np.isin(self.neighbor_rows, gone).any(axis=1))
        if not len(affected):
            return
        self.neighbor_rows[affected] = -1
        self.neighbor_sims[affected] = -np.inf
        if not self.examples:
            return
        example_rows = np.sort(self.row_of.rows(np.fromiter(self.examples, dtype=np.int64, count=len(self.examples)))[0])
        sims = self.features[affected] @ self.features[example_rows].T
        sims[affected[:, None] == example_rows[None, :]] = -np.inf  # not itself
        k = min(self.config.k, len(example_rows))
        keep = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        self.neighbor_sims[affected, :k] = np.take_along_axis(sims, keep, axis=1)
        self.neighbor_rows[affected, :k] = example_rows[keep]

    def vote_shares(self, rows: np.ndarray, column_of: dict[int, int], c: int) -> tuple[np.ndarray, np.ndarray]:
        """(votes (len(rows), c) normalised to shares, total vote weight (len(rows),)) of the
        rows' nearest examples, each example voting for its column in `column_of`."""
        if not column_of:  # nobody has voted yet (opening a fresh project of a million items)
            return np.zeros((len(rows), c)), np.zeros(len(rows))
        neighbors, sims = self.neighbor_rows[rows], self.neighbor_sims[rows]
        column_of_row = np.full(len(self.item_ids) + 1, -1, dtype=np.int64)  # last slot: what row -1 reads
        example_rows, known = self.row_of.rows(np.fromiter(column_of, dtype=np.int64, count=len(column_of)))
        column_of_row[example_rows[known]] = np.fromiter(column_of.values(), dtype=np.int64, count=len(column_of))[known]
        columns = column_of_row[neighbors]
        weights = np.exp(self.config.beta * (sims - 1.0))  # a missing neighbour (-inf) weighs 0
        weights[columns < 0] = 0.0
        n = len(neighbors)
        flat = (np.arange(n)[:, None] * c + np.maximum(columns, 0)).ravel()
        votes = np.bincount(flat, weights=weights.ravel(), minlength=n * c).astype(np.float64).reshape(n, c)
        total = votes.sum(axis=1)
        shares = np.divide(votes, total[:, None], out=np.zeros_like(votes), where=total[:, None] > 0)
        return shares, total


class LiveLearner:
    """Zero-shot, the example cache and a ridge probe, blended, with the guard of the module docstring."""

    def __init__(self, item_ids: np.ndarray, features: np.ndarray, zero_shot: np.ndarray,
                 config: BlendConfig = BlendConfig()):
        """`zero_shot` is row-aligned with `item_ids` (in the order given)."""
        self.config = config
        self.votes = ExampleVotes(item_ids, features, config)
        order = np.argsort(np.asarray(item_ids, dtype=np.int64), kind="stable")
        self.zero_shot = np.asarray(zero_shot, dtype=np.float64)[order]  # sorted like votes.item_ids

    @property
    def item_ids(self) -> np.ndarray:
        return self.votes.item_ids

    def rows(self, item_ids) -> np.ndarray:
        return np.searchsorted(self.votes.item_ids, np.asarray(item_ids, dtype=np.int64))

    def blend(self, item_ids: np.ndarray, label_of: dict[int, int],
              rejected: dict[int, list[int]] | None = None) -> Blended:
        """Probabilities for the items `item_ids` from the examples in `label_of` (item id ->
        label column); `rejected` maps an item id to the columns a person rejected for it."""
        ids = np.fromiter((int(i) for i in label_of), dtype=np.int64, count=len(label_of))
        columns = np.fromiter((int(c) for c in label_of.values()), dtype=np.int64, count=len(label_of))
        known = self.votes.row_of.rows(ids)[1]
        label_of = dict(zip(ids[known].tolist(), columns[known].tolist()))
        self.votes.set_examples(label_of)
        pseudo = None
        if self.config.pseudo_threshold is not None and len(label_of) >= 2:
            others = self.item_ids[~np.isin(self.item_ids, np.fromiter(label_of, dtype=np.int64, count=len(label_of)))]
            first = self._blend(others, label_of, rejected, None).probabilities
            best = first.max(axis=1)
            sure = np.flatnonzero(best >= self.config.pseudo_threshold)
            sure = sure[np.argsort(-best[sure], kind="stable")[: self.config.pseudo_cap]]
            pseudo = (self.rows(others[sure]), first[sure].argmax(axis=1))
        return self._blend(item_ids, label_of, rejected, pseudo)

    def _blend(self, item_ids: np.ndarray, label_of: dict[int, int], rejected: dict[int, list[int]] | None,
               pseudo: tuple[np.ndarray, np.ndarray] | None) -> Blended:
        """`blend`, the probe also fitted on `pseudo` (rows, label columns) if given."""
        rows = self.rows(item_ids)
        if not label_of:
            return self._zero_shot_only(item_ids, rows, rejected)
        zero_shot = self.zero_shot[rows]
        c = zero_shot.shape[1]
        shares, total = self.votes.vote_shares(rows, label_of, c)
        lam = total / (total + self.config.tau)
        probe = self._probe(label_of, c, pseudo)
        choice = self._choose(label_of, probe, c)
        mix, cache = choice.mix, choice.cache
        lam_used = lam if cache else np.zeros_like(lam)
        knn = (1 - lam_used)[:, None] * zero_shot + lam_used[:, None] * shares
        if probe is None:
            probabilities, learned = knn, shares
        else:
            scores, trust = probe
            probe_rows = _softmax(self.config.probe_scale * scores[rows])
            probe_blend = trust * probe_rows + (1 - trust) * zero_shot
            probabilities = (1 - mix) * knn + mix * probe_blend
            learned = (1 - self.config.mix) * shares + self.config.mix * probe_rows
        if choice.temperature != 1.0:
            uncalibrated = _without_rejected(probabilities.copy(), item_ids, rejected).astype(np.float32)
            probabilities = _without_rejected(_tempered(probabilities, choice.temperature), item_ids, rejected)
            probabilities = probabilities.astype(np.float32)
        else:  # no temperature: one array for both (one copy fewer of every row)
            probabilities = uncalibrated = _without_rejected(probabilities.copy(), item_ids, rejected).astype(np.float32)
        return Blended(probabilities, zero_shot.astype(np.float32), shares.astype(np.float32),
                       np.asarray(learned, dtype=np.float32), lam.astype(np.float32),
                       *self.votes.neighbors_at(rows), self.votes.item_ids, choice, uncalibrated)

    def _zero_shot_only(self, item_ids: np.ndarray, rows: np.ndarray,
                        rejected: dict[int, list[int]] | None) -> Blended:
        """The blend before any example: zero-shot as it is, in one float32 copy (a fresh project
        of a million items took 0.65 s of float64 copies here, for the same numbers)."""
        every_row = len(rows) == len(self.item_ids) and np.array_equal(rows, np.arange(len(rows)))
        zero_shot = (self.zero_shot if every_row else self.zero_shot[rows]).astype(np.float32)
        probabilities = _without_rejected(zero_shot.copy(), item_ids, rejected) if rejected else zero_shot
        nothing = np.zeros(zero_shot.shape, dtype=np.float32)  # never touched: no memory used
        return Blended(probabilities, zero_shot, nothing, nothing, np.zeros(len(rows), dtype=np.float32),
                       *self.votes.neighbors_at(rows), self.votes.item_ids, None, probabilities)

    def _probe(self, label_of: dict[int, int], c: int, pseudo: tuple[np.ndarray, np.ndarray] | None = None):
        """(ridge scores of every item (N, C), with the examples' rows left out of fold; each
        class's trust in them (1, C)), or None with fewer than two examples. `pseudo`: (rows,
        columns) of undecided items fitted too, at weight `pseudo_weight` (self-training)."""
        if len(label_of) < 2:
            return None
        example_ids = np.array(sorted(label_of), dtype=np.int64)
        example_rows = self.rows(example_ids)
        columns = np.array([label_of[int(i)] for i in example_ids])
        counts = np.bincount(columns, minlength=c)
        weights = balanced_weights(columns, c) if self.config.balanced_probe else np.ones(len(columns))
        if pseudo is not None and len(pseudo[0]):
            weights = np.concatenate([weights, np.full(len(pseudo[0]), self.config.pseudo_weight)])
            scores, loo = self._ridge(np.concatenate([example_rows, pseudo[0]]), np.concatenate([columns, pseudo[1]]),
                                      c, weights, confirmed=len(example_rows))
        else:
            scores, loo = self._ridge(example_rows, columns, c, weights)
        scores[example_rows] = loo  # an example is only ever scored by a probe that did not see it
        return scores, (counts / (counts + self.config.trust))[None, :]

    def _ridge(self, example_rows: np.ndarray, columns: np.ndarray, c: int, weights: np.ndarray | None = None,
               confirmed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ridge scores of every item, and the examples' leave-one-out scores (closed form:
        (s_i - h_i y_i) / (1 - h_i), h_i the leverage). The dual solve when there are fewer
        examples than dimensions, the primal one otherwise: whichever is the smaller system.
        `weights`: each row's weight in the squared loss (default 1); leave-one-out scores are
        given for the first `confirmed` rows (default all)."""
        root = None if weights is None else np.sqrt(np.asarray(weights, dtype=np.float64))[:, None]
        a = self.votes.features[example_rows].astype(np.float64)
        targets = np.eye(c)[columns]
        if root is not None:
            a, targets = a * root, targets * root
        n, d = a.shape
        m = n if confirmed is None else confirmed  # only these rows' leverages are needed
        if n < d:
            gram = a @ a.T
            inverse = np.linalg.inv(gram + self.config.ridge * np.eye(n))
            solved = a.T @ (inverse @ targets)
            leverage = np.einsum("ij,ji->i", gram[:m], inverse[:, :m])
        else:
            inverse = np.linalg.inv(a.T @ a + self.config.ridge * np.eye(d))
            solved = inverse @ (a.T @ targets)
            leverage = np.einsum("ij,ij->i", a[:m] @ inverse, a[:m])
        scores = (self.votes.features @ solved.astype(np.float32)).astype(np.float64)
        leverage = np.clip(leverage, 0.0, 0.99)[:, None]
        loo = (scores[example_rows[:m]] - leverage * np.eye(c)[columns[:m]]) / (1 - leverage)
        return scores, loo

    def _choose(self, label_of: dict[int, int], probe, c: int) -> BlendChoice:
        """The default blend, unless another predicts the examples' own labels clearly better."""
        config = self.config
        default = (config.mix, True)
        if len(label_of) < config.guard_after or probe is None:
            return BlendChoice(*default, examples=0, loss=None, default_loss=None)
        example_ids = np.array(sorted(label_of), dtype=np.int64)
        rows = self.rows(example_ids)
        columns = np.array([label_of[int(i)] for i in example_ids])
        zero_shot = self.zero_shot[rows]
        shares, total = self.votes.vote_shares(rows, label_of, c)  # an example never votes for itself
        lam = (total / (total + config.tau))[:, None]
        scores, trust = probe
        probe_blend = trust * _softmax(config.probe_scale * scores[rows]) + (1 - trust) * zero_shot

        def blended(mix: float, cache: bool) -> np.ndarray:
            knn = (1 - lam) * zero_shot + lam * shares if cache else zero_shot
            p = (1 - mix) * knn + mix * probe_blend
            return p / p.sum(axis=1, keepdims=True)

        def loss(mix: float, cache: bool) -> float:
            return _nll(blended(mix, cache), columns)

        candidates = {default: loss(*default)}
        for other in ((config.mix / 2, True), (0.0, True), (0.0, False)):
            candidates[other] = loss(*other)
        best = min(candidates, key=candidates.get)
        if candidates[best] > candidates[default] - config.guard_margin:
            best = default
        temperature = _fit_temperature(blended(*best), columns)
        return BlendChoice(*best, examples=len(columns), loss=candidates[best], default_loss=candidates[default],
                           temperature=temperature)


def balanced_weights(columns: np.ndarray, c: int) -> np.ndarray:
    """Each example's weight so that every class present weighs the same in total (the mean
    weight stays 1): the review order confirms confusable classes most."""
    counts = np.bincount(columns, minlength=c)
    return len(columns) / (np.count_nonzero(counts) * counts[columns])


def _nll(probabilities: np.ndarray, columns: np.ndarray) -> float:
    picked = probabilities[np.arange(len(columns)), columns]
    return float(-np.log(np.maximum(picked, 1e-9)).mean())


def _tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    scores = np.log(np.maximum(probabilities, 1e-12)) / temperature
    return _softmax(scores)


def _fit_temperature(probabilities: np.ndarray, columns: np.ndarray) -> float:
    """The temperature (0.25-4) under which the examples' out-of-fold probabilities are most likely."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(lambda log_t: _nll(_tempered(probabilities, float(np.exp(log_t))), columns),
                            bounds=(np.log(0.25), np.log(4.0)), method="bounded", options={"xatol": 1e-3})
    return float(np.exp(found.x))


def _without_rejected(probabilities: np.ndarray, item_ids, rejected: dict[int, list[int]] | None) -> np.ndarray:
    """Rejected labels get probability zero for their item; rows sum to one again."""
    if rejected:  # a few items with rejections among up to a million rows: look each one up
        ids = np.asarray(item_ids, dtype=np.int64)
        order = np.arange(len(ids)) if np.all(ids[1:] >= ids[:-1]) else np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        for item_id, columns in rejected.items():
            j = int(np.searchsorted(sorted_ids, item_id))
            if j < len(sorted_ids) and sorted_ids[j] == item_id and len(columns):
                probabilities[order[j], list(columns)] = 0.0
    c = probabilities.shape[1]
    sums = probabilities.sum(axis=1, keepdims=True)
    return np.divide(probabilities, sums, out=np.full_like(probabilities, 1.0 / c), where=sums > 0)
