"""python -m index mine-negatives SQUAD_DIR OUT: the project's own hybrid search run over SQuAD's
training paragraphs, for the rerankers' hard negatives.

Every training paragraph becomes an article of a scratch library (its SQuAD title, a link of its own so
that paragraphs of one article do not replace each other), built and searched with the configured
settings, as a reader's question would be: dense and keyword candidates fused with RRF. For every
training question the file records the paragraphs of the best passages other than the question's own,
best first; ``train_reranker.read_mined`` reads it back. Whether one of them holds the answer is
decided at training time, so one file serves both ``train-reranker --negatives`` and
``train-sentence-scorer --negatives``. Mining needs the whole project (the model, the stores);
training from the file needs only torch and transformers, so it can run on a machine that has nothing
else (docs/operations.md, "Training the rerankers on a GPU").
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from index.articles import ArticleDraft
from index.config import Settings
from index.embedding.cache import CachedEmbedder
from index.embedding.embedder import Embedder
from index.library import Library
from index.search.hybrid import HybridSearcher
from index.search.train_reranker import load_split

SPLIT = "train-v1.0"
LINK = "https://squad.invalid/paragraph/{}"  # .invalid: a reserved name, never fetched
QUERY_BATCH = 256


class PrecomputedQueries:
    """An embedder whose question vectors were embedded beforehand, in batches (far faster than one
    at a time); anything else goes to the wrapped embedder."""

    def __init__(self, embedder: CachedEmbedder, vectors: dict[str, np.ndarray]) -> None:
        self.embedder = embedder
        self.vectors = vectors

    def __getattr__(self, name: str):
        return getattr(self.embedder, name)

    def embed_query(self, text: str) -> np.ndarray:
        vector = self.vectors.get(text)
        return vector if vector is not None else self.embedder.embed([text], kind="query")[0]


def paragraph_id(link: str | None) -> int | None:
    prefix = LINK.format("")
    return int(link[len(prefix):]) if link and link.startswith(prefix) else None


def mine(settings: Settings, data_dir: Path, out: Path, cache_dir: Path, per_question: int,
         limit: int = 0) -> dict:
    """Write the mined file; returns counts and timings."""
    started = time.monotonic()
    passages, questions = load_split(data_dir, SPLIT)
    questions = questions[:limit or None]
    embedder = CachedEmbedder(Embedder(settings.embedding), cache_dir / "embeddings.sqlite3")
    drafts = [ArticleDraft(title=p.title, text=p.text, url=LINK.format(p.id)) for p in passages.values()]
    texts = list(dict.fromkeys(q.question for q in questions))
    with tempfile.TemporaryDirectory(prefix="news-mine-") as tmp:
        # every paragraph is kept, however short: a SQuAD paragraph is a whole text, not a stub
        scratch = settings.replace("library", store="embedded", data_dir=Path(tmp), min_article_words=0)
        library = Library(scratch, embedder=embedder, reranker=False)  # type: ignore[arg-type]
        with library:
            added = sum(result.ok for result in library.add_drafts(drafts, added_by="mine-negatives"))
            built = time.monotonic()
            vectors = {}
            for first in range(0, len(texts), QUERY_BATCH):
                batch = texts[first:first + QUERY_BATCH]
                vectors.update(zip(batch, embedder.embed(batch, kind="query")))
            searcher = HybridSearcher(library.store, library.vectors, library.backend.keywords,
                                      PrecomputedQueries(embedder, vectors),  # type: ignore[arg-type]
                                      settings.search)
            out.parent.mkdir(parents=True, exist_ok=True)
            temporary = out.with_name(out.name + ".tmp")
            with gzip.open(temporary, "wt", encoding="utf-8") as handle:
                for number, q in enumerate(questions):
                    hits = searcher.search(q.question, k=per_question, limit=2 * per_question, mark=0).hits
                    found = [pid for pid in dict.fromkeys(paragraph_id(hit.article.url) for hit in hits)
                             if pid is not None and pid != q.passage_id][:per_question]
                    handle.write(json.dumps({"question": number, "text": q.question, "paragraphs": found}) + "\n")
                    if (number + 1) % 5000 == 0:
                        print(f"{number + 1}/{len(questions)} questions", file=sys.stderr, flush=True)
            temporary.replace(out)
    embedder.close()
    return {"paragraphs": len(passages), "articles_added": added, "questions": len(questions),
            "build_minutes": round((built - started) / 60, 1),
            "search_minutes": round((time.monotonic() - built) / 60, 1)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", type=Path, help="folder with SQuAD's *.passages/questions.jsonl.gz")
    parser.add_argument("out", type=Path, help="the file to write (.jsonl.gz)")
    parser.add_argument("--per-question", type=int, default=12, help="paragraphs kept per question")
    parser.add_argument("--limit", type=int, default=0, help="mine the first N questions only (0: all)")
    parser.add_argument("--cache-dir", type=Path, help="embedding cache (default ~/.cache/news-answers-bot)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """The mine-negatives command."""
    for name in (f"{SPLIT}.passages.jsonl.gz", f"{SPLIT}.questions.jsonl.gz"):
        if not (args.data_dir / name).is_file():
            print(f"{args.data_dir / name} not found", file=sys.stderr)
            return 2
    if args.per_question < 1:
        print("--per-question must be at least 1", file=sys.stderr)
        return 2
    cache_dir = args.cache_dir or Path.home() / ".cache" / "news-answers-bot"
    summary = mine(settings, args.data_dir, args.out, cache_dir, args.per_question, max(0, args.limit))
    print(f"wrote {args.out}: " + json.dumps(summary), file=sys.stderr)
    return 0
