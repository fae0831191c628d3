"""Features -> stored suggestions: what zero-shot and a trained version share.

A `Scorer` turns features into each item's top labels with one head and stores
them; `score_stale` feeds it the items whose suggestions are stale, embedding
those without features first. `SuggestReport` says what a scoring pass did.
Who scores (zero-shot or the active trained version) is chosen in
`tools/zeroshot.suggest`; this module knows neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from index.project import Project
from index.store import Store

from .embed import EmbedReport, embed_items
from .models.base import Backend, ZeroShotHead
from .ray_engine import LOCAL, Engine

TOP_K = 5
MAX_SCORES_PER_CHUNK = 8_000_000  # items x labels held in memory at once


@dataclass
class SuggestReport:
    model: str
    method: str
    labels: int
    suggested: int = 0
    up_to_date: int = 0  # items whose suggestions already came from this head
    embed: EmbedReport | None = None
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    features_model: str = ""  # whose cached features were scored (a trained version may reuse its base's)
    head_key: str = ""  # the stored head the suggestions came from
    examples: int = 0  # confirmed items the stored suggestions learned from (0: the model's own scores)
    refreshed: int = 0  # of the undecided items, how many got new suggestions from those examples
    blend: str = ""  # how they were blended, when the examples chose other than the default



@dataclass(frozen=True)
class Scorer:
    """Features -> stored suggestions (each item's TOP_K labels) for one head."""

    store: Store
    head: ZeroShotHead
    head_key: str
    model: str
    method: str = "zero-shot"

    def __call__(self, item_ids: Sequence[int], features: np.ndarray) -> int:
        """Scores and stores these items; returns how many."""
        chunk = max(1, MAX_SCORES_PER_CHUNK // max(1, len(self.head.labels)))
        for start in range(0, len(item_ids), chunk):
            probabilities = self.head.probabilities(features[start : start + chunk])
            order = np.argsort(-probabilities, axis=1, kind="stable")[:, :TOP_K]
            self.store.put_ranked_suggestions(
                item_ids[start : start + chunk], self.head.labels, order,
                np.take_along_axis(probabilities, order, axis=1),
                model=self.model, method=self.method, head_key=self.head_key,
            )
        return len(item_ids)


def score_stale(
    project: Project, scorer: Scorer, stale: Sequence[int], features_model: str,
    backend: Backend | None = None, engine: Engine = LOCAL, **embed_options,
) -> tuple[int, EmbedReport | None]:
    """(items scored, embedding report) for the `stale` items.

    Items without features are embedded by `backend` (when one is given) and
    scored a batch at a time as their features come, on the thread that stores
    them, while the model encodes the next batch; the rest are scored from the
    features cached in the store. With the Ray `engine`, the cluster embeds them all first
    (`ray_engine`), and every item is scored from the store."""
    scored: list[int] = []
    report = None
    if backend is not None and engine.kind == "ray":
        from .ray_engine import embed_with_ray

        report = embed_with_ray(project, backend, stale, engine, **embed_options)
    elif backend is not None:
        def on_embedded(ids: list[int], vectors: np.ndarray) -> None:
            scorer(ids, vectors)
            scored.extend(ids)

        report = embed_items(project, backend, stale, on_embedded=on_embedded, **embed_options)
    done = set(scored)
    ids, features = project.store.embeddings(features_model, [i for i in stale if i not in done])
    return len(scored) + scorer(ids, features), report
