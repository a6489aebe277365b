"""Where a library keeps its articles: the strategy Library picks once, from ``library.store``.

``embedded``: SQLite in the data directory holds the truth (articles, passages, their vectors, an FTS5
index); a FAISS file there is a copy of the vectors, saved atomically a few seconds after a change,
and a postings file a copy of the passages' keywords (``keywords.KeywordIndex``), rewritten when
enough has changed. Both are checked against SQLite on start-up and whenever another process has
written (missing passages are added back, vectors re-embedded if SQLite lacks them too; stale ones
removed). Writers hold a lock file in the data directory, so it serves the processes of one machine.

``postgres``: one PostgreSQL database with pgvector shared by every process and replica. The vectors
live in the passages table with an HNSW index, written in the same transaction as their passages, so
there is no file to load, save or repair. Writers hold a PostgreSQL advisory lock, which excludes
writers on every machine and is freed by the server if its holder dies.

Both re-embed every passage when the embedding model changes."""

from __future__ import annotations

import logging
import math
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from index.config import Settings
from index.embedding.embedder import Embedder
from index.errors import ConfigError, IngestError, LibraryBusy, LibraryUnavailable
from index.stores.embedded.keywords import KeywordIndex
from index.stores.embedded.store import Store
from index.stores.embedded.vectors import VectorIndex, training_size

if TYPE_CHECKING:  # the server store's modules need the optional psycopg
    from index.stores.postgres.store import AdvisoryLock, PostgresStore
    from index.stores.postgres.vectors import PgVectorIndex

log = logging.getLogger(__name__)
DATABASE_FILE = "library.sqlite3"
VECTORS_FILE = "vectors.faiss"
KEYWORDS_FILE = "keywords.postings"
GENERATION_KEY = "content_generation"  # meta key, set anew by every restore
LOCK_FILE = "write.lock"
# Vectors read from SQLite at a time when the FAISS index is repaired or rebuilt.
VECTOR_BATCH = 50_000
# Passage bodies read from SQLite at a time when the keyword index is repaired or rebuilt.
KEYWORD_BATCH = 50_000
# Passages re-embedded per transaction on PostgreSQL (an interrupted re-embedding resumes after the last).
EMBED_BATCH = 1_024


class KeywordSearch(Protocol):
    """Ranked keyword matches for a question: (passage id, score where higher is better), best first."""

    def lexical_search(self, question: str, limit: int) -> list[tuple[int, float]]: ...


class Backend(ABC):
    """A store, its vector and keyword indexes and its writer lock; Library calls the writing methods
    under that lock."""

    name: str
    store: "Store | PostgresStore"
    vectors: "VectorIndex | PgVectorIndex"
    keywords: KeywordSearch

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the library lives, for people (never a password)."""

    @abstractmethod
    def writer_lock(self) -> AbstractContextManager[None]:
        """Held while writing: other processes' writers wait, and get LibraryBusy after ``lock_timeout``."""

    @abstractmethod
    def open(self) -> None:
        """Make the vectors fit the store and the model (at start-up, under the writer lock)."""

    @abstractmethod
    def sync(self) -> None:
        """Catch up with what another process committed (under the in-process lock)."""

    @abstractmethod
    def committed(self, removed: Sequence[int], added: Sequence[int] = (), vectors: np.ndarray | None = None,
                  bodies: Sequence[str] = ()) -> None:
        """Follow an add or removal the store has committed: passages ``removed``, ``added`` with ``vectors``
        and ``bodies``."""

    @property
    @abstractmethod
    def unsaved(self) -> bool:
        """True when something kept in memory waits to be written (then ``save`` under the writer lock)."""

    @abstractmethod
    def save(self) -> None:
        """Write what waits to be written."""

    @abstractmethod
    def index_bytes(self) -> int:
        """Bytes on disk of the search indexes kept apart from the database's tables (vectors, keywords)."""

    @abstractmethod
    def backup(self, target: Path) -> None:
        """Write a consistent copy of the library into the new folder ``target``."""

    @abstractmethod
    def restore(self, source: Path) -> None:
        """Replace the library's content with a backup's (under the writer lock)."""

    @abstractmethod
    def close(self) -> None:
        """Close connections and files (without saving: Library saves first)."""

    def check_model(self) -> bool:
        """Vectors from another model are useless: forget them so they are re-embedded; True when it changed."""
        recorded = self.store.get_meta("embedding_model")
        current = f"{self.embedder.name}|{self.embedder.dimension}"
        changed = recorded is not None and recorded != current
        if changed:
            log.warning("the embedding model changed (%s -> %s): re-embedding every passage", recorded, current)
            self.store.clear_vectors()
        if recorded != current:
            self.store.set_meta("embedding_model", current)
        return changed

    def embed_stored(self, passage_ids: Sequence[int], show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """Embed stored passages again and store their vectors: (passage ids, vectors)."""
        bodies = self.store.passage_bodies(passage_ids)
        order = list(bodies)
        fresh = self.embedder.embed([bodies[i] for i in order], show_progress=show_progress)
        self.store.set_vectors(order, fresh)
        return np.asarray(order, dtype=np.int64), fresh


class EmbeddedBackend(Backend):
    """SQLite and a FAISS file in the data directory, for the processes of one machine."""

    name = "embedded"

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        super().__init__(settings, embedder)
        self.data_dir = settings.library.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._file_lock = FileLock(str(self.data_dir / LOCK_FILE), timeout=settings.library.lock_timeout,
                                   thread_local=False)
        self._vectors_path = self.data_dir / VECTORS_FILE
        self._keywords_path = self.data_dir / KEYWORDS_FILE
        self._unsaved_changes = 0
        self._last_save = -math.inf
        self.store = Store(self.data_dir / DATABASE_FILE)
        self.vectors = self._empty_vectors()  # the file's content once open() has checked it
        self.keywords = KeywordIndex()  # likewise
        self._generation: str | None = None  # the content's, changed by every restore

    @property
    def location(self) -> str:
        return str(self.data_dir)

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        try:
            self._file_lock.acquire()
        except Timeout:
            raise LibraryBusy(
                f"The library in {self.data_dir} is being changed by another process "
                f"(waited {self.settings.library.lock_timeout:g} s); try again in a moment.") from None
        try:
            yield
        finally:
            self._file_lock.release()

    def open(self) -> None:
        self.check_model()
        self.vectors.replace_with(self._load_vectors(self._vectors_path))
        self.keywords.replace_with(KeywordIndex.load(self._keywords_path) or KeywordIndex())
        self._generation = self.store.get_meta(GENERATION_KEY)
        if self._reconcile():
            self.save()

    def check_model(self) -> bool:
        changed = super().check_model()
        if changed:
            self._vectors_path.unlink(missing_ok=True)
            self.vectors.replace_with(self._empty_vectors())
        return changed

    def sync(self) -> None:
        generation = self.store.get_meta(GENERATION_KEY)
        if generation != self._generation:  # restored from a backup: ids we hold may now be other passages'
            log.warning("the library was restored from a backup: rebuilding its indexes from SQLite")
            self.vectors.replace_with(self._empty_vectors())
            self.keywords.replace_with(KeywordIndex())
            self._generation = generation
        self._reconcile()

    def committed(self, removed: Sequence[int], added: Sequence[int] = (), vectors: np.ndarray | None = None,
                  bodies: Sequence[str] = ()) -> None:
        """Mirror the change in the FAISS and keyword indexes; save them now, or later if they were saved
        moments ago (SQLite already holds every change)."""
        self.vectors.remove(removed)
        self.keywords.remove(removed)
        if len(added):
            self.vectors.add(added, vectors)
            self.keywords.add(added, bodies)
        self._unsaved_changes += 1
        if self._fit_layout() or time.monotonic() - self._last_save >= self.settings.library.index_save_seconds:
            self.save()

    @property
    def unsaved(self) -> bool:
        return self._unsaved_changes > 0

    def save(self) -> None:
        """The FAISS file; the postings file too when enough changed (else the passages added since are
        read from SQLite on the next start)."""
        self.vectors.save(self._vectors_path)
        if self.keywords.worth_saving:
            self.keywords.save(self._keywords_path)
        self._unsaved_changes = 0
        self._last_save = time.monotonic()

    def index_bytes(self) -> int:
        return sum(path.stat().st_size for path in (self._vectors_path, self._keywords_path) if path.exists())

    def backup(self, target: Path) -> None:
        """SQLite's online backup (consistent while others read and write), and the FAISS file."""
        if target.exists() and any(target.iterdir()):
            raise IngestError(f"{target} is not empty; name a new folder for the backup.")
        target.mkdir(parents=True, exist_ok=True)
        self.store.backup_to(target / DATABASE_FILE)
        # The vectors are in the database too; the index file only spares a rebuild when restoring.
        self.vectors.save(target / VECTORS_FILE)

    def restore(self, source: Path) -> None:
        """The backup's database replaces ours in place; its FAISS file is checked and repaired after."""
        database = source / DATABASE_FILE
        if not database.is_file():
            raise IngestError(f"{source} holds no library backup ({DATABASE_FILE} is missing).")
        try:
            self.store.restore_from(database)
        except ValueError as exc:
            raise IngestError(f"{database} cannot be restored: {exc}.") from None
        if not self.check_model():  # else the backup's vectors are another model's
            self.vectors.replace_with(self._load_vectors(source / VECTORS_FILE))
        # Passage ids after the backup's will be used again for other passages: other processes must
        # rebuild what they hold (see sync), and the keywords are rebuilt here.
        self._generation = uuid.uuid4().hex
        self.store.set_meta(GENERATION_KEY, self._generation)
        self._keywords_path.unlink(missing_ok=True)
        self.keywords.replace_with(KeywordIndex())
        self._reconcile()
        self.save()

    def close(self) -> None:
        self.store.close()

    def _empty_vectors(self) -> VectorIndex:
        return VectorIndex(self.embedder.dimension, self.settings.vectors)

    def _load_vectors(self, path: Path) -> VectorIndex:
        """The FAISS file's index, or an empty one when it is missing or unusable (then repaired from SQLite)."""
        return VectorIndex.load(path, self.embedder.dimension, self.settings.vectors) or self._empty_vectors()

    def _fit_layout(self, count: int | None = None) -> bool:
        """Rebuild the vector index from SQLite when ``count`` passages (default: as many as it holds)
        call for another layout (exact when small, inverted lists when large); True when it did."""
        if not self.vectors.outgrown(count):
            return False
        ids = self.store.passage_ids()
        dimension = self.embedder.dimension
        log.info("re-organising the vector index for %d passages", len(ids))
        started = time.monotonic()
        sample_ids = np.random.default_rng(0).choice(ids, training_size(len(ids)), replace=False)
        _, sample, _ = self.store.vectors(np.sort(sample_ids), dimension)
        batches = (self.store.vectors(ids[first:first + VECTOR_BATCH], dimension)[:2]
                   for first in range(0, len(ids), VECTOR_BATCH))
        self.vectors.replace_with(VectorIndex.build(dimension, self.settings.vectors, len(ids), sample, batches))
        log.info("vector index: %s over %d passages (%.1f s)", self.vectors.layout, len(self.vectors),
                 time.monotonic() - started)
        return True

    def _reconcile(self) -> bool:
        """Make the FAISS index and the keyword index hold exactly SQLite's passages; True when the
        FAISS index changed."""
        in_db = self.store.passage_ids()
        self._reconcile_keywords(in_db)
        in_index = self.vectors.ids()
        missing = np.setdiff1d(in_db, in_index, assume_unique=True)
        stale = np.setdiff1d(in_index, in_db, assume_unique=True)
        if len(stale):
            log.warning("removing %d vectors whose passages are gone", len(stale))
            self.vectors.remove(stale)
        if not len(missing):
            return bool(len(stale)) | self._fit_layout()
        log.warning("restoring %d passage vectors missing from the index", len(missing))
        rebuild = self.vectors.outgrown(len(self.vectors) + len(missing))
        for first in range(0, len(missing), VECTOR_BATCH):
            ids, matrix, lacking = self.store.vectors(missing[first:first + VECTOR_BATCH], self.embedder.dimension)
            if lacking:
                fresh_ids, fresh = self.embed_stored(lacking, show_progress=len(lacking) > 1000)
                ids, matrix = np.concatenate([ids, fresh_ids]), np.vstack([matrix, fresh])
            if not rebuild:  # else the rebuild below reads them all from SQLite
                self.vectors.add(ids, matrix)
        self._fit_layout(len(self.vectors) + len(missing) if rebuild else None)
        return True

    def _reconcile_keywords(self, in_db: np.ndarray) -> None:
        held = self.keywords.ids()
        self.keywords.remove(np.setdiff1d(held, in_db, assume_unique=True))
        missing = np.setdiff1d(in_db, held, assume_unique=True)
        if len(missing) > KEYWORD_BATCH:
            log.info("indexing the keywords of %d passages", len(missing))
        for first in range(0, len(missing), KEYWORD_BATCH):
            bodies = self.store.passage_bodies(missing[first:first + KEYWORD_BATCH])
            self.keywords.add(list(bodies), list(bodies.values()))
        if self.keywords.worth_saving:
            self.keywords.save(self._keywords_path)


@dataclass(frozen=True)
class BudgetedKeywords:
    """PostgreSQL's full-text ranking, held to ``search.lexical_budget`` (see PostgresStore.lexical_search)."""

    store: "PostgresStore"
    budget: int

    def lexical_search(self, question: str, limit: int) -> list[tuple[int, float]]:
        return self.store.lexical_search(question, limit, self.budget)


class PostgresBackend(Backend):
    """One PostgreSQL database with pgvector, shared by every process and replica."""

    name = "postgres"

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
        from index.stores.postgres.vectors import PgVectorIndex
        self._where = describe(pg.dsn)
        try:
            self.store = PostgresStore(pg.dsn, embedder.dimension, min_connections=pg.pool_min,
                                       max_connections=pg.pool_max, hnsw_m=pg.hnsw_m,
                                       hnsw_ef_construction=pg.hnsw_ef_construction)
        except (psycopg.Error, PoolTimeout) as exc:
            raise LibraryUnavailable(f"The library's {self._where} cannot be used: {exc}".strip()) from None
        self.vectors = PgVectorIndex(self.store, pg.hnsw_ef_search)
        self.keywords = BudgetedKeywords(self.store, settings.search.lexical_budget)
        self._lock: AdvisoryLock = AdvisoryLock(pg.dsn, WRITER_LOCK, settings.library.lock_timeout)

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
        """Nothing: the vectors and their index are the database's, which every process reads."""

    def committed(self, removed: Sequence[int], added: Sequence[int] = (), vectors: np.ndarray | None = None,
                  bodies: Sequence[str] = ()) -> None:
        """Nothing: the vectors were written (or deleted) with their passages, in the same transaction."""

    @property
    def unsaved(self) -> bool:
        return False

    def save(self) -> None:
        """Nothing: every change is committed to the database."""

    def index_bytes(self) -> int:
        return self.vectors.disk_bytes()

    def backup(self, target: Path) -> None:
        raise IngestError(
            f"This library is kept in the {self._where}: back it up with PostgreSQL's own tools, e.g. "
            "`pg_dump --format=custom --file=newsbot.dump DSN` (safe while the bots run), or the database "
            "service's snapshots.")

    def restore(self, source: Path) -> None:
        raise IngestError(
            f"This library is kept in the {self._where}: restore a pg_dump archive with PostgreSQL's own tools, "
            "e.g. `pg_restore --clean --if-exists --dbname=DSN newsbot.dump`, then restart the bots.")

    def close(self) -> None:
        try:
            self._lock.close()
        finally:
            self.store.close()


def open_backend(settings: Settings, embedder: Embedder) -> Backend:
    """The backend ``library.store`` names, with its store opened (vectors not yet checked: ``open``)."""
    kinds: dict[str, type[Backend]] = {"embedded": EmbeddedBackend, "postgres": PostgresBackend}
    return kinds[settings.library.store](settings, embedder)
