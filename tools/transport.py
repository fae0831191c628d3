"""HTTP(S) connections that go only to the addresses that were checked (see addresses.py).

A `PinnedTransport` resolves each host once, checks every address it gets,
and keeps one urllib3 connection pool per (scheme, host, port, address):
the socket is opened to that IP, while the request carries the URL's Host
header and TLS sends the host name (SNI) and verifies the certificate
against it. The host is never looked up again, so a DNS answer that changes
between the check and the connection (rebinding) cannot redirect a fetch.
Proxies from the environment (HTTP_PROXY, ...) are not used: urllib3 reads
none, and a proxy would resolve the name itself, after our check.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from urllib.parse import urlsplit

from .addresses import AddressPolicy, Resolver, resolve, system_resolver

DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "labelchat/0.1 (+image dataset builder; respects robots.txt)"
ROBOTS_AGENT = "labelchat"  # the product token robots.txt groups are matched against


def is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:  # that, or an unbalanced IPv6 bracket (a redirect may send either)
        return False
    return parts.scheme in DEFAULT_PORTS and bool(parts.hostname)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 80)


class PinnedTransport:
    """GETs over pools pinned to checked addresses. Thread-safe."""

    def __init__(self, policy: AddressPolicy, *, headers: dict[str, str], maxsize: int = 16,
                 resolver: Resolver | None = None, ssl_context=None, max_pools: int = 64):
        self.policy = policy
        self.headers = headers
        self.maxsize = maxsize
        self.resolver = resolver or system_resolver
        self.ssl_context = ssl_context  # None: the system's CA certificates
        self.max_pools = max_pools
        self._lock = threading.Lock()
        self._pools: OrderedDict[tuple, object] = OrderedDict()
        self._addresses: dict[tuple[str, int], list[str] | Exception] = {}
        self._resolving: dict[tuple[str, int], threading.Lock] = {}

    def addresses(self, url: str) -> list[str]:
        """The checked addresses of `url`'s host, resolved on first use; raises AddressRefused or CannotResolve."""
        key = _host_port(url)
        with self._lock:
            lock = self._resolving.setdefault(key, threading.Lock())
        with lock:  # one lookup per host, even when many threads ask at once
            if key not in self._addresses:
                try:
                    self._addresses[key] = resolve(key[0], key[1], self.policy, self.resolver)
                except Exception as exc:  # AddressRefused, CannotResolve: it stands for the host from now on
                    self._addresses[key] = exc
        found = self._addresses[key]
        if isinstance(found, Exception):  # a fresh exception per call: threads must not share one
            raise type(found)(str(found))
        return found

    def get(self, url: str, *, timeout):
        """One GET of `url`, headers read, body not: tries the host's checked addresses in order
        until one connects (the one that did goes first next time). Raises urllib3's errors."""
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        addresses = self.addresses(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname or ""
        shown = f"[{host}]" if ":" in host else host
        headers = {**self.headers, "Host": shown if port == DEFAULT_PORTS[parts.scheme] else f"{shown}:{port}"}
        for n, address in enumerate(list(addresses)):
            pool = self._pool(parts.scheme, host, port, address)
            try:
                response = pool.urlopen("GET", path, headers=headers, retries=False, redirect=False,
                                        assert_same_host=False, preload_content=False, timeout=timeout)
            except (NewConnectionError, ConnectTimeoutError):
                if n == len(addresses) - 1:
                    raise
                continue
            if n:  # a new list: other threads may be walking the old one
                self._addresses[(host, port)] = [address] + [a for a in addresses if a != address]
            return response
        raise AssertionError("unreachable: resolve returns at least one address")

    def _pool(self, scheme: str, host: str, port: int, address: str):
        from urllib3 import HTTPConnectionPool, HTTPSConnectionPool

        key = (scheme, host, port, address)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            if scheme == "https":  # the socket goes to the address; SNI and the certificate check use the name
                pool = HTTPSConnectionPool(address, port, maxsize=self.maxsize, block=False, server_hostname=host,
                                           assert_hostname=host, ssl_context=self.ssl_context)
            else:
                pool = HTTPConnectionPool(address, port, maxsize=self.maxsize, block=False)
            self._pools[key] = pool
            while len(self._pools) > self.max_pools:
                self._pools.popitem(last=False)[1].close()
            return pool

    def close(self) -> None:
        with self._lock:
            while self._pools:
                self._pools.popitem()[1].close()
