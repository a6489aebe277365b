"""Server-side request forgery guard: web addresses may only lead to public IP addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Iterable

from index.errors import IngestError


class BlockedAddress(IngestError):
    """A URL that resolves to an address inside a private network (or to nothing)."""


def is_public(address: str) -> bool:
    """True for globally routable unicast addresses (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
