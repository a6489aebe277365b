"""The embedded store's keyword search: BM25 over passage bodies, scored exactly (every question word,
every passage holding one) from postings lists with numpy, faster than FTS5's bm25() even when that is
held to the rarer words (figures: docs/benchmarks.md).

The ranking is FTS5's (the same terms, through FTS5's own tokenizer; the same k1, b and idf); FTS5
stays in the database as the reference ranking (index/stores/embedded/fts_reference.py). The postings
are a copy of SQLite's passages, like the FAISS file: one memory-mapped file beside the database,
rewritten when enough has changed, plus the passages added since in memory; checked against SQLite
whenever the library opens or another process writes.

As in Lucene, a removed passage still counts in its terms' document frequencies until its postings
are merged away (at the latest when the file is next written); it is never returned."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from index.stores.base import query_words
from index.stores.embedded.postings import Segment, read_file, write_file
from index.stores.embedded.terms import FTS5_TOKENIZER, TermVocabulary

log = logging.getLogger(__name__)
FILE_VERSION = 1
K1, B = 1.2, 0.75  # FTS5's bm25() defaults
NEGLIGIBLE_IDF = 1e-6  # FTS5's weight for a term in half the passages or more
# The newest in-memory segment is merged into the one before while it is at least this share of it.
MERGE_SHARE = 0.5
# The file is rewritten once this many passages (or this share of those held) changed since.
SAVE_AFTER_PASSAGES = 2_000
SAVE_AFTER_SHARE = 0.1


def idf(passages: int, holding: int) -> float:
    """FTS5's BM25 idf: log((N - n + 0.5) / (n + 0.5)), and a negligible weight when that is not positive."""
    holding = min(holding, passages)  # removed passages may still be counted
    value = math.log((passages - holding + 0.5) / (holding + 0.5))
    return value if value > 0 else NEGLIGIBLE_IDF


class KeywordIndex:
    """BM25 over passages added by id with their bodies; removal by id."""

    def __init__(self, vocabulary: TermVocabulary | None = None, base: Segment | None = None,
                 held: np.ndarray | None = None, lengths: np.ndarray | None = None) -> None:
        self.vocabulary = vocabulary or TermVocabulary()
        self._segments: list[Segment] = [base] if base is not None and len(base) else []
        self._lengths = np.zeros(0, dtype=np.float32)  # tokens of each held passage, by id
        self._held = np.zeros(0, dtype=bool)
        self._stale = np.zeros(0, dtype=bool)  # removed, but its postings are still in a segment
        self._count = 0
        self._tokens = 0
        self._changed = 0  # passages added or removed since the file was written
        self._norm_key: tuple[int, int, int] | None = None
        self._norm_cache = np.zeros(0, dtype=np.float32)
        self._lock = threading.RLock()
        if held is not None and len(held):
            self._grow(int(held.max()) + 1)
            self._held[held] = True
            self._lengths[held] = lengths
            self._count, self._tokens = len(held), int(np.asarray(lengths, dtype=np.int64).sum())

    @classmethod
    def load(cls, path: Path) -> "KeywordIndex | None":
        """The index in the file, or None when it is missing, unreadable or made differently."""
        if not path.exists():
            return None
        try:
            header, arrays = read_file(path)
            if header.get("version") != FILE_VERSION or header.get("tokenizer") != FTS5_TOKENIZER:
                log.warning("keyword index %s was made differently; it will be rebuilt", path)
                return None
            base = Segment(arrays["terms"], arrays["starts"], arrays["passages"], arrays["tfs"])
            return cls(TermVocabulary(header["terms"]), base, np.asarray(arrays["held"], dtype=np.int64),
                       np.asarray(arrays["lengths"], dtype=np.float32))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("keyword index %s is unreadable (%s); it will be rebuilt", path, exc)
            return None

    def __len__(self) -> int:
        return self._count

    def replace_with(self, other: "KeywordIndex") -> None:
        """Take over another index's content (searchers keep their reference to this object)."""
        with self._lock:
            self.__dict__.update({key: value for key, value in other.__dict__.items() if key != "_lock"})

    def ids(self) -> np.ndarray:
        """The passages held, ascending."""
        with self._lock:
            return np.flatnonzero(self._held).astype(np.int64)

    @property
    def worth_saving(self) -> bool:
        """True when enough changed since the file was written that reading it back saves real work."""
        return self._changed > max(SAVE_AFTER_PASSAGES, SAVE_AFTER_SHARE * self._count)

    def add(self, passage_ids: Sequence[int] | np.ndarray, bodies: Sequence[str]) -> None:
        """Index passages (those already held are left as they are)."""
        ids = np.asarray(passage_ids, dtype=np.int64)
        if not len(ids):
            return
        with self._lock:
            self._grow(int(ids.max()) + 1)
            new = ~self._held[ids]
            ids, bodies = ids[new], [body for body, keep in zip(bodies, new) if keep]
            if not len(ids):
                return
            if self._stale[ids].any():  # an id used again (a restored backup): drop its old postings first
                self._compact()
            term_ids, counts = self.vocabulary.many_term_ids(list(bodies))
            self._segments.append(Segment.from_tokens(ids, counts, term_ids))
            self._held[ids] = True
            self._lengths[ids] = counts
            self._count += len(ids)
            self._tokens += int(counts.sum())
            self._changed += len(ids)
            while len(self._segments) > 1 and len(self._segments[-1]) >= MERGE_SHARE * len(self._segments[-2]):
                self._segments[-2:] = [Segment.merged(self._segments[-2:], keep=self._held)]

    def remove(self, passage_ids: Sequence[int] | np.ndarray) -> None:
        ids = np.asarray(passage_ids, dtype=np.int64)
        with self._lock:
            ids = ids[ids < len(self._held)]
            ids = np.unique(ids[self._held[ids]])
            if not len(ids):
                return
            self._held[ids] = False
            self._stale[ids] = True
            self._tokens -= int(self._lengths[ids].sum())
            self._lengths[ids] = 0
            self._count -= len(ids)
            self._changed += len(ids)

    def lexical_search(self, question: str, limit: int) -> list[tuple[int, float]]:
        """BM25 over passage bodies: (passage id, score where higher is better), best first."""
        terms = self.vocabulary.known(query_words(question))
        with self._lock:
            segments, lengths, held, passages = list(self._segments), self._lengths, self._held, self._count
            tokens = self._tokens
        if not terms or not passages or limit <= 0:
            return []
        norms = self._norms(lengths, tokens, passages)
        holding = {term: sum(s.document_frequency(term) for s in segments) for term in terms}
        weights = {term: idf(passages, count) for term, count in holding.items() if count}
        scores = np.zeros(len(lengths), dtype=np.float32)
        # Terms in half the passages or more weigh almost nothing: they only break ties, so they are
        # read only when the other terms find too few passages.
        telling = [term for term, weight in weights.items() if weight > NEGLIGIBLE_IDF]
        self._accumulate(scores, segments, norms, {t: weights[t] for t in telling})
        if np.count_nonzero(scores) < limit:
            self._accumulate(scores, segments, norms, {t: w for t, w in weights.items() if t not in telling})
        found = np.flatnonzero(scores)
        found = found[held[found]]  # removed passages whose postings remain
        if len(found) > limit:
            found = found[np.argpartition(-scores[found], limit - 1)[:limit]]
        order = np.lexsort((found, -scores[found]))
        return [(int(found[i]), float(scores[found[i]])) for i in order]

    def _norms(self, lengths: np.ndarray, tokens: int, passages: int) -> np.ndarray:
        """BM25's length normalisation of every passage, K1·(1 − B + B·length/average), kept until the
        collection changes."""
        key = (id(lengths), tokens, passages)
        if self._norm_key != key:
            average = np.float32(max(tokens / passages, 1e-9))
            self._norm_cache = (lengths * np.float32(K1 * B) / average + np.float32(K1 * (1 - B))).astype(np.float32)
            self._norm_key = key
        return self._norm_cache

    @staticmethod
    def _accumulate(scores: np.ndarray, segments: list[Segment], norms: np.ndarray,
                    weights: dict[int, float]) -> None:
        """Add each term's BM25 share to the scores of the passages holding it."""
        for term, weight in weights.items():
            for segment in segments:
                passages, tfs = segment.postings(term)
                if not len(passages):
                    continue
                tf = tfs.astype(np.float32)
                scores[passages] += tf * np.float32(weight * (K1 + 1)) / (tf + norms[passages])

    def save(self, path: Path) -> None:
        """Write every held passage's postings to one file (atomically), then read them from it.
        Searches, adds and removals go on meanwhile: what changed during the writing stays in memory."""
        with self._lock:
            segments, held, lengths = list(self._segments), self._held.copy(), self._lengths.copy()
            terms, changed = list(self.vocabulary.terms), self._changed
        merged = Segment.merged(segments, keep=held) if segments else Segment.empty()
        ids = np.flatnonzero(held)
        write_file(path, {"version": FILE_VERSION, "tokenizer": FTS5_TOKENIZER, "terms": terms},
                   {"terms": merged.terms, "starts": merged.starts, "passages": merged.passages,
                    "tfs": merged.tfs, "held": ids.astype(np.uint32), "lengths": lengths[ids].astype(np.uint32)})
        _, arrays = read_file(path)
        saved = Segment(arrays["terms"], arrays["starts"], arrays["passages"], arrays["tfs"])
        with self._lock:
            current = self._segments
            if len(current) < len(segments) or any(a is not b for a, b in zip(current, segments)):
                return  # an add merged what was being written meanwhile: the file is good, memory stays
            self._segments = [saved] + current[len(segments):]
            written = np.zeros(len(self._held), dtype=bool)
            written[:len(held)] = held
            # Removed passages whose postings remain: in the file (removed while it was written), or in
            # a segment added meanwhile (any not written that is stale).
            self._stale = (written & ~self._held) | (self._stale & ~written)
            self._changed -= changed

    def _compact(self) -> None:
        """Merge every segment into one, without the postings of removed passages."""
        self._segments = [Segment.merged(self._segments, keep=self._held)] if self._segments else []
        self._stale[:] = False

    def _grow(self, size: int) -> None:
        if size <= len(self._held):
            return
        size = max(size, int(len(self._held) * 1.25) + 1024)
        for name in ("_lengths", "_held", "_stale"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)
