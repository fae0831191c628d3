"""Model versions: what a training run leaves behind, and how a version scores the project.

    <project>/models/<name>/
        head.safetensors    the classifier head (every version)
        tower.safetensors   the fine-tuned image tower (finetune versions)
        version.json        kind, base model, labels, config, metrics, history
        split.json          item ids it trained on, validated on and held out

A probe version scores the base model's cached features with its own head; a
finetune version embeds images with its own tower (cached under the spec
"version:<name>") first. Activating a version re-scores every item with it;
from then on `suggest`, the review loop and auto-accept use it.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from index.errors import LabelchatError
from index.project import Project
from index.types import ModelVersion

from ..models import load_backend, parse_spec
from ..models.base import Backend, ZeroShotHead, head_to_bytes
from ..scoring import Scorer, SuggestReport, score_stale
from .checkpoint import CheckpointError, load_head, load_tensors, read_json, refuse_pickle, write_json

HEAD_FILE, TOWER_FILE, INFO_FILE, SPLIT_FILE = "head.safetensors", "tower.safetensors", "version.json", "split.json"
_backends: dict[tuple[str, str, str], Backend] = {}
_lock = threading.Lock()


class VersionLabelsError(LabelchatError):
    def __init__(self, version: ModelVersion, current: list[str]):
        added = sorted(set(current) - set(version.labels))
        removed = sorted(set(version.labels) - set(current))
        super().__init__(
            f"Model version {version.name} was trained on the labels {list(version.labels)}, but the "
            f"label set is now {current} (added {added or 'none'}, removed {removed or 'none'}). "
            f"It cannot score the new label set; train a new version (labelchat train)."
        )


class VersionFeaturesError(LabelchatError):
    """A version trained on features that this labelchat no longer makes under that model's name."""

    def __init__(self, version: ModelVersion):
        try:
            now = f"that model is now {parse_spec(version.base_model)}, with other features"
        except LabelchatError:
            now = "this labelchat does not know that model"
        super().__init__(
            f"Model version {version.name} was trained on the features of {version.base_model}, which "
            f"labelchat no longer makes ({now}). Train a new version (labelchat train --kind {version.kind})."
        )


def features_are_current(version: ModelVersion) -> bool:
    """Whether the version's base model still makes the features it was trained on: a spec that
    no longer parses to itself was renamed because its features changed (e.g. the offline model)."""
    try:
        return str(parse_spec(version.base_model)) == version.base_model
    except LabelchatError:
        return False


def version_folder(project: Project, version: ModelVersion) -> Path:
    return project.folder / (version.path or f"models/{version.name}")


def features_spec(version: ModelVersion) -> str:
    """Whose cached features this version scores: its base model's (probe) or its own tower's."""
    return f"version:{version.name}" if version.kind == "finetune" else version.base_model


def head_key_of(version: ModelVersion) -> str:
    return f"version:{version.name}"


def load_version_head(project: Project, version: ModelVersion) -> ZeroShotHead:
    return load_head(version_folder(project, version) / HEAD_FILE)


class VersionBackend(Backend):
    """The base model's preprocessing with a fine-tuned image tower."""

    def __init__(self, base: Backend, tower, name: str):
        self.base, self.tower = base, tower.eval().to(base.device)
        self.spec = f"version:{name}"
        self.description = f"{name}: {base.spec} fine-tuned on this project's confirmed labels"
        self.dim, self.device = base.dim, base.device
        self.default_batch_size = base.default_batch_size
        self.pixel_norm = base.pixel_norm

    def preprocess(self, image):
        return self.base.preprocess(image)

    def prepare(self, image):
        return self.base.prepare(image)

    def encode_images(self, pixels) -> np.ndarray:
        import contextlib

        import torch

        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.startswith("cuda") else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            return self.tower(self.model_input(pixels)).float().cpu().numpy().astype(np.float32)

    def zero_shot_head(self, labels, templates):
        raise LabelchatError(f"{self.spec} scores with its trained head; it builds no zero-shot heads.")


def version_backend(project: Project, version: ModelVersion, device: str | None = None) -> Backend:
    """The backend that embeds images for this version, loaded once per process."""
    from ..models.device import pick_device

    device = pick_device(device)
    if version.kind != "finetune":
        return load_backend(version.base_model, device)
    key = (str(project.folder.resolve()), version.name, device)
    with _lock:
        if key not in _backends:
            base = load_backend(version.base_model, device)
            tower = base.trainable_tower()
            state = load_tensors(version_folder(project, version) / TOWER_FILE)
            try:
                tower.load_state_dict(state)
            except RuntimeError as exc:
                raise CheckpointError(
                    f"The tower weights of {version.name} do not fit {version.base_model}: {exc}"
                ) from exc
            _backends[key] = VersionBackend(base, tower, version.name)
        return _backends[key]


def backend_for_features(project: Project, spec: str, device: str | None = None) -> Backend:
    """The model behind a features spec: a version's tower for 'version:<name>', else a base model."""
    if spec.startswith("version:"):
        name = spec.split(":", 1)[1]
        version = next((v for v in project.store.model_versions() if v.name == name), None)
        if version is None:
            raise LabelchatError(f"There is no model version {name!r}; 'labelchat models' lists them.")
        return version_backend(project, version, device)
    return load_backend(spec, device)


# -- the active version ------------------------------------------------------------------


def active_version(project: Project) -> ModelVersion | None:
    return next((v for v in project.store.model_versions() if v.active), None)


def active_version_if_usable(project: Project, on_notice: Callable[[str], None] | None = None) -> ModelVersion | None:
    """The active version, unless the label set has changed since it was trained: then
    zero-shot is used again, and the notice says so (a stale version is never used silently)."""
    version = active_version(project)
    if version is None:
        return None
    current = list(project.store.label_set().names)
    problem = (VersionLabelsError(version, current) if list(version.labels) != current
               else None if features_are_current(version) else VersionFeaturesError(version))
    if problem is not None:
        if on_notice:
            on_notice(f"{problem} Until then, suggestions are zero-shot.")
        return None
    return version


def suggest_with_version(project: Project, version: ModelVersion, *, device: str | None = None,
                         batch_size: int | None = None, on_progress=None, should_stop=None, engine=None):
    """Score every item whose suggestions did not come from this version yet."""
    from ..ray_engine import LOCAL

    started = time.perf_counter()
    store = project.store
    key = head_key_of(version)
    head = load_version_head(project, version)
    if store.get_head(key) is None:
        store.put_head(key, features_spec(version), head_to_bytes(head))
    stale = store.items_without_suggestions_from(key)
    report = SuggestReport(version.name, version.kind, len(head.labels), features_model=features_spec(version),
                           head_key=key, up_to_date=store.item_count() - len(stale))
    if stale:
        missing = set(stale) - store.embedded_item_ids(report.features_model)
        backend = version_backend(project, version, device) if missing else None  # the model only when needed
        scorer = Scorer(store, head, key, version.name, version.kind)
        report.suggested, report.embed = score_stale(
            project, scorer, stale, report.features_model, backend, engine or LOCAL,
            batch_size=batch_size, on_progress=on_progress, should_stop=should_stop,
        )
    report.seconds = time.perf_counter() - started
    return report


# -- export and import -------------------------------------------------------------------


def export_version(project: Project, version_id: int, destination: Path) -> Path:
    version = project.store.model_version(version_id)
    source = version_folder(project, version)
    target = Path(destination).expanduser() / version.name
    if target.exists():
        raise LabelchatError(f"{target} already exists; choose another folder or remove it first.")
    shutil.copytree(source, target)
    return target


def import_version(project: Project, folder: Path) -> ModelVersion:
    """Add an exported version to this project: safetensors only, checked before anything is copied."""
    folder = Path(folder).expanduser()
    info = read_json(folder / INFO_FILE)
    for path in folder.iterdir():
        if path.is_file() and path.suffix != ".json":
            refuse_pickle(path)
    head = load_head(folder / HEAD_FILE)
    if info.get("kind") == "finetune":
        load_tensors(folder / TOWER_FILE)
    if tuple(head.labels) != tuple(info.get("labels", ())):
        raise CheckpointError(f"{folder} is inconsistent: its head's labels differ from {INFO_FILE}'s.")
    name = _free_name(project, f"{info.get('name', 'imported')}-imported")
    shutil.copytree(folder, project.models_dir / name)
    return project.store.add_model_version(
        name=name, kind=info["kind"], base_model=info["base_model"], labels=list(head.labels),
        path=f"models/{name}", config=info.get("config", {}), metrics=info.get("metrics", {}),
    )


def _free_name(project: Project, name: str) -> str:
    taken = {v.name for v in project.store.model_versions()}
    candidate, n = name, 2
    while candidate in taken or (project.models_dir / candidate).exists():
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def next_version_name(project: Project, kind: str) -> str:
    return _free_name(project, f"v{len(project.store.model_versions()) + 1}-{kind}")


def save_version(project: Project, *, kind: str, base_model: str, head: ZeroShotHead, tower_state: dict | None,
                 config: dict, metrics: dict, split: dict) -> ModelVersion:
    """Write the version's folder (files first, renamed into place), then its row in the store."""
    from .checkpoint import save_head, save_tensors

    name = next_version_name(project, kind)
    final = project.models_dir / name
    staging = project.models_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    save_head(staging / HEAD_FILE, head)
    if tower_state is not None:
        save_tensors(staging / TOWER_FILE, tower_state)
    info = {"name": name, "kind": kind, "base_model": base_model, "labels": list(head.labels),
            "config": config, "metrics": metrics}
    write_json(staging / INFO_FILE, info)
    write_json(staging / SPLIT_FILE, split)
    staging.rename(final)
    return project.store.add_model_version(name=name, kind=kind, base_model=base_model, labels=list(head.labels),
                                           path=f"models/{name}", config=config, metrics=metrics)
