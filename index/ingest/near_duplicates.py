"""Near-duplicate articles (the same wire story republished elsewhere) by MinHash LSH over word shingles."""

from __future__ import annotations

import re
import threading

import numpy as np
from datasketch import MinHash, MinHashLSH

from index.articles import normalize_text

NUM_PERM = 128
SCHEME = "affine32"
SHINGLE_WORDS = 5
_WORD = re.compile(r"\w+", re.UNICODE)


def signature(text: str) -> np.ndarray:
    """The MinHash signature of a text's overlapping 5-word shingles."""
    words = _WORD.findall(normalize_text(text))
    shingles = {" ".join(words[i:i + SHINGLE_WORDS]) for i in range(max(1, len(words) - SHINGLE_WORDS + 1))}
    minhash = MinHash(num_perm=NUM_PERM, scheme=SCHEME)
    minhash.update_batch([s.encode("utf-8") for s in shingles])
    return minhash.hashvalues.astype(np.uint32)


def _minhash(values: np.ndarray) -> MinHash:
    return MinHash(num_perm=NUM_PERM, hashvalues=values, scheme=SCHEME)


class NearDuplicateIndex:
    """An in-memory LSH of stored articles' signatures; ``find`` returns the most similar article."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM) if threshold > 0 else None
        self._signatures: dict[int, np.ndarray] = {}

    def add(self, article_id: int, values: np.ndarray) -> None:
        if self._lsh is None:
            return
        with self._lock:
            if article_id in self._signatures:
                self._lsh.remove(article_id)
            self._lsh.insert(article_id, _minhash(values))
            self._signatures[article_id] = values

    def remove(self, article_id: int) -> None:
        with self._lock:
            if self._lsh is not None and self._signatures.pop(article_id, None) is not None:
                self._lsh.remove(article_id)

    def signatures(self) -> dict[int, np.ndarray]:
        with self._lock:
            return dict(self._signatures)

    def find(self, values: np.ndarray, exclude: int | None = None) -> tuple[int, float] | None:
        """(article id, estimated Jaccard similarity) of the closest stored article above the threshold."""
        if self._lsh is None:
            return None
        probe = _minhash(values)
        with self._lock:
            candidates = [c for c in self._lsh.query(probe) if c != exclude]
            scored = [(int(c), float(np.mean(self._signatures[c] == values))) for c in candidates]
        scored = [item for item in scored if item[1] >= self.threshold]
        return max(scored, key=lambda item: item[1]) if scored else None
