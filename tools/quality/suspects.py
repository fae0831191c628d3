"""Likely label errors: confirmed items whose label the rest of the data disagrees with.

Every confirmed item gets out-of-fold predicted probabilities: a logistic-regression probe on
the cached features, trained on the other folds only, so no prediction comes from a model that
saw the item's own label. cleanlab (confident learning) turns those into label-quality scores
and the set of items it flags. A label a person kept after seeing it flagged is not flagged
again (`Store.keep_label`), until that decision is undone or the label changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from index.errors import LabelchatError
from index.project import Project

MAX_FOLDS = 5
PCA_DIMS = 256  # features are reduced (unsupervised, no labels) before the probe: seconds at 10k items


@dataclass(frozen=True)
class Suspect:
    item_id: int
    label: str  # its confirmed label
    likely_label: str  # what the out-of-fold probe thinks it is
    score: float  # how likely the label is wrong: 1 - cleanlab's label quality score


@dataclass(frozen=True)
class SuspectReport:
    suspects: tuple[Suspect, ...]  # flagged by cleanlab, most suspicious first
    scored: int  # confirmed items that were scored
    kept: int  # flagged before and kept by a person: not listed
    unscored: dict[str, str] = field(default_factory=dict)  # label -> why its items could not be scored
    ranking: tuple[Suspect, ...] = ()  # every scored item, most suspicious first (for benchmarks)


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, classes: int,
                              seed: int = 0) -> np.ndarray:
    """Probabilities of each class for each row, from probes that never saw that row's label."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = features - features.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    if x.shape[1] > PCA_DIMS and len(x) > PCA_DIMS:
        x = PCA(PCA_DIMS, random_state=seed).fit_transform(x)
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    folds = min(MAX_FOLDS, int(np.bincount(labels, minlength=classes)[np.unique(labels)].min()))
    result = np.zeros((len(x), classes), dtype=np.float64)
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, labels):
        probe = LogisticRegression(C=10.0, max_iter=300, class_weight="balanced")
        probe.fit(x[train], labels[train])
        result[np.ix_(held, probe.classes_)] = probe.predict_proba(x[held])
    return result


def scorable(confirmed: dict[int, str], label_names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The labels whose items can be scored, and why each other label's cannot."""
    counts = {name: 0 for name in label_names}
    for label in confirmed.values():
        if label in counts:
            counts[label] += 1
    unscored = {name: f"only {n} confirmed item{'s' if n != 1 else ''} (at least 2 are needed to "
                      f"check one against the others)" for name, n in counts.items() if 0 < n < 2}
    usable = [name for name, n in counts.items() if n >= 2]
    if len(usable) < 2:
        have = ", ".join(f"{name} {n}" for name, n in counts.items() if n) or "none"
        raise LabelchatError(
            "Finding wrong labels needs at least two labels with two or more confirmed items each "
            f"(confirmed now: {have}). Confirm a few items of another label first.")
    return usable, unscored


def find_suspects(project: Project, features_model: str, *, limit: int | None = None,
                  seed: int = 0) -> SuspectReport:
    """The confirmed items whose labels look wrong, most suspicious first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    store = project.store
    confirmed = store.confirmed_labels()
    usable, unscored = scorable(confirmed, store.label_set().names)
    column = {name: i for i, name in enumerate(usable)}
    ids, features = store.embeddings(features_model, [i for i, l in confirmed.items() if l in column])
    if len(ids) < len(usable) * 2:
        raise LabelchatError(f"Only {len(ids)} confirmed items have features for {features_model}; "
                             "label suggestions first (they compute the features).")
    labels = np.array([column[confirmed[int(i)]] for i in ids])
    probabilities = out_of_fold_probabilities(features, labels, len(usable), seed)
    quality = get_label_quality_scores(labels, probabilities)
    flagged = set(np.flatnonzero(find_label_issues(labels, probabilities)).tolist())
    order = np.argsort(quality, kind="stable")
    ranking = tuple(Suspect(int(ids[r]), usable[labels[r]], usable[int(probabilities[r].argmax())],
                            round(float(1 - quality[r]), 4)) for r in order)
    kept = store.kept_labels()
    listed = [s for r, s in zip(order, ranking) if r in flagged and kept.get(s.item_id) != s.label]
    n_kept = sum(1 for r, s in zip(order, ranking) if r in flagged and kept.get(s.item_id) == s.label)
    return SuspectReport(tuple(listed[:limit] if limit else listed), len(ids), n_kept, unscored, ranking)
