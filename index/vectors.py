"""The FAISS index of passage vectors, keyed by passage id, saved atomically."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

log = logging.getLogger(__name__)


class VectorIndex:
    """Inner-product search over unit vectors (cosine), with add and remove by passage id."""

    def __init__(self, dimension: int, index: faiss.Index | None = None) -> None:
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._lock = threading.RLock()

    @classmethod
    def load(cls, path: Path, dimension: int) -> "VectorIndex | None":
        """The saved index, or None when the file is missing, unreadable or of another dimension."""
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            log.warning("vector index %s is unreadable (%s); it will be rebuilt", path, exc)
            return None
        if index.d != dimension or not isinstance(index, faiss.IndexIDMap2):
            log.warning("vector index %s does not fit the model (dimension %d); it will be rebuilt", path, index.d)
            return None
        return cls(dimension, index)

    def save(self, path: Path) -> None:
        """Write to a temporary file, flush it to disk, then rename it over the old one."""
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            faiss.write_index(self._index, str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def replace_with(self, other: "VectorIndex") -> None:
        """Take over another index's content (searchers keep their reference to this object)."""
        with self._lock:
            self._index = other._index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        with self._lock:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                     np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        with self._lock:
            return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest passages as (passage id, cosine similarity), best first."""
        with self._lock:
            if self._index.ntotal == 0:
                return []
            scores, ids = self._index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1),
                                             min(k, self._index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def reconstruct(self, passage_ids: Sequence[int]) -> np.ndarray:
        with self._lock:
            return np.vstack([self._index.reconstruct(int(i)) for i in passage_ids]) if len(passage_ids) \
                else np.zeros((0, self.dimension), dtype=np.float32)
