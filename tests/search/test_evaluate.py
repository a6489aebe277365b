"""The evaluation command on a tiny data set written here (the real one is not needed by tests): recall,
the answer in the lead sentence, question date bounds, refusals, and the paired bootstrap between variants."""

from __future__ import annotations

import io
import json
from pathlib import Path

from index.eval.bootstrap import Difference, paired_difference, print_differences
from index.eval.answers import contains_answer, normalize_answer_text
from tests.support.helpers import run_cli

ARTICLES = [
    ("Ferry strike ends", "2024-02-01", "The ferry workers' strike ended on Thursday after the union accepted a pay "
     "rise of six percent. Crossings to the islands restart on Saturday morning, the operator Blue Sound Lines said."),
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
EARLIER = {"id": "q3", "date": "2023-01-11", "question": "How many schools did the heavy snow close?",
           "answer_texts": ["forty"], "specific": False}


def _write_dataset(folder: Path, questions: list[dict]) -> Path:
    folder.mkdir()
    with open(folder / "corpus.jsonl", "w") as corpus:
        for number, (title, published, text) in enumerate(ARTICLES):
            corpus.write(json.dumps({"id": f"a{number}", "url": f"https://news.test/{number}", "title": title,
                                     "text": text, "published": published, "source_domain": "news.test"}) + "\n")
    with open(folder / "questions.jsonl", "w") as handle:
        handle.writelines(json.dumps(q) + "\n" for q in questions)
    return folder


def _table(text: str) -> dict[str, list[str]]:
    """The metric rows of one printed table: the first word of each line, and the other words."""
    return {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}


def test_answer_matching_follows_the_dataset_rule() -> None:
    assert normalize_answer_text("  Kestrel-Bridge’s  ") == "kestrel bridge s"
    assert contains_answer("It is called the Kestrel Bridge.", ["kestrel bridge"])
    assert not contains_answer("Kestrel Bridges everywhere", ["Kestrel Bridge"])


def test_eval_command_prints_recall_and_refusals(tmp_path: Path, trained_reranker: Path) -> None:
    dataset = _write_dataset(tmp_path / "set", QUESTIONS)
    result = run_cli("eval", str(dataset), "--cache-dir", str(tmp_path / "cache"), "--refusals",
                     "--set", "library.min_article_words=10", "--set", f"reranker.model={trained_reranker}",
                     "--set", "reranker.min_probability=0.0", "--variant", "plain:reranker.candidates=0",
                     data_dir=tmp_path / "unused")
    assert result.returncode == 0, result.stderr
    reranked, _, plain = result.stdout.partition("== plain")
    plain, _, comparison = plain.partition("paired bootstrap")
    for table in (reranked, plain):  # one table per configuration, each with its refusal sweep
        lines = _table(table)
        assert lines["R@1"] == ["1.000", "1.000"]
        assert "refusals:" in table and "<- current" in table
        # each question's lead sentence (the sentence a reply opens with) names its answer
        assert "answer in lead sentence" in table
        assert [line for line in table.splitlines() if line.startswith("answer in lead sentence")][0].split()[-2:] \
            == ["1.000", "1.000"]
    # the variant against the first, question by question, for all questions and the specific ones
    assert result.stdout.count("paired bootstrap against default") == 2
    assert "plain: R@1 +0.000 [+0.000, +0.000]; R@3 +0.000 [+0.000, +0.000]; answer in lead" in comparison
    assert "min_probability" in reranked and "min_dense_score" in plain
    bad = run_cli("eval", str(dataset), "--variant", "x:chunking.max_tokens=64", data_dir=tmp_path / "unused")
    assert bad.returncode == 2 and "only search.*, reranker.* and sentences.*" in bad.stderr
    again = run_cli("eval", str(dataset), "--cache-dir", str(tmp_path / "cache"),
                    "--set", "library.min_article_words=10", data_dir=tmp_path / "unused")
    assert "0 misses" in again.stdout  # the embedding cache served the rerun


def test_eval_asks_only_the_questions_dated_within_the_bounds(tmp_path: Path) -> None:
    dataset = _write_dataset(tmp_path / "set", [EARLIER, *QUESTIONS])
    common = ("--cache-dir", str(tmp_path / "cache"), "--set", "library.min_article_words=10")
    early = run_cli("eval", str(dataset), *common, "--questions-to", "2023-12-31", data_dir=tmp_path / "unused")
    assert early.returncode == 0, early.stderr
    assert "3 articles" in early.stdout and "1 questions dated ... to 2023-12-31" in early.stdout
    assert _table(early.stdout)["questions"] == ["1", "0"]  # the snow question, which is not `specific`
    late = run_cli("eval", str(dataset), *common, "--questions-from", "2024-01-01", "--questions-to", "2024-02-05",
                   data_dir=tmp_path / "unused")
    assert late.returncode == 0, late.stderr
    assert "2 questions dated 2024-01-01 to 2024-02-05" in late.stdout
    assert _table(late.stdout)["questions"] == ["2", "2"]
    bad = run_cli("eval", str(dataset), "--questions-from", "last week", data_dir=tmp_path / "unused")
    assert bad.returncode == 2 and "--questions-from 'last week': expected a date such as 2023-02-01" in bad.stderr
    assert "Traceback" not in bad.stderr
    none = run_cli("eval", str(dataset), "--questions-from", "2025-01-01", data_dir=tmp_path / "unused")
    assert none.returncode == 2 and "no question" in none.stderr and "Traceback" not in none.stderr


def test_paired_bootstrap_interval() -> None:
    assert paired_difference([0, 1, 0, 1], [0, 1, 0, 1]) == Difference(0.0, 0.0, 0.0)
    assert paired_difference([0.0] * 20, [1.0] * 20) == Difference(1.0, 1.0, 1.0)
    mixed = paired_difference([0.0] * 40, [1.0] * 10 + [0.0] * 30)
    assert mixed.mean == 0.25 and 0.0 < mixed.low < 0.25 < mixed.high < 0.5
    assert paired_difference([0.0] * 40, [1.0] * 10 + [0.0] * 30) == mixed  # seeded: the same interval again
    try:
        paired_difference([0.0], [0.0, 1.0])
    except ValueError as exc:
        assert "same questions" in str(exc)
    else:
        raise AssertionError("unpaired lists were compared")


def test_bootstrap_prints_each_variant_against_the_first(capsys) -> None:
    runs = {"base": [0.0] * 30, "better": [1.0] * 30, "same": [0.0] * 30}
    print_differences(runs, {"R@1": lambda value: value})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("paired bootstrap against base")
    assert out[1:] == ["  better: R@1 +1.000 [+1.000, +1.000]", "  same: R@1 +0.000 [+0.000, +0.000]"]


def test_refusal_sweep_adds_the_lead_sentence_probability_when_a_scorer_ran() -> None:
    from index.eval.evaluate import QuestionResult, print_refusals

    def sweep(answerable: list[QuestionResult], unanswerable: list[QuestionResult]) -> str:
        out = io.StringIO()
        print_refusals(answerable, unanswerable, Searcher(), out)
        return out.getvalue()

    class Searcher:  # the two attributes print_refusals reads
        refusal_threshold = None

        class settings:
            min_dense_score = 0.3

    def result(top_dense: float, lead: float | None) -> QuestionResult:
        return QuestionResult("q", True, 1, 1, True, True, True, 1.0, top_dense, None, lead)

    answerable = [result(0.6, 0.9), result(0.5, 0.7)]
    unanswerable = [result(0.25, 0.005), result(0.45, 0.3)]
    cosine, _, lead = sweep(answerable, unanswerable).partition("lead probability")
    assert "0.3      1.000    0.500            0.000  <- current" in cosine
    # below 0.5, both unanswerable questions and neither answerable one are refused; below 0.8, one answerable too
    assert "0.5      1.000    1.000            0.000" in lead and "0.8      0.667    1.000            0.500" in lead
    # an answer without a lead counts as probability 0
    assert "0.01      1.000    1.000            0.000" in sweep(answerable, [result(0.25, None)])
    assert "lead probability" not in sweep([result(0.6, None)], [result(0.25, None)])  # no scorer ran
