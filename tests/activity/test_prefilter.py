"""The prefilter that spares a search per open question and topic after each add: query vectors remembered
per wording, and the cosine test that a search's dense score would have to pass."""

from __future__ import annotations

import numpy as np
import pytest

from index.activity.prefilter import MARGIN, QueryVectors, article_vectors, reaching
from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library
from tests.support.web_pages import NEWS_STORIES


def test_query_vectors_are_the_embedders_and_each_wording_is_embedded_once(embedder: Embedder) -> None:
    vectors = QueryVectors(embedder, max_entries=2)
    rows = vectors.of(["night trains", "street trees", "night trains"])
    assert rows.shape == (3, embedder.dimension)
    assert np.allclose(rows[0], embedder.embed_query("night trains"), atol=1e-5) and np.allclose(rows[0], rows[2])
    vectors.of(["telescopes"])  # the oldest wording is forgotten beyond max_entries
    assert list(vectors._known) == ["street trees", "telescopes"]
    assert vectors.of([]).shape == (0, embedder.dimension)


def test_reaching_is_the_best_cosine_against_the_threshold() -> None:
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    passages = np.array([[0.6, 0.8]], dtype=np.float32)
    assert reaching(queries, passages, 0.7).tolist() == [False, True]
    assert reaching(queries, passages, 0.6 + MARGIN).tolist() == [True, True]
    assert reaching(queries, passages[:0], 0.1).tolist() == [False, False]


def test_an_articles_vectors_are_its_passages(settings: Settings, embedder: Embedder) -> None:
    with Library(settings, embedder=embedder) as library:
        article = library.add_text("\n".join(NEWS_STORIES[2])).article
        library.add_text("\n".join(NEWS_STORIES[3]))
        rows = article_vectors(library, article.id)
        assert rows.shape == (article.passage_count, embedder.dimension)
        topic = embedder.embed_query("night trains on the northern line")
        searched = max(hit.dense_score for hit in library.search(
            "night trains on the northern line", limit=20, mark=0).hits if hit.article.id == article.id)
        assert float((rows @ topic).max()) == pytest.approx(searched, abs=1e-4)
        assert article_vectors(library, 999_999).shape == (0, embedder.dimension)
