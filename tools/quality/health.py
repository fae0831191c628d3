"""Dataset health: duplicates (exact, perceptual, and near-identical features across labels),
outliers that fit no label well, and images too small or nearly uniform to be of use.

Near-duplicates and outliers use the project's FAISS index of the same features that suggest
labels; exact and perceptual duplicates are the ones found at ingest. Each finding names the
items, so a person can act on it (reject one of a duplicate pair, correct a label).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np



NEAR_DUPLICATE_COSINE = 0.97  # as in a review batch: two items this alike are the same picture
MIN_SIDE = 32  # pixels: smaller images carry little for a classifier
UNIFORM_STD = 3.0  # grey levels: a picture whose pixels vary less than this is blank or nearly uniform
OUTLIER_SHARE = 0.02  # the items least like any other, at most this share of the project...
OUTLIER_MAX_PROB = 0.5  # ...and only those whose best suggestion is below this: no label fits them well
NEIGHBOURS = 5


@dataclass(frozen=True)
class DuplicatePair:
    item_id: int
    other_id: int
    kind: str  # "perceptual" (hash bits apart) or "features" (cosine of the model's features)
    closeness: float  # Hamming distance in bits, or cosine similarity
    labels: tuple[str | None, str | None]  # their confirmed labels (None: not confirmed)


@dataclass(frozen=True)
class ImageFinding:
    item_id: int
    reason: str  # "too small", "nearly uniform", "fits no label"
    detail: str


@dataclass(frozen=True)
class HealthReport:
    items: int
    exact_duplicates: tuple[tuple[int, int], ...]  # (item, how many places it came from) for items seen twice
    duplicates: tuple[DuplicatePair, ...]  # perceptual at ingest, and feature-level across different labels
    outliers: tuple[ImageFinding, ...]
    poor_images: tuple[ImageFinding, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {"exact_duplicates": len(self.exact_duplicates),
                "perceptual_duplicates": sum(d.kind == "perceptual" for d in self.duplicates),
                "duplicates_across_labels": sum(d.kind == "features" for d in self.duplicates),
                "outliers": len(self.outliers), "poor_images": len(self.poor_images)}


def dataset_health(reviewer) -> HealthReport:
    """Check every item of the reviewer's project (features of its model)."""
    store = reviewer.store
    labels = store.confirmed_labels()
    exact = tuple((item.id, n) for item in store.items() if (n := len(store.origins(item.id))) > 1)
    perceptual = [DuplicatePair(a, b, "perceptual", float(d), (labels.get(a), labels.get(b)))
                  for a, b, d in store.near_duplicates()]
    sims, neighbours = _neighbours(reviewer)
    return HealthReport(store.item_count(), exact, tuple(perceptual + _across_labels(reviewer, sims, neighbours, labels)),
                        tuple(_outliers(reviewer, sims, labels)), tuple(_poor_images(reviewer.project)))


def _neighbours(reviewer) -> tuple[np.ndarray, np.ndarray]:
    _, vectors = reviewer.store.embeddings(reviewer.model)
    sims, ids = reviewer.index().search(vectors, NEIGHBOURS + 1)
    return sims[:, 1:], ids[:, 1:]  # the first is the item itself


def _across_labels(reviewer, sims, neighbours, labels) -> list[DuplicatePair]:
    found = {}
    for row, item_id in enumerate(reviewer.item_ids.tolist()):
        for sim, other in zip(sims[row], neighbours[row].tolist()):
            pair = (min(item_id, other), max(item_id, other))
            a, b = labels.get(pair[0]), labels.get(pair[1])
            if other >= 0 and sim >= NEAR_DUPLICATE_COSINE and a and b and a != b and pair not in found:
                found[pair] = DuplicatePair(pair[0], pair[1], "features", round(float(sim), 4), (a, b))
    return list(found.values())


def _outliers(reviewer, sims, labels) -> list[ImageFinding]:
    if len(sims) < 10:
        return []
    closeness = sims.mean(axis=1)
    best = reviewer.zero_shot.max(axis=1)
    cut = np.quantile(closeness, OUTLIER_SHARE)
    rows = np.flatnonzero((closeness <= cut) & (best < OUTLIER_MAX_PROB))
    return [ImageFinding(int(reviewer.item_ids[r]), "fits no label",
                         f"best zero-shot label {reviewer.labels[int(reviewer.zero_shot[r].argmax())]} at "
                         f"{best[r]:.2f}, mean similarity to its {NEIGHBOURS} nearest images {closeness[r]:.2f}"
                         + (f"; confirmed as {labels[int(reviewer.item_ids[r])]}" if int(reviewer.item_ids[r]) in labels else ""))
            for r in rows[np.argsort(closeness[rows])]]


def _poor_images(project) -> list[ImageFinding]:
    from PIL import Image

    found = []
    for item in project.store.items():
        if min(item.width, item.height) < MIN_SIDE:
            found.append(ImageFinding(item.id, "too small", f"{item.width}x{item.height} pixels (under {MIN_SIDE})"))
            continue
        try:
            with Image.open(project.media.path(item.media_path)) as image:
                image.draft("L", (64, 64))
                grey = np.asarray(image.convert("L").resize((64, 64)), dtype=np.float32)
        except OSError:
            continue  # a missing file is what 'status --check' reports
        if grey.std() < UNIFORM_STD:
            found.append(ImageFinding(item.id, "nearly uniform", f"its pixels vary by {grey.std():.1f} grey levels"))
    return found



