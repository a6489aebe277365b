"""The cross-encoder reranker: the training command and its file, how its scores change the ranking
and the refusal, what happens without it, the recency prior and question dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from index.articles import parse_date
from index.config import RerankerSettings, Settings
from index.embedding.embedder import Embedder
from index.library import Library
from index.search.hybrid import HybridSearcher, recency_bonus
from index.search.reranker import RerankerInfo, load_reranker
from index.search.train_reranker import choose_threshold
from tests.support.helpers import run_cli

COUNCIL = ("The United Nations Security Council condemned the missile test on Tuesday and threatened new "
           "sanctions if the launches continue.")
MUSEUM = "The harbour museum reopened after renovation, with a restored fishing boat and a gallery of ship models."


def test_train_command_writes_a_small_loadable_file(trained_reranker: Path, tmp_path: Path) -> None:
    assert trained_reranker.stat().st_size < 25_000_000  # fp16, no word embeddings
    reranker = load_reranker(RerankerSettings(model=str(trained_reranker)))
    assert reranker is not None and reranker.info.max_length == 64
    assert reranker.info.training["groups"] == 8 and 0.0 <= reranker.info.threshold <= 1.0
    scores = reranker.score("What did the UN Security Council threaten?", [COUNCIL, MUSEUM])
    assert scores.shape == (2,) and all(0.0 <= value <= 1.0 for value in scores)
    assert reranker.score("anything", []).shape == (0,)
    assert load_reranker(RerankerSettings(model=str(trained_reranker))) is reranker  # loaded once per process
    missing = run_cli("train-reranker", str(tmp_path / "nowhere"), str(tmp_path / "x"), data_dir=tmp_path / "data")
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_int8_scores_stay_close_to_fp32(trained_reranker: Path) -> None:
    fp32 = load_reranker(RerankerSettings(model=str(trained_reranker), precision="fp32"))
    int8 = load_reranker(RerankerSettings(model=str(trained_reranker), precision="int8"))
    assert fp32 is not None and int8 is not None and int8.precision == "int8"
    question, passages = "What did the UN Security Council threaten?", [COUNCIL, MUSEUM]
    assert np.allclose(fp32.score(question, passages), int8.score(question, passages), atol=0.05)


def test_missing_or_damaged_file_means_search_without_reranking(sample_library_dir: Path, embedded_settings: Settings,
                                                                 embedder: Embedder, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x00not a safetensors file" * 10)
    for model in (str(tmp_path / "missing.safetensors"), str(damaged), "off"):
        assert load_reranker(RerankerSettings(model=model)) is None
    assert load_reranker(RerankerSettings(model=str(damaged), candidates=0)) is None

    off = embedded_settings.replace("library", data_dir=sample_library_dir).replace("reranker", model=str(damaged))
    with Library(off, embedder=embedder) as lib:
        assert lib.reranker is None
        answer = lib.search("what did the UN Security Council say?")
        assert answer.answered and "Security Council" in answer.hits[0].article.title
        assert all(hit.rerank_score is None for hit in answer.hits)


def test_a_real_reranker_scores_every_candidate_it_reads(sample_library_dir: Path, embedded_settings: Settings,
                                                         embedder: Embedder, trained_reranker: Path) -> None:
    configured = embedded_settings.replace("library", data_dir=sample_library_dir).replace(
        "reranker", model=str(trained_reranker), candidates=4, min_probability=0.0)
    with Library(configured, embedder=embedder) as lib:
        assert lib.reranker is not None
        answer = lib.search("what did the UN Security Council say?")
        assert answer.answered  # a threshold of 0 refuses nothing
        assert sum(hit.rerank_score is not None for hit in answer.hits) == 4
        assert all(answer.hits[i].score >= answer.hits[i + 1].score for i in range(len(answer.hits) - 1))
        assert answer.hits[0].best_sentence is not None


@dataclass
class ScriptedReranker:
    """Stands in for the model where a test needs exact scores: probability by passage keyword."""

    probabilities: dict[str, float]
    info: RerankerInfo = RerankerInfo(threshold=0.5, max_length=256, training={})

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        return np.array([max((p for word, p in self.probabilities.items() if word in text), default=0.01)
                         for text in passages], dtype=np.float32)


def _searcher(lib: Library, reranker: ScriptedReranker, **rerank: object) -> HybridSearcher:
    return HybridSearcher(lib.store, lib.vectors, lib.backend.keywords, lib.embedder,  # type: ignore[arg-type]
                          lib.settings.search, reranker, RerankerSettings(**rerank))  # type: ignore[arg-type]


def test_reranker_order_is_fused_and_its_probability_decides_refusal(sample_settings: Settings,
                                                                     embedder: Embedder) -> None:
    question = "what did the UN Security Council say?"
    with Library(sample_settings, embedder=embedder, reranker=None) as lib:
        plain = lib.search(question)
        assert "Security Council" in plain.hits[0].article.title
        lifted = plain.hits[5].text[:40]  # a passage well down the fused list

        strong = _searcher(lib, ScriptedReranker({lifted: 0.99}), weight=50.0).search(question)
        assert strong.hits[0].text.startswith(lifted) and strong.hits[0].rerank_score == pytest.approx(0.99)
        assert strong.answered

        gentle = _searcher(lib, ScriptedReranker({lifted: 0.99}), weight=0.001).search(question)
        assert [h.passage_id for h in gentle.hits[:3]] == [h.passage_id for h in plain.hits[:3]]

        unsure = _searcher(lib, ScriptedReranker({"Council": 0.2})).search(question)
        assert not unsure.answered and unsure.closest is not None  # below the file's threshold of 0.5
        assert _searcher(lib, ScriptedReranker({"Council": 0.2}), min_probability=0.1).search(question).answered

        few = _searcher(lib, ScriptedReranker({}), candidates=2).search(question)
        assert sum(h.rerank_score is not None for h in few.hits) == 2


def test_recency_prior() -> None:
    today = date(2023, 3, 10)
    assert recency_bonus(today, today, 0.02, 7) == pytest.approx(0.02)
    assert recency_bonus(date(2023, 3, 3), today, 0.02, 7) == pytest.approx(0.02 / np.e)
    assert recency_bonus(date(2023, 3, 11), today, 0.02, 7) == 0.0  # published after the question
    assert recency_bonus(None, today, 0.02, 7) == pytest.approx(0.01)  # undated: half
    assert recency_bonus(today, today, 0.0, 7) == 0.0


def test_question_dates_are_parsed() -> None:
    assert parse_date("2023-01-05") == date(2023, 1, 5)
    assert parse_date("2023-01-05T23:30:00Z") == date(2023, 1, 5)
    assert parse_date(datetime(2023, 1, 5, 8, tzinfo=timezone.utc)) == date(2023, 1, 5)
    assert parse_date("last Tuesday") is None and parse_date("") is None and parse_date(None) is None


def test_calibrated_threshold_keeps_refusals_precise() -> None:
    answerable = np.array([0.9, 0.8, 0.7, 0.3, 0.05])
    unanswerable = np.array([0.01, 0.02, 0.04, 0.2, 0.6])
    result = choose_threshold(answerable, unanswerable, precision=0.9)
    # below 0.05 only unanswerable questions are refused; at 0.2 the answerable 0.05 joins them
    assert result["threshold"] == pytest.approx(0.05)
    assert result["precision"] == 1.0 and result["refused_unanswerable"] == pytest.approx(0.6)
    assert choose_threshold(np.array([0.1]), np.array([0.5]), precision=0.9)["threshold"] == 0.0
