"""Copy a whole library between the embedded store (SQLite) and PostgreSQL, vectors included.

Articles, aliases, passages (ids, spans, bodies and vectors: nothing is embedded again), feeds, feed
entries and the meta keys that matter are streamed in batches from one consistent snapshot of the
source (read-only) into the target, while the target's writer lock is held. PostgreSQL is filled
with binary COPY in one transaction, which is rolled back when the counts or the vector spot-check
disagree; SQLite is filled with executemany, one transaction per batch (its FTS5 index follows by
trigger; the FAISS file is left to be rebuilt from the copied vectors when the library next opens).
"""

from __future__ import annotations

import random
import sqlite3
import struct
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import psycopg
from filelock import FileLock, Timeout
from psycopg.conninfo import conninfo_to_dict
from tqdm import tqdm

from index.config import PostgresSettings, Settings
from index.embedding.embedder import BUNDLED_MODEL, BUNDLED_MODEL_NAME
from index.errors import LibraryBusy
from index.library import DATABASE_FILE, KEYWORDS_FILE, LOCK_FILE, VECTORS_FILE
from index.stores.embedded.store import Store
from index.stores.postgres import migrations as pg_migrations
from index.stores.postgres.store import WRITER_LOCK

# Passages whose vectors are compared in source and target after the copy.
SPOT_CHECKS = 8
# Meta keys each store keeps for itself.
LOCAL_META = frozenset({"schema_version"})
# Written into an embedded target while a copy is under way (its batches commit one by one).
INCOMPLETE_KEY = "incomplete_copy_from"
CONNECT_TIMEOUT = 10.0


class TransferError(RuntimeError):
    """A copy that cannot start or did not finish; the message says why, for the user."""


class TransferMismatch(TransferError):
    """The copy finished but the target does not hold what the source does."""

    def __init__(self, message: str, report: "Report") -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Table:
    """A copied table: its columns in order, their PostgreSQL types (binary COPY) and its key order."""

    name: str
    columns: tuple[str, ...]
    pg_types: tuple[str, ...]
    order: str
    batch: int

    @property
    def column_list(self) -> str:
        return ", ".join(f'"{c}"' for c in self.columns)


# Parents before children (foreign keys). A passage's vector travels as little-endian float32 bytes
# (SQLite's BLOB); into PostgreSQL it is written as pgvector's binary form under the "bytea" dumper
# (binary COPY sends no type per field, so the server reads those bytes with vector_recv).
TABLES = (
    Table("articles", ("id", "identity", "content_hash", "title", "text", "url", "published", "source", "author",
                       "added_by", "added_at", "minhash"),
          ("int8",) + ("text",) * 10 + ("bytea",), "id", 1_000),
    Table("article_aliases", ("identity", "article_id"), ("text", "int8"), "identity", 10_000),
    Table("passages", ("id", "article_id", "ordinal", "start", "end", "body", "vector"),
          ("int8", "int8", "int4", "int4", "int4", "text", "bytea"), "id", 10_000),
    Table("feeds", ("id", "url", "title", "etag", "last_modified", "added_by", "added_at", "last_checked",
                    "last_success", "last_error", "failures", "next_poll", "articles_added"),
          ("int8",) + ("text",) * 9 + ("int4", "text", "int4"), "id", 1_000),
    Table("feed_entries", ("feed_id", "entry_key", "status", "attempts", "article_id", "seen_at"),
          ("int8", "text", "text", "int4", "int8", "text"), "feed_id, entry_key", 10_000),
)
VECTOR = TABLES[2].columns.index("vector")
# Tables whose ids come from a sequence: the target's must not hand out ids the source already used.
SEQUENCED = ("articles", "passages", "feeds")
_COUNTS_SQL = ("SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM passages), ({vectors}),"
               " (SELECT count(*) FROM article_aliases), (SELECT count(*) FROM feeds),"
               " (SELECT count(*) FROM feed_entries)")


@dataclass(frozen=True)
class Counts:
    """What a library holds, as compared after a copy."""

    articles: int = 0
    passages: int = 0
    vectors: int = 0
    aliases: int = 0
    feeds: int = 0
    feed_entries: int = 0

    LABELS = {"articles": "articles", "passages": "passages", "vectors": "  with vectors", "aliases": "aliases",
              "feeds": "feeds", "feed_entries": "feed entries"}

    @classmethod
    def of(cls, row: Sequence[Any]) -> "Counts":
        """From a row of _COUNTS_SQL."""
        return cls(*(int(v) for v in row))

    def empty(self) -> bool:
        """True when there is nothing to overwrite."""
        return not any(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        """The non-zero counts in words."""
        parts = [f"{getattr(self, f.name)} {self.LABELS[f.name].strip()}" for f in fields(self)
                 if getattr(self, f.name)]
        return ", ".join(parts) or "nothing"


@dataclass
class Report:
    """What a copy did, for printing."""

    source: str
    target: str
    source_counts: Counts
    target_counts: Counts = field(default_factory=Counts)
    checked: int = 0
    unequal: list[int] = field(default_factory=list)
    dropped_vectors: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.source_counts == self.target_counts and not self.unequal

    def lines(self) -> list[str]:
        """The counts side by side, the spot-check and the notes."""
        out = [f"{'':16}{'source':>12}{'target':>12}"]
        for f in fields(Counts):
            mine, theirs = getattr(self.source_counts, f.name), getattr(self.target_counts, f.name)
            out.append(f"{Counts.LABELS[f.name]:16}{mine:>12,}{theirs:>12,}{'' if mine == theirs else '  MISMATCH'}")
        if self.unequal:
            out.append(f"vectors spot-check: {len(self.unequal)} of {self.checked} passages differ"
                       f" (ids {', '.join(map(str, self.unequal))})")
        elif self.checked:
            out.append(f"vectors spot-check: {self.checked} random passages hold equal vectors in source and target")
        if self.dropped_vectors:
            out.append(f"{self.dropped_vectors} source vectors of another dimension were not copied"
                       " (the library re-embeds those passages)")
        return out + self.notes


class Source(Protocol):
    """A library read in one consistent snapshot."""

    where: str
    meta: dict[str, str]
    dimension: int | None

    def counts(self) -> Counts:
        """What it holds (vectors: those of its dimension)."""

    def next_ids(self) -> dict[str, int]:
        """The highest id each sequenced table ever handed out (removed rows included)."""

    def rows(self, table: Table) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows in key order, in batches; vectors as little-endian float32 bytes."""

    def close(self) -> None:
        """End the snapshot."""


class Target(Protocol):
    """A library being filled while its writer lock is held."""

    where: str
    atomic: bool  # True: a copy that fails or does not match leaves the target as it was

    def open(self) -> None:
        """Take the writer lock (LibraryBusy when another process holds it) and bring the schema up to date."""

    def counts(self) -> Counts:
        """What it holds now."""

    def incomplete(self) -> str | None:
        """The source of an unfinished earlier copy, if one was left behind."""

    def clear(self) -> None:
        """Empty every copied table and the meta keys but its own."""

    def prepare(self, dimension: int | None, source: str) -> None:
        """Get ready for vectors of ``dimension`` copied from ``source``."""

    def write(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Insert one batch of rows (as ``Source.rows`` yields them)."""

    def write_meta(self, meta: dict[str, str]) -> None:
        """Set these meta keys."""

    def raise_next_ids(self, next_ids: dict[str, int]) -> None:
        """Make new rows' ids start after both the copied ids and the source's ``next_ids``."""

    def vectors(self, passage_ids: Sequence[int]) -> dict[int, bytes | None]:
        """These passages' stored vectors, as little-endian float32 bytes."""

    def commit(self) -> list[str]:
        """Make the copy final; returns notes for the user."""

    def close(self) -> None:
        """Release the lock (an uncommitted atomic copy is rolled back)."""


# -- helpers ----------------------------------------------------------------------------------------
def safe_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "an unreadable DSN"
    return " ".join(f"{k}={v}" for k, v in parts.items() if k != "password") or "the default server"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect(dsn: str, *, autocommit: bool, timeout: float = CONNECT_TIMEOUT) -> psycopg.Connection[Any]:
    """A connection, or a TransferError that says which server could not be reached and why."""
    if not dsn.strip():
        raise TransferError("no PostgreSQL library named: give --dsn, or set postgres.dsn in the config "
                            "(or NEWSBOT_POSTGRES_DSN)")
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        raise TransferError(f"cannot connect to PostgreSQL ({safe_dsn(dsn)}): {_first_line(exc)}") from None


def recorded_dimension(meta: dict[str, str]) -> int | None:
    """The dimension in the meta key ``embedding_model`` ("name|dimension"), if any."""
    _, _, dimension = meta.get("embedding_model", "").rpartition("|")
    return int(dimension) if dimension.isdigit() else None


def _from_pgvector(raw: bytes | None) -> bytes | None:
    """pgvector's binary form (dimension, unused, big-endian float32) as little-endian float32 bytes."""
    return None if raw is None else np.frombuffer(raw, dtype=">f4", offset=4).astype("<f4").tobytes()


def _to_pgvector(blob: bytes | None) -> bytes | None:
    """Little-endian float32 bytes in pgvector's binary form."""
    if blob is None:
        return None
    values = np.frombuffer(blob, dtype="<f4")
    return struct.pack(">HH", len(values), 0) + values.astype(">f4").tobytes()


# -- the embedded store ---------------------------------------------------------------------------
class EmbeddedSource:
    """A data directory's SQLite database, opened read-only and read in one snapshot."""

    def __init__(self, data_dir: Path) -> None:
        path = data_dir / DATABASE_FILE
        self.where = f"embedded library in {data_dir}"
        if not path.is_file():
            raise TransferError(f"there is no embedded library in {data_dir} ({DATABASE_FILE} is missing)")
        self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                   timeout=30.0)
        try:
            self._db.execute("BEGIN")  # every read below sees the same snapshot
            self.meta: dict[str, str] = {str(k): str(v) for k, v in self._db.execute("SELECT key, value FROM meta")}
            row = self._db.execute("SELECT length(vector) FROM passages WHERE vector IS NOT NULL LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            self._db.close()
            raise TransferError(f"{path} is not a library database ({exc})") from None
        self.dimension: int | None = recorded_dimension(self.meta) or (int(row[0]) // 4 if row else None)

    def counts(self) -> Counts:
        vectors = "SELECT count(*) FROM passages WHERE vector IS NOT NULL" if self.dimension is None else \
            f"SELECT count(*) FROM passages WHERE length(vector) = {4 * self.dimension}"
        return Counts.of(self._db.execute(_COUNTS_SQL.format(vectors=vectors)).fetchone())

    def next_ids(self) -> dict[str, int]:
        return {str(name): int(seq) for name, seq in self._db.execute("SELECT name, seq FROM sqlite_sequence")
                if name in SEQUENCED}

    def rows(self, table: Table) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self._db.execute(f"SELECT {table.column_list} FROM {table.name} ORDER BY {table.order}")
        while batch := cursor.fetchmany(table.batch):
            yield batch

    def close(self) -> None:
        self._db.close()


class EmbeddedTarget:
    """A data directory filled through the Store, under the directory's writer lock (as Library takes it)."""

    atomic = False

    def __init__(self, data_dir: Path, lock_timeout: float) -> None:
        self.data_dir = data_dir
        self.where = f"embedded library in {data_dir}"
        self.lock_timeout = lock_timeout
        self._lock: FileLock | None = None
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        assert self._store is not None, "open() first"
        return self._store

    def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.data_dir / LOCK_FILE), timeout=self.lock_timeout, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise LibraryBusy(f"The library in {self.data_dir} is being changed by another process (waited "
                              f"{self.lock_timeout:g} s); stop it, or try again in a moment.") from None
        self._lock = lock
        try:
            self._store = Store(self.data_dir / DATABASE_FILE)
        except BaseException:
            self.close()
            raise
        # Each batch is checked at the end anyway; WAL with NORMAL stays consistent after a crash.
        self._store.query("PRAGMA synchronous=NORMAL")

    def counts(self) -> Counts:
        return Counts.of(self.store.query(_COUNTS_SQL.format(
            vectors="SELECT count(*) FROM passages WHERE vector IS NOT NULL"))[0])

    def incomplete(self) -> str | None:
        return self.store.get_meta(INCOMPLETE_KEY)

    def clear(self) -> None:
        """Empty every table (the FTS5 index at once, not passage by passage) and drop the FAISS file."""
        with self.store.transaction() as db:
            trigger = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'"
                                 " AND name = 'passages_fts_delete'").fetchone()
            db.execute("DROP TRIGGER IF EXISTS passages_fts_delete")
            for table in reversed(TABLES):
                db.execute(f"DELETE FROM {table.name}")
            db.execute("INSERT INTO passages_fts(passages_fts) VALUES ('delete-all')")
            if trigger is not None:
                db.execute(trigger[0])
            db.execute("DELETE FROM meta WHERE key <> 'schema_version'")
            db.execute("DELETE FROM sqlite_sequence")
        self._drop_index_files()

    def prepare(self, dimension: int | None, source: str) -> None:
        self.store.set_meta(INCOMPLETE_KEY, source)
        self._drop_index_files()

    def write(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(table.columns))
        with self.store.transaction() as db:
            db.executemany(f"INSERT INTO {table.name} ({table.column_list}) VALUES ({marks})", rows)

    def write_meta(self, meta: dict[str, str]) -> None:
        with self.store.transaction() as db:
            for key, value in meta.items():
                self.store.set_meta(key, value, db)

    def raise_next_ids(self, next_ids: dict[str, int]) -> None:
        with self.store.transaction() as db:
            for name, seq in next_ids.items():
                if db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, name)).rowcount == 0:
                    db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", (name, seq))

    def vectors(self, passage_ids: Sequence[int]) -> dict[int, bytes | None]:
        marks = ", ".join("?" * len(passage_ids))
        rows = self.store.query(f"SELECT id, vector FROM passages WHERE id IN ({marks})", [int(i) for i in passage_ids])
        return {int(r[0]): r[1] for r in rows}

    def commit(self) -> list[str]:
        with self.store.transaction() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (INCOMPLETE_KEY,))
        self._drop_index_files()
        return [f"{VECTORS_FILE}, {KEYWORDS_FILE}: not written here; the library builds them from the copied "
                "passages and vectors when it is next opened (no re-embedding)"]

    def close(self) -> None:
        try:
            if self._store is not None:
                self._store.close()
        finally:
            self._store = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _drop_index_files(self) -> None:
        """A FAISS or postings file of other content would be trusted for passage ids it shares with the copy."""
        for name in (VECTORS_FILE, VECTORS_FILE + ".tmp", KEYWORDS_FILE):
            (self.data_dir / name).unlink(missing_ok=True)


# -- PostgreSQL ---------------------------------------------------------------------------------------
class PostgresSource:
    """A PostgreSQL library read in one read-only, repeatable-read transaction (server-side cursors)."""

    def __init__(self, dsn: str) -> None:
        self.where = f"PostgreSQL library ({safe_dsn(dsn)})"
        self._conn = _connect(dsn, autocommit=False)
        try:
            self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._conn.read_only = True
            if self._conn.execute("SELECT to_regclass('articles')").fetchone()[0] is None:
                raise TransferError(f"there is no library in the PostgreSQL database ({safe_dsn(dsn)}):"
                                    " its tables were never created")
            self.meta: dict[str, str] = {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}
            self.dimension: int | None = pg_migrations.vector_dimension(self._conn) or recorded_dimension(self.meta)
        except BaseException:
            self._conn.close()
            raise

    def counts(self) -> Counts:
        return Counts.of(self._conn.execute(_COUNTS_SQL.format(
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
                    batch = [(*row[:VECTOR], _from_pgvector(row[VECTOR])) for row in batch]
                yield batch

    def close(self) -> None:
        self._conn.close()  # rolls the read-only transaction back


class PostgresTarget:
    """A PostgreSQL library filled by binary COPY in one transaction, under the writer advisory lock."""

    atomic = True

    def __init__(self, dsn: str, settings: PostgresSettings, lock_timeout: float,
                 index_memory: str | None = None) -> None:
        """``index_memory``: maintenance_work_mem for building the HNSW index (e.g. "2GB"; default: the server's)."""
        self.dsn = dsn
        self.index_memory = index_memory
        self._notices: list[str] = []
        self.where = f"PostgreSQL library ({safe_dsn(dsn)})"
        self.settings = settings
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

    def counts(self) -> Counts:
        return Counts.of(self.conn.execute(_COUNTS_SQL.format(vectors="SELECT count(vector) FROM passages")).fetchone())

    def incomplete(self) -> str | None:
        return None  # one transaction: a copy is all there or not at all

    def clear(self) -> None:
        self.conn.execute("TRUNCATE feed_entries, feeds, article_aliases, passages, articles RESTART IDENTITY CASCADE")
        self.conn.execute("DELETE FROM meta WHERE key <> 'schema_version'")

    def prepare(self, dimension: int | None, source: str) -> None:
        """Type the vector column for the source's vectors; its HNSW index is built once, after the copy."""
        self.dimension = dimension
        if dimension is not None:
            pg_migrations.ensure_vector_column(self.conn, dimension, m=self.settings.hnsw_m,
                                               ef_construction=self.settings.hnsw_ef_construction)
            self.conn.execute(f"DROP INDEX IF EXISTS {pg_migrations.VECTOR_INDEX}")

    def write(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        if table.name == "passages":
            rows = [(*row[:VECTOR], _to_pgvector(row[VECTOR])) for row in rows]
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
            cursor.execute("SELECT id, vector FROM passages WHERE id = ANY(%s::bigint[])", ([int(i) for i in passage_ids],))
            return {int(passage_id): _from_pgvector(raw) for passage_id, raw in cursor}

    def commit(self) -> list[str]:
        notes = []
        if self.dimension is not None:
            print(f"building the HNSW vector index (m={self.settings.hnsw_m},"
                  f" ef_construction={self.settings.hnsw_ef_construction})…", file=sys.stderr, flush=True)
            self.conn.execute("SELECT set_config('lock_timeout', '0', true)")
            started = time.monotonic()
            pg_migrations.ensure_vector_column(self.conn, self.dimension, m=self.settings.hnsw_m,
                                               ef_construction=self.settings.hnsw_ef_construction)
            notes.append(f"HNSW vector index built over vector({self.dimension}) in {time.monotonic() - started:.1f} s")
            if any("maintenance_work_mem" in notice for notice in self._notices):
                memory = self.conn.execute("SHOW maintenance_work_mem").fetchone()[0]
                notes.append(f"note: the HNSW graph outgrew maintenance_work_mem ({memory}), which slows the build"
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


# -- the copy -----------------------------------------------------------------------------------------
def transfer(source: Source, target: Target, *, replace: bool = False, progress: bool = False,
             model_in_config: str | None = None) -> Report:
    """Copy everything from ``source`` into ``target`` (which must be empty unless ``replace``) and check it."""
    started = time.monotonic()
    report = Report(source.where, target.where, source.counts())
    meta = {k: v for k, v in source.meta.items() if k not in LOCAL_META | {INCOMPLETE_KEY}}
    try:
        target.open()
        existing = target.counts()
        if not existing.empty():
            unfinished = target.incomplete()
            if not replace:
                what = f"an unfinished copy from {unfinished} ({existing.describe()})" if unfinished \
                    else existing.describe()
                raise TransferError(f"the target {target.where} already holds {what}; "
                                    "run again with --replace to empty it first")
            print(f"emptying the target: {existing.describe()}", file=sys.stderr, flush=True)
            target.clear()
        target.prepare(source.dimension, source.where)
        sample = _copy_rows(source, target, report, progress)
        report.notes.append(f"rows copied in {time.monotonic() - started:.1f} s")
        target.write_meta(meta)
        target.raise_next_ids(source.next_ids())
        report.target_counts = target.counts()
        if sample:
            stored = target.vectors(list(sample))
            report.checked = len(sample)
            report.unequal = sorted(i for i, blob in sample.items() if stored.get(i) != blob)
        if not report.ok:
            kept = "rolled back: the target is as it was" if target.atomic else \
                "the target holds the incomplete copy (run again with --replace)"
            raise TransferMismatch(f"the copy does not match its source; {kept}", report)
        report.notes.extend(target.commit())
    except TransferError:
        raise
    except psycopg.errors.LockNotAvailable:
        raise LibraryBusy(f"The {target.where} is in use by another process; try again in a moment.") from None
    except (psycopg.Error, sqlite3.Error) as exc:
        unfinished = "nothing was changed" if target.atomic else \
            "the target holds an incomplete copy (run again with --replace)"
        raise TransferError(f"the copy failed: {_first_line(exc)}; {unfinished}") from exc
    finally:
        target.close()
    report.notes.extend(_model_notes(meta, source.dimension, model_in_config))
    return report


def _copy_rows(source: Source, target: Target, report: Report, progress: bool) -> dict[int, bytes]:
    """Stream every table; returns a random sample of copied passages' vectors (reservoir sampling)."""
    totals = {"articles": report.source_counts.articles, "article_aliases": report.source_counts.aliases,
              "passages": report.source_counts.passages, "feeds": report.source_counts.feeds,
              "feed_entries": report.source_counts.feed_entries}
    rng = random.Random()
    sample: dict[int, bytes] = {}
    seen = 0
    size = None if source.dimension is None else 4 * source.dimension
    for table in TABLES:
        with tqdm(total=totals[table.name], desc=table.name.replace("_", " "), unit=" rows", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True) as bar:
            for rows in source.rows(table):
                if table.name == "passages":
                    rows = [_checked(row, size, report) for row in rows]
                    for row in rows:
                        if row[VECTOR] is not None:
                            seen += 1
                            if len(sample) < SPOT_CHECKS:
                                sample[row[0]] = row[VECTOR]
                            elif (slot := rng.randrange(seen)) < SPOT_CHECKS:
                                del sample[list(sample)[slot]]
                                sample[row[0]] = row[VECTOR]
                target.write(table, rows)
                bar.update(len(rows))
    return sample


def _checked(row: tuple[Any, ...], size: int | None, report: Report) -> tuple[Any, ...]:
    """The passage row, its vector dropped when it is not of the library's dimension."""
    blob = row[VECTOR]
    if blob is None or size is None or len(blob) == size:
        return row
    report.dropped_vectors += 1
    return (*row[:VECTOR], None)


def _model_notes(meta: dict[str, str], dimension: int | None, model_in_config: str | None) -> list[str]:
    """What the target records about the embedding model, and whether the config agrees."""
    recorded = meta.get("embedding_model")
    if recorded is None:
        return [f"embedding model: the source records none (vectors of dimension {dimension or '-'} copied)"]
    notes = [f"embedding model: {recorded} (recorded in the target)"]
    name = recorded.rpartition("|")[0]
    if model_in_config is not None and name != model_in_config:
        notes.append(f"note: the config's embedding model is {model_in_config}, not {name}: opening the target with "
                     "this config re-embeds every passage")
    return notes


def configured_model(settings: Settings) -> str:
    """The embedding model's name as Embedder records it, without loading it."""
    return BUNDLED_MODEL_NAME if settings.embedding.model == BUNDLED_MODEL else settings.embedding.model


def migrate(settings: Settings, source_kind: str, target_kind: str, *, data_dir: Path | None = None,
            dsn: str | None = None, replace: bool = False, progress: bool = False,
            index_memory: str | None = None) -> Report:
    """Copy the library of one store kind ("embedded", "postgres") into the other, as configured."""
    if source_kind == target_kind:
        raise TransferError(f"--from and --to are both {source_kind}: copy an embedded library with backup/restore, "
                            "a PostgreSQL one with pg_dump/pg_restore")
    folder = data_dir or settings.library.data_dir
    server = settings.postgres.dsn if dsn is None else dsn
    lock_timeout = settings.library.lock_timeout
    try:
        source: Source = EmbeddedSource(folder) if source_kind == "embedded" else PostgresSource(server)
    except (psycopg.Error, sqlite3.Error) as exc:
        raise TransferError(f"cannot read the source library: {_first_line(exc)}") from None
    try:
        target: Target = EmbeddedTarget(folder, lock_timeout) if target_kind == "embedded" else \
            PostgresTarget(server, settings.postgres, lock_timeout, index_memory)
        try:
            return transfer(source, target, replace=replace, progress=progress,
                            model_in_config=configured_model(settings))
        except (psycopg.Error, sqlite3.Error) as exc:  # reading the source failed
            raise TransferError(f"the copy failed: {_first_line(exc)}") from None
    finally:
        source.close()
