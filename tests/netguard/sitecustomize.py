"""Loaded by every Python process that has this folder on PYTHONPATH (the Ray test puts it
there for Ray's own processes: workers, dashboard, agents): a connection to anything but
loopback is refused and written to $LABELCHAT_NETGUARD_LOG with its stack; each process that
loads this notes its pid in $LABELCHAT_NETGUARD_LOG.loaded, so the test knows it was on."""

import ipaddress
import os
import socket
import traceback

_LOG = os.environ.get("LABELCHAT_NETGUARD_LOG")


def _outside(sock, address) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return False
    try:
        return not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
    except ValueError:
        return address[0] != "localhost"


def _guard(real):
    def connect(self, address):
        if _outside(self, address):
            with open(_LOG, "a") as log:
                log.write(f"pid {os.getpid()} connect {address!r}\n{''.join(traceback.format_stack())}\n")
            raise OSError(f"refused by the test's guard: {address!r} is not loopback")
        return real(self, address)
    return connect


if _LOG:
    socket.socket.connect = _guard(socket.socket.connect)
    socket.socket.connect_ex = _guard(socket.socket.connect_ex)
    with open(_LOG + ".loaded", "a") as loaded:
        loaded.write(f"{os.getpid()}\n")
