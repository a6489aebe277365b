"""Query and document prompts: read from the model's config or set in config, applied on every runtime."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from index.config import EmbeddingSettings, Settings
from index.embedding.cache import CachedEmbedder
from index.embedding.embedder import BUNDLED_MODEL_NAME, Embedder, model_name, model_prompts, resolve_model
from index.library import Library

QUESTION = "Where did the rover land on Mars?"
PASSAGES = ["The rover touched down in Jezero crater, a dried-up lake bed, after a seven-month journey.",
            "The city council approved a new budget for public libraries on Tuesday evening."]
PROMPTS = {"query": "query: ", "document": "passage: "}


@pytest.fixture(scope="module")
def prompted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model copied into a folder whose sentence-transformers config adds e5-style prompts."""
    folder = tmp_path_factory.mktemp("models") / "minilm-with-prompts"
    shutil.copytree(resolve_model("bundled"), folder)
    config_path = folder / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["prompts"] = PROMPTS
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    """sentence-transformers' own encode of the bundled model, which the prompts are compared with."""
    return SentenceTransformer(resolve_model("bundled"), device="cpu")


def unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_the_models_own_prompts_are_found_by_the_names_configs_use() -> None:
    assert model_prompts({"query": "query: ", "passage": "passage: "}, None) == PROMPTS
    assert model_prompts({"query": "q: ", "document": "", "corpus": "c: "}, None) == {"query": "q: ",
                                                                                     "document": "c: "}
    # a default prompt is what sentence-transformers puts before any text that names no prompt
    assert model_prompts({"query": "", "document": "", "retrieval": "r: "}, "retrieval") == {"query": "r: ",
                                                                                            "document": "r: "}
    assert model_prompts({"query": "", "document": ""}, None) == {"query": "", "document": ""}
    assert model_prompts(None, None) == {"query": "", "document": ""}


@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_questions_get_the_query_prompt_and_passages_the_document_prompt(
        prompted_model: Path, reference: SentenceTransformer, runtime: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the converted model is kept here, not in ~/.cache
    embedder = Embedder(EmbeddingSettings(model=str(prompted_model), runtime=runtime, precision="fp32"))
    assert embedder.runtime == runtime and embedder.prompts == PROMPTS
    query = embedder.embed_query(QUESTION)
    assert float(query @ unit(reference.encode(QUESTION, prompt="query: "))) > 0.9999
    assert float(query @ unit(reference.encode(QUESTION))) < 0.99  # the prompt changed the vector
    passages = embedder.embed(PASSAGES)
    with_document_prompt = unit(reference.encode(PASSAGES, prompt="passage: "))
    assert np.min(np.sum(passages * with_document_prompt, axis=1)) > 0.9999
    assert np.max(np.sum(passages * unit(reference.encode(PASSAGES, prompt="query: ")), axis=1)) < 0.99
    assert np.max(np.sum(passages * unit(reference.encode(PASSAGES)), axis=1)) < 0.99
    # the question path of older callers is the query path
    assert np.array_equal(embedder.embed_one(QUESTION), query)


def test_configured_prompts_win_over_the_models(prompted_model: Path, reference: SentenceTransformer) -> None:
    embedder = Embedder(EmbeddingSettings(model=str(prompted_model), runtime="torch", precision="fp32",
                                          query_prompt="search_query: "))
    assert embedder.prompts == {"query": "search_query: ", "document": "passage: "}
    assert float(embedder.embed_query(QUESTION) @ unit(reference.encode(QUESTION, prompt="search_query: "))) > 0.9999
    both = Embedder(EmbeddingSettings(model="bundled", runtime="torch", precision="fp32",
                                      query_prompt="Q: ", document_prompt="D: "))
    assert float(both.embed(PASSAGES[:1])[0] @ unit(reference.encode(PASSAGES[0], prompt="D: "))) > 0.9999


def test_the_bundled_models_vectors_are_unchanged(reference: SentenceTransformer) -> None:
    """The bundled model has no prompts: questions and passages get exactly the vectors they had."""
    embedder = Embedder(EmbeddingSettings(runtime="torch", precision="fp32"))
    assert embedder.prompts == {"query": "", "document": ""}
    assert embedder.passage_window == embedder.max_seq_length
    assert np.array_equal(embedder.embed_query(QUESTION), unit(reference.encode([QUESTION]))[0])
    assert np.array_equal(embedder.embed(PASSAGES), unit(reference.encode(PASSAGES)))


class PromptedFakeEmbedder:
    """Vectors that depend on the prompt of the kind asked for, so that a cache mixing prompts would show."""

    name = "fake model"
    dimension = 2
    arithmetic = "fp32"

    def __init__(self, prompts: dict[str, str]) -> None:
        self.prompts = prompts
        self.calls = 0

    def embed(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int | None = None,
              kind: str = "document") -> np.ndarray:
        self.calls += 1
        return np.array([[len(self.prompts[kind]), len(t)] for t in texts], dtype=np.float32)


def test_the_embedding_cache_keys_on_the_prompt(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    plain = CachedEmbedder(PromptedFakeEmbedder({"query": "", "document": ""}), path)  # type: ignore[arg-type]
    assert plain.embed(["a", "bb"]).tolist() == [[0.0, 1.0], [0.0, 2.0]]
    # texts embedded without a prompt keep the keys written before prompts existed
    old_keys = {hashlib.sha1(f"fake model\x00{text}".encode()).hexdigest() for text in ("a", "bb")}
    assert {key for (key,) in plain._db.execute("SELECT key FROM vectors")} == old_keys
    prompted = CachedEmbedder(PromptedFakeEmbedder(PROMPTS), path)  # type: ignore[arg-type]
    assert prompted.embed(["a", "bb"]).tolist() == [[9.0, 1.0], [9.0, 2.0]]  # not the prompt-less vectors
    assert prompted.embed(["a"], kind="query").tolist() == [[7.0, 1.0]]
    assert (prompted.hits, prompted.misses) == (0, 3)
    again = CachedEmbedder(PromptedFakeEmbedder(PROMPTS), path)  # type: ignore[arg-type]
    assert again.embed(["bb", "a"]).tolist() == [[9.0, 2.0], [9.0, 1.0]]
    assert (again.hits, again.misses, again.embedder.calls) == (2, 0, 0)
    for cache in (plain, prompted, again):
        cache.close()


def test_passages_leave_room_for_the_document_prompt(prompted_model: Path, embedded_settings: Settings) -> None:
    embedder = Embedder(EmbeddingSettings(model=str(prompted_model), runtime="torch", precision="fp32"))
    prompt_tokens = embedder.count_tokens(["passage: "])[0]
    assert prompt_tokens > 0 and embedder.passage_window == embedder.max_seq_length - prompt_tokens
    settings = embedded_settings.replace("chunking", max_tokens=4096, overlap_tokens=0)
    with Library(settings, embedder=embedder, reranker=False) as library:
        assert library.chunker.max_tokens == embedder.passage_window - 2  # [CLS] and [SEP] too
        long_text = " ".join(f"Sentence number {n} tells of the harbour and its ships." for n in range(200))
        passages = library.chunker.chunk("Harbour news", long_text)
    tokenizer = embedder._tokenizer
    for passage in passages:
        prompted = tokenizer("passage: " + f"Harbour news\n{passage.text}", truncation=False)["input_ids"]
        assert len(prompted) <= embedder.max_seq_length  # nothing is cut off by the model


def test_a_configured_document_prompt_is_recorded_with_the_vectors(embedded_settings: Settings,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Passages embedded with one document prompt are re-embedded when another is configured."""
    assert model_name(EmbeddingSettings()) == BUNDLED_MODEL_NAME  # what existing libraries record
    assert model_name(EmbeddingSettings(query_prompt="Q: ")) == BUNDLED_MODEL_NAME  # queries are not stored
    assert model_name(EmbeddingSettings(document_prompt="D: ")) == f"{BUNDLED_MODEL_NAME} with document prompt 'D: '"
    plain = Embedder(EmbeddingSettings(runtime="torch", precision="fp32"))
    prompted = Embedder(EmbeddingSettings(runtime="torch", precision="fp32", document_prompt="D: "))
    with Library(embedded_settings, embedder=plain, reranker=False) as library:
        assert library.add_text(PASSAGES[0] * 3, title="Rover lands").status == "added"
    with caplog.at_level(logging.WARNING), Library(embedded_settings, embedder=prompted, reranker=False) as library:
        stored = library.store.get_meta("embedding_model")
    assert stored == f"{prompted.name}|{prompted.dimension}"
    assert any("re-embedding every passage" in record.getMessage() for record in caplog.records)


def test_a_model_that_pools_without_its_prompt_runs_on_torch(prompted_model: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Mean pooling that leaves the prompt's tokens out needs their count, which the converted model
    does not take: "auto" runs such a model on torch, and "openvino" says why it cannot."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "pooling-without-prompt"
    shutil.copytree(prompted_model, folder)
    pooling_path = folder / "1_Pooling" / "config.json"
    pooling = json.loads(pooling_path.read_text(encoding="utf-8"))
    pooling_path.write_text(json.dumps({**pooling, "include_prompt": False}), encoding="utf-8")
    auto = Embedder(EmbeddingSettings(model=str(folder), runtime="auto", precision="fp32"))
    assert auto.runtime == "torch"
    own = SentenceTransformer(str(folder), device="cpu")
    assert float(auto.embed_query(QUESTION) @ unit(own.encode(QUESTION, prompt="query: "))) > 0.9999
    with pytest.raises(ValueError, match="prompt"):
        Embedder(EmbeddingSettings(model=str(folder), runtime="openvino", precision="fp32"))
