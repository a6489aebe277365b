"""The answer-sentence scorer: its training groups, the training command and its file, what happens
without it, and how it chooses the sentence a reply leads with."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from index.config import SentenceSettings, Settings
from index.embedding.embedder import Embedder
from index.library import Library
from index.search.sentence_scorer import load_sentence_scorer, resolve_scorer_path
from index.search.train_sentence_scorer import SentenceOptions, answer_sentence, sentence_groups
from tests.support.helpers import paragraphs, run_cli, write_squad_paragraphs

@pytest.fixture(scope="session")
def trained_scorer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scorer file written by the real training command on the tiny data set (a few steps)."""
    work = tmp_path_factory.mktemp("scorer")
    write_squad_paragraphs(work / "squad")
    out = work / "out" / "sentence-scorer.safetensors"
    result = run_cli("train-sentence-scorer", str(work / "squad"), str(out), "--questions", "8",
                     "--groups-per-batch", "4", "--check-questions", "6", "--max-length", "64", data_dir=work / "data")
    assert result.returncode == 0, result.stderr
    assert "check on SQuAD 2.0 dev" in result.stderr
    return out


def test_a_group_is_the_answer_sentence_then_sentences_without_the_answer() -> None:
    passages, questions = paragraphs()
    options = SentenceOptions(questions=100, paragraph_negatives=2, other_article_negatives=1, same_article_negatives=0)
    groups = sentence_groups(passages, questions, options, random.Random(1))
    assert len(groups) == len(questions)
    answers = {q.question: q.answer for q in questions}
    for question, texts in groups:
        assert len(texts) == options.group_size
        assert answers[question] in texts[0] and "opened in" in texts[0]
        assert all(answers[question] not in text for text in texts[1:])
        assert texts[0].split("\n")[0] in question.title()  # read with its article's title


def test_a_question_whose_answer_is_in_several_sentences_is_left_out() -> None:
    assert answer_sentence(["It opened in 1990.", "It closed in 2001."], "1990") == 0
    assert answer_sentence(["It opened in 1990.", "In 1990 it won a prize."], "1990") is None
    assert answer_sentence(["It opened.", "It closed."], "1990") is None


def test_train_command_writes_a_small_loadable_file(trained_scorer: Path, tmp_path: Path) -> None:
    assert trained_scorer.stat().st_size < 25_000_000  # fp16, without the frozen embeddings and layers
    scorer = load_sentence_scorer(SentenceSettings(scorer=str(trained_scorer)))
    assert scorer is not None
    scores = scorer.score("When did the bridge open?", [("River Bridge", "It opened in 1991."), ("Other", "Rain.")])
    assert scores.shape == (2,) and all(0.0 <= value <= 1.0 for value in scores)
    assert scorer.score("anything", []).shape == (0,)
    assert load_sentence_scorer(SentenceSettings(scorer=str(trained_scorer))) is scorer  # loaded once per process
    missing = run_cli("train-sentence-scorer", str(tmp_path / "nowhere"), str(tmp_path / "x"), data_dir=tmp_path / "d")
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_missing_damaged_or_foreign_files_switch_the_scorer_off(trained_reranker: Path, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x00not a safetensors file" * 10)
    assert resolve_scorer_path("off") is None and resolve_scorer_path("shipped").name == "sentence-scorer.safetensors"
    with caplog.at_level(logging.WARNING):
        for configured in ("off", str(tmp_path / "missing.safetensors"), str(damaged), str(trained_reranker)):
            assert load_sentence_scorer(SentenceSettings(scorer=configured)) is None
    assert "not found" in caplog.text and "is not a newsbot-sentence-scorer file" in caplog.text


def test_the_scorer_chooses_each_passages_sentence_and_the_page_its_lead(trained_scorer: Path, sample_library_dir: Path,
                                              embedded_settings: Settings, embedder: Embedder) -> None:
    settings = embedded_settings.replace("library", data_dir=sample_library_dir)
    question = "what did the UN Security Council say?"
    with Library(settings, embedder=embedder) as plain:
        assert plain.searcher.sentence_scorer is None
        without = plain.search(question)
    # a weight this large lets the scorer alone decide among each passage's sentences
    scored = settings.replace("sentences", scorer=str(trained_scorer), weight=1e6)
    with Library(scored, embedder=embedder) as lib:
        scorer = lib.searcher.sentence_scorer
        assert scorer is not None
        answer = lib.search(question)
    assert [hit.passage_id for hit in answer.hits] == [hit.passage_id for hit in without.hits]  # ranking unchanged
    # the scorer chooses each passage's bold sentence among that passage's own sentences (scored as _mark
    # scores them: the whole page in one call)...
    page = answer.hits[:3]
    candidates = [(hit.article.title, sentence) for hit in page for sentence in sentences_in(hit.text)]
    probabilities = iter(scorer.score(question, candidates).tolist())
    for hit in page:
        own = {sentence: next(probabilities) for sentence in sentences_in(hit.text)}
        assert own[hit.best_sentence_text] == pytest.approx(max(own.values()), abs=1e-6)
        # ...and each marked passage carries its probability for that sentence (eval's refusal sweep reads it)
        assert hit.sentence_probability == pytest.approx(max(own.values()), abs=1e-6)
    assert all(hit.sentence_probability is None for hit in without.hits[:3])
    # ...while which passage leads stays with the page's cosine-and-keyword scores, comparable across passages
    assert answer.lead == without.lead and answer.lead_hit is not None


def sentences_in(text: str) -> list[str]:
    from index.ingest.chunking import split_sentences

    return [text[span.start:span.end] for span in split_sentences(text)]
