"""Fetching one image URL with requests: bounded in time, bytes and retries.

Errors come back as `ImageRejected` with a reason, never as a bare requests
exception, so a caller can count them and go on with the next URL.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

from .images import ImageRejected, Reason

USER_AGENT = "labelchat/0.1 (+image dataset builder; respects robots.txt)"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
RETRIES = 2  # extra tries after the first, on connection errors, 429 and 5xx
BACKOFF_S = 0.5
MAX_REDIRECTS = 5


def is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:  # that, or an unbalanced IPv6 bracket (a redirect may send either)
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_address(url: str, *, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to a private, loopback or link-local address.

    Served on a network, the app would otherwise let anyone make it fetch from
    inside that network (cloud metadata at 169.254.169.254, admin pages).
    """
    host = urlsplit(url).hostname or ""
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ImageRejected(Reason.DOWNLOAD_FAILED, f"cannot resolve host {host!r}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise ImageRejected(
                Reason.REFUSED_ADDRESS,
                f"{host} resolves to {address}, a private/loopback/link-local address; "
                f"pass --allow-private if you mean it",
            )


def new_session():
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch(url: str, session, *, max_bytes: int, allow_private: bool = False) -> bytes:
    """The body of `url`, streamed and cut off past `max_bytes`."""
    import requests

    if not is_http_url(url):
        raise ImageRejected(Reason.DOWNLOAD_FAILED, f"{url!r} is not an http(s) URL")
    last_error = ""
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            with _get(session, url, allow_private) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    last_error = f"HTTP {response.status_code}"
                    continue
                if response.status_code >= 400:
                    raise ImageRejected(Reason.DOWNLOAD_FAILED, f"HTTP {response.status_code}")
                return _read_capped(response, max_bytes)
        except requests.RequestException as exc:
            last_error = f"{type(exc).__name__}: {exc}"
    raise ImageRejected(Reason.DOWNLOAD_FAILED, f"gave up after {RETRIES + 1} tries: {last_error}")


def _get(session, url: str, allow_private: bool):
    """GET with redirects followed by hand, so every hop's address is checked first."""
    for _ in range(MAX_REDIRECTS + 1):
        check_address(url, allow_private=allow_private)
        response = session.get(
            url, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), allow_redirects=False
        )
        location = response.headers.get("Location")
        if not (response.is_redirect and location):
            return response
        response.close()
        url = urljoin(url, location)
        if not is_http_url(url):
            raise ImageRejected(Reason.DOWNLOAD_FAILED, f"redirected to a non-http URL {url!r}")
    raise ImageRejected(Reason.DOWNLOAD_FAILED, f"more than {MAX_REDIRECTS} redirects")


def _read_capped(response, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ImageRejected(
            Reason.TOO_LARGE, f"Content-Length {int(declared):,} is over the limit of {max_bytes:,}"
        )
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise ImageRejected(Reason.TOO_LARGE, f"more than {max_bytes:,} bytes; stopped reading")
        chunks.append(chunk)
    return b"".join(chunks)
