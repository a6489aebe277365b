"""The server backend: one PostgreSQL database with pgvector (index/stores/postgres/store.py) shared by
every process and replica. The vectors live in the passages table with pgvector's index (HNSW or
IVFFlat: index/stores/postgres/vectors.py), written in the same transaction as their passages, so there
is no file to load, save or repair. The keyword search is postings lists on this process's disk kept current
from the database's change log (index/stores/postgres/keyword_mirror.py), or with postgres.keyword_index
= "database" BM25 computed in SQL (PostgresStore.lexical_search). Writers hold a PostgreSQL advisory
lock, which excludes writers on every machine and is freed by the server if its holder dies.

psycopg is optional (the postgres extra): this module imports it only when the backend opens, so that
a missing extra is one clear ConfigError."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from index.config import Settings
from index.embedding.embedder import Embedder
from index.errors import ConfigError, IngestError, LibraryBusy, LibraryUnavailable
from index.stores.base import ActivityStore, Backend, Conversations, FeedLocks, ResultStore

if TYPE_CHECKING:
    from index.stores.postgres.keyword_mirror import KeywordMirror
    from index.stores.postgres.store import AdvisoryLock, PostgresStore
    from index.stores.postgres.vectors import PgVectorIndex

log = logging.getLogger(__name__)
# Passages re-embedded per transaction (an interrupted re-embedding resumes after the last).
EMBED_BATCH = 1_024
# Seconds before an add tries again to refit the vector index's lists after a failed try.
REFIT_PAUSE = 600


@dataclass(frozen=True)
class BudgetedKeywords:
    """PostgreSQL's full-text ranking, held to ``search.lexical_budget`` (see PostgresStore.lexical_search)."""

    store: PostgresStore
    budget: int

    def lexical_search(self, question: str, limit: int) -> list[tuple[int, float]]:
        return self.store.lexical_search(question, limit, self.budget)


class PostgresBackend(Backend):
    """One PostgreSQL database with pgvector, shared by every process and replica."""

    name = "postgres"
    store: PostgresStore
    vectors: PgVectorIndex

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        super().__init__(settings, embedder)
        pg = settings.postgres
        if not pg.dsn.strip():
            raise ConfigError('[library] store = "postgres" needs a connection string: [postgres] dsn in the '
                              "config file, or NEWSBOT_POSTGRES_DSN")
        try:
            import pgvector  # noqa: F401 - checked here, used by the store
            import psycopg
            from psycopg_pool import PoolTimeout
        except ModuleNotFoundError as exc:
            raise ConfigError(f'[library] store = "postgres" needs the postgres extra ({exc.name} is missing): '
                              "pip install -e '.[postgres]'") from None
        from index.stores.postgres.store import WRITER_LOCK, AdvisoryLock, PostgresStore, describe
        from index.stores.postgres.vector_layout import VectorLayout
        from index.stores.postgres.vectors import PgVectorIndex
        self._where = describe(pg.dsn)
        if pg.read_dsns:
            log.info("searches read from %d streaming standby(s) while they are current: %s", len(pg.read_dsns),
                     "; ".join(describe(d) for d in pg.read_dsns))
        try:
            self.store = PostgresStore(pg.dsn, embedder.dimension, min_connections=pg.pool_min,
                                       max_connections=pg.pool_max, vector_layout=VectorLayout.of(pg),
                                       read_dsns=[d for d in pg.read_dsns if d.strip()],
                                       replica_max_lag=pg.replica_max_lag_seconds)
        except (psycopg.Error, PoolTimeout) as exc:
            raise LibraryUnavailable(f"The library's {self._where} cannot be used: {exc}".strip()) from None
        self.vectors = PgVectorIndex(self.store, pg.hnsw_ef_search, pg.ivfflat_probes, VectorLayout.of(pg))
        # The one place the keyword route is chosen (postgres.keyword_index): postings lists on this
        # process's disk kept current from the database's change log, or BM25 in SQL.
        self.mirror: KeywordMirror | None = None
        self.keywords: BudgetedKeywords | KeywordMirror
        if pg.keyword_index == "local":
            from index.stores.postgres.keyword_mirror import CACHE_FOLDER, KeywordMirror

            try:  # read from its cache or built by the first search (KeywordMirror.open)
                self.mirror = KeywordMirror(self.store, settings.library.data_dir / CACHE_FOLDER)
            except (psycopg.Error, PoolTimeout) as exc:
                self.store.close()
                raise LibraryUnavailable(f"The library's {self._where} cannot be used: {exc}".strip()) from None
            except BaseException:
                self.store.close()
                raise
            self.keywords = self.mirror
        else:
            self.keywords = BudgetedKeywords(self.store, settings.search.lexical_budget)
        # Writers prune the change log's old rows now and then (processes further behind rebuild).
        from index.stores.postgres.keyword_mirror import prune_log
        from index.stores.postgres.pruning import Pruner

        def prune() -> int:
            try:
                return prune_log(self.store)
            except psycopg.Error as exc:  # the write itself succeeded: pruning waits for the next one
                log.warning("could not prune the passages' change log: %s", exc)
                return 0

        self._log_pruner = Pruner(prune)
        self._lock: AdvisoryLock = AdvisoryLock(pg.dsn, WRITER_LOCK, settings.library.lock_timeout)
        self._refit_after = 0.0  # monotonic time from which an add may refit the vector index

    @property
    def location(self) -> str:
        return self._where

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        if not self._lock.acquire():
            raise LibraryBusy(
                f"The library in the {self._where} is being changed by another process or replica "
                f"(waited {self.settings.library.lock_timeout:g} s); try again in a moment.")
        try:
            yield
        finally:
            self._lock.release()

    def open(self) -> None:
        self.check_model()
        self._embed_missing()
        if self.mirror is not None:
            self.mirror.check_before_next_search()

    def _embed_missing(self) -> None:
        """Embed the passages that have no vector (after a change of model), a batch per transaction."""
        lacking = self.store.count_passages_without_vector()
        if not lacking:
            return
        log.warning("embedding %d passages that have no vector", lacking)
        with tqdm(total=lacking, desc="embedding", unit="passage", disable=lacking < 1000) as progress:
            while ids := self.store.passages_without_vector(EMBED_BATCH):
                self.embed_stored(ids, show_progress=False)
                progress.update(len(ids))

    def sync(self) -> None:
        """The local keyword index reads the change log; the vectors and their index are the database's,
        which every process reads."""
        if self.mirror is not None:
            self.mirror.catch_up()

    def committed(self, removed: Sequence[int], added: Sequence[int] = (), vectors: np.ndarray | None = None,
                  bodies: Sequence[str] = ()) -> None:
        """The local keyword index follows at once; the vectors were written (or deleted) with their
        passages, in the same transaction, and an IVFFlat index gets more lists once the library has grown
        enough (still under the writer lock). Old change-log rows are pruned now and then."""
        if self.mirror is not None:
            self.mirror.committed(removed, added, bodies)
        if len(added) and time.monotonic() >= self._refit_after:
            import psycopg

            try:
                self.vectors.fit_layout()
            except psycopg.Error as exc:  # the write itself succeeded: an add after a pause tries again
                self._refit_after = time.monotonic() + REFIT_PAUSE
                log.warning("could not rebuild the vector index with more lists (tried again in %d minutes): %s",
                            REFIT_PAUSE // 60, exc)
        self._log_pruner.maybe()

    @property
    def unsaved(self) -> bool:
        return False

    def save(self) -> None:
        """Nothing: every change is committed to the database."""

    def index_bytes(self) -> int:
        return self.vectors.disk_bytes() + (self.mirror.disk_bytes() if self.mirror is not None else 0)

    def backup(self, target: Path) -> None:
        raise IngestError(
            f"This library is kept in the {self._where}: back it up with PostgreSQL's own tools, e.g. "
            "`pg_dump --format=custom --file=newsbot.dump DSN` (safe while the bots run), or the database "
            "service's snapshots.")

    def restore(self, source: Path) -> None:
        raise IngestError(
            f"This library is kept in the {self._where}: restore a pg_dump archive with PostgreSQL's own tools, "
            "e.g. `pg_restore --clean --if-exists --dbname=DSN newsbot.dump`, then restart the bots.")

    def feed_locks(self) -> FeedLocks:
        """A PostgreSQL advisory lock per feed, so that one replica at a time polls it."""
        from index.stores.postgres.feed_locks import PgFeedLocks

        return PgFeedLocks(self.store)

    def results(self, settings: Settings) -> ResultStore:
        """The shared database: a button pressed on one replica works on any other."""
        from index.stores.postgres.results import PgResultStore

        return PgResultStore(self.store, ttl=timedelta(hours=settings.postgres.result_ttl_hours),
                             max_per_chat=settings.postgres.result_max_per_chat)

    def conversations(self, settings: Settings) -> Conversations:
        """The shared database, like the button results: a follow-up may reach another replica."""
        from index.stores.postgres.conversations import PgConversations

        return PgConversations(self.store, timedelta(minutes=settings.conversation.ttl_minutes),
                               settings.conversation.turns)

    def activity(self, settings: Settings) -> ActivityStore:
        """The shared database's activity tables (migration 0005), on the library's pool."""
        from index.stores.postgres.activity import PgActivity

        return PgActivity(self.store)

    def close(self) -> None:
        try:
            if self.mirror is not None:
                self.mirror.close()
            self._lock.close()
        finally:
            self.store.close()
