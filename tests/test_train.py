"""Training: probes and fine-tunes into model versions that re-score the project.

Real data (the demo photos), real SQLite projects and real safetensors files.
The probe runs on the offline backend's real features; fine-tuning runs a
tiny random CLIP for a few steps on the CPU (and on CUDA when there is one).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.project import Project
from index.types import Action, JobStatus, Label, Status
from tools.ingest import ingest
from tools.training import (
    LabelsChangedError,
    NotEnoughExamplesError,
    NothingToResumeError,
    TrainConfig,
    TrainingBusyError,
    TrainingCancelled,
    VersionLabelsError,
    activate,
    import_version,
    train,
)
from tools.training.checkpoint import CheckpointError, load_tensors
from tools.training.run import TrainingLock, checkpoint_dir
from tools.training.versions import version_folder
from tools.zeroshot import suggest

LABELS = ["fish", "mammal", "monument", "tool", "windmill"]
TINY = "openclip:tiny/random"
LABELCHAT = Path(sys.executable).parent / "labelchat"


def _truth(project: Project) -> dict[int, str]:
    return {item.id: Path(project.store.origins(item.id)[0].source).parent.name for item in project.store.items()}


def _confirm(project: Project, per_label: int, seed: int = 0) -> dict[int, str]:
    """Confirm `per_label` items of each label with their true label; returns the truth of all items."""
    truth = _truth(project)
    rng = np.random.default_rng(seed)
    rows = []
    for label in LABELS:
        ids = sorted(i for i, l in truth.items() if l == label)
        rows += [(int(i), Action.ACCEPT, label) for i in rng.permutation(ids)[:per_label]]
    project.store.decide_many(rows, actor="test", auto=False)
    return truth


@pytest.fixture(scope="module")
def offline_photos(tmp_path_factory, photos_dir) -> Path:
    """The demo photos with real offline-backend features and zero-shot suggestions, built once."""
    folder = tmp_path_factory.mktemp("offline") / "project"
    with Project(folder) as project:
        ingest(project, [str(photos_dir)])
        project.store.set_labels([Label(n) for n in LABELS])
        project.store.set_setting("model", "offline")
        suggest(project)
    return folder


@pytest.fixture
def photos(offline_photos, tmp_path):
    shutil.copytree(offline_photos, tmp_path / "photos")
    with Project(tmp_path / "photos") as project:
        yield project


@pytest.fixture
def tiny(project, photos_dir):
    ingest(project, [str(photos_dir)])
    project.store.set_labels([Label(n) for n in LABELS])
    project.store.set_setting("model", TINY)
    suggest(project)
    _confirm(project, 6)
    return project


def _accuracy(project: Project, truth: dict[int, str], items) -> float:
    top = project.store.top_suggestions()
    return float(np.mean([top[i].label == truth[i] for i in items]))


def tiny_finetune(**overrides) -> TrainConfig:
    return TrainConfig(**{"kind": "finetune", "epochs": 2, "device": "cpu", "batch_size": 8, **overrides})


# -- the probe -------------------------------------------------------------------------


def test_probe_on_real_features_beats_zero_shot_on_held_out_photos(photos):
    truth = _confirm(photos, 8)
    pending = photos.store.item_ids_where(status=Status.PENDING)
    zero_shot = _accuracy(photos, truth, pending)
    report = train(photos, TrainConfig(kind="probe", holdout=0.25))
    metrics = report.version.metrics
    assert metrics["holdout_items"] == 10 and metrics["train_items"] == 30
    assert metrics["accuracy"] >= metrics["zero_shot_accuracy"]
    assert sum(map(sum, report.metrics.confusion)) == 10
    assert {c.label for c in report.metrics.per_class} == set(LABELS)
    activate(photos, report.version.id)
    assert _accuracy(photos, truth, pending) > zero_shot  # on the 54 items nobody confirmed
    top = photos.store.top_suggestions()
    assert {top[i].model for i in pending} == {report.version.name}
    assert {top[i].method for i in pending} == {"probe"}
    history = metrics["history"]  # the Models tab's training curves (an empty frame before)
    assert metrics["strength"] is not None and len(history) >= 2
    assert [r["step"] for r in history] == list(range(1, len(history) + 1))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(0 <= r["train_accuracy"] <= 1 for r in history)


def test_versions_record_their_split_config_and_weights(photos):
    _confirm(photos, 4)
    version = train(photos, TrainConfig(kind="probe", holdout=0.25, seed=3)).version
    folder = version_folder(photos, version)
    assert sorted(p.name for p in folder.iterdir()) == ["head.safetensors", "split.json", "version.json"]
    split = json.loads((folder / "split.json").read_text())
    confirmed = set(photos.store.confirmed_labels())
    assert set(split["train"]) | set(split["holdout"]) == confirmed
    assert not set(split["train"]) & set(split["holdout"])
    assert version.config["seed"] == 3 and version.labels == tuple(LABELS)


# -- fine-tuning -------------------------------------------------------------------------


def test_finetune_saves_reloads_and_rescores(tiny):
    report = train(tiny, tiny_finetune())
    version = report.version
    assert version.kind == "finetune" and report.details["precision"] == "float32"  # no mixed precision on CPU
    assert [h["epoch"] for h in report.details["history"]] == [1, 2]
    assert report.details["wise_alpha"] in TrainConfig().wise_alphas
    tower = load_tensors(version_folder(tiny, version) / "tower.safetensors")
    assert tower and all(t.dtype.is_floating_point or t.dtype.is_signed for t in tower.values())
    activate(tiny, version.id, device="cpu")  # the same device as the reload below: no bf16 on a GPU
    spec = f"version:{version.name}"
    assert tiny.store.embedding_count(spec) == 94  # every item embedded by the fine-tuned tower
    top = tiny.store.top_suggestions()
    assert {s.method for s in top.values()} == {"finetune"}
    # A fresh process reloads the version from its files and gets the same features.
    code = (
        "import sys, json; sys.path.insert(0, '.');"
        "from index.project import Project; from tools.training.versions import backend_for_features;"
        "from tools.loaders import _load_pixels; import torch;"
        f"p = Project({str(tiny.folder)!r}); b = backend_for_features(p, {spec!r}, 'cpu');"
        "print(json.dumps(b.encode_images(torch.stack([_load_pixels(p, b, 1)]))[0].tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    _, cached = tiny.store.embeddings(spec, [1])
    np.testing.assert_allclose(np.array(json.loads(out.stdout)), cached[0], atol=1e-4, rtol=1e-3)  # cached as float16


def test_cancel_keeps_the_checkpoint_and_resume_finishes_the_run(tiny):
    epochs_seen = []

    def stop_after_first_epoch():
        return bool(epochs_seen)

    with pytest.raises(TrainingCancelled, match="--resume"):
        train(tiny, tiny_finetune(epochs=3), should_stop=stop_after_first_epoch,
              on_progress=lambda e: epochs_seen.append(e.epoch) if e.phase == "epoch" and e.epoch else None)
    job = tiny.store.latest_job("train")
    assert job.status is JobStatus.CANCELLED
    state = json.loads((checkpoint_dir(tiny, job.id) / "state.json").read_text())
    assert state["epoch"] == 1
    resumed = []
    report = train(tiny, resume=True,
                   on_progress=lambda e: resumed.append(e.epoch) if e.phase == "epoch" and e.epoch else None)
    assert resumed == [2, 3]  # it went on from the checkpoint, not from scratch
    assert [h["epoch"] for h in report.details["history"]] == [1, 2, 3]
    assert tiny.store.job(job.id).status is JobStatus.DONE and report.job_id == job.id
    with pytest.raises(NothingToResumeError):
        train(tiny, resume=True)


def test_a_cancel_while_the_images_are_encoded_stops_before_any_training(project, photos_dir):
    ingest(project, [str(photos_dir)])
    project.store.set_labels([Label(n) for n in LABELS])
    project.store.set_setting("model", TINY)
    _confirm(project, 3)  # nothing encoded yet: training encodes the project first
    seen = []
    with pytest.raises(TrainingCancelled, match="while the images were being encoded"):
        train(project, TrainConfig(batch_size=8), should_stop=lambda: len(seen) >= 2,
              on_progress=lambda e: seen.append(e.step) if e.phase == "features" and e.step else None)
    assert project.store.latest_job("train").status is JobStatus.CANCELLED
    assert project.store.model_versions() == []
    assert 0 < len(project.store.embedded_item_ids(TINY)) < 94  # what was encoded is kept


def test_a_cancel_request_from_another_process_stops_the_run(tiny):
    from tools.training import request_cancel

    def cancel_from_outside(event):
        if event.phase == "step":
            with Project(tiny.folder) as other:
                request_cancel(other)

    with pytest.raises(TrainingCancelled):
        train(tiny, tiny_finetune(), on_progress=cancel_from_outside)


def test_a_corrupt_checkpoint_is_refused_with_a_clear_message(tiny):
    with pytest.raises(TrainingCancelled):
        train(tiny, tiny_finetune(epochs=3), should_stop=lambda: bool(tiny.store.latest_job("train").done))
    last = checkpoint_dir(tiny, tiny.store.latest_job("train").id) / "last.safetensors"
    last.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        train(tiny, resume=True)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tiny):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def fill_the_disk_after_epoch_one(event):
        if event.phase == "epoch" and event.epoch == 1:
            resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))  # writes past 200 kB now fail

    try:
        with pytest.raises(CheckpointError, match="Free some disk space"):
            train(tiny, tiny_finetune(epochs=3), on_progress=fill_the_disk_after_epoch_one)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    folder = checkpoint_dir(tiny, tiny.store.latest_job("train").id)
    assert json.loads((folder / "state.json").read_text())["epoch"] == 1
    assert load_tensors(folder / "last.safetensors")  # the epoch-1 checkpoint is whole
    assert not list(folder.glob(".*.tmp"))
    assert train(tiny, resume=True).version.kind == "finetune"


def test_cuda_out_of_memory_halves_the_batch_and_goes_on(tiny):
    """A tower that runs out of memory above 4 images: the boundary a CPU machine cannot reach."""
    import torch

    from tools.models import load_backend
    from tools.training import finetune

    backend = load_backend(TINY, "cpu")

    class SmallMemoryTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = backend.trainable_tower()

        def forward(self, pixels):
            if self.training and len(pixels) > 4:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.inner(pixels)

    class Limited(type(backend)):
        def trainable_tower(self):
            return SmallMemoryTower()

    limited = Limited.__new__(Limited)
    limited.__dict__.update(backend.__dict__)
    from tools.models.base import head_from_bytes
    from tools.zeroshot import head_key, templates

    labels = list(tiny.store.label_set().labels)
    zero_shot = head_from_bytes(tiny.store.get_head(head_key(TINY, labels, templates())))
    examples = [finetune.Example(tiny.media.path(tiny.store.get_item(i).media_path), LABELS.index(l))
                for i, l in tiny.store.confirmed_labels().items()]
    messages = []
    tuner = finetune.Finetuner(limited, zero_shot, examples[:20], examples[20:], tiny_finetune(epochs=1), "cpu",
                               tiny.folder / "ckpt", on_progress=lambda e: messages.append(e.message))
    result = tuner.run()
    tuner.close()
    assert result.batch_size == 4
    assert any("Out of memory" in m and "batch size 4" in m for m in messages)


def test_labels_that_change_mid_training_stop_the_run(tiny):
    def add_a_label(event):
        if event.phase == "epoch" and event.epoch == 1:
            with Project(tiny.folder) as other:
                other.store.add_labels([Label("bird")])

    with pytest.raises(LabelsChangedError, match=r"added \['bird'\]"):
        train(tiny, tiny_finetune(epochs=3), on_progress=add_a_label)
    assert tiny.store.latest_job("train").status is JobStatus.FAILED
    assert not tiny.store.model_versions()


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_finetune_on_cuda_uses_mixed_precision(tiny):
    report = train(tiny, tiny_finetune(device="cuda"))
    assert report.details["device"].startswith("cuda")
    assert report.details["precision"] in ("bfloat16", "float16")
    assert report.details["peak_memory_mb"] > 0
    activate(tiny, report.version.id, device="cuda")


# -- versions and activation --------------------------------------------------------------


def test_activation_rescores_pending_items_and_review_uses_the_version(photos):
    from tools.review import Reviewer

    _confirm(photos, 5)
    version = train(photos, TrainConfig(kind="probe")).version
    done = activate(photos, version.id)
    assert done.rescored == 94
    reviewer = Reviewer(photos)
    reviewer.refresh()
    pending = photos.store.item_ids_where(status=Status.PENDING)
    suggestion = photos.store.suggestions(pending[0])[0]
    assert suggestion.model == version.name and suggestion.method == "probe+examples"
    activate(photos, None)  # back to zero-shot
    assert {s.method for s in photos.store.top_suggestions().values()} == {"zero-shot"}


def test_a_version_for_another_label_set_is_never_used_silently(photos):
    _confirm(photos, 3)
    version = train(photos, TrainConfig(kind="probe")).version
    activate(photos, version.id)
    photos.store.add_labels([Label("bird")])
    with pytest.raises(VersionLabelsError, match=r"added \['bird'\]"):
        activate(photos, version.id)
    notices = []
    report = suggest(photos, on_notice=notices.append)
    assert report.method == "zero-shot" and "bird" in notices[0] and "zero-shot" in notices[0]


def test_a_version_trained_on_the_old_offline_features_is_never_used_silently(photos):
    import sqlite3

    from tools.models import OFFLINE_SPEC
    from tools.training import VersionFeaturesError

    old_spec = "offline:efficientnet-lite0+minilm"  # 1280-d head features only, before the middle stages
    _confirm(photos, 3)
    version = train(photos, TrainConfig(kind="probe")).version
    with sqlite3.connect(photos.store.path) as db:  # as a project made by that older labelchat has it
        db.execute("UPDATE models SET base_model = ? WHERE id = ?", (old_spec, version.id))
    db.close()
    with pytest.raises(VersionFeaturesError, match="no longer makes.*labelchat train --kind probe"):
        activate(photos, version.id)
    photos.store.activate_model(version.id)  # active from before the upgrade
    notices = []
    report = suggest(photos, on_notice=notices.append)
    assert report.method == "zero-shot" and report.model == OFFLINE_SPEC
    assert "no longer makes" in notices[0] and "zero-shot" in notices[0]
    photos.store.set_setting("model", old_spec)  # the old name still names the offline model
    assert suggest(photos).model == OFFLINE_SPEC


def test_export_and_import_of_a_version(photos, tmp_path):
    _confirm(photos, 3)
    version = train(photos, TrainConfig(kind="probe")).version
    from tools.training import export_version

    exported = export_version(photos, version.id, tmp_path / "out")
    imported = import_version(photos, exported)
    assert imported.name == f"{version.name}-imported" and imported.labels == version.labels
    assert activate(photos, imported.id).rescored == 94


def test_pickled_weights_are_refused_and_never_loaded(photos, tmp_path):
    import torch

    _confirm(photos, 3)
    version = train(photos, TrainConfig(kind="probe")).version
    from tools.training import export_version

    exported = export_version(photos, version.id, tmp_path / "out")
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"weights": Payload()}, exported / "tower.pt")
    with pytest.raises(CheckpointError, match="never from pickled files"):
        import_version(photos, exported)
    (exported / "tower.pt").rename(exported / "head.safetensors")  # a pickle under a safetensors name
    with pytest.raises(CheckpointError, match="not a readable labelchat head"):
        import_version(photos, exported)
    assert not marker.exists()  # nothing was unpickled


# -- bad input ------------------------------------------------------------------------------


def test_too_few_examples_says_how_many_more_per_label(photos):
    truth = _truth(photos)
    fish = [i for i, l in truth.items() if l == "fish"][:3]
    mammal = [i for i, l in truth.items() if l == "mammal"][:1]
    photos.store.decide_many([(i, Action.ACCEPT, "fish") for i in fish] + [(mammal[0], Action.ACCEPT, "mammal")],
                             actor="test", auto=False)
    with pytest.raises(NotEnoughExamplesError) as error:
        train(photos, TrainConfig(kind="probe"))
    message = str(error.value)
    assert "'mammal' has 1, confirm 1 more" in message and "'tool' has 0, confirm 2 more" in message
    assert "'fish'" not in message
    assert not photos.store.jobs() or photos.store.latest_job("train") is None


def test_only_one_training_job_per_project(photos):
    _confirm(photos, 3)
    with TrainingLock(photos):
        with pytest.raises(TrainingBusyError, match="train --cancel"):
            train(photos, TrainConfig(kind="probe"))


def test_hf_models_say_they_cannot_be_fine_tuned(project, photos_dir):
    ingest(project, [str(photos_dir)])
    project.store.set_labels([Label(n) for n in LABELS])
    project.store.set_setting("model", "hf:tiny-random")
    suggest(project)
    _confirm(project, 3)
    with pytest.raises(Exception, match="cannot be fine-tuned.*--kind probe"):
        train(project, tiny_finetune())


# -- the command line ---------------------------------------------------------------------------


def test_cli_train_json_models_activate_and_jobs(photos):
    _confirm(photos, 4)

    def cli(*args):
        result = subprocess.run([str(LABELCHAT), "--project", str(photos.folder), *args],
                                capture_output=True, text=True, timeout=300)
        return result

    trained = cli("train", "--json")
    assert trained.returncode == 0, trained.stderr
    line = json.loads(trained.stdout.strip().splitlines()[-1])
    assert line["ok"] and line["version"]["name"] == "v1-probe"
    assert 0 <= line["zero_shot_accuracy"] <= line["accuracy"] <= 1
    listed = cli("models")
    assert "v1-probe" in listed.stdout and "probe" in listed.stdout
    activated = cli("models", "activate", "v1-probe")
    assert activated.returncode == 0 and "Re-scored 94 items" in activated.stdout
    assert "* v1-probe" in cli("models").stdout
    assert "train" in cli("jobs").stdout and "created v1-probe" in cli("jobs").stdout
    wrong = cli("models", "activate", "v9")
    assert wrong.returncode == 1 and "No model version 'v9'" in wrong.stderr
    too_few = cli("train", "--holdout", "1.5")
    assert too_few.returncode == 1 and "--holdout must be in [0, 1)" in too_few.stderr


# -- the chat -----------------------------------------------------------------------------------


def test_training_from_the_chat(photos):
    from agent.session import Session
    from agent.steps import FinalAnswer, NeedsConfirmation

    truth = _confirm(photos, 5)
    session = Session(photos)
    steps = list(session.send("train a model"))
    reply = [s for s in steps if isinstance(s, FinalAnswer)][-1].text
    assert "Trained v1-probe" in reply and "held-out" in reply and "now suggests the labels of all 94" in reply
    pending = photos.store.item_ids_where(status=Status.PENDING)
    assert {photos.store.top_suggestions()[i].model for i in pending} == {"v1-probe"}
    assert _accuracy(photos, truth, pending) > 0.8
    listed = [s for s in session.send("which models do we have?") if isinstance(s, FinalAnswer)][-1].text
    assert "v1-probe (in use)" in listed
    back = [s for s in session.send("go back to zero-shot") if isinstance(s, FinalAnswer)][-1].text
    assert "zero-shot" in back and "re-scored 94" in back
    asked = list(session.send("fine-tune the model for 2 epochs"))
    assert any(isinstance(s, NeedsConfirmation) and "fine-tune" in s.question for s in asked)
    declined = [s for s in session.send("no") if isinstance(s, FinalAnswer)][-1].text
    assert len(photos.store.model_versions()) == 1, declined
