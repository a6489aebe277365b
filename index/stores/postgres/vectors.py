"""Vector search in PostgreSQL: pgvector's HNSW index (cosine) over ``passages.vector``.

The column is the index: adding a vector writes it there, removing one clears it, so the database
holds nothing to save or rebuild and every process sees each change at once. Follows VectorSearch
(index/stores/base.py), as the embedded store's FAISS index does."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import psycopg

from index.stores.postgres.migrations import VECTOR_INDEX
from index.stores.postgres.rows import Row
from index.stores.postgres.store import PostgresStore, as_ids, as_vector

# The nearest passages by cosine distance, which the HNSW index answers.
SEARCH_SQL = ("SELECT id, 1 - (vector <=> %(q)s) FROM passages WHERE vector IS NOT NULL"
              " ORDER BY vector <=> %(q)s LIMIT %(k)s")
# Candidates the HNSW search keeps while walking the graph: more finds more of the true nearest, slower.
DEFAULT_EF_SEARCH = 400


class PgVectorIndex:
    """Cosine search over the passage vectors stored in PostgreSQL, through the store's connection pool."""

    def __init__(self, store: PostgresStore, ef_search: int = DEFAULT_EF_SEARCH) -> None:
        self.store = store
        self.dimension = store.dimension
        self.ef_search = ef_search

    @property
    def exact(self) -> bool:
        """False: HNSW is an approximate search."""
        return False

    @property
    def layout(self) -> str:
        return "pgvector HNSW"

    def outgrown(self, count: int | None = None) -> bool:
        """False: the HNSW index grows with the table and never needs another layout."""
        return False

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
                connection.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(self.ef_search, k)),))
                return connection.execute(SEARCH_SQL, {"q": query, "k": k}).fetchall()

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
        """Bytes on disk of the HNSW index."""
        return int(self.store.query("SELECT coalesce(pg_relation_size(to_regclass(?)), 0)", (VECTOR_INDEX,))[0][0])
