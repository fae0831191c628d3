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
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

import prompts
from index.errors import LabelchatError
from index.project import Project
from index.types import Label

from .models import MODEL_SETTING, load_backend, parse_spec, resolve_spec
from .models.base import Backend, ZeroShotHead, head_from_bytes, head_to_bytes
from .ray_engine import LOCAL, Engine
from .scoring import Scorer, SuggestReport, score_stale  # noqa: F401  (SuggestReport: callers import it from here)

TEMPLATES_FILE = "clip_templates.yaml"
DEFAULT_TEMPLATES = "default"
FALLBACK_SETTING = "fallback_model"  # the model used when the default could not be loaded


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
