"""A cross-encoder that reads the question with one sentence (and its article's title) and scores how
likely that sentence is to answer it: what chooses the sentence a reply leads with.

The file is written by ``python -m index train-sentence-scorer`` (MiniLM fine-tuned on SQuAD's
answer sentences) and named by ``sentences.scorer``. Like the reranker's, it stores every weight except
the word embeddings, which come from the bundled all-MiniLM-L6-v2 package at load time. A missing or
unreadable file turns it off: sentences are then chosen by their cosine and keywords alone.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from index.config import SentenceSettings

log = logging.getLogger(__name__)
FORMAT = "newsbot-sentence-scorer/1"
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "sentence-scorer.safetensors"
OFF = ("off", "none", "")


class SentenceScorer:
    """Loads the cross-encoder once; ``score`` returns, per sentence, the probability that it answers."""

    def __init__(self, path: Path, precision: str = "auto") -> None:
        from index.search.reranker import Reranker, passage_input

        self._model = Reranker(path, precision, file_format=FORMAT)
        self._input = passage_input
        self.path = path
        self.precision = self._model.precision

    def score(self, question: str, sentences: Sequence[tuple[str, str]]) -> np.ndarray:
        """Probability that each (article title, sentence) answers the question, in the given order."""
        return self._model.score(question, [self._input(title, text) for title, text in sentences])


def resolve_scorer_path(configured: str) -> Path | None:
    """The file ``sentences.scorer`` names: "shipped" is the file in the package, "off" none."""
    value = configured.strip()
    if value.lower() in OFF:
        return None
    if value.lower() == "shipped":
        return SHIPPED
    return Path(value).expanduser()


_loaded: dict[tuple[str, int, str], SentenceScorer] = {}
_loading = threading.Lock()


def load_sentence_scorer(settings: SentenceSettings) -> SentenceScorer | None:
    """The configured scorer, or None (with a log line saying why) when it is off or unusable. One copy
    per process and file: the model is read-only."""
    path = resolve_scorer_path(settings.scorer)
    if path is None:
        return None
    if not path.is_file():
        log.warning("sentence scorer %s not found: choosing answer sentences without it", path)
        return None
    key = (str(path.resolve()), path.stat().st_mtime_ns, settings.precision)
    with _loading:
        if key not in _loaded:
            try:
                _loaded[key] = SentenceScorer(path, settings.precision)
            except Exception as exc:  # a damaged file must not stop the bot
                log.warning("sentence scorer %s could not be loaded (%s): choosing answer sentences without it",
                            path, exc)
                return None
            log.info("sentence scorer %s loaded (%s)", path.name, _loaded[key].precision)
        return _loaded[key]
