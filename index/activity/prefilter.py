"""Which open questions and topics a new article could answer or match at all, found with one matrix
product rather than a search each: the searches after an add (ReaderActivity) need one of the article's
passages to reach a cosine threshold with the question or topic, and a passage's dense score in a search
is that cosine. Only the wordings that pass are searched."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Sequence

import numpy as np

from index.embedding.embedder import Embedder

if TYPE_CHECKING:
    from index.library import Library

# Allowance under the threshold for a vector index that scores approximately (8-bit codes, HNSW).
MARGIN = 0.02


class QueryVectors:
    """Questions' and topics' vectors (as queries), remembered so that each wording is embedded once."""

    def __init__(self, embedder: Embedder, max_entries: int = 10_000) -> None:
        self.embedder = embedder
        self.max_entries = max_entries
        self._known: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text, in order; the texts not seen before are embedded together."""
        with self._lock:
            missing = list(dict.fromkeys(text for text in texts if text not in self._known))
        if missing:
            fresh = self.embedder.embed(missing, kind="query")
            with self._lock:
                for text, vector in zip(missing, fresh):
                    self._known[text] = vector
                while len(self._known) > self.max_entries:
                    self._known.popitem(last=False)
        with self._lock:
            rows = [self._known.get(text) for text in texts]
        return np.stack([row if row is not None else self.embedder.embed_query(text)
                         for row, text in zip(rows, texts)]) if texts else np.zeros((0, self.embedder.dimension))


def article_vectors(library: "Library", article_id: int) -> np.ndarray:
    """The vectors of an article's passages (one row each; none when it has no passage with a vector)."""
    ids = [int(row[0]) for row in library.store.query("SELECT id FROM passages WHERE article_id = ?", (article_id,))]
    found = library.vectors.lookup(ids)
    if not found:
        return np.zeros((0, library.embedder.dimension), dtype=np.float32)
    return np.stack([np.asarray(vector, dtype=np.float32) for vector in found.values()])


def reaching(queries: np.ndarray, passages: np.ndarray, threshold: float) -> np.ndarray:
    """For each query row, whether any passage row's cosine with it reaches ``threshold`` (less MARGIN)."""
    if not len(queries) or not len(passages):
        return np.zeros(len(queries), dtype=bool)
    return (queries @ passages.T).max(axis=1) >= threshold - MARGIN
