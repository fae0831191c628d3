"""Embedding a project's images: each item once per model, in batches, cached in the store.

Decoding, resizing and cropping run in a thread pool a few batches ahead of
the model, so the model is rarely idle waiting for pixels; the threads hand
over uint8 pixels and the arithmetic (scaling, normalising) runs once per
batch on the model's device (`Backend.prepare`, `PixelNorm`). A file that fails to
decode is skipped and counted; a CUDA out-of-memory error halves the batch
and retries it.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from index.errors import LabelchatError
from index.project import Project

from .models.base import Backend, ModelError
from .sources import Problem
from .images import Reason

ProgressFn = Callable[[int, int, str], None]
PREFETCH_BATCHES = 3
DRAFT_SIDE = 448  # twice the usual 224 input
# Decoding threads. On a GPU the model waits for pixels (an H100 embedded ViT-B/32 at a tenth
# of its bare speed), but more threads do not help: 16 on a 16-core machine were slower than 4
# (351 vs 497 images/s, bench/results/gpu-h100-zeroshot*.log); they contend for the GIL.
DEFAULT_WORKERS = 4


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

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def embed_items(
    project: Project,
    backend: Backend,
    item_ids: Sequence[int] | None = None,
    *,
    batch_size: int | None = None,
    workers: int = DEFAULT_WORKERS,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EmbedReport:
    """Encode the items that have no features for `backend` yet; returns what was done."""
    store = project.store
    wanted = [item.id for item in store.items()] if item_ids is None else list(item_ids)
    done_before = store.embedded_item_ids(backend.spec)
    todo = [item_id for item_id in wanted if item_id not in done_before]
    report = EmbedReport(backend.spec, cached=len(wanted) - len(todo))
    report.batch_size = batch_size or backend.default_batch_size
    stop = should_stop or (lambda: False)
    started = time.perf_counter()
    done = 0
    for ids, pixels, problems in pixel_batches(project, backend, todo, report.batch_size, workers, stop):
        report.problems += problems
        if ids:
            vectors = _encode_with_backoff(backend, pixels, report)
            store.put_embeddings(backend.spec, dict(zip(ids, vectors)))
            report.embedded += len(ids)
        done += len(ids) + len(problems)
        if on_progress:
            on_progress(done, len(todo), "embedding")
        if stop():
            report.cancelled = True
            break
    report.seconds = time.perf_counter() - started
    precision = getattr(getattr(backend, "precision", None), "dtype", None)
    report.precision = str(precision).replace("torch.", "") if precision is not None else "float32"
    return report


def _load_pixels(project: Project, backend: Backend, item_id: int, media_path: str | None = None):
    """`backend.prepare` of an item's image, or a Problem; `media_path` saves a lookup."""
    from PIL import Image

    try:
        path = project.media.path(media_path or project.store.get_item(item_id).media_path)
    except LabelchatError as exc:
        return Problem(f"item {item_id}", Reason.CORRUPT, str(exc))
    try:
        with Image.open(path) as image:
            image.seek(0)  # animated images: the first frame
            # JPEGs decode straight to a smaller scale (1/2 .. 1/8) when that still
            # leaves at least twice the model's input size: much less work, same result.
            image.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))
            return backend.prepare(image.convert("RGB"))
    except Exception as exc:  # a file damaged or removed since it was added
        return Problem(str(path), Reason.CORRUPT, f"item {item_id} cannot be decoded: {exc}")


def pixel_batches(
    project: Project,
    backend: Backend,
    item_ids: list[int],
    batch_size: int,
    workers: int,
    stop: Callable[[], bool],
) -> Iterator[tuple[list[int], object, list[Problem]]]:
    """(ids, stacked pixels, problems) per batch, prepared in a pool ahead of use.

    The pixels are `backend.prepare`'s: uint8 for backends with a `pixel_norm`
    (pinned in memory when the model is on a CUDA GPU), else floats.
    """
    import torch

    chunks = [item_ids[i : i + batch_size] for i in range(0, len(item_ids), batch_size)]
    pin = torch.cuda.is_available() and backend.device.startswith("cuda")  # pinned: asynchronous copies

    def submit(pool: ThreadPoolExecutor, chunk: list[int]) -> list[Future]:
        paths = project.store.media_paths(chunk)
        return [pool.submit(_load_pixels, project, backend, i, paths.get(i)) for i in chunk]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queued = [submit(pool, chunk) for chunk in chunks[:PREFETCH_BATCHES]]
        for index, chunk in enumerate(chunks):
            results = [future.result() for future in queued.pop(0)]
            following = index + PREFETCH_BATCHES
            if following < len(chunks) and not stop():
                queued.append(submit(pool, chunks[following]))
            good = [(i, r) for i, r in zip(chunk, results) if not isinstance(r, Problem)]
            problems = [r for r in results if isinstance(r, Problem)]
            pixels = torch.stack([r for _, r in good]) if good else None
            if pin and pixels is not None:
                pixels = pixels.pin_memory()
            yield [i for i, _ in good], pixels, problems
            if stop():
                for futures in queued:
                    for future in futures:
                        future.cancel()
                return


def _encode_with_backoff(backend: Backend, pixels, report: EmbedReport) -> np.ndarray:
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
        return _encode_with_backoff(backend, pixels, report)


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
