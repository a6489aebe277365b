"""A library on PostgreSQL for the bot's replica tests, made of the real parts (PostgresStore, pgvector
search, the hybrid searcher, the chunker and embedder) with what ChatService and FeedPoller call.

Until index/library.py's Library runs on the server store itself; then ``Library(settings)`` with
``library.store = "postgres"`` replaces it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Sequence

import numpy as np

from index.articles import ArticleDraft, content_hash, identity_key
from index.chunking import Chunker, embedding_input
from index.config import Settings
from index.embedding import Embedder
from index.extract import IngestError, from_bytes_named
from index.fetch import Download
from index.library import AddResult
from index.near_duplicates import signature
from index.pg_store import PostgresStore
from index.pg_vectors import PgVectorIndex
from index.search import Answer, HybridSearcher


@dataclass(frozen=True)
class Prepared:
    """An article cut into passages and embedded, ready to be stored in any test's database."""

    draft: ArticleDraft
    spans: list[tuple[int, int]]
    bodies: list[str]
    vectors: np.ndarray


def prepare(drafts: Sequence[ArticleDraft], settings: Settings, embedder: Embedder) -> list[Prepared]:
    """Passages and vectors of each article, as Library makes them."""
    c = settings.chunking
    chunker = Chunker(embedder.count_tokens, c.max_tokens, c.overlap_tokens, embedder.max_seq_length, c.title_prefix)
    prepared = []
    for draft in drafts:
        passages = chunker.chunk(draft.title, draft.text)
        bodies = [embedding_input(draft.title, p.text, c.title_prefix) for p in passages]
        prepared.append(Prepared(draft, [(p.start, p.end) for p in passages], bodies, embedder.embed(bodies)))
    return prepared


class PgTestLibrary:
    """One process's view of a shared PostgreSQL library (each instance has its own connection pool)."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = PostgresStore(settings.postgres.dsn, embedder.dimension, max_connections=4)
        self.searcher = HybridSearcher(self.store, PgVectorIndex(self.store), embedder, settings.search)

    def close(self) -> None:
        self.store.close()

    def store_prepared(self, item: Prepared, added_by: str = "test") -> int:
        """Save an embedded article; returns its id."""
        article_id, _, _ = self.store.save_article(
            item.draft, identity=identity_key(item.draft), digest=content_hash(item.draft.text), added_by=added_by,
            spans=item.spans, bodies=item.bodies, vectors=item.vectors, minhash=signature(item.draft.text))
        return article_id

    def add_draft(self, draft: ArticleDraft, added_by: str = "test", source: str | None = None) -> AddResult:
        [item] = prepare([draft], self.settings, self.embedder)
        article = self.store.get_article(self.store_prepared(item, added_by))
        return AddResult(source or draft.title, "added", article, len(item.bodies), f"Added “{draft.title}”.")

    def add_download(self, download: Download, *, added_by: str = "test", source: str | None = None) -> AddResult:
        try:
            draft = from_bytes_named(download.content, download.file_name(), url=download.url)
        except IngestError as exc:
            return AddResult(source or download.url, "failed", message=str(exc))
        return self.add_draft(draft, added_by, source)

    def remove(self, article_id: int) -> None:
        self.store.delete_article(article_id)

    def flush(self) -> None:
        """Nothing to save: every change is committed to the database."""

    def count_articles(self) -> int:
        return self.store.count_articles()

    def search(self, question: str, k: int | None = None, now: date | datetime | None = None,
               limit: int | None = None, mark: int | None = None) -> Answer:
        return self.searcher.search(question, k=k, now=now, limit=limit, mark=mark)

    def mark_hits(self, answer: Answer, start: int, stop: int) -> Answer:
        return self.searcher.mark_hits(answer, start, stop)
