"""Follow-up questions: the rules on small fixtures, and follow-ups searched with their context on the
sample library (the real model, the real store)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library
from index.search.followup import FollowUps, Reading, opens_elliptically, reason_to_follow
from index.stores.embedded.conversations import MemoryConversations

# Specificities as a library would measure them: rare names near 1, common words near 0.
RARE, MIDDLING, COMMON = 0.9, 0.45, 0.1
NOW = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
UN_QUESTION = "what did the UN Security Council say about North Korea?"


def test_a_pronoun_with_few_specific_words_depends_on_the_turn_before() -> None:
    assert reason_to_follow("What did he say about the sanctions?", {"say": COMMON, "sanctions": RARE}) == "pointing"
    assert reason_to_follow("Why did they leave?", {"leave": MIDDLING}) == "weak"


def test_ellipsis_and_contrast_depend_on_the_turn_before() -> None:
    assert reason_to_follow("and in 2023?", {"2023": MIDDLING, "in": COMMON}) == "weak"
    assert reason_to_follow("What about Germany and France?", {"germany": RARE, "france": MIDDLING}) == "ellipsis"
    assert reason_to_follow("But the Bundesbank disagreed?", {"bundesbank": RARE, "disagreed": MIDDLING}) == "ellipsis"
    assert opens_elliptically("in 2023?") and opens_elliptically("Why?")
    # a whole question that opens with a preposition is no ellipsis
    assert not opens_elliptically("In which city did the summit of European leaders take place?")


def test_a_weak_question_depends_on_the_turn_before_even_without_a_pointing_word() -> None:
    assert reason_to_follow("Any numbers?", {"numbers": MIDDLING}) == "weak"
    assert reason_to_follow("Why?", {}) == "weak"


def test_a_self_contained_question_is_new() -> None:
    specific = {"perseverance": RARE, "rover": RARE, "land": MIDDLING, "mars": RARE}
    assert reason_to_follow("When did the Perseverance rover land on Mars?", specific) == ""
    # a pointing word in a question specific enough on its own does not make it a follow-up
    question = "How did the Security Council respond to North Korea's launch of its ballistic missile?"
    specificity = {"security": MIDDLING, "council": MIDDLING, "respond": MIDDLING, "north": MIDDLING,
                   "korea": RARE, "launch": MIDDLING, "ballistic": RARE, "missile": RARE}
    assert reason_to_follow(question, specificity) == ""


@pytest.fixture
def library(sample_copy_settings: Settings, embedder: Embedder) -> Iterator[Library]:
    with Library(sample_copy_settings, embedder=embedder) as library:
        yield library


@pytest.fixture
def follow_ups(library: Library) -> FollowUps:
    return FollowUps(library, MemoryConversations(timedelta(minutes=30), 3))


def ask(follow_ups: FollowUps, chat: int, question: str, at: datetime) -> tuple[Reading, list[str]]:
    reading = follow_ups.read(chat, question, at)
    answer = follow_ups.search(question, reading, k=3)
    follow_ups.remember(chat, reading, answer, at)
    return reading, [hit.article.title for hit in answer.hits]


def test_a_short_follow_up_is_searched_with_the_earlier_turn(follow_ups: FollowUps) -> None:
    ask(follow_ups, 1, UN_QUESTION, NOW)
    reading, titles = ask(follow_ups, 1, "and what did China do?", NOW + timedelta(minutes=1))
    assert reading.follow_up and "council" in reading.words and "Security Council" in reading.about
    assert "Security Council" in titles[0]


def test_the_same_words_after_the_ttl_are_a_new_question(follow_ups: FollowUps) -> None:
    ask(follow_ups, 1, UN_QUESTION, NOW)
    reading, _ = ask(follow_ups, 1, "and what did China do?", NOW + timedelta(minutes=31))
    assert not reading.follow_up


def test_a_self_contained_question_after_an_unrelated_one_gets_its_own_answer(follow_ups: FollowUps,
                                                                              library: Library) -> None:
    question = "When did the Perseverance rover land on Mars?"
    alone = library.search(question, k=3)
    ask(follow_ups, 1, UN_QUESTION, NOW)
    reading = follow_ups.read(1, question, NOW + timedelta(minutes=1))
    answer = follow_ups.search(question, reading, k=3)
    assert not reading.follow_up
    assert [h.passage_id for h in answer.hits] == [h.passage_id for h in alone.hits]
    assert answer.hits[0].best_sentence_text == alone.hits[0].best_sentence_text


def test_a_question_asked_again_is_not_a_follow_up_of_itself(follow_ups: FollowUps) -> None:
    question = "What did they announce?"  # weak on its own: a follow-up of any other turn before it
    first, _ = ask(follow_ups, 1, question, NOW)
    again, _ = ask(follow_ups, 1, question.upper(), NOW + timedelta(minutes=1))
    assert not first.follow_up and not again.follow_up
    assert follow_ups.read(2, question, NOW).reason == ""
    ask(follow_ups, 2, UN_QUESTION, NOW)  # with another turn before it, it follows that one
    assert follow_ups.read(2, question, NOW + timedelta(minutes=1)).follow_up


def test_a_follow_up_asked_again_keeps_the_turn_it_followed(follow_ups: FollowUps) -> None:
    ask(follow_ups, 1, UN_QUESTION, NOW)
    ask(follow_ups, 1, "and what did China do?", NOW + timedelta(minutes=1))
    reading, titles = ask(follow_ups, 1, "And what did China do?", NOW + timedelta(minutes=2))
    assert reading.follow_up and reading.context[-1].question == UN_QUESTION
    assert "Security Council" in titles[0]
