"""Telegram HTML for answers, sources and article lists: every article string escaped, no message over the limit.

An answer's first page leads with the answer: the sentence that answers best, in bold, and its citation (the
article, source, date and passage number); below it the passages, grouped by article, each in an expandable
quote that a phone shows collapsed to its first lines. Later pages hold only the grouped passages."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from datetime import date
from html import escape, unescape
from typing import Sequence

from index.articles import Article, shortened
from index.ingest.addresses import article_link as web_link
from index.ingest.addresses import without_credentials, without_userinfo_in_host
from index.ingest.feeds import Feed
from index.search.hybrid import Answer, Hit

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
# The answer sentence a reply leads with, at most (a longer one is cut with "…").
_LEAD_SHOWN = 600
# An inline result's title and description, at most (a phone shows one or two lines of each).
_INLINE_TITLE_SHOWN = 100
_INLINE_DESCRIPTION_SHOWN = 200
# What a phone shows of an expandable quote while it is collapsed (see visible_length): its first lines, each
# holding about this many characters (a quote's lines are narrower than a message's: its bar and margins).
COLLAPSED_QUOTE_LINES = 3
QUOTE_LINE_CHARS = 36


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


def citation_html(article: Article, number: int) -> str:
    """The line under the answer: its article (title linked, source, date) and the passage that holds it."""
    source = f", {shown(without_userinfo_in_host(article.source), _SOURCE_SHOWN)}" if article.source else ""
    return f"— {article_link(article)}{source}, {format_date(article.published)} · passage {number}"


@dataclass(frozen=True)
class Lead:
    """The answer a first page opens with: the passage whose marked sentence answers, and its number."""

    hit: Hit
    number: int


def answer_lead(answer: Answer) -> Lead | None:
    """The answer's lead passage; else its first passage when that has a marked sentence; else none."""
    lead_hit = answer.lead_hit
    if lead_hit is not None and answer.lead is not None:
        return Lead(lead_hit, answer.lead + 1)
    if answer.hits and answer.hits[0].best_sentence:
        return Lead(answer.hits[0], 1)
    return None


def lead_html(lead: Lead) -> str:
    """The answer sentence in bold, then its citation."""
    sentence = shown(lead.hit.best_sentence_text or "", _LEAD_SHOWN)
    return f"<b>{sentence}</b>\n{citation_html(lead.hit.article, lead.number)}"


def _paragraphs(escaped: str) -> str:
    """Paragraph breaks as single line breaks, so a collapsed quote shows text rather than blank lines."""
    return re.sub(r"\n\s*\n", "\n", escaped)


def passage_quote(hit: Hit, number: int | None, max_chars: int = MAX_MESSAGE_CHARS - _SAFETY) -> str:
    """A passage in an expandable quote: its number (when given), then its text with the answering sentence
    in bold; never longer than ``max_chars``."""
    label = f"<b>{number}.</b> " if number is not None else ""
    opening, closing = "<blockquote expandable>", "</blockquote>"
    text = hit.text
    start, end = hit.best_sentence or (0, 0)
    sentence = f"<b>{_paragraphs(escape(text[start:end]))}</b>" if end > start else ""
    body = (_paragraphs(escape(text[:start])).lstrip() + sentence + _paragraphs(escape(text[end:]))).rstrip()
    quote = f"{opening}{label}{body}{closing}"
    if message_length(quote) <= max_chars:
        return quote
    # Only with a very large passage setting: keep the bold sentence and cut the rest.
    room = max_chars - message_length(opening + label + closing) - 10
    if end > start:
        return f"{opening}{label}<b>{escape_within(text[start:end].strip(), room - 7)}</b>…{closing}"
    return f"{opening}{label}{escape_within(text.strip(), room)}…{closing}"


def passage_html(hit: Hit, number: int | None = None, max_chars: int = MAX_MESSAGE_CHARS - _SAFETY) -> str:
    """One passage on its own (an inline result's message): its article line, then the passage's quote."""
    header = article_line(hit.article) + "\n"
    return header + passage_quote(hit, number, max_chars - message_length(header))


def escape_within(raw: str, limit: int) -> str:
    """Escaped text cut (before escaping, so no entity is split) to at most ``limit`` characters."""
    escaped = escape(raw)
    while message_length(escaped) > limit and raw:
        raw = raw[: max(0, min(len(raw) - 1, int(len(raw) * limit / max(1, message_length(escaped)))))]
        escaped = escape(raw)
    return escaped


def answer_messages(hits: Sequence[Hit], first_number: int = 1, lead: Lead | None = None,
                    heading: str = "") -> list[str]:
    """The passages, numbered from ``first_number`` and grouped by article under its article line, packed into
    as few messages as fit; a message ends only between passages, and a group that goes on in the next
    message has its article line again. With a lead, the first message opens with it and the lead's own
    article comes first, its passages right under the citation (which names that article already). A
    ``heading`` (HTML) goes first of all."""
    groups: dict[int, list[tuple[int, Hit]]] = {}
    for number, hit in enumerate(hits, first_number):
        groups.setdefault(hit.article.id, []).append((number, hit))
    order = list(groups)
    under_citation = lead is not None and lead.hit.article.id in groups
    if under_citation:
        order.remove(lead.hit.article.id)
        order.insert(0, lead.hit.article.id)
    limit = MAX_MESSAGE_CHARS - _SAFETY
    messages: list[str] = []
    current = "\n".join(part for part in (heading, lead_html(lead) if lead is not None else "") if part)
    for position, article_id in enumerate(order):
        members = groups[article_id]
        line = article_line(members[0][1].article)
        line_shown = under_citation and position == 0
        for number, hit in members:
            quote = passage_quote(hit, number, limit - message_length(line) - 1)
            piece = quote if line_shown else f"{line}\n{quote}"
            candidate = f"{current}\n{piece}" if current else piece
            if message_length(candidate) > limit and current:
                messages.append(current)
                candidate = f"{line}\n{quote}"
            current = candidate
            line_shown = True
    if current:
        messages.append(current)
    return messages


def inline_title(hit: Hit) -> str:
    """An inline result's title (plain text): the passage's article title."""
    return shortened(hit.article.title, _INLINE_TITLE_SHOWN)


def inline_description(hit: Hit) -> str:
    """An inline result's description (plain text): the passage's answering sentence, else its opening."""
    return shortened(hit.best_sentence_text or hit.text, _INLINE_DESCRIPTION_SHOWN)


_EXPANDABLE_QUOTE = re.compile(r"<blockquote expandable>(.*?)</blockquote>", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def visible_length(html: str) -> int:
    """How many characters of a message a reader sees on a phone before expanding anything: all its text
    outside expandable quotes, and of each expandable quote what its collapsed form shows (collapsed_length).
    Counted as Telegram counts lengths (UTF-16 code units), line breaks included."""
    seen = position = 0
    for quote in _EXPANDABLE_QUOTE.finditer(html):
        seen += message_length(_plain(html[position:quote.start()]))
        seen += collapsed_length(_plain(quote.group(1)))
        position = quote.end()
    return seen + message_length(_plain(html[position:]))


def collapsed_length(text: str) -> int:
    """The characters a collapsed expandable quote shows: its first COLLAPSED_QUOTE_LINES lines, each line
    break ending a line and each paragraph wrapped at QUOTE_LINE_CHARS characters."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, QUOTE_LINE_CHARS) or [""]
        if len(lines) >= COLLAPSED_QUOTE_LINES:
            break
    lines = lines[:COLLAPSED_QUOTE_LINES]
    return sum(message_length(line) for line in lines) + len(lines) - 1


def _plain(html: str) -> str:
    """The text a piece of this module's HTML shows (its tags dropped, its entities decoded)."""
    return unescape(_TAG.sub("", html))


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
