"""The server store's side of ``migrate`` (index/stores/transfer.py): a PostgreSQL library read in one
read-only snapshot through server-side cursors, or filled by binary COPY in one transaction, which is
rolled back when the counts or the vector spot-check disagree."""

from __future__ import annotations

import struct
import sys
import time
from typing import Any, Iterator, Sequence

import numpy as np
import psycopg

from index.config import PostgresSettings
from index.errors import LibraryBusy
from index.stores.postgres import migrations as pg_migrations
from index.stores.postgres.store import WRITER_LOCK, describe
from index.stores.postgres.vector_layout import VECTOR_INDEX, VectorLayout, stored_vectors
from index.stores.transfer import (
    COUNTS_SQL,
    SEQUENCED,
    VECTOR,
    Counts,
    Table,
    TransferError,
    first_line,
    recorded_dimension,
)

CONNECT_TIMEOUT = 10.0
# What PostgreSQL raises when a read or write fails.
DATABASE_ERRORS: tuple[type[Exception], ...] = (psycopg.Error,)


def _connect(dsn: str, *, autocommit: bool, timeout: float = CONNECT_TIMEOUT) -> psycopg.Connection[Any]:
    """A connection, or a TransferError that says which server could not be reached and why."""
    if not dsn.strip():
        raise TransferError("no PostgreSQL library named: give --dsn, or set postgres.dsn in the config "
                            "(or NEWSBOT_POSTGRES_DSN)")
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        raise TransferError(f"cannot connect to the {describe(dsn)}: {first_line(exc)}") from None


def from_pgvector(raw: bytes | None) -> bytes | None:
    """pgvector's binary form (dimension, unused, big-endian float32) as little-endian float32 bytes."""
    return None if raw is None else np.frombuffer(raw, dtype=">f4", offset=4).astype("<f4").tobytes()


def to_pgvector(blob: bytes | None) -> bytes | None:
    """Little-endian float32 bytes in pgvector's binary form."""
    if blob is None:
        return None
    values = np.frombuffer(blob, dtype="<f4")
    return struct.pack(">HH", len(values), 0) + values.astype(">f4").tobytes()


class PostgresSource:
    """A PostgreSQL library read in one read-only, repeatable-read transaction (server-side cursors)."""

    errors = DATABASE_ERRORS

    def __init__(self, dsn: str) -> None:
        self.where = f"library in the {describe(dsn)}"
        self._conn = _connect(dsn, autocommit=False)
        try:
            self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._conn.read_only = True
            if self._conn.execute("SELECT to_regclass('articles')").fetchone()[0] is None:
                raise TransferError(f"there is no library in the {describe(dsn)}: its tables were never created")
            self.meta: dict[str, str] = {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}
            self.dimension: int | None = pg_migrations.vector_dimension(self._conn) or recorded_dimension(self.meta)
        except BaseException:
            self._conn.close()
            raise

    def counts(self) -> Counts:
        return Counts.of(self._conn.execute(COUNTS_SQL.format(
            vectors="SELECT count(vector) FROM passages")).fetchone())

    def next_ids(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for name in SEQUENCED:
            sequence = self._conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (name,)).fetchone()[0]
            if sequence is not None:
                last, called = self._conn.execute(f"SELECT last_value, is_called FROM {sequence}").fetchone()
                found[name] = int(last) if called else int(last) - 1
        return found

    def rows(self, table: Table) -> Iterator[list[tuple[Any, ...]]]:
        with self._conn.cursor(name=f"transfer_{table.name}", binary=True) as cursor:
            cursor.itersize = table.batch
            cursor.execute(f"SELECT {table.column_list} FROM {table.name} ORDER BY {table.order}")
            while batch := cursor.fetchmany(table.batch):
                if table.name == "passages":
                    batch = [(*row[:VECTOR], from_pgvector(row[VECTOR])) for row in batch]
                yield batch

    def close(self) -> None:
        self._conn.close()  # rolls the read-only transaction back


class PostgresTarget:
    """A PostgreSQL library filled by binary COPY in one transaction, under the writer advisory lock."""

    atomic = True
    errors = DATABASE_ERRORS

    def __init__(self, dsn: str, settings: PostgresSettings, lock_timeout: float,
                 index_memory: str | None = None) -> None:
        """``index_memory``: maintenance_work_mem for building the vector index (e.g. "2GB"; default: the server's)."""
        self.dsn = dsn
        self.index_memory = index_memory
        self._notices: list[str] = []
        self.where = f"library in the {describe(dsn)}"
        self.settings = settings
        self.layout = VectorLayout.of(settings)
        self.lock_timeout = lock_timeout
        self.dimension: int | None = None
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        assert self._conn is not None, "open() first"
        return self._conn

    def open(self) -> None:
        self._conn = _connect(self.dsn, autocommit=True)
        try:
            pg_migrations.migrate(self._conn)
            self._conn.autocommit = False  # from here on, one transaction until commit()
            # Every lock this copy waits for (writers, schema changes, readers for TRUNCATE) waits this long.
            self._conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(self.lock_timeout * 1000)}ms",))
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
            if self.index_memory:
                self._conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (self.index_memory,))
            # pgvector says when the graph outgrows maintenance_work_mem (the build then slows down a lot).
            self._conn.add_notice_handler(lambda notice: self._notices.append(notice.message_primary or ""))
        except psycopg.errors.LockNotAvailable:
            self.close()
            raise LibraryBusy(f"The {self.where} is being changed by another process (waited "
                              f"{self.lock_timeout:g} s); try again in a moment.") from None
        except BaseException:
            self.close()
            raise

    def busy(self, error: Exception) -> bool:
        """True when a lock the copy needs (writers, schema changes, readers for TRUNCATE) was not free in time."""
        return isinstance(error, psycopg.errors.LockNotAvailable)

    def counts(self) -> Counts:
        return Counts.of(self.conn.execute(COUNTS_SQL.format(vectors="SELECT count(vector) FROM passages")).fetchone())

    def incomplete(self) -> str | None:
        return None  # one transaction: a copy is all there or not at all

    def clear(self) -> None:
        self.conn.execute("TRUNCATE feed_entries, feeds, article_aliases, passages, articles RESTART IDENTITY CASCADE")
        self.conn.execute("DELETE FROM meta WHERE key <> 'schema_version'")

    def prepare(self, dimension: int | None, source: str) -> None:
        """Type the vector column for the source's vectors; its index is built once, after the copy (IVFFlat's
        lists then fit the passages copied)."""
        self.dimension = dimension
        if dimension is not None:
            pg_migrations.ensure_vector_column(self.conn, dimension, self.layout)
            self.conn.execute(f"DROP INDEX IF EXISTS {VECTOR_INDEX}")

    def write(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        if table.name == "passages":
            rows = [(*row[:VECTOR], to_pgvector(row[VECTOR])) for row in rows]
        with self.conn.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({table.column_list}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(table.pg_types))
                for row in rows:
                    copy.write_row(row)

    def write_meta(self, meta: dict[str, str]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany("INSERT INTO meta(key, value) VALUES (%s, %s)"
                               " ON CONFLICT (key) DO UPDATE SET value = excluded.value", list(meta.items()))

    def raise_next_ids(self, next_ids: dict[str, int]) -> None:
        for name in SEQUENCED:
            # setval(seq, n, true): the next id is n + 1; an empty table with no history starts at 1.
            self.conn.execute(
                f"SELECT CASE WHEN m > 0 THEN setval(s, m, true) ELSE setval(s, 1, false) END"
                f" FROM (SELECT pg_get_serial_sequence('{name}', 'id') AS s,"
                f" greatest(%s, (SELECT coalesce(max(id), 0) FROM {name})) AS m) AS q", (next_ids.get(name, 0),))

    def vectors(self, passage_ids: Sequence[int]) -> dict[int, bytes | None]:
        with self.conn.cursor(binary=True) as cursor:
            cursor.execute("SELECT id, vector FROM passages WHERE id = ANY(%s::bigint[])",
                           ([int(i) for i in passage_ids],))
            return {int(passage_id): from_pgvector(raw) for passage_id, raw in cursor}

    def commit(self) -> list[str]:
        notes = []
        if self.dimension is not None:
            kind = self.layout.describe(stored_vectors(self.conn))
            print(f"building the {kind} vector index…", file=sys.stderr, flush=True)
            self.conn.execute("SELECT set_config('lock_timeout', '0', true)")
            started = time.monotonic()
            pg_migrations.ensure_vector_column(self.conn, self.dimension, self.layout)
            notes.append(f"{kind} vector index built over vector({self.dimension}) in "
                         f"{time.monotonic() - started:.1f} s")
            if any("maintenance_work_mem" in notice for notice in self._notices):
                memory = self.conn.execute("SHOW maintenance_work_mem").fetchone()[0]
                notes.append(f"note: the vector index outgrew maintenance_work_mem ({memory}), which slows the build"
                             " down: --index-memory (e.g. 2GB) gives it more")
        # The planner's statistics (how common each word is) serve the keyword search from the start.
        self.conn.execute("ANALYZE articles, passages")
        self.conn.execute("UPDATE data_version SET version = version + 1")  # replicas pick the copy up
        self.conn.commit()
        return notes

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # an uncommitted copy is rolled back
            self._conn = None
