"""The feed job never stalls the bot: while a poll waits for the database or parses a feed, the event loop
that serves every chat keeps running (a heartbeat coroutine beside the poll keeps beating)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Awaitable, Iterator, TypeVar

import feedparser
import pytest

from index.config import Settings
from index.embedding.embedder import Embedder
from index.ingest.feeds import FeedPoller
from index.library import Library

T = TypeVar("T")
BLOCKED_SECONDS = 2.0  # how long the poll is held up
HEARTBEAT_SECONDS = 0.02
LONGEST_ALLOWED_GAP = 1.0  # a loop blocked by the poll would miss beats for BLOCKED_SECONDS


@pytest.fixture
def web_library(embedded_settings: Settings, embedder: Embedder) -> Iterator[Library]:
    allowed = embedded_settings.replace("fetch", allow_hosts=("127.0.0.1",), timeout=2.0)
    with Library(allowed, embedder=embedder) as library:
        yield library


async def beside_a_heartbeat(work: Awaitable[T]) -> tuple[T, float]:
    """Await ``work`` while a heartbeat runs on the same loop; its result and the longest gap between beats."""
    task = asyncio.ensure_future(work)
    beats = [time.monotonic()]
    while not task.done():
        await asyncio.sleep(HEARTBEAT_SECONDS)
        beats.append(time.monotonic())
    return task.result(), max(later - earlier for earlier, later in zip(beats, beats[1:]))


def test_the_loop_keeps_running_while_a_poll_waits_for_the_database(web_library: Library, site: str) -> None:
    poller = FeedPoller(web_library)
    # another writer (a CLI add, say) holds SQLite's write lock for a while
    other_writer = sqlite3.connect(web_library.store.path, check_same_thread=False, isolation_level=None)
    other_writer.execute("BEGIN IMMEDIATE")
    release = threading.Timer(BLOCKED_SECONDS, other_writer.execute, ("ROLLBACK",))
    started = time.monotonic()
    release.start()
    try:
        report, longest_gap = asyncio.run(beside_a_heartbeat(poller.subscribe(f"{site}/feed.xml", "admin")))
    finally:
        release.join()
        other_writer.close()
    assert time.monotonic() - started >= BLOCKED_SECONDS  # the subscription did wait for the lock
    assert longest_gap < LONGEST_ALLOWED_GAP, f"the event loop stood still for {longest_gap:.2f} s"
    assert report.error is None and report.added == 2
    assert [feed.articles_added for feed in poller.feeds.all()] == [2]


def test_the_loop_keeps_running_while_a_slow_feed_is_parsed(web_library: Library, site: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real_parse = feedparser.parse

    def slow_parse(*args, **kwargs):  # the real parser, on a feed that takes long to parse
        time.sleep(BLOCKED_SECONDS)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(feedparser, "parse", slow_parse)
    poller = FeedPoller(web_library)
    feed = poller.feeds.add(f"{site}/feed.xml", "admin")
    started = time.monotonic()
    [report], longest_gap = asyncio.run(beside_a_heartbeat(poller.poll_due()))
    assert time.monotonic() - started >= BLOCKED_SECONDS
    assert longest_gap < LONGEST_ALLOWED_GAP, f"the event loop stood still for {longest_gap:.2f} s"
    assert report.feed.id == feed.id and report.error is None and report.added == 2
