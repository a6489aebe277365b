"""The vector index picks its layout by collection size: exact when small, inverted lists when large."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.config import Settings, VectorSettings
from index.embedding.embedder import Embedder
from index.library import Library
from index.samples import sample_paths
from index.stores.embedded.directory import VECTORS_FILE
from index.stores.embedded.vectors import VectorIndex, lists_for, training_size


def clustered_unit_vectors(count: int, dimension: int = 32, topics: int = 40, seed: int = 0) -> np.ndarray:
    """Vectors scattered around a few topic centres, as sentence embeddings are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dimension))
    vectors = centres[rng.integers(0, topics, count)] + 0.4 * rng.standard_normal((count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def build(vectors: np.ndarray, ids: np.ndarray, settings: VectorSettings) -> VectorIndex:
    sample = vectors[:training_size(len(vectors))]
    return VectorIndex.build(vectors.shape[1], settings, len(vectors), sample, [(ids, vectors)])


def test_small_collections_are_searched_exactly() -> None:
    vectors = clustered_unit_vectors(500)
    index = build(vectors, np.arange(10, 510), VectorSettings(exact_limit=1000))
    assert index.exact and not index.outgrown()
    assert index.search(vectors[7], 1)[0][0] == 17
    assert np.array_equal(index.reconstruct([17]), vectors[7:8])
    found = index.lookup([17, 99999, 18])  # only those it holds
    assert sorted(found) == [17, 18] and np.array_equal(found[18], vectors[8])
    assert index.outgrown(1001)


def test_large_collections_use_inverted_lists_with_add_remove_and_ids(tmp_path: Path) -> None:
    vectors = clustered_unit_vectors(3000)
    ids = np.arange(1000, 4000)
    settings = VectorSettings(exact_limit=1000, probe_lists=8)
    index = build(vectors, ids, settings)
    assert not index.exact and f"IVF{lists_for(3000)},SQ8" in index.layout
    assert sorted(index.ids().tolist()) == ids.tolist()
    exact = vectors @ vectors[:50].T
    found = 0
    for query in range(50):
        truth = set(ids[np.argsort(-exact[:, query])[:10]].tolist())
        found += len(truth & {pid for pid, _ in index.search(vectors[query], 10)})
    assert found / 500 >= 0.9  # recall@10 against exact search
    decoded = index.reconstruct([1005])[0]
    assert float(decoded @ vectors[5]) > 0.99  # 8-bit codes keep the direction

    assert index.remove([1000, 1001, 99999]) == 2
    assert 1000 not in {pid for pid, _ in index.search(vectors[0], 5)}
    assert sorted(index.lookup([1000, 1002, 99999])) == [1002]
    index.add([5000], vectors[:1])
    assert index.search(vectors[0], 1)[0][0] == 5000

    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss", 32, settings)
    assert loaded is not None and loaded.layout == index.layout
    assert sorted(loaded.ids().tolist()) == sorted(index.ids().tolist())
    assert loaded.search(vectors[0], 1)[0][0] == 5000
    assert not loaded.outgrown() and loaded.outgrown(5 * 3000) and loaded.outgrown(400)


def test_the_library_changes_layout_as_it_grows_and_shrinks(embedded_settings: Settings, embedder: Embedder) -> None:
    settings = embedded_settings.replace("vectors", exact_limit=12)  # FAISS's layouts: the embedded store only
    with Library(settings, embedder=embedder) as lib:
        added = [r for r in lib.add_sources([str(p) for p in sample_paths()]) if r.ok]
        assert len(lib.vectors) > 12 and not lib.vectors.exact
        assert sorted(lib.vectors.ids().tolist()) == sorted(lib.store.passage_ids().tolist())
        answer = lib.search("what did the UN Security Council say?")
        assert answer.answered and "Security Council" in answer.hits[0].article.title
        layout = lib.vectors.layout

    (settings.library.data_dir / VECTORS_FILE).unlink()  # lost: rebuilt from SQLite in the same layout
    with Library(settings, embedder=embedder) as lib:
        assert lib.vectors.layout == layout
        assert sorted(lib.vectors.ids().tolist()) == sorted(lib.store.passage_ids().tolist())
        for result in added:
            if len(lib.vectors) > 6:
                lib.remove(result.article.id)
        assert lib.vectors.exact  # back to exact search once it is small again
        assert sorted(lib.vectors.ids().tolist()) == sorted(lib.store.passage_ids().tolist())
