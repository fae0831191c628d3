"""Adding images to a project: read, validate and hash in parallel, store one by one.

Reading and decoding run in a thread pool (file I/O, HTTP and Pillow's
decoders release the GIL); writes happen in the calling thread, one short
transaction per image, so an interrupted run keeps everything it reported.
Bad inputs are counted and described in the report; the run goes on.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from index.errors import InvalidLabelError
from index.labels import spelled_otherwise, validate_label_name
from index.project import Project
from index.types import JobStatus, Label

from .images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageInfo,
    ImageRejected,
    Reason,
    inspect_image,
)
from .near_duplicates import NearDuplicateIndex
from .sources import Candidate, FetchOptions, Problem, collect

ProgressFn = Callable[[int, int, str], None]  # (done, total, what)


@dataclass(frozen=True)
class IngestOptions:
    labels_from_folders: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    near_duplicate_distance: int = 4  # of 64 pHash bits; -1 turns the check off
    allow_private: bool = False  # for URLs on private, loopback or link-local addresses
    workers: int = 8


@dataclass(frozen=True)
class NearDuplicate:
    item_id: int
    resembles: int  # an earlier item
    distance: int


@dataclass
class IngestReport:
    added: int = 0
    duplicates: int = 0  # same bytes as an item already here: a source was recorded
    labelled: int = 0  # items that got a confirmed label from their folder or manifest
    ignored: int = 0  # files without an image extension inside folders and archives
    unpacked: list[str] = field(default_factory=list)  # zips found inside added folders, read like added zips
    near_duplicates: list[NearDuplicate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    new_item_ids: list[int] = field(default_factory=list)
    labels_added: list[str] = field(default_factory=list)
    cancelled: bool = False
    job_id: int | None = None

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(problem.reason.value for problem in self.problems))


def ingest(
    project: Project,
    sources: list[str],
    options: IngestOptions = IngestOptions(),
    *,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> IngestReport:
    """Add images from folders, files, zip archives, URL lists and URLs."""
    collected = collect(
        sources,
        labels_from_folders=options.labels_from_folders,
        fetch_options=FetchOptions(options.max_bytes, options.allow_private),
    )
    report = IngestReport(ignored=collected.ignored, problems=list(collected.problems), unpacked=list(collected.unpacked))
    return ingest_candidates(
        project,
        collected.candidates,
        options,
        report=report,
        params={"sources": sources, "labels_from_folders": options.labels_from_folders},
        on_progress=on_progress,
        should_stop=should_stop,
    )


def ingest_candidates(
    project: Project,
    candidates: list[Candidate],
    options: IngestOptions,
    *,
    report: IngestReport | None = None,
    params: dict | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> IngestReport:
    report = report or IngestReport()
    candidates = _admit_labels(project, candidates, report)
    store = project.store
    job = store.start_job("ingest", params or {}, total=len(candidates))
    report.job_id = job.id
    near = NearDuplicateIndex(store.phashes(), options.near_duplicate_distance)
    given: dict[int, str] = {}  # item -> the label this run gave it first
    stop = should_stop or (lambda: False)
    done = 0
    try:
        for candidate, outcome in _inspected(candidates, options, stop):
            if isinstance(outcome, ImageRejected):
                report.problems.append(
                    Problem(candidate.origin.source, outcome.reason, str(outcome))
                )
            else:
                _store_one(project, candidate, outcome, near, given, report)
            done += 1
            if on_progress:
                on_progress(done, len(candidates), candidate.name)
            if done % 50 == 0:
                store.update_job(job.id, done=done)
            if stop():
                report.cancelled = True
                break
    except BaseException:
        store.update_job(job.id, done=done, status=JobStatus.FAILED, message="interrupted")
        raise
    status = JobStatus.CANCELLED if report.cancelled else JobStatus.DONE
    store.update_job(job.id, done=done, status=status, message=_summary(report))
    return report


def _admit_labels(
    project: Project, candidates: list[Candidate], report: IngestReport
) -> list[Candidate]:
    """Add the labels that come with images to the label set; drop images with unusable ones."""
    valid: dict[str, bool] = {}
    problems: dict[str, str] = {}
    for label in {c.label for c in candidates if c.label is not None}:
        try:
            validate_label_name(label)
            valid[label] = True
        except InvalidLabelError as exc:
            valid[label] = False
            problems[label] = str(exc)
    known = project.store.label_set().names
    spellings = list(known)  # one spelling per label: on macOS and Windows folder names ignore case
    for label in sorted(label for label, ok in valid.items() if ok):
        other = spelled_otherwise(label, spellings)
        if other is not None:
            valid[label] = False
            problems[label] = (f"the label '{label}' differs from the label '{other}' only in case (on macOS "
                               f"and Windows they would be one folder); rename it '{other}'")
        elif label not in spellings:
            spellings.append(label)
    new = sorted(label for label, ok in valid.items() if ok and label not in known)
    if new:
        project.store.add_labels([Label(name) for name in new])
        report.labels_added = new
    kept = []
    for candidate in candidates:
        if candidate.label is not None and not valid[candidate.label]:
            report.problems.append(
                Problem(candidate.origin.source, Reason.INVALID_LABEL, problems[candidate.label])
            )
        else:
            kept.append(candidate)
    return kept


def _inspected(
    candidates: list[Candidate], options: IngestOptions, stop: Callable[[], bool]
) -> Iterator[tuple[Candidate, tuple[bytes, ImageInfo] | ImageRejected]]:
    """Read and inspect candidates in a pool, yielding results in input order.

    At most a few times `workers` images are in memory at once.
    """

    def work(candidate: Candidate) -> tuple[bytes, ImageInfo] | ImageRejected:
        try:
            data = candidate.read()
            info = inspect_image(data, max_pixels=options.max_pixels, max_bytes=options.max_bytes)
            return data, info
        except ImageRejected as rejected:
            return rejected

    window = max(1, options.workers) * 4
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        pending: list[tuple[Candidate, Future]] = []
        feed = iter(candidates)
        for candidate in _take(feed, window):
            pending.append((candidate, pool.submit(work, candidate)))
        while pending:
            candidate, future = pending.pop(0)
            yield candidate, future.result()
            if stop():
                for _, other in pending:
                    other.cancel()
                return
            for nxt in _take(feed, 1):
                pending.append((nxt, pool.submit(work, nxt)))


def _take(iterator: Iterator[Candidate], n: int) -> Iterable[Candidate]:
    for _ in range(n):
        try:
            yield next(iterator)
        except StopIteration:
            return


def _store_one(
    project: Project,
    candidate: Candidate,
    payload: tuple[bytes, ImageInfo],
    near: NearDuplicateIndex,
    given: dict[int, str],
    report: IngestReport,
) -> None:
    data, info = payload
    store = project.store
    existing = store.item_by_sha256(info.sha256)
    label = candidate.label
    if existing is not None and given.get(existing.id, label) != label:
        label = None  # the same image came earlier in this run with another label, which stays
    resembles = [] if existing else near.matches(info.phash)
    if existing:
        project.media.restore(existing.media_path, data)  # an image gone from media/ comes back
    media_path = existing.media_path if existing else project.media.put(data, info.sha256, info.ext)
    item, created = store.add_item(
        sha256=info.sha256,
        phash=info.phash,
        media_path=media_path,
        width=info.width,
        height=info.height,
        format=info.format,
        bytes=info.bytes,
        origin=candidate.origin,
        near_duplicates=resembles,
        label=label,
    )
    if created:
        report.added += 1
        report.new_item_ids.append(item.id)
        near.add(item.id, info.phash)
        if resembles:
            other, distance = resembles[0]
            report.near_duplicates.append(NearDuplicate(item.id, other, distance))
    else:
        report.duplicates += 1
    if candidate.label is None:
        return
    given.setdefault(item.id, candidate.label)
    state = store.state(item.id) if not created else None
    if state is None or state.label == candidate.label:
        report.labelled += 1
        return
    if given[item.id] != candidate.label:
        now = f"the same image as one given '{given[item.id]}' earlier in this run, which it keeps"
    elif state.label:
        now = f"confirmed as '{state.label}' by a person, which it keeps"
    else:
        now = f"rejected as '{candidate.label}' by a person, which stands"
    report.problems.append(Problem(
        candidate.origin.source, Reason.LABEL_CONFLICT,
        f"item {item.id} is {now}; this source says '{candidate.label}' "
        f"(to give it that label: labelchat correct {item.id} '{candidate.label}')"))


def _summary(report: IngestReport) -> str:
    return (
        f"added {report.added}, duplicates {report.duplicates}, "
        f"near-duplicates {len(report.near_duplicates)}, skipped {report.skipped}"
    )
