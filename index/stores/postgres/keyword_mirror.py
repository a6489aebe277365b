"""The PostgreSQL backend's local keyword search (postgres.keyword_index = "local"): the embedded store's
postings lists (index/stores/embedded/keywords.py, KeywordIndex) on this process's disk, built from the
database's passages and kept current from its change log (migration 0007, passage_changes).

PostgreSQL stays the source of truth; the postings are a copy, like the embedded store's FAISS file:

- On the first search (not before: a process that only adds, lists or migrates never needs it), the
  cache (``library.data_dir/postgres-keywords/<database>-<hash>.postings`` and a JSON state file
  beside it: the log position it holds, the log's generation and table OIDs, its size and SHA-256) is
  read if it is whole and belongs to this database; else the postings are built from the passages table,
  in one repeatable-read snapshot together with the log's newest sequence number.
- Before a search, whenever another process has written (Library.refresh → PostgresBackend.sync), the
  log rows after the position are read and applied: removals, then adds with their bodies read from
  the database. This process's own writes are applied directly (PostgresBackend.committed) and their
  log rows later find them done. Applying is idempotent, so a position lower than the content is safe.
- Why before a search and not on a LISTEN/NOTIFY notice: the data-version check a search makes anyway
  (one indexed read) never misses a write, where a notice is lost while the listening connection is
  down and needs a timer behind it; a notice would only move the catch-up (a fraction of a second per
  10,000 passages: docs/benchmarks.md) off the first search after a large write, for a connection and a
  thread in every process.
- The log is read, and the bodies, from the primary (never a read replica, which may not have
  replayed up to the log's position yet), in one repeatable-read transaction.
- Triggers number the log's rows under a transaction-level lock (see 0007), so whoever sees a row sees
  every lower one that will ever exist: the position is simply the highest row applied.
- The process rebuilds from the passages table when the log was pruned past its position, went back
  (a restore), has a new generation (TRUNCATE, as `index migrate --replace` does) or other table OIDs
  (pg_restore --clean), or when the cache is missing, damaged or was written by other code.

Scores are the embedded store's BM25, which the SQL route (PostgresStore.lexical_search) reproduces:
the same terms (FTS5's tokenizer here; PostgreSQL's configuration made to cut words alike, migration
0006), k1, b and idf. As in the embedded store, a removed passage still counts in its terms' document
frequencies until the postings are next written (it is never returned)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from index.stores.embedded.atomic import replace_file
from index.stores.embedded.keywords import FILE_VERSION as POSTINGS_VERSION
from index.stores.embedded.keywords import KeywordIndex
from index.stores.embedded.terms import FTS5_TOKENIZER
from index.stores.postgres.store import describe

if TYPE_CHECKING:
    import psycopg

    from index.stores.postgres.rows import Row
    from index.stores.postgres.store import PostgresStore

log = logging.getLogger(__name__)
# The folder under library.data_dir that holds each database's cache.
CACHE_FOLDER = "postgres-keywords"
STATE_VERSION = 1
FIRST_BUILD = "no local copy yet"
DAMAGED = "the local copy is unusable"
# Log rows older than this are pruned (by writers, now and then); a process down longer rebuilds.
LOG_KEEP = timedelta(days=7)
# Log rows read per statement while catching up; passages read per statement while rebuilding.
LOG_BATCH = 50_000
BODY_BATCH = 20_000
# The log state a cache must match, and the log's newest row, read in the catch-up's snapshot.
STATE_SQL = """
SELECT s.generation, s.pruned_through, 'passages'::regclass::oid::bigint, 'passage_changes'::regclass::oid::bigint,
       (SELECT coalesce(max(seq), 0) FROM passage_changes)
FROM passage_log_state s"""


@dataclass(frozen=True)
class LogState:
    generation: str
    pruned_through: int
    passages_table: int
    log_table: int
    newest: int

    @property
    def identity(self) -> list[Any]:
        """What a cache's content is tied to: the log's generation and the tables' OIDs."""
        return [self.generation, self.passages_table, self.log_table]


class KeywordMirror:
    """KeywordSearch over a local copy of the passages' postings lists, following the change log."""

    def __init__(self, store: PostgresStore, folder: Path) -> None:
        self.store = store
        self.folder = folder
        self.index = KeywordIndex()
        self.position = 0  # every log row up to here is applied
        self._identity: list[Any] | None = None
        self._lock = threading.RLock()
        self._check_first = False
        self._opened = False  # the cache read or the index built: on the first search, not before
        self._saved_position: int | None = None
        # What happened, for logs, tests and benchmarks.
        self.rebuilds = 0
        self.loaded_from_cache = False
        self.rows_applied = 0
        name = cache_name(store)
        self.postings_path = folder / f"{name}.postings"
        self.state_path = folder / f"{name}.json"
        self._lock_path = folder / f"{name}.lock"

    # -- the KeywordSearch contract ---------------------------------------------------------------------
    def lexical_search(self, question: str, limit: int) -> list[tuple[int, float]]:
        """BM25 over passage bodies: (passage id, score where higher is better), best first."""
        if not self._opened:
            self.open()
        elif self._check_first:
            self.catch_up()
        return self.index.lexical_search(question, limit)

    # -- life cycle -------------------------------------------------------------------------------------
    def open(self) -> None:
        """The cache when it is whole and this database's, else a build from the passages; then the log.
        Called by the first search, so that a process that never searches (``index add``, ``list``, a
        migration) never reads or builds the index."""
        with self._lock:
            if self._opened:
                return
            unusable = self._load()
            if unusable:
                with self._snapshot() as connection:
                    self._rebuild(connection, self._state(connection), unusable)
            self._opened = True
            self.catch_up()

    @property
    def opened(self) -> bool:
        return self._opened

    def check_before_next_search(self) -> None:
        """Read the log before the next search even if no other write is announced (Library takes its data
        version after the backend opens, so a write in between would otherwise wait for the next one)."""
        self._check_first = True

    def close(self) -> None:
        """Write the postings if enough changed since they were written (else the log replays it)."""
        with self._lock:
            if self._opened and self.index.worth_saving:
                self.save()

    # -- following the database -------------------------------------------------------------------------
    def catch_up(self) -> int:
        """Apply the log rows after our position (rebuilding when the log cannot tell); rows applied. Nothing
        before the first search: the index is read or built then, up to date."""
        with self._lock:
            if not self._opened:
                return 0
            self._check_first = False
            before = self.rows_applied
            with self._snapshot() as connection:
                state = self._state(connection)
                reason = self._stale(state)
                if reason:
                    self._rebuild(connection, state, reason)
                    return 0
                while rows := connection.execute(
                        "SELECT seq, passage_id, added FROM passage_changes WHERE seq > %s ORDER BY seq LIMIT %s",
                        (self.position, LOG_BATCH)).fetchall():
                    self._apply(connection, [(int(r[0]), int(r[1]), bool(r[2])) for r in rows])
            applied = self.rows_applied - before
            if applied and self.index.worth_saving:
                self.save()
            return applied

    def committed(self, removed: Sequence[int], added: Sequence[int], bodies: Sequence[str]) -> None:
        """This process's own change, committed (under the writer lock): applied now with the bodies at
        hand, then the log read up to it, which finds it done and moves the position on (else a process
        that only writes would keep an old position, and rebuild once the log is pruned past it)."""
        with self._lock:
            if not self._opened:
                return  # read or built, with this change, by the first search
            self.index.remove(removed)
            if len(added):
                self.index.add(added, bodies)
            self.catch_up()

    def _stale(self, state: LogState) -> str | None:
        """Why the log cannot bring our content up to date, or None when it can."""
        if state.identity != self._identity:
            return "the database's passages were replaced (a new log generation or restored tables)"
        if state.pruned_through > self.position:
            return f"the change log was pruned past this copy's position ({state.pruned_through} > {self.position})"
        if state.newest < self.position:
            return f"the change log went back ({state.newest} < {self.position}): the database was restored"
        return None

    def _apply(self, connection: psycopg.Connection[Row], rows: list[tuple[int, int, bool]]) -> None:
        """Log rows in order: every passage removed in them is removed, then each whose last row is an add is
        added with its body (unless held already and not removed meanwhile)."""
        removed: set[int] = set()
        last: dict[int, bool] = {}
        for _, passage_id, added in rows:
            if not added:
                removed.add(passage_id)
            last[passage_id] = added
        if removed:
            self.index.remove(sorted(removed))
        wanted = np.array(sorted(p for p, added in last.items() if added), dtype=np.int64)
        if len(wanted):
            wanted = wanted[~np.isin(wanted, self.index.ids())]
        for first in range(0, len(wanted), BODY_BATCH):
            found = connection.execute("SELECT id, body FROM passages WHERE id = ANY(%s::bigint[]) ORDER BY id",
                                       ([int(i) for i in wanted[first:first + BODY_BATCH]],)).fetchall()
            # A passage already gone is skipped: its removal is a later row.
            self.index.add([int(r[0]) for r in found], [r[1] for r in found])
        self.position = rows[-1][0]
        self.rows_applied += len(rows)

    def _rebuild(self, connection: psycopg.Connection[Row], state: LogState, reason: str) -> None:
        """The postings of every passage in the snapshot, which is the log up to its newest row."""
        (log.info if reason == FIRST_BUILD else log.warning)(
            "building the local keyword index of the %s from its passages: %s", describe(self.store.dsn), reason)
        fresh = KeywordIndex()
        with connection.cursor(name="newsbot_keyword_rebuild") as cursor:
            cursor.itersize = BODY_BATCH
            cursor.execute("SELECT id, body FROM passages ORDER BY id")
            while rows := cursor.fetchmany(BODY_BATCH):
                fresh.add([int(r[0]) for r in rows], [r[1] for r in rows])
        self.index.replace_with(fresh)
        self.position, self._identity = state.newest, state.identity
        self.rebuilds += 1
        log.info("local keyword index: %d passages, log position %d", len(self.index), self.position)
        self.save()

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection[Row]]:
        """A read-only, repeatable-read transaction on the primary: the log and the passages as of one moment."""
        with self.store.connection() as connection:
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield connection

    @staticmethod
    def _state(connection: psycopg.Connection[Row]) -> LogState:
        row = connection.execute(STATE_SQL).fetchone()
        return LogState(str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))

    # -- the cache on disk ------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the postings, then the state naming their position and checksum (under a file lock, so that
        processes sharing the folder never pair one's postings with another's state). A failure is logged:
        the next start rebuilds or replays the log."""
        with self._lock:
            position, identity = self.position, self._identity
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                with self._file_lock(fcntl.LOCK_EX):
                    self.index.save(self.postings_path)
                    size, digest = _checksum(self.postings_path)
                    state = {"version": STATE_VERSION, "postings_version": POSTINGS_VERSION,
                             "tokenizer": FTS5_TOKENIZER, "identity": identity, "position": position,
                             "size": size, "sha256": digest, "passages": len(self.index)}
                    tmp = self.state_path.with_name(f"{self.state_path.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(state), encoding="utf-8")
                    replace_file(tmp, self.state_path)
                self._saved_position = position
            except OSError as exc:
                log.warning("the local keyword index cannot be written to %s (%s); it will be rebuilt or "
                            "replayed from the change log on the next start", self.folder, exc)

    def _load(self) -> str | None:
        """Take the cache's content when it is whole (None); else why not (a damaged one is also logged)."""
        if not self.state_path.exists() and not self.postings_path.exists():
            return FIRST_BUILD
        try:
            with self._file_lock(fcntl.LOCK_SH):
                state = json.loads(self.state_path.read_text(encoding="utf-8"))
                if (state.get("version") != STATE_VERSION or state.get("tokenizer") != FTS5_TOKENIZER
                        or state.get("postings_version") != POSTINGS_VERSION):
                    log.warning("local keyword index %s was made differently; it will be rebuilt", self.postings_path)
                    return DAMAGED
                size, digest = _checksum(self.postings_path)
                if size != state["size"] or digest != state["sha256"]:
                    log.warning("local keyword index %s is damaged (%d bytes, %d expected, or another checksum); "
                                "it will be rebuilt", self.postings_path, size, state["size"])
                    return DAMAGED
                index = KeywordIndex.load(self.postings_path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("local keyword index %s is unreadable (%s); it will be rebuilt", self.folder, exc)
            return DAMAGED
        if index is None:
            return DAMAGED
        self.index.replace_with(index)
        self.position, self._identity = int(state["position"]), state["identity"]
        self._saved_position = self.position
        self.loaded_from_cache = True
        log.info("local keyword index read from %s: %d passages, log position %d", self.postings_path,
                 len(self.index), self.position)
        return None

    @contextmanager
    def _file_lock(self, kind: int) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as handle:
            fcntl.flock(handle.fileno(), kind)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.postings_path, self.state_path) if p.exists())


def cache_name(store: PostgresStore) -> str:
    """The database's name and a hash of where it is (host, port, name, its OID): copies of one database
    (CREATE DATABASE ... TEMPLATE) and databases of the same name elsewhere never share a cache."""
    with store.connection() as connection:
        row = connection.execute("SELECT current_database(), oid FROM pg_database WHERE datname = current_database()"
                                 ).fetchone()
        info = connection.info
        where = f"{info.host}|{info.port}|{row[0]}|{row[1]}"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(row[0]))[:40] or "database"
    return f"{safe}-{hashlib.sha256(where.encode()).hexdigest()[:16]}"


def _checksum(path: Path) -> tuple[int, str]:
    with open(path, "rb") as handle:
        return os.fstat(handle.fileno()).st_size, hashlib.file_digest(handle, "sha256").hexdigest()


def prune_log(store: PostgresStore, keep: timedelta = LOG_KEEP, batch: int = 1000) -> int:
    """Delete up to ``batch`` of the oldest log rows written more than ``keep`` ago, and record the highest
    pruned in passage_log_state (processes behind it rebuild); rows deleted."""
    with store.transaction() as db:
        db.changed = False  # nothing a reader must pick up
        gone = [int(r[0]) for r in db.execute(
            "DELETE FROM passage_changes WHERE seq IN (SELECT seq FROM (SELECT seq, at FROM passage_changes"
            " ORDER BY seq LIMIT ?) oldest WHERE at < now() - ?::interval) RETURNING seq",
            (batch, f"{keep.total_seconds()} seconds"))]
        if gone:
            db.execute("UPDATE passage_log_state SET pruned_through = greatest(pruned_through, ?)", (max(gone),))
    return len(gone)
