"""Reader activity for the embedded store: a SQLite file of its own beside the library's files
(``activity.sqlite3`` in the data directory), so it survives restarts and is shared by the bot and the
command line on one machine, while the library's own database stays articles only (a backup or restore
of the library leaves readers' data alone)."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path

from index.activity.sql import Connection, SharedActivitySql
from index.stores.embedded.store import immediate_transaction

ACTIVITY_FILE = "activity.sqlite3"
# Seconds a writer waits for another process's transaction on the file.
BUSY_SECONDS = 10.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS activity_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS activity_questions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asked_at REAL NOT NULL,
    asker TEXT NOT NULL,
    chat TEXT NOT NULL,
    token TEXT,
    question TEXT NOT NULL,
    answered BOOLEAN NOT NULL,
    passage_ids TEXT NOT NULL DEFAULT '',
    reply_ms INTEGER NOT NULL,
    closed_by INTEGER,
    closed_at REAL
);
CREATE INDEX IF NOT EXISTS activity_questions_by_age ON activity_questions(asked_at);
CREATE INDEX IF NOT EXISTS activity_questions_by_answer ON activity_questions(chat, token);
CREATE INDEX IF NOT EXISTS activity_questions_by_asker ON activity_questions(asker);
CREATE TABLE IF NOT EXISTS activity_votes (
    question_id INTEGER NOT NULL,
    voter TEXT NOT NULL,
    vote INTEGER NOT NULL,
    reason TEXT,
    voted_at REAL NOT NULL,
    PRIMARY KEY (question_id, voter)
);
CREATE INDEX IF NOT EXISTS activity_votes_by_voter ON activity_votes(voter);
CREATE TABLE IF NOT EXISTS activity_topics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    topic TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_topics_by_user ON activity_topics(user_id);
CREATE TABLE IF NOT EXISTS activity_alerts (
    article_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (article_id, user_id)
);
CREATE INDEX IF NOT EXISTS activity_alerts_by_user ON activity_alerts(user_id, sent_at);
CREATE TABLE IF NOT EXISTS activity_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL,
    payload TEXT NOT NULL,
    queued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS activity_notices (admin_id INTEGER PRIMARY KEY);
"""


class SqliteActivity(SharedActivitySql):
    """Reader activity in ``activity.sqlite3`` in the data directory (WAL, one connection per process)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / ACTIVITY_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(SCHEMA)

    def connection(self) -> AbstractContextManager[Connection]:
        return immediate_transaction(self._db, self._lock)

    def close(self) -> None:
        with self._lock:
            self._db.close()
