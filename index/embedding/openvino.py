"""A sentence-transformers model run by OpenVINO on the CPU: converted once, cached on disk, batched.

The whole SentenceTransformer pipeline after tokenising (transformer, pooling, any dense or normalise
layers) is traced into one OpenVINO model with dynamic batch and sequence axes. OpenVINO's CPU plugin
fuses the attention and layer-norm blocks that torch runs as separate kernels, so it encodes faster
than torch at the same arithmetic (docs/benchmarks.md; benchmarks/embedding_paths.py). The converted model is written to
``cache_dir`` under a key of the model's files and the library versions, so later starts read it
instead of tracing again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)
# Inputs a sentence-transformers tokenizer may produce that the traced model takes.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}
EXAMPLE_TEXTS = ("A short example sentence.", "A second, somewhat longer example sentence for tracing the model.")


def openvino_available() -> bool:
    """Whether the openvino package is installed (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def import_openvino() -> Any:
    """The openvino module, with its usage reports off. Importing openvino, and converting a model,
    sends usage events to Google Analytics through the openvino_telemetry package unless a consent
    file in ~/intel says no. This project works offline and reports nothing, so that package is
    hidden from openvino's tools, which then fall back to their own no-op stub. (If something else in
    the process imported openvino_telemetry first, it is left alone.)"""
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


def default_cache_dir() -> Path:
    """Where converted models are kept: $XDG_CACHE_HOME (or ~/.cache)/news-answers-bot/openvino."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "news-answers-bot" / "openvino"


class OpenVinoEncoder:
    """Encodes texts with an OpenVINO copy of a loaded SentenceTransformer (whose tokenizer it uses)."""

    def __init__(self, model: Any, folder: str, dimension: int, precision: str, threads: int = 0,
                 cache_dir: Path | None = None) -> None:
        openvino = import_openvino()

        self._model = model
        self.dimension = dimension
        self._inputs = [name for name in MODEL_INPUTS if name in model.preprocess(list(EXAMPLE_TEXTS))]
        core = openvino.Core()
        converted = self._load_or_convert(core, folder, cache_dir or default_cache_dir())
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
                                  "PERFORMANCE_HINT": "LATENCY"}
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled = core.compile_model(converted, "CPU", config)
        # One inference request (its buffers sized to the largest batch seen), one batch at a time: the
        # CPU plugin runs one request on all its threads, so callers in several threads take turns per
        # batch and a question waits for at most one batch of a bulk add.
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int, progress: bool = False, prompt: str = "") -> np.ndarray:
        """Float32 vectors (as the model outputs them), one row per text; texts are sorted by length
        and each batch padded to its longest text, and ``prompt`` is prepended to each text by the
        model's own preprocessing, as sentence-transformers does."""
        order = np.argsort([-len(text) for text in texts], kind="stable")
        rows = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=not progress):
            chosen = order[start:start + batch_size]
            features = self._model.preprocess([texts[i] for i in chosen], prompt=prompt or None)
            with self._lock:
                rows[chosen] = self._request.infer({name: features[name].numpy() for name in self._inputs})[0]
        return rows

    def _load_or_convert(self, core: Any, folder: str, cache_dir: Path) -> Any:
        """The converted model from the cache, else traced now (and cached when the folder is writable)."""
        target = cache_dir / self._cache_key(folder) / "model.xml"
        if target.exists():
            try:
                return core.read_model(str(target))
            except RuntimeError as exc:  # a damaged cache entry: convert again
                log.warning("could not read the converted model %s (%s); converting again", target, exc)
                shutil.rmtree(target.parent, ignore_errors=True)
        log.info("converting the embedding model for OpenVINO (once; kept in %s)", target.parent)
        converted = self._convert()
        try:
            save_atomically(converted, target)
        except OSError as exc:
            log.warning("could not keep the converted model in %s (%s); it is converted at each start",
                        target.parent, exc)
        return converted

    def _convert(self) -> Any:
        openvino = import_openvino()
        import torch

        model, inputs = self._model, self._inputs

        class Pipeline(torch.nn.Module):
            """The SentenceTransformer's modules from token ids to the sentence embedding."""

            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
                given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
                return self.model({name: given[name] for name in inputs})["sentence_embedding"]

        example = model.preprocess(list(EXAMPLE_TEXTS))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
            converted = openvino.convert_model(
                Pipeline().eval(), example_input={name: example[name] for name in inputs},
                input=[(name, openvino.PartialShape([-1, -1]), openvino.Type.i64) for name in inputs])
        return converted

    def _cache_key(self, folder: str) -> str:
        """A digest of the model's files (name, size, modification time), its module stack and the
        versions of the libraries that convert it."""
        digest = hashlib.sha256()
        root = Path(folder)
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    stat = path.stat()
                    digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        else:
            digest.update(folder.encode())
        digest.update(repr(self._model).encode())
        digest.update(repr(self._inputs).encode())
        for package in ("openvino", "torch", "transformers", "sentence-transformers"):
            digest.update(f"{package}={metadata.version(package)}\n".encode())
        return digest.hexdigest()[:24]


def save_atomically(converted: Any, target: Path) -> None:
    """Write model.xml/.bin into a temporary folder beside ``target``'s, then rename it into place,
    so that a reader never sees half a model (another process may be converting the same one)."""
    openvino = import_openvino()

    target.parent.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent.parent))
    try:
        openvino.save_model(converted, str(staging / target.name), compress_to_fp16=False)
        try:
            staging.rename(target.parent)
        except OSError:
            if not target.exists():  # not another process winning the race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
