"""Server-side request forgery guard: web addresses may only lead to public IP addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Iterable

from index.errors import IngestError


class BlockedAddress(IngestError):
    """A URL that resolves to an address inside a private network (or to nothing)."""


# IPv6 ranges whose addresses carry an IPv4 address in their last 32 bits: IPv4-mapped, IPv4-compatible
# (deprecated) and the NAT64 well-known prefix (RFC 6052).
_LAST_32_BITS_IPV4 = (ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("::/96"),
                      ipaddress.IPv6Network("64:ff9b::/96"))
# Local-use NAT64 (RFC 8215): the IPv4 address sits where the operator chose, and the prefix is never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_public(address: str) -> bool:
    """True for globally routable unicast addresses. An IPv6 address that carries an IPv4 address (IPv4-mapped
    or -compatible, NAT64, 6to4, Teredo) must also lead to a public IPv4 address; IPv4-mapped ones are judged
    by their IPv4 address alone, and local-use NAT64 ones are never public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _is_public_ip(ip.ipv4_mapped)
        if ip in _LOCAL_NAT64:
            return False
        embedded = embedded_ipv4(ip)
        if embedded is not None and not _is_public_ip(embedded):
            return False
    return _is_public_ip(ip)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to through a transition mechanism, or None: the last 32 bits
    (IPv4-mapped, IPv4-compatible, NAT64), bits 16-48 (6to4), or the Teredo client (its bits inverted)."""
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in _LAST_32_BITS_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def _allowed(host: str, allow_hosts: Iterable[str]) -> bool:
    host = host.lower().strip("[]")
    return any(host == entry.lower().strip("[]") for entry in allow_hosts)


async def resolve_checked(host: str, port: int, allow_hosts: Iterable[str]) -> str:
    """One IP address for ``host`` that may be fetched; every address it resolves to must be public
    unless the host is on the allow list."""
    if not host:
        raise BlockedAddress("The address has no host name.")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise IngestError(f"The host {host} does not exist (its name could not be resolved).") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise IngestError(f"The host {host} has no address.")
    if _allowed(host, allow_hosts):
        return addresses[0]
    blocked = [a for a in addresses if not is_public(a)]
    if blocked:
        raise BlockedAddress(f"Refused: {host} points inside a private or local network ({blocked[0]}).")
    return addresses[0]
