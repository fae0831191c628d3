"""`train()`: one training run as a job of the project, from confirmed labels to a model version.

Only one training job runs per project at a time (an OS file lock, released
even when the process dies). The job's progress is written to the store, so
the CLI, the chat and the browser app can all show it, and a cancel request
from any of them (or from another process: `labelchat train --cancel`) stops
it after the current step, keeping its last checkpoint for `--resume`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from index.errors import LabelchatError
from index.project import Project
from index.types import Job, JobStatus, ModelVersion

from ..models import load_backend
from ..models.base import ZeroShotHead, head_from_bytes, softmax
from ..wording import counted
from ..zeroshot import suggest
from .checkpoint import read_json, write_json
from .config import Kind, TrainConfig
from .data import Split, split_examples
from .finetune import Example, Finetuner, check_finetunable
from .metrics import Metrics, evaluate
from .probe import fit_probe
from .progress import LabelsChangedError, ProgressFn, StopFn, TrainingCancelled, TrainProgress
from .versions import save_version

JOB_KIND = "train"
CANCEL_POLL_SECONDS = 1.0


class TrainingBusyError(LabelchatError):
    def __init__(self, job: Job | None):
        which = f" (job {job.id}, {job.message or 'starting'})" if job else ""
        super().__init__(
            f"A training job is already running in this project{which}. Wait for it "
            f"(labelchat jobs), or cancel it: labelchat train --cancel"
        )


class NothingToResumeError(LabelchatError):
    pass


@dataclass
class TrainReport:
    version: ModelVersion
    metrics: Metrics  # the new model on the held-out confirmed items
    zero_shot: Metrics  # zero-shot on the same items
    job_id: int
    seconds: float
    details: dict = field(default_factory=dict)


class TrainingLock:
    """An exclusive, non-blocking lock on <project>/models/train.lock for the life of a run."""

    def __init__(self, project: Project):
        self.path = project.models_dir / "train.lock"
        self.project = project
        self.handle = None

    def __enter__(self) -> "TrainingLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise TrainingBusyError(self.project.store.latest_job(JOB_KIND)) from None
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def checkpoint_dir(project: Project, job_id: int) -> Path:
    return project.models_dir / ".jobs" / f"job-{job_id}"


def request_cancel(project: Project) -> Job | None:
    """Ask the running training job (in any process) to stop; returns it, or None if none runs."""
    job = project.store.latest_job(JOB_KIND)
    if job is None or job.status is not JobStatus.RUNNING:
        return None
    project.store.update_job(job.id, status=JobStatus.CANCELLED, message="cancel requested")
    return job


def train(project: Project, config: TrainConfig = TrainConfig(), *, resume: bool = False,
          on_progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> TrainReport:
    """Train a model version on the confirmed labels; see the module docstring."""
    started = time.perf_counter()
    store = project.store
    with TrainingLock(project):
        _close_orphaned_jobs(project)
        job, config, split = _job_for(project, config, resume)
        folder = checkpoint_dir(project, job.id)
        report_progress = _progress_reporter(project, job.id, on_progress)
        stop = _stop_checker(project, job.id, should_stop)
        try:
            report = _train(project, config, split, job, folder, resume, report_progress, stop)
        except BaseException as exc:
            message = str(exc) if isinstance(exc, LabelchatError) else f"{type(exc).__name__}: {exc}"
            cancelled = isinstance(exc, (TrainingCancelled, KeyboardInterrupt))
            _record_end(project, job.id, JobStatus.CANCELLED if cancelled else JobStatus.FAILED,
                        message or "interrupted")
            raise
        store.update_job(job.id, status=JobStatus.DONE, done=store.job(job.id).total,
                         message=f"created {report.version.name}")
        shutil.rmtree(folder, ignore_errors=True)
        report.seconds = time.perf_counter() - started
        return report


@dataclass
class _Run:
    """What both kinds of training share: the data, the labels and the zero-shot starting point."""

    project: Project
    config: TrainConfig
    split: Split
    names: list[str]
    features_model: str  # the base model's features spec
    head: ZeroShotHead  # its zero-shot head
    progress: ProgressFn
    stop: StopFn
    check_labels: Callable[[], None]

    def columns(self, ids) -> np.ndarray:
        column = {name: i for i, name in enumerate(self.names)}
        return np.array([column[self.split.labels[i]] for i in ids], dtype=np.int64)

    def features(self, ids) -> np.ndarray:
        return self.project.store.embeddings(self.features_model, list(ids))[1]


def _train(project: Project, config: TrainConfig, split: Split, job: Job, folder: Path, resume: bool,
           progress: ProgressFn, stop: StopFn) -> TrainReport:
    names = list(project.store.label_set().names)
    progress(TrainProgress("features", message="making sure every item has features and zero-shot suggestions"))
    base = suggest(project, model=config.model, device=config.device, use_trained=False, should_stop=stop,
                   on_progress=lambda done, total, _: progress(TrainProgress("features", step=done, steps=total)))
    if base.embed is not None and base.embed.cancelled:
        raise TrainingCancelled(job.id, 0, "Training was cancelled while the images were being encoded, before "
                                           "any training; what was encoded is kept, so the next run starts there.")
    run = _Run(project, config, split, names, base.features_model,
               head_from_bytes(project.store.get_head(base.head_key)), progress, stop, _label_guard(project, names))
    holdout = list(split.holdout)
    truth = run.columns(holdout)
    zero_shot = evaluate(truth, run.head.probabilities(run.features(holdout)), names) if holdout else None
    if config.kind == Kind.PROBE.value:
        trained_head, tower_state, details, holdout_probabilities = _probe(run)
    else:
        trained_head, tower_state, details, holdout_probabilities = _finetune(run, job, folder, resume)
    metrics = evaluate(truth, holdout_probabilities, names) if holdout else None
    summary = {
        "holdout_items": len(holdout), "train_items": len(split.train), "validation_items": len(split.validation),
        "accuracy": metrics.accuracy if metrics else None,
        "zero_shot_accuracy": zero_shot.accuracy if zero_shot else None,
        "holdout": metrics.to_dict() if metrics else None,
        "zero_shot_holdout": zero_shot.to_dict() if zero_shot else None, **details,
    }
    version = save_version(project, kind=config.kind, base_model=base.features_model, head=trained_head,
                           tower_state=tower_state, config=config.to_dict(), metrics=summary, split=split.to_dict())
    empty = Metrics(0, None, (), ())
    return TrainReport(version, metrics or empty, zero_shot or empty, job.id, 0.0, details)


def _probe(run: _Run):
    """(head, no tower, details, held-out probabilities) of a probe on the cached features."""
    train_ids = sorted(run.split.train + run.split.validation)  # the probe validates by cross-validation
    run.progress(TrainProgress("probe", message=f"fitting a probe on {counted(len(train_ids), 'item')}"))
    fit = fit_probe(run.head, run.features(train_ids), run.columns(train_ids), run.config.strengths, run.config.seed)
    run.check_labels()
    holdout = list(run.split.holdout)
    probabilities = fit.head.probabilities(run.features(holdout)) if holdout else None
    details = {"strength": fit.strength, "validation_loss": fit.validation_loss, "history": fit.history}
    return fit.head, None, details, probabilities


def _finetune(run: _Run, job: Job, folder: Path, resume: bool):
    """(head, tower weights, details, held-out probabilities) of LP-FT: a probe on the training
    items first, then the tower and that head together (see finetune.py)."""
    store = run.project.store
    backend = load_backend(run.features_model, run.config.device)
    check_finetunable(backend)
    if not backend.device.startswith("cuda"):
        run.progress(TrainProgress("epoch", message=(
            f"Fine-tuning on {backend.device}: this is slow (minutes per epoch for a few hundred "
            f"images). A CUDA GPU is much faster; a probe (--kind probe) takes seconds.")))
    train_ids = list(run.split.train)
    probe = fit_probe(run.head, run.features(train_ids), run.columns(train_ids), run.config.strengths, run.config.seed)

    def examples(ids) -> list[Example]:
        paths = [run.project.media.path(store.get_item(i).media_path) for i in ids]
        return [Example(path, int(column)) for path, column in zip(paths, run.columns(ids))]

    tuner = Finetuner(backend, probe.head, examples(run.split.train), examples(run.split.validation), run.config,
                      backend.device, folder, on_progress=run.progress, should_stop=run.stop,
                      check_labels=run.check_labels, job_id=job.id)
    try:
        result = tuner.run(resume=resume)
        holdout = list(run.split.holdout)
        probabilities = softmax(tuner.logits(examples(holdout))[0]) if holdout else None
    finally:
        tuner.close()
    details = {
        "probe_strength": probe.strength, "wise_alpha": result.wise_alpha, "wise_accuracy": result.wise_accuracy,
        "best_epoch": result.best_epoch, "history": [r.__dict__ for r in result.history], "device": result.device,
        "precision": result.precision, "batch_size": result.batch_size, "peak_memory_mb": result.peak_memory_mb,
    }
    return result.head, result.tower_state, details, probabilities


def _record_end(project: Project, job_id: int, status: JobStatus, message: str) -> None:
    """Mark the job ended, if the store can still be written (a full disk may forbid it: the
    job then stays 'running' until the next run finds it orphaned). The run's own error wins."""
    import sqlite3

    try:
        project.store.update_job(job_id, status=status, message=message)
    except sqlite3.Error:
        pass


def _job_for(project: Project, config: TrainConfig, resume: bool) -> tuple[Job, TrainConfig, Split]:
    """A new job with a fresh split, or (resume) the last unfinished one with its own config and split."""
    store = project.store
    if resume:
        job = store.latest_job(JOB_KIND)
        folder = checkpoint_dir(project, job.id) if job else None
        if job is None or job.status is JobStatus.DONE or not (folder / "split.json").exists():
            raise NothingToResumeError(
                "There is no unfinished training run to resume. Start one with: labelchat train"
            )
        config = TrainConfig.from_dict(job.params)
        saved = read_json(folder / "split.json")
        labels = {int(k): v for k, v in saved["labels"].items()}
        split = Split(tuple(saved["train"]), tuple(saved["validation"]), tuple(saved["holdout"]), labels)
        store.update_job(job.id, status=JobStatus.RUNNING, message="resumed")
        return job, config, split
    names = list(store.label_set().names)
    validation = config.validation if config.kind == Kind.FINETUNE.value else 0.0
    split = split_examples(store.confirmed_labels(), names, holdout=config.holdout,
                           validation=validation, seed=config.seed)
    job = store.start_job(JOB_KIND, config.to_dict(), total=config.epochs if config.kind == "finetune" else 1)
    write_json(checkpoint_dir(project, job.id) / "split.json",
               {**split.to_dict(), "labels": {str(k): v for k, v in split.labels.items()}})
    return job, config, split


def _close_orphaned_jobs(project: Project) -> None:
    """A job still 'running' while we hold the lock belongs to a process that died."""
    store = project.store
    job = store.latest_job(JOB_KIND)
    if job is not None and job.status is JobStatus.RUNNING:
        store.update_job(job.id, status=JobStatus.FAILED,
                         message="interrupted (its process ended); resume it with labelchat train --resume")


def _progress_reporter(project: Project, job_id: int, forward: ProgressFn | None) -> ProgressFn:
    def report(event: TrainProgress) -> None:
        if event.phase != "step":
            project.store.update_job(job_id, done=event.epoch or None, message=event.message or None)
        if forward:
            forward(event)

    return report


def _stop_checker(project: Project, job_id: int, should_stop: StopFn | None) -> StopFn:
    """Stop when the caller says so, or when someone marked the job cancelled in the store."""
    last_poll = [0.0]

    def stop() -> bool:
        if should_stop and should_stop():
            return True
        if time.monotonic() - last_poll[0] < CANCEL_POLL_SECONDS:
            return False
        last_poll[0] = time.monotonic()
        return project.store.job(job_id).status is JobStatus.CANCELLED

    return stop


def _label_guard(project: Project, names: list[str]):
    def check() -> None:
        now = list(project.store.label_set().names)
        if now != names:
            raise LabelsChangedError(names, now)

    return check


__all__ = ["TrainReport", "TrainingBusyError", "request_cancel", "train"]
