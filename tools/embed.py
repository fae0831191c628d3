"""Embedding a project's images: each item once per model, in batches, cached in the store.

Three things run side by side: the loader (`loaders`: threads, or worker
processes on a GPU) decodes and resizes a few batches ahead; the model
encodes one; a writer thread stores the last one's features and what the
caller makes of them (suggestions). A file that fails to decode is skipped
and counted; a CUDA out-of-memory error halves the batch and retries it.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from index.project import Project

from .background import OrderedWriter
from .loaders import default_workers, loader_kind, pixel_batches
from .models.base import Backend, ModelError
from .sources import Problem

ProgressFn = Callable[[int, int, str], None]


@dataclass
class EmbedReport:
    model: str
    embedded: int = 0
    cached: int = 0  # already embedded with this model: not encoded again
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    batch_size: int = 0
    precision: str = ""
    cancelled: bool = False
    loader: str = ""  # "threads" or "processes": who decoded the images
    workers: int = 0  # how many of them
    resized_on_device: bool = False  # images smaller than the model's input were resized on its device

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def embed_items(
    project: Project,
    backend: Backend,
    item_ids: Sequence[int] | None = None,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    loader: str | None = None,
    resize_on_device: bool | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_embedded: Callable[[list[int], np.ndarray], None] | None = None,
) -> EmbedReport:
    """Encode the items that have no features for `backend` yet; returns what was done.

    Each batch's features are stored, and then given to `on_embedded`, on a
    writer thread while the model encodes the next batch; all of it is done
    when this returns, cancelled or not."""
    store = project.store
    wanted = [item.id for item in store.items()] if item_ids is None else list(item_ids)
    done_before = store.embedded_item_ids(backend.spec)
    todo = [item_id for item_id in wanted if item_id not in done_before]
    report = EmbedReport(backend.spec, cached=len(wanted) - len(todo))
    report.batch_size = batch_size or backend.default_batch_size
    report.loader = loader or loader_kind(backend, len(todo), report.batch_size, workers)
    workers = report.workers = workers or default_workers(report.loader)
    if resize_on_device is None:
        resize_on_device = backend.device.startswith("cuda")
    report.resized_on_device = resize_on_device and backend.device_geometry() is not None
    stop = should_stop or (lambda: False)
    started = time.perf_counter()
    done = 0
    batches = pixel_batches(project, backend, todo, report.batch_size, workers, stop, report.loader,
                            report.resized_on_device)
    with closing(batches), OrderedWriter() as writer:  # closing: a cancelled run ends the loader now
        for ids, pixels, problems in batches:
            report.problems += problems
            if ids:
                vectors = encode_with_backoff(backend, pixels, report)
                writer.submit(_store_batch, store, backend.spec, ids, vectors, on_embedded)
                report.embedded += len(ids)
            done += len(ids) + len(problems)
            if on_progress:
                on_progress(done, len(todo), "embedding")
            if stop():
                report.cancelled = True
                break
    if report.embedded:
        store.compact_embeddings(backend.spec)  # a retried or re-embedded item left rows out of order
    report.seconds = time.perf_counter() - started
    precision = getattr(getattr(backend, "precision", None), "dtype", None)
    report.precision = str(precision).replace("torch.", "") if precision is not None else "float32"
    return report


def _store_batch(store, model: str, ids: list[int], vectors: np.ndarray, then: Callable | None) -> None:
    with store.transaction():  # one commit for what is made of a batch's features
        if then is not None:
            then(ids, vectors)
        # the features file last: a failure above leaves no features, one here rolls the rest back
        store.put_embeddings(model, dict(zip(ids, vectors)))


def encode_with_backoff(backend: Backend, pixels, report: EmbedReport) -> np.ndarray:
    """Encode in parts of `report.batch_size`; on out-of-memory, halve it for good and retry."""
    size = report.batch_size
    parts = [pixels[i : i + size] for i in range(0, len(pixels), size)]
    return np.concatenate([_encode_part(backend, part, report) for part in parts])


def _encode_part(backend: Backend, pixels, report: EmbedReport) -> np.ndarray:
    try:
        return backend.encode_images(pixels)
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
        _free_cuda_cache()
        if len(pixels) == 1:
            raise ModelError(
                f"Out of memory on {backend.device} even for one image. Use --device cpu."
            ) from exc
        report.batch_size = max(1, min(report.batch_size, len(pixels) // 2))
        return encode_with_backoff(backend, pixels, report)


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
