"""The vectors of texts embedded lately, kept in memory: a sentence marked again (a story many readers
ask about, an inline query typed on, a follow-up's page) is not embedded again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np


class RecentVectors:
    """Up to ``capacity`` texts' vectors, the least recently used forgotten first; ``embed`` makes the
    vectors of texts not held."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], capacity: int) -> None:
        self.embed = embed
        self.capacity = capacity
        self._held: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per text, in order."""
        with self._lock:
            found = {text: self._held[text] for text in texts if text in self._held}
            for text in found:
                self._held.move_to_end(text)
        todo = list(dict.fromkeys(text for text in texts if text not in found))
        if todo:  # embedded outside the lock: other questions' sentences need not wait for these
            fresh = dict(zip(todo, np.asarray(self.embed(todo), dtype=np.float32)))
            found.update(fresh)
            with self._lock:
                self._held.update(fresh)
                while len(self._held) > self.capacity:
                    self._held.popitem(last=False)
        return np.vstack([found[text] for text in texts])
