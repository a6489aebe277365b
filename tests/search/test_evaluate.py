"""The evaluation command on a tiny data set written here (the real one is not needed by tests)."""

from __future__ import annotations

import json
from pathlib import Path

from index.eval.evaluate import contains_answer, normalize_answer_text
from tests.support.helpers import run_cli

ARTICLES = [
    ("Ferry strike ends", "2024-02-01", "The ferry workers' strike ended on Thursday after the union accepted a pay rise "
     "of six percent. Crossings to the islands restart on Saturday morning, the operator Blue Sound Lines said."),
    ("New bridge named", "2024-02-03", "The new footbridge over the river will be called the Kestrel Bridge, the "
     "council announced after a public vote in which almost nine thousand residents took part."),
    ("Snow closes schools", "2023-01-10", "Heavy snow closed forty schools in the hill villages on Monday. Buses "
     "did not run and the regional roads authority asked drivers to stay at home until the ploughs had passed."),
]
QUESTIONS = [
    {"id": "q1", "date": "2024-02-05", "question": "Which operator runs the ferries to the islands?",
     "answer_texts": ["Blue Sound Lines"], "specific": True},
    {"id": "q2", "date": "2024-02-05", "question": "What will the new footbridge be called?",
     "answer_texts": ["Kestrel Bridge"], "specific": True},
]


def test_answer_matching_follows_the_dataset_rule() -> None:
    assert normalize_answer_text("  Kestrel-Bridge’s  ") == "kestrel bridge s"
    assert contains_answer("It is called the Kestrel Bridge.", ["kestrel bridge"])
    assert not contains_answer("Kestrel Bridges everywhere", ["Kestrel Bridge"])


def test_eval_command_prints_recall_and_refusals(tmp_path: Path, trained_reranker: Path) -> None:
    dataset = tmp_path / "set"
    dataset.mkdir()
    with open(dataset / "corpus.jsonl", "w") as corpus:
        for number, (title, published, text) in enumerate(ARTICLES):
            corpus.write(json.dumps({"id": f"a{number}", "url": f"https://news.test/{number}", "title": title,
                                     "text": text, "published": published, "source_domain": "news.test"}) + "\n")
    with open(dataset / "questions.jsonl", "w") as questions:
        questions.writelines(json.dumps(q) + "\n" for q in QUESTIONS)
    result = run_cli("eval", str(dataset), "--cache-dir", str(tmp_path / "cache"), "--refusals",
                     "--set", "library.min_article_words=10", "--set", f"reranker.model={trained_reranker}",
                     "--set", "reranker.min_probability=0.0", "--variant", "plain:reranker.candidates=0",
                     data_dir=tmp_path / "unused")
    assert result.returncode == 0, result.stderr
    reranked, _, plain = result.stdout.partition("== plain")
    for table in (reranked, plain):  # one table per configuration, each with its refusal sweep
        lines = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.strip()}
        assert lines["R@1"] == ["1.000", "1.000"]
        assert "refusals:" in table and "<- current" in table
    assert "min_probability" in reranked and "min_dense_score" in plain
    bad = run_cli("eval", str(dataset), "--variant", "x:chunking.max_tokens=64", data_dir=tmp_path / "unused")
    assert bad.returncode == 2 and "only search.* and reranker.*" in bad.stderr
    again = run_cli("eval", str(dataset), "--cache-dir", str(tmp_path / "cache"),
                    "--set", "library.min_article_words=10", data_dir=tmp_path / "unused")
    assert "0 misses" in again.stdout  # the embedding cache served the rerun
