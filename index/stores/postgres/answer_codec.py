"""Answers as JSON for the shared result store: what the search decided, never the passages themselves.

A stored answer names its passages by id with their scores, ranks and marked sentence spans; reading it
back loads the passages and articles from the library as they are now, so an edited article shows its
current title and a passage removed since is left out."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from index.articles import Article
from index.search.hybrid import Answer, Hit
from index.stores.base import PassageRow

# Bumped when the JSON's shape changes; answers of another format read as expired.
FORMAT = 1


class PassageReader(Protocol):
    """What decoding needs of a store (Store and PostgresStore both have it)."""

    def get_passages(self, passage_ids: Sequence[int]) -> dict[int, PassageRow]: ...

    def get_articles(self, article_ids: Sequence[int]) -> dict[int, Article]: ...


def encode(answer: Answer) -> dict[str, Any]:
    """The answer's ranking as JSON-ready values (the question and query vector are stored beside it)."""
    return {
        "format": FORMAT,
        "answered": bool(answer.answered),
        "lead_passage": int(answer.lead_hit.passage_id) if answer.lead_hit is not None else None,
        "hits": [{
            "passage": int(hit.passage_id),
            "score": float(hit.score),
            "dense_score": float(hit.dense_score),
            "dense_rank": _int_or_none(hit.dense_rank),
            "lexical_rank": _int_or_none(hit.lexical_rank),
            "best_sentence": [int(hit.best_sentence[0]), int(hit.best_sentence[1])] if hit.best_sentence else None,
            "rerank_score": None if hit.rerank_score is None else float(hit.rerank_score),
        } for hit in answer.hits],
    }


def decode(question: str, data: dict[str, Any], query_vector: np.ndarray | None,
           store: PassageReader) -> Answer | None:
    """The stored answer with its passages and articles read now; None when it is of another format
    or every one of its passages has been removed since."""
    if data.get("format") != FORMAT:
        return None
    entries = data.get("hits") or []
    rows = store.get_passages([int(entry["passage"]) for entry in entries])
    articles = store.get_articles([row.article_id for row in rows.values()])
    hits = [_hit(entry, rows[int(entry["passage"])], articles) for entry in entries
            if int(entry["passage"]) in rows and rows[int(entry["passage"])].article_id in articles]
    if entries and not hits:
        return None
    lead_passage = data.get("lead_passage")
    lead = next((i for i, hit in enumerate(hits) if hit.passage_id == lead_passage), None)
    return Answer(question, hits, bool(data.get("answered")), query_vector, lead)


def _hit(entry: dict[str, Any], row: PassageRow, articles: dict[int, Article]) -> Hit:
    best = entry.get("best_sentence")
    span = (int(best[0]), int(best[1])) if best else None
    if span is not None and not 0 <= span[0] <= span[1] <= len(row.text):
        span = None  # marked again when shown
    rerank = entry.get("rerank_score")
    return Hit(passage_id=row.id, article=articles[row.article_id], text=row.text, start=row.start, end=row.end,
               score=float(entry["score"]), dense_score=float(entry["dense_score"]),
               dense_rank=_int_or_none(entry.get("dense_rank")), lexical_rank=_int_or_none(entry.get("lexical_rank")),
               best_sentence=span, rerank_score=None if rerank is None else float(rerank))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
