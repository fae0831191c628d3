"""Where the embedding loop's pixels come from: files decoded, resized and cropped ahead of the model.

Two loaders give the same batches. Threads (the default) suit a CPU model,
which is the bottleneck and needs the cores itself. Worker processes suit a
GPU, which a pool of threads cannot feed: decoding in Python threads
contends for one interpreter lock (an H100 waited for 4 threads at a tenth
of its bare speed, and 16 threads were slower still).

Workers hand over uint8 pixels (`Backend.prepare`), stacked channels last as
PIL and torchvision lay them out; the model's device does the arithmetic
(`PixelNorm`). When a GPU runs the model, images no bigger than its input
(thumbnails, product shots, digits) are handed over as decoded and resized
on the GPU (`Backend.device_geometry`): a 28x28 image is 2 KB to move
instead of the 150 KB of its 224x224 crop, and the workers, which bound a
GPU's throughput, skip the resize. A file that fails to decode becomes a
Problem in its batch, never an exception.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterator

from index.project import Project

from .images import Reason
from .models.base import Backend
from .models.geometry import Geometry
from .models.pixels import uint8_pixels
from .sources import Problem

PREFETCH_BATCHES = 3
DRAFT_SIDE = 448  # twice the usual 224 input
DEFAULT_WORKERS = 4  # threads; more contend for the interpreter lock
MIN_CORES_FOR_PROCESSES = 4
PROCESS_MIN_BATCHES = 4  # fewer batches than this: forking the workers costs more than it saves

Batches = Iterator[tuple[list[int], object, list[Problem]]]


def loader_kind(backend: Backend, images: int, batch_size: int, workers: int | None = None) -> str:
    """"processes" for a CUDA model with enough images, cores and shared memory to gain from
    them, else "threads"."""
    import multiprocessing

    forkable = "fork" in multiprocessing.get_all_start_methods()
    if not (backend.device.startswith("cuda") and forkable and usable_cores() >= MIN_CORES_FOR_PROCESSES):
        return "threads"
    if images < PROCESS_MIN_BATCHES * batch_size:
        return "threads"
    needed = shared_memory_needed(backend, batch_size, workers or default_workers("processes"))
    return "processes" if shared_memory_free() >= needed else "threads"


def shared_memory_needed(backend: Backend, batch_size: int, workers: int) -> int:
    """Bytes of shared memory the worker processes hold at most: their batches in flight, and
    the two the main process holds (the one being encoded, the next one received)."""
    from PIL import Image

    probe = backend.prepare(Image.new("RGB", (64, 48)))
    return probe.numel() * probe.element_size() * batch_size * (PREFETCH_BATCHES * workers + 2)


def shared_memory_free() -> int:
    """Free bytes in /dev/shm, where worker processes hand batches over. Containers often
    have 64 MB there (Docker's default), where a worker would die of a bus error mid-run."""
    import shutil

    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return 0


def default_workers(loader: str) -> int:
    """Processes: half the cores; threads: DEFAULT_WORKERS. On the 16-core H100 host the
    loader alone gave 7,211 images/s with 8 workers and 5,316 with 12, and `suggest` ran
    at 5,400 with 8 and 5,700 with 12 but slower with 15: the main process needs cores too
    (bench/results/gpu-h100-loader-workers.log, one run each: 8 and 12 are close)."""
    if loader != "processes":
        return DEFAULT_WORKERS
    return max(1, usable_cores() // 2)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pixel_batches(
    project: Project,
    backend: Backend,
    item_ids: list[int],
    batch_size: int,
    workers: int,
    stop: Callable[[], bool],
    loader: str = "threads",
    resize_on_device: bool = False,
) -> Batches:
    """(ids, stacked (N, C, H, W) pixels, problems) per batch, in order, prepared ahead of use
    by `workers` threads or, when `loader` is "processes", worker processes.

    The pixels are `backend.prepare`'s: uint8 for backends with a `pixel_norm`
    (pinned in memory when threads feed a CUDA model), else floats. With
    `resize_on_device`, for a backend with a `device_geometry`, images smaller
    than the model's input are resized on its device, where all pixels then
    are. Once `stop()` is true no more work is queued; a consumer that stops
    early closes this generator (as `embed_items` does), which ends the
    threads or processes.
    """
    geometry = backend.device_geometry() if resize_on_device else None
    prepare = backend.prepare if geometry is None else SmallAsDecoded(backend.prepare, geometry)
    if loader == "processes":
        batches = _process_batches(project, prepare, item_ids, batch_size, workers)
    else:
        batches = _thread_batches(project, prepare, item_ids, batch_size, workers, stop, backend.device)
    with closing(batches):  # a consumer closing this generator closes the loader's too
        for batch in batches:
            pixels = batch.nchw() if geometry is None else batch.on_device(backend.device, geometry)
            yield batch.ids, pixels, batch.problems


@dataclass(frozen=True)
class SmallAsDecoded:
    """What workers do to an image when the device resizes: one with fewer pixels than the
    model's input is handed over as decoded, uint8 (3, h, w); any other is prepared. (So an
    image of exactly the input's size has been prepared: `PixelBatch.on_device` relies on it.)"""

    prepare: Callable
    geometry: Geometry

    def __call__(self, image):
        height, width = self.geometry.output
        return uint8_pixels(image) if image.width * image.height < height * width else self.prepare(image)


def _item_files(project: Project, item_ids: list[int]) -> list[tuple[int, Path | Problem]]:
    """Each item's media file, from one query; a Problem for an id the project no longer has."""
    paths = project.store.media_paths(item_ids)
    return [(i, project.media.path(paths[i]) if i in paths
             else Problem(f"item {i}", Reason.CORRUPT, f"Item {i} is no longer in the project."))
            for i in item_ids]


def decode_files(files: list[tuple[int, Path]], backend: Backend, resize_on_device: bool, threads: int):
    """(ids, (N, C, H, W) pixels on the backend's device or None, problems) of these (item id,
    file) pairs, decoded by `threads` threads: one batch as `pixel_batches` gives it, for a
    caller that has the files but no project (a Ray actor, `ray_engine`)."""
    geometry = backend.device_geometry() if resize_on_device else None
    prepare = backend.prepare if geometry is None else SmallAsDecoded(backend.prepare, geometry)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(lambda entry: _prepared(entry, prepare), files))
    batch = collate([(item_id, result) for (item_id, _), result in zip(files, results)])
    pixels = batch.nchw() if geometry is None else batch.on_device(backend.device, geometry)
    return batch.ids, pixels, batch.problems


def _prepared(entry: tuple[int, Path | Problem], prepare: Callable):
    """prepare(image) of an `_item_files` entry, or its Problem."""
    item_id, path = entry
    return path if isinstance(path, Problem) else _decode(path, item_id, prepare)


def _load_pixels(project: Project, backend: Backend, item_id: int):
    """`backend.prepare` of one item's image, or a Problem."""
    return _prepared(_item_files(project, [item_id])[0], backend.prepare)


def _decode(path: Path, item_id: int, prepare: Callable):
    """prepare(RGB image) of one file, or a Problem when it cannot be decoded."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.seek(0)  # animated images: the first frame
            # JPEGs decode straight to a smaller scale (1/2 .. 1/8) when that still
            # leaves at least twice the model's input size: much less work, same result.
            image.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))
            return prepare(image.convert("RGB"))
    except Exception as exc:  # a file damaged or removed since it was added
        return Problem(str(path), Reason.CORRUPT, f"item {item_id} cannot be decoded: {exc}")


def _thread_batches(project, prepare, item_ids, batch_size, workers, stop, device) -> Iterator[PixelBatch]:
    import torch

    pin = torch.cuda.is_available() and device.startswith("cuda")  # pinned: asynchronous copies
    chunks = [item_ids[i : i + batch_size] for i in range(0, len(item_ids), batch_size)]

    def submit(pool: ThreadPoolExecutor, chunk: list[int]) -> list[Future]:
        return [pool.submit(_prepared, entry, prepare) for entry in _item_files(project, chunk)]

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        queued = [submit(pool, chunk) for chunk in chunks[:PREFETCH_BATCHES]]
        for index, chunk in enumerate(chunks):
            results = [future.result() for future in queued.pop(0)]
            following = index + PREFETCH_BATCHES
            if following < len(chunks) and not stop():
                queued.append(submit(pool, chunks[following]))
            batch = collate(list(zip(chunk, results)))
            if pin and batch.pixels is not None:
                batch.pixels = batch.pixels.pin_memory()
            yield batch
    finally:  # also when the consumer closes this generator early (a cancelled run)
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class PixelBatch:
    """A batch as the loader stacked it. uint8 images whose bytes lie channels last (as PIL
    and torchvision's resize leave them) are stacked as (N, H, W, C), a plain copy: made
    channels first, each image would cost a transposing copy as long as its resize (measured).
    Images of different sizes (some left for the device to resize) lie end to end in one
    flat buffer, each (h, w, C), their sizes in `shapes`."""

    ids: list[int]
    pixels: object  # a torch.Tensor; None when no image in the batch could be decoded
    problems: list[Problem]
    channels_last: bool = False
    shapes: list[tuple[int, int]] | None = None  # (h, w) of each image, when `pixels` is flat

    def nchw(self):
        """(N, C, H, W), as models take it: a view, whatever the bytes' order."""
        if self.shapes is not None:
            raise ValueError("Images of different sizes: only on_device can resize them to one.")
        return self.pixels.permute(0, 3, 1, 2) if self.channels_last and self.pixels is not None else self.pixels

    def on_device(self, device: str, geometry: Geometry):
        """(N, C, H, W) uint8 on `device`: one copy of the bytes there, then each size of image
        not yet the model's input (`SmallAsDecoded` prepared all others) resized and cropped by
        `geometry`, a batch per size."""
        import torch

        if self.pixels is None:
            return None
        pixels = self.pixels.to(device, non_blocking=True)
        if self.shapes is None:
            images = pixels.permute(0, 3, 1, 2) if self.channels_last else pixels
            return images if tuple(images.shape[-2:]) == geometry.output else geometry.on_batch(images)
        out = torch.empty((len(self.shapes), 3, *geometry.output), dtype=torch.uint8, device=device)
        starts = accumulate((3 * height * width for height, width in self.shapes), initial=0)
        members = defaultdict(list)  # (h, w) -> [(index in the batch, start in the buffer)]
        for index, (shape, start) in enumerate(zip(self.shapes, starts)):
            members[shape].append((index, start))
        for (height, width), found in members.items():
            size = 3 * height * width
            images = torch.stack([pixels[start : start + size].view(height, width, 3) for _, start in found])
            images = images.permute(0, 3, 1, 2)
            out[[index for index, _ in found]] = (
                images if (height, width) == geometry.output else geometry.on_batch(images))
        return out


def collate(samples: list[tuple[int, object]]) -> PixelBatch:
    """One batch from (item id, pixels or Problem) pairs."""
    import torch

    good = [(i, r) for i, r in samples if not isinstance(r, Problem)]
    problems = [r for _, r in samples if isinstance(r, Problem)]
    if not good:
        return PixelBatch([], None, problems)
    images = [r for _, r in good]
    channels_last = all(i.dim() == 3 and i.stride(0) == 1 and i.dtype == torch.uint8 for i in images)
    ids = [i for i, _ in good]
    if channels_last and len({image.shape for image in images}) > 1:
        pixels = _gather([image.permute(1, 2, 0).reshape(-1) for image in images], flat=True)
        return PixelBatch(ids, pixels, problems, True, [tuple(image.shape[1:]) for image in images])
    pixels = _gather([image.permute(1, 2, 0) for image in images] if channels_last else images)
    return PixelBatch(ids, pixels, problems, channels_last)


def _gather(tensors: list, flat: bool = False):
    """torch.stack (or, `flat`, torch.cat); in a DataLoader worker straight into shared memory,
    as torch's own collate does, which saves a copy on the way to the main process."""
    import torch
    from torch.utils.data import get_worker_info

    out = None
    if get_worker_info() is not None:
        first = tensors[0]
        count = sum(t.numel() for t in tensors) if flat else len(tensors) * first.numel()
        storage = first._typed_storage()._new_shared(count, device=first.device)
        out = first.new(storage).resize_(count if flat else (len(tensors), *first.shape))
    return torch.cat(tensors, out=out) if flat else torch.stack(tensors, out=out)


def _process_batches(project, prepare, item_ids, batch_size, workers) -> Iterator[PixelBatch]:
    """Batches from forked worker processes, through torch's DataLoader, one batch per task:
    a worker decodes a whole batch and stacks it straight into shared memory, as torch's
    own collate does. (A ring of shared buffers reused batch after batch, so that only a
    buffer's number travelled back, was no faster on the H100 host: 5,975 against 7,211
    images/s with 8 workers, 5,508 against 5,316 with 12.)"""
    from torch.utils.data import DataLoader

    items = _item_files(project, item_ids)
    chunks = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    loader = DataLoader(
        _BatchFiles(chunks, prepare),
        batch_size=None,  # each task is a whole batch
        collate_fn=_as_is,
        num_workers=max(1, min(workers, len(chunks))),
        prefetch_factor=PREFETCH_BATCHES,
        multiprocessing_context="fork",  # the backend is inherited, never pickled
        worker_init_fn=_leave_interrupts_to_the_parent,
    )
    with _interrupts_ignored_by_forks():
        batches = iter(loader)  # forks the workers
    try:
        yield from batches
    finally:  # also when the consumer closes this generator early (a cancelled run)
        del batches  # its last reference: the iterator shuts its workers down now


@contextmanager
def _interrupts_ignored_by_forks() -> Iterator[None]:
    """Ctrl-C ignored while the workers fork, so that each is born ignoring it: a worker still
    starting up when Ctrl-C came (before its worker_init_fn ran) died of it, and the run with
    it (seen on a loaded CI machine). The main thread only: elsewhere signals cannot be set."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _leave_interrupts_to_the_parent(worker_id: int) -> None:
    """Ctrl-C reaches the whole process group: the workers ignore it (they inherited the CLI's
    handler, which would print once per worker); the parent stops and ends them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _BatchFiles:
    """A map-style dataset for torch's DataLoader: index k -> batch k, decoded and stacked."""

    def __init__(self, chunks: list[list[tuple[int, Path | Problem]]], prepare: Callable):
        self.chunks, self.prepare = chunks, prepare

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> PixelBatch:
        return collate([(entry[0], _prepared(entry, self.prepare)) for entry in self.chunks[index]])


def _as_is(batch):
    return batch
