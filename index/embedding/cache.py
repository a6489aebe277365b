"""A disk cache of passage embeddings keyed by model, precision, prompt and text hash, for quick evaluation reruns."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from index.embedding.embedder import Embedder, TextKind


class CachedEmbedder:
    """Wraps an Embedder: texts seen before with the same model and arithmetic are read from disk, not
    re-embedded."""

    def __init__(self, embedder: Embedder, path: Path) -> None:
        self.embedder = embedder
        # fp32 keys are those written before precisions existed (their vectors are fp32 ones); any
        # other arithmetic (or an embedder that names none) gets keys of its own.
        arithmetic = getattr(embedder, "arithmetic", None) or getattr(embedder, "precision", None) or "unknown"
        self._prefix = embedder.name if arithmetic == "fp32" else f"{embedder.name}\x00{arithmetic}"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str):  # count_tokens, dimension, name, max_seq_length, embed_one...
        return getattr(self.embedder, name)

    def _key(self, text: str, prompt: str) -> str:
        # Texts embedded without a prompt keep the keys written before prompts existed.
        prefix = f"{self._prefix}\x00prompt:{prompt}" if prompt else self._prefix
        return hashlib.sha1(f"{prefix}\x00{text}".encode("utf-8")).hexdigest()

    def embed(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int | None = None,
              kind: TextKind = "document") -> np.ndarray:
        prompt = getattr(self.embedder, "prompts", {}).get(kind, "")
        keys = [self._key(t, prompt) for t in texts]
        found: dict[str, bytes] = {}
        for first in range(0, len(keys), 500):
            chunk = keys[first:first + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk).fetchall())
        todo = [i for i, key in enumerate(keys) if key not in found]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = self.embedder.embed([texts[i] for i in todo], show_progress=show_progress, batch_size=batch_size,
                                        kind=kind)
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO vectors(key, vector) VALUES (?, ?)",
                                     [(keys[i], v.astype(np.float32).tobytes()) for i, v in zip(todo, fresh)])
            for i, vector in zip(todo, fresh):
                found[keys[i]] = vector.astype(np.float32).tobytes()
        return np.vstack([np.frombuffer(found[key], dtype=np.float32) for key in keys]) if keys \
            else np.zeros((0, self.embedder.dimension), dtype=np.float32)

    def close(self) -> None:
        self._db.close()
