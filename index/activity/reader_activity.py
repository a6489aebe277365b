"""ReaderActivity: what the bot records of readers and does with it, on top of the store's activity tables.

Questions and votes are recorded only with ``insights.enabled``; askers and voters are stored as salted
hashes (privacy.py). After each add (the library's ``after_add``), the open questions are asked again
(those the new article answers are closed, and the admins who asked for it are told) and the readers'
topics are matched against the article; alerts and notices wait in the store until a bot process takes
them (``take_outgoing``), so each is sent once whichever process added the article."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

from index.activity.alerts import article_match, ranked_for_topic
from index.activity.insights import REASONS, InsightsReport, build_report
from index.activity.prefilter import QueryVectors, article_vectors, reaching
from index.activity.privacy import ReaderHashes
from index.activity.records import DOWN, UP, Forgotten, Outgoing, Topic
from index.articles import Article
from index.config import Settings
from index.search.hybrid import Answer
from index.stores.base import ActivityStore

if TYPE_CHECKING:
    from index.library import Library

log = logging.getLogger(__name__)
# Seconds between deletions of expired rows by one process.
PRUNE_SECONDS = 3600.0
# What a waiting message is.
ALERT, NOTICE = "alert", "notice"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class VoteOutcome:
    """What a vote did: ``recorded`` (first vote), ``changed``, ``same`` (pressed again), or ``unknown``
    (no stored question behind the button: expired, forgotten, or insights off)."""

    status: str
    question_id: int | None = None
    up: bool = True


class ReaderActivity:
    def __init__(self, store: ActivityStore, library: "Library", settings: Settings,
                 clock: Callable[[], datetime] = utc_now) -> None:
        """Records into ``store`` and listens to ``library``'s adds (when insights or alerts are on)."""
        self.store = store
        self.library = library
        self.settings = settings
        self.clock = clock
        self.hashes = ReaderHashes(store.salt())
        self.query_vectors = QueryVectors(library.embedder)
        self._next_prune = 0.0
        if self.insights_on or self.alerts_on:
            library.after_add.append(self.article_added)

    @property
    def insights_on(self) -> bool:
        return self.settings.insights.enabled

    @property
    def alerts_on(self) -> bool:
        return self.settings.alerts.enabled

    # -- questions and votes ----------------------------------------------------------------------------
    def record_question(self, user_id: int | None, chat_id: int, question: str, answer: Answer, token: str | None,
                        reply_ms: float) -> int | None:
        """Store a question (the reader's words) with whether it was answered, the passages shown and the
        reply time (nothing when insights are off); returns its id. A store that fails is logged and the
        question goes unrecorded: the reader's answer never waits on the insights."""
        if not self.insights_on:
            return None
        shown = [hit.passage_id for hit in answer.hits[: self.settings.search.k]] if answer.answered else []
        asker = self.hashes.user(user_id) if user_id is not None else self.hashes.chat(chat_id)
        try:
            return self.store.record_question(asker=asker, chat=self.hashes.chat(chat_id), token=token,
                                              question=question, answered=answer.answered, passage_ids=shown,
                                              reply_ms=round(reply_ms), at=self.clock())
        except Exception:
            log.exception("could not record a question for the insights")
            return None

    def vote(self, chat_id: int, token: str, user_id: int, up: bool) -> VoteOutcome:
        """One reader's 👍 or 👎 on the answer ``token`` in a chat; a second vote replaces the first."""
        question_id = self.store.question_for_answer(self.hashes.chat(chat_id), token) if self.insights_on else None
        if question_id is None:
            return VoteOutcome("unknown", up=up)
        value = UP if up else DOWN
        earlier = self.store.vote(question_id, self.hashes.user(user_id), value, self.clock())
        status = "recorded" if earlier is None else "same" if earlier == value else "changed"
        return VoteOutcome(status, question_id, up)

    def give_reason(self, question_id: int, user_id: int, code: str) -> bool:
        """What was wrong with an answer the reader voted 👎 (a REASONS code); False when there is no such vote."""
        if code not in REASONS or not self.insights_on:
            return False
        return self.store.set_reason(question_id, self.hashes.user(user_id), code)

    # -- the report -------------------------------------------------------------------------------------
    def report(self, days: float | None = None) -> InsightsReport:
        return build_report(self.store, self.library, self.settings.insights,
                            days or self.settings.insights.period_days, self.clock())

    def set_notices(self, admin_id: int, on: bool) -> None:
        """Whether an admin is told when open questions are answered by an add."""
        self.store.set_notices(admin_id, on)

    def digest_due(self) -> bool:
        """True for the one process that first asks in a calendar week, when the weekly digest is on."""
        if not (self.settings.insights.digest and self.insights_on):
            return False
        year, week, _ = self.clock().isocalendar()
        return self.store.claim_once(f"digest:{year}-W{week:02d}", self.clock())

    # -- topics -----------------------------------------------------------------------------------------
    def follow(self, user_id: int, chat_id: int, topic: str) -> int | None:
        """Save a topic; None when the reader follows alerts.max_topics already."""
        return self.store.add_topic(user_id, chat_id, topic, self.clock(), self.settings.alerts.max_topics)

    def following(self, user_id: int) -> list[Topic]:
        return self.store.topics(user_id)

    def unfollow(self, user_id: int, topic_id: int) -> bool:
        return self.store.remove_topic(user_id, topic_id)

    def forget(self, user_id: int) -> Forgotten:
        """/forgetme: the reader's questions, votes and topics (and their alert records) deleted."""
        return self.store.forget(self.hashes.user(user_id), user_id)

    # -- after an add -----------------------------------------------------------------------------------
    def article_added(self, article: Article) -> None:
        """Close the open questions the article answers, then queue the alerts it raises."""
        if self.insights_on:
            self.close_answered(article)
        if self.alerts_on:
            self.queue_alerts(article)

    def close_answered(self, article: Article) -> int:
        """Ask the open questions again (alike wordings once); those whose first page now shows a passage of
        ``article`` that would answer on its own (its cosine reaches search.min_dense_score) are closed.
        Admins who asked for notices get one message saying how many; returns how many."""
        now = self.clock()
        since = now - timedelta(days=self.settings.insights.retention_days)
        by_wording: dict[str, list[int]] = {}
        for question in self.store.open_questions(since, self.settings.insights.reask_limit):
            by_wording.setdefault(" ".join(question.question.casefold().split()), []).append(question.id)
        if not by_wording:
            return 0
        search = self.settings.search
        wordings = list(by_wording)
        passages = article_vectors(self.library, article.id)
        could = reaching(self.query_vectors.of(wordings), passages, search.min_dense_score)
        answered: list[int] = []
        for wording in (wording for wording, close in zip(wordings, could) if close):
            ids = by_wording[wording]
            answer = self.library.search(wording, k=search.k, mark=0)
            if answer.answered and any(hit.article.id == article.id and hit.dense_score >= search.min_dense_score
                                       for hit in answer.hits[:search.k]):
                answered += ids
        closed = self.store.close_questions(answered, article.id, now) if answered else 0
        if closed:
            log.info("article #%d answers %d open question(s)", article.id, closed)
            for admin_id in self.store.notice_admins():
                if admin_id in self.settings.bot.admin_ids:
                    self.store.queue(admin_id, {"kind": NOTICE, "count": closed, "article_id": article.id}, now)
        return closed

    def queue_alerts(self, article: Article) -> int:
        """Match every topic against the article; each reader with a match gets one alert (their best
        matching passage), within their daily limit. Returns how many alerts were queued."""
        settings = self.settings.alerts
        topics = self.store.topics()
        if not topics:
            return 0
        could = reaching(self.query_vectors.of([topic.topic for topic in topics]),
                         article_vectors(self.library, article.id), settings.min_score)
        rankings: dict[str, Answer] = {}
        best: dict[int, tuple[Topic, float, int, tuple[int, int] | None]] = {}
        for topic in (topic for topic, match in zip(topics, could) if match):
            if topic.topic not in rankings:
                rankings[topic.topic] = ranked_for_topic(self.library, topic.topic, settings)
            hit = article_match(self.library, rankings[topic.topic], article.id, settings)
            if hit is not None and (topic.user_id not in best or hit.dense_score > best[topic.user_id][1]):
                best[topic.user_id] = (topic, hit.dense_score, hit.passage_id, hit.best_sentence)
        now, queued = self.clock(), 0
        for user_id, (topic, score, passage_id, sentence) in best.items():
            if not self.store.claim_alert(article.id, user_id, now, settings.max_per_day):
                log.info("alert on article #%d not sent: already sent or daily limit reached", article.id)
                continue
            self.store.queue(topic.chat_id, {"kind": ALERT, "topic": topic.topic, "topic_id": topic.id,
                                             "article_id": article.id, "passage_id": passage_id,
                                             "sentence": list(sentence) if sentence else None}, now)
            queued += 1
        return queued

    # -- housekeeping -----------------------------------------------------------------------------------
    def take_outgoing(self, limit: int = 20) -> list[Outgoing]:
        """Waiting alerts and notices, each handed to one caller only (whichever process asks first)."""
        return self.store.take_queued(limit)

    def prune(self, force: bool = False) -> int:
        """Delete what is older than insights.retention_days (at most every PRUNE_SECONDS unless ``force``)."""
        if not force and time.monotonic() < self._next_prune:
            return 0
        self._next_prune = time.monotonic() + PRUNE_SECONDS
        now = self.clock()
        gone = self.store.prune(now - timedelta(days=self.settings.insights.retention_days), now)
        if gone:
            log.info("deleted %d reader activity row(s) older than %g days", gone,
                     self.settings.insights.retention_days)
        return gone

    def close(self) -> None:
        if self.article_added in self.library.after_add:
            self.library.after_add.remove(self.article_added)
        self.store.close()
