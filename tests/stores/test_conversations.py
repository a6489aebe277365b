"""Each chat's conversation on both stores: turns kept, the TTL, /new, and replies found by message."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from index.config import Settings
from index.library import Library
from index.stores.base import Conversations, Turn

START = datetime.now(timezone.utc)  # the PostgreSQL store prunes ended conversations by the clock


@pytest.fixture
def conversations(library: Library, settings: Settings) -> Conversations:
    return library.backend.conversations(settings.replace("conversation", ttl_minutes=30, turns=2))


def turn(question: str, minutes: float, token: str | None = None, articles: tuple[int, ...] = ()) -> Turn:
    return Turn(question=question, asked_at=START + timedelta(minutes=minutes), context_words=("word",),
                article_ids=articles, title=f"About {question}", token=token)


def test_the_newest_turns_are_kept_oldest_first(conversations: Conversations) -> None:
    for number in range(3):
        conversations.add(7, turn(f"q{number}", number, articles=(number, number + 10)))
    kept = conversations.recent(7, START + timedelta(minutes=3))
    assert [t.question for t in kept] == ["q1", "q2"]
    assert kept[-1].article_ids == (2, 12) and kept[-1].context_words == ("word",) and kept[-1].title == "About q2"
    assert conversations.recent(8, START) == []  # another chat has none


def test_a_conversation_ends_ttl_after_its_last_turn(conversations: Conversations) -> None:
    conversations.add(7, turn("first", 0))
    conversations.add(7, turn("second", 20))
    assert len(conversations.recent(7, START + timedelta(minutes=49))) == 2  # 29 minutes after the last
    assert conversations.recent(7, START + timedelta(minutes=51)) == []
    conversations.add(7, turn("much later", 90))  # starts afresh: the ended turns are not continued
    assert [t.question for t in conversations.recent(7, START + timedelta(minutes=91))] == ["much later"]


def test_new_forgets_the_chat_only(conversations: Conversations) -> None:
    conversations.add(7, turn("mine", 0))
    conversations.add(9, turn("theirs", 0))
    conversations.forget(7)
    assert conversations.recent(7, START) == []
    assert [t.question for t in conversations.recent(9, START)] == ["theirs"]


def test_a_turn_is_found_by_the_messages_that_showed_it(conversations: Conversations) -> None:
    conversations.add(7, turn("asked", 0, token="tok1"))
    conversations.add(7, turn("other", 1, token="tok2"))
    conversations.attach_messages(7, "tok1", [501, 502])
    found = conversations.by_message(7, 502)
    assert found is not None and found.question == "asked" and found.message_ids == (501, 502)
    assert conversations.by_message(7, 503) is None
    assert conversations.by_message(8, 502) is None  # another chat's message id finds nothing
