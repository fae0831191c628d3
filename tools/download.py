"""Fetching one image URL of a URL list: the crawl's Fetcher, without robots.txt.

The same checks as a crawl (robots.py): the host's addresses are resolved
once and checked in every spelling, redirects are re-checked, the connection
goes to the checked address, bytes and time are bounded and 429/5xx retried.
Errors come back as `ImageRejected` with a reason, never as a bare urllib3
exception, so a caller can count them and go on with the next URL.
"""

from __future__ import annotations

from .images import ImageRejected, Reason
from .robots import Fetcher, FetchFailed, HostGate, Outcome, WireOptions
from .transport import USER_AGENT, is_http_url

__all__ = ["USER_AGENT", "fetch", "is_http_url", "new_session"]

_REASONS = {Outcome.REFUSED_ADDRESS: Reason.REFUSED_ADDRESS, Outcome.TOO_LARGE: Reason.TOO_LARGE,
            Outcome.NOT_AN_IMAGE: Reason.NOT_AN_IMAGE}


def new_session(allow_private: bool = False) -> Fetcher:
    """A fetcher for many URLs from worker threads (keeps connections and each host's checked addresses)."""
    return Fetcher(WireOptions(timeout_s=10.0, allow_private=allow_private), HostGate(16, 0.0))


def fetch(url: str, session: Fetcher, *, max_bytes: int) -> bytes:
    """The body of `url`, streamed and cut off past `max_bytes`."""
    try:
        return session.get(url, lambda _first, _type: max_bytes, robots=False).body
    except FetchFailed as failure:
        raise ImageRejected(_REASONS.get(failure.outcome, Reason.DOWNLOAD_FAILED), failure.detail) from None
