"""The activity tables on both stores: questions and votes, topics, alert claims, waiting messages,
forgetting and retention; the embedded store's file survives a restart."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from index.activity.records import DOWN, UP
from index.activity.sql import SharedActivitySql
from index.config import Settings
from index.library import Library

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)


def activity(library: Library, settings: Settings) -> SharedActivitySql:
    return library.backend.activity(settings)  # type: ignore[return-value]


def ask(store: SharedActivitySql, asker: str = "a1", token: str | None = "tok", answered: bool = True,
        at: datetime = NOW, question: str = "what happened?") -> int:
    return store.record_question(asker=asker, chat="c1", token=token, question=question, answered=answered,
                                 passage_ids=[3, 4], reply_ms=120, at=at)


def test_votes_are_one_per_reader_and_answer_and_can_change(library: Library, settings: Settings) -> None:
    store = activity(library, settings)
    question = ask(store)
    assert store.question_for_answer("c1", "tok") == question
    assert store.question_for_answer("c2", "tok") is None  # another chat's token finds nothing
    assert store.vote(question, "v1", UP, NOW) is None
    assert store.vote(question, "v1", DOWN, NOW) == UP  # changed
    assert store.vote(question, "v2", UP, NOW) is None  # another reader
    [stored] = store.questions_since(NOW - timedelta(days=1))
    assert (stored.up_votes, stored.down_votes, stored.answered, stored.reply_ms) == (1, 1, True, 120)
    assert stored.open  # voted 👎 by someone
    assert store.set_reason(question, "v1", "w") and not store.set_reason(question, "v2", "w")  # v2 voted 👍
    assert store.reasons_since(NOW - timedelta(days=1)) == {"w": 1}


def test_open_questions_close_once_and_are_newest_first(library: Library, settings: Settings) -> None:
    store = activity(library, settings)
    refused = ask(store, token=None, answered=False)
    answered = ask(store, token="t2")
    newer = ask(store, token=None, answered=False, at=NOW + timedelta(minutes=1))
    since = NOW - timedelta(days=1)
    assert [q.id for q in store.open_questions(since, 10)] == [newer, refused]
    assert store.open_questions(since, 1)[0].id == newer
    assert store.close_questions([refused, answered], 7, NOW) == 2
    assert store.close_questions([refused], 8, NOW) == 0  # already closed
    assert [q.id for q in store.open_questions(since, 10)] == [newer]


def test_topics_are_limited_per_reader_and_removed_only_by_their_reader(library: Library, settings: Settings) -> None:
    store = activity(library, settings)
    first = store.add_topic(5, 5, "sanctions on North Korea", NOW, max_topics=2)
    second = store.add_topic(5, 5, "Mars rover", NOW, max_topics=2)
    assert first is not None and second is not None
    assert store.add_topic(5, 5, "third", NOW, max_topics=2) is None
    assert store.add_topic(6, 6, "Mars rover", NOW, max_topics=2) is not None  # another reader's own limit
    assert [t.topic for t in store.topics(5)] == ["sanctions on North Korea", "Mars rover"]
    assert len(store.topics()) == 3
    assert not store.remove_topic(6, first)  # not theirs
    assert store.remove_topic(5, first) and [t.id for t in store.topics(5)] == [second]


def test_an_alert_is_claimed_once_per_article_and_reader_within_the_daily_limit(library: Library,
                                                                                 settings: Settings) -> None:
    store = activity(library, settings)
    assert store.claim_alert(1, 5, NOW, max_per_day=2)
    assert not store.claim_alert(1, 5, NOW, max_per_day=2)  # the same article again
    assert store.claim_alert(2, 5, NOW, max_per_day=2)
    assert not store.claim_alert(3, 5, NOW, max_per_day=2)  # a third within 24 hours
    assert store.claim_alert(3, 6, NOW, max_per_day=2)  # another reader
    assert store.claim_alert(3, 5, NOW + timedelta(hours=25), max_per_day=2)  # a day later


def test_a_waiting_message_is_taken_once(library: Library, settings: Settings) -> None:
    store = activity(library, settings)
    store.queue(5, {"kind": "alert", "article_id": 1}, NOW)
    store.queue(6, {"kind": "notice", "article_id": 2}, NOW)
    taken = store.take_queued(10)
    assert [(o.chat_id, o.payload["kind"]) for o in taken] == [(5, "alert"), (6, "notice")]
    assert store.take_queued(10) == []
    assert store.claim_once("digest:2026-W19", NOW) and not store.claim_once("digest:2026-W19", NOW)


def test_forget_deletes_a_readers_rows_and_counts_them(library: Library, settings: Settings) -> None:
    store = activity(library, settings)
    mine, theirs = ask(store, asker="me"), ask(store, asker="them", token="t2")
    ask(store, asker="me", token=None, answered=False)
    store.vote(theirs, "me", DOWN, NOW)
    store.vote(mine, "them", UP, NOW)
    store.add_topic(5, 5, "topic", NOW, 10)
    store.claim_alert(1, 5, NOW, 5)
    store.queue(5, {"kind": "alert"}, NOW)
    forgotten = store.forget("me", 5)
    assert (forgotten.questions, forgotten.votes, forgotten.topics) == (2, 1, 1)
    [left] = store.questions_since(NOW - timedelta(days=1))
    assert left.id == theirs and left.down_votes == 0
    assert store.topics(5) == [] and store.take_queued(10) == []
    assert store.claim_alert(1, 5, NOW, 5)  # its alert record went too
    assert store.forget("me", 5).questions == 0


def test_rows_older_than_the_retention_expire(library: Library, settings: Settings) -> None:
    store = activity(library, settings)
    old = ask(store, at=NOW - timedelta(days=31))
    store.vote(old, "v", DOWN, NOW - timedelta(days=31))
    recent = ask(store, token="t2", at=NOW - timedelta(days=1))
    store.claim_alert(1, 5, NOW - timedelta(days=31), 5)
    store.queue(5, {"kind": "alert"}, NOW - timedelta(days=31))  # never sent: no bot ran
    assert store.prune(NOW - timedelta(days=30), NOW) == 4
    assert store.take_queued(10) == []
    assert [q.id for q in store.questions_since(NOW - timedelta(days=60))] == [recent]
    assert store.prune(NOW - timedelta(days=30), NOW) == 0


def test_the_salt_is_made_once_and_kept_across_restarts(embedded_settings: Settings, embedder) -> None:
    with Library(embedded_settings, embedder=embedder) as library:
        store = activity(library, embedded_settings)
        salt = store.salt()
        ask(store)
        store.close()
    with Library(embedded_settings, embedder=embedder) as library:
        store = activity(library, embedded_settings)
        assert store.salt() == salt and len(salt) == 64
        assert len(store.questions_since(NOW - timedelta(days=1))) == 1
        store.close()


def test_takers_in_parallel_share_the_waiting_messages_without_overlap(library: Library, settings: Settings) -> None:
    stores = [activity(library, settings) for _ in range(3)]  # as three processes would hold them
    for chat in range(120):
        stores[0].queue(chat, {"kind": "alert"}, NOW)
    taken: list[list[int]] = [[] for _ in stores]

    def take(number: int) -> None:
        while batch := stores[number].take_queued(7):
            taken[number] += [message.chat_id for message in batch]

    threads = [threading.Thread(target=take, args=(number,)) for number in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(chat for chats in taken for chat in chats) == list(range(120))  # each exactly once
    for store in stores:
        store.close()
