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


def score_sentences(question: str, query_vector: np.ndarray, sentences: Sequence[CandidateSentence],
                    vectors: np.ndarray, keyword_weight: float) -> np.ndarray:
    """How well each sentence answers the question, higher is better: its cosine to the question, plus
    ``keyword_weight`` times the share of the question's words it holds, plus the reranker's reading, less
    ``RANK_PENALTY`` per place of its passage."""
    if not sentences:
        return np.zeros(0, dtype=np.float32)
    keywords = set(query_words(question))
    cosines = np.asarray(vectors, dtype=np.float32) @ np.asarray(query_vector, dtype=np.float32)
    scores = np.empty(len(sentences), dtype=np.float32)
    for i, sentence in enumerate(sentences):
        shared = len(keywords & set(_WORDS.findall(sentence.text.casefold()))) / max(1, len(keywords))
        scores[i] = (float(cosines[i]) + keyword_weight * shared + sentence.reading
                     - RANK_PENALTY * sentence.passage_rank)
    return scores
