"""The FAISS index of passage vectors, keyed by passage id, saved atomically.

Its layout follows the collection's size, without the user choosing: exact search (a flat index) up
to ``vectors.exact_limit`` passages; beyond it an inverted-file index whose vectors are stored as
8-bit scalar codes (a quarter of the memory), searched in the ``vectors.probe_lists`` lists nearest
to the question. Both layouts support adding, removing and reading back vectors by passage id, which
an HNSW graph does not."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Iterable, Sequence

import faiss
import numpy as np

from index.config import VectorSettings
from index.stores.embedded.atomic import replace_file

log = logging.getLogger(__name__)
# Inverted lists per square root of the collection size when the large layout is (re)built.
LISTS_PER_SQRT = 2.0
# Training points per list (FAISS warns below 39), which also caps the lists of small collections.
TRAINING_POINTS_PER_LIST = 48
# The large layout is rebuilt, with more lists, once the collection has grown by this factor.
REBUILD_GROWTH = 4.0


def lists_for(count: int) -> int:
    """Inverted lists for a collection of ``count`` vectors."""
    by_size = LISTS_PER_SQRT * math.sqrt(max(count, 1))
    return max(1, int(round(min(by_size, count / TRAINING_POINTS_PER_LIST))))


def training_size(count: int) -> int:
    """How many vectors to train the large layout on, for a collection of ``count``."""
    return min(count, TRAINING_POINTS_PER_LIST * lists_for(count))


class VectorIndex:
    """Inner-product search over unit vectors (cosine), with add and remove by passage id."""

    def __init__(self, dimension: int, settings: VectorSettings | None = None,
                 index: faiss.Index | None = None) -> None:
        self.dimension = dimension
        self.settings = settings or VectorSettings()
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._lock = threading.RLock()
        self._configure()

    @classmethod
    def load(cls, path: Path, dimension: int, settings: VectorSettings | None = None) -> "VectorIndex | None":
        """The saved index, or None when the file is missing, unreadable or of another dimension."""
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            log.warning("vector index %s is unreadable (%s); it will be rebuilt", path, exc)
            return None
        if index.d != dimension or not isinstance(index, (faiss.IndexIDMap2, faiss.IndexIVFScalarQuantizer)):
            log.warning("vector index %s does not fit the model (dimension %d); it will be rebuilt", path, index.d)
            return None
        return cls(dimension, settings, index)

    @classmethod
    def build(cls, dimension: int, settings: VectorSettings, count: int, sample: np.ndarray,
              batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> "VectorIndex":
        """A new index in the layout that fits ``count`` vectors: the large one is trained on ``sample``
        first, then filled from ``batches`` of (passage ids, vectors)."""
        if count <= settings.exact_limit:
            built = cls(dimension, settings)
        else:
            lists = lists_for(count)
            index = faiss.index_factory(dimension, f"IVF{lists},SQ8", faiss.METRIC_INNER_PRODUCT)
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
            built = cls(dimension, settings, index)
        for ids, vectors in batches:
            built.add(ids, vectors)
        return built

    def _configure(self) -> None:
        ivf = self._ivf
        if ivf is not None:
            ivf.nprobe = min(self.settings.probe_lists, ivf.nlist)
            self._trained_for = int(ivf.nlist / LISTS_PER_SQRT) ** 2

    @property
    def _ivf(self) -> faiss.IndexIVF | None:
        return self._index if isinstance(self._index, faiss.IndexIVF) else None

    @property
    def exact(self) -> bool:
        """True when search is exhaustive and vectors are stored as given (the small layout)."""
        return self._ivf is None

    @property
    def layout(self) -> str:
        ivf = self._ivf
        return "exact (flat)" if ivf is None else f"IVF{ivf.nlist},SQ8 probing {ivf.nprobe}"

    def outgrown(self, count: int | None = None) -> bool:
        """True when a collection of ``count`` vectors (default: those held) calls for another layout."""
        count = len(self) if count is None else count
        if self._ivf is None:
            return count > self.settings.exact_limit
        return count > REBUILD_GROWTH * self._trained_for or count <= self.settings.exact_limit // 2

    def save(self, path: Path) -> None:
        """Write to a temporary file, flush it to disk, then rename it over the old one."""
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            faiss.write_index(self._index, str(tmp))
        replace_file(tmp, path)

    def replace_with(self, other: "VectorIndex") -> None:
        """Take over another index's content (searchers keep their reference to this object)."""
        with self._lock:
            self._index = other._index
            self._configure()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        with self._lock:
            ivf = self._ivf
            if ivf is None:
                return faiss.vector_to_array(self._index.id_map).astype(np.int64)
            lists = ivf.invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                     for i in range(ivf.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

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

    def lookup(self, passage_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of those of these passages the index holds, by passage id."""
        found: dict[int, np.ndarray] = {}
        with self._lock:
            for passage_id in passage_ids:
                try:
                    found[int(passage_id)] = self._index.reconstruct(int(passage_id))
                except RuntimeError:  # not in the index
                    continue
        return found

    def reconstruct(self, passage_ids: Sequence[int]) -> np.ndarray:
        """The stored vectors (in the large layout, decoded from their 8-bit codes)."""
        with self._lock:
            return np.vstack([self._index.reconstruct(int(i)) for i in passage_ids]) if len(passage_ids) \
                else np.zeros((0, self.dimension), dtype=np.float32)
