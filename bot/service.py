"""What the bot does for questions, buttons and admin commands, independent of Telegram.

The Telegram handlers and the terminal console both call this, so they behave the same; the words of
its replies are in bot/texts.py. Its methods block (search, embedding, disk) and are run off the event
loop by the handlers."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from typing import AsyncIterator, Sequence

from bot import render, texts
from index.activity.reader_activity import ReaderActivity
from index.config import Settings
from index.errors import IngestError
from index.ingest.feeds import FeedPoller, PollReport
from index.ingest.fetch import fetch
from index.inputs import InvalidNumber, parse_id
from index.library import AddResult, Library
from index.search.followup import FollowUps, Reading, turn_from_answer
from index.search.hybrid import Answer
from index.stores.base import Conversations, ResultStore, Turn

MAX_QUESTION_CHARS = 1000
# Inline queries: the most results, and the fewest characters a query needs to be searched.
INLINE_RESULTS = 5
INLINE_MIN_CHARS = 4
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


@dataclass(frozen=True)
class InlineAnswer:
    """One result of an inline query: a passage anyone can send into any chat."""

    result_id: str  # unique among one query's results
    title: str  # plain text: the article's title
    description: str  # plain text: the passage's answering sentence
    html: str  # the message sent: the passage under its article line


REFUSAL = Reply(texts.REFUSAL)
EXPIRED = Reply(texts.EXPIRED)


def parse_add_arguments(text: str) -> tuple[list[str], str | None]:
    """/add's argument: (URLs, None) when it is only URLs, else ([], the pasted article text)."""
    words = text.split()
    if words and all(_URL.match(word) for word in words):
        return words, None
    return [], text.strip() or None


def single_id(argument: str, what: str = "id") -> int | None:
    """The one number a command takes (``12`` or ``#12``); None when the argument is not one word.
    Raises InvalidNumber (its message names ``what``) when that word is not a valid id."""
    words = argument.replace("#", " ").split()
    return parse_id(words[0], what) if len(words) == 1 else None


def _one_id(argument: str, what: str, usage: str) -> "int | Reply":
    """The id an admin command takes, or the reply that says what is wrong with the argument."""
    try:
        number = single_id(argument, what)
    except InvalidNumber as exc:
        return Reply(f"{escape(str(exc))}.\n{usage}")
    return Reply(usage) if number is None else number


def answer_token(callback_data: Sequence[str]) -> str | None:
    """The answer token in the callback data of an answer's buttons (None when they are not an answer's)."""
    for data in callback_data:
        kind, _, rest = data.partition(":")
        if kind in {"src", "more"} and rest:
            return rest.split(":")[0]
    return None


class ChatService:
    def __init__(self, library: Library, settings: Settings, results: ResultStore | None = None,
                 conversations: Conversations | None = None) -> None:
        """``results``: where answers wait for their buttons, ``conversations``: each chat's recent turns
        (defaults: what suits the library's store)."""
        self.library = library
        self.settings = settings
        self.results = results if results is not None else library.backend.results(settings)
        self.conversations = conversations if conversations is not None else library.backend.conversations(settings)
        self.follow_ups = FollowUps(library, self.conversations)
        self.feeds = FeedPoller(library)
        # Questions, votes and topics (index/activity/); it also listens to the library's adds.
        self.activity = ReaderActivity(library.backend.activity(settings), library, settings)

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.settings.bot.admin_ids

    # -- questions ------------------------------------------------------------------------------------
    def answer(self, chat_id: int, question: str, now: datetime | None = None, replied_message: int | None = None,
               replied_token: str | None = None, user_id: int | None = None) -> list[Reply]:
        """The first page of passages answering the question, or why there are none. ``now`` dates the
        question for the recency prior; a message replying to one of the bot's answers names that message
        (``replied_message``) and the token in its buttons (``replied_token``), and is read with that answer.
        The question is recorded for the insights (``user_id``: the asker)."""
        started = time.monotonic()
        question = _INVISIBLE.sub("", question).strip()
        if not question:
            return [Reply(texts.EMPTY_QUESTION)]
        if len(question) > MAX_QUESTION_CHARS:
            return [Reply(texts.question_too_long(len(question), MAX_QUESTION_CHARS))]
        if not _HAS_WORD.search(question):
            return [Reply(texts.NOT_WORDS)]
        if self.library.count_articles() == 0:
            return [Reply(texts.NO_ARTICLES)]
        k = self.settings.search.k
        asked_at = datetime.now(timezone.utc)
        replied = self._replied_turn(chat_id, replied_message, replied_token, asked_at)
        reading = self.follow_ups.read(chat_id, question, asked_at, replied)
        answer = self.follow_ups.search(question, reading, k, now=now, limit=3 * k)
        if not answer.answered:
            self.follow_ups.remember(chat_id, reading, answer, asked_at)
            self.activity.record_question(user_id, chat_id, question, answer, None, (time.monotonic() - started) * 1000)
            return [Reply("\n".join(filter(None, (_about(reading), render.not_found_html(answer.closest)))))]
        token = self.results.put(chat_id, answer)
        self.follow_ups.remember(chat_id, reading, answer, asked_at, token)
        page = self._page(answer, token, 0, heading=_about(reading))
        self.activity.record_question(user_id, chat_id, question, answer, token, (time.monotonic() - started) * 1000)
        return page

    def _replied_turn(self, chat_id: int, message_id: int | None, token: str | None, asked_at: datetime,
                      ) -> Turn | None:
        """The turn of the answer a message replies to: kept in the conversation, else rebuilt from the
        answer kept for its buttons; None when it replies to no answer that is still known."""
        if message_id is not None:
            turn = self.conversations.by_message(chat_id, message_id)
            if turn is not None:
                return turn
        answer = self.results.get(chat_id, token) if token else None
        return turn_from_answer(answer, asked_at, self.follow_ups.specificity, token) if answer else None

    def answer_shown(self, chat_id: int, replies: Sequence[Reply], message_ids: Sequence[int]) -> None:
        """Record the messages that showed an answer, so that a reply to any of them is read with it."""
        token = answer_token([button.data for reply in replies for row in reply.buttons for button in row])
        if token is not None and message_ids:
            self.conversations.attach_messages(chat_id, token, message_ids)

    def new_conversation(self, chat_id: int) -> Reply:
        """/new: forget the chat's conversation, so that the next question is read on its own."""
        self.conversations.forget(chat_id)
        return Reply(texts.NEW_CONVERSATION)

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

    def inline_answers(self, query: str, now: datetime | None = None) -> list[InlineAnswer]:
        """Up to INLINE_RESULTS passages answering an inline query, best first. None for a query shorter than
        INLINE_MIN_CHARS or without words, a command (commands never run inline), or a question the
        articles do not answer (the same refusal rule as in chats)."""
        query = _INVISIBLE.sub("", query).strip()
        if (len(query) < INLINE_MIN_CHARS or len(query) > MAX_QUESTION_CHARS or query.startswith("/")
                or not _HAS_WORD.search(query) or self.library.count_articles() == 0):
            return []
        k = self.settings.search.k
        answer = self.library.search(query, k=k, now=now, limit=max(k, INLINE_RESULTS), mark=INLINE_RESULTS)
        if not answer.answered:
            return []
        return [InlineAnswer(str(hit.passage_id), render.inline_title(hit), render.inline_description(hit),
                             render.passage_html(hit)) for hit in answer.hits[:INLINE_RESULTS]]

    def _page(self, answer: Answer, token: str, page: int, heading: str = "") -> list[Reply]:
        """One page of passages; the first page opens with the answer sentence and its citation, after
        ``heading`` (HTML) when there is one."""
        k = self.settings.search.k
        hits = answer.hits[page * k:(page + 1) * k]
        if not hits:
            return [Reply(texts.NO_MORE_PASSAGES)]
        lead = render.answer_lead(answer) if page == 0 else None
        messages = render.answer_messages(hits, first_number=page * k + 1, lead=lead, heading=heading)
        row = []
        if len(answer.hits) > (page + 1) * k:
            row.append(Button(texts.MORE_PASSAGES, f"more:{token}:{page + 1}"))
        row.append(Button(texts.SOURCES, f"src:{token}"))
        if self.activity.insights_on:
            row += [Button(texts.VOTE_UP, f"vote:{token}:u"), Button(texts.VOTE_DOWN, f"vote:{token}:d")]
        replies = [Reply(html) for html in messages[:-1]]
        replies.append(Reply(messages[-1], (tuple(row),)))
        return replies

    # -- information ----------------------------------------------------------------------------------
    def help(self, user_id: int | None) -> Reply:
        count = self.library.count_articles()
        newest = self.library.stats().newest if count else None
        lines = [texts.HELP_INTRO, texts.help_library_size(count, render.format_date(newest) if newest else None),
                 "", *texts.HELP_HOW_TO_ASK]
        if self.is_admin(user_id):
            lines += ["", *texts.HELP_ADMIN]
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
        article_id = _one_id(argument, "article number", texts.REMOVE_USAGE)
        if isinstance(article_id, Reply):
            return article_id
        article = self.library.remove(article_id)
        self.library.flush()
        if article is None:
            return Reply(texts.no_such_article(article_id))
        return Reply(texts.removed(render.article_line(article), article.id, article.passage_count))

    def list_page(self, user_id: int | None, offset: int) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        size = self.settings.bot.list_page_size
        total = self.library.count_articles()
        offset = max(0, min(offset, max(0, total - 1)))
        articles = self.library.list_articles(offset, size)
        row = []
        if offset > 0:
            row.append(Button(texts.NEWER, f"list:{max(0, offset - size)}"))
        if offset + size < total:
            row.append(Button(texts.OLDER, f"list:{offset + size}"))
        return Reply(render.article_list_html(articles, offset, total), (tuple(row),) if row else ())

    # -- feeds ----------------------------------------------------------------------------------------
    async def subscribe(self, user_id: int | None, argument: str, added_by: str) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        words = argument.split()
        if len(words) != 1 or not _URL.match(words[0]):
            return Reply(texts.SUBSCRIBE_USAGE)
        report = await self.feeds.subscribe(words[0], added_by)
        if report.error is not None and not report.busy:
            return Reply(texts.cannot_subscribe(report.error))
        feed = await asyncio.to_thread(self.feeds.feeds.get, report.feed.id) or report.feed
        lines = [texts.subscribed(feed.title or feed.url, feed.id, self.settings.feeds.poll_minutes)]
        if report.busy:
            lines.append(escape(report.error or ""))
        if report.results:
            lines.append(add_summary_html(report.results))
        return Reply(render.truncate_lines(lines))

    def unsubscribe(self, user_id: int | None, argument: str) -> Reply:
        if not self.is_admin(user_id):
            return REFUSAL
        feed_id = _one_id(argument, "feed number", texts.UNSUBSCRIBE_USAGE)
        if isinstance(feed_id, Reply):
            return feed_id
        feed = self.feeds.feeds.remove(feed_id)
        if feed is None:
            return Reply(texts.no_such_feed(feed_id))
        return Reply(texts.unsubscribed(feed.title or feed.url, feed.id))

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
        return Reply("\n".join(texts.stats_lines(
            articles=s.articles, passages=s.passages, vectors=s.vectors, newest=render.format_date(s.newest),
            store=s.store, database_bytes=s.database_bytes, index_bytes=s.index_bytes, model=s.model)))


def _about(reading: Reading) -> str:
    """A follow-up's reply opens with one line saying what it was read as being about ("" otherwise)."""
    return texts.about(reading.about) if reading.follow_up else ""


def add_summary_html(results: Sequence[AddResult], done: bool = True, total: int | None = None) -> str:
    """A progress or final report of an add: one line per input, then the counts."""
    counts = {status: sum(r.status == status for r in results) for status in texts.ADD_MARKS}
    lines = [texts.add_progress_heading(done, len(results), total if total is not None else len(results))]
    for result in results:
        lines.append(f"{texts.ADD_MARKS[result.status]} {escape(result.message)}")
    if done:
        lines.append(", ".join(f"{n} {status}" for status, n in counts.items() if n))
    return render.truncate_lines(lines)
