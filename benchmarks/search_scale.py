"""Question → ranked passages at scale: latency, recall of the vector search, memory and disk.

    .venv/bin/python benchmarks/search_scale.py DATASET_DIR [--passages 1000000] [--work DIR]
        [--probes 8,16,24,32,64] [--bm25s]

DATASET_DIR is a QA set laid out like rtqa-dev (corpus.jsonl, questions.jsonl). Its articles give the
sentences of the synthetic passages and, embedded by the real model, the "topics" their vectors are
scattered around (each synthetic vector mixes two real passage vectors with Gaussian noise, so the
collection is clustered as real embeddings are, which decides how well an inverted-file index does).
The synthetic library is written through the project's own SqliteStore (one transaction per article, FTS5
kept by its triggers), then opened as the bot opens it: the vector index is built from SQLite in the
layout the size calls for (`[vectors]` in config.toml). A fresh process then opens it again and asks
the dataset's real questions through `Library.search`, reporting:

- p50/p99 of the whole search (question embedding, both searches, fusion, de-duplication, best
  sentence marked), and of its parts; and of the whole search with `search.sentence_choice`
  "words" (sentences chosen by their words, none embedded) beside the default "words+meaning";
- recall@10 of the vector search against exact search over the same vectors (for several
  `probe_lists`), and the exact flat search's own latency as the baseline (ratios);
- the keyword search from the library's postings lists against FTS5's bm25() (within
  `search.lexical_budget`, and with every word) as baselines;
- resident memory added by the library (vector index, keyword postings, SQLite) over the process with
  the model loaded, and the files' sizes on disk;
- with --bm25s (pip install bm25s PyStemmer), the same questions through a bm25s index of the same
  passages: build time, latency and memory.

A built work folder is reused by later runs with the same --work and --passages.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from benchmarks.figures import files_on_disk, percentile  # noqa: E402
from index.articles import ArticleDraft, content_hash  # noqa: E402
from index.config import Settings, load_settings  # noqa: E402
from index.embedding.embedder import Embedder  # noqa: E402
from index.eval.evaluate import load_corpus, load_questions, searchers  # noqa: E402
from index.ingest.chunking import split_sentences  # noqa: E402
from index.library import Library  # noqa: E402
from index.stores.embedded.directory import DATABASE_FILE, KEYWORDS_FILE, VECTORS_FILE  # noqa: E402
from index.stores.embedded.fts_reference import lexical_search  # noqa: E402
from index.stores.embedded.store import SqliteStore  # noqa: E402
from index.stores.embedded.vectors import VectorIndex  # noqa: E402
from tests.support.bot_runner import resident_mb as process_resident_mb  # noqa: E402

PASSAGES_PER_ARTICLE = 20
SENTENCES_PER_PASSAGE = (4, 8)
TOPIC_PASSAGES = 3000  # real passages embedded to give the synthetic vectors their clusters
NOISE = 0.03  # per-dimension standard deviation of the noise added to each synthetic vector
TOP = 10
EVERY_WORD_QUESTIONS = 40  # questions asked of FTS5 with every word (no lexical_budget)
WORDS_LINE = "search, whole, sentences chosen by words alone"


def resident_mb() -> float:
    return process_resident_mb(os.getpid())


def timed(values: list[float], started: float) -> None:
    values.append((time.perf_counter() - started) * 1000)


def line(name: str, values: list[float]) -> str:
    return f"{name:<34} p50 {statistics.median(values):8.2f} ms   p99 {percentile(values, 0.99):8.2f} ms"


def settings_for(work: Path, exact_limit: int | None) -> Settings:
    settings = load_settings(environ={}).replace("library", data_dir=work / "library")
    return settings if exact_limit is None else settings.replace("vectors", exact_limit=exact_limit)


# -- building ----------------------------------------------------------------------------------------
def sentence_pool(drafts: list[ArticleDraft]) -> list[str]:
    return [draft.text[s.start:s.end] for draft in drafts for s in split_sentences(draft.text)
            if 40 <= s.end - s.start <= 400]


def topic_vectors(drafts: list[ArticleDraft], embedder: Embedder, rng: np.random.Generator) -> np.ndarray:
    """Real passage vectors: six consecutive sentences of randomly chosen articles."""
    texts = []
    for index in rng.choice(len(drafts), TOPIC_PASSAGES):
        spans = split_sentences(drafts[index].text)
        first = int(rng.integers(0, max(1, len(spans) - 6)))
        chosen = spans[first:first + 6]
        if chosen:
            texts.append(drafts[index].text[chosen[0].start:chosen[-1].end])
    return embedder.embed(texts, show_progress=True)


def synthetic_vectors(topics: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    first, second = rng.integers(0, len(topics), count), rng.integers(0, len(topics), count)
    vectors = topics[first] + 0.5 * topics[second] + NOISE * rng.standard_normal((count, topics.shape[1]))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def joined(bodies: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """An article's text made of these passages, one paragraph each, and each passage's span in it."""
    spans, offset = [], 0
    for body in bodies:
        spans.append((offset, offset + len(body)))
        offset += len(body) + 2
    return "\n\n".join(bodies), spans


def build(work: Path, dataset: Path, passages: int, settings: Settings) -> None:
    """Write ``passages`` synthetic passages into a new library under ``work`` and open it once."""
    rng = np.random.default_rng(7)
    settings.library.data_dir.mkdir(parents=True, exist_ok=True)
    drafts = load_corpus(dataset / "corpus.jsonl")
    sentences = sentence_pool(drafts)
    embedder = Embedder(settings.embedding)
    topics = topic_vectors(drafts, embedder, rng)
    print(f"building {passages:,} passages from {len(sentences):,} sentences and {len(topics):,} topics",
          flush=True)
    store = SqliteStore(settings.library.data_dir / DATABASE_FILE)
    started = time.perf_counter()
    articles = (passages + PASSAGES_PER_ARTICLE - 1) // PASSAGES_PER_ARTICLE
    first_day = date(2021, 1, 1)
    for number in range(articles):
        count = min(PASSAGES_PER_ARTICLE, passages - number * PASSAGES_PER_ARTICLE)
        bodies = [" ".join(sentences[i] for i in rng.integers(0, len(sentences), rng.integers(*SENTENCES_PER_PASSAGE)))
                  for _ in range(count)]
        text, spans = joined(bodies)
        draft = ArticleDraft(title=f"Synthetic story {number}", text=text, url=f"https://example.org/s/{number}",
                             published=first_day + timedelta(days=int(rng.integers(0, 1000))), source="example.org")
        store.save_article(draft, identity=f"synthetic:{number}", digest=content_hash(text), added_by="benchmark",
                           spans=spans, bodies=bodies, vectors=synthetic_vectors(topics, count, rng))
        if number and number % 5000 == 0:
            done = number * PASSAGES_PER_ARTICLE
            print(f"  {done:,} passages stored, {done / (time.perf_counter() - started):,.0f}/s", flush=True)
    stored = time.perf_counter() - started
    store.close()
    print(f"stored {passages:,} passages in SQLite in {stored:.0f} s ({passages / stored:,.0f}/s)", flush=True)
    started = time.perf_counter()
    with Library(settings, embedder=embedder, reranker=None) as library:
        layout = library.vectors.layout
    print(f"vector index built from SQLite on opening: {layout}, {time.perf_counter() - started:.0f} s", flush=True)
    (work / "built.json").write_text(json.dumps({"passages": passages}))


# -- measuring (in a fresh process, so that resident memory means something) -------------------------
def exact_neighbours(store: SqliteStore, queries: np.ndarray, dimension: int) -> tuple[np.ndarray, list[float]]:
    """Exact top-10 passage ids per query over every stored vector, and the exact flat search's
    single-query latency over the same vectors (the baseline)."""
    import faiss

    ids = store.passage_ids()
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    for first in range(0, len(ids), 50_000):
        found, matrix, _ = store.vectors(ids[first:first + 50_000], dimension)
        flat.add_with_ids(matrix, found)
    faiss.cvar.distance_compute_blas_threshold = 20  # batched exact search through BLAS (FINDINGS)
    _, truth = flat.search(queries, TOP)
    latencies: list[float] = []
    for query in queries[:50]:
        started = time.perf_counter()
        flat.search(query.reshape(1, -1), 100)
        timed(latencies, started)
    return truth, latencies


class VectorSearch(Protocol):
    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]: ...


def recall_at_10(index: VectorSearch, queries: np.ndarray, truth: np.ndarray) -> tuple[float, list[float]]:
    """Recall@10 of the index's top-100 against ``truth``, and each search's latency (ms)."""
    found, latencies = 0, []
    for query, expected in zip(queries, truth):
        started = time.perf_counter()
        hits = index.search(query, 100)
        timed(latencies, started)
        found += len({pid for pid, _ in hits[:TOP]} & set(expected.tolist()))
    return found / (TOP * len(queries)), latencies


def bm25s_side(store: SqliteStore, questions: list[str]) -> None:
    try:
        import bm25s
        import Stemmer
    except ImportError:
        print("bm25s: not installed (pip install bm25s PyStemmer); skipped")
        return
    before = resident_mb()
    started = time.perf_counter()
    stemmer = Stemmer.Stemmer("english")
    ids = store.passage_ids()
    corpus: list[str] = []
    for first in range(0, len(ids), 50_000):
        corpus.extend(store.passage_bodies(ids[first:first + 50_000]).values())
    tokens = bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False)
    del corpus
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    del tokens
    gc.collect()
    built = time.perf_counter() - started
    latencies: list[float] = []
    for question in questions:
        started = time.perf_counter()
        query = bm25s.tokenize([question], stopwords="en", stemmer=stemmer, show_progress=False)
        retriever.retrieve(query, k=100, show_progress=False, n_threads=1)
        timed(latencies, started)
    print(f"bm25s {bm25s.__version__}: built in {built:.0f} s, resident +{resident_mb() - before:,.0f} MB")
    print(line("lexical top-100, bm25s", latencies))


def measure(dataset: Path, settings: Settings, probes: list[int], with_bm25s: bool) -> None:
    questions = [q["question"] for q in load_questions(dataset / "questions.jsonl")]
    embedder = Embedder(settings.embedding)
    keyword_line = "lexical top-100, postings lists (the library's)"
    parts: dict[str, list[float]] = {name: [] for name in (
        "question embedding", "vector search top-100", keyword_line, "lexical top-100, FTS5 within budget",
        "search, no sentence marked", "search, whole (as the bot asks)", WORDS_LINE)}
    vectors = []
    for question in questions:
        started = time.perf_counter()
        vectors.append(embedder.embed_one(question))
        timed(parts["question embedding"], started)
    embedder.embed(questions[:64])  # the model's own working memory, as marking sentences needs it
    base = resident_mb()
    started = time.perf_counter()
    library = Library(settings, embedder=embedder, reranker=None)
    opened = time.perf_counter() - started
    resident_open = resident_mb() - base
    print(f"{len(library.vectors):,} passages; vector index {library.vectors.layout}; opened in {opened:.1f} s"
          f" (building a missing {KEYWORDS_FILE} included)")
    for question, vector in zip(questions, vectors):
        started = time.perf_counter()
        library.vectors.search(vector, settings.search.candidates)
        timed(parts["vector search top-100"], started)
        started = time.perf_counter()
        library.backend.keywords.lexical_search(question, settings.search.candidates)
        timed(parts[keyword_line], started)
        started = time.perf_counter()
        lexical_search(library.store, question, settings.search.candidates, settings.search.lexical_budget)
        timed(parts["lexical top-100, FTS5 within budget"], started)
    resident = resident_mb() - base  # FTS5's budgeted search included: the baseline's pages count too
    every_word = "lexical top-100, FTS5, every word"
    parts[every_word] = []
    for question in questions[:EVERY_WORD_QUESTIONS]:  # the baseline: slow in a large collection
        started = time.perf_counter()
        lexical_search(library.store, question, settings.search.candidates)
        timed(parts[every_word], started)
    by_words = searchers(library, {"words": settings.replace("search", sentence_choice="words")})["words"]
    for question in questions:
        started = time.perf_counter()
        library.search(question, mark=0)
        timed(parts["search, no sentence marked"], started)
        started = time.perf_counter()
        library.search(question)
        timed(parts["search, whole (as the bot asks)"], started)
        started = time.perf_counter()
        by_words.search(question)
        timed(parts[WORDS_LINE], started)
    print(f"questions: {len(questions)} (each timed once per line; the first pass over the index is cold)")
    for name, values in parts.items():
        print(line(name, values))
    ours = statistics.median(parts[keyword_line])
    print("keyword search, postings lists against FTS5 (p50): "
          f"×{statistics.median(parts['lexical top-100, FTS5 within budget']) / ours:.1f} faster than FTS5 within "
          f"budget, ×{statistics.median(parts[every_word]) / ours:.0f} faster than FTS5 with every word")
    print(f"resident memory of the library (vector index, keyword postings, SQLite): {resident_open:,.0f} MB once "
          f"opened, {resident:,.0f} MB after every question's searches (FTS5's included); "
          f"whole process at the end {resident_mb():,.0f} MB (model loaded {base:,.0f} MB)")
    print("on disk: " + files_on_disk(settings.library.data_dir))

    queries = np.vstack(vectors)
    truth, flat_latencies = exact_neighbours(library.store, queries, embedder.dimension)
    print(line("exact flat search top-100 (baseline)", flat_latencies))
    flat_p50 = statistics.median(flat_latencies)
    if library.vectors.exact:
        print("the library searches exactly at this size: recall@10 is 1.0")
    for probe in probes:
        index = VectorIndex.load(settings.library.data_dir / VECTORS_FILE, embedder.dimension,
                                 replace(settings.vectors, probe_lists=probe))
        if index is None or index.exact:
            break
        recall, latencies = recall_at_10(index, queries, truth)
        chosen = " (configured)" if probe == settings.vectors.probe_lists else ""
        print(f"probe_lists {probe:>3}{chosen}: recall@10 {recall:.3f}, "
              f"{line('', latencies).strip()}, ×{flat_p50 / statistics.median(latencies):,.0f} faster than exact")
        del index
    if with_bm25s:
        bm25s_side(library.store, questions)
    library.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, help="folder for the synthetic library (default: a temporary one)")
    parser.add_argument("--probes", default="8,16,24,32,64")
    parser.add_argument("--exact-limit", type=int, help="vectors.exact_limit (default: config.toml's)")
    parser.add_argument("--bm25s", action="store_true", help="also measure bm25s beside FTS5")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    probes = [int(p) for p in args.probes.split(",") if p.strip()]
    if args.measure_only:
        measure(args.dataset, settings_for(args.work, args.exact_limit), probes, args.bm25s)
        return 0
    with tempfile.TemporaryDirectory(prefix="search-scale-") as scratch:
        work = args.work or Path(scratch)
        marker = work / "built.json"
        if not (marker.exists() and json.loads(marker.read_text())["passages"] == args.passages):
            if (work / "library").exists():
                sys.exit(f"{work} holds another size; name a new --work folder")
            build(work, args.dataset, args.passages, settings_for(work, args.exact_limit))
        command = [sys.executable, __file__, str(args.dataset), "--work", str(work), "--probes", args.probes,
                   "--measure-only"] + (["--bm25s"] if args.bm25s else []) \
            + ([f"--exact-limit={args.exact_limit}"] if args.exact_limit is not None else [])
        return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
