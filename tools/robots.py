"""What a crawl may fetch, and how: scope, robots rules, per-host pacing, and the one GET it uses.

`Fetcher.get` is the only place a crawl touches the network. Per request it:
refuses non-http(s) URLs and hosts with a private, loopback, link-local or
otherwise non-public address in any spelling (unless allowed; addresses.py),
checked again on every redirect hop, and connects only to the address it
checked (transport.py: no second DNS lookup); asks robots.txt (fetched once
per host and read as RFC 9309 says, robotstxt.py: a 4xx means no rules, an
unreachable robots.txt means stay out); streams the body and stops past a
byte cap or a total time; retries 429/5xx and broken connections with bounded backoff,
honouring Retry-After. It returns a `Fetched` or raises `FetchFailed` with an
`Outcome`, never a bare urllib3 exception.

`HostGate` lets a request start on a host only when the host has a free slot
and its delay since the last start passed; the scheduler and the workers
that claim their next URL ask it, under its lock.
"""

from __future__ import annotations

import gzip
import io
import itertools
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from fnmatch import fnmatchcase
from typing import Callable
from urllib.parse import urljoin, urlsplit

from .addresses import AddressPolicy, AddressRefused, CannotResolve, Resolver
from .images import Reason, sniff_format
from .transport import ROBOTS_AGENT, USER_AGENT, PinnedTransport, is_http_url

ROBOTS_MAX_BYTES = 512 * 1024  # Google reads the first 500 KiB
CRAWL_DELAY_CAP_S = 10.0  # a robots.txt Crawl-delay is honoured up to this
BACKOFF_S = 0.5
CHUNK = 64 * 1024


class Outcome(str, Enum):
    """What happened to one crawl URL. Values are stable: scripts and the store keep them."""

    SAVED = "saved"  # a new image in the project
    DUPLICATE = "duplicate"  # same bytes as an item already here; the source was recorded
    READ = "read"  # a page, sitemap or URL list whose links were taken
    TOO_SMALL = "too small"
    TOO_LARGE = "too large"  # over the byte limit, or a side over the maximum
    TOO_MANY_PIXELS = "too many pixels"  # a possible decompression bomb
    NOT_AN_IMAGE = "not an image"
    CORRUPT = "corrupt image"  # looks like an image, does not decode (e.g. truncated)
    NOT_A_PAGE = "not a page"  # a page URL that served neither HTML, a sitemap, a list nor an image
    BLOCKED_BY_ROBOTS = "blocked by robots"  # robots.txt, X-Robots-Tag or meta robots
    HTTP_ERROR = "HTTP error"
    TIMEOUT = "timeout"
    REFUSED_ADDRESS = "refused address"
    TOO_MANY_REDIRECTS = "too many redirects"
    DOWNLOAD_FAILED = "download failed"  # connection refused or broken, unknown host, ...


_BY_REASON = {
    Reason.EMPTY: Outcome.NOT_AN_IMAGE,
    Reason.NOT_AN_IMAGE: Outcome.NOT_AN_IMAGE,
    Reason.CORRUPT: Outcome.CORRUPT,
    Reason.TOO_MANY_PIXELS: Outcome.TOO_MANY_PIXELS,
    Reason.TOO_LARGE: Outcome.TOO_LARGE,
    Reason.REFUSED_ADDRESS: Outcome.REFUSED_ADDRESS,
}


def outcome_for(reason: Reason) -> Outcome:
    return _BY_REASON.get(reason, Outcome.DOWNLOAD_FAILED)


class FetchFailed(Exception):
    def __init__(self, outcome: Outcome, detail: str):
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


@dataclass(frozen=True)
class WireOptions:
    timeout_s: float = 10.0  # connect, and each wait for bytes; a whole body gets 4x this
    retries: int = 2  # extra tries on 429, 5xx and broken connections
    max_retry_wait_s: float = 10.0  # a longer Retry-After gives up instead of waiting
    max_redirects: int = 5
    allow_private: bool = False
    allow_hosts: tuple[str, ...] = ()  # hosts exempt from the private-address check
    user_agent: str = USER_AGENT
    connections: int = 16  # kept-alive connections per host: one per worker thread


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    content_type: str | None
    robots_tag: frozenset[str]  # X-Robots-Tag directives that apply to us
    body: bytes


# A byte cap chosen from the first chunk and the Content-Type; it may raise FetchFailed.
LimitFn = Callable[[bytes, "str | None"], int]


def image_limit(max_bytes: int) -> LimitFn:
    """Up to `max_bytes`, and stop at once when the first bytes are not an image's."""

    def limit(first: bytes, content_type: str | None) -> int:
        if len(first) >= 16 and not sniff_format(first):
            sent = content_type or "an untyped file"
            raise FetchFailed(Outcome.NOT_AN_IMAGE, f"the server sent {sent} starting with {first[:12]!r}, not an image")
        return max_bytes

    return limit


def document_limit(max_page_bytes: int, max_image_bytes: int) -> LimitFn:
    """A page's cap, or an image's when the first bytes show a page URL serves an image."""
    return lambda first, _type: max_image_bytes if sniff_format(first[:16]) else max_page_bytes


def gunzip_capped(body: bytes, max_bytes: int) -> bytes:
    """Unpack a gzipped file (sitemap.xml.gz), refusing to inflate past `max_bytes` (gzip bombs)."""
    if not body.startswith(b"\x1f\x8b"):
        return body
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as unpacked:
            data = unpacked.read(max_bytes + 1)
    except (OSError, EOFError) as exc:
        raise FetchFailed(Outcome.NOT_A_PAGE, f"broken gzip data: {exc}") from exc
    if len(data) > max_bytes:
        raise FetchFailed(Outcome.TOO_LARGE, f"unpacks to more than {max_bytes:,} bytes")
    return data


class HostGate:
    """Per-host concurrency and spacing between request starts. Thread-safe."""

    def __init__(self, per_host: int, delay_s: float):
        self.per_host = max(1, per_host)
        self.delay_s = max(0.0, delay_s)
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._next: dict[str, float] = {}
        self._delay: dict[str, float] = {}

    def try_start(self, host: str) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._active.get(host, 0) >= self.per_host or self._next.get(host, 0.0) > now:
                return False
            self._active[host] = self._active.get(host, 0) + 1
            self._next[host] = now + self._delay.get(host, self.delay_s)
            return True

    def finish(self, host: str) -> None:
        with self._lock:
            self._active[host] -= 1

    def slow_down(self, host: str, *, delay_s: float | None = None, pause_s: float = 0.0) -> None:
        """A robots.txt Crawl-delay (`delay_s`), or a pause after a 429 (`pause_s`)."""
        with self._lock:
            if delay_s is not None:
                self._delay[host] = max(self.delay_s, min(delay_s, CRAWL_DELAY_CAP_S))
            self._next[host] = max(self._next.get(host, 0.0), time.monotonic() + pause_s)

    def seconds_to_next(self) -> float:
        """How long until some host that waits on its delay may start again (0 if none waits)."""
        with self._lock:
            now = time.monotonic()
            waits = [t - now for t in self._next.values() if t > now]
            return min(waits) if waits else 0.0


@dataclass(frozen=True)
class Scope:
    """Which found URLs a crawl takes: link depth, the page's own site, patterns."""

    depth: int
    same_site: bool = True
    include: tuple[str, ...] = ()  # globs when they hold * ? or [, else substrings
    exclude: tuple[str, ...] = ()

    def wants(self, url: str) -> bool:
        def match(pattern: str) -> bool:
            return fnmatchcase(url, pattern) if any(c in pattern for c in "*?[") else pattern in url

        return (not self.include or any(map(match, self.include))) and not any(map(match, self.exclude))


def host_key(url: str) -> str:
    return urlsplit(url).netloc.lower()


def robots_tag_directives(value: str | None, agent: str = "labelchat") -> frozenset[str]:
    """Directives of X-Robots-Tag that apply to us: unprefixed ones and those for our agent."""
    found: set[str] = set()
    current_agent: str | None = None
    for token in (value or "").split(","):
        token = token.strip().lower()
        name, sep, rest = token.partition(":")
        if sep and name.strip() not in ("unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"):
            current_agent, token = name.strip(), rest.strip()
        if token and current_agent in (None, agent, "*"):
            found.add(token)
    return frozenset(found)


class Fetcher:
    """Polite, bounded GETs from worker threads, over thread-safe urllib3 pools pinned to checked addresses.

    urllib3 directly, not requests on top of it: per request, requests' settings
    merging and header handling cost a crawl more CPU than decoding the image.
    `resolver` (host, port -> addresses) and `ssl_context` are for tests.
    """

    def __init__(self, options: WireOptions, gate: HostGate, *, resolver: Resolver | None = None, ssl_context=None):
        self.options = options
        self.gate = gate
        self._transport = PinnedTransport(
            AddressPolicy(options.allow_private, tuple(options.allow_hosts)), maxsize=options.connections,
            headers={"User-Agent": options.user_agent, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"},
            resolver=resolver, ssl_context=ssl_context)
        self._lock = threading.Lock()
        self._robots: dict[str, object] = {}  # host -> its Protego rules, or the FetchFailed that stands for it
        self._robots_locks: dict[str, threading.Lock] = {}

    def close(self) -> None:
        self._transport.close()

    def get(self, url: str, limit: LimitFn, *, robots: bool = True) -> Fetched:
        """The body of `url` after robots, address, redirect and size checks."""
        from urllib3.exceptions import HTTPError

        url, response = self._follow(url, robots=robots)
        with response:  # a body read to the end has given its connection back to the pool already
            if response.status >= 300:
                raise FetchFailed(Outcome.HTTP_ERROR, f"HTTP {response.status} {response.reason or ''}".strip())
            content_type = response.headers.get("Content-Type")
            tags = robots_tag_directives(", ".join(response.headers.getlist("X-Robots-Tag")))
            try:
                body = self._read(response, limit, content_type)
            except HTTPError as exc:
                raise _as_failure(exc) from exc
        return Fetched(url, content_type, tags, body)

    def _follow(self, url: str, *, robots: bool):
        """(final URL, response with headers read), following redirects by hand."""
        hops = [url]
        while True:
            self._check(url, robots=robots)
            response = self._request(url)
            location = response.get_redirect_location()  # None or False unless a 3xx with a Location
            if not location:
                return url, response
            response.close()
            try:
                url = urljoin(url, location.strip())
            except ValueError:  # e.g. an unbalanced IPv6 bracket
                raise FetchFailed(Outcome.DOWNLOAD_FAILED, f"redirected to {location!r}, which is not an http(s) URL") from None
            if url in hops:
                raise FetchFailed(Outcome.TOO_MANY_REDIRECTS, f"redirect loop: {' -> '.join(hops + [url])}")
            if len(hops) > self.options.max_redirects:
                raise FetchFailed(Outcome.TOO_MANY_REDIRECTS, f"more than {self.options.max_redirects} redirects")
            hops.append(url)

    # -- checks ---------------------------------------------------------------------------

    def _check(self, url: str, *, robots: bool) -> None:
        """The address first (so a refused host's robots.txt is never asked for), then robots.txt."""
        if not is_http_url(url):
            raise FetchFailed(Outcome.DOWNLOAD_FAILED, f"{url!r} is not an http(s) URL")
        try:
            self._transport.addresses(url)  # resolved and checked once per host; connections go there only
        except AddressRefused as exc:
            raise FetchFailed(Outcome.REFUSED_ADDRESS, str(exc)) from None
        except CannotResolve as exc:
            raise FetchFailed(Outcome.DOWNLOAD_FAILED, str(exc)) from None
        if robots:
            self._robots_check(url)

    def _robots_check(self, url: str) -> None:
        """Raises FetchFailed unless the host's robots.txt lets us fetch `url`."""
        host = host_key(url)
        with self._lock:
            lock = self._robots_locks.setdefault(host, threading.Lock())
        with lock:  # one thread reads a host's robots.txt; the others wait for it
            if host not in self._robots:
                self._robots[host] = self._load_robots(url)
        rules = self._robots[host]
        if isinstance(rules, FetchFailed):  # a fresh exception per URL: threads must not share one
            raise FetchFailed(rules.outcome, rules.detail)
        if not rules.can_fetch(url, ROBOTS_AGENT):
            raise FetchFailed(Outcome.BLOCKED_BY_ROBOTS, f"robots.txt of {host} disallows it")

    def _load_robots(self, url: str):
        """The host's rules; or, when its robots.txt cannot be read (no answer, 5xx, 429), the
        failure, which then stands for every URL of the host: RFC 9309 (2.3.1.4) has crawlers
        treat such a site as closed, and the outcome says why (not 'blocked by robots').

        Protego (Scrapy's parser) reads the rules as RFC 9309 says: the group for our product
        token `labelchat` before `*`, the longest matching rule wins, Allow on a tie, `*` and
        `$`, percent-encoding normalised. urllib.robotparser takes the first match instead.
        """
        from protego import Protego

        parts = urlsplit(url)
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        try:
            fetched = self.get(robots_url, lambda _chunk, _type: ROBOTS_MAX_BYTES, robots=False)
            rules = Protego.parse(fetched.body.decode("utf-8", errors="replace"))
        except FetchFailed as failure:
            if failure.outcome is Outcome.REFUSED_ADDRESS:
                raise
            if not (failure.detail.startswith("HTTP 4") and not failure.detail.startswith("HTTP 429")):
                return FetchFailed(failure.outcome, f"{robots_url} could not be read ({failure.detail}), so the "
                                                    f"site is treated as closed to crawlers (RFC 9309)")
            rules = Protego.parse("")  # no robots.txt (4xx): everything is allowed
        delay = rules.crawl_delay(ROBOTS_AGENT)
        if delay:
            self.gate.slow_down(host_key(url), delay_s=float(delay))
        return rules

    # -- the request ------------------------------------------------------------------------

    def _request(self, url: str):
        """One GET (headers only), retried on 429, 5xx and broken connections."""
        from urllib3 import Timeout
        from urllib3.exceptions import HTTPError, LocationValueError

        timeout = Timeout(connect=self.options.timeout_s, read=self.options.timeout_s)
        for attempt in range(self.options.retries + 1):
            last = attempt == self.options.retries
            try:
                response = self._transport.get(url, timeout=timeout)
            except HTTPError as exc:
                failure = _as_failure(exc)
                if last or failure.outcome is not Outcome.DOWNLOAD_FAILED or isinstance(exc, LocationValueError):
                    raise failure from exc  # a URL that cannot be parsed fails the same way every time
                time.sleep(min(BACKOFF_S * 2**attempt, self.options.max_retry_wait_s))
                continue
            if response.status != 429 and response.status < 500:
                return response
            wait = _retry_after(response.headers.get("Retry-After"))
            response.close()
            detail = f"HTTP {response.status} {response.reason or ''}".strip()
            if wait is not None and wait > self.options.max_retry_wait_s:
                raise FetchFailed(Outcome.HTTP_ERROR, f"{detail}; Retry-After {wait:.0f} s is longer than the {self.options.max_retry_wait_s:.0f} s we wait")
            if last:
                raise FetchFailed(Outcome.HTTP_ERROR, f"{detail} after {attempt + 1} tries")
            wait = BACKOFF_S * 2**attempt if wait is None else wait
            if response.status in (429, 503):
                self.gate.slow_down(host_key(url), pause_s=wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _read(self, response, limit: LimitFn, content_type: str | None) -> bytes:
        """The body, streamed; stops past the cap chosen from the first chunk, or past 4x timeout."""
        deadline = time.monotonic() + 4 * self.options.timeout_s
        declared = response.headers.get("Content-Length", "")
        chunks: list[bytes] = []
        size, cap = 0, None
        stream = response.stream(CHUNK, decode_content=True)
        try:
            first = next(stream, None)
        except Exception:  # a server that declares more than it sends breaks off: say the size it declared
            if declared.isdigit() and int(declared) > limit(b"", content_type):
                raise FetchFailed(Outcome.TOO_LARGE, f"Content-Length {int(declared):,} is over the limit of "
                                                     f"{limit(b'', content_type):,} bytes") from None
            raise
        for chunk in itertools.chain([first] if first is not None else [], stream):
            if cap is None:
                cap = limit(chunk, content_type)
                if declared.isdigit() and int(declared) > cap:
                    raise FetchFailed(Outcome.TOO_LARGE, f"Content-Length {int(declared):,} is over the limit of {cap:,} bytes")
            size += len(chunk)
            if size > cap:
                raise FetchFailed(Outcome.TOO_LARGE, f"more than {cap:,} bytes; stopped reading")
            if time.monotonic() > deadline:
                raise FetchFailed(Outcome.TIMEOUT, f"the body took longer than {4 * self.options.timeout_s:g} s")
            chunks.append(chunk)
        if cap is None:
            limit(b"", content_type)
        return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _as_failure(exc: Exception) -> FetchFailed:
    from urllib3.exceptions import NewConnectionError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    text = f"{type(exc).__name__}: {exc}"
    refused = isinstance(exc, NewConnectionError)  # urllib3 files it under timeouts, for old callers
    if (isinstance(exc, Urllib3Timeout) and not refused) or "timed out" in str(exc).lower():
        return FetchFailed(Outcome.TIMEOUT, text)
    return FetchFailed(Outcome.DOWNLOAD_FAILED, text)
