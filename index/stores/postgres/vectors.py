"""Vector search in PostgreSQL: pgvector's index (cosine) over ``passages.vector``, HNSW or IVFFlat
(postgres.vector_index: vector_layout.py).

The column is the index: adding a vector writes it there, removing one clears it, so the database
holds nothing to save and every process sees each change at once. Follows VectorSearch
(index/stores/base.py), as the embedded store's FAISS index does. An IVFFlat index is rebuilt with more
lists as the library grows (``fit_layout``, by the writer after its change)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import psycopg

from index.stores.postgres import vector_layout
from index.stores.postgres.rows import Row
from index.stores.postgres.store import PostgresStore, as_ids, as_vector
from index.stores.postgres.vector_layout import VECTOR_INDEX, VectorLayout

# Candidates the HNSW search keeps while walking the graph, and lists an IVFFlat search reads: more finds
# more of the true nearest, slower.
DEFAULT_EF_SEARCH = 400
DEFAULT_PROBES = 10
# How a search reads the index, whichever its method: both settings, for this transaction.
READ_SETTINGS_SQL = "SELECT set_config('hnsw.ef_search', %s, true), set_config('ivfflat.probes', %s, true)"


class PgVectorIndex:
    """Cosine search over the passage vectors stored in PostgreSQL, through the store's connection pool."""

    def __init__(self, store: PostgresStore, ef_search: int = DEFAULT_EF_SEARCH, probes: int = DEFAULT_PROBES,
                 wanted: VectorLayout = VectorLayout()) -> None:
        """``wanted``: the index postgres.vector_index asks for, which ``fit_layout`` builds."""
        self.store = store
        self.dimension = store.dimension
        self.ef_search = ef_search
        self.probes = probes
        self.wanted = wanted
        self._search_sql = wanted.search_sql(self.dimension)  # the nearest passages, as the index finds them

    @property
    def exact(self) -> bool:
        """False: both methods are approximate searches."""
        return False

    @property
    def layout(self) -> str:
        with self.store.connection() as connection:
            built = vector_layout.built_index(connection)
        if built is None:
            return "pgvector, no index"
        return built.describe() + (f", probing {self.probes}" if built.method == "ivfflat" else "")

    def outgrown(self, count: int | None = None) -> bool:
        """True when the index is not of the method asked for, or an IVFFlat index has too few lists for
        ``count`` vectors (default: those stored); the HNSW graph grows with the table as it is."""
        with self.store.connection() as connection:
            rows = vector_layout.vector_rows(connection) if count is None else count
            return vector_layout.outgrown(vector_layout.built_index(connection), self.wanted, rows)

    def fit_layout(self) -> bool:
        """Rebuild the index when it is outgrown (see ``outgrown``); True when it did. For the writer, after
        its change: a rebuild blocks other writes, not searches."""
        if self.wanted.method == "hnsw":  # the graph is rebuilt only when the method changes, at start-up
            return False
        with self.store.connection() as connection:
            with connection.transaction():
                rows = vector_layout.vector_rows(connection)
                built = vector_layout.built_index(connection)
                if not vector_layout.outgrown(built, self.wanted, rows):
                    return False
                vector_layout.build(connection, self.wanted, self.dimension,
                                    f"{built.describe() if built else 'none'} for about {rows} passages")
        return True

    def save(self, path: Path) -> None:
        """Nothing to do: every change is already committed to the database."""

    def __len__(self) -> int:
        return int(self.store.query("SELECT count(*) FROM passages WHERE vector IS NOT NULL")[0][0])

    def ids(self) -> np.ndarray:
        rows = self.store.query("SELECT id FROM passages WHERE vector IS NOT NULL ORDER BY id")
        return np.array([row[0] for row in rows], dtype=np.int64)

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Store these passages' vectors (a missing passage is skipped, an unchanged vector not rewritten)."""
        if len(ids) == 0:
            return
        rows = [(vector, passage_id, vector) for passage_id, vector in zip(as_ids(ids), map(as_vector, vectors))]
        with self.store.transaction() as db:
            cursor = db.executemany("UPDATE passages SET vector = ? WHERE id = ? AND vector IS DISTINCT FROM ?", rows)
            db.changed = cursor.rowcount > 0

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Clear these passages' vectors; returns how many held one."""
        if len(ids) == 0:
            return 0
        with self.store.transaction() as db:
            cursor = db.execute("UPDATE passages SET vector = NULL WHERE id = ANY(?::bigint[]) AND vector IS NOT NULL",
                                (as_ids(ids),))
            removed = max(cursor.rowcount, 0)
            db.changed = removed > 0
        return removed

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest passages as (passage id, cosine similarity), best first."""
        if k <= 0:
            return []
        query = as_vector(vector).reshape(-1)

        def nearest(connection: psycopg.Connection[Row]) -> list[Row]:
            with connection.transaction():
                # HNSW returns at most ef_search rows, so it is never below k.
                connection.execute(READ_SETTINGS_SQL, (str(max(self.ef_search, k)), str(self.probes)))
                return connection.execute(self._search_sql, {"q": query, "k": k}).fetchall()

        return [(int(r[0]), float(r[1])) for r in self.store.reading(nearest)]

    def lookup(self, passage_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of those of these passages that have one, by passage id (one query)."""
        ids = as_ids(passage_ids)
        if not ids:
            return {}

        def stored(connection: psycopg.Connection[Row]) -> dict[int, np.ndarray]:
            cursor = connection.cursor(binary=True)
            cursor.execute("SELECT id, vector FROM passages WHERE id = ANY(%s::bigint[]) AND vector IS NOT NULL",
                           (ids,))
            return {int(passage_id): vector.to_numpy().astype(np.float32, copy=False) for passage_id, vector in cursor}

        return self.store.reading(stored)

    def reconstruct(self, passage_ids: Sequence[int]) -> np.ndarray:
        """The stored vectors, in the order asked; a passage without one is a KeyError."""
        ids = as_ids(passage_ids)
        if not ids:
            return np.zeros((0, self.dimension), dtype=np.float32)
        found = self.lookup(ids)
        lacking = [i for i in ids if i not in found]
        if lacking:
            raise KeyError(f"no stored vector for passages {lacking[:10]}")
        return np.vstack([found[i] for i in ids])

    def disk_bytes(self) -> int:
        """Bytes on disk of the vector index."""
        return int(self.store.query("SELECT coalesce(pg_relation_size(to_regclass(?)), 0)", (VECTOR_INDEX,))[0][0])
