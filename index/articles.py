"""Articles and the keys that tell whether two of them are the same story."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from index.ingest.addresses import article_link, without_userinfo_in_host

# Query parameters that only track where a reader came from.
_TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|yclid|_ga|ref|ref_src|cmpid|smid|ocid|taid)$",
    re.IGNORECASE,
)
_WS = re.compile(r"\s+")
# The longest metadata kept: every article passes through ArticleDraft, so these hold for files, pasted
# text, pages, feeds and --title alike (the link's limit is addresses.MAX_URL_CHARS).
MAX_TITLE_CHARS = 300
MAX_SOURCE_CHARS = 200
MAX_AUTHOR_CHARS = 200


@dataclass(frozen=True)
class ArticleDraft:
    """An article read from some source, before it is stored."""

    title: str
    text: str
    url: str | None = None
    published: date | None = None
    source: str | None = None
    author: str | None = None

    def __post_init__(self) -> None:
        """Metadata made safe to store and show: one line each, within its length limit, and the link
        an http(s) address without credentials (or None)."""
        object.__setattr__(self, "title", shortened(str(self.title or ""), MAX_TITLE_CHARS))
        source = shortened(without_userinfo_in_host(str(self.source)), MAX_SOURCE_CHARS) if self.source else ""
        object.__setattr__(self, "source", source or None)
        author = shortened(str(self.author), MAX_AUTHOR_CHARS) if self.author else ""
        object.__setattr__(self, "author", author or None)
        object.__setattr__(self, "url", article_link(self.url))


@dataclass(frozen=True)
class Article:
    """A stored article."""

    id: int
    title: str
    text: str
    url: str | None
    published: date | None
    source: str | None
    author: str | None
    added_by: str
    added_at: datetime
    passage_count: int = 0
    extra: dict = field(default_factory=dict, compare=False)


def canonical_url(url: str) -> str:
    """The URL with scheme and host lower-cased, ``www.``, fragment, tracking parameters and trailing slash dropped."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a number: keep what was written
        port, host = None, parts.netloc.rpartition("@")[2].lower()
    if port and not (parts.scheme == "http" and port == 80 or parts.scheme == "https" and port == 443):
        host = f"{host}:{port}"
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                             if not _TRACKING_PARAMS.match(k)))
    path = parts.path.rstrip("/") or "/"
    scheme = "https" if parts.scheme in {"http", "https"} else parts.scheme.lower()
    return urlunsplit((scheme, host, path, query, ""))


def shortened(text: str, limit: int) -> str:
    """The text on one line (whitespace collapsed), cut at a word boundary with "…" when longer than ``limit``."""
    line = _WS.sub(" ", text).strip()
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


def normalize_text(text: str) -> str:
    """Text folded for comparison: NFKC, case-folded, whitespace collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def content_hash(text: str) -> str:
    """A fingerprint of the article body that ignores case and spacing."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def identity_key(draft: ArticleDraft) -> str:
    """What makes a re-added article the same article: its canonical URL, else its title."""
    if draft.url:
        return "url:" + canonical_url(draft.url)
    return "title:" + normalize_text(draft.title)


def parse_date(value: object) -> date | None:
    """A date from an ISO string, a date or a datetime; None when it cannot be read."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
