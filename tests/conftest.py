"""Shared fixtures: real data, real SQLite projects, a real HTTP server, no outside network.

Every socket connection to an address outside 127.0.0.0/8 (and ::1) fails
before a packet leaves, so no test and no library can phone home.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PHOTOS = ROOT / "examples" / "photos"
FASHION = SHARED / "fashion-dev"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

sys.path.insert(0, str(Path(__file__).parent))


class OutsideNetworkError(OSError):
    pass


def _is_loopback(address) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return host == "localhost"
    return True  # AF_UNIX paths and the like stay on this machine


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise OutsideNetworkError(f"tests may only connect to 127.0.0.0/8, not {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise OutsideNetworkError(f"tests may only connect to 127.0.0.0/8, not {address!r}")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    assert PHOTOS.is_dir(), f"the committed demo photos are missing at {PHOTOS}"
    return PHOTOS


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    assert FASHION.is_dir(), f"../shared/data/fashion-dev is missing at {FASHION}"
    return FASHION


@pytest.fixture
def project(tmp_path):
    from index.project import Project

    with Project(tmp_path / "project") as p:
        yield p


@pytest.fixture
def http_server(tmp_path):
    from http_site import serve

    with serve(tmp_path / "www") as server:
        yield server
