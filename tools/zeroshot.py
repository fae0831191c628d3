"""Zero-shot label suggestions: features + a head built from the label texts -> probabilities.

The head (encoded prompts) is cached in the store under a key made of the
model, the labels with their descriptions and prompts, and the templates; a
suggestion remembers that key, so `suggest` recomputes only what a change of
labels, prompts or model made stale. Features come from `embed_items`, which
never encodes an item twice for the same model.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

import prompts
from index.errors import LabelchatError
from index.project import Project
from index.store import Store
from index.types import Label

from .embed import EmbedReport, embed_items
from .models import MODEL_SETTING, load_backend, parse_spec, resolve_spec
from .models.base import Backend, ZeroShotHead, head_from_bytes, head_to_bytes
from .ray_engine import LOCAL, Engine

TEMPLATES_FILE = "clip_templates.yaml"
DEFAULT_TEMPLATES = "default"
TOP_K = 5
MAX_SCORES_PER_CHUNK = 8_000_000  # items x labels held in memory at once
FALLBACK_SETTING = "fallback_model"  # the model used when the default could not be loaded


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


def templates(name: str = DEFAULT_TEMPLATES) -> list[str]:
    ensembles = prompts.load_yaml(TEMPLATES_FILE)["ensembles"]
    if name not in ensembles:
        raise LabelchatError(f"No prompt ensemble {name!r}; known: {', '.join(ensembles)}.")
    return list(ensembles[name])


def check_label_set(labels: Sequence[Label]) -> None:
    if len(labels) < 2:
        shown = f" (only {labels[0].name!r})" if labels else ""
        raise LabelchatError(
            f"Zero-shot suggestions need at least two labels{shown}: with one label every image "
            f"gets probability 1. Add more, e.g. labelchat labels add 'other'."
        )


def head_key(spec: str, labels: Sequence[Label], template_list: Sequence[str]) -> str:
    payload = json.dumps(
        [spec, [[l.name, l.description, list(l.prompts)] for l in labels], list(template_list)]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def zero_shot_head(
    project: Project, backend: Backend, labels: Sequence[Label], template_list: Sequence[str]
) -> tuple[str, ZeroShotHead]:
    """The head for these labels, from the store's cache or built (and cached) now."""
    key = head_key(backend.spec, labels, template_list)
    cached = project.store.get_head(key)
    if cached is not None:
        return key, head_from_bytes(cached)
    head = backend.zero_shot_head(labels, template_list)
    project.store.put_head(key, backend.spec, head_to_bytes(head))
    return key, head


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


def suggest(
    project: Project,
    *,
    model: str | None = None,
    device: str | None = None,
    template_set: str = DEFAULT_TEMPLATES,
    batch_size: int | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    use_trained: bool = True,
    engine: Engine = LOCAL,
) -> SuggestReport:
    """Suggestions for every item whose suggestions are stale or missing: from the project's
    active trained model version when there is one (unless a --model was given, or
    `use_trained` is False, as training itself asks), else zero-shot. `engine` says who embeds
    the images without features: this process, or a Ray cluster."""
    engine = replace(engine, device=device)
    if use_trained and model is None:
        from .training.versions import active_version_if_usable, suggest_with_version

        version = active_version_if_usable(project, on_notice=on_notice)
        if version is not None:
            return suggest_with_version(project, version, device=device, batch_size=batch_size,
                                        on_progress=on_progress, should_stop=should_stop, engine=engine)
    started = time.perf_counter()
    store = project.store
    labels = list(store.label_set().labels)
    check_label_set(labels)
    template_list = templates(template_set)
    spec, implied = resolve_spec(model, store.get_setting(MODEL_SETTING))
    if implied and store.get_setting(FALLBACK_SETTING):
        spec, implied = store.get_setting(FALLBACK_SETTING), False  # tried before: no second notice
    canonical = str(parse_spec(spec))
    key = head_key(canonical, labels, template_list)
    if store.get_head(key) is not None and not store.items_without_suggestions_from(key):
        # Everything is current: answer without loading a model at all.
        return SuggestReport(canonical, "zero-shot", len(labels), up_to_date=store.item_count(),
                             seconds=time.perf_counter() - started, features_model=canonical, head_key=key)
    notices: list[str] = []
    backend = load_backend(spec, device, fallback=implied, on_notice=lambda text: _notice(text, notices, on_notice))
    if implied and backend.spec != canonical:
        store.set_setting(FALLBACK_SETTING, backend.spec)
    key, head = zero_shot_head(project, backend, labels, template_list)
    stale = store.items_without_suggestions_from(key)
    report = SuggestReport(backend.spec, "zero-shot", len(labels), notices=notices,
                           features_model=backend.spec, head_key=key)
    report.up_to_date = store.item_count() - len(stale)
    report.suggested, report.embed = score_stale(
        project, Scorer(store, head, key, backend.spec), stale, backend.spec, backend, engine,
        batch_size=batch_size, on_progress=on_progress, should_stop=should_stop,
    )
    report.seconds = time.perf_counter() - started
    return report


def _notice(text: str, notices: list[str], forward: Callable[[str], None] | None) -> None:
    notices.append(text)
    if forward:
        forward(text)
