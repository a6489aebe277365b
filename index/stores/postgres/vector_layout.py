"""How ``passages.vector`` is indexed in PostgreSQL (``postgres.vector_index``, the one place it is chosen):

- "hnsw": pgvector's HNSW graph (``m``, ``ef_construction``), which grows with the table and never needs
  rebuilding; a search walks it with ``hnsw.ef_search`` candidates.
- "ivfflat": pgvector's inverted lists, as many as pgvector advises (``lists_for``: a list per 1,000
  passages up to 1M, sqrt(passages) beyond), over half-precision copies of the vectors (``halfvec``:
  half the index to read, the column itself unchanged); a search reads the ``ivfflat.probes`` lists
  nearest the question, and scores the passages it returns with their full vectors. The lists are
  fixed when the index is built, so it is rebuilt with twice as many once the library calls for them
  (PgVectorIndex.fit_layout, by the writer: at 2,000, 4,000 ... passages, then fourfold growth past 1M).
  Training the lists takes server memory for a moment (``build_memory``: about 250 MB at 1M passages),
  which a build is given whatever maintenance_work_mem says.

At 1M passages the lists find more of the exact nearest passages in less time than the graph
(docs/benchmarks.md, benchmarks/pgvector_graphs.py); the graph needs no rebuilds.

The index keeps its first name, ``passages_vector_hnsw``, whichever method builds it, so that programs of
every version find it. A rebuild makes the new index under another name and swaps it in, in one
transaction: searches go on reading the old one meanwhile (CREATE INDEX blocks writes, not reads), and an
interrupted rebuild leaves the old one as it was."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from index.errors import ConfigError

if TYPE_CHECKING:
    from index.config import PostgresSettings

log = logging.getLogger(__name__)
VECTOR_INDEX = "passages_vector_hnsw"
REBUILT_INDEX = "passages_vector_rebuilt"
# The IVFFlat index is rebuilt once the library calls for this many times its lists.
LIST_GROWTH = 2
# Below this many passages (by the planner's estimate) they are counted exactly: a moment at that size.
EXACT_COUNT_BELOW = 200_000
# pgvector trains IVFFlat's lists by k-means on 50 sampled vectors per list (10,000 at least), holding
# each sample (2 bytes a dimension as halfvec) and a bound per sample and list (4 bytes) in
# maintenance_work_mem, which it checks first.
SAMPLES_PER_LIST = 50
MIN_SAMPLES = 10_000
PASSAGES_PER_LIST = 1_000
SQUARE_ROOT_FROM = 1_000_000
# halfvec, which the IVFFlat index is over, came with pgvector 0.7.0.
HALFVEC_SINCE = (0, 7)


def lists_for(rows: int) -> int:
    """IVFFlat lists for ``rows`` vectors, as pgvector's documentation advises."""
    if rows <= SQUARE_ROOT_FROM:
        return max(1, rows // PASSAGES_PER_LIST)
    return int(math.sqrt(rows))


@dataclass(frozen=True)
class VectorLayout:
    """The index postgres.vector_index asks for."""

    method: str = "hnsw"
    m: int = 16
    ef_construction: int = 64

    @classmethod
    def of(cls, settings: PostgresSettings) -> VectorLayout:
        return cls(settings.vector_index, settings.hnsw_m, settings.hnsw_ef_construction)

    def indexed(self, dimension: int) -> str:
        """What the index is over, with its operator class."""
        if self.method == "hnsw":
            return "vector vector_cosine_ops"
        return f"(vector::halfvec({int(dimension)})) halfvec_cosine_ops"

    def search_sql(self, dimension: int) -> str:
        """The ``k`` passages nearest ``q`` (a vector) as (id, cosine similarity), by the index."""
        order = "vector <=> %(q)s" if self.method == "hnsw" else \
            f"vector::halfvec({int(dimension)}) <=> %(q)s::halfvec({int(dimension)})"
        return (f"SELECT id, 1 - (vector <=> %(q)s) FROM passages WHERE vector IS NOT NULL"
                f" ORDER BY {order} LIMIT %(k)s")

    def options(self, rows: int) -> str:
        """The index's WITH clause for a table of ``rows`` vectors."""
        if self.method == "hnsw":
            return f"m = {int(self.m)}, ef_construction = {int(self.ef_construction)}"
        return f"lists = {lists_for(rows)}"

    def build_memory(self, rows: int, dimension: int) -> int:
        """Bytes of maintenance_work_mem the build needs at least (0: whatever the server allows)."""
        if self.method == "hnsw":
            return 0  # a graph that outgrows it is built more slowly, not refused
        lists = lists_for(rows)
        samples = max(SAMPLES_PER_LIST * lists, MIN_SAMPLES)
        per_sample = 2 * int(dimension) + 4 * lists + 16
        centres = 4 * lists * lists + 16 * lists * int(dimension)
        return int(1.1 * (samples * per_sample + centres)) + 16 * 2**20

    def describe(self, rows: int) -> str:
        if self.method == "hnsw":
            return f"HNSW (m {self.m}, ef_construction {self.ef_construction})"
        return f"IVFFlat ({lists_for(rows)} lists)"


@dataclass(frozen=True)
class BuiltIndex:
    """The vector index as the database holds it."""

    method: str  # pgvector's access method: "hnsw" or "ivfflat"
    lists: int | None  # IVFFlat's lists

    def describe(self) -> str:
        return "pgvector HNSW" if self.method == "hnsw" else f"pgvector IVFFlat, {self.lists} lists"


def built_index(conn: psycopg.Connection) -> BuiltIndex | None:
    """The vector index's method (and lists), None while there is none."""
    row = conn.execute("SELECT am.amname, c.reloptions FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
                       " WHERE c.oid = to_regclass(%s)", (VECTOR_INDEX,)).fetchone()
    if row is None:
        return None
    options = dict(option.split("=", 1) for option in (row[1] or []))
    lists = int(options.get("lists", 100)) if row[0] == "ivfflat" else None  # 100: pgvector's default
    return BuiltIndex(str(row[0]), lists)


def has_halfvec(pgvector_version: str) -> bool:
    """True when this version of pgvector (its extversion, e.g. "0.8.5") has the halfvec type."""
    parts = tuple(int(part) for part in pgvector_version.split(".")[:2] if part.isdigit())
    return parts >= HALFVEC_SINCE


def stored_vectors(conn: psycopg.Connection) -> int:
    """How many passages have a vector, counted."""
    return int(conn.execute("SELECT count(vector) FROM passages").fetchone()[0])


def vector_rows(conn: psycopg.Connection) -> int:
    """How many passages have a vector: counted when few, else the planner's estimate of the passages."""
    estimate = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'passages'::regclass").fetchone()[0]
    if estimate is None or estimate < EXACT_COUNT_BELOW:  # -1 until the table is first analysed
        return stored_vectors(conn)
    return int(estimate)


def outgrown(built: BuiltIndex | None, layout: VectorLayout, rows: int) -> bool:
    """True when the index is not the method asked for, or its lists are too few for ``rows`` vectors."""
    if built is None or built.method != layout.method:
        return True
    return layout.method == "ivfflat" and built.lists is not None and lists_for(rows) >= LIST_GROWTH * built.lists


def build(conn: psycopg.Connection, layout: VectorLayout, dimension: int, reason: str = "") -> None:
    """Build the index ``layout`` asks for over the vectors now stored, in the caller's transaction, and put
    it in the place of the old one (if any)."""
    if layout.method == "ivfflat":
        version = str(conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0])
        if not has_halfvec(version):
            raise ConfigError(f'postgres.vector_index = "ivfflat" needs pgvector 0.7 or later (for halfvec); the '
                              f'database has pgvector {version}: upgrade it, or set vector_index = "hnsw"')
    rows = stored_vectors(conn)
    replacing = conn.execute("SELECT to_regclass(%s)", (VECTOR_INDEX,)).fetchone()[0] is not None
    if replacing or rows >= EXACT_COUNT_BELOW // 10:
        log.info("building the vector index, %s, over %d passages%s", layout.describe(rows), rows,
                 f": {reason}" if reason else "")
    needed = layout.build_memory(rows, dimension)
    allowed = int(conn.execute("SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem'"
                               ).fetchone()[0])
    if needed > allowed:  # else pgvector refuses to build the lists
        conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (f"{-(-needed // 2**20)}MB",))
    started = time.monotonic()
    name = REBUILT_INDEX if replacing else VECTOR_INDEX
    conn.execute(f"CREATE INDEX {name} ON passages USING {layout.method} ({layout.indexed(dimension)})"
                 f" WITH ({layout.options(rows)})")
    if replacing:
        conn.execute(f"DROP INDEX {VECTOR_INDEX}")
        conn.execute(f"ALTER INDEX {REBUILT_INDEX} RENAME TO {VECTOR_INDEX}")
    if replacing or rows >= EXACT_COUNT_BELOW // 10:
        log.info("vector index built in %.1f s", time.monotonic() - started)
