"""PostgresStore: the server store, PostgreSQL with pgvector, following the Store contract of
index/stores/base.py with the embedded SqliteStore's meaning.

Articles, passages with their vectors (``vector(N)``, HNSW-indexed: see index/stores/postgres/vectors.py),
a full-text column for the keyword search, feeds and meta live in one database that several processes
share through psycopg connection pools. SQL runs one of two ways: ``query`` and ``transaction`` take the
SQLite-style ``?`` SQL that both stores share (rows read like sqlite3.Row: index/stores/postgres/rows.py);
``connection`` lends a pooled psycopg connection, with psycopg's own ``%s`` SQL, for what only PostgreSQL
does (binary reads of vectors, advisory locks, session settings)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from index.articles import Article, parse_date
from index.stores.base import (
    PassageOrigin,
    PassageRow,
    SharedSql,
    article_from_row,
    query_words,
    rarest_within,
)
from index.stores.postgres import migrations as pg_migrations
from index.stores.postgres.replicas import ReadReplicas
from index.stores.postgres.rows import Row, placeholders, row_factory
from index.stores.postgres.vector_layout import VectorLayout

T = TypeVar("T")

# The text search configuration of passages.lexemes (migration 0001).
TEXT_CONFIG = "newsbot_english"
# Passages read per statement when many are asked for at once.
READ_BATCH = 10_000
# Below this many passages (by the planner's estimate) the keyword search counts them exactly.
ESTIMATE_FROM = 10_000
# pg_advisory_lock key held by the library's writers ("newswri" in ASCII; migrations take SCHEMA_LOCK).
WRITER_LOCK = 0x6E657773777269
# BM25's parameters, those of the embedded store (FTS5's bm25() defaults).
BM25_K1, BM25_B = 1.2, 0.75
# The weight of a lexeme held by half the passages or more, whose BM25 idf is not positive (as in FTS5).
NEGLIGIBLE_IDF = 1e-6
# Passages a large library's average length is sampled from (pages of the table, at random but fixed).
LENGTH_SAMPLE = 20_000
# The passages holding a chosen lexeme, each scored by BM25 over all the question's lexemes: a lexeme's
# count in a passage is the number of positions it holds in the passage's tsvector. Only the question's
# lexemes are unnested: setweight marks their positions A and ts_filter keeps the lexemes so marked (a
# passage's whole tsvector would be several times more rows).
BM25_SQL = """
SELECT p.id, sum(t.weight * f.tf * (%(k1)s + 1)
                 / (f.tf + %(k1)s * (1 - %(b)s + %(b)s * p.token_count / %(average)s))) AS score
FROM passages p
CROSS JOIN LATERAL (SELECT u.lexeme, coalesce(cardinality(u.positions), 1) AS tf
                    FROM unnest(ts_filter(setweight(p.lexemes, 'A', %(lexemes)s::text[]), '{a}')) u) f
JOIN unnest(%(lexemes)s::text[], %(weights)s::float8[]) AS t(lexeme, weight) ON t.lexeme = f.lexeme
WHERE p.lexemes @@ %(match)s::tsquery
GROUP BY p.id
ORDER BY score DESC, p.id
LIMIT %(limit)s"""


class PgTransaction:
    """One transaction's connection, taking SQLite-style SQL (``?`` placeholders) like sqlite3's."""

    def __init__(self, connection: psycopg.Connection[Row]) -> None:
        self.connection = connection
        # Cleared by a writer that found nothing to change: data_version then stays, and others do not sync.
        self.changed = True

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Row]:
        return self.connection.execute(_translated(sql), tuple(params))

    def executemany(self, sql: str, params: Sequence[Sequence[Any]], returning: bool = False) -> psycopg.Cursor[Row]:
        """One statement for each parameter row; with ``returning``, each one's rows (``cursor.results()``)."""
        cursor = self.connection.cursor()
        cursor.executemany(_translated(sql), [tuple(p) for p in params], returning=returning)
        return cursor


@lru_cache(maxsize=512)
def _translated(sql: str) -> str:
    return placeholders(sql)


def _configure(connection: psycopg.Connection[Any]) -> None:
    """Each pooled connection: vectors as pgvector values, rows like sqlite3.Row."""
    register_vector(connection)
    connection.row_factory = row_factory
    connection.commit()  # register_vector's look-ups opened a transaction


def as_vector(vector: np.ndarray) -> np.ndarray:
    """A float32 vector as pgvector's adapter sends it."""
    return np.ascontiguousarray(vector, dtype=np.float32)


def as_ids(passage_ids: Sequence[int] | np.ndarray) -> list[int]:
    """Plain ints (a numpy array would be sent as a vector)."""
    return [int(i) for i in passage_ids]


def bm25_idf(passages: int, holding: int) -> float:
    """BM25's inverse document frequency as FTS5 and the embedded store weigh it: log((N - n + 0.5) / (n + 0.5)),
    and a negligible weight when that is not positive."""
    value = math.log((passages - holding + 0.5) / (holding + 0.5))
    return value if value > 0 else NEGLIGIBLE_IDF


def tsquery_lexeme(lexeme: str) -> str:
    """A lexeme as tsquery text: quoted, so that it is matched as it is (neither parsed nor stemmed again)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


class PostgresStore(SharedSql):
    """One PostgreSQL database shared by every process; every change is one transaction."""

    def __init__(self, dsn: str, dimension: int, *, min_connections: int = 1, max_connections: int = 8,
                 vector_layout: VectorLayout = VectorLayout(), connect_timeout: float = 30.0,
                 read_dsns: Sequence[str] = (), replica_max_lag: float = 5.0) -> None:
        """Bring the schema up to date (migrations, then the vector column of ``dimension``) and open a pool;
        with ``read_dsns``, a search's reads go to those streaming standbys while they are current
        (index/stores/postgres/replicas.py)."""
        self.dsn = dsn
        self.dimension = dimension
        # (passages estimated, their average length) of a large library: see _collection_size.
        self._sampled_length: tuple[int, float] | None = None
        with psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, round(connect_timeout))) as connection:
            pg_migrations.migrate(connection)
            pg_migrations.ensure_vector_column(connection, dimension, vector_layout)
        self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            dsn, min_size=min_connections, max_size=max_connections, configure=_configure,
            timeout=connect_timeout, open=False, name="newsbot")
        self.pool.open(wait=True, timeout=connect_timeout)
        self.replicas = ReadReplicas(read_dsns, self.pool, _configure, describe, replica_max_lag,
                                     max_connections) if read_dsns else None

    def close(self) -> None:
        try:
            if self.replicas is not None:
                self.replicas.close()
        finally:
            self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection for psycopg's own (``%s``) SQL; committed when the block ends (rolled back on error)."""
        with self.pool.connection() as connection:
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        """BEGIN ... COMMIT on one connection, rolled back on any error; SQL as for sqlite3 (``?``).

        A committed transaction moves ``data_version`` on (last: it serialises writers) unless it cleared
        ``changed``."""
        with self.pool.connection() as connection:
            with connection.transaction():
                transaction = PgTransaction(connection)
                yield transaction
                if transaction.changed:
                    connection.execute("UPDATE data_version SET version = version + 1")
            if self.replicas is not None and transaction.changed:
                self.replicas.wrote(connection)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of one SQLite-style (``?``) statement."""
        with self.connection() as connection:
            return connection.execute(_translated(sql), tuple(params)).fetchall()

    def reading(self, work: Callable[[psycopg.Connection[Row]], T]) -> T:
        """``work`` run on a connection for a search's reads: a current read replica's when the library has
        them, else the primary's."""
        if self.replicas is None:
            with self.connection() as connection:
                return work(connection)
        return self.replicas.read(work)

    def search_query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of one SQLite-style (``?``) statement of a search, read as ``reading`` reads."""
        return self.reading(lambda connection: connection.execute(_translated(sql), tuple(params)).fetchall())

    # -- meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str, db: PgTransaction | None = None) -> None:
        sql = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        if db is not None:
            db.execute(sql, (key, value))
        else:
            with self.transaction() as tx:
                tx.execute(sql, (key, value))

    def data_version(self) -> int:
        """Changes whenever a write transaction commits, in this process or any other."""
        return int(self.query("SELECT version FROM data_version")[0][0])

    # -- articles -----------------------------------------------------------------------------------
    def add_alias(self, identity: str, article_id: int) -> None:
        with self.transaction() as connection:
            connection.execute("INSERT INTO article_aliases(identity, article_id) VALUES (?, ?)"
                               " ON CONFLICT (identity) DO UPDATE SET article_id = excluded.article_id",
                               (identity, article_id))

    def _insert_article(self, db: PgTransaction, fields: tuple[Any, ...]) -> int:
        row = db.execute(
            "INSERT INTO articles(identity, content_hash, title, text, url, published, source, author,"
            " added_by, added_at, minhash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", fields).fetchone()
        return int(row[0])

    def _delete_passages(self, db: PgTransaction, article_id: int) -> list[int]:
        return sorted(int(r[0]) for r in db.execute("DELETE FROM passages WHERE article_id = ? RETURNING id",
                                                    (article_id,)))

    def _insert_passages(self, db: PgTransaction, article_id: int, spans: Sequence[tuple[int, int]],
                         bodies: Sequence[str], vectors: np.ndarray) -> list[int]:
        rows = [(article_id, ordinal, start, end, body, as_vector(vector))
                for ordinal, ((start, end), body, vector) in enumerate(zip(spans, bodies, vectors))]
        if not rows:
            return []
        cursor = db.executemany('INSERT INTO passages(article_id, ordinal, start, "end", body, vector)'
                                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id", rows, returning=True)
        return [int(result.fetchone()[0]) for result in cursor.results()]

    def get_articles(self, article_ids: Sequence[int]) -> dict[int, Article]:
        ids = list(dict.fromkeys(int(i) for i in article_ids))
        if not ids:
            return {}
        rows = self.search_query("SELECT a.*, 0 AS passage_count FROM articles a WHERE a.id = ANY(?::bigint[])",
                                 (ids,))
        return {int(row["id"]): article_from_row(row) for row in rows}

    # -- passages and vectors -------------------------------------------------------------------------
    def passage_ids(self) -> np.ndarray:
        rows = self.query("SELECT id FROM passages ORDER BY id")
        return np.array([row[0] for row in rows], dtype=np.int64)

    def vectors(self, passage_ids: Sequence[int], dimension: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Stored vectors for these passages: (ids with a vector, their vectors, ids lacking one)."""
        found_ids: list[int] = []
        found: list[np.ndarray] = []
        missing: list[int] = []
        ids = as_ids(passage_ids)
        with self.connection() as connection:
            for first in range(0, len(ids), READ_BATCH):
                cursor = connection.cursor(binary=True)
                cursor.execute("SELECT id, vector FROM passages WHERE id = ANY(%s::bigint[]) ORDER BY id",
                               (ids[first:first + READ_BATCH],))
                for passage_id, vector in cursor:
                    if vector is not None and vector.dimensions() == dimension:
                        found_ids.append(int(passage_id))
                        found.append(vector.to_numpy())
                    else:
                        missing.append(int(passage_id))
        matrix = np.vstack(found).astype(np.float32, copy=False) if found \
            else np.zeros((0, dimension), dtype=np.float32)
        return np.array(found_ids, dtype=np.int64), matrix, missing

    def passage_bodies(self, passage_ids: Sequence[int]) -> dict[int, str]:
        ids = as_ids(passage_ids)
        bodies: dict[int, str] = {}
        for first in range(0, len(ids), READ_BATCH):
            for row in self.query("SELECT id, body FROM passages WHERE id = ANY(?::bigint[])",
                                  (ids[first:first + READ_BATCH],)):
                bodies[int(row["id"])] = row["body"]
        return bodies

    def set_vectors(self, passage_ids: Sequence[int], vectors: np.ndarray) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE passages SET vector = ? WHERE id = ?",
                           [(as_vector(v), int(i)) for i, v in zip(passage_ids, vectors)])

    def clear_vectors(self) -> None:
        with self.transaction() as db:
            db.execute("UPDATE passages SET vector = NULL WHERE vector IS NOT NULL")

    def passages_without_vector(self, limit: int) -> list[int]:
        """Ids of up to ``limit`` passages that have no vector (a partial index finds them), lowest first."""
        rows = self.query("SELECT id FROM passages WHERE vector IS NULL ORDER BY id LIMIT ?", (limit,))
        return [int(row[0]) for row in rows]

    def count_passages_without_vector(self) -> int:
        return int(self.query("SELECT count(*) FROM passages WHERE vector IS NULL")[0][0])

    def get_passages(self, passage_ids: Sequence[int]) -> dict[int, PassageRow]:
        ids = as_ids(passage_ids)
        if not ids:
            return {}
        rows = self.search_query(
            'SELECT p.id, p.article_id, p.ordinal, p.start, p."end",'
            ' substr(a.text, p.start + 1, p."end" - p.start) AS text'
            " FROM passages p JOIN articles a ON a.id = p.article_id WHERE p.id = ANY(?::bigint[])", (ids,))
        return {int(r["id"]): PassageRow(int(r["id"]), int(r["article_id"]), int(r["ordinal"]), int(r["start"]),
                                         int(r["end"]), r["text"]) for r in rows}

    def passage_origins(self, passage_ids: Sequence[int]) -> dict[int, PassageOrigin]:
        """Each passage's article and its date (an article's text is TOASTed apart, so it is not read)."""
        ids = as_ids(passage_ids)
        if not ids:
            return {}
        rows = self.search_query("SELECT p.id, p.article_id, a.published FROM passages p JOIN articles a"
                           " ON a.id = p.article_id WHERE p.id = ANY(?::bigint[])", (ids,))
        return {int(r["id"]): PassageOrigin(int(r["article_id"]), parse_date(r["published"])) for r in rows}

    # -- keyword search -------------------------------------------------------------------------------
    def lexical_search(self, question: str, limit: int, budget: int = 0) -> list[tuple[int, float]]:
        """BM25 over passage bodies: (passage id, score where higher is better), best first.

        Scored as the embedded store scores it (index/stores/embedded/keywords.py: the same k1, b and idf),
        over the question's lexemes: each one's count in a passage is the number of positions it holds in
        the passage's tsvector, a passage's length its ``token_count`` (migration 0006). With a ``budget``,
        as in the FTS5 reference (index/stores/embedded/fts_reference.py), only the rarest lexemes whose
        matches add up to at most ``budget`` passages decide which passages are ranked (through the GIN
        index), and every lexeme of the question still adds to their scores; when even the rarest matches
        more, passages must hold every lexeme. A collection of no more passages than the budget is ranked
        whole."""
        words = query_words(question)
        if not words or limit <= 0:
            return []
        return self.reading(lambda connection: self._bm25(connection, words, limit, budget))

    def _bm25(self, connection: psycopg.Connection[Row], words: list[str], limit: int,
              budget: int) -> list[tuple[int, float]]:
        """lexical_search on one connection."""
        lexemes = self._question_lexemes(connection, words)
        if not lexemes:
            return []
        total, average_length = self._collection_size(connection)
        within = budget > 0 and total > budget
        if within:
            # Counting a common lexeme's matches means reading a large share of the table, so the
            # planner's statistics (its most common lexemes) tell which are common, and only the
            # others are counted, through the GIN index, up to the budget.
            estimates = {lexeme: self._estimated_matches(connection, lexeme) for lexeme in lexemes}
            counted = self._count_matches(connection, [x for x in lexemes if estimates[x] <= budget], budget + 1)
            counts = {x: counted.get(x, min(total, max(budget + 1, estimates[x]))) for x in lexemes}
        else:
            counts = self._count_matches(connection, lexemes, None)
        counts = {lexeme: count for lexeme, count in counts.items() if count > 0}
        if not counts:
            return []
        total = max(total, *counts.values())
        # Within a budget, passages holding one of the rarest lexemes; when even the rarest is too common, all.
        chosen = rarest_within(counts, budget) if within else list(counts)
        match = " | ".join(map(tsquery_lexeme, chosen)) if chosen else " & ".join(map(tsquery_lexeme, counts))
        scored = list(counts)
        weights = [bm25_idf(total, counts[lexeme]) for lexeme in scored]
        rows = connection.execute(BM25_SQL, {
            "lexemes": scored, "weights": weights, "match": match, "limit": limit,
            "k1": BM25_K1, "b": BM25_B, "average": max(average_length, 1e-9)}).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    @staticmethod
    def _question_lexemes(connection: psycopg.Connection[Row], words: list[str]) -> list[str]:
        """The lexemes the passages' text search configuration makes of the question's words (folded as the
        passages are: migration 0006), once each."""
        row = connection.execute(f"SELECT tsvector_to_array(to_tsvector('{TEXT_CONFIG}', newsbot_fold(%s)))",
                                 (" ".join(words),)).fetchone()
        return list(row[0]) if row is not None and row[0] else []

    def _collection_size(self, connection: psycopg.Connection[Row]) -> tuple[int, float]:
        """Passages in the library and their average length in words: counted while the library is small;
        when large, the planner's row estimate and an average over a fixed sample of the table's pages,
        taken again only when that estimate changes (after the table is next analysed)."""
        total = self._passage_total(connection)
        if total < ESTIMATE_FROM:
            row = connection.execute("SELECT count(*), coalesce(avg(token_count), 0) FROM passages").fetchone()
            return int(row[0]), float(row[1])
        if self._sampled_length is None or self._sampled_length[0] != total:
            row = connection.execute("SELECT avg(token_count) FROM passages TABLESAMPLE SYSTEM (%s) REPEATABLE (0)",
                                     (max(0.1, min(100.0, 100.0 * LENGTH_SAMPLE / total)),)).fetchone()
            if row is None or row[0] is None:  # an unlucky sample of empty pages: read them all
                row = connection.execute("SELECT avg(token_count) FROM passages").fetchone()
            self._sampled_length = (total, float(row[0] or 0.0))
        return total, self._sampled_length[1]

    @staticmethod
    def _count_matches(connection: psycopg.Connection[Row], lexemes: list[str], cap: int | None) -> dict[str, int]:
        """Passages holding each lexeme, counted up to ``cap`` (None: all)."""
        if not lexemes:
            return {}
        return {lexeme: int(count) for lexeme, count in connection.execute(
            "SELECT x, (SELECT count(*) FROM (SELECT 1 FROM passages p WHERE p.lexemes @@ q LIMIT %s) s)"
            " FROM unnest(%s::text[], %s::tsquery[]) AS t(x, q)",
            (cap, lexemes, [tsquery_lexeme(x) for x in lexemes]))}

    @staticmethod
    def _estimated_matches(connection: psycopg.Connection[Row], lexeme: str) -> int:
        """Passages holding ``lexeme`` by the planner's estimate (its statistics of common lexemes): no counting."""
        plan = connection.execute("EXPLAIN (FORMAT JSON) SELECT 1 FROM passages WHERE lexemes @@ %s::tsquery",
                                  (tsquery_lexeme(lexeme),)).fetchone()[0]
        return int(plan[0]["Plan"]["Plan Rows"])

    @staticmethod
    def _passage_total(connection: psycopg.Connection[Row]) -> int:
        """Passages in the library: the planner's estimate when large (free), else counted."""
        estimate = connection.execute("SELECT reltuples FROM pg_class WHERE oid = 'passages'::regclass").fetchone()
        if estimate is not None and estimate[0] >= ESTIMATE_FROM:
            return int(estimate[0])
        return int(connection.execute("SELECT count(*) FROM passages").fetchone()[0])

    # -- backups --------------------------------------------------------------------------------------
    def backup_to(self, path: Path) -> None:
        """Not done by the program for a server database."""
        raise NotImplementedError("a PostgreSQL library is backed up with the server's tools: use pg_dump "
                                  "(or the managed service's snapshots)")

    def restore_from(self, path: Path) -> None:
        """Not done by the program for a server database."""
        raise NotImplementedError("a PostgreSQL library is restored with the server's tools: use pg_restore "
                                  "from a pg_dump archive")

    def file_size(self) -> int:
        """Bytes on disk of the whole database (tables, indexes, TOAST)."""
        return int(self.query("SELECT pg_database_size(current_database())")[0][0])


class AdvisoryLock:
    """A session-level advisory lock on a connection of its own: one holder at a time among all the
    processes using the database, on any machine, and freed by the server if its holder dies."""

    def __init__(self, dsn: str, key: int, timeout: float, connect_timeout: float = 30.0) -> None:
        """``timeout``: seconds ``acquire`` waits (0: it only tries; negative: as long as it takes)."""
        self.dsn = dsn
        self.key = key
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._connection: psycopg.Connection[Any] | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.dsn, autocommit=True,
                                               connect_timeout=max(1, round(self.connect_timeout)))
            wait = "0" if self.timeout < 0 else f"{max(1, round(self.timeout * 1000))}ms"
            self._connection.execute("SELECT set_config('lock_timeout', %s, false)", (wait,))
        return self._connection

    def acquire(self) -> bool:
        """Take the lock; False when another session held it for all of ``timeout``."""
        try:
            return self._take(self._connect())
        except psycopg.OperationalError:  # the idle connection was lost (server restart, idle timeout): once more
            self.close()
            return self._take(self._connect())

    def _take(self, connection: psycopg.Connection[Any]) -> bool:
        if self.timeout == 0:
            return bool(connection.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0])
        try:
            connection.execute("SELECT pg_advisory_lock(%s)", (self.key,))
        except psycopg.errors.LockNotAvailable:  # lock_timeout ran out
            return False
        return True

    def release(self) -> None:
        if self._connection is None or self._connection.closed:
            return
        try:
            self._connection.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.OperationalError:  # the session is gone, and the lock with it
            self.close()

    def close(self) -> None:
        """Close the connection (which frees the lock if it is held)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def describe(dsn: str) -> str:
    """Where a connection string leads, without its password: "database NAME on HOST"."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "a PostgreSQL database (malformed connection string)"
    host = parts.get("host") or "the local socket"
    port = f":{parts['port']}" if parts.get("port") and not str(host).startswith("/") else ""
    user = f" as {parts['user']}" if parts.get("user") else ""
    return f"PostgreSQL database {parts.get('dbname') or parts.get('user') or '(default)'} on {host}{port}{user}"
