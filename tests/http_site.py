"""A real HTTP server on 127.0.0.1 for download tests: static files plus a few special routes.

    /files/<name>        a file from the served folder
    /status/<code>       that status code, empty body
    /flaky/<name>        503 on the first request, then the file
    /redirect?to=<url>   a 302 to <url>
    /liar/<size>         says Content-Length: <size>, sends a few bytes
    /stream/<bytes>      streams that many bytes with no Content-Length
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


class Site:
    def __init__(self, root: Path, port: int):
        self.root = root
        self.port = port
        self.hits: dict[str, int] = {}

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def add(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return self.url(f"/files/{name}")


def _handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            parts = urlsplit(self.path)
            site.hits[parts.path] = site.hits.get(parts.path, 0) + 1
            route, _, rest = parts.path.lstrip("/").partition("/")
            if route == "files" and (site.root / rest).is_file():
                return self._send(200, (site.root / rest).read_bytes())
            if route == "status":
                return self._send(int(rest), b"")
            if route == "flaky":
                if site.hits[parts.path] == 1:
                    return self._send(503, b"try again")
                return self._send(200, (site.root / rest).read_bytes())
            if route == "redirect":
                self.send_response(302)
                self.send_header("Location", parse_qs(parts.query)["to"][0])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if route == "liar":
                self.send_response(200)
                self.send_header("Content-Length", rest)
                self.end_headers()
                self.wfile.write(b"\xff\xd8\xff" + b"0" * 10)
                return None
            if route == "stream":
                self.send_response(200)
                self.end_headers()
                chunk = b"\xff\xd8\xff" + b"0" * 65533
                for _ in range(int(rest) // len(chunk)):
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        return None
                self.close_connection = True
                return None
            return self._send(404, b"not found")

        def _send(self, code: int, body: bytes):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def running(server: ThreadingHTTPServer, poll_interval: float = 0.5):
    """Serve on a background thread for the duration of the block, then shut down."""
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    site = Site(root, 0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    site.port = server.server_address[1]
    with running(server):
        yield site
