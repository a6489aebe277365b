"""SqliteStore: the embedded store's source of truth (index/stores/base.py's Store contract) for articles,
passages, their vectors and an FTS5 full-text index (ranked for reference by
index/stores/embedded/fts_reference.py; the library ranks keywords from index/stores/embedded/keywords.py)."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from index.articles import Article, parse_date
from index.stores.base import PassageOrigin, PassageRow, SharedSql, article_from_row
from index.stores.embedded.terms import FTS5_TOKENIZER

SCHEMA_VERSION = 1
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL UNIQUE,
    content_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    url TEXT,
    published TEXT,
    source TEXT,
    author TEXT,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    minhash BLOB
);
CREATE INDEX IF NOT EXISTS articles_by_hash ON articles(content_hash);
-- Addresses of copies that were recognised as the same story and linked to the stored article.
CREATE TABLE IF NOT EXISTS article_aliases (
    identity TEXT PRIMARY KEY,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS articles_by_date ON articles(published, added_at);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    body TEXT NOT NULL,
    vector BLOB
);
CREATE INDEX IF NOT EXISTS passages_by_article ON passages(article_id);
-- Covering indexes read when a search ranks its candidates: a passage's article and that article's date
-- without touching the rows, whose bodies, vectors and article texts span overflow pages.
CREATE INDEX IF NOT EXISTS passage_origins ON passages(id, article_id);
CREATE INDEX IF NOT EXISTS article_dates ON articles(id, published);
CREATE TABLE IF NOT EXISTS feeds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL UNIQUE,
    title TEXT,
    etag TEXT,
    last_modified TEXT,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    last_checked TEXT,
    last_success TEXT,
    last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    next_poll TEXT NOT NULL,
    articles_added INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS feed_entries (
    feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
    entry_key TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    article_id INTEGER,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (feed_id, entry_key)
);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
    body, content='passages', content_rowid='id', tokenize='{FTS5_TOKENIZER}'
);
CREATE TRIGGER IF NOT EXISTS passages_fts_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts(rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER IF NOT EXISTS passages_fts_delete AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts(passages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
"""


def id_chunks(passage_ids: Sequence[int], size: int = 500) -> Iterator[tuple[list[int], str]]:
    """The ids a few hundred at a time, each chunk with its "?,?,..." placeholders for an IN list."""
    ids = [int(i) for i in passage_ids]
    for first in range(0, len(ids), size):
        chunk = ids[first:first + size]
        yield chunk, ",".join("?" * len(chunk))


def _vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


@contextmanager
def immediate_transaction(db: sqlite3.Connection, lock: AbstractContextManager[Any]) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on a connection in autocommit mode, under the connection's lock;
    rolled back on any error."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class SqliteStore(SharedSql):
    """One SQLite database file; every change is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # executescript commits on its own, so the script carries its own transaction.
        self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}"
                               f"INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');"
                               "COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        return immediate_transaction(self._db, self._lock)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str, db: sqlite3.Connection | None = None) -> None:
        sql = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        params = (key, value)
        if db is not None:
            db.execute(sql, params)
        else:
            with self.transaction() as tx:
                tx.execute(sql, params)

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite's PRAGMA data_version)."""
        return int(self.query("PRAGMA data_version")[0][0])

    # -- articles -----------------------------------------------------------------------------------
    def add_alias(self, identity: str, article_id: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO article_aliases(identity, article_id) VALUES (?, ?)",
                       (identity, article_id))

    def _insert_article(self, db: sqlite3.Connection, fields: tuple[Any, ...]) -> int:
        cursor = db.execute(
            "INSERT INTO articles(identity, content_hash, title, text, url, published, source, author,"
            " added_by, added_at, minhash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", fields)
        return int(cursor.lastrowid)

    def _delete_passages(self, db: sqlite3.Connection, article_id: int) -> list[int]:
        removed = [r[0] for r in db.execute("SELECT id FROM passages WHERE article_id = ?", (article_id,))]
        db.execute("DELETE FROM passages WHERE article_id = ?", (article_id,))
        return removed

    def _insert_passages(self, db: sqlite3.Connection, article_id: int, spans: Sequence[tuple[int, int]],
                         bodies: Sequence[str], vectors: np.ndarray) -> list[int]:
        passage_ids = []
        for ordinal, ((start, end), body, vector) in enumerate(zip(spans, bodies, vectors)):
            cursor = db.execute(
                "INSERT INTO passages(article_id, ordinal, start, end, body, vector) VALUES (?, ?, ?, ?, ?, ?)",
                (article_id, ordinal, start, end, body, _vector_blob(vector)))
            passage_ids.append(int(cursor.lastrowid))
        return passage_ids

    def get_articles(self, article_ids: Sequence[int]) -> dict[int, Article]:
        ids = list(dict.fromkeys(int(i) for i in article_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.query(f"SELECT a.*, 0 AS passage_count FROM articles a WHERE a.id IN ({marks})", ids)
        return {int(row["id"]): article_from_row(row) for row in rows}

    # -- passages and vectors -------------------------------------------------------------------------
    def passage_ids(self) -> np.ndarray:
        with self._lock:
            ids = [row[0] for row in self._db.execute("SELECT id FROM passages")]
        return np.array(ids, dtype=np.int64)

    def vectors(self, passage_ids: Sequence[int], dimension: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Stored vectors for these passages: (ids with a vector, their vectors, ids lacking one)."""
        found_ids: list[int] = []
        blobs: list[bytes] = []
        missing: list[int] = []
        for chunk, marks in id_chunks(passage_ids):
            for row in self.query(f"SELECT id, vector FROM passages WHERE id IN ({marks})", chunk):
                blob = row["vector"]
                if blob is not None and len(blob) == dimension * 4:
                    found_ids.append(int(row["id"]))
                    blobs.append(blob)
                else:
                    missing.append(int(row["id"]))
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dimension) if blobs \
            else np.zeros((0, dimension), dtype=np.float32)
        return np.array(found_ids, dtype=np.int64), matrix, missing

    def passage_bodies(self, passage_ids: Sequence[int]) -> dict[int, str]:
        bodies: dict[int, str] = {}
        for chunk, marks in id_chunks(passage_ids):
            for row in self.query(f"SELECT id, body FROM passages WHERE id IN ({marks})", chunk):
                bodies[int(row["id"])] = row["body"]
        return bodies

    def set_vectors(self, passage_ids: Sequence[int], vectors: np.ndarray) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE passages SET vector = ? WHERE id = ?",
                           [(_vector_blob(v), int(i)) for i, v in zip(passage_ids, vectors)])

    def clear_vectors(self) -> None:
        with self.transaction() as db:
            db.execute("UPDATE passages SET vector = NULL")

    def get_passages(self, passage_ids: Sequence[int]) -> dict[int, PassageRow]:
        ids = [int(i) for i in passage_ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.query(
            "SELECT p.id, p.article_id, p.ordinal, p.start, p.end,"
            " substr(a.text, p.start + 1, p.end - p.start) AS text"
            f" FROM passages p JOIN articles a ON a.id = p.article_id WHERE p.id IN ({marks})", ids)
        return {int(r["id"]): PassageRow(int(r["id"]), int(r["article_id"]), int(r["ordinal"]), int(r["start"]),
                                         int(r["end"]), r["text"]) for r in rows}

    def passage_origins(self, passage_ids: Sequence[int]) -> dict[int, PassageOrigin]:
        """Each passage's article and its date, read from the covering indexes alone (no text, no vector)."""
        origins: dict[int, PassageOrigin] = {}
        for chunk, marks in id_chunks(passage_ids):
            # Without INDEXED BY, SQLite looks rows up by their rowid in the tables themselves.
            for row in self.query(
                    "SELECT p.id, p.article_id, a.published FROM passages p INDEXED BY passage_origins"
                    f" JOIN articles a INDEXED BY article_dates ON a.id = p.article_id WHERE p.id IN ({marks})",
                    chunk):
                origins[int(row[0])] = PassageOrigin(int(row[1]), parse_date(row[2]))
        return origins

    def backup_to(self, path: Path) -> None:
        """Copy the database with SQLite's online backup (consistent while others read and write)."""
        target = sqlite3.connect(path)
        try:
            with self._lock:
                self._db.backup(target)
        finally:
            target.close()

    def restore_from(self, path: Path) -> None:
        """Replace this database's content with a backup's, in place (other connections see the change)."""
        # A path is not a URI: as_uri() escapes the characters that mean something in one ("?", "#", "%").
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            if source.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() is None:
                raise ValueError("not a library backup")
            with self._lock:
                source.backup(self._db)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"not a library backup ({exc})") from None
        finally:
            source.close()

    def file_size(self) -> int:
        """Bytes on disk of the database and its write-ahead log."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            candidate = Path(str(self.path) + suffix)
            if candidate.exists():
                total += candidate.stat().st_size
        return total
