"""The article library: add, remove, list and search articles, in the store ``library.store`` names.

The store (index/stores/backends.py) is chosen once, when the library opens: ``embedded`` (SQLite and a
FAISS file in the data directory, for one machine) or ``postgres`` (one PostgreSQL database with
pgvector that several bot replicas share). Either way each change is one transaction, writers hold a
lock that other processes (and, on PostgreSQL, other machines) wait for, up to
``library.lock_timeout``, before a clear "being changed by another process" message, and what other
processes committed is picked up before each search and each write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from index.articles import Article, ArticleDraft, content_hash, identity_key
from index.config import Settings
from index.embedding.embedder import Embedder
from index.errors import IngestError, LibraryBusy
from index.ingest.addresses import is_web_address, without_credentials
from index.ingest.chunking import Chunker, embedding_input
from index.ingest.extract import SUPPORTED_SUFFIXES, from_bytes_named, from_plain_text
from index.ingest.fetch import Download, fetch
from index.ingest.files import read_article_file
from index.ingest.near_duplicates import NearDuplicateIndex, signature
from index.search.hybrid import Answer, HybridSearcher
from index.search.reranker import Reranker, load_reranker
from index.search.sentence_scorer import load_sentence_scorer
from index.stores.backends import open_backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddResult:
    """What happened to one input: added, replaced, duplicate, or failed (with a message for the user)."""

    source: str
    status: str  # "added" | "replaced" | "duplicate" | "failed"
    article: Article | None = None
    passages: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in {"added", "replaced", "duplicate"}


@dataclass(frozen=True)
class LibraryStats:
    articles: int
    passages: int
    vectors: int
    newest: date | None
    database_bytes: int
    index_bytes: int
    model: str
    store: str  # "embedded" | "postgres"
    location: str  # the data directory, or which PostgreSQL database (without password)


class Library:
    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 reranker: Reranker | None | bool = True) -> None:
        """``reranker``: a loaded one to share, True to load the configured one, False or None for none."""
        self.settings = settings
        self.data_dir = settings.library.data_dir
        self.embedder = embedder or Embedder(settings.embedding)
        c = settings.chunking
        # The window a passage has once the document prompt is in it, so that no passage is truncated.
        self.chunker = Chunker(self.embedder.count_tokens, c.max_tokens, c.overlap_tokens,
                               self.embedder.passage_window, c.title_prefix)
        self._write_lock = threading.RLock()
        self._write_depth = 0
        self._seen_version: int | None = None
        self.backend = open_backend(settings, self.embedder)
        self.store, self.vectors = self.backend.store, self.backend.vectors
        self.near_duplicates = NearDuplicateIndex(settings.library.near_duplicate_threshold)
        try:
            self._load_signatures()
            with self._writing():
                self.backend.open()
        except BaseException:
            self.backend.close()
            raise
        self._seen_version = self.store.data_version()
        if reranker is True:
            reranker = load_reranker(settings.reranker)
        self.reranker: Reranker | None = reranker or None
        self.searcher = HybridSearcher(self.store, self.vectors, self.backend.keywords, self.embedder,
                                       settings.search, self.reranker, settings.reranker,
                                       load_sentence_scorer(settings.sentences), settings.sentences)
        # Called with each article added or replaced (whatever the source: command, upload, feed), after it
        # is committed; a listener's failure is logged, never the add's (e.g. re-asking open questions, alerts).
        self.after_add: list[Callable[[Article], None]] = []

    @property
    def location(self) -> str:
        """Where the library lives: its data directory, or its PostgreSQL database (without password)."""
        return self.backend.location

    # -- life cycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.flush()
        except LibraryBusy:  # SQLite holds every change; the next start repairs the index file
            log.warning("could not save the vector index on exit: another process holds the library")
        finally:
            self.backend.close()

    def flush(self) -> None:
        """Write what the store keeps in memory (the embedded store's vector index) if it has unsaved changes."""
        if self.backend.unsaved:
            with self._writing():
                self.backend.save()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the in-process lock and the store's writer lock (which other processes share), having first
        picked up what others committed; a nested use holds them once."""
        with self._write_lock:
            if self._write_depth:
                self._write_depth += 1
                try:
                    yield
                finally:
                    self._write_depth -= 1
                return
            with self.backend.writer_lock():
                self._write_depth = 1
                try:
                    if self._seen_version is not None:  # another process may have written since we last looked
                        self.refresh()
                    yield
                finally:
                    self._write_depth = 0
                    self._seen_version = self.store.data_version()

    def _load_signatures(self) -> None:
        """Bring the near-duplicate index in line with the articles in the store."""
        stored = dict(self.store.signatures())
        for article_id in set(self.near_duplicates.signatures()) - set(stored):
            self.near_duplicates.remove(article_id)
        known = self.near_duplicates.signatures()
        for article_id, values in stored.items():
            if article_id not in known or not np.array_equal(known[article_id], values):
                self.near_duplicates.add(article_id, values)

    def refresh(self) -> None:
        """Pick up changes another process committed since we last looked."""
        version = self.store.data_version()
        if version != self._seen_version:
            with self._write_lock:
                self.backend.sync()
                self._load_signatures()
                self._seen_version = version

    # -- adding -------------------------------------------------------------------------------------
    def add_draft(self, draft: ArticleDraft, added_by: str = "cli", source: str | None = None) -> AddResult:
        """Store one article unless it is already there; a changed article with the same URL/title replaces it."""
        prepared = self._prepare(draft, source or draft.url or draft.title)
        if isinstance(prepared, AddResult):
            return prepared
        return self._store(prepared, self.embedder.embed(prepared.bodies), added_by)

    def add_drafts(self, drafts: Iterable[ArticleDraft | tuple[ArticleDraft, str]], added_by: str = "cli",
                   ) -> Iterator[AddResult]:
        """Add many articles (or (article, source) pairs), one result each in order. The same as
        add_draft one by one, but the passages of several articles are embedded together (about
        ``ADD_BATCH_PASSAGES`` at a time), which is faster; each article is still stored in its own
        transaction, so a crash loses at most the articles of the batch not yet stored."""
        batch = _AddBatch(self, added_by)
        try:
            for item in drafts:
                draft, source = item if isinstance(item, tuple) else (item, None)
                yield from batch.add(draft, source or draft.url or draft.title)
            yield from batch.finish()
        finally:
            self.flush()

    def _prepare(self, draft: ArticleDraft, source: str) -> "AddResult | _Prepared":
        """Everything an add does before embedding: checks, duplicate lookups, passages."""
        words = len(draft.text.split())
        if not draft.text.strip():
            return AddResult(source, "failed", message="The article has no text.")
        if words < self.settings.library.min_article_words:
            return AddResult(source, "failed", message=(
                f"Too little text to be an article ({words} words; at least "
                f"{self.settings.library.min_article_words} are needed)."))
        identity, digest = identity_key(draft), content_hash(draft.text)
        duplicate = self._duplicate_of(identity, digest)
        if duplicate is not None:
            return duplicate_result(source, self.store.get_article(duplicate))
        minhash = signature(draft.text)
        existing = self.store.find_by_identity(identity)
        copy_of = None if existing is not None else self.near_duplicates.find(minhash)
        if copy_of is not None:
            return self._link_copy(identity, source, *copy_of)
        passages = self.chunker.chunk(draft.title, draft.text)
        bodies = [embedding_input(draft.title, p.text, self.settings.chunking.title_prefix) for p in passages]
        return _Prepared(draft, source, identity, digest, minhash, [(p.start, p.end) for p in passages], bodies)

    def _store(self, prepared: "_Prepared", vectors: np.ndarray, added_by: str) -> AddResult:
        """Store a prepared article with its vectors in one transaction (checking again, under the
        write lock, for what another writer or an earlier article of the same batch may have added)."""
        draft, source, identity = prepared.draft, prepared.source, prepared.identity
        with self._writing():
            duplicate = self._duplicate_of(identity, prepared.digest)
            if duplicate is not None:
                return duplicate_result(source, self.store.get_article(duplicate))
            existing = self.store.find_by_identity(identity)
            replace_id = int(existing["id"]) if existing is not None else None
            copy_of = None if existing is not None else self.near_duplicates.find(prepared.minhash)
            if copy_of is not None:
                return self._link_copy(identity, source, *copy_of)
            article_id, new_ids, removed = self.store.save_article(
                draft, identity=identity, digest=prepared.digest, added_by=added_by, spans=prepared.spans,
                bodies=prepared.bodies, vectors=vectors, minhash=prepared.minhash, replace_id=replace_id)
            self.backend.committed(removed, new_ids, vectors, prepared.bodies)
            self.near_duplicates.add(article_id, prepared.minhash)
        article = self.store.get_article(article_id)
        if article is not None:
            self._announce(article)
        status = "replaced" if replace_id is not None else "added"
        return AddResult(source, status, article, len(new_ids),
                         f"{'Updated' if replace_id else 'Added'} “{draft.title}” ({len(new_ids)} passages).")

    def _announce(self, article: Article) -> None:
        """Tell the after_add listeners about a stored article."""
        for listener in list(self.after_add):
            try:
                listener(article)
            except Exception:
                log.exception("after adding article #%d, %r failed", article.id, listener)

    def _duplicate_of(self, identity: str, digest: str) -> int | None:
        """The id of a stored article with the same text (whatever its URL), or that this address was
        linked to as a copy, else None."""
        existing = self.store.find_by_identity(identity)
        if existing is not None and existing["content_hash"] == digest:
            return int(existing["id"])
        return self.store.find_by_hash(digest) or self.store.find_alias(identity)

    def _link_copy(self, identity: str, source: str, article_id: int, similarity: float) -> AddResult:
        """Record a republished copy as an alias of the stored article instead of indexing it again."""
        article = self.store.get_article(article_id)
        if article is None:
            return AddResult(source, "failed", message="The article this one copies was removed meanwhile; try again.")
        with self._writing():
            self.store.add_alias(identity, article_id)
        return AddResult(source, "duplicate", article, article.passage_count, (
            f"The same story as “{article.title}” (#{article.id}, {similarity:.0%} alike) is already in the "
            "library; linked to it, not indexed again."))

    def add_text(self, text: str, *, title: str | None = None, url: str | None = None, published: object = None,
                 source_name: str | None = None, added_by: str = "cli") -> AddResult:
        """Pasted text; without a title its first line is the title."""
        if not text.strip():
            return AddResult("text", "failed", message="The text is empty.")
        draft = from_plain_text(text, title=title, url=url, published=published, source=source_name)
        return self.add_draft(draft, added_by, source=draft.title)

    def add_bytes(self, data: bytes, name: str, *, added_by: str = "cli", url: str | None = None) -> AddResult:
        """An uploaded or read file (.txt, .md, .html, .pdf)."""
        return self._add_read(self._read_bytes(data, name, url=url), added_by)

    def add_file(self, path: Path, *, added_by: str = "cli") -> AddResult:
        return self._add_read(self._read_file(path), added_by)

    def add_url(self, url: str, *, added_by: str = "cli") -> AddResult:
        """Download a page (from synchronous code; async callers use fetch() and add_download())."""
        return self._add_read(self._read_url(url), added_by)

    def add_download(self, download: Download, *, added_by: str = "cli", source: str | None = None) -> AddResult:
        """A downloaded page; its canonical link (if any) becomes the article's URL."""
        return self._add_read(self._read_download(download, source=source), added_by)

    def _add_read(self, read: "tuple[ArticleDraft, str] | AddResult", added_by: str) -> AddResult:
        return read if isinstance(read, AddResult) else self.add_draft(read[0], added_by, source=read[1])

    def _read_bytes(self, data: bytes, name: str, *, url: str | None = None) -> "tuple[ArticleDraft, str] | AddResult":
        safe_name = os.path.basename(name.replace("\\", "/")) or "file"
        limit = self.settings.library.max_file_bytes
        if len(data) > limit:
            return AddResult(safe_name, "failed", message=(
                f"{safe_name} is too large ({len(data):,} bytes; the limit is {limit:,})."))
        if not data.strip():
            return AddResult(safe_name, "failed", message=f"{safe_name} is empty.")
        try:
            return from_bytes_named(data, safe_name, url=url), safe_name
        except IngestError as exc:
            return AddResult(safe_name, "failed", message=str(exc))

    def _read_file(self, path: Path) -> "tuple[ArticleDraft, str] | AddResult":
        try:
            data = read_article_file(path, self.settings.library.max_file_bytes)
        except IngestError as exc:  # a missing file is named by its whole path, as it was given
            source = path.name if os.path.lexists(path) and path.name else str(path)
            return AddResult(source, "failed", message=str(exc))
        return self._read_bytes(data, path.name)

    def _read_url(self, url: str) -> "tuple[ArticleDraft, str] | AddResult":
        url = without_credentials(url)
        try:
            download = asyncio.run(fetch(url, self.settings.fetch, self.settings.library.max_file_bytes))
        except IngestError as exc:
            return AddResult(url, "failed", message=str(exc))
        return self._read_download(download, source=url)

    def _read_download(self, download: Download, *, source: str | None = None) -> "tuple[ArticleDraft, str] | AddResult":
        source = source or download.url
        try:
            return from_bytes_named(download.content, download.file_name(), url=download.url), source
        except IngestError as exc:
            return AddResult(source, "failed", message=str(exc))

    def add_sources(self, sources: Iterable[str], *, added_by: str = "cli",
                    progress: bool = False) -> Iterator[AddResult]:
        """Add paths and URLs, one result each in order (a folder adds the supported files in it).
        Passages of several articles are embedded together, as in add_drafts."""
        items = list(expand_sources(sources))
        batch = _AddBatch(self, added_by)
        try:
            for item in tqdm(items, desc="adding", unit="article", disable=not progress or len(items) < 2):
                read = self._read_url(item) if is_web_address(item) else self._read_file(Path(item))
                if isinstance(read, AddResult):
                    yield from batch.done(read)
                else:
                    yield from batch.add(*read)
            yield from batch.finish()
        finally:
            self.flush()

    # -- removing, reading --------------------------------------------------------------------------
    def remove(self, article_id: int) -> Article | None:
        """Delete an article with its passages and vectors; None when there is no such article."""
        with self._writing():
            article = self.store.get_article(article_id)
            if article is None:
                return None
            removed = self.store.delete_article(article_id)
            self.backend.committed(removed)
            self.near_duplicates.remove(article_id)
        return article

    # -- backups ------------------------------------------------------------------------------------
    def backup(self, target: Path) -> Path:
        """Write a consistent copy of the library into the new folder ``target`` (safe while the bot runs).
        A PostgreSQL library is backed up with pg_dump instead: IngestError says so."""
        self.backend.backup(target)
        return target

    def restore(self, source: Path) -> LibraryStats:
        """Replace the library's content with a backup's; the vector index is checked and repaired after.
        A PostgreSQL library is restored with pg_restore instead: IngestError says so."""
        with self._writing():
            self.backend.restore(source)
            self._load_signatures()
        return self.stats()

    def get_article(self, article_id: int) -> Article | None:
        return self.store.get_article(article_id)

    def list_articles(self, offset: int = 0, limit: int = 20) -> list[Article]:
        return self.store.list_articles(offset, limit)

    def count_articles(self) -> int:
        return self.store.count_articles()

    def stats(self) -> LibraryStats:
        return LibraryStats(
            articles=self.store.count_articles(), passages=self.store.count_passages(), vectors=len(self.vectors),
            newest=_to_date(self.store.newest_date()), database_bytes=self.store.file_size(),
            index_bytes=self.backend.index_bytes(), model=model_description(self.embedder), store=self.backend.name,
            location=self.location)

    def search(self, question: str, k: int | None = None, now: date | datetime | None = None,
               limit: int | None = None, mark: int | None = None) -> Answer:
        """Ranked passages for a question; see HybridSearcher.search."""
        self.refresh()
        return self.searcher.search(question, k=k, now=now, limit=limit, mark=mark)

    def mark_hits(self, answer: Answer, start: int, stop: int) -> Answer:
        """Mark the best sentences of more hits of an answer (for later pages)."""
        return self.searcher.mark_hits(answer, start, stop)


# Passages embedded together by add_drafts and add_sources: a few of the embedder's batches, so its
# batches are full and sorted by length as in one bulk encode, while few articles wait unstored.
ADD_BATCH_PASSAGES = 256


@dataclass(frozen=True)
class _Prepared:
    """An article checked and cut into passages, waiting for its vectors."""

    draft: ArticleDraft
    source: str
    identity: str
    digest: str
    minhash: np.ndarray
    spans: list[tuple[int, int]]
    bodies: list[str]


class _AddBatch:
    """Results of many adds in order, the passages of several prepared articles embedded at once."""

    def __init__(self, library: Library, added_by: str) -> None:
        self.library = library
        self.added_by = added_by
        self.limit = max(ADD_BATCH_PASSAGES, library.settings.embedding.batch_size)
        self.waiting: list[AddResult | _Prepared] = []
        self.passages = 0
        self.keys: set[str] = set()

    def add(self, draft: ArticleDraft, source: str) -> Iterator[AddResult]:
        """Prepare an article; yields the results of the batch when it is full."""
        if identity_key(draft) in self.keys or content_hash(draft.text) in self.keys:
            yield from self.finish()  # the same article twice: the second is checked against the first
        prepared = self.library._prepare(draft, source)
        if isinstance(prepared, AddResult):
            yield from self.done(prepared)
            return
        self.waiting.append(prepared)
        self.keys.update((prepared.identity, prepared.digest))
        self.passages += len(prepared.bodies)
        if self.passages >= self.limit:
            yield from self.finish()

    def done(self, result: AddResult) -> Iterator[AddResult]:
        """A result known without embedding: yielded in its turn."""
        if self.waiting:
            self.waiting.append(result)
        else:
            yield result

    def finish(self) -> Iterator[AddResult]:
        """Embed the waiting articles' passages in one call, then store them one transaction each."""
        waiting, self.waiting, self.passages, self.keys = self.waiting, [], 0, set()
        prepared = [item for item in waiting if isinstance(item, _Prepared)]
        if not prepared:
            yield from waiting  # type: ignore[misc]
            return
        vectors = self.library.embedder.embed([body for item in prepared for body in item.bodies])
        offsets = np.cumsum([0] + [len(item.bodies) for item in prepared])
        rows = {id(item): vectors[start:stop] for item, start, stop in zip(prepared, offsets[:-1], offsets[1:])}
        for item in waiting:
            yield item if isinstance(item, AddResult) else self.library._store(item, rows[id(item)], self.added_by)


def model_description(embedder: Embedder) -> str:
    """The model's name with what runs it, e.g. "all-MiniLM-L6-v2 (bundled) on openvino, bf16"."""
    runtime, precision = getattr(embedder, "runtime", None), getattr(embedder, "precision", None)
    return f"{embedder.name} on {runtime}, {precision}" if runtime and precision else embedder.name


def duplicate_result(source: str, article: Article | None) -> AddResult:
    title = article.title if article else "an existing article"
    ref = f" (#{article.id})" if article else ""
    return AddResult(source, "duplicate", article, article.passage_count if article else 0,
                     f"Already in the library: “{title}”{ref}; skipped.")


def expand_sources(sources: Iterable[str]) -> Iterator[str]:
    """Paths and URLs as given, with each folder replaced by the supported files below it."""
    for source in sources:
        path = Path(source)
        if not is_web_address(source) and path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES - {""}:
                    yield str(child)
        else:
            yield source


def _to_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None

