"""Similarity search: the items most like an item, a text or an image, through the project's
FAISS index, and the confirmed examples close enough to explain a suggestion.

`SimilaritySearch` is a mixin of the `Reviewer` (tools/review/loop.py): it reads the reviewer's
project, store, model, device, item ids, example votes and current examples, and keeps the
index and the similarity floor it builds once per reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.errors import LabelchatError
from index.project import Project
from index.store import Store
from index.types import Status
from index.vectors import VectorIndex

from ..learn import Blended, ExampleVotes


@dataclass(frozen=True)
class Neighbor:
    item_id: int
    label: str
    similarity: float


class SimilaritySearch:
    """Searches by similarity, for the `Reviewer` that sets the attributes below."""

    project: Project
    store: Store
    model: str  # whose features are indexed
    device: str | None
    item_ids: np.ndarray  # sorted, like votes.item_ids
    votes: ExampleVotes
    current: Blended | None  # the last refresh's suggestions (None before the first)
    example_labels: dict[int, str]  # the confirmed examples at the last refresh
    _index: VectorIndex | None  # see index()
    _floor: float | None  # see similarity_floor()

    def _nearest_examples(self, item_id: int, k: int) -> list[Neighbor]:
        """The k most similar confirmed items that are close enough to explain a suggestion.

        Found through the in-memory example neighbours (centred features) when they are known,
        but shown on the scale that `similar` uses (cosine of the features as indexed), most
        similar first, and only those above `similarity_floor()`: a neighbour no closer than a
        random pair of this project's images explains nothing."""
        found: list[Neighbor] = []
        if self.current is not None and item_id in self.votes.row_of and self.example_labels:
            row = self.votes.row_of[item_id]
            ids = [int(i) for i, s in zip(self.votes.neighbor_ids_of(row), self.votes.neighbor_sims[row])
                   if i >= 0 and np.isfinite(s) and int(i) in self.example_labels]
            if ids:
                found = [Neighbor(i, self.example_labels[i], s) for i, s in self._indexed_similarity(item_id, ids)]
        if not found:
            found = self.similar(item_id, k, confirmed_only=True)
        floor = self.similarity_floor()
        return sorted((n for n in found if n.similarity >= floor), key=lambda n: -n.similarity)[:k]

    def _indexed_similarity(self, item_id: int, others: list[int]) -> list[tuple[int, float]]:
        """Cosine similarity of `item_id` to each of `others`, on the features as indexed (not centred)."""
        ids, vectors = self.store.embeddings(self.model, [item_id, *others])
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        row_of = {int(i): r for r, i in enumerate(ids)}
        if item_id not in row_of:
            return []
        mine = vectors[row_of[item_id]]
        return [(i, float(vectors[row_of[i]] @ mine)) for i in others if i in row_of]

    def similarity_floor(self, sample: int = 400, quantile: float = 0.9) -> float:
        """How similar two images of this project must be to count as alike: the `quantile` of
        the similarities of random pairs (on the indexed scale), measured once per reviewer."""
        if self._floor is None:
            rng = np.random.default_rng(0)
            chosen = rng.choice(self.item_ids, min(sample, len(self.item_ids)), replace=False)
            _, vectors = self.store.embeddings(self.model, [int(i) for i in chosen])
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            sims = vectors @ vectors.T
            pairs = sims[np.triu_indices(len(vectors), k=1)]
            self._floor = float(np.quantile(pairs, quantile)) if len(pairs) else -1.0
        return self._floor

    def similar(self, item_id: int, k: int = 10, *, confirmed_only: bool = False,
                label: str | None = None, status: Status | None = None) -> list[Neighbor]:
        """The k items most like `item_id` (cosine similarity of features), with their labels."""
        if item_id not in self.votes.row_of:
            self.store.get_item(item_id)  # raises UnknownItemError for a wrong id
            raise LabelchatError(f"Item {item_id} has no features for {self.model} (it could not be decoded).")
        _, vector = self.store.embeddings(self.model, [item_id])  # as indexed: not centred
        return self.similar_to_vector(vector[0], k, exclude=item_id,
                                      confirmed_only=confirmed_only, label=label, status=status)

    def similar_to_vector(self, vector: np.ndarray, k: int = 10, *, exclude: int | None = None,
                          confirmed_only: bool = False, label: str | None = None,
                          status: Status | None = None) -> list[Neighbor]:
        """Nearest items through the project's FAISS index, filtered by status and confirmed label."""
        among = None
        if confirmed_only or label is not None:
            status = Status.CONFIRMED
        if status is not None:
            among = self.store.item_ids_where(status=status, label=label)
            if not among:
                return []
        sims, ids = self.index().search(vector[None, :], k + (exclude is not None), among=among)
        found = [(int(i), float(s)) for i, s in zip(ids[0], sims[0]) if i >= 0 and i != exclude][:k]
        labels = self.store.labels_of([i for i, _ in found])
        return [Neighbor(i, labels.get(i) or "", s) for i, s in found]

    def index(self) -> VectorIndex:
        """The FAISS index of this model's features (caught up with the store, or rebuilt, when
        stale; the app, which stores suggestions from a thread, rebuilds in the background too)."""
        if self._index is None:
            self._index = VectorIndex.open(
                self.project.vectors_dir, self.model, self.item_ids,
                lambda: self.store.embeddings(self.model, dtype=None),
                background=getattr(self, "writer", None) is not None,
            )
        return self._index

    def index_problem(self) -> str | None:
        """Why the similarity index could not be rebuilt in the background, for people; None when
        nothing failed (or the index was not opened yet)."""
        index = self._index
        if index is None or index.rebuild_error is None:
            return None
        return (f"The similarity index could not be rebuilt ({index.rebuild_error}). Similar images still "
                "come from the index as it was, with the new images added; the next review session tries "
                "the rebuild again (free some disk space if it is full).")

    @property
    def backend(self):
        """The model itself, loaded only for searches by text or image."""
        from ..training.versions import backend_for_features

        return backend_for_features(self.project, self.model, self.device)

    def similar_to_text(self, text: str, k: int = 10, **filters) -> list[Neighbor]:
        encode = getattr(self.backend, "encode_texts", None)
        if encode is None:
            raise LabelchatError(
                f"Search by text needs a CLIP model; {self.model} cannot compare text with images. "
                f"Use --model openclip:... or hf:..."
            )
        return self.similar_to_vector(encode([text])[0], k, **filters)

    def similar_to_image(self, image, k: int = 10, **filters) -> list[Neighbor]:
        import torch

        features = self.backend.encode_images(torch.stack([self.backend.preprocess(image.convert("RGB"))]))
        return self.similar_to_vector(features[0], k, **filters)
