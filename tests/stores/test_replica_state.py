"""What bot replicas share through PostgreSQL: answers waiting for their buttons, and feed poll locks."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Callable, Iterator

import numpy as np
import psycopg
import pytest

from bot.service import ChatService
from index.articles import utc_now
from index.config import Settings
from index.embedding.embedder import Embedder
from index.ingest import feeds as feeds_module
from index.ingest.feeds import FeedPoller
from index.library import Library
from index.search.hybrid import Answer
from index.stores.embedded.feed_locks import ProcessFeedLocks
from index.stores.embedded.results import ResultCache
from index.stores.postgres.feed_locks import PgFeedLocks, feed_lock_key
from index.stores.postgres.results import PgResultStore
from tests.support import web_pages

QUESTION = "what did the UN Security Council say?"
OpenLibrary = Callable[[], Library]


def replica_settings(base: Settings, dsn: str) -> Settings:
    return (base.replace("library", store="postgres").replace("postgres", dsn=dsn)
            .replace("fetch", allow_hosts=("127.0.0.1",), timeout=2.0).replace("bot", admin_ids=(111,)))


@contextmanager
def opening(settings: Settings, embedder: Embedder) -> Iterator[OpenLibrary]:
    """Opens libraries on one database, as separate replicas would (each with its own pool)."""
    opened: list[Library] = []

    def opener() -> Library:
        opened.append(Library(settings, embedder=embedder, reranker=None))
        return opened[-1]

    try:
        yield opener
    finally:
        for library in opened:
            library.close()


@pytest.fixture
def open_library(embedded_settings: Settings, postgres_dsn: str, embedder: Embedder) -> Iterator[OpenLibrary]:
    """Libraries on the test's new, empty database."""
    with opening(replica_settings(embedded_settings, postgres_dsn), embedder) as opener:
        yield opener


@pytest.fixture
def open_samples(embedded_settings: Settings, sample_postgres_copy_dsn: str,
                 embedder: Embedder) -> Iterator[OpenLibrary]:
    """Libraries on the test's copy of the sample articles' database."""
    with opening(replica_settings(embedded_settings, sample_postgres_copy_dsn), embedder) as opener:
        yield opener


@pytest.fixture
def sample_library(open_samples: OpenLibrary) -> Library:
    return open_samples()


def rows(library: Library) -> int:
    return int(library.store.query("SELECT count(*) FROM bot_results")[0][0])


# -- the result store ---------------------------------------------------------------------------------
def test_answers_round_trip_through_the_database(sample_library: Library) -> None:
    results = PgResultStore(sample_library.store)
    answer = sample_library.search(QUESTION, k=3, limit=9)
    assert len(answer.hits) == 9 and answer.answered and answer.hits[0].best_sentence is not None
    question = "Was <b>\"Tom & Jerry\"</b> at the UN's <script>alert(1)</script> council? 🙂 &amp;"
    answer = replace(answer, question=question)
    token = results.put(5, answer)

    stored = results.get(5, token)
    assert stored is not None and stored.question == question and stored.answered
    assert stored.hits == answer.hits  # ids, articles, text, spans, scores, ranks, marked sentences
    assert answer.lead_hit is not None and stored.lead_hit == answer.lead_hit  # the sentence a reply leads with
    assert np.array_equal(stored.query_vector, answer.query_vector)
    assert results.get(6, token) is None  # another chat's token (forged callback data) finds nothing
    assert results.get(5, "nonsense") is None and results.get(5, "") is None

    marked = sample_library.mark_hits(stored, 3, 6)
    assert all(hit.best_sentence is None for hit in stored.hits[3:6])
    results.update(5, token, marked)
    assert [hit.best_sentence for hit in results.get(5, token).hits] == [hit.best_sentence for hit in marked.hits]
    assert all(hit.best_sentence is not None for hit in results.get(5, token).hits[:6])
    results.update(6, token, Answer("other chat"))  # changes nothing of chat 5's answer
    assert results.get(5, token).question == question

    bare = Answer("no vector", answer.hits[:2], False, None)
    again = results.get(7, results.put(7, bare))
    assert again.query_vector is None and again.hits == bare.hits and not again.answered


def test_old_answers_expire_and_each_chat_keeps_its_newest(sample_library: Library) -> None:
    results = PgResultStore(sample_library.store, ttl=timedelta(hours=1), max_per_chat=3)
    answer = sample_library.search(QUESTION, k=3, limit=3)
    tokens = [results.put(1, answer) for _ in range(4)]
    other = results.put(2, answer)
    assert results.get(1, tokens[0]) is None and all(results.get(1, t) is not None for t in tokens[1:])
    assert results.get(2, other) is not None and rows(sample_library) == 4

    with sample_library.store.connection() as connection:
        connection.execute("UPDATE bot_results SET created_at = now() - interval '2 hours' WHERE token = %s",
                           (tokens[1],))
    assert results.get(1, tokens[1]) is None
    results.update(1, tokens[1], answer)
    assert results.get(1, tokens[1]) is None  # an expired answer stays gone
    assert results.prune() == 1 and rows(sample_library) == 3 and results.prune() == 0


def test_a_removed_articles_passages_are_dropped(sample_library: Library) -> None:
    results = PgResultStore(sample_library.store)
    answer = sample_library.search(QUESTION, k=3, limit=9)
    articles = list(dict.fromkeys(hit.article.id for hit in answer.hits))
    assert len(articles) >= 2
    token = results.put(3, answer)
    sample_library.remove(articles[0])
    stored = results.get(3, token)
    assert [hit.passage_id for hit in stored.hits] == [hit.passage_id for hit in answer.hits
                                                       if hit.article.id != articles[0]]
    for article_id in articles[1:]:
        sample_library.remove(article_id)
    assert results.get(3, token) is None  # nothing left to show: "no longer available"


def test_two_replicas_serve_each_others_buttons(open_samples: OpenLibrary) -> None:
    one, other = open_samples(), open_samples()
    first, second = ChatService(one, one.settings), ChatService(other, other.settings)
    assert isinstance(first.results, PgResultStore) and first.results is not second.results

    replies = first.answer(5, QUESTION)
    assert "Security Council" in replies[0].html
    more_button, sources_button, _up, _down = [button for row in replies[-1].buttons for button in row]
    token, page = more_button.data.split(":")[1:]
    more = second.more(5, token, int(page))
    assert "<b>4.</b>" in more[0].html and "<b>" in more[0].html.split("</b>", 1)[1]  # a sentence marked
    assert "Sources" in second.sources(5, sources_button.data.split(":")[1]).html
    assert "no longer available" in second.more(6, token, 1)[0].html
    kept = first.results.get(5, token)  # the sentences the second replica marked are shared
    assert all(hit.best_sentence is not None for hit in kept.hits[3:6]) and first.more(5, token, 1) == more


def test_the_embedded_store_keeps_answers_in_memory(embedded_settings: Settings, embedder: Embedder) -> None:
    with Library(embedded_settings, embedder=embedder, reranker=None) as library:
        assert isinstance(ChatService(library, library.settings).results, ResultCache)
        assert isinstance(FeedPoller(library).locks, ProcessFeedLocks)


# -- feed polling -------------------------------------------------------------------------------------
def feed_fetches() -> int:
    return web_pages.REQUESTS.count("/feed.xml")


def test_a_feed_held_by_another_replica_is_skipped(open_library: OpenLibrary, postgres_dsn: str, site: str) -> None:
    poller = FeedPoller(open_library())
    assert isinstance(poller.locks, PgFeedLocks)
    feed = poller.feeds.add(f"{site}/feed.xml", "admin")
    with psycopg.connect(postgres_dsn, autocommit=True) as other_replica:
        other_replica.execute("SELECT pg_advisory_lock(%s)", (feed_lock_key(feed.id),))
        assert asyncio.run(poller.poll_due()) == [] and feed_fetches() == 0
        other_replica.execute("SELECT pg_advisory_unlock(%s)", (feed_lock_key(feed.id),))
    [report] = asyncio.run(poller.poll_due())
    assert report.added == 2 and feed_fetches() == 1


def test_two_replicas_poll_a_due_feed_once(open_library: OpenLibrary, site: str) -> None:
    first, second = FeedPoller(open_library()), FeedPoller(open_library())
    feed = first.feeds.add(f"{site}/feed.xml", "admin")
    stale = second.feeds.due(utc_now())

    async def both() -> list[list]:
        return list(await asyncio.gather(first.poll_due(), second.poll_due()))

    reports = asyncio.run(both())
    assert sorted(len(r) for r in reports) == [0, 1] and feed_fetches() == 1
    assert first.library.count_articles() == 2 and first.feeds.get(feed.id).articles_added == 2
    # a replica whose list of due feeds was read before the other's poll ended reads it again under the lock
    second.feeds.due = lambda now: stale  # type: ignore[method-assign]
    assert asyncio.run(second.poll_due()) == [] and feed_fetches() == 1


def test_subscribe_waits_for_another_replicas_poll_and_keeps_the_feed(
        open_library: OpenLibrary, postgres_dsn: str, site: str, monkeypatch: pytest.MonkeyPatch) -> None:
    poller = FeedPoller(open_library())
    monkeypatch.setattr(feeds_module, "LOCK_WAIT_SECONDS", 1.0)
    first_id = int(poller.library.store.query("SELECT COALESCE(max(id), 0) + 1 FROM feeds")[0][0])
    with psycopg.connect(postgres_dsn, autocommit=True) as other_replica:
        other_replica.execute("SELECT pg_advisory_lock(%s)", (feed_lock_key(first_id),))
        report = asyncio.run(poller.subscribe(f"{site}/feed.xml", "admin"))
    assert report.busy and report.feed.id == first_id and feed_fetches() == 0
    assert [feed.id for feed in poller.feeds.all()] == [first_id]  # kept: the other replica is polling it
