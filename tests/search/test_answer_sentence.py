"""The answering sentence: the scorer on small hand-made passages, and the lead a search chooses with it."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from index.articles import ArticleDraft
from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library
from index.search.answer_sentence import RANK_PENALTY, CandidateSentence, score_sentences

QUESTION = "Which operator runs the ferries to the islands?"
ANSWER = "The operator Blue Sound Lines runs the ferries to the islands under a ten-year contract."
PAGE = [  # passages on a page, best ranked first; the answer sits in the second
    ["Ferries to the islands were crowded all summer.", "Tourists waited for hours at the harbour in the heat.",
     "The islands' hotels reported their best season in a decade."],
    [ANSWER, "Its boats sail from the harbour every hour."],
]


def _scores(embedder: Embedder | None, question: str, page: list[list[str]],
            keyword_weight: float = 0.3) -> list[tuple]:
    """The page's sentences ranked by score: by their words alone without ``embedder``, else with meaning."""
    candidates = [CandidateSentence(text, rank) for rank, passage in enumerate(page) for text in passage]
    if embedder is None:
        scores = score_sentences(question, candidates, keyword_weight)
    else:
        scores = score_sentences(question, candidates, keyword_weight, embedder.embed_one(question),
                                 embedder.embed([c.text for c in candidates]))
    return sorted(zip(scores.tolist(), [c.text for c in candidates], [c.passage_rank for c in candidates]),
                  reverse=True)


@pytest.mark.parametrize("with_meaning", [False, True], ids=["words", "words+meaning"])
def test_the_answer_sentence_of_the_second_passage_leads(embedder: Embedder, with_meaning: bool) -> None:
    ranked = _scores(embedder if with_meaning else None, QUESTION, PAGE)
    assert ranked[0][1] == ANSWER and ranked[0][2] == 1
    # the first passage's best sentence is close in meaning but holds fewer of the question's words
    assert ranked[1][1] == PAGE[0][0]


@pytest.mark.parametrize("with_meaning", [False, True], ids=["words", "words+meaning"])
def test_a_later_passage_pays_for_its_rank(embedder: Embedder, with_meaning: bool) -> None:
    same = "The operator Blue Sound Lines runs the ferries to the islands."
    ranked = _scores(embedder if with_meaning else None, QUESTION, [[same], [same]])
    assert [rank for _, _, rank in ranked] == [0, 1]
    assert ranked[0][0] - ranked[1][0] == pytest.approx(RANK_PENALTY, abs=1e-5)


def test_by_words_a_sentence_scores_the_share_of_the_question_words_it_holds() -> None:
    ranked = _scores(None, QUESTION, [["Ferries to the islands were crowded.", "Nothing shared here."]])
    # "which" and "the" are not among the question's words: operator, runs, ferries, islands
    assert [score for score, _, _ in ranked] == pytest.approx([0.5, 0.0])


def test_no_sentences_no_scores() -> None:
    assert score_sentences(QUESTION, [], 0.3).shape == (0,)
    assert score_sentences(QUESTION, [], 0.3, np.zeros(3), np.zeros((0, 3))).shape == (0,)


def test_keywords_move_the_choice_with_meaning_only_with_a_weight(embedder: Embedder) -> None:
    page = [["Ferries to the islands were crowded all summer.", ANSWER]]
    with_keywords = _scores(embedder, QUESTION, page, keyword_weight=0.3)
    without = _scores(embedder, QUESTION, page, keyword_weight=0.0)
    gain = {text: score for score, text, _ in with_keywords}
    plain = {text: score for score, text, _ in without}
    assert gain[ANSWER] - plain[ANSWER] > gain[page[0][0]] - plain[page[0][0]] >= 0.0


@pytest.mark.parametrize("choice", ["words", "words+meaning"])
def test_search_leads_with_the_best_sentence_of_its_first_page(embedded_settings: Settings, embedder: Embedder,
                                                                choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    articles = [
        ArticleDraft(title="Island ferries busy", published=date(2024, 2, 1), source="news.test",
                     url="https://news.test/1", text=" ".join(PAGE[0]) + " Harbour cafes stayed open late into "
                     "the evening, and the tourist office printed extra maps of the island footpaths."),
        ArticleDraft(title="Ferry contract renewed", published=date(2024, 1, 20), source="news.test",
                     url="https://news.test/2", text=" ".join(PAGE[1]) + " The council renewed the contract "
                     "after a public consultation on fares and timetables for the winter months."),
    ]
    settings = embedded_settings.replace("library", min_article_words=10).replace("search", sentence_choice=choice)
    with Library(settings, embedder=embedder, reranker=False) as library:
        for draft in articles:
            assert library.add_draft(draft, added_by="test").status == "added"
        embedded: list[str] = []
        embed = embedder.embed

        def recording_embed(texts, **options):
            embedded.extend(texts)
            return embed(texts, **options)

        monkeypatch.setattr(embedder, "embed", recording_embed)
        answer = library.search(QUESTION, k=2, now=date(2024, 2, 2))
        # by words the page's sentences are never embedded; with meaning every one is, once
        assert (ANSWER in embedded) == (choice == "words+meaning")
        embedded.clear()
        assert library.search(QUESTION, k=2, now=date(2024, 2, 2)).lead_hit == answer.lead_hit
        assert ANSWER not in embedded  # asked again: the sentences' vectors are still held
        assert [hit.article.title for hit in answer.hits] == ["Island ferries busy", "Ferry contract renewed"]
        assert answer.lead == 1 and answer.lead_hit is not None  # the second passage's sentence answers
        assert answer.lead_hit.best_sentence_text == ANSWER
        assert all(hit.best_sentence is not None for hit in answer.hits)
        bare = library.search(QUESTION, k=2, now=date(2024, 2, 2), mark=0)
        assert bare.lead is None and all(hit.best_sentence is None for hit in bare.hits)
        marked = library.mark_hits(bare, 0, 2)  # marking a first page chooses the same lead
        assert marked.lead == answer.lead and marked.lead_hit == answer.lead_hit
