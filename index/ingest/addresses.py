"""Web addresses as the project accepts, stores and shows them: http(s) only, never with credentials."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

WEB_SCHEMES = ("http", "https")
# Longer addresses are not kept as an article's link (they are almost always tracking or damage).
MAX_URL_CHARS = 2048
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")
_WEB_ADDRESS = re.compile(r"^\s*https?://", re.IGNORECASE)
_UNSAFE_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")


def scheme_of(text: str) -> str | None:
    """The scheme of an address, lower-cased (schemes are case-insensitive), or None when it has none."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def is_web_address(text: str) -> bool:
    """True for an http:// or https:// address in any case (``HTTP://…`` too), False for a file path."""
    return _WEB_ADDRESS.match(text) is not None


def without_credentials(url: str) -> str:
    """The address with any ``user:password@`` part removed; anything unparsable is returned as it was."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return _drop_userinfo_roughly(text)
    if "@" not in parts.netloc:
        return text
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _drop_userinfo_roughly(text: str) -> str:
    """For an address urlsplit refuses: cut what stands between ``//`` and the last ``@`` of the authority."""
    head, separator, rest = text.partition("//")
    if not separator:
        return text
    authority, slash, path = rest.partition("/")
    return f"{head}//{authority.rpartition('@')[2]}{slash}{path}"


def article_link(url: str | None) -> str | None:
    """The address as an article's link: http(s) with a host and a valid port, no credentials, no spaces or
    control characters, at most MAX_URL_CHARS long; None for anything else (``javascript:``, ``file:``, …)."""
    if not url:
        return None
    text = without_credentials(url)
    if scheme_of(text) not in WEB_SCHEMES or len(text) > MAX_URL_CHARS or _UNSAFE_CHARACTERS.search(text):
        return None
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return urlunsplit(parts._replace(scheme=parts.scheme.lower()))


def without_userinfo_in_host(source: str) -> str:
    """A site name that is really ``user:password@host`` (taken from an address) reduced to the host."""
    match = re.fullmatch(r"[^\s@/]+@([^\s@/]+)", source.strip())
    return match.group(1) if match else source
