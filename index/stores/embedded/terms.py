"""Words to index terms, exactly as the library's SQLite FTS5 table makes them (lower case, diacritics
removed, Porter-stemmed): FTS5's own tokenizer is asked once per distinct word, in batches, and the
answer cached, so the keyword index and FTS5 always agree on what a term is."""

from __future__ import annotations

import re
import sqlite3
import threading
from itertools import chain
from typing import Iterable

import numpy as np

# The tokenizer of the library's passages_fts table (index/stores/embedded/store.py).
FTS5_TOKENIZER = "porter unicode61 remove_diacritics 2"
# Runs of letters and digits: unicode61's tokens (it treats everything else, "_" included, as a separator).
_WORD = re.compile(r"[^\W_]+")


class TermVocabulary:
    """Term ids for words: each distinct word is stemmed once, through an in-memory FTS5 table."""

    def __init__(self, terms: Iterable[str] = ()) -> None:
        self.terms: list[str] = list(terms)
        self._id_of: dict[str, int] = {term: i for i, term in enumerate(self.terms)}
        self._word_terms: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(f"CREATE VIRTUAL TABLE words USING fts5(word, tokenize='{FTS5_TOKENIZER}')")
        self._db.execute("CREATE VIRTUAL TABLE word_terms USING fts5vocab(words, 'instance')")

    def __len__(self) -> int:
        return len(self.terms)

    def term_ids(self, text: str) -> list[int]:
        """The text's terms in order, one per token (as FTS5 counts a passage's length)."""
        return self.many_term_ids([text])[0].tolist()

    def many_term_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every text's terms: (term ids of all texts one after another, how many each text has)."""
        split = [_WORD.findall(text.lower()) for text in texts]
        self._learn(chain.from_iterable(split))
        lookup = self._word_terms.__getitem__
        per_text = [list(chain.from_iterable(map(lookup, words))) for words in split]
        counts = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
        ids = np.fromiter(chain.from_iterable(per_text), dtype=np.int32, count=int(counts.sum()))
        return ids, counts

    def known(self, words: Iterable[str]) -> list[int]:
        """Term ids of these words (a question's) that indexed text has used, once each. Words never
        seen in a passage are stemmed but neither remembered nor given a term, so questions cannot
        grow the vocabulary."""
        pieces = [piece for word in words for piece in _WORD.findall(word.lower())]
        unseen = [piece for piece in dict.fromkeys(pieces) if piece not in self._word_terms]
        with self._lock:
            stems = self._stems(unseen) if unseen else {}
        found: list[int] = []
        for piece in pieces:
            if piece in self._word_terms:
                found.extend(self._word_terms[piece])
            else:
                found.extend(term for term in map(self._id_of.get, stems.get(piece, ())) if term is not None)
        return list(dict.fromkeys(found))

    def _learn(self, words: Iterable[str]) -> None:
        """Give the words not seen before their terms (new terms their ids), all in one pass through FTS5."""
        new = [w for w in set(words) if w not in self._word_terms]
        if not new:
            return
        with self._lock:
            new = [w for w in new if w not in self._word_terms]
            if not new:
                return
            for word, terms in self._stems(new).items():
                ids = []
                for term in terms:
                    term_id = self._id_of.get(term)
                    if term_id is None:
                        term_id = self._id_of[term] = len(self.terms)
                        self.terms.append(term)
                    ids.append(term_id)
                self._word_terms[word] = tuple(ids)

    def _stems(self, words: list[str]) -> dict[str, list[str]]:
        """FTS5's terms for each word (usually one; none for a word it drops). Hold ``_lock``."""
        db = self._db
        with db:
            db.executemany("INSERT INTO words(rowid, word) VALUES (?, ?)", enumerate(words))
            rows = db.execute("SELECT doc, term FROM word_terms ORDER BY doc, offset").fetchall()
            db.execute("DELETE FROM words")
        found: dict[str, list[str]] = {word: [] for word in words}
        for doc, term in rows:
            found[words[doc]].append(term)
        return found
