"""The reader-activity statements both stores run, in SQLite-style SQL (``?`` placeholders).

SqliteActivity (index/stores/embedded/activity.py) and PgActivity (index/stores/postgres/activity.py)
supply a connection and their tables (the same columns: times are Unix seconds, passage ids a
comma-separated text), and inherit everything else from SharedActivitySql."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, Protocol, Sequence

from index.activity.privacy import new_salt
from index.activity.records import DOWN, AskedQuestion, Forgotten, Outgoing, Topic

SALT_KEY = "reader_salt"
# Seconds in the window of the per-day alert limit.
DAY_SECONDS = 24 * 3600


class Cursor(Protocol):
    rowcount: int

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class Connection(Protocol):
    """One transaction's connection, taking ``?`` SQL."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...


def seconds(moment: datetime) -> float:
    return moment.timestamp()


def moment(value: float) -> datetime:
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


_QUESTION_COLUMNS = (
    "q.id, q.question, q.asker, q.answered, q.reply_ms, q.asked_at, q.closed_by,"
    " (SELECT COUNT(*) FROM activity_votes v WHERE v.question_id = q.id AND v.vote = 1) AS up_votes,"
    " (SELECT COUNT(*) FROM activity_votes v WHERE v.question_id = q.id AND v.vote = -1) AS down_votes")


def _question(row: Any) -> AskedQuestion:
    return AskedQuestion(id=int(row[0]), question=row[1], asker=row[2], answered=bool(row[3]), reply_ms=int(row[4]),
                         asked_at=moment(row[5]), closed_by=None if row[6] is None else int(row[6]),
                         up_votes=int(row[7]), down_votes=int(row[8]))


def _topic(row: Any) -> Topic:
    return Topic(id=int(row[0]), user_id=int(row[1]), chat_id=int(row[2]), topic=row[3], created_at=moment(row[4]))


class SharedActivitySql(ABC):
    """Questions, votes, topics, alert claims, waiting messages and admin notice choices in one store."""

    # What a store adds to the SELECT that picks waiting messages, so that concurrent takers skip each
    # other's rows instead of waiting for them (PostgreSQL: FOR UPDATE SKIP LOCKED).
    skip_locked = ""

    @abstractmethod
    def connection(self) -> AbstractContextManager[Connection]:
        """A connection in a transaction, committed when the block ends (rolled back on an error)."""

    def close(self) -> None:
        """Release connections the store opened for activity alone."""

    # -- the salt ---------------------------------------------------------------------------------------
    def salt(self) -> str:
        """The library's salt for reader hashes, made by whichever process first needs it."""
        with self.connection() as db:
            db.execute("INSERT INTO activity_meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                       (SALT_KEY, new_salt()))
            return str(db.execute("SELECT value FROM activity_meta WHERE key = ?", (SALT_KEY,)).fetchone()[0])

    def claim_once(self, key: str, at: datetime) -> bool:
        """True for the one caller that first claims ``key`` (e.g. a week's digest), False for all later ones."""
        with self.connection() as db:
            return db.execute("INSERT INTO activity_meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                              (f"claimed:{key}", str(seconds(at)))).rowcount == 1

    # -- questions and votes ----------------------------------------------------------------------------
    def record_question(self, *, asker: str, chat: str, token: str | None, question: str, answered: bool,
                        passage_ids: Sequence[int], reply_ms: int, at: datetime) -> int:
        with self.connection() as db:
            row = db.execute(
                "INSERT INTO activity_questions(asked_at, asker, chat, token, question, answered, passage_ids,"
                " reply_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (seconds(at), asker, chat, token, question, bool(answered), ",".join(map(str, passage_ids)),
                 int(reply_ms))).fetchone()
            return int(row[0])

    def question_for_answer(self, chat: str, token: str) -> int | None:
        """The stored question whose answer carries ``token`` in that chat."""
        with self.connection() as db:
            row = db.execute("SELECT id FROM activity_questions WHERE chat = ? AND token = ? ORDER BY id DESC"
                             " LIMIT 1", (chat, token)).fetchone()
        return None if row is None else int(row[0])

    def vote(self, question_id: int, voter: str, value: int, at: datetime) -> int | None:
        """Store a voter's vote on a question (replacing theirs); returns their earlier vote, if any."""
        with self.connection() as db:
            row = db.execute("SELECT vote FROM activity_votes WHERE question_id = ? AND voter = ?",
                             (question_id, voter)).fetchone()
            db.execute("INSERT INTO activity_votes(question_id, voter, vote, voted_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (question_id, voter) DO UPDATE SET vote = excluded.vote,"
                       " voted_at = excluded.voted_at, reason = NULL", (question_id, voter, value, seconds(at)))
        return None if row is None else int(row[0])

    def set_reason(self, question_id: int, voter: str, reason: str) -> bool:
        """Say what was wrong with an answer the voter voted 👎; False when they have no such vote."""
        with self.connection() as db:
            return db.execute("UPDATE activity_votes SET reason = ? WHERE question_id = ? AND voter = ? AND vote = ?",
                              (reason, question_id, voter, DOWN)).rowcount == 1

    def questions_since(self, since: datetime) -> list[AskedQuestion]:
        with self.connection() as db:
            rows = db.execute(f"SELECT {_QUESTION_COLUMNS} FROM activity_questions q WHERE q.asked_at >= ?"
                              " ORDER BY q.id", (seconds(since),)).fetchall()
        return [_question(row) for row in rows]

    def open_questions(self, since: datetime, limit: int) -> list[AskedQuestion]:
        """Questions asked since ``since`` that were refused or voted 👎 and are not closed, newest first."""
        with self.connection() as db:
            rows = db.execute(
                f"SELECT {_QUESTION_COLUMNS} FROM activity_questions q WHERE q.asked_at >= ? AND q.closed_by IS NULL"
                " AND (NOT q.answered OR EXISTS (SELECT 1 FROM activity_votes v WHERE v.question_id = q.id"
                " AND v.vote = -1)) ORDER BY q.id DESC LIMIT ?", (seconds(since), limit)).fetchall()
        return [_question(row) for row in rows]

    def close_questions(self, question_ids: Sequence[int], article_id: int, at: datetime) -> int:
        """Mark open questions as answered by ``article_id``; returns how many were still open."""
        closed = 0
        with self.connection() as db:
            for question_id in question_ids:
                closed += db.execute("UPDATE activity_questions SET closed_by = ?, closed_at = ?"
                                     " WHERE id = ? AND closed_by IS NULL",
                                     (article_id, seconds(at), question_id)).rowcount
        return closed

    def reasons_since(self, since: datetime) -> dict[str, int]:
        """How often each 👎 reason was given for questions asked since ``since``."""
        with self.connection() as db:
            rows = db.execute("SELECT v.reason, COUNT(*) FROM activity_votes v JOIN activity_questions q"
                              " ON q.id = v.question_id WHERE q.asked_at >= ? AND v.reason IS NOT NULL"
                              " GROUP BY v.reason", (seconds(since),)).fetchall()
        return {row[0]: int(row[1]) for row in rows}

    # -- topics and alerts ------------------------------------------------------------------------------
    def add_topic(self, user_id: int, chat_id: int, topic: str, at: datetime, max_topics: int) -> int | None:
        """Store a topic; None when the reader already follows ``max_topics``."""
        with self.connection() as db:
            row = db.execute(
                "INSERT INTO activity_topics(user_id, chat_id, topic, created_at) SELECT ?, ?, ?, ?"
                " WHERE (SELECT COUNT(*) FROM activity_topics WHERE user_id = ?) < ? RETURNING id",
                (user_id, chat_id, topic, seconds(at), user_id, max_topics)).fetchone()
        return None if row is None else int(row[0])

    def topics(self, user_id: int | None = None) -> list[Topic]:
        """One reader's topics, or everyone's (``None``), oldest first."""
        where, params = ("WHERE user_id = ?", (user_id,)) if user_id is not None else ("", ())
        with self.connection() as db:
            rows = db.execute(f"SELECT id, user_id, chat_id, topic, created_at FROM activity_topics {where}"
                              " ORDER BY id", params).fetchall()
        return [_topic(row) for row in rows]

    def remove_topic(self, user_id: int, topic_id: int) -> bool:
        with self.connection() as db:
            return db.execute("DELETE FROM activity_topics WHERE id = ? AND user_id = ?",
                              (topic_id, user_id)).rowcount == 1

    def claim_alert(self, article_id: int, user_id: int, at: datetime, max_per_day: int) -> bool:
        """True once per (article, reader), and only while the reader got fewer than ``max_per_day`` alerts
        in the 24 hours before ``at``: the caller that gets True sends the alert."""
        with self.connection() as db:
            return db.execute(
                "INSERT INTO activity_alerts(article_id, user_id, sent_at) SELECT ?, ?, ?"
                " WHERE (SELECT COUNT(*) FROM activity_alerts WHERE user_id = ? AND sent_at > ?) < ?"
                " ON CONFLICT (article_id, user_id) DO NOTHING",
                (article_id, user_id, seconds(at), user_id, seconds(at) - DAY_SECONDS, max_per_day)).rowcount == 1

    # -- messages waiting to be sent --------------------------------------------------------------------
    def queue(self, chat_id: int, payload: dict[str, Any], at: datetime) -> None:
        with self.connection() as db:
            db.execute("INSERT INTO activity_outbox(chat_id, payload, queued_at) VALUES (?, ?, ?)",
                       (chat_id, json.dumps(payload), seconds(at)))

    def take_queued(self, limit: int) -> list[Outgoing]:
        """Remove and return up to ``limit`` waiting messages, oldest first: each is taken by one caller."""
        with self.connection() as db:
            rows = db.execute(
                "DELETE FROM activity_outbox WHERE id IN (SELECT id FROM activity_outbox ORDER BY id LIMIT ?"
                f"{self.skip_locked}) RETURNING id, chat_id, payload", (limit,)).fetchall()
        return sorted((Outgoing(int(r[0]), int(r[1]), json.loads(r[2])) for r in rows), key=lambda o: o.id)

    # -- admins' notices --------------------------------------------------------------------------------
    def set_notices(self, admin_id: int, on: bool) -> None:
        with self.connection() as db:
            if on:
                db.execute("INSERT INTO activity_notices(admin_id) VALUES (?) ON CONFLICT (admin_id) DO NOTHING",
                           (admin_id,))
            else:
                db.execute("DELETE FROM activity_notices WHERE admin_id = ?", (admin_id,))

    def notice_admins(self) -> list[int]:
        with self.connection() as db:
            return [int(row[0]) for row in db.execute("SELECT admin_id FROM activity_notices ORDER BY admin_id")]

    # -- forgetting -------------------------------------------------------------------------------------
    def forget(self, reader: str, user_id: int) -> Forgotten:
        """Delete one reader's questions (with every vote on them), votes, topics, alert records and waiting
        alerts; counts what was theirs."""
        with self.connection() as db:
            votes = db.execute("DELETE FROM activity_votes WHERE voter = ?", (reader,)).rowcount
            db.execute("DELETE FROM activity_votes WHERE question_id IN"
                       " (SELECT id FROM activity_questions WHERE asker = ?)", (reader,))
            questions = db.execute("DELETE FROM activity_questions WHERE asker = ?", (reader,)).rowcount
            topics = db.execute("DELETE FROM activity_topics WHERE user_id = ?", (user_id,)).rowcount
            db.execute("DELETE FROM activity_alerts WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM activity_outbox WHERE chat_id = ?", (user_id,))
        return Forgotten(questions=max(questions, 0), votes=max(votes, 0), topics=max(topics, 0))

    def prune(self, before: datetime, now: datetime) -> int:
        """Delete the questions, votes, alert records and unsent messages older than ``before`` (alert records
        are kept a day at least, for the per-day limit); returns how many rows went."""
        cutoff = seconds(before)
        with self.connection() as db:
            gone = db.execute("DELETE FROM activity_votes WHERE voted_at < ? OR question_id IN"
                              " (SELECT id FROM activity_questions WHERE asked_at < ?)", (cutoff, cutoff)).rowcount
            gone += db.execute("DELETE FROM activity_questions WHERE asked_at < ?", (cutoff,)).rowcount
            gone += db.execute("DELETE FROM activity_alerts WHERE sent_at < ?",
                               (min(cutoff, seconds(now) - DAY_SECONDS),)).rowcount
            gone += db.execute("DELETE FROM activity_outbox WHERE queued_at < ?", (cutoff,)).rowcount
        return gone

