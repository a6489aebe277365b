"""The FTS5 reference ranking within a budget: rarest words decide what is ranked, common ones still score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.articles import ArticleDraft
from index.stores.embedded.fts_reference import lexical_search
from index.stores.embedded.store import SqliteStore


def store_with(tmp_path: Path, bodies: list[str]) -> tuple[SqliteStore, list[int]]:
    store = SqliteStore(tmp_path / "library.sqlite3")
    ids = []
    for number, body in enumerate(bodies):
        _, passage_ids, _ = store.save_article(
            ArticleDraft(title=f"Story {number}", text=body), identity=f"story:{number}", digest=str(number),
            added_by="test", spans=[(0, len(body))], bodies=[body], vectors=np.zeros((1, 4), dtype=np.float32))
        ids.extend(passage_ids)
    return store, ids


def test_common_words_score_but_do_not_decide_what_is_ranked(tmp_path: Path) -> None:
    common = [f"the harbour report number {i} about weather" for i in range(40)]
    store, ids = store_with(tmp_path, common + ["a ferry strike closed the harbour", "a ferry timetable changed"])
    harbour_ferry, ferry_only = ids[-2], ids[-1]
    question = "harbour ferry strike?"

    everything = [pid for pid, _ in lexical_search(store, question, 100)]
    assert everything[0] == harbour_ferry and len(everything) == 42  # every word matches: all ranked

    within = [pid for pid, _ in lexical_search(store, question, 100, budget=5)]
    assert within[:2] == [harbour_ferry, ferry_only]  # "harbour" (41 passages) left out of the matching...
    assert len(within) == 2
    scores = dict(lexical_search(store, question, 100, budget=5))
    only_rare = dict(lexical_search(store, "ferry strike?", 100, budget=5))
    assert scores[harbour_ferry] > only_rare[harbour_ferry]  # ...but it still adds to the score
    store.close()


def test_when_every_word_is_common_passages_must_hold_them_all(tmp_path: Path) -> None:
    bodies = [f"harbour report {i}" for i in range(20)] + [f"weather report {i}" for i in range(20)]
    store, ids = store_with(tmp_path, bodies + ["harbour weather report"])
    within = [pid for pid, _ in lexical_search(store, "harbour weather", 100, budget=5)]
    assert within == [ids[-1]]
    assert len(lexical_search(store, "harbour weather", 100)) == 41
    assert lexical_search(store, "", 100, budget=5) == []
    store.close()


def test_a_collection_within_the_budget_is_ranked_whole(tmp_path: Path) -> None:
    bodies = [f"harbour weather report {i}" for i in range(6)] + ["harbour notice", "weather notice"]
    store, ids = store_with(tmp_path, bodies)
    question = "harbour weather"
    # 8 passages: within a budget of 10 nothing is counted, although the words' matches sum to 14.
    assert {pid for pid, _ in lexical_search(store, question, 100, budget=10)} == set(ids)
    # Over a budget of 5, both words are over it on their own: passages must hold both.
    assert {pid for pid, _ in lexical_search(store, question, 100, budget=5)} == set(ids[:6])
    store.close()
