"""BM25 over SqliteStore's FTS5 index: the reference ranking that tests and benchmarks compare the
library's own keyword search (index/stores/embedded/keywords.py, ranked from postings) against.

The library does not call this; ``fts_query`` also serves the reranker's training (index/search/train_reranker.py)."""

from __future__ import annotations

from typing import Sequence

from index.stores.base import query_words, rarest_within
from index.stores.embedded.store import SqliteStore


def fts_query(question: str | Sequence[str], operator: str = "OR") -> str | None:
    """A safe FTS5 query joining the question's content words (or the given words) with ``operator``."""
    words = query_words(question) if isinstance(question, str) else list(question)
    return f" {operator} ".join(f'"{w}"' for w in words) if words else None


def lexical_search(store: SqliteStore, question: str, limit: int, budget: int = 0) -> list[tuple[int, float]]:
    """BM25 over passage bodies: (passage id, score where higher is better), best first.

    Ranking costs a lookup per matching passage, so with a ``budget`` the question's words are taken
    rarest first while the sum of their matches stays within it: in a large collection a passage must
    hold one of those rarer words to be ranked, and the commonest words (matching a large share of
    it, and weighing least in BM25) still add to the score of the passages that are. When even the
    rarest word matches more than the budget, passages must hold every word. A collection with no
    more passages than the budget is ranked whole, without counting."""
    within = budget > 0 and _max_passage_id(store) > budget  # fewer passages than that: rank them all
    query = _query_within(store, query_words(question), budget) if within else fts_query(question)
    if query is None:
        return []
    rows = store.query("SELECT rowid, bm25(passages_fts) AS score FROM passages_fts WHERE passages_fts MATCH ?"
                       " ORDER BY rank LIMIT ?", (query, limit))
    return [(int(r[0]), -float(r[1])) for r in rows]


def _query_within(store: SqliteStore, words: list[str], budget: int) -> str | None:
    """A query matching at most about ``budget`` passages (see ``lexical_search``)."""
    chosen = rarest_within({word: _count_matches(store, word, budget + 1) for word in words}, budget)
    if not chosen:
        return fts_query(words, "AND")
    if len(chosen) == len(words):
        return fts_query(words)
    return f"({fts_query(chosen)}) AND ({fts_query(words)})"


def _max_passage_id(store: SqliteStore) -> int:
    """The highest passage id: at least the number of passages, read from the index in one step."""
    return int(store.query("SELECT coalesce(max(id), 0) FROM passages")[0][0])


def _count_matches(store: SqliteStore, word: str, cap: int) -> int:
    """Passages holding ``word``, counted up to ``cap`` (reading its posting list, not ranking it)."""
    rows = store.query("SELECT count(*) FROM (SELECT 1 FROM passages_fts WHERE passages_fts MATCH ? LIMIT ?)",
                       (f'"{word}"', cap))
    return int(rows[0][0])
