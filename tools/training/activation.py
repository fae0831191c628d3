"""Putting a model version to work: `activate` checks it, makes it the project's suggester
(or goes back to zero-shot) and re-scores every item through `tools.zeroshot.suggest`.

It sits above both the versions (what a version is, how it scores) and the
zero-shot scorer (which picks the active version): neither imports this."""

from __future__ import annotations

from dataclasses import dataclass

from index.project import Project
from index.types import ModelVersion

from ..zeroshot import suggest
from .checkpoint import refuse_pickle
from .versions import (
    TOWER_FILE, VersionFeaturesError, VersionLabelsError, features_are_current, load_version_head, version_folder,
)


@dataclass(frozen=True)
class Activation:
    version: ModelVersion | None  # None: back to zero-shot
    rescored: int
    seconds: float


def activate(project: Project, version_id: int | None, *, device: str | None = None,
             on_progress=None) -> Activation:
    """Make a version the one that suggests labels (None: zero-shot again) and re-score every item."""
    store = project.store
    version = None
    if version_id is not None:
        version = store.model_version(version_id)
        current = list(store.label_set().names)
        if list(version.labels) != current:
            raise VersionLabelsError(version, current)
        if not features_are_current(version):
            raise VersionFeaturesError(version)
        load_version_head(project, version)  # refuse damaged or non-safetensors files before switching
        if version.kind == "finetune":
            refuse_pickle(version_folder(project, version) / TOWER_FILE)
    store.activate_model(version_id)
    report = suggest(project, device=device, on_progress=on_progress)
    return Activation(version, report.suggested, report.seconds)
