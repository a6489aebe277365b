"""Hybrid search: dense (FAISS or pgvector) and keyword (BM25 from postings lists, or PostgreSQL full-text)
candidates fused by reciprocal rank, a soft recency prior, near-duplicate removal, a cross-encoder
reranking the best candidates (its rank fused in as one more list), the best-answering sentence of
each passage, the sentence the reply leads with, and the refusal rule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone

import numpy as np

from index.articles import Article
from index.config import RerankerSettings, SearchSettings, SentenceSettings
from index.embedding.embedder import Embedder
from index.embedding.recent import RecentVectors
from index.ingest.chunking import split_sentences
from index.search.answer_sentence import CandidateSentence, score_sentences
from index.search.reranker import Reranker, passage_input
from index.search.sentence_scorer import SentenceScorer
from index.stores.base import KeywordSearch, Store, VectorSearch

# Share of the recency bonus given to an article whose date is unknown.
UNDATED_RECENCY_SHARE = 0.5
# Sentences embedded together when the best ones are marked: small batches sorted by length pad each
# sentence only to its neighbours' length, where one batch would pad all to the longest (docs/benchmarks.md).
SENTENCE_BATCH = 8
# Sentences whose vectors are kept between questions (about 1.5 KB each with a 384-dimension model).
RECENT_SENTENCES = 8192
# Candidates whose vectors are read at once (at least) when near-duplicates are dropped.
DEDUP_BATCH = 16


@dataclass(frozen=True)
class Hit:
    """One ranked passage with its article and why it ranked."""

    passage_id: int
    article: Article
    text: str
    start: int
    end: int
    score: float
    dense_score: float
    dense_rank: int | None
    lexical_rank: int | None
    best_sentence: tuple[int, int] | None = None  # span within ``text``
    rerank_score: float | None = None  # the cross-encoder's probability that the passage answers
    sentence_probability: float | None = None  # the sentence scorer's probability that the best sentence answers

    @property
    def best_sentence_text(self) -> str | None:
        return self.text[self.best_sentence[0]:self.best_sentence[1]] if self.best_sentence else None


@dataclass(frozen=True)
class Answer:
    """Ranked passages for a question, and whether they are good enough to answer it."""

    question: str
    hits: list[Hit] = field(default_factory=list)
    answered: bool = False
    query_vector: np.ndarray | None = field(default=None, repr=False, compare=False)
    lead: int | None = None  # index in ``hits`` (on the first page) of the passage whose marked sentence answers best

    @property
    def lead_hit(self) -> Hit | None:
        """The passage holding the answer sentence a reply leads with (its ``best_sentence_text``)."""
        if self.lead is None or not 0 <= self.lead < len(self.hits):
            return None
        return self.hits[self.lead] if self.hits[self.lead].best_sentence else None

    @property
    def closest(self) -> Article | None:
        """The article nearest to the question, also when the question is not answered."""
        return self.hits[0].article if self.hits else None


def recency_bonus(published: date | None, now: date, weight: float, days: float) -> float:
    """Soft preference for recent articles: full weight today, fading with age; nothing for later dates."""
    if weight <= 0:
        return 0.0
    if published is None:
        return weight * UNDATED_RECENCY_SHARE
    age = (now - published).days
    if age < 0:
        return 0.0
    return weight * math.exp(-age / days)


class HybridSearcher:
    """Strategy fixed at construction: which store, vectors, models and weights to use. Without a
    reranker (file missing or switched off) the fused ranking stands and the cosine rule refuses."""

    def __init__(self, store: Store, vectors: VectorSearch, keywords: KeywordSearch, embedder: Embedder,
                 settings: SearchSettings, reranker: Reranker | None = None,
                 rerank_settings: RerankerSettings | None = None, sentence_scorer: SentenceScorer | None = None,
                 sentence_settings: SentenceSettings | None = None) -> None:
        self.store = store
        self.vectors = vectors
        self.keywords = keywords
        self.embedder = embedder
        self.settings = settings
        self.rerank_settings = rerank_settings or RerankerSettings()
        self.reranker = reranker if self.rerank_settings.candidates > 0 else None
        self.sentence_scorer = sentence_scorer
        self.sentence_settings = sentence_settings or SentenceSettings()
        self.sentence_vectors = RecentVectors(lambda texts: embedder.embed(texts, batch_size=SENTENCE_BATCH),
                                              RECENT_SENTENCES)

    @property
    def refusal_threshold(self) -> float | None:
        """The reranker probability below which a question counts as not answered (None: no reranker)."""
        if self.reranker is None:
            return None
        configured = self.rerank_settings.min_probability
        return configured if configured >= 0 else self.reranker.info.threshold

    def search(self, question: str, k: int | None = None, now: date | datetime | None = None,
               limit: int | None = None, mark: int | None = None) -> Answer:
        """The best ``limit`` passages (default 3·k) for the question, best first; the first ``mark``
        (default k) have their best sentence marked, the others when they are shown (``mark_hits``). The
        lead is the marked first-page passage holding the best-answering sentence (none when ``mark`` is 0)."""
        s = self.settings
        k = k or s.k
        limit = limit or 3 * k
        question = question.strip()
        if not question:
            return Answer(question)
        today = now.date() if isinstance(now, datetime) else (now or datetime.now(timezone.utc).date())
        query_vector = self.embedder.embed_query(question)
        dense = self.vectors.search(query_vector, s.candidates)
        # (Running this on a second thread while the question is embedded was slower on 2 cores: it
        # stalls torch's threads, which wait for each other.)
        lexical = self.keywords.lexical_search(question, s.candidates)
        dense_rank = {pid: rank for rank, (pid, _) in enumerate(dense, 1)}
        lexical_rank = {pid: rank for rank, (pid, _) in enumerate(lexical, 1)}
        candidates = list(dict.fromkeys([pid for pid, _ in dense] + [pid for pid, _ in lexical]))
        if not candidates:
            return Answer(question)
        # Ranking needs each candidate's article and date only; texts are read for the passages kept.
        origins = self.store.passage_origins(candidates)

        scored: list[tuple[float, int]] = []
        for pid in candidates:
            origin = origins.get(pid)
            if origin is None:
                continue  # removed by another process since the indexes were loaded
            score = 0.0
            if pid in dense_rank:
                score += s.dense_weight / (s.rrf_k + dense_rank[pid])
            if pid in lexical_rank:
                score += s.lexical_weight / (s.rrf_k + lexical_rank[pid])
            score += recency_bonus(origin.published, today, s.recency_weight, s.recency_days)
            scored.append((score, pid))
        scored.sort(key=lambda item: -item[0])

        score_of = {pid: score for score, pid in scored}
        reranked = self.rerank_settings.candidates if self.reranker is not None else 0
        chosen, vectors = self._drop_near_duplicates([pid for _, pid in scored], max(limit, reranked))
        rows = self.store.get_passages(chosen)
        articles = self.store.get_articles([row.article_id for row in rows.values()])
        chosen = [pid for pid in chosen if pid in rows and rows[pid].article_id in articles]
        probability: dict[int, float] = {}
        if reranked:
            head = chosen[:reranked]
            scores = self.reranker.score(question, [passage_input(articles[rows[pid].article_id].title, rows[pid].text)
                                                    for pid in head])
            by_probability = self.rerank_settings.fusion == "probability"
            for rank, index in enumerate(np.argsort(-scores, kind="stable"), 1):
                pid = head[index]
                probability[pid] = float(scores[index])
                score_of[pid] += self.rerank_settings.weight * (
                    probability[pid] if by_probability else 1.0 / (s.rrf_k + rank))
            chosen.sort(key=lambda pid: -score_of[pid])
        chosen = chosen[:limit]
        cosines = [float(vectors[pid] @ query_vector) for pid in chosen]
        hits = [
            Hit(passage_id=pid, article=articles[rows[pid].article_id], text=rows[pid].text, start=rows[pid].start,
                end=rows[pid].end, score=score_of[pid], dense_score=float(cos), dense_rank=dense_rank.get(pid),
                lexical_rank=lexical_rank.get(pid), rerank_score=probability.get(pid))
            for pid, cos in zip(chosen, cosines)
        ]
        mark = k if mark is None else mark
        answer = self.mark_hits(Answer(question, hits, self._answers(hits[:k]), query_vector), 0, min(k, mark))
        return self.mark_hits(answer, min(k, mark), mark)

    def _answers(self, first_page: list[Hit]) -> bool:
        """The refusal rule: the reranker's calibrated probability when it ran, else cosine similarity."""
        if not first_page:
            return False
        threshold = self.refusal_threshold
        probabilities = [hit.rerank_score for hit in first_page if hit.rerank_score is not None]
        if threshold is not None and probabilities:
            return max(probabilities) >= threshold
        return max(hit.dense_score for hit in first_page) >= self.settings.min_dense_score

    def mark_hits(self, answer: Answer, start: int, stop: int) -> Answer:
        """The answer with the best sentences of ``hits[start:stop]`` marked. Marking a first page
        (``start`` 0) of an answer without a lead also chooses its lead among those passages."""
        if answer.query_vector is None:
            return answer
        stop = min(stop, len(answer.hits))
        choose_lead = start == 0 and answer.lead is None
        # a lead compares the page's sentences scored together, so the whole page is scored then
        todo = [i for i in range(start, stop) if choose_lead or answer.hits[i].best_sentence is None]
        if not todo:
            return answer
        marked, scores = self._mark(answer.question, answer.query_vector, [answer.hits[i] for i in todo])
        hits = list(answer.hits)
        for i, hit in zip(todo, marked):
            hits[i] = hit
        if not choose_lead:
            return replace(answer, hits=hits)
        leading = [(score, -i) for i, hit, score in zip(todo, marked, scores) if hit.best_sentence is not None]
        return replace(answer, hits=hits, lead=-max(leading)[1] if leading else None)  # ties: the earlier passage

    def _drop_near_duplicates(self, ranked: list[int], limit: int) -> tuple[list[int], dict[int, np.ndarray]]:
        """Keep the best of passages whose vectors are nearly the same (one wire story, many outlets):
        the first ``limit`` kept, with their vectors. The vectors are read a batch at a time (one query
        on PostgreSQL), usually once; a passage without one (removed meanwhile) is left out."""
        kept: list[int] = []
        kept_vectors: dict[int, np.ndarray] = {}
        batch = max(2 * limit, DEDUP_BATCH)
        for first in range(0, len(ranked), batch):
            found = self.vectors.lookup(ranked[first:first + batch])
            for pid in ranked[first:first + batch]:
                vector = found.get(pid)
                if vector is None or any(float(vector @ other) >= self.settings.dedup_similarity
                                         for other in kept_vectors.values()):
                    continue
                kept.append(pid)
                kept_vectors[pid] = vector
                if len(kept) >= limit:
                    return kept, kept_vectors
        return kept, kept_vectors

    def mark_best_sentences(self, question: str, query_vector: np.ndarray, hits: list[Hit]) -> list[Hit]:
        """Set each hit's best sentence: the one ``score_sentences`` rates highest among its own."""
        return self._mark(question, query_vector, hits)[0]

    def _mark(self, question: str, query_vector: np.ndarray, hits: list[Hit]) -> tuple[list[Hit], list[float]]:
        """The hits with their best sentences set, scored together as one page (the first hit ranked first),
        and each one's best page score, which chooses the lead (-inf for a hit without sentences). With
        ``reranker.mark_sentences`` the reranker's probability that a sentence answers adds to its score."""
        if not hits:
            return hits, []
        spans_per_hit = [split_sentences(hit.text) for hit in hits]
        sentences = [hit.text[span.start:span.end] for hit, spans in zip(hits, spans_per_hit) for span in spans]
        titles = [hit.article.title for hit, spans in zip(hits, spans_per_hit) for _ in spans]
        if self.reranker is not None and self.rerank_settings.mark_sentences:
            readings = self.reranker.score(question, [passage_input(t, x) for t, x in zip(titles, sentences)])
        else:
            readings = np.zeros(len(sentences), dtype=np.float32)
        ranks = [rank for rank, spans in enumerate(spans_per_hit) for _ in spans]
        candidates = [CandidateSentence(text, rank, float(reading))
                      for text, rank, reading in zip(sentences, ranks, readings)]
        vectors = None
        if self.settings.sentence_choice == "words+meaning" and sentences:  # documents, like the passages
            vectors = self.sentence_vectors(sentences)
        page_scores = score_sentences(question, candidates, self.settings.sentence_keyword_weight,
                                      query_vector, vectors)
        # The scorer (trained on sentences of one paragraph against each other) chooses within each passage;
        # which passage leads the page stays with the page scores, comparable across passages.
        probabilities = None
        scores = page_scores
        if self.sentence_scorer is not None and sentences:
            probabilities = self.sentence_scorer.score(question, list(zip(titles, sentences)))
            scores = page_scores + self.sentence_settings.weight * probabilities
        marked: list[Hit] = []
        best_scores: list[float] = []
        offset = 0
        for hit, spans in zip(hits, spans_per_hit):
            if not spans:
                marked.append(replace(hit, best_sentence=None, sentence_probability=None))
                best_scores.append(-math.inf)
                continue
            best = offset + int(np.argmax(scores[offset:offset + len(spans)]))  # ties: the earlier sentence
            span = spans[best - offset]
            probability = None if probabilities is None else float(probabilities[best])
            marked.append(replace(hit, best_sentence=(span.start, span.end), sentence_probability=probability))
            best_scores.append(float(page_scores[offset:offset + len(spans)].max()))
            offset += len(spans)
        return marked, best_scores
