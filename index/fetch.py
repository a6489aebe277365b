"""Download an article page with limits on time, size, redirects and content type."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .config import FetchSettings
from .extract import IngestError

_ACCEPTED_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown")


@dataclass(frozen=True)
class Download:
    url: str  # after redirects
    content: bytes
    content_type: str


def fetch(url: str, settings: FetchSettings, max_bytes: int) -> Download:
    """GET ``url``; every failure becomes an IngestError whose message suits the user."""
    if not url.lower().startswith(("http://", "https://")):
        raise IngestError(f"Not a web address: {url!r} (it must start with http:// or https://).")
    headers = {"User-Agent": settings.user_agent, "Accept": "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.5"}
    try:
        with httpx.Client(follow_redirects=True, max_redirects=settings.max_redirects, timeout=settings.timeout,
                          headers=headers) as client:
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise IngestError(f"The page could not be fetched: the server answered {response.status_code} "
                                      f"{response.reason_phrase} for {url}.")
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if content_type and not content_type.startswith(_ACCEPTED_TYPES):
                    raise IngestError(f"{url} is not a web page ({content_type}).")
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise IngestError(f"{url} is too large ({declared:,} bytes; the limit is {max_bytes:,}).")
                body = bytearray()
                for piece in response.iter_bytes():
                    body.extend(piece)
                    if len(body) > max_bytes:
                        raise IngestError(f"{url} is too large (over {max_bytes:,} bytes).")
                return Download(str(response.url), bytes(body), content_type)
    except httpx.TooManyRedirects:
        raise IngestError(f"{url} redirects too many times.") from None
    except httpx.TimeoutException:
        raise IngestError(f"{url} did not answer in time ({settings.timeout:g} s).") from None
    except httpx.HTTPError as exc:
        raise IngestError(f"{url} could not be reached ({type(exc).__name__}).") from None
