"""What the bot says: questions, buttons and admin commands, independent of Telegram.

The Telegram handlers and the terminal console both call this, so they behave the same. Its methods
block (search, embedding, disk) and are run off the event loop by the handlers."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import AsyncIterator, Sequence

from bot import render
from index.config import Settings
from index.errors import IngestError
from index.ingest.feeds import FeedPoller, PollReport
from index.ingest.fetch import fetch
from index.library import AddResult, Library
from index.search.hybrid import Answer
from index.stores.base import ResultStore

MAX_QUESTION_CHARS = 1000
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
_HAS_WORD = re.compile(r"\w", re.UNICODE)
_INVISIBLE = re.compile("[\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # callback data, at most 64 bytes


@dataclass(frozen=True)
class Reply:
    html: str
    buttons: tuple[tuple[Button, ...], ...] = ()


REFUSAL = Reply("Sorry, only the bot's admins can do that. You can ask me questions about the articles, though.")
EXPIRED = Reply("Those results are no longer available. Please ask the question again.")


def parse_add_arguments(text: str) -> tuple[list[str], str | None]:
    """/add's argument: (URLs, None) when it is only URLs, else ([], the pasted article text)."""
    words = text.split()
    if words and all(_URL.match(word) for word in words):
        return words, None
    return [], text.strip() or None


def single_id(argument: str) -> int | None:
    """The one number a command takes (``12`` or ``#12``), or None when the argument is anything else."""
    words = argument.replace("#", " ").split()
    return int(words[0]) if len(words) == 1 and words[0].isdigit() else None


class ChatService:
    def __init__(self, library: Library, settings: Settings, results: ResultStore | None = None) -> None:
        """``results``: where answers wait for their buttons (default: what suits the library's store)."""
        self.library = library
        self.settings = settings
        self.results = results if results is not None else library.backend.results(settings)
        self.feeds = FeedPoller(library)

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.settings.bot.admin_ids

    # -- questions ------------------------------------------------------------------------------------
    def answer(self, chat_id: int, question: str, now: datetime | None = None) -> list[Reply]:
        """The first page of passages answering the question, or why there are none."""
        question = _INVISIBLE.sub("", question).strip()
        if not question:
            return [Reply("Please send me a question, for example: <i>What did the UN Security Council say?</i>")]
        if len(question) > MAX_QUESTION_CHARS:
            return [Reply(f"That message is too long to be a question ({len(question):,} characters; please keep it "
                          f"under {MAX_QUESTION_CHARS:,}). To add an article, admins can use /add.")]
        if not _HAS_WORD.search(question):
            return [Reply("I search the articles by words. Please ask your question in words.")]
        if self.library.count_articles() == 0:
            return [Reply("I have no articles yet, so I cannot answer. An admin can add some with /add.")]
        k = self.settings.search.k
        answer = self.library.search(question, k=k, now=now, limit=3 * k)
        if not answer.answered:
            return [Reply(render.not_found_html(answer.closest))]
        token = self.results.put(chat_id, answer)
        return self._page(answer, token, 0)

    def more(self, chat_id: int, token: str, page: int) -> list[Reply]:
        answer = self.results.get(chat_id, token)
        if answer is None or page < 0:
            return [EXPIRED]
        k = self.settings.search.k
        answer = self.library.mark_hits(answer, page * k, (page + 1) * k)
        self.results.update(chat_id, token, answer)
        return self._page(answer, token, page)

    def sources(self, chat_id: int, token: str) -> Reply:
        answer = self.results.get(chat_id, token)
        if answer is None:
            return EXPIRED
        articles = list({hit.article.id: hit.article for hit in answer.hits}.values())
        return Reply(render.sources_html(articles))

    def _page(self, answer: Answer, token: str, page: int) -> list[Reply]:
        k = self.settings.search.k
        hits = answer.hits[page * k:(page + 1) * k]
        if not hits:
            return [Reply("No more passages for this question.")]
        messages = render.answer_messages(hits, first_number=page * k + 1)
        row = []
        if len(answer.hits) > (page + 1) * k:
            row.append(Button("More passages", f"more:{token}:{page + 1}"))
        row.append(Button("Sources", f"src:{token}"))
        replies = [Reply(html) for html in messages[:-1]]
        replies.append(Reply(messages[-1], (tuple(row),)))
        return replies

    # -- information ----------------------------------------------------------------------------------
    def help(self, user_id: int | None) -> Reply:
        count = self.library.count_articles()
        newest = self.library.stats().newest if count else None
        lines = [
            "I answer questions from a collection of news articles, quoting the passages that answer them "
            "with their article, source, date and link.",
            f"I know <b>{count}</b> article{'s' if count != 1 else ''}"
            + (f"; the newest is from {render.format_date(newest)}." if newest else "."),
            "",
            "Just send me a question, for example: <i>What did the UN Security Council say?</i>",
            "In groups, mention me or reply to one of my messages.",
        ]
        if self.is_admin(user_id):
            lines += [
                "",
                "<b>Admin commands</b>",
                "/add URL … — add articles from the web",
                "/add followed by pasted text — add it as an article (first line is the title)",
                "Send a .txt, .md, .html or .pdf file — add it as an article",
                "/remove ID — remove an article",
                "/list — list the articles, newest first",
                "/stats — library size and model",
                "/subscribe FEED_URL — add a feed's new articles automatically",
                "/feeds — subscribed feeds and their state; /unsubscribe ID",
            ]
        return Reply("\n".join(lines))

    # -- admin ----------------------------------------------------------------------------------------
    async def add_urls(self, user_id: int | None, urls: Sequence[str], added_by: str) -> AsyncIterator[AddResult]:
        """Download (on the event loop) and add (in a worker thread) URLs one by one; nothing for non-admins."""
        if not self.is_admin(user_id):
            return
        settings = self.settings
        try:
            for url in urls:
                try:
                    download = await fetch(url, settings.fetch, settings.library.max_file_bytes)
                except IngestError as exc:
                    yield AddResult(url, "failed", message=str(exc))
                    continue
                yield await asyncio.to_thread(self.library.add_download, download, added_by=added_by, source=url)
        finally:
            await asyncio.to_thread(self.library.flush)

    def add_text(self, user_id: int | None, text: str, added_by: str) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        result = self.library.add_text(text, added_by=added_by)
        self.library.flush()
        return Reply(add_summary_html([result]))

    def add_document(self, user_id: int | None, data: bytes, file_name: str, added_by: str) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        result = self.library.add_bytes(data, file_name, added_by=added_by)
        self.library.flush()
        return Reply(add_summary_html([result]))

    def remove(self, user_id: int | None, argument: str) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        article_id = single_id(argument)
        if article_id is None:
            return Reply("Usage: /remove ID — the article's number as shown by /list, e.g. <code>/remove 12</code>.")
        article = self.library.remove(article_id)
        self.library.flush()
        if article is None:
            return Reply(f"There is no article #{article_id}. See /list.")
        return Reply(f"Removed {render.article_line(article)} (#{article.id}, {article.passage_count} passages).")

    def list_page(self, user_id: int | None, offset: int) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        size = self.settings.bot.list_page_size
        total = self.library.count_articles()
        offset = max(0, min(offset, max(0, total - 1)))
        articles = self.library.list_articles(offset, size)
        row = []
        if offset > 0:
            row.append(Button("‹ Newer", f"list:{max(0, offset - size)}"))
        if offset + size < total:
            row.append(Button("Older ›", f"list:{offset + size}"))
        return Reply(render.article_list_html(articles, offset, total), (tuple(row),) if row else ())

    # -- feeds ----------------------------------------------------------------------------------------
    async def subscribe(self, user_id: int | None, argument: str, added_by: str) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        words = argument.split()
        if len(words) != 1 or not _URL.match(words[0]):
            return Reply("Usage: /subscribe FEED_URL — an RSS or Atom feed; its new articles are added automatically.")
        report = await self.feeds.subscribe(words[0], added_by)
        if report.error is not None and not report.busy:
            return Reply(f"⚠️ Could not subscribe: {escape(report.error)}")
        feed = self.feeds.feeds.get(report.feed.id) or report.feed
        lines = [f"Subscribed to <b>{escape(feed.title or feed.url)}</b> (feed #{feed.id}); checked every "
                 f"{self.settings.feeds.poll_minutes:g} minutes."]
        if report.busy:
            lines.append(escape(report.error or ""))
        if report.results:
            lines.append(add_summary_html(report.results))
        return Reply(render.truncate_lines(lines))

    def unsubscribe(self, user_id: int | None, argument: str) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        feed_id = single_id(argument)
        if feed_id is None:
            return Reply("Usage: /unsubscribe ID — the feed's number as shown by /feeds.")
        feed = self.feeds.feeds.remove(feed_id)
        if feed is None:
            return Reply(f"There is no feed #{feed_id}. See /feeds.")
        return Reply(f"Unsubscribed from {escape(feed.title or feed.url)} (feed #{feed.id}). "
                     "Its articles stay in the library.")

    def feed_list(self, user_id: int | None) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        return Reply(render.feeds_html(self.feeds.feeds.all()))

    async def poll_feeds(self) -> list[PollReport]:
        """Poll the feeds that are due (the bot's job queue calls this)."""
        return await self.feeds.poll_due()

    def stats(self, user_id: int | None) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        s = self.library.stats()
        return Reply("\n".join([
            "<b>Library</b>",
            f"Articles: {s.articles}",
            f"Passages: {s.passages} ({s.vectors} vectors)",
            f"Newest article: {render.format_date(s.newest)}",
            f"Database ({s.store}): {s.database_bytes / 1e6:.1f} MB, search indexes: {s.index_bytes / 1e6:.1f} MB",
            f"Model: {escape(s.model)}",
        ]))


def add_summary_html(results: Sequence[AddResult], done: bool = True, total: int | None = None) -> str:
    """A progress or final report of an add: one line per input, then the counts."""
    counts = {status: sum(r.status == status for r in results) for status in ("added", "replaced", "duplicate", "failed")}
    marks = {"added": "✅", "replaced": "🔄", "duplicate": "⏭", "failed": "⚠️"}
    lines = [f"<b>{'Done' if done else 'Adding'}</b> ({len(results)}/{total if total is not None else len(results)})"]
    for result in results:
        lines.append(f"{marks[result.status]} {escape(result.message)}")
    if done:
        lines.append(", ".join(f"{n} {status}" for status, n in counts.items() if n))
    return render.truncate_lines(lines)
