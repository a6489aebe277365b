"""Telegram HTML for answers, sources and article lists: every article string escaped, no message over the limit."""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Sequence

from index.articles import Article
from index.ingest.addresses import article_link as web_link
from index.ingest.addresses import without_credentials, without_userinfo_in_host
from index.ingest.feeds import Feed
from index.search.hybrid import Hit

MAX_MESSAGE_CHARS = 4096
# Room kept free in each message for safety with multi-unit characters.
_SAFETY = 16
# The most an article's header (title, link, source, date) may take of a message, whatever is stored
# (rows added before metadata was limited may hold very long titles), and its parts' shares of it.
HEADER_SHARE = MAX_MESSAGE_CHARS // 4
_TITLE_SHOWN = 320
_SOURCE_SHOWN = 120
_LINK_SHOWN = 480
# Feed titles, addresses and errors in /feeds.
_FEED_FIELD_SHOWN = 300


def message_length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units) of what the user sees, roughly the HTML itself."""
    return len(text.encode("utf-16-le")) // 2


def format_date(value: date | None) -> str:
    return value.strftime("%-d %b %Y") if value else "undated"


def article_link(article: Article) -> str:
    """The title, linked to the article only when its address is http(s) (credentials removed) and not huge."""
    title = shown(article.title, _TITLE_SHOWN)
    link = web_link(article.url)
    href = escape(link, quote=True) if link else ""
    return f'<a href="{href}">{title}</a>' if href and len(href) <= _LINK_SHOWN else f"<b>{title}</b>"


def article_line(article: Article) -> str:
    """Title (linked), source and date; never longer than HEADER_SHARE."""
    source = f" — {shown(without_userinfo_in_host(article.source), _SOURCE_SHOWN)}" if article.source else ""
    return f"{article_link(article)}{source}, {format_date(article.published)}"


def shown(raw: str, limit: int) -> str:
    """Escaped text on one line, cut to at most ``limit`` characters (with "…" when cut)."""
    line = " ".join(raw.split())
    escaped = escape(line)
    if message_length(escaped) <= limit:
        return escaped
    return escape_within(line, limit - 1) + "…"


def passage_html(hit: Hit, number: int, max_chars: int = MAX_MESSAGE_CHARS - _SAFETY) -> str:
    """One passage block: its article, then the text with the answering sentence in bold."""
    header = f"<b>{number}.</b> {article_line(hit.article)}\n"
    text = hit.text
    start, end = hit.best_sentence or (0, 0)
    body = escape(text[:start]) + (f"<b>{escape(text[start:end])}</b>" if end > start else "") + escape(text[end:])
    block = header + body
    if message_length(block) <= max_chars:
        return block
    # Only with a very large passage setting: keep the bold sentence and cut the rest.
    room = max_chars - message_length(header) - 10
    if end > start:
        return header + f"<b>{escape_within(text[start:end], room - 7)}</b>…"
    return header + escape_within(text, room) + "…"


def escape_within(raw: str, limit: int) -> str:
    """Escaped text cut (before escaping, so no entity is split) to at most ``limit`` characters."""
    escaped = escape(raw)
    while message_length(escaped) > limit and raw:
        raw = raw[: max(0, min(len(raw) - 1, int(len(raw) * limit / max(1, message_length(escaped)))))]
        escaped = escape(raw)
    return escaped


def answer_messages(hits: Sequence[Hit], first_number: int = 1, heading: str = "") -> list[str]:
    """Passages packed into as few messages as fit, split only between passages."""
    messages: list[str] = []
    current = heading
    for offset, hit in enumerate(hits):
        block = passage_html(hit, first_number + offset)
        candidate = f"{current}\n\n{block}" if current else block
        if message_length(candidate) > MAX_MESSAGE_CHARS - _SAFETY and current:
            messages.append(current)
            candidate = block
        current = candidate
    if current:
        messages.append(current)
    return messages


def not_found_html(closest: Article | None) -> str:
    text = "I could not find that in my articles."
    if closest is not None:
        text += f"\nThe closest article I have is {article_line(closest)}."
    return text


def sources_html(articles: Sequence[Article]) -> str:
    lines = ["<b>Sources</b>"]
    for article in articles:
        lines.append(f"• {article_line(article)} (#{article.id})")
    return truncate_lines(lines)


def article_list_html(articles: Sequence[Article], offset: int, total: int) -> str:
    if not articles:
        return "The library is empty." if total == 0 else "No more articles."
    lines = [f"<b>Articles {offset + 1}–{offset + len(articles)} of {total}</b> (newest first)"]
    for article in articles:
        lines.append(f"#{article.id} · {article_line(article)} · {article.passage_count} passages")
    return truncate_lines(lines)


def truncate_lines(lines: Sequence[str]) -> str:
    """Join lines, dropping the last ones (with a note) if the message would be too long."""
    kept: list[str] = []
    for index, line in enumerate(lines):
        candidate = "\n".join([*kept, line])
        if message_length(candidate) > MAX_MESSAGE_CHARS - 64:
            kept.append(f"… and {len(lines) - index} more")
            break
        kept.append(line)
    return "\n".join(kept)


def feeds_html(feeds: Sequence[Feed]) -> str:
    if not feeds:
        return "No feeds yet. Add one with /subscribe FEED_URL."
    lines = ["<b>Feeds</b>"]
    for feed in feeds:
        checked = feed.last_checked.strftime("%-d %b %H:%M UTC") if feed.last_checked else "never"
        url = shown(without_credentials(feed.url), _FEED_FIELD_SHOWN)
        line = (f"#{feed.id} · {shown(feed.title, _FEED_FIELD_SHOWN) if feed.title else url} — "
                f"{feed.articles_added} articles added, "
                f"last checked {checked}, next {feed.next_poll.strftime('%-d %b %H:%M UTC')}\n    {url}")
        if feed.last_error:
            line += (f"\n    ⚠️ {shown(feed.last_error, _FEED_FIELD_SHOWN)} "
                     f"({feed.failures} failure{'s' if feed.failures != 1 else ''} in a row)")
        lines.append(line)
    return truncate_lines(lines)
