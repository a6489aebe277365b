"""The embedded backend: SqliteStore (index/stores/embedded/store.py) holds the truth (articles, passages,
their vectors, an FTS5 index) in the data directory; a FAISS file there (index/stores/embedded/vectors.py) is
a copy of the vectors, saved atomically a few seconds after a change, and a postings file
(index/stores/embedded/keywords.py) a copy of the passages' keywords, rewritten when enough has changed.
Both are checked against SQLite on start-up and whenever another process has written (missing passages
are added back, vectors re-embedded if SQLite lacks them too; stale ones removed). Writers hold a lock
file in the data directory (index/stores/embedded/directory.py), so it serves the processes of one machine."""

from __future__ import annotations

import logging
import math
import sqlite3
import time
import uuid
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Sequence

import numpy as np

from index.config import Settings
from index.embedding.embedder import Embedder
from index.errors import BackupError
from index.stores.base import ActivityStore, Backend, Conversations, FeedLocks, ResultStore
from index.stores.embedded.backup import checked_copy, write_manifest
from index.stores.embedded.directory import DATABASE_FILE, KEYWORDS_FILE, VECTORS_FILE, WriterLock
from index.stores.embedded.keywords import KeywordIndex
from index.stores.embedded.store import SqliteStore
from index.stores.embedded.vectors import VectorIndex, training_size

log = logging.getLogger(__name__)
GENERATION_KEY = "content_generation"  # meta key, set anew by every restore
# Vectors read from SQLite at a time when the FAISS index is repaired or rebuilt.
VECTOR_BATCH = 50_000
# Passage bodies read from SQLite at a time when the keyword index is repaired or rebuilt.
KEYWORD_BATCH = 50_000


class EmbeddedBackend(Backend):
    """SQLite and a FAISS file in the data directory, for the processes of one machine."""

    name = "embedded"

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        super().__init__(settings, embedder)
        self.data_dir = settings.library.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._writer = WriterLock(self.data_dir, settings.library.lock_timeout)
        self._vectors_path = self.data_dir / VECTORS_FILE
        self._keywords_path = self.data_dir / KEYWORDS_FILE
        self._unsaved_changes = 0
        self._last_save = -math.inf
        self.store: SqliteStore = SqliteStore(self.data_dir / DATABASE_FILE)
        self.vectors: VectorIndex = self._empty_vectors()  # the file's content once open() has checked it
        self.keywords: KeywordIndex = KeywordIndex()  # likewise
        self._generation: str | None = None  # the content's, changed by every restore

    @property
    def location(self) -> str:
        return str(self.data_dir)

    def writer_lock(self) -> AbstractContextManager[None]:
        return self._writer.held()

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
        """SQLite's online backup (consistent while others read and write), the FAISS file, and a manifest
        of both with their checksums and the library's counts (index/stores/embedded/backup.py)."""
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise BackupError(f"{target} is not empty; name a new folder for the backup.")
        try:
            target.mkdir(parents=True, exist_ok=True)
            self.store.backup_to(target / DATABASE_FILE)
            # The vectors are in the database too; the index file only spares a rebuild when restoring.
            self.vectors.save(target / VECTORS_FILE)
            write_manifest(target)
        except (OSError, sqlite3.Error, RuntimeError) as exc:  # RuntimeError: FAISS's write errors
            raise BackupError(f"The backup cannot be written to {target}: {getattr(exc, 'strerror', None) or exc}"
                              ) from None

    def restore(self, source: Path) -> None:
        """Check the backup completely on a copy in the data directory, then put that copy's content in place
        of ours in one SQLite transaction (index/stores/embedded/backup.py); the FAISS file after."""
        # Passage ids after the backup's will be used again for other passages: the new generation, which
        # arrives with the content, tells other processes to rebuild what they hold (see sync).
        generation = uuid.uuid4().hex
        with checked_copy(source, self.data_dir, {GENERATION_KEY: generation}) as backup:
            try:
                self.store.restore_from(backup.database)
            except ValueError as exc:
                raise BackupError(f"{source} cannot be restored: {exc}; nothing was restored.") from None
        self._generation = generation
        if not self.check_model():  # else the backup's vectors are another model's
            self.vectors.replace_with(self._load_vectors(backup.vectors_file) if backup.vectors_file
                                      else self._empty_vectors())
        # The keywords are rebuilt here.
        self._keywords_path.unlink(missing_ok=True)
        self.keywords.replace_with(KeywordIndex())
        self._reconcile()
        self.save()

    def feed_locks(self) -> FeedLocks:
        """One process polls, one feed at a time (FeedPoller's own lock): every feed lock is granted."""
        from index.stores.embedded.feed_locks import ProcessFeedLocks

        return ProcessFeedLocks()

    def results(self, settings: Settings) -> ResultStore:
        """Process memory: one bot process serves an embedded library."""
        from index.stores.embedded.results import ResultCache

        return ResultCache()

    def conversations(self, settings: Settings) -> Conversations:
        """Process memory, like the button results."""
        from index.stores.embedded.conversations import MemoryConversations

        return MemoryConversations(timedelta(minutes=settings.conversation.ttl_minutes), settings.conversation.turns)

    def activity(self, settings: Settings) -> ActivityStore:
        """A SQLite file of its own in the data directory (index/stores/embedded/activity.py)."""
        from index.stores.embedded.activity import SqliteActivity

        return SqliteActivity(self.data_dir)

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
