"""The answering sentence: every sentence of a page's passages scored by how well it answers the question.

One scorer serves both choices: each passage's own bold sentence (the best of its sentences) and the
sentence a reply leads with (the best across the first page). A trained sentence scorer can replace
``score_sentences`` without changing either caller."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from index.stores.base import query_words

_WORDS = re.compile(r"\w+", re.UNICODE)
# Subtracted for each place a sentence's passage stands below the page's first: a later passage's
# sentence leads only when it answers clearly better (chosen on half A of the dev set: docs/benchmarks.md).
RANK_PENALTY = 0.2


@dataclass(frozen=True)
class CandidateSentence:
    """One sentence of a passage on the page, as the scorer sees it."""

    text: str
    passage_rank: int  # the passage's place on the page, 0 for the first
    reading: float = 0.0  # the reranker's probability that the sentence answers, when it read it


def score_sentences(question: str, sentences: Sequence[CandidateSentence], keyword_weight: float,
                    query_vector: np.ndarray | None = None, vectors: np.ndarray | None = None) -> np.ndarray:
    """How well each sentence answers the question, higher is better: the share of the question's words
    it holds, plus the reranker's reading, less ``RANK_PENALTY`` per place of its passage. With the
    sentences' ``vectors`` (search.sentence_choice "words+meaning") the share weighs ``keyword_weight``
    and the sentence's cosine to ``query_vector`` is added."""
    if not sentences:
        return np.zeros(0, dtype=np.float32)
    keywords = set(query_words(question))
    shares = np.array([len(keywords & set(_WORDS.findall(sentence.text.casefold()))) / max(1, len(keywords))
                       for sentence in sentences], dtype=np.float32)
    rest = np.array([sentence.reading - RANK_PENALTY * sentence.passage_rank for sentence in sentences],
                    dtype=np.float32)
    if vectors is None or query_vector is None:
        return shares + rest
    cosines = np.asarray(vectors, dtype=np.float32) @ np.asarray(query_vector, dtype=np.float32)
    return cosines + keyword_weight * shares + rest
