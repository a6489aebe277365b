"""SQLite: the source of truth for articles, passages, their vectors and an FTS5 full-text index."""

from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from index.articles import Article, ArticleDraft, parse_date, utc_now
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
# Words too common to help a keyword search; they only make it slower.
_STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have he her his how i if in into is it "
    "its me my no not of on or our she so than that the their them then there these they this to was we were what "
    "when where which who whom whose why will with would you your".split()
)
_WORDS = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class PassageRow:
    """A passage with what a search result needs of its article."""

    id: int
    article_id: int
    ordinal: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class PassageOrigin:
    """What ranking a candidate passage needs of it without its text: its article and that article's date."""

    article_id: int
    published: date | None


def query_words(question: str) -> list[str]:
    """The question's content words, once each (all its words when it has no content word)."""
    words = [w for w in _WORDS.findall(question.casefold()) if w not in _STOPWORDS]
    if not words:
        words = _WORDS.findall(question.casefold())
    return list(dict.fromkeys(words))[:64]


def fts_query(question: str | Sequence[str], operator: str = "OR") -> str | None:
    """A safe FTS5 query joining the question's content words (or the given words) with ``operator``."""
    words = query_words(question) if isinstance(question, str) else list(question)
    return f" {operator} ".join(f'"{w}"' for w in words) if words else None


def article_fields(draft: ArticleDraft, identity: str, digest: str, added_by: str,
                   minhash: np.ndarray | None) -> tuple[object, ...]:
    """An article's column values, in the order of both stores' articles table (id aside)."""
    return (identity, digest, draft.title, draft.text, draft.url,
            draft.published.isoformat() if draft.published else None, draft.source, draft.author,
            added_by, utc_now().isoformat(timespec="seconds"),
            None if minhash is None else np.asarray(minhash, dtype=np.uint32).tobytes())


def id_chunks(passage_ids: Sequence[int], size: int = 500) -> Iterator[tuple[list[int], str]]:
    """The ids a few hundred at a time, each chunk with its "?,?,..." placeholders for an IN list."""
    ids = [int(i) for i in passage_ids]
    for first in range(0, len(ids), size):
        chunk = ids[first:first + size]
        yield chunk, ",".join("?" * len(chunk))


def _vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


class Store:
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

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str, db: sqlite3.Connection | None = None) -> None:
        sql, params = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
        if db is not None:
            db.execute(sql, params)
        else:
            with self.transaction() as tx:
                tx.execute(sql, params)

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite's PRAGMA data_version)."""
        return int(self.query("PRAGMA data_version")[0][0])

    # -- articles -----------------------------------------------------------------------------------
    def find_by_identity(self, identity: str) -> sqlite3.Row | None:
        rows = self.query("SELECT id, content_hash FROM articles WHERE identity = ?", (identity,))
        return rows[0] if rows else None

    def find_alias(self, identity: str) -> int | None:
        rows = self.query("SELECT article_id FROM article_aliases WHERE identity = ?", (identity,))
        return int(rows[0][0]) if rows else None

    def add_alias(self, identity: str, article_id: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO article_aliases(identity, article_id) VALUES (?, ?)",
                       (identity, article_id))

    def signatures(self) -> list[tuple[int, np.ndarray]]:
        """Every article's near-duplicate signature."""
        rows = self.query("SELECT id, minhash FROM articles WHERE minhash IS NOT NULL")
        return [(int(r[0]), np.frombuffer(r[1], dtype=np.uint32).copy()) for r in rows]

    def find_by_hash(self, digest: str) -> int | None:
        rows = self.query("SELECT id FROM articles WHERE content_hash = ? LIMIT 1", (digest,))
        return int(rows[0]["id"]) if rows else None

    def save_article(self, draft: ArticleDraft, *, identity: str, digest: str, added_by: str,
                     spans: Sequence[tuple[int, int]], bodies: Sequence[str], vectors: np.ndarray,
                     minhash: np.ndarray | None = None,
                     replace_id: int | None = None) -> tuple[int, list[int], list[int]]:
        """Insert (or replace) an article with its passages in one transaction.

        Returns the article id, the new passage ids and the passage ids that were removed."""
        fields = article_fields(draft, identity, digest, added_by, minhash)
        with self.transaction() as db:
            removed: list[int] = []
            if replace_id is not None:
                removed = [r[0] for r in db.execute("SELECT id FROM passages WHERE article_id = ?", (replace_id,))]
                db.execute("DELETE FROM passages WHERE article_id = ?", (replace_id,))
                db.execute(
                    "UPDATE articles SET identity=?, content_hash=?, title=?, text=?, url=?, published=?, source=?,"
                    " author=?, added_by=?, added_at=?, minhash=? WHERE id = ?", (*fields, replace_id))
                article_id = replace_id
            else:
                cursor = db.execute(
                    "INSERT INTO articles(identity, content_hash, title, text, url, published, source, author,"
                    " added_by, added_at, minhash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", fields)
                article_id = int(cursor.lastrowid)
            passage_ids = []
            for ordinal, ((start, end), body, vector) in enumerate(zip(spans, bodies, vectors)):
                cursor = db.execute(
                    "INSERT INTO passages(article_id, ordinal, start, end, body, vector) VALUES (?, ?, ?, ?, ?, ?)",
                    (article_id, ordinal, start, end, body, _vector_blob(vector)))
                passage_ids.append(int(cursor.lastrowid))
        return article_id, passage_ids, removed

    def delete_article(self, article_id: int) -> list[int]:
        """Delete an article and its passages; returns the removed passage ids."""
        with self.transaction() as db:
            removed = [r[0] for r in db.execute("SELECT id FROM passages WHERE article_id = ?", (article_id,))]
            db.execute("DELETE FROM passages WHERE article_id = ?", (article_id,))
            db.execute("DELETE FROM articles WHERE id = ?", (article_id,))
        return removed

    def get_article(self, article_id: int) -> Article | None:
        rows = self.query(
            "SELECT a.*, (SELECT COUNT(*) FROM passages p WHERE p.article_id = a.id) AS passage_count"
            " FROM articles a WHERE a.id = ?", (article_id,))
        return _article(rows[0]) if rows else None

    def get_articles(self, article_ids: Sequence[int]) -> dict[int, Article]:
        ids = list(dict.fromkeys(int(i) for i in article_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.query(f"SELECT a.*, 0 AS passage_count FROM articles a WHERE a.id IN ({marks})", ids)
        return {int(row["id"]): _article(row) for row in rows}

    def list_articles(self, offset: int = 0, limit: int = 20) -> list[Article]:
        """Articles newest first (by publication date, then by when they were added)."""
        rows = self.query(
            "SELECT a.*, (SELECT COUNT(*) FROM passages p WHERE p.article_id = a.id) AS passage_count"
            " FROM articles a ORDER BY a.published IS NULL, a.published DESC, a.added_at DESC, a.id DESC"
            " LIMIT ? OFFSET ?", (limit, offset))
        return [_article(row) for row in rows]

    def count_articles(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM articles")[0][0])

    def count_passages(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM passages")[0][0])

    def newest_date(self) -> str | None:
        rows = self.query("SELECT MAX(published) FROM articles")
        return rows[0][0] if rows else None

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

    def lexical_search(self, question: str, limit: int, budget: int = 0) -> list[tuple[int, float]]:
        """BM25 over passage bodies: (passage id, score where higher is better), best first.

        Ranking costs a lookup per matching passage, so with a ``budget`` the question's words are taken
        rarest first while the sum of their matches stays within it: in a large collection a passage must
        hold one of those rarer words to be ranked, and the commonest words (matching a large share of
        it, and weighing least in BM25) still add to the score of the passages that are. When even the
        rarest word matches more than the budget, passages must hold every word. A collection with no
        more passages than the budget is ranked whole, without counting."""
        within = budget > 0 and self._max_passage_id() > budget  # fewer passages than that: rank them all
        query = self._query_within(query_words(question), budget) if within else fts_query(question)
        if query is None:
            return []
        rows = self.query("SELECT rowid, bm25(passages_fts) AS score FROM passages_fts WHERE passages_fts MATCH ?"
                           " ORDER BY rank LIMIT ?", (query, limit))
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _query_within(self, words: list[str], budget: int) -> str | None:
        """A query matching at most about ``budget`` passages (see ``lexical_search``)."""
        matches = {word: self._count_matches(word, budget + 1) for word in words}
        chosen: list[str] = []
        total = 0
        for word in sorted(words, key=matches.__getitem__):
            if total + matches[word] > budget:
                break
            chosen.append(word)
            total += matches[word]
        if not chosen:
            return fts_query(words, "AND")
        if len(chosen) == len(words):
            return fts_query(words)
        return f"({fts_query(chosen)}) AND ({fts_query(words)})"

    def _max_passage_id(self) -> int:
        """The highest passage id: at least the number of passages, read from the index in one step."""
        return int(self.query("SELECT coalesce(max(id), 0) FROM passages")[0][0])

    def _count_matches(self, word: str, cap: int) -> int:
        """Passages holding ``word``, counted up to ``cap`` (reading its posting list, not ranking it)."""
        rows = self.query("SELECT count(*) FROM (SELECT 1 FROM passages_fts WHERE passages_fts MATCH ? LIMIT ?)",
                          (f'"{word}"', cap))
        return int(rows[0][0])

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
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
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


def _article(row: sqlite3.Row) -> Article:
    return Article(
        id=int(row["id"]), title=row["title"], text=row["text"], url=row["url"],
        published=parse_date(row["published"]), source=row["source"], author=row["author"],
        added_by=row["added_by"], added_at=datetime.fromisoformat(row["added_at"]),
        passage_count=int(row["passage_count"]),
    )
