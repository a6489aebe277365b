"""Turn files, pasted text, Markdown and HTML into article drafts (title, body, metadata)."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import trafilatura
from markdown_it import MarkdownIt
from pypdf import PdfReader

from index.articles import MAX_TITLE_CHARS, ArticleDraft, parse_date
from index.errors import IngestError
from index.ingest.addresses import without_credentials
from index.ingest.encodings import decode_text
from index.ingest.front_matter import field_text, split_front_matter

__all__ = ["IngestError", "SUPPORTED_SUFFIXES", "decode_text", "from_bytes_named", "from_html", "from_markdown",
           "from_pdf", "from_plain_text", "markdown_to_text"]

HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt", ".text", ""}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = HTML_SUFFIXES | MARKDOWN_SUFFIXES | TEXT_SUFFIXES | PDF_SUFFIXES
_BLANK_LINES = re.compile(r"\n\s*\n+")
_LINE_BREAK = re.compile(r"\s*\n\s*")
_HTML_SNIFF = re.compile(rb"<(!doctype html|html|head|body|article|p)[\s>]", re.IGNORECASE)


def _clean_lines(text: str) -> str:
    """Trim trailing spaces, unify newlines and keep at most one blank line between paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _split_title(text: str) -> tuple[str, str]:
    """First non-empty line as the title, the rest as the body."""
    text = _clean_lines(text)
    first, _, rest = text.partition("\n")
    title = first.strip().lstrip("#").strip()
    if len(title) > MAX_TITLE_CHARS:
        title = title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + "…"
        rest = text
    return title, rest.strip()


def from_plain_text(text: str, *, title: str | None = None, url: str | None = None, published: object = None,
                    source: str | None = None, author: str | None = None) -> ArticleDraft:
    """Pasted or .txt text; without a given title its first line is the title."""
    body = _clean_lines(text)
    if title is None:
        title, body = _split_title(body)
    if not body:
        body = title
    return ArticleDraft(title=title.strip(), text=body, url=url, published=parse_date(published),
                        source=source, author=author)


def markdown_to_text(markdown: str) -> str:
    """Markdown rendered to plain paragraphs (markup, link targets and images dropped)."""
    blocks: list[str] = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type == "inline":
            pieces = []
            for child in token.children or []:
                if child.type in {"text", "code_inline"}:
                    pieces.append(child.content)
                elif child.type in {"softbreak", "hardbreak"}:
                    pieces.append(" " if child.type == "softbreak" else "\n")
            blocks.append("".join(pieces).strip())
        elif token.type in {"code_block", "fence"}:
            blocks.append(token.content.strip())
    return "\n\n".join(block for block in blocks if block)


def from_markdown(text: str, *, fallback_title: str | None = None) -> ArticleDraft:
    """Markdown with optional YAML front matter (title, date, source, url, author), read by front_matter."""
    meta, content = split_front_matter(text)
    body = markdown_to_text(content)
    title = field_text(meta.get("title")) or ""
    if not title:
        heading = re.search(r"^#\s+(.+)$", content, re.MULTILINE)
        if heading:
            title = heading.group(1).strip()
            body = markdown_to_text(content.replace(heading.group(0), "", 1))
        else:
            title, body = _split_title(body)
    published = meta.get("date") or meta.get("published")
    return ArticleDraft(
        title=title or (fallback_title or "Untitled"),
        text=body,
        url=field_text(meta.get("url") or meta.get("link")),
        published=parse_date(published if isinstance(published, (str, date)) else None),
        source=field_text(meta.get("source") or meta.get("site")),
        author=field_text(meta.get("author")),
    )


def from_html(html: str | bytes, *, url: str | None = None, fallback_title: str | None = None) -> ArticleDraft:
    """The main text and metadata of a news page, extracted by trafilatura."""
    url = without_credentials(url) if url else None
    document = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                           include_tables=False)
    if document is None or not (document.text or "").strip():
        raise IngestError("No article text found on this page (it may be a menu, an index page or a login wall).")
    return ArticleDraft(
        title=(document.title or fallback_title or "Untitled").strip(),
        text=_clean_lines(document.text),
        url=_canonical_or(url, _str_or_none(document.url)),
        published=parse_date(document.date),
        source=_str_or_none(document.sitename or document.hostname),
        author=_str_or_none(document.author),
    )


def from_bytes_named(data: bytes, name: str, *, url: str | None = None) -> ArticleDraft:
    """A file's content, read according to its name's suffix (or sniffed when there is none)."""
    suffix = Path(name).suffix.lower()
    stem = Path(name).stem.replace("_", " ").replace("-", " ").strip() or None
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(s for s in SUPPORTED_SUFFIXES if s))
        raise IngestError(f"{name}: unsupported file type {suffix!r}; send one of {supported}.")
    if suffix in PDF_SUFFIXES or data.startswith(b"%PDF-"):
        return from_pdf(data, name)
    text = decode_text(data, name)
    if suffix in HTML_SUFFIXES or (suffix in {"", ".txt"} and _HTML_SNIFF.search(data[:2048])):
        return from_html(text, url=url, fallback_title=stem)
    if suffix in MARKDOWN_SUFFIXES:
        return from_markdown(text, fallback_title=stem)
    return from_plain_text(text, url=url)


def from_pdf(data: bytes, name: str) -> ArticleDraft:
    """The text layer of a PDF (pypdf); the title from its metadata, else its first line."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise IngestError(f"{name} is an encrypted PDF; send an unprotected copy.")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = _str_or_none(meta.title) if meta else None
        author = _str_or_none(meta.author) if meta else None
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many kinds for damaged files
        raise IngestError(f"{name} is not a readable PDF ({type(exc).__name__}).") from None
    text = _clean_lines("\n\n".join(pages))
    if not text:
        raise IngestError(f"{name} has no text layer (a scanned PDF?); OCR is not supported.")
    if title is None:
        title, text = _split_title(text)
    # PDF lines are hard-wrapped: join lines within a paragraph.
    text = "\n\n".join(_LINE_BREAK.sub(" ", para).strip() for para in text.split("\n\n"))
    return ArticleDraft(title=title, text=text, author=author)


def _canonical_or(fetched: str | None, canonical: str | None) -> str | None:
    """The page's canonical link when it stays on the fetched site (a page may not claim another
    site's address), else the address it was fetched from."""
    if not canonical or not canonical.lower().startswith(("http://", "https://")):
        return fetched
    if fetched is None:
        return canonical
    return canonical if _site(canonical) == _site(fetched) else fetched


def _site(url: str) -> str:
    """The host without the prefixes of mobile and AMP editions (www., m., amp., mobile.)."""
    host = urlsplit(url).hostname or ""
    return re.sub(r"^(www|m|amp|mobile)\.", "", host)


def _str_or_none(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None
