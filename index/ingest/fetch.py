"""Download a page or feed: async, time- and size-limited, redirects followed by hand so that every
hop passes the SSRF guard, and the connection pinned to the address that was checked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from index.config import FetchSettings
from index.errors import IngestError
from index.ingest.addresses import without_credentials
from index.ingest.netguard import resolve_checked

PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown", "application/pdf")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml", "application/rdf+xml",
              "application/feed+json", "text/html")  # some servers send feeds as text/html
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class Download:
    url: str  # after redirects
    content: bytes
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    def file_name(self) -> str:
        """A name whose suffix tells the extractor how to read the content."""
        if self.content_type == "application/pdf":
            return "page.pdf"
        if self.content_type in {"text/plain", "text/markdown"}:
            return "page.txt"
        return "page.html"


async def fetch(url: str, settings: FetchSettings, max_bytes: int, *, accept: tuple[str, ...] = PAGE_TYPES,
                headers: dict[str, str] | None = None) -> Download:
    """GET ``url``; every failure becomes an IngestError whose message suits the user. Credentials written
    into an address (``user:password@``) are dropped before anything else: never sent, logged or shown."""
    url = without_credentials(url)
    try:
        return await asyncio.wait_for(_fetch(url, settings, max_bytes, accept, headers or {}), settings.timeout)
    except asyncio.TimeoutError:
        raise IngestError(f"{url} did not answer in time ({settings.timeout:g} s).") from None


async def _fetch(url: str, settings: FetchSettings, max_bytes: int, accept: tuple[str, ...],
                 extra_headers: dict[str, str]) -> Download:
    timeout = httpx.Timeout(settings.timeout)
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout, trust_env=False) as client:
        current = url
        for _ in range(settings.max_redirects + 1):
            target = _parse(current)
            port = target.port or _DEFAULT_PORTS[target.scheme]
            address = await resolve_checked(target.host, port, settings.allow_hosts)
            request_headers = {"User-Agent": settings.user_agent, "Host": target.netloc.decode("ascii"),
                               "Accept": ", ".join(accept) + ";q=0.9, */*;q=0.1", **extra_headers}
            try:
                async with client.stream("GET", target.copy_with(host=address), headers=request_headers,
                                         extensions={"sni_hostname": target.host}) as response:
                    if response.status_code in _REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise IngestError(f"{current} redirects nowhere.")
                        current = without_credentials(urljoin(current, location))
                        continue
                    return await _read(current, response, accept, max_bytes)
            except httpx.TimeoutException:
                raise IngestError(f"{url} did not answer in time ({settings.timeout:g} s).") from None
            except httpx.HTTPError as exc:
                raise IngestError(f"{url} could not be reached ({type(exc).__name__}).") from None
        raise IngestError(f"{url} redirects too many times (more than {settings.max_redirects}).")


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError):
        raise IngestError(f"Not a valid web address: {url!r}.") from None
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
        raise IngestError(f"Not a web address: {url!r} (it must start with http:// or https://).")
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        raise IngestError(f"Not a valid web address: {url!r} (the port must be a number from 1 to 65535).")
    return parsed


async def _read(url: str, response: httpx.Response, accept: tuple[str, ...], max_bytes: int) -> Download:
    headers = {key.lower(): value for key, value in response.headers.items()}
    if response.status_code == 304:
        return Download(url, b"", "", 304, headers)
    if response.status_code >= 400:
        raise IngestError(f"The page could not be fetched: the server answered {response.status_code} "
                          f"{response.reason_phrase} for {url}.")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and not content_type.startswith(accept):
        raise IngestError(f"{url} is not a web page or article ({content_type}).")
    declared = int(headers.get("content-length") or 0) if (headers.get("content-length") or "").isdigit() else 0
    if declared > max_bytes:
        raise IngestError(f"{url} is too large ({declared:,} bytes; the limit is {max_bytes:,}).")
    body = bytearray()
    async for piece in response.aiter_bytes():
        body.extend(piece)
        if len(body) > max_bytes:
            raise IngestError(f"{url} is too large (over {max_bytes:,} bytes).")
    return Download(url, bytes(body), content_type, response.status_code, headers)
