"""The postings-list keyword index: FTS5's ranking, kept in step with adds and removals, saved to a
memory-mapped file and read back."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.stores.embedded import keywords as keyword_module
from index.stores.embedded.fts_reference import lexical_search
from index.stores.embedded.keywords import KeywordIndex
from index.stores.embedded.postings import read_file
from index.stores.embedded.store import SqliteStore
from index.stores.embedded.terms import TermVocabulary
from tests.stores.test_lexical import store_with

BODIES = [
    "Ferry workers went on strike at the harbour on Monday.",
    "The harbour authority said the strikes would end soon.",
    "Heavy rain flooded the coastal road near the harbour.",
    "A new ferry timetable starts in June, the operator said.",
    "Café owners near the harbour welcomed the end of the strike.",
    "The council approved a budget for road repairs.",
] + [f"Weather report number {i}: rain and wind along the coast." for i in range(12)]
QUESTIONS = ["Why did the ferry workers strike?", "harbour strikes", "cafe", "road repairs budget",
             "rain along the coast", "What did the operator say about the timetable?", "volcano", ""]


def index_of(store: SqliteStore) -> KeywordIndex:
    keywords = KeywordIndex()
    ids = store.passage_ids()
    bodies = store.passage_bodies(ids)
    keywords.add(list(bodies), list(bodies.values()))
    return keywords


@pytest.mark.parametrize("question", QUESTIONS)
def test_ranking_is_fts5s_bm25(tmp_path: Path, question: str) -> None:
    store, _ = store_with(tmp_path, BODIES)
    keywords = index_of(store)
    ours = keywords.lexical_search(question, 50)
    theirs = lexical_search(store, question, 50)
    strong = [(pid, score) for pid, score in theirs if score > 1e-3]  # terms in half the passages barely score
    assert [pid for pid, _ in ours[:len(strong)]] == [pid for pid, _ in strong]
    for (_, ours_score), (_, their_score) in zip(ours, strong):
        assert ours_score == pytest.approx(their_score, rel=1e-4)
    store.close()


def test_words_become_fts5s_terms() -> None:
    vocabulary = TermVocabulary()
    vocabulary.term_ids("strike cafe the")
    assert vocabulary.known(["volcanoes"]) == [] and len(vocabulary) == 3  # a question adds no term
    strikes, cafe, the = vocabulary.known(["strikes", "Café", "the"])
    assert [vocabulary.terms[i] for i in (strikes, cafe, the)] == ["strike", "cafe", "the"]
    assert vocabulary.known(["striking", "strike"]) == [strikes]  # the same stem, once
    assert vocabulary.term_ids("Strikes, strikes_and CAFÉ!") == [strikes, strikes, vocabulary.known(["and"])[0], cafe]


def test_removed_passages_are_never_found_and_ids_used_again_hold_their_new_text() -> None:
    keywords = KeywordIndex()
    keywords.add([1, 2, 3], ["ferry strike", "ferry timetable", "harbour rain"])
    keywords.remove([1, 7])
    assert [pid for pid, _ in keywords.lexical_search("ferry strike", 10)] == [2]
    assert len(keywords) == 2 and keywords.ids().tolist() == [2, 3]
    keywords.add([1], ["volcano eruption"])  # a restored backup's ids come back with other passages
    assert keywords.lexical_search("strike", 10) == []
    assert [pid for pid, _ in keywords.lexical_search("volcano", 10)] == [1]
    keywords.add([2], ["volcano"])  # already held: left as it is
    assert [pid for pid, _ in keywords.lexical_search("volcano", 10)] == [1]


def test_saved_file_is_memory_mapped_and_answers_the_same(tmp_path: Path) -> None:
    store, ids = store_with(tmp_path, BODIES)
    keywords = index_of(store)
    keywords.remove(ids[:2])
    path = tmp_path / "keywords.postings"
    keywords.save(path)
    loaded = KeywordIndex.load(path)
    assert loaded is not None and loaded.ids().tolist() == ids[2:]
    _, arrays = read_file(path)
    assert isinstance(arrays["passages"], np.memmap)
    assert all(keywords.lexical_search(question, 10) == loaded.lexical_search(question, 10)
               for question in QUESTIONS)
    assert {pid for question in QUESTIONS for pid, _ in loaded.lexical_search(question, 10)} & set(ids[:2]) == set()
    loaded.add([999], ["ferry volcano"])  # the file's segment and one in memory, searched together
    assert loaded.lexical_search("volcano", 10)[0][0] == 999
    assert loaded.lexical_search("ferry", 10)[-1][0] != ids[0]
    store.close()


def test_changes_made_while_the_file_is_written_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = KeywordIndex()
    index.add([1, 2, 3], ["ferry strike", "harbour rain", "ferry timetable"])
    write = keyword_module.write_file

    def write_while_others_change(path: Path, header: dict, arrays: dict) -> None:
        index.add([4], ["volcano ferry"])  # another thread, as the file is written
        index.remove([2, 3])
        write(path, header, arrays)

    monkeypatch.setattr(keyword_module, "write_file", write_while_others_change)
    index.save(tmp_path / "keywords.postings")
    assert index.ids().tolist() == [1, 4] and not index.worth_saving
    assert [pid for pid, _ in index.lexical_search("ferry harbour", 10)] == [1, 4]
    assert [pid for pid, _ in index.lexical_search("volcano", 10)] == [4]
    index.add([2], ["volcano harbour"])  # an id used again: its old postings, now in the file, must go
    assert [pid for pid, _ in index.lexical_search("rain", 10)] == []
    assert sorted(pid for pid, _ in index.lexical_search("volcano", 10)) == [2, 4]


def test_a_damaged_or_foreign_file_is_not_trusted(tmp_path: Path) -> None:
    keywords = KeywordIndex()
    keywords.add([1, 2], ["ferry strike", "harbour rain"])
    path = tmp_path / "keywords.postings"
    keywords.save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    assert KeywordIndex.load(path) is None
    path.write_bytes(b"not postings at all")
    assert KeywordIndex.load(path) is None
    assert KeywordIndex.load(tmp_path / "missing") is None


def test_worth_saving_follows_the_share_changed() -> None:
    keywords = KeywordIndex()
    keywords.add(range(1, 101), ["ferry"] * 100)
    assert not keywords.worth_saving  # a hundred passages: read again from SQLite in no time
    keywords.add(range(101, 3001), ["harbour"] * 2900)
    assert keywords.worth_saving


def brute_force_bm25(documents: dict[int, list[str]], words: list[str]) -> dict[int, float]:
    """BM25 as FTS5 defines it, written out plainly."""
    count = len(documents)
    average = sum(map(len, documents.values())) / count
    scores: dict[int, float] = {}
    for word in dict.fromkeys(words):
        holding = sum(word in terms for terms in documents.values())
        if not holding:
            continue
        weight = math.log((count - holding + 0.5) / (holding + 0.5))
        weight = weight if weight > 0 else 1e-6
        for pid, terms in documents.items():
            tf = terms.count(word)
            if tf:
                norm = 1.2 * (1 - 0.75 + 0.75 * len(terms) / average)
                scores[pid] = scores.get(pid, 0.0) + weight * tf * 2.2 / (tf + norm)
    return scores


WORDS = ["ferry", "harbour", "rain", "strike", "council", "budget", "road", "coast"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), st.booleans()),
                min_size=1, max_size=40),
       st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), st.integers(0, 9))
def test_scores_equal_bm25_written_out(documents: list[tuple[list[str], bool]], question: list[str],
                                       save_every: int) -> None:
    keywords = KeywordIndex()
    held: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keywords.postings"
        for pid, (terms, keep) in enumerate(documents, 1):
            keywords.add([pid], [" ".join(terms)])
            held[pid] = terms
            if not keep:
                keywords.remove([pid])
                del held[pid]
            if save_every and pid % save_every == 0:
                keywords.save(path)
            found = keywords.lexical_search(" ".join(question), 100)
            assert {pid for pid, _ in found} <= set(held)  # removed passages never come back
        keywords.save(path)  # removed passages' postings merged away: their frequencies are exact
        expected = brute_force_bm25(held, question) if held else {}
        telling = {pid: score for pid, score in expected.items() if score > 1e-3}
        found_scores = dict(keywords.lexical_search(" ".join(question), 100))
        assert set(telling) <= set(found_scores) <= set(expected)
        for pid, score in telling.items():
            assert found_scores[pid] == pytest.approx(score, rel=1e-4, abs=1e-5)
