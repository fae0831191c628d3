"""A small web site on 127.0.0.1 for crawl tests: a route table plus hit counters.

Each route answers one path (the query is ignored) with a body, a status,
headers, an optional delay, and optionally a few 503s first. The server
counts hits per path and records how many requests were in flight at once
and when each started, so tests can check politeness.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from http_site import running


@dataclass
class Route:
    body: bytes = b""
    content_type: str | None = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    fail_first: int = 0  # answer 503 this many times before the real answer
    retry_after: str | None = None  # sent with those 503s


class CrawlSite:
    def __init__(self) -> None:
        self.port = 0
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.starts: list[float] = []
        self.active = 0
        self.max_active = 0
        self.agents: set[str] = set()
        self._lock = threading.Lock()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def page(self, path: str, html: str, **route) -> str:
        self.routes[path] = Route(html.encode("utf-8"), **route)
        return self.url(path)

    def file(self, path: str, data: bytes, content_type: str | None = "image/jpeg", **route) -> str:
        self.routes[path] = Route(data, content_type, **route)
        return self.url(path)

    def redirect(self, path: str, to: str) -> str:
        self.routes[path] = Route(b"", None, 302, {"Location": to})
        return self.url(path)

    def fetched(self) -> Counter[str]:
        """Hits per path, robots.txt left out."""
        return Counter({p: n for p, n in self.hits.items() if p != "/robots.txt"})

    def _enter(self, path: str, agent: str) -> Route | None:
        with self._lock:
            self.agents.add(agent)
            self.hits[path] += 1
            self.starts.append(time.monotonic())
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            return self.routes.get(path)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1


def _handler(site: CrawlSite):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between headers and body

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = urlsplit(self.path).path
            route = site._enter(path, self.headers.get("User-Agent", ""))
            try:
                self._answer(path, route)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                site._leave()

        def _answer(self, path: str, route: Route | None) -> None:
            if route is None:
                return self._send(404, b"<h1>not found</h1>", "text/html", {})
            if route.delay_s:
                time.sleep(route.delay_s)
            if site.hits[path] <= route.fail_first:
                extra = {"Retry-After": route.retry_after} if route.retry_after else {}
                return self._send(503, b"busy", "text/plain", extra)
            self._send(route.status, route.body, route.content_type, route.headers)

        def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str]):
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client closing a kept-alive connection
        pass


@contextmanager
def serve_site():
    site = CrawlSite()
    server = _QuietServer(("127.0.0.1", 0), _handler(site))
    site.port = server.server_address[1]
    with running(server, poll_interval=0.05):
        yield site
