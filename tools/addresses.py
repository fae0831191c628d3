"""Which network addresses a fetch may connect to, decided once per host and then pinned.

`refusal` is the one rule: an address is refused when it, or any IPv4
address embedded in it, is loopback, private, link-local, shared (CGNAT),
multicast, reserved, unspecified, documentation or otherwise not globally
reachable. IPv6 embeddings are unwrapped first: IPv4-mapped, IPv4-translated,
IPv4-compatible, 6to4, Teredo (server and client) and NAT64, so that
`64:ff9b::a9fe:a9fe` is judged as 169.254.169.254. The ranges are written out
here, not taken from `ipaddress.is_global`, whose table differs between Python
versions (3.11 calls 6to4 and NAT64 forms of 127.0.0.1 global).

`resolve` looks a host up once and checks every address it returns; the
transport (transport.py) then connects only to those addresses, so a name
that answers differently the second time (DNS rebinding) changes nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses, as text, in the order to try them
Resolver = Callable[[str, int], list[str]]

_V4 = [(ipaddress.ip_network(net), why) for net, why in [
    ("0.0.0.0/8", "'this network' (unspecified)"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved for IETF protocols"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved (former 6to4 relays)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved for benchmarks"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # 255.255.255.255 (broadcast) included
]]

_V6 = [(ipaddress.ip_network(net), why) for net, why in [
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "a local-use NAT64 prefix"),
    ("100::/64", "discard-only"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "reserved (SRv6)"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
]]
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_IETF_PROTOCOLS = ipaddress.ip_network("2001::/23")  # Teredo (2001::/32) is unwrapped instead
_TEREDO = ipaddress.ip_network("2001::/32")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291): refused even around a public address
# Prefixes whose last 32 bits are an IPv4 address (RFC 4291, 2765, 6052, 8215).
_LAST_32 = [(ipaddress.ip_network(net), how) for net, how in [
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b::/96", "NAT64"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("::/96", "IPv4-compatible"),
]]


class AddressRefused(Exception):
    """The host resolves to an address a fetch may not reach; the message says which and why."""


class CannotResolve(Exception):
    pass


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[ipaddress.IPv4Address, str]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of its embedding."""
    value = int(address)
    found = [(ipaddress.IPv4Address(value & 0xFFFFFFFF), how) for net, how in _LAST_32
             if address in net and value > 1]  # :: and ::1 are themselves, not IPv4-compatible
    if address in _SIX_TO_FOUR:
        found.append((ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF), "6to4"))
    if address in _TEREDO:
        found.append((ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF), "Teredo server"))
        found.append((ipaddress.IPv4Address(~value & 0xFFFFFFFF), "Teredo client"))
    return found


def refusal(address: IPAddress | str) -> str | None:
    """Why a fetch may not connect to `address` ("loopback", ...), or None when it may."""
    ip = ipaddress.ip_address(address.split("%")[0] if isinstance(address, str) else address)
    if ip.version == 4:
        return next((why for net, why in _V4 if ip in net), None)
    embedded = embedded_ipv4(ip)
    for inner, how in embedded:
        if why := refusal(inner):
            return f"the {how} form of {inner}, {why}"
    if why := next((why for net, why in _V6 if ip in net), None):
        return why
    if ip in _COMPATIBLE:
        return f"the deprecated IPv4-compatible form of {embedded[0][0]}"
    if embedded:
        return None
    if ip in _IETF_PROTOCOLS:
        return "reserved for IETF protocols"
    if ip not in _GLOBAL_UNICAST:
        return "reserved (outside the global unicast range)"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False  # every address may be fetched
    allow_hosts: tuple[str, ...] = ()  # host names (as in the URL) whose addresses are not checked

    def exempt(self, host: str) -> bool:
        return self.allow_private or host.lower().strip("[]") in {h.lower().strip("[]") for h in self.allow_hosts}


def system_resolver(host: str, port: int) -> list[str]:
    """The system's answer for `host`, once, addresses in the order it gave them, duplicates dropped."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def resolve(host: str, port: int, policy: AddressPolicy, resolver: Resolver = system_resolver) -> list[str]:
    """Every address of `host`, checked; refused if any of them is refused (unless the policy exempts the host).

    The caller connects only to what this returns: the host is never looked up again.
    """
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise CannotResolve(f"cannot resolve host {host!r}: {exc}") from exc
    if not addresses:
        raise CannotResolve(f"cannot resolve host {host!r}: no address")
    if policy.exempt(host):
        return addresses
    for address in addresses:
        try:
            why = refusal(address)
        except ValueError:
            why = "not an IP address"
        if why:
            shown = host if host.strip("[]") == address else f"{host} resolves to {address}"
            raise AddressRefused(f"{shown}: {why}, not a public address; pass --allow-private if you mean it")
    return addresses
