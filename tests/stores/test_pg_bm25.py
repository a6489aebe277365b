"""PostgreSQL's keyword search scores BM25 as the embedded store does: the same passages ranked in the same
order with the same scores, for the same bodies and questions."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

from index.articles import ArticleDraft
from index.stores.embedded.keywords import KeywordIndex
from index.stores.embedded.terms import TermVocabulary
from index.stores.postgres.store import PostgresStore, bm25_idf, tsquery_lexeme

BODIES = [
    "Ferry workers went on strike at the harbour on Monday.",
    "The harbour authority said the strikes would end soon.",
    "Heavy rain flooded the coastal road near the harbour.",
    "A new ferry timetable starts in June, the operator said.",
    "Owners of the harbour cafes welcomed the end of the strike, and the strike fund.",
    "The council approved a budget for road repairs.",
    "Ferry ferry ferry: the ferry operator repeated the word in a long statement about ferry services "
    "to the islands, the harbour, the mainland and the coast road.",
    "Crowds in São Paulo mourned Pelé, the football great, on the harbour front.",
] + [f"Weather report number {i}: rain and wind along the coast." for i in range(12)]
QUESTIONS = ["Why did the ferry workers strike?", "harbour strikes", "road repairs budget", "Pele in Sao Paulo",
             "rain along the coast", "What did the operator say about the timetable?", "ferry services",
             "volcano", ""]


@pytest.fixture(scope="module")
def both_indexes(postgres_server) -> Iterator[tuple[PostgresStore, dict[int, int], KeywordIndex]]:
    """The bodies in a PostgreSQL store and in the embedded keyword index, each by its own passage ids
    (with the PostgreSQL id of each embedded one)."""
    name = postgres_server.create_database()
    store = PostgresStore(postgres_server.dsn(name), 4, max_connections=2)
    try:
        same: dict[int, int] = {}
        keywords = KeywordIndex()
        for number, body in enumerate(BODIES):
            _, [passage_id], _ = store.save_article(
                ArticleDraft(title=f"Story {number}", text=body), identity=f"story:{number}", digest=str(number),
                added_by="test", spans=[(0, len(body))], bodies=[body], vectors=np.ones((1, 4), dtype=np.float32))
            keywords.add([number + 1], [body])
            same[number + 1] = passage_id
        yield store, same, keywords
    finally:
        store.close()
        postgres_server.drop_database(name)


@pytest.mark.parametrize("question", QUESTIONS)
def test_postgres_ranks_and_scores_as_the_embedded_bm25(both_indexes, question: str) -> None:
    store, same, keywords = both_indexes
    theirs = [(same[pid], score) for pid, score in keywords.lexical_search(question, 50)]
    ours = store.lexical_search(question, 50)
    assert [pid for pid, _ in ours] == [pid for pid, _ in theirs]
    assert [score for _, score in ours] == pytest.approx([score for _, score in theirs], rel=1e-4)


def test_a_passage_with_more_of_a_word_scores_higher_but_saturates(both_indexes) -> None:
    store, same, _ = both_indexes
    scores = dict(store.lexical_search("ferry", 50))
    repeated, once = same[7], same[4]  # five "ferry" in a long passage, one in a short one
    assert scores[repeated] > scores[once]
    assert scores[repeated] < 5 * scores[once]  # BM25's term frequency saturates (k1) and long passages weigh less


def test_token_counts_and_idf() -> None:
    assert bm25_idf(100, 1) > bm25_idf(100, 10) > 0
    assert bm25_idf(10, 6) == pytest.approx(1e-6)  # a word in more than half the passages barely counts
    assert tsquery_lexeme("o'neil") == "'o''neil'"
    assert tsquery_lexeme("back\\slash") == "'back\\\\slash'"


def test_each_passage_counts_its_words(both_indexes) -> None:
    store, same, _ = both_indexes
    counts = {int(r["id"]): int(r["token_count"]) for r in store.query("SELECT id, token_count FROM passages")}
    assert counts[same[1]] == len("Ferry workers went on strike at the harbour on Monday".split())
    assert counts[same[6]] == 8  # "The council approved a budget for road repairs"


def test_words_are_cut_and_stemmed_as_fts5_does(both_indexes) -> None:
    """Porter's stems (not Snowball's), diacritics removed, and compounds, abbreviations, numbers and
    addresses as their parts only."""
    store, same, _ = both_indexes
    text = ("Self-driving cars were generously generalized by the operators' federation, reportedly; Pelé's "
            "São Paulo club and Covid-19, the U.S. and example.org's 3.5% rate")
    vocabulary = TermVocabulary()
    fts5 = sorted({vocabulary.terms[i] for i in vocabulary.term_ids(text)})
    ours = store.query("SELECT tsvector_to_array(to_tsvector('newsbot_english', newsbot_fold(?))) AS lexemes",
                       (text,))[0]["lexemes"]
    assert sorted(ours) == fts5
    assert "self-driv" not in ours and "gener" in ours  # Snowball would keep "self-driv" and say "general"
    assert {"pele", "sao", "19"} <= set(ours)
    assert [pid for pid, _ in store.lexical_search("Pele", 5)] == [pid for pid, _ in store.lexical_search("Pelé", 5)] \
        == [same[8]]
