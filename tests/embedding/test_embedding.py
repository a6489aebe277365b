"""Embedding runtime and precision, the embedding cache's keys, and adds whose passages are embedded in batches."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from index.articles import ArticleDraft
from index.config import EmbeddingSettings, Settings, load_settings
from index.embedding.cache import CachedEmbedder
from index.embedding.embedder import Embedder, resolve_precision, resolve_runtime
from index.errors import ConfigError
from index.ingest.chunking import Chunker, split_sentences
from index.library import Library
from tests.test_library import BODY, OTHER_BODY

SCHOOL_BODY = ("Pupils at the village school planted a vegetable garden behind the gym this spring. "
               "Teachers use the beds for lessons on soil, insects and the weather. "
               "Parents built a shed for the tools from wood left over after the roof repairs. "
               "The first potatoes will be cooked in the school kitchen in July. ") * 2
TEXTS = ["The city council approved a new budget for public libraries on Tuesday evening.",
         "Where did the Perseverance rover land?",
         "A new museum of maritime history opened its doors in the old customs house on Saturday. " * 6]


def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_units() -> None:
    assert resolve_precision("auto", "cpu", frozenset({"avx2", "avx512_bf16"})) == "bf16"
    assert resolve_precision("auto", "cpu", frozenset({"amx_bf16", "amx_tile"})) == "bf16"
    assert resolve_precision("auto", "cpu", frozenset({"avx2", "avx512f"})) == "fp32"
    assert resolve_precision("auto", "cuda", frozenset({"avx512_bf16"})) == "fp32"
    assert resolve_precision("auto", "cuda:1", frozenset({"avx512_bf16"})) == "fp32"
    assert resolve_precision("fp32", "cpu", frozenset({"avx512_bf16"})) == "fp32"
    assert resolve_precision("bf16", "cpu", frozenset()) == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int4", "cpu")


def test_precision_setting_defaults_to_auto_and_follows_the_environment() -> None:
    assert load_settings(environ={}).embedding.precision == "auto"
    assert load_settings(environ={"NEWSBOT_EMBEDDING_PRECISION": "FP32"}).embedding.precision == "fp32"
    assert load_settings(environ={"NEWSBOT_EMBEDDING_PRECISION": "bf16"}).embedding.precision == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        load_settings(environ={"NEWSBOT_EMBEDDING_PRECISION": "int8"})


def test_auto_runtime_is_openvino_on_the_cpu_when_it_is_installed() -> None:
    assert resolve_runtime("auto", "cpu", available=True) == "openvino"
    assert resolve_runtime("auto", "cpu", available=False) == "torch"
    assert resolve_runtime("auto", "cuda:0", available=True) == "torch"
    assert resolve_runtime("torch", "cpu", available=True) == "torch"
    assert resolve_runtime("openvino", "cpu", available=False) == "openvino"  # and fails loudly when loaded
    with pytest.raises(ValueError, match="runtime"):
        resolve_runtime("onnx", "cpu")


def test_runtime_setting_defaults_to_auto_and_follows_the_environment() -> None:
    assert load_settings(environ={}).embedding.runtime == "auto"
    assert load_settings(environ={"NEWSBOT_EMBEDDING_RUNTIME": "Torch"}).embedding.runtime == "torch"
    with pytest.raises(ConfigError, match="runtime"):
        load_settings(environ={"NEWSBOT_EMBEDDING_RUNTIME": "tensorrt"})


@pytest.fixture(scope="module")
def torch_fp32() -> Embedder:
    return Embedder(EmbeddingSettings(runtime="torch", precision="fp32"))


@pytest.mark.parametrize("runtime,precision", [("openvino", "bf16"), ("openvino", "fp32"), ("torch", "bf16")])
def test_each_runtime_and_precision_gives_unit_vectors_close_to_torch_fp32(
        torch_fp32: Embedder, runtime: str, precision: str) -> None:
    other = Embedder(EmbeddingSettings(runtime=runtime, precision=precision))
    assert (other.runtime, other.precision) == (runtime, precision)
    assert other.arithmetic != torch_fp32.arithmetic
    low, full = other.embed(TEXTS), torch_fp32.embed(TEXTS)
    for vectors in (low, full):
        assert vectors.dtype == np.float32 and vectors.flags.c_contiguous and vectors.shape == (3, 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(low * full, axis=1)) > (0.9999 if precision == "fp32" else 0.995)
    # one text alone (the question path) is embedded as in a batch, and batches of any size agree
    assert float(np.dot(other.embed_one(TEXTS[1]), low[1])) > 0.999
    assert np.min(np.sum(other.embed(TEXTS, batch_size=1) * low, axis=1)) > 0.999
    assert other.embed([]).shape == (0, other.dimension)


def test_the_auto_choices_are_what_the_embedder_reports(embedder: Embedder) -> None:
    assert embedder.precision == resolve_precision("auto", "cpu")
    assert embedder.runtime == "openvino"  # a project dependency, so installed wherever the tests run


class FakeEmbedder:
    """Vectors that depend on the precision, so that a cache shared across precisions would show."""

    name = "fake model"
    dimension = 4

    def __init__(self, precision: str, arithmetic: str | None = None) -> None:
        self.precision = precision
        self.arithmetic = arithmetic
        self.calls = 0

    def embed(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int | None = None,
              kind: str = "document") -> np.ndarray:
        self.calls += 1
        value = 1.0 if self.precision == "fp32" else -1.0
        return np.array([[value, len(t), 0, 0] for t in texts], dtype=np.float32)


def test_the_cache_keeps_each_precisions_vectors_apart(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    fp32 = CachedEmbedder(FakeEmbedder("fp32"), path)  # type: ignore[arg-type]
    assert fp32.embed(["a", "bb"])[:, 0].tolist() == [1.0, 1.0]
    bf16 = CachedEmbedder(FakeEmbedder("bf16"), path)  # type: ignore[arg-type]
    assert bf16.embed(["a", "bb"])[:, 0].tolist() == [-1.0, -1.0]  # not fp32's vectors
    assert (bf16.hits, bf16.misses) == (0, 2)
    again = CachedEmbedder(FakeEmbedder("bf16"), path)  # type: ignore[arg-type]
    assert again.embed(["bb", "a"])[:, 0].tolist() == [-1.0, -1.0]
    assert (again.hits, again.misses, again.embedder.calls) == (2, 0, 0)
    newer = CachedEmbedder(FakeEmbedder("bf16", arithmetic="bf16-model"), path)  # type: ignore[arg-type]
    newer.embed(["a", "bb"])
    assert (newer.hits, newer.misses) == (0, 2)  # another arithmetic under the same precision
    for cache in (fp32, bf16, again, newer):
        cache.close()


def test_each_sentence_is_tokenised_once(embedder: Embedder) -> None:
    seen: list[str] = []

    def counting(texts: Sequence[str]) -> list[int]:
        seen.extend(texts)
        return embedder.count_tokens(texts)

    chunker = Chunker(counting, max_tokens=48, overlap_tokens=8, model_window=256, title_prefix=True)
    passages = chunker.chunk("Council meets", BODY * 3)
    assert len(passages) > 2
    assert seen.count("Council meets") == 1
    assert len(seen) == 1 + len(split_sentences(BODY * 3))  # the title, then every sentence once


class CountingEmbedder:
    """The session's embedder, counting embed calls and the texts in them."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.batches: list[int] = []

    def __getattr__(self, name: str):
        return getattr(self.embedder, name)

    def embed(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int | None = None) -> np.ndarray:
        self.batches.append(len(texts))
        return self.embedder.embed(texts, show_progress=show_progress, batch_size=batch_size)


def test_add_drafts_embeds_together_and_decides_like_one_by_one(settings: Settings, embedder: Embedder) -> None:
    story = BODY * 3 + "The mayor is expected to sign the plan next week after a final reading."
    drafts = [
        ArticleDraft("Libraries get longer hours", story, url="https://wire.test/libraries"),
        # a republished copy right behind the original: caught when stored, after the shared embedding
        ArticleDraft("Longer library hours approved", "From our partners at the wire. " + story,
                     url="https://daily.test/libraries"),
        ArticleDraft("Too short", "Only a few words here.", url="https://daily.test/short"),
        ArticleDraft("Museum opens", OTHER_BODY * 2, url="https://daily.test/museum"),
        # the same text again, then a changed text under the museum's address
        ArticleDraft("Museum opens", OTHER_BODY * 2, url="https://other.test/museum-copy"),
        ArticleDraft("Museum opens", OTHER_BODY * 2 + "Entry is free on Sundays.", url="https://daily.test/museum"),
        ArticleDraft("School garden", SCHOOL_BODY, url="https://wire.test/school"),
    ]
    counting = CountingEmbedder(embedder)
    with Library(settings, embedder=counting, reranker=False) as library:  # type: ignore[arg-type]
        counting.batches.clear()
        results = list(library.add_drafts(drafts))
        assert [r.status for r in results] == ["added", "duplicate", "failed", "added", "duplicate", "replaced",
                                               "added"]
        assert "same story" in results[1].message and results[1].article.id == results[0].article.id
        assert results[4].article.id == results[3].article.id == results[5].article.id
        assert len(counting.batches) < 4  # not one call per article
        assert library.count_articles() == 3
        assert len(library.vectors) == library.store.count_passages() == sum(
            r.passages for r in (results[0], results[5], results[6]))
        # stored vectors are the article's own: its passages found by their own text
        ids = library.store.passage_ids()
        bodies = library.store.passage_bodies(ids)
        _, matrix, lacking = library.store.vectors(ids, embedder.dimension)
        assert not lacking
        fresh = embedder.embed([bodies[int(i)] for i in ids])
        assert np.min(np.sum(matrix * fresh, axis=1)) > 0.99
    with Library(settings, embedder=embedder, reranker=False) as again:  # nothing half-added or unsaved
        assert len(again.vectors) == again.store.count_passages()


def test_add_sources_yields_results_in_order_with_failures_between(library: Library, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.md").write_text("---\ntitle: Libraries\n---\n\n" + BODY * 2, encoding="utf-8")
    (folder / "b.md").write_text("---\ntitle: Museum\n---\n\n" + OTHER_BODY * 2, encoding="utf-8")
    sources = [str(folder / "a.md"), str(folder / "missing.md"), str(folder / "b.md"), str(folder / "a.md")]
    results = list(library.add_sources(sources))
    assert [r.status for r in results] == ["added", "failed", "added", "duplicate"]
    assert [r.source for r in results] == ["a.md", str(folder / "missing.md"), "b.md", "a.md"]
    assert library.count_articles() == 2 and len(library.vectors) == library.store.count_passages()
    assert "Museum" in library.search("maritime museum ship models").hits[0].article.title
