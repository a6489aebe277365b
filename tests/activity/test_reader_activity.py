"""ReaderActivity on a real library, on both stores: questions recorded (or not), votes, the insights report
with grouped open questions, open questions closed by a later add, and topic alerts matched after adds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from index.activity.reader_activity import ALERT, NOTICE, ReaderActivity
from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library
from tests.support.web_pages import NEWS_STORIES

ADMIN = 111
TREES, TRAINS, TELESCOPES = (f"{title}\n{text}" for title, text in NEWS_STORIES.values())
TELESCOPE_QUESTION = "Can I borrow a telescope from the library?"


@pytest.fixture
def activity(settings: Settings, embedder: Embedder) -> Iterator[ReaderActivity]:
    settings = settings.replace("bot", admin_ids=(ADMIN,))
    with Library(settings, embedder=embedder) as library:
        library.add_text(TREES)
        reader_activity = ReaderActivity(library.backend.activity(settings), library, settings)
        yield reader_activity
        reader_activity.close()


def record(activity: ReaderActivity, question: str, user_id: int = 5, chat_id: int = 5) -> tuple[int | None, str]:
    answer = activity.library.search(question)
    token = "t" + str(abs(hash(question)) % 10_000) if answer.answered else None
    return activity.record_question(user_id, chat_id, question, answer, token, 42.0), token or ""


def test_a_refused_question_is_open_until_an_add_answers_it_and_admins_who_asked_are_told(
        activity: ReaderActivity) -> None:
    record(activity, TELESCOPE_QUESTION)
    record(activity, "can i borrow a  telescope from the library?", user_id=6, chat_id=6)  # the same wording
    record(activity, "How many trees will the council plant?")  # answered
    report = activity.report()
    assert (report.questions, report.askers, report.answered, report.refused, report.open_questions) == (3, 2, 1, 2, 2)
    [group] = report.groups
    assert group.asked == 2 and "telescope" in group.example.lower()
    activity.set_notices(ADMIN, True)
    activity.set_notices(999, True)  # not an admin (any more): never told

    added = activity.library.add_text(TELESCOPES)
    assert activity.report().open_questions == 0
    [notice] = activity.take_outgoing()
    assert notice.chat_id == ADMIN and notice.payload == {"kind": NOTICE, "count": 2, "article_id": added.article.id}


def test_votes_count_once_per_reader_and_a_thumbs_down_reopens_an_answered_question(activity: ReaderActivity) -> None:
    question_id, token = record(activity, "How many trees will the council plant?", chat_id=-100)
    assert activity.vote(-100, token, 7, up=True).status == "recorded"
    assert activity.vote(-100, token, 7, up=True).status == "same"
    outcome = activity.vote(-100, token, 7, up=False)
    assert (outcome.status, outcome.question_id) == ("changed", question_id)
    assert activity.vote(-100, token, 8, up=True).status == "recorded"  # another reader in the group
    assert activity.vote(-101, token, 7, up=True).status == "unknown"  # the token belongs to another chat
    assert activity.give_reason(question_id, 7, "w") and not activity.give_reason(question_id, 8, "w")
    report = activity.report()
    assert (report.voted_up, report.voted_down, report.open_questions) == (1, 1, 1)
    assert report.reasons == {"wrong or outdated": 1}


def test_a_matching_article_alerts_each_reader_once_and_others_not_at_all(activity: ReaderActivity) -> None:
    activity.follow(5, 5, "night trains on the northern line")
    activity.follow(5, 5, "sleeper cars to the coast")  # a second topic of the same reader, matching too
    activity.follow(6, 6, "sanctions on North Korea")
    trains = activity.library.add_text(TRAINS).article
    [alert] = activity.take_outgoing()
    assert alert.chat_id == 5 and alert.payload["kind"] == ALERT
    assert alert.payload["article_id"] == trains.id and alert.payload["sentence"]
    passage = activity.library.store.get_passages([alert.payload["passage_id"]])[alert.payload["passage_id"]]
    assert passage.article_id == trains.id
    activity.library.add_text(TELESCOPES)  # no topic is about it
    assert activity.take_outgoing() == []


def test_the_daily_limit_holds_back_further_alerts(activity: ReaderActivity) -> None:
    limited = ReaderActivity(activity.store, activity.library, activity.settings.replace("alerts", max_per_day=1))
    activity.library.after_add.remove(activity.article_added)  # only the limited one listens
    limited.follow(5, 5, "night trains on the northern line")
    limited.follow(5, 5, "lending telescopes at the library")
    limited.library.add_text(TRAINS)
    limited.library.add_text(TELESCOPES)
    assert [o.payload["kind"] for o in limited.take_outgoing()] == [ALERT]
    limited.library.after_add.remove(limited.article_added)


def test_with_insights_off_nothing_is_recorded(settings: Settings, embedder: Embedder) -> None:
    off = settings.replace("insights", enabled=False)
    with Library(off, embedder=embedder) as library:
        library.add_text(TREES)
        activity = ReaderActivity(library.backend.activity(off), library, off)
        answer = library.search("How many trees will the council plant?")
        assert activity.record_question(5, 5, answer.question, answer, "tok", 10) is None
        assert activity.vote(5, "tok", 5, up=False).status == "unknown"
        assert activity.store.questions_since(datetime.now(timezone.utc) - timedelta(days=400)) == []
        activity.close()


def test_retention_deletes_old_questions(activity: ReaderActivity) -> None:
    old = ReaderActivity(activity.store, activity.library, activity.settings,
                         clock=lambda: datetime.now(timezone.utc) - timedelta(days=40))
    record(old, TELESCOPE_QUESTION)
    record(activity, "How many trees will the council plant?")
    assert activity.prune(force=True) == 1
    assert [q.question for q in activity.report(days=60).groups] == [] and activity.report(days=60).questions == 1
    old.library.after_add.remove(old.article_added)


def test_the_weekly_digest_is_off_by_default_and_claimed_once_a_week(activity: ReaderActivity) -> None:
    assert not activity.digest_due()
    monday = datetime(2026, 6, 1, 9, tzinfo=timezone.utc)
    week = {"now": monday}
    weekly = ReaderActivity(activity.store, activity.library, activity.settings.replace("insights", digest=True),
                            clock=lambda: week["now"])
    assert weekly.digest_due() and not weekly.digest_due()  # a second process in the same week
    week["now"] = monday + timedelta(days=6)
    assert not weekly.digest_due()
    week["now"] = monday + timedelta(days=7)
    assert weekly.digest_due()
    weekly.library.after_add.remove(weekly.article_added)
