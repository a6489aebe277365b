"""pgvector indexes at scale: build time, size, recall@10 against exact search and latency per index.

    .venv/bin/python benchmarks/pgvector_graphs.py DATASET_DIR --work DIR
        [--graphs hnsw:vector:16:64,hnsw:halfvec:32:128,ivfflat:vector:2000] [--ef 100,200,400]
        [--probes 10,20,40] [--index-memory 6GB] [--workers 1] [--iterative]

``--work`` is a folder that store_scale.py filled (its synthetic embedded library and the PostgreSQL copy
in ``WORK/pg``). The exact top 10 of each question of the dataset (embedded by the real model) is found
by a flat FAISS search over the embedded library's vectors, which are the ones copied into PostgreSQL.

Each index in ``--graphs`` is hnsw:STORAGE:M:EF_CONSTRUCTION or ivfflat:STORAGE:LISTS, STORAGE "vector"
(4-byte floats, the column as the library stores it) or "halfvec" (2-byte floats: an index over
``vector::halfvec(N)``, the column unchanged). It is built in one transaction that first drops the
library's own index, measured, then rolled back, so the database is left as it was. The library's own
index (hnsw:vector with the database's m and ef_construction) is measured as it stands, without a
rebuild. Each index is searched once unmeasured at the largest setting (its pages read into memory),
then measured at each.
Searches run the statement PgVectorIndex runs (top 100, ``hnsw.ef_search`` or ``ivfflat.probes`` set
per transaction), on one connection; ``--iterative`` adds a pass over the library's index with
``hnsw.iterative_scan = relaxed_order`` (pgvector 0.8).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from benchmarks.figures import percentile  # noqa: E402
from benchmarks.search_scale import exact_neighbours, settings_for  # noqa: E402
from index.embedding.embedder import Embedder  # noqa: E402
from index.eval.evaluate import load_questions  # noqa: E402
from index.stores.embedded.store import SqliteStore  # noqa: E402
from index.stores.postgres.vector_layout import VECTOR_INDEX  # noqa: E402

TOP = 10
FETCH = 100


@dataclass(frozen=True)
class Graph:
    """One vector index: hnsw (m, ef_construction) or ivfflat (lists), over vector or halfvec storage."""

    method: str
    storage: str
    options: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> "Graph":
        method, storage, *options = text.split(":")
        if method not in ("hnsw", "ivfflat") or storage not in ("vector", "halfvec"):
            raise SystemExit(f"{text}: hnsw:STORAGE:M:EF_CONSTRUCTION or ivfflat:STORAGE:LISTS, "
                             "STORAGE vector or halfvec")
        if len(options) != (2 if method == "hnsw" else 1):
            raise SystemExit(f"{text}: hnsw takes M:EF_CONSTRUCTION, ivfflat LISTS")
        return cls(method, storage, tuple(int(o) for o in options))

    @property
    def with_clause(self) -> str:
        if self.method == "hnsw":
            return f"m = {self.options[0]}, ef_construction = {self.options[1]}"
        return f"lists = {self.options[0]}"

    @property
    def knob(self) -> str:
        """The setting a search turns: how much of the index it reads."""
        return "hnsw.ef_search" if self.method == "hnsw" else "ivfflat.probes"

    def __str__(self) -> str:
        return f"{self.method} {self.storage} {self.with_clause}"


def search_sql(storage: str, dimension: int) -> str:
    if storage == "vector":
        return "SELECT id FROM passages WHERE vector IS NOT NULL ORDER BY vector <=> %(q)s::vector LIMIT %(k)s"
    return (f"SELECT id FROM passages WHERE vector IS NOT NULL ORDER BY vector::halfvec({dimension}) <=> "
            f"%(q)s::halfvec({dimension}) LIMIT %(k)s")


def measure(connection, graph: Graph, dimension: int, queries: np.ndarray, truth: np.ndarray,
            setting: int, iterative: bool = False) -> tuple[float, list[float], bool]:
    """Recall@10 of the top 100, each search's latency (ms), and whether the index was used."""
    sql = search_sql(graph.storage, dimension)
    plan = "\n".join(r[0] for r in connection.execute(
        "EXPLAIN " + sql, {"q": queries[0].tolist(), "k": FETCH}).fetchall())
    found, latencies = 0, []
    for query, expected in zip(queries, truth):
        started = time.perf_counter()
        with connection.transaction():
            connection.execute("SELECT set_config(%s, %s, true)", (graph.knob, str(setting)))
            if iterative:
                connection.execute("SELECT set_config(%s, 'relaxed_order', true)",
                                   (f"{graph.method}.iterative_scan",))
            ids = [r[0] for r in connection.execute(sql, {"q": query.tolist(), "k": FETCH}).fetchall()]
        latencies.append((time.perf_counter() - started) * 1000)
        found += len(set(ids[:TOP]) & set(expected.tolist()))
    return found / (TOP * len(queries)), latencies, "Index Scan" in plan


def measured(connection, graph: Graph, dimension: int, queries: np.ndarray, truth: np.ndarray, settings: list[int],
             label: str, iterative: bool = False) -> None:
    """One unmeasured pass at the largest setting (the index read into memory), then each setting."""
    measure(connection, graph, dimension, queries, truth, max(settings), iterative)
    for setting in settings:
        recall, latencies, used_index = measure(connection, graph, dimension, queries, truth, setting, iterative)
        print(f"{label:<52} {graph.knob} {setting:>4}: recall@10 {recall:.3f}   p50 "
              f"{statistics.median(latencies):6.1f} ms   p99 {percentile(latencies, 0.99):6.1f} ms"
              f"{'' if used_index else '   (NO INDEX SCAN)'}", flush=True)


def library_index(connection) -> Graph:
    """The library's own index, as its method, storage and options describe it."""
    method, options, definition = connection.execute(
        "SELECT am.amname, c.reloptions, pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
        " WHERE c.oid = to_regclass(%s)", (VECTOR_INDEX,)).fetchone()
    given = dict(o.split("=") for o in options or [])
    storage = "halfvec" if "halfvec" in definition else "vector"
    if method == "hnsw":
        return Graph(method, storage, (int(given.get("m", 16)), int(given.get("ef_construction", 64))))
    return Graph(method, storage, (int(given.get("lists", 100)),))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--work", type=Path, required=True, help="a folder store_scale.py filled")
    parser.add_argument("--graphs", default="hnsw:vector:16:64,hnsw:halfvec:32:128,ivfflat:vector:2000")
    parser.add_argument("--ef", default="100,200,400", help="hnsw.ef_search values to measure")
    parser.add_argument("--probes", default="10,20,40", help="ivfflat.probes values to measure")
    parser.add_argument("--index-memory", default="6GB", help="maintenance_work_mem for each build")
    parser.add_argument("--workers", type=int, default=1, help="max_parallel_maintenance_workers for each build")
    parser.add_argument("--iterative", action="store_true", help="also measure iterative index scans")
    args = parser.parse_args()
    import psycopg
    from pgvector.psycopg import register_vector

    from tests.support.postgres_server import _start_server

    settings = settings_for(args.work, None)
    embedder = Embedder(settings.embedding)
    dimension = embedder.dimension
    questions = [q["question"] for q in load_questions(args.dataset / "questions.jsonl")]
    queries = embedder.embed(questions)
    store = SqliteStore(settings.library.data_dir / "library.sqlite3")
    try:
        truth, _ = exact_neighbours(store, queries, dimension)
    finally:
        store.close()
    efs = [int(e) for e in args.ef.split(",") if e.strip()]
    probes = [int(p) for p in args.probes.split(",") if p.strip()]
    server = _start_server(args.work / "pg", keep=True, durable=True)
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as connection:
            register_vector(connection)
            version = connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            own_graph = library_index(connection)
            rows = connection.execute("SELECT count(*) FROM passages WHERE vector IS NOT NULL").fetchone()[0]
            size = connection.execute("SELECT pg_relation_size(%s::regclass)", (VECTOR_INDEX,)).fetchone()[0]
            print(f"pgvector {version}; {rows:,} vectors of dimension {dimension}; {len(questions)} questions; "
                  f"the library's index: {own_graph}, {size / 2**20:,.0f} MB", flush=True)
            for text in args.graphs.split(","):
                graph = Graph.parse(text.strip())
                knobs = efs if graph.method == "hnsw" else probes
                if graph == own_graph:
                    measured(connection, graph, dimension, queries, truth, knobs, f"{graph} (the library's)")
                    if args.iterative:
                        measured(connection, graph, dimension, queries, truth, knobs, f"{graph}, iterative scan",
                                 iterative=True)
                    continue
                connection.execute("BEGIN")
                try:
                    connection.execute("SELECT set_config('maintenance_work_mem', %s, true)", (args.index_memory,))
                    connection.execute("SELECT set_config('max_parallel_maintenance_workers', %s, true)",
                                       (str(args.workers),))
                    connection.execute(f"DROP INDEX {VECTOR_INDEX}")
                    column = "vector" if graph.storage == "vector" else f"(vector::halfvec({dimension}))"
                    started = time.perf_counter()
                    connection.execute(f"CREATE INDEX newsbot_probe_index ON passages USING {graph.method} "
                                       f"({column} {graph.storage}_cosine_ops) WITH ({graph.with_clause})")
                    built = time.perf_counter() - started
                    size = connection.execute("SELECT pg_relation_size('newsbot_probe_index'::regclass)").fetchone()[0]
                    print(f"{graph}: built in {built:,.0f} s, {size / 2**20:,.0f} MB", flush=True)
                    measured(connection, graph, dimension, queries, truth, knobs, str(graph))
                finally:
                    connection.execute("ROLLBACK")
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
