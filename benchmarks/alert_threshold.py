"""Topic alerts' threshold on a QA set: each question is taken as a reader's topic, and an alert on an
article is right when the article holds the question's answer (index/eval/evaluate.py's rule).

    .venv/bin/python benchmarks/alert_threshold.py DATASET_DIR [--thresholds 0.3 0.35 ...] [--candidates 5 10 20]

The library of corpus.jsonl is built once (embeddings cached as `python -m index eval` caches them). For
each question, its topic ranking is made as the bot makes it (index/activity/alerts.py: the hybrid
ranking's best ``--candidates`` passages, as of the question's date), and every article with a passage
there whose cosine reaches the threshold counts as alerted. Printed per number of candidates and threshold,
for all questions and for the dataset's ``specific`` ones: alerts, precision (alerts on an article holding
the answer), recall (of the (question, article holding the answer) pairs), and the share of questions with
at least one right alert. The whole library is searched at once, where the
bot searches it as each article arrives (earlier articles then compete less), so recall is a lower bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

DEFAULT_THRESHOLDS = [0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a folder with corpus.jsonl and questions.jsonl")
    parser.add_argument("--thresholds", type=float, nargs="+", default=DEFAULT_THRESHOLDS)
    parser.add_argument("--candidates", type=int, nargs="+", default=None, help="default: alerts.candidates")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "news-answers-bot")
    args = parser.parse_args()

    from index.activity.alerts import ranked_for_topic
    from index.articles import parse_date
    from index.config import load_settings
    from index.embedding.cache import CachedEmbedder
    from index.embedding.embedder import Embedder
    from index.eval.answers import normalize_answer_text
    from index.eval.evaluate import build_library, load_corpus, load_questions

    corpus, questions_path = args.dataset / "corpus.jsonl", args.dataset / "questions.jsonl"
    if not corpus.exists() or not questions_path.exists():
        print(f"error: {args.dataset} must hold corpus.jsonl and questions.jsonl", file=sys.stderr)
        return 2
    settings = load_settings(environ={})
    candidate_counts = sorted(args.candidates or [settings.alerts.candidates])
    alerts = settings.replace("alerts", candidates=candidate_counts[-1]).alerts
    drafts, questions = load_corpus(corpus), load_questions(questions_path)
    embedder = CachedEmbedder(Embedder(settings.embedding), args.cache_dir / "embeddings.sqlite3")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alert-threshold-") as tmp:
        library, statuses, build_seconds = build_library(drafts, settings, embedder, Path(tmp) / "library", None)
        with library:
            texts = {article.id: f" {normalize_answer_text(article.text)} "
                     for article in library.list_articles(0, library.count_articles())}
            # Per question: each ranked passage's (article, cosine) in rank order; the articles holding the answer;
            # whether the question is specific.
            scored: list[tuple[list[tuple[int, float]], set[int], bool]] = []
            for question in questions:
                answers = [f" {text} " for text in map(normalize_answer_text, question["answer_texts"]) if text]
                holding = {aid for aid, text in texts.items() if any(answer in text for answer in answers)}
                ranking = ranked_for_topic(library, question["question"], alerts, now=parse_date(question.get("date")))
                ranked = [(hit.article.id, hit.dense_score) for hit in ranking.hits]
                scored.append((ranked, holding, bool(question.get("specific"))))
    embedder.close()
    print(f"dataset {args.dataset}: {len(drafts)} articles ({statuses}), {len(questions)} questions as topics;"
          f" candidates {alerts.candidates}; build {build_seconds:.0f} s, all {time.perf_counter() - started:.0f} s")
    for name, subset in (("all", scored), ("specific", [row for row in scored if row[2]])):
        pairs = sum(len(holding) for _, holding, _ in subset)
        print(f"\n{name}: {len(subset)} questions, {pairs} (question, article holding the answer) pairs")
        print(f"{'candidates':>10} {'threshold':>9} {'alerts':>7} {'precision':>9} {'recall':>7}"
              f" {'questions right':>15}")
        for count in candidate_counts:
            for threshold in args.thresholds:
                fired = right = questions_right = 0
                for ranked, holding, _ in subset:
                    alerted = {article for article, score in ranked[:count] if score >= threshold}
                    fired += len(alerted)
                    right += len(alerted & holding)
                    questions_right += bool(alerted & holding)
                precision = right / fired if fired else float("nan")
                print(f"{count:>10d} {threshold:>9.2f} {fired:>7d} {precision:>9.3f}"
                      f" {right / pairs if pairs else float('nan'):>7.3f} {questions_right / len(subset):>15.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
