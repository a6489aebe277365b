"""The embedded store's side of ``migrate`` (index/stores/transfer.py): its SQLite database read in one
snapshot, or filled with executemany, one transaction per batch (its FTS5 index follows by trigger; the
FAISS and postings files are left to be rebuilt from the copied passages when the library next opens)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterator, Sequence

from index.stores.embedded.directory import DATABASE_FILE, KEYWORDS_FILE, VECTORS_FILE, WriterLock
from index.stores.embedded.store import SqliteStore
from index.stores.transfer import (
    COUNTS_SQL,
    INCOMPLETE_KEY,
    SEQUENCED,
    TABLES,
    Counts,
    Table,
    TransferError,
    recorded_dimension,
)

# What the SQLite database raises when a read or write fails.
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)


class EmbeddedSource:
    """A data directory's SQLite database, opened read-only and read in one snapshot."""

    errors = DATABASE_ERRORS

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
        return Counts.of(self._db.execute(COUNTS_SQL.format(vectors=vectors)).fetchone())

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
    """A data directory filled through SqliteStore, under the directory's writer lock (as Library takes it)."""

    atomic = False
    errors = DATABASE_ERRORS

    def __init__(self, data_dir: Path, lock_timeout: float) -> None:
        self.data_dir = data_dir
        self.where = f"embedded library in {data_dir}"
        self.lock_timeout = lock_timeout
        self._lock: WriterLock | None = None
        self._store: SqliteStore | None = None

    @property
    def store(self) -> SqliteStore:
        assert self._store is not None, "open() first"
        return self._store

    def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(self.data_dir, self.lock_timeout)
        lock.acquire()  # as Library takes it: LibraryBusy when another process holds it
        self._lock = lock
        try:
            self._store = SqliteStore(self.data_dir / DATABASE_FILE)
        except BaseException:
            self.close()
            raise
        # Each batch is checked at the end anyway; WAL with NORMAL stays consistent after a crash.
        self._store.query("PRAGMA synchronous=NORMAL")

    def busy(self, error: Exception) -> bool:
        """False: the writer lock, taken in ``open``, is all the copy waits for."""
        return False

    def counts(self) -> Counts:
        return Counts.of(self.store.query(COUNTS_SQL.format(
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
