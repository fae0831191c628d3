"""Crawling pages, sitemaps and URL lists for images, into a project, resumably.

The frontier lives in the project (the store's crawl_urls): each URL found is
queued once per crawl, normalised, and gets one outcome once fetched. A crawl
stopped by Ctrl-C, a limit or a kill goes on with `resume=True` and fetches
only what is still queued.

The calling thread reads the frontier in breadth-first windows and writes
the outcomes; a bounded pool of threads fetches, decodes, hashes and stores
files. A URL starts only when its host has a free slot and its delay passed.
A worker that finishes claims the next URL from the window itself, so the
pool stays busy while the calling thread writes.

Links are followed `depth` hops, with `same_site` only within their page's
site; images are taken wherever a page puts them (CDNs). Animated images are
kept whole; models see frame one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from index.errors import LabelchatError
from index.project import Project
from index.types import CrawlUrl, JobStatus, Origin

from . import html_images as parse
from .images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageInfo, ImageRejected, Reason, inspect_image, sniff_format
from .near_duplicates import NearDuplicateIndex
from .ingest import NearDuplicate
from .robots import (Fetched, FetchFailed, Fetcher, HostGate, Outcome, Scope, WireOptions, document_limit, gunzip_capped,
                     host_key, image_limit, outcome_for)
from .sources import Problem

DOCUMENT_KINDS = ("page", "sitemap", "list")
WIRE_FAILURES = {Outcome.HTTP_ERROR, Outcome.TIMEOUT, Outcome.REFUSED_ADDRESS, Outcome.TOO_MANY_REDIRECTS, Outcome.DOWNLOAD_FAILED}


@dataclass(frozen=True)
class CrawlOptions:
    depth: int = 2  # link hops from a start page; sitemap and list entries count as starts
    max_images: int | None = None  # new images saved by this crawl, over all its runs
    max_pages: int | None = None  # pages, sitemaps and lists read
    same_site: bool = True
    include: tuple[str, ...] = ()  # globs ("*/gallery/*") or substrings a found URL must match
    exclude: tuple[str, ...] = ()
    allow_private: bool = False
    allow_hosts: tuple[str, ...] = ()  # host names exempt from the private-address refusal
    min_side: int = 32  # pixels; smaller images are "too small" (icons, spacers, pixels)
    max_side: int | None = None
    max_bytes: int = DEFAULT_MAX_BYTES  # per image
    max_page_bytes: int = 10 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    near_duplicate_distance: int = 4  # pHash bits; near-duplicates are saved and reported
    workers: int = 16  # concurrent fetches over all hosts
    per_host: int = 4  # concurrent fetches per host
    host_delay_s: float = 0.1  # between request starts on one host (raised by Crawl-delay)
    timeout_s: float = 10.0  # connect and each read; a whole body gets 4x this
    retries: int = 2
    max_retry_wait_s: float = 10.0
    time_limit_s: float | None = None  # for this run; in-flight fetches still finish

    def check(self) -> None:
        """Refuse options that cannot work, naming the CLI flag."""
        least = {"depth": 0, "min_side": 0, "retries": 0, "host_delay_s": 0, "max_retry_wait_s": 0, "workers": 1,
                 "per_host": 1, "max_images": 1, "max_pages": 1, "max_side": 1, "max_bytes": 1, "max_pixels": 1}
        for name, minimum in least.items():
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise LabelchatError(f"--{name.replace('_', '-')} must be at least {minimum}, not {value}.")
        if self.timeout_s <= 0:
            raise LabelchatError(f"--timeout must be more than 0 seconds, not {self.timeout_s}.")


@dataclass(frozen=True)
class CrawlProgress:
    pages: int  # read, in this crawl
    images: int  # saved, in this crawl
    duplicates: int
    skipped: int  # filtered out: too small, not an image, blocked by robots, ...
    errors: int  # failed on the wire: HTTP errors, timeouts, refused addresses, ...
    bytes: int  # downloaded in this run
    elapsed_s: float


@dataclass
class CrawlReport:
    job_id: int
    resumed: bool = False
    stopped: str = "finished"  # or "max images", "max pages", "time limit", "stopped"
    counts: dict[str, int] = field(default_factory=dict)  # outcome -> URLs, whole crawl
    queued: int = 0  # URLs still in the frontier; resume=True continues with them
    fetched: int = 0  # URLs fetched in this run
    bytes: int = 0
    elapsed_s: float = 0.0
    off_site_links: int = 0  # links not followed because they leave their page's site
    new_item_ids: list[int] = field(default_factory=list)
    near_duplicates: list[NearDuplicate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # start inputs that could not be used

    @property
    def saved(self) -> int:
        return self.counts.get(Outcome.SAVED.value, 0)

    @property
    def images_per_s(self) -> float:
        return len(self.new_item_ids) / self.elapsed_s if self.elapsed_s else 0.0


@dataclass
class _Visit:
    """What a worker learned about one URL; the scheduler thread records it."""

    url: CrawlUrl
    outcome: Outcome
    detail: str | None = None
    image: tuple[str, ImageInfo] | None = None  # where the worker stored the bytes, and what they are
    found: list[CrawlUrl] = field(default_factory=list)
    bytes: int = 0
    off_site: int = 0


def crawl(
    project: Project,
    start_urls: list[str],
    options: CrawlOptions = CrawlOptions(),
    *,
    resume: bool = False,
    on_progress: Callable[[CrawlProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CrawlReport:
    """Crawl page URLs, sitemaps (and indexes) and URL lists (URLs or local files) for images.

    With `resume`, continues the project's latest crawl (its frontier and
    outcomes), adding any `start_urls` given; `options` apply to this run.
    Outcomes per URL stay queryable with `project.store.crawl_urls(report.job_id)`.
    """
    options.check()
    store = project.store
    if resume:
        job = store.latest_job("crawl")
        if job is None:
            raise LabelchatError("There is no crawl to resume in this project. Start one: labelchat crawl URL")
        store.update_job(job.id, status=JobStatus.RUNNING, message="resumed")
    elif not start_urls:
        raise LabelchatError("Give at least one page URL, sitemap or URL list to crawl.")
    else:
        job = store.start_job("crawl", {"start_urls": list(start_urls), "options": asdict(options)})
    starts, problems = start_entries(start_urls)
    store.crawl_enqueue(job.id, starts)
    crawler = _Crawler(project, job.id, options, on_progress, should_stop or (lambda: False))
    report = CrawlReport(job.id, resumed=resume, problems=problems)
    try:
        report.stopped = crawler.run(report)
    except BaseException:
        store.update_job(job.id, status=JobStatus.FAILED, message="interrupted; resume to go on")
        raise
    counts = store.crawl_counts(job.id)
    report.queued = counts.pop("queued", 0)
    if report.stopped == "finished" and report.queued:  # only pages are left, over --max-pages
        report.stopped = "max pages"
    report.counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    status = JobStatus.CANCELLED if report.stopped == "stopped" else JobStatus.DONE
    store.update_job(job.id, done=sum(counts.values()), status=status, message=summary(report))
    return report


def summary(report: CrawlReport) -> str:
    parts = ", ".join(f"{outcome} {n}" for outcome, n in report.counts.items())
    return f"{report.stopped}: {parts or 'nothing fetched'}; {report.queued} still queued"


def start_entries(inputs: list[str]) -> tuple[list[CrawlUrl], list[Problem]]:
    """Frontier entries (depth 0) for start URLs and local URL-list or sitemap files."""
    entries: list[CrawlUrl] = []
    problems: list[Problem] = []
    for given in inputs:
        if "://" in given and (url := parse.normalize_url(given)):
            entries.append(CrawlUrl(url, parse.guess_kind(url), 0))
            continue
        path = Path(given).expanduser()
        if not path.is_file():
            problems.append(Problem(given, Reason.NOT_FOUND, f"{given!r} is neither an http(s) URL nor a readable file"))
            continue
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
        if parse.looks_like_sitemap(text):
            entries += parse.sitemap_entries(parse.parse_sitemap(text, "file:///"), 0, None)
        else:
            entries += [CrawlUrl(u, parse.guess_kind(u), 0) for u in parse.parse_url_list(text)]
    return entries, problems


class _Crawler:
    def __init__(self, project: Project, job_id: int, options: CrawlOptions, on_progress, should_stop):
        self.project, self.store, self.job_id, self.options = project, project.store, job_id, options
        self.on_progress, self.should_stop = on_progress, should_stop
        self.gate = HostGate(options.per_host, options.host_delay_s)
        self.fetcher = Fetcher(WireOptions(options.timeout_s, options.retries, options.max_retry_wait_s,
                                           allow_private=options.allow_private, allow_hosts=tuple(options.allow_hosts),
                                           connections=options.workers), self.gate)
        self.scope = Scope(options.depth, options.same_site, tuple(options.include), tuple(options.exclude))
        self.near = NearDuplicateIndex(self.store.phashes(), options.near_duplicate_distance)
        counts = self.store.crawl_counts(job_id)
        self.totals = {Outcome(k): v for k, v in counts.items() if k != "queued"}
        self.documents = sum(n for kind in DOCUMENT_KINDS for s, n in self.store.crawl_counts(job_id, kind).items() if s != "queued")
        self.started = time.monotonic()
        self._buffer: list[CrawlUrl] = []
        self._buffer_kinds: tuple[str, ...] = ()
        self._stale = True
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._unrecorded: deque[_Visit] = deque()
        # Shared with the workers, under `_claims`: they claim URLs from the buffer themselves.
        self._claims = threading.Lock()
        self._inflight: dict[str, CrawlUrl] = {}  # claimed and not yet recorded, by URL
        self._running = 0  # workers busy
        self._stopping = False

    # -- scheduling ---------------------------------------------------------------------

    def run(self, report: CrawlReport) -> str:
        self.report = report
        reason: str | None = None
        pool = ThreadPoolExecutor(max_workers=self.options.workers, thread_name_prefix="crawl")
        try:
            while True:
                reason = reason or self._why_stop()
                self._stopping = reason is not None
                if reason is None:
                    self._launch(pool)
                if not self._inflight:
                    if reason or not self._queued():
                        break
                    time.sleep(min(max(self.gate.seconds_to_next(), 0.002), 0.5))
                    continue
                self._collect(timeout=self.gate.seconds_to_next() or None)
                reason = reason or self._why_stop()
                self._stopping = reason is not None
                if reason is None:  # refill the idle workers before the slow part, the writes
                    self._launch(pool)
                self._record_collected()
        except BaseException:
            self._stopping = True
            self._salvage()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            self.fetcher.close()
            report.elapsed_s = time.monotonic() - self.started
        return reason or "finished"

    def _work(self, url: CrawlUrl | None) -> None:
        """A worker's whole job: visit, hand the result (or our own bug) to the scheduler, claim the next URL."""
        try:
            while url is not None:
                visit = self._visit(url)
                self.gate.finish(host_key(url.url))
                self._results.put(visit)
                url = next(iter(self._claim(1)), None)
        except BaseException as exc:  # not a bad URL (those are outcomes): a bug, raised in the caller
            self._results.put(exc)
        finally:
            with self._claims:
                self._running -= 1

    def _collect(self, timeout: float | None) -> None:
        """Take finished visits: wait for one (up to `timeout`), then whatever else is ready."""
        try:
            item = self._results.get(timeout=timeout)
            while True:
                if isinstance(item, BaseException):
                    raise item
                self._unrecorded.append(item)
                item = self._results.get_nowait()
        except queue.Empty:
            pass

    def _record_collected(self) -> None:
        """Record the round's finished visits in one commit (one per visit cost more than the fetches)."""
        if not self._unrecorded:
            return
        with self.store.transaction():
            while self._unrecorded:  # in flight until recorded, so quotas still count them
                self._record(self._unrecorded.popleft())
        if self.on_progress:  # after the commit: a callback that raises loses nothing recorded
            self.on_progress(self._progress())

    def _salvage(self, seconds: float = 2.0) -> None:
        """On an interrupt, record what is done or finishes within `seconds`: a resume then refetches little."""
        self.on_progress = None
        deadline = time.monotonic() + seconds
        try:
            while True:
                idle = not self._running  # read first: a worker queues its last result before it stops
                self._collect(timeout=0 if idle else max(0.0, min(0.05, deadline - time.monotonic())))
                self._record_collected()
                if idle or time.monotonic() >= deadline:
                    return
        except Exception:  # the interrupt that got us here is what the caller must see
            return

    def _why_stop(self) -> str | None:
        if self.should_stop():
            return "stopped"
        limit = self.options.time_limit_s
        if limit is not None and time.monotonic() - self.started > limit:
            return "time limit"
        if self.options.max_images is not None and self.totals.get(Outcome.SAVED, 0) >= self.options.max_images:
            return "max images"
        return None

    def _kinds(self) -> list[str]:
        """Kinds that may start now: quotas count what is in flight, so none is overshot. Under `_claims`."""
        busy = [u.kind for u in self._inflight.values()]
        images = self.totals.get(Outcome.SAVED, 0) + busy.count("image")
        if self.options.max_images is not None and images >= self.options.max_images:
            return []  # pages would only lead to more images than wanted
        kinds = ["image"]
        documents = self.documents + sum(busy.count(k) for k in DOCUMENT_KINDS)
        if self.options.max_pages is None or documents < self.options.max_pages:
            kinds += DOCUMENT_KINDS
        return kinds

    def _queued(self) -> list[CrawlUrl]:
        """The shallowest queued URLs, from a buffer re-read when it is empty or stale.

        Reading the frontier for every start would sort the whole queue each
        time; a window of 8x workers keeps the order breadth-first enough.
        Only the scheduler thread calls it (it reads the store).
        """
        with self._claims:
            kinds = tuple(self._kinds())
            if not kinds:
                return []
            if self._stale or kinds != self._buffer_kinds or not self._buffer:
                busy = self._inflight.keys()
                rows = self.store.crawl_queued(self.job_id, kinds=kinds, limit=len(busy) + 8 * self.options.workers)
                self._buffer = [u for u in rows if u.url not in busy]
                self._buffer_kinds, self._stale = kinds, False
            return self._buffer

    def _launch(self, pool: ThreadPoolExecutor) -> None:
        """Refresh the buffer, then start URLs on idle workers (busy ones claim their next URL themselves)."""
        free = self.options.workers - self._running  # only this thread adds to _running
        if not self._queued() or free <= 0:
            return
        started = self._claim(free)
        with self._claims:
            self._running += len(started)  # before the workers start: their exit subtracts
        for url in started:
            pool.submit(self._work, url)

    def _claim(self, most: int) -> list[CrawlUrl]:
        """Up to `most` URLs from the buffer whose kind is within quota and whose host may
        start now, taken out of the buffer and put in flight. Workers call it too."""
        started: list[CrawlUrl] = []
        with self._claims:
            if self._stopping:
                return started
            kinds = self._kinds()
            for url in self._buffer:
                if len(started) == most:
                    break
                if url.kind not in kinds or not self.gate.try_start(host_key(url.url)):
                    continue
                self._inflight[url.url] = url
                started.append(url)
                kinds = self._kinds()
            if started:
                taken = {url.url for url in started}
                self._buffer = [u for u in self._buffer if u.url not in taken]
        return started

    # -- one URL, in a worker thread ----------------------------------------------------------

    def _visit(self, url: CrawlUrl) -> _Visit:
        o = self.options
        limit = image_limit(o.max_bytes) if url.kind == "image" else document_limit(o.max_page_bytes, o.max_bytes)
        try:
            fetched = self.fetcher.get(url.url, limit)
            if sniff_format(fetched.body[:16]):
                visit = self._image(url, fetched)
            elif url.kind == "image":
                visit = _Visit(url, Outcome.NOT_AN_IMAGE, f"the server sent {fetched.content_type or 'an untyped file'}, not an image")
            else:
                text = parse.decode_html(gunzip_capped(fetched.body, o.max_page_bytes), fetched.content_type)
                doc = parse.read_document(url, fetched.url, text, fetched.content_type, fetched.robots_tag, self.scope)
                visit = _Visit(url, Outcome.READ if doc.kind else Outcome.NOT_A_PAGE, doc.detail, found=doc.found, off_site=doc.off_site)
        except FetchFailed as failure:
            return _Visit(url, failure.outcome, failure.detail)
        visit.bytes = len(fetched.body)
        return visit

    def _image(self, url: CrawlUrl, fetched: Fetched) -> _Visit:
        if fetched.robots_tag & {"noindex", "noimageindex", "none"}:
            return _Visit(url, Outcome.BLOCKED_BY_ROBOTS, f"X-Robots-Tag: {', '.join(sorted(fetched.robots_tag))}")
        o = self.options
        try:
            info = inspect_image(fetched.body, max_pixels=o.max_pixels, max_bytes=o.max_bytes)
        except ImageRejected as rejected:
            return _Visit(url, outcome_for(rejected.reason), str(rejected))
        size = f"{info.width}x{info.height}"
        if min(info.width, info.height) < o.min_side:
            return _Visit(url, Outcome.TOO_SMALL, f"{size} is under the minimum of {o.min_side} px a side")
        if o.max_side is not None and max(info.width, info.height) > o.max_side:
            return _Visit(url, Outcome.TOO_LARGE, f"{size} is over the maximum of {o.max_side} px a side")
        # Files are content-addressed and written atomically, so workers store them in parallel;
        # a file whose row never lands (a kill, a duplicate) is a harmless orphan, reused later.
        media_path = self.project.media.put(fetched.body, info.sha256, info.ext)
        return _Visit(url, Outcome.SAVED, image=(media_path, info))

    # -- recording, in the scheduler thread ----------------------------------------------------

    def _record(self, visit: _Visit) -> None:
        outcome, item_id = visit.outcome, None
        if visit.image is not None:
            outcome, item_id = self._store(visit)
        if visit.found:  # before the mark: a kill in between re-reads the page, loses nothing
            self._stale = self.store.crawl_enqueue(self.job_id, visit.found) > 0 or self._stale
        self.store.crawl_mark(self.job_id, visit.url.url, outcome.value, visit.detail, item_id)
        with self._claims:  # out of flight and into the totals at once: quotas never miss it
            del self._inflight[visit.url.url]
            self.totals[outcome] = self.totals.get(outcome, 0) + 1
            self.documents += visit.url.kind in DOCUMENT_KINDS
        self.report.fetched += 1
        self.report.bytes += visit.bytes
        self.report.off_site_links += visit.off_site
        if self.report.fetched % 50 == 0:
            self.store.update_job(self.job_id, done=sum(self.totals.values()))

    def _store(self, visit: _Visit) -> tuple[Outcome, int]:
        (media_path, info), url = visit.image, visit.url
        resembles = self.near.matches(info.phash)  # used only if the item is new
        item, created = self.store.add_item(
            sha256=info.sha256, phash=info.phash, media_path=media_path, width=info.width, height=info.height,
            format=info.format, bytes=info.bytes, near_duplicates=resembles,
            origin=Origin(url.url, page_url=url.page_url, alt_text=url.alt_text, title=url.title))
        if not created:
            visit.detail = f"same bytes as item {item.id}"
            return Outcome.DUPLICATE, item.id
        self.near.add(item.id, info.phash)
        self.report.new_item_ids.append(item.id)
        if resembles:
            other, distance = resembles[0]
            self.report.near_duplicates.append(NearDuplicate(item.id, other, distance))
            visit.detail = f"near-duplicate of item {other} ({distance} bits apart); kept"
        return Outcome.SAVED, item.id

    def _progress(self) -> CrawlProgress:
        t = self.totals
        errors = sum(t.get(o, 0) for o in WIRE_FAILURES)
        kept = t.get(Outcome.SAVED, 0) + t.get(Outcome.DUPLICATE, 0) + t.get(Outcome.READ, 0)
        return CrawlProgress(
            pages=t.get(Outcome.READ, 0), images=t.get(Outcome.SAVED, 0), duplicates=t.get(Outcome.DUPLICATE, 0),
            skipped=sum(t.values()) - kept - errors, errors=errors, bytes=self.report.bytes,
            elapsed_s=time.monotonic() - self.started,
        )
